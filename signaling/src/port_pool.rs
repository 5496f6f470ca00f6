//! The UDP port range, handed out one port per peer.
//!
//! webrtc-rs 0.21 binds its own sockets from addresses we give it and has no single-port
//! mux, so a fixed firewall range means one port per live peer. The pool remembers which
//! ports our peers hold; a port some *other* process holds is found by the probe that
//! [`PortPool::acquire`] runs before handing a port out, and skipped.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};

use crate::PeerError;

/// A shared, cheaply cloned pool over an inclusive port range.
#[derive(Debug, Clone)]
pub(crate) struct PortPool {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    first: u16,
    last: u16,
    /// A std mutex is fine: it guards a set and a cursor, and is held for a handful of
    /// bind probes at most, never across an await.
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    /// Ports held by a live [`PortLease`].
    in_use: BTreeSet<u16>,
    /// Where the next search starts. Round-robin rather than lowest-first, so a port freed a
    /// moment ago is the last to be reused: stray packets of the old call and sockets still
    /// closing then hit nobody.
    cursor: u16,
}

/// One port taken from the pool; it goes back when the lease is dropped.
#[derive(Debug)]
pub(crate) struct PortLease {
    pool: Arc<Inner>,
    port: u16,
}

impl PortLease {
    pub(crate) fn port(&self) -> u16 {
        self.port
    }
}

impl Drop for PortLease {
    fn drop(&mut self) {
        let mut state = self.pool.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        state.in_use.remove(&self.port);
    }
}

impl PortPool {
    /// `first..=last`; the caller has validated `0 < first <= last`.
    pub(crate) fn new(first: u16, last: u16) -> Self {
        Self {
            inner: Arc::new(Inner { first, last, state: Mutex::new(State { in_use: BTreeSet::new(), cursor: first }) }),
        }
    }

    /// Takes the next port that is neither leased nor refused by `probe` (which tries to bind
    /// it and reports whether that worked). Every port is tried at most once per call.
    pub(crate) fn acquire(&self, mut probe: impl FnMut(u16) -> bool) -> Result<PortLease, PeerError> {
        let inner = &self.inner;
        let mut state = inner.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let size = u32::from(inner.last - inner.first) + 1;
        let mut port = state.cursor;
        for _ in 0..size {
            let next = if port == inner.last { inner.first } else { port + 1 };
            if !state.in_use.contains(&port) && probe(port) {
                state.in_use.insert(port);
                state.cursor = next;
                return Ok(PortLease { pool: Arc::clone(inner), port });
            }
            port = next;
        }
        Err(PeerError::NoFreePort { first: inner.first, last: inner.last })
    }

    /// How many ports live peers hold now (for metrics and tests).
    pub(crate) fn in_use(&self) -> usize {
        self.inner.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner).in_use.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hands_out_each_port_once_then_reports_exhaustion() {
        let pool = PortPool::new(5000, 5001);
        let a = pool.acquire(|_| true).unwrap();
        let b = pool.acquire(|_| true).unwrap();
        assert_ne!(a.port(), b.port());
        assert!(matches!(pool.acquire(|_| true), Err(PeerError::NoFreePort { first: 5000, last: 5001 })));
        assert_eq!(pool.in_use(), 2);
    }

    #[test]
    fn a_dropped_lease_returns_its_port() {
        let pool = PortPool::new(5000, 5001);
        let a = pool.acquire(|_| true).unwrap();
        let _b = pool.acquire(|_| true).unwrap();
        let freed = a.port();
        drop(a);
        assert_eq!(pool.in_use(), 1);
        assert_eq!(pool.acquire(|_| true).unwrap().port(), freed);
    }

    #[test]
    fn ports_that_fail_to_bind_are_skipped() {
        let pool = PortPool::new(5000, 5003);
        let lease = pool.acquire(|port| port >= 5002).unwrap();
        assert_eq!(lease.port(), 5002);
        assert!(pool.acquire(|_| false).is_err());
        assert_eq!(pool.in_use(), 1);
    }

    #[test]
    fn allocation_is_round_robin_so_a_freed_port_rests() {
        let pool = PortPool::new(5000, 5002);
        let first = pool.acquire(|_| true).unwrap();
        assert_eq!(first.port(), 5000);
        drop(first);
        assert_eq!(pool.acquire(|_| true).unwrap().port(), 5001);
        // Wraps around past the end of the range.
        let _c = pool.acquire(|_| true).unwrap();
        let d = pool.acquire(|_| true).unwrap();
        assert_eq!(d.port(), 5000);
    }

    #[test]
    fn each_port_is_probed_at_most_once_per_attempt() {
        let pool = PortPool::new(5000, 5009);
        let mut probed = Vec::new();
        let result = pool.acquire(|port| {
            probed.push(port);
            false
        });
        assert!(result.is_err());
        probed.sort_unstable();
        assert_eq!(probed, (5000..=5009).collect::<Vec<_>>());
    }

    #[test]
    fn a_single_port_range_and_the_top_of_the_port_space_work() {
        let pool = PortPool::new(u16::MAX, u16::MAX);
        let lease = pool.acquire(|_| true).unwrap();
        assert_eq!(lease.port(), u16::MAX);
        assert!(pool.acquire(|_| true).is_err());
    }
}
