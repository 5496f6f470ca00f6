//! Rate limiting per key (governor's keyed GCRA limiter): call sessions per client IP,
//! sign-in attempts per IP and per account; plus who the client is, and how long it waits.

use std::collections::HashMap;
use std::hash::Hash;
use std::net::{IpAddr, SocketAddr};
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use axum::http::HeaderMap;
use governor::clock::{Clock, DefaultClock};
use governor::state::keyed::DefaultKeyedStateStore;
use governor::{Quota, RateLimiter};

/// Allows `n` requests per period per key, in bursts of up to `n`, refilling evenly.
pub struct KeyedRateLimiter<K: Hash + Eq + Clone> {
    limiter: RateLimiter<K, DefaultKeyedStateStore<K>, DefaultClock>,
    clock: DefaultClock,
}

/// Per-client-IP limits of the public endpoints.
pub type IpRateLimiter = KeyedRateLimiter<IpAddr>;

impl<K: Hash + Eq + Clone> KeyedRateLimiter<K> {
    /// `per_minute` of 0 is treated as 1.
    pub fn per_minute(per_minute: u32) -> Self {
        Self::per_period(per_minute, Duration::from_secs(60))
    }

    /// `n` per `period` (0 is treated as 1), in bursts of up to `n`.
    pub fn per_period(n: u32, period: Duration) -> Self {
        let n = NonZeroU32::new(n.max(1)).expect("at least one");
        let quota = Quota::with_period(period / n.get()).expect("a period over zero").allow_burst(n);
        Self { limiter: RateLimiter::keyed(quota), clock: DefaultClock::default() }
    }

    /// Ok, or how long to wait.
    pub fn check(&self, key: K) -> Result<(), Duration> {
        self.limiter.check_key(&key).map_err(|not_until| not_until.wait_time_from(self.clock.now()))
    }

    /// Forgets keys that are back to a full allowance (keeps memory bounded).
    pub fn forget_idle(&self) {
        self.limiter.retain_recent();
        self.limiter.shrink_to_fit();
    }
}

/// Counts open-but-idle connections per IP (a call socket that has not sent its offer
/// yet) and refuses more than `limit` at once from one address.
#[derive(Debug)]
pub struct PendingPerIp {
    limit: usize,
    open: Arc<Mutex<HashMap<IpAddr, usize>>>,
}

/// One pending connection; dropping it (or calling [`PendingGuard::release`]) frees its place.
#[derive(Debug)]
pub struct PendingGuard {
    ip: IpAddr,
    open: Option<Arc<Mutex<HashMap<IpAddr, usize>>>>,
}

impl PendingPerIp {
    /// At most `limit` pending connections per IP (0 is treated as 1).
    pub fn new(limit: usize) -> Self {
        Self { limit: limit.max(1), open: Arc::default() }
    }

    /// A place for one more pending connection from `ip`, or `None` when it has `limit` already.
    pub fn acquire(&self, ip: IpAddr) -> Option<PendingGuard> {
        let mut open = self.open.lock().unwrap_or_else(PoisonError::into_inner);
        let count = open.entry(ip).or_insert(0);
        if *count >= self.limit {
            return None;
        }
        *count += 1;
        Some(PendingGuard { ip, open: Some(self.open.clone()) })
    }
}

impl PendingGuard {
    /// The connection is no longer pending.
    pub fn release(&mut self) {
        let Some(open) = self.open.take() else { return };
        let mut open = open.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(count) = open.get_mut(&self.ip) {
            *count -= 1;
            if *count == 0 {
                open.remove(&self.ip);
            }
        }
    }
}

impl Drop for PendingGuard {
    fn drop(&mut self) {
        self.release();
    }
}

/// The `Retry-After` value for a wait: whole seconds rounded **up** (waiting 1.2 s and
/// coming back after 1 s would be refused again), at least 1.
pub fn retry_after_secs(wait: Duration) -> u64 {
    (wait.as_secs() + u64::from(wait.subsec_nanos() > 0)).max(1)
}

/// The client's IP: the socket peer, or, behind one trusted proxy, the address that proxy
/// appended to `X-Forwarded-For` (the last one: anything before it came from the client and
/// could be made up to dodge a rate limit).
pub fn client_ip(headers: &HeaderMap, peer: SocketAddr, trust_forwarded: bool) -> IpAddr {
    if trust_forwarded {
        let forwarded = headers
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .next_back()
            .and_then(|v| v.trim().parse().ok());
        if let Some(ip) = forwarded {
            return ip;
        }
    }
    peer.ip()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pending_connections_are_bounded_per_address_and_freed_when_released() {
        let pending = PendingPerIp::new(2);
        let a: IpAddr = "198.51.100.1".parse().unwrap();
        let b: IpAddr = "198.51.100.2".parse().unwrap();
        let mut first = pending.acquire(a).unwrap();
        let _second = pending.acquire(a).unwrap();
        assert!(pending.acquire(a).is_none(), "a third from the same address");
        assert!(pending.acquire(b).is_some(), "another address has its own places");
        first.release();
        first.release();
        let _third = pending.acquire(a).expect("a released place is free again");
        assert!(pending.acquire(a).is_none(), "released once, freed once");
    }

    #[test]
    fn each_address_gets_its_own_allowance() {
        let limiter = IpRateLimiter::per_minute(2);
        let a: IpAddr = "198.51.100.1".parse().unwrap();
        let b: IpAddr = "198.51.100.2".parse().unwrap();
        assert!(limiter.check(a).is_ok() && limiter.check(a).is_ok());
        let wait = limiter.check(a).unwrap_err();
        assert!(wait > Duration::ZERO && wait <= Duration::from_secs(30));
        assert!(limiter.check(b).is_ok());
    }

    #[test]
    fn a_period_refills_evenly_after_a_burst() {
        let limiter = KeyedRateLimiter::<String>::per_period(3, Duration::from_secs(900));
        let key = "a@example.com".to_owned();
        for _ in 0..3 {
            assert!(limiter.check(key.clone()).is_ok());
        }
        let wait = limiter.check(key.clone()).unwrap_err();
        assert!(wait > Duration::from_secs(290) && wait <= Duration::from_secs(300), "{wait:?}");
    }

    #[test]
    fn retry_after_rounds_up_to_whole_seconds() {
        assert_eq!(retry_after_secs(Duration::from_millis(1200)), 2);
        assert_eq!(retry_after_secs(Duration::from_secs(3)), 3);
        assert_eq!(retry_after_secs(Duration::from_millis(1)), 1);
        assert_eq!(retry_after_secs(Duration::ZERO), 1);
    }

    #[test]
    fn forwarded_for_is_used_only_behind_a_trusted_proxy() {
        let mut headers = HeaderMap::new();
        headers.insert("x-forwarded-for", "203.0.113.9, 10.0.0.1".parse().unwrap());
        let peer: SocketAddr = "192.0.2.1:5000".parse().unwrap();
        assert_eq!(client_ip(&headers, peer, false), peer.ip());
        assert_eq!(client_ip(&headers, peer, true).to_string(), "10.0.0.1", "the hop the proxy added");
    }
}
