//! Per-client-IP rate limiting for the public endpoints (governor's keyed GCRA limiter).

use std::collections::HashMap;
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

/// Allows `n` requests per minute per IP, with bursts up to `n`.
pub struct IpRateLimiter {
    limiter: DefaultKeyedRateLimiter<IpAddr>,
    clock: DefaultClock,
}

impl IpRateLimiter {
    /// `per_minute` of 0 is treated as 1.
    pub fn per_minute(per_minute: u32) -> Self {
        let n = NonZeroU32::new(per_minute.max(1)).expect("at least one");
        Self { limiter: RateLimiter::keyed(Quota::per_minute(n)), clock: DefaultClock::default() }
    }

    /// Ok, or how long to wait.
    pub fn check(&self, ip: IpAddr) -> Result<(), Duration> {
        self.limiter.check_key(&ip).map_err(|not_until| not_until.wait_time_from(self.clock.now()))
    }

    /// Forgets clients that are back to a full allowance (keeps memory bounded).
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
}
