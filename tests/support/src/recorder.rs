//! What a mock saw and did, shared between its connection tasks and the test
//! that drives it.
//!
//! The state sits behind a `std::sync::Mutex`: every access is a short,
//! non-async critical section (push a record, clone a list), so an async
//! mutex would only add cost. A `watch` channel carries a version counter
//! that is bumped on every change, which is what lets [`Recorder::wait_for`]
//! sleep until the state moves instead of polling.

use std::fmt;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use tokio::sync::watch;

/// A recorded state plus the means to await changes to it.
#[derive(Debug)]
pub struct Recorder<S> {
    state: Mutex<S>,
    version: watch::Sender<u64>,
    started: Instant,
}

impl<S> Recorder<S> {
    pub fn new(state: S) -> Self {
        let (version, _) = watch::channel(0);
        Self { state: Mutex::new(state), version, started: Instant::now() }
    }

    /// When the mock started; record timestamps are offsets from it.
    pub fn started(&self) -> Instant {
        self.started
    }

    /// Time since the mock started, the clock every record is stamped with.
    pub fn elapsed(&self) -> Duration {
        self.started.elapsed()
    }

    /// Changes the state and wakes every waiter.
    pub fn update<R>(&self, change: impl FnOnce(&mut S) -> R) -> R {
        let result = {
            let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
            change(&mut state)
        };
        self.version.send_modify(|version| *version += 1);
        result
    }

    /// Reads the state.
    pub fn read<R>(&self, look: impl FnOnce(&S) -> R) -> R {
        let state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        look(&state)
    }

    /// Waits until `condition` holds for the state, or `timeout` passes.
    pub async fn wait_for(&self, mut condition: impl FnMut(&S) -> bool, timeout: Duration) -> Result<(), WaitTimeout> {
        let mut changes = self.version.subscribe();
        let waited = tokio::time::timeout(timeout, async {
            loop {
                changes.borrow_and_update();
                if self.read(&mut condition) {
                    return;
                }
                // The sender lives in `self`, so this only ends on a change.
                if changes.changed().await.is_err() {
                    std::future::pending::<()>().await;
                }
            }
        })
        .await;
        waited.map_err(|_| WaitTimeout { timeout })
    }
}

/// A `wait_for` whose condition did not hold in time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WaitTimeout {
    pub timeout: Duration,
}

impl fmt::Display for WaitTimeout {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "condition not met within {:?}", self.timeout)
    }
}

impl std::error::Error for WaitTimeout {}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn wait_for_wakes_on_update() {
        let recorder = std::sync::Arc::new(Recorder::new(0_u32));
        let writer = recorder.clone();
        tokio::spawn(async move {
            for _ in 0..3 {
                tokio::time::sleep(Duration::from_millis(5)).await;
                writer.update(|n| *n += 1);
            }
        });
        recorder.wait_for(|n| *n == 3, Duration::from_secs(2)).await.expect("reaches 3");
    }

    #[tokio::test]
    async fn wait_for_times_out() {
        let recorder = Recorder::new(0_u32);
        let result = recorder.wait_for(|n| *n == 1, Duration::from_millis(20)).await;
        assert_eq!(result, Err(WaitTimeout { timeout: Duration::from_millis(20) }));
    }
}
