//! The WhatsApp calls this node knows of: the [`CallLedger`] that decides what each webhook
//! event means, and a hang-up signal per call being answered or in progress, so Meta's
//! `terminate` reaches the call whether its session has started yet or not.
//!
//! Shared by the webhook route (which decides) and the WhatsApp caller legs (which report
//! the ends they cause). Both mutexes are std mutexes held for a map operation, never
//! across an await.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};

use tokio_util::sync::CancellationToken;

use super::ledger::{CallLedger, Ignored, LedgerConfig, Verdict};
use super::webhook::CallEventKind;
use crate::time::UnixMs;

/// What the route does with a call event.
#[derive(Debug)]
pub enum Decision {
    /// Answer (or decline) this new call; `hung_up` is cancelled if Meta ends it meanwhile.
    Answer { hung_up: CancellationToken },
    /// Meta ended a call being answered or in progress: its hang-up signal was given.
    Ended,
    /// Nothing to do.
    Ignore(Ignored),
}

/// The WhatsApp calls of this node.
#[derive(Debug, Default)]
pub struct LiveCalls {
    ledger: Mutex<CallLedger>,
    hang_ups: Mutex<HashMap<String, CancellationToken>>,
}

impl LiveCalls {
    pub fn new(config: LedgerConfig) -> Self {
        Self { ledger: Mutex::new(CallLedger::new(config)), hang_ups: Mutex::default() }
    }

    /// Decides an event of Meta call `call_id` (see [`CallLedger::handle`]). Concurrent
    /// duplicates are decided one after the other: exactly one gets [`Decision::Answer`].
    pub fn handle(&self, call_id: &str, kind: CallEventKind, timestamp: Option<u64>, now: UnixMs) -> Decision {
        // The ledger's lock is held while the hang-up token is registered or cancelled, so a
        // terminate racing its connect always finds the token the connect registered.
        let mut ledger = self.ledger.lock().unwrap_or_else(PoisonError::into_inner);
        let verdict = ledger.handle(call_id, kind, timestamp, now);
        match verdict {
            Verdict::Answer => {
                let hung_up = CancellationToken::new();
                self.hang_ups().insert(call_id.to_owned(), hung_up.clone());
                Decision::Answer { hung_up }
            }
            Verdict::End => {
                if let Some(hung_up) = self.hang_ups().remove(call_id) {
                    hung_up.cancel();
                }
                Decision::Ended
            }
            Verdict::Ignore(why) => Decision::Ignore(why),
        }
    }

    /// A call is over on this side. `by_gateway` when the gateway declined or ended it (then
    /// Meta's confirming `terminate` changes nothing); otherwise Meta ended it and already
    /// knows.
    pub fn finished(&self, call_id: &str, by_gateway: bool, now: UnixMs) {
        self.hang_ups().remove(call_id);
        if by_gateway {
            self.ledger.lock().unwrap_or_else(PoisonError::into_inner).handle_ended(call_id, now);
        }
    }

    /// Calls being answered or in progress.
    pub fn live(&self) -> usize {
        self.hang_ups().len()
    }

    fn hang_ups(&self) -> std::sync::MutexGuard<'_, HashMap<String, CancellationToken>> {
        self.hang_ups.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: UnixMs = 1_700_000_000_000;
    const TS: Option<u64> = Some(1_700_000_000);

    #[test]
    fn a_terminate_reaches_the_call_being_answered() {
        let calls = LiveCalls::default();
        let Decision::Answer { hung_up } = calls.handle("wacid.1", CallEventKind::Connect, TS, NOW) else {
            panic!("answered")
        };
        assert!(!hung_up.is_cancelled());
        assert!(matches!(calls.handle("wacid.1", CallEventKind::Terminate, TS, NOW), Decision::Ended));
        assert!(hung_up.is_cancelled());
        assert_eq!(calls.live(), 0);
    }

    #[test]
    fn a_duplicate_connect_is_not_answered_twice() {
        let calls = LiveCalls::default();
        assert!(matches!(calls.handle("wacid.1", CallEventKind::Connect, TS, NOW), Decision::Answer { .. }));
        assert!(matches!(
            calls.handle("wacid.1", CallEventKind::Connect, TS, NOW),
            Decision::Ignore(Ignored::DuplicateConnect)
        ));
        assert_eq!(calls.live(), 1);
    }

    #[test]
    fn metas_terminate_after_the_gateway_ended_a_call_changes_nothing() {
        let calls = LiveCalls::default();
        let Decision::Answer { hung_up } = calls.handle("wacid.1", CallEventKind::Connect, TS, NOW) else {
            panic!("answered")
        };
        calls.finished("wacid.1", true, NOW + 1000);
        assert_eq!(calls.live(), 0);
        assert!(matches!(
            calls.handle("wacid.1", CallEventKind::Terminate, TS, NOW + 2000),
            Decision::Ignore(Ignored::EndedByGateway)
        ));
        assert!(!hung_up.is_cancelled());
    }
}
