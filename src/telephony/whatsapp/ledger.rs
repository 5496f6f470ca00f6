//! What an incoming call event means, given every event seen before for the same Meta call
//! id: a pure state machine, the wall clock passed in.
//!
//! Meta delivers calling webhooks at least once and in no particular order
//! (whatsapp-calling.md §2, "Delivery semantics"): a connect is retried when the gateway was
//! slow to answer 200 (duplicates, possibly concurrent), a user who hangs up at once can have
//! their terminate arrive before the connect, and a retried connect can arrive after its
//! terminate. The [`CallLedger`] keeps one record per call id and says, for each event:
//!
//! | event       | record                     | verdict                                 |
//! |-------------|----------------------------|-----------------------------------------|
//! | `connect`   | none                       | [`Verdict::Answer`] (once per call id)  |
//! | `connect`   | answering                  | ignore: duplicate                        |
//! | `connect`   | terminated, never answered | ignore: terminated before connect        |
//! | `connect`   | over (terminated / ended)  | ignore: the call is over                 |
//! | `terminate` | none                       | ignore, remembered (so the connect is not answered) |
//! | `terminate` | answering                  | [`Verdict::End`]                         |
//! | `terminate` | terminated                 | ignore: duplicate                        |
//! | `terminate` | ended by the gateway       | ignore: Meta confirms our reject/terminate |
//! | any         | newer `timestamp` applied  | ignore: stale                            |
//!
//! A connect whose own timestamp is older than `max_connect_age` is not answered either
//! (Meta has given up on it; it could be a retry of a call the ledger already forgot).
//! Memory is bounded: a call over is remembered for `forget_after`, a call in progress for
//! `live_ttl` after its last event, and at most `capacity` ids are kept.
//!
//! The ledger is not synchronised: the webhook route keeps it behind a mutex, so concurrent
//! duplicates are decided one after the other and exactly one of them is answered.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::time::Duration;

use super::webhook::CallEventKind;
use crate::time::UnixMs;

/// What to do with an incoming call event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// The first connect of this call: answer it (pre_accept, accept) or decline it (reject).
    Answer,
    /// The user's side ended a call being answered or in progress: end it on our side (no
    /// terminate action is needed, Meta has ended it).
    End,
    /// Nothing to do; the reason is for logs and metrics.
    Ignore(Ignored),
}

/// Why an event changes nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ignored {
    /// A repeated connect of a call already being answered.
    DuplicateConnect,
    /// A connect after its call's terminate: the user hung up before we answered.
    TerminatedBeforeConnect,
    /// A connect of a call that is over.
    CallOver,
    /// A terminate for a call not seen yet: remembered, so its connect will not be answered.
    TerminateFirst,
    /// A repeated terminate.
    DuplicateTerminate,
    /// Meta's terminate for a call the gateway itself rejected or terminated.
    EndedByGateway,
    /// Older (by `timestamp`) than an event already applied to this call.
    Stale,
    /// A connect stamped longer ago than `max_connect_age`.
    TooOld,
    /// An event kind the gateway does not act on.
    UnknownEvent,
}

impl Ignored {
    /// A stable name for logs and metric labels.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::DuplicateConnect => "duplicate_connect",
            Self::TerminatedBeforeConnect => "terminated_before_connect",
            Self::CallOver => "call_over",
            Self::TerminateFirst => "terminate_first",
            Self::DuplicateTerminate => "duplicate_terminate",
            Self::EndedByGateway => "ended_by_gateway",
            Self::Stale => "stale",
            Self::TooOld => "too_old",
            Self::UnknownEvent => "unknown_event",
        }
    }
}

/// Bounds of the ledger.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LedgerConfig {
    /// How long a call that is over stays known: duplicates and late retries arriving within
    /// it are recognised. Longer than `max_connect_age`, so a forgotten call's connect is too
    /// old to be answered anyway.
    pub forget_after: Duration,
    /// A connect stamped longer ago than this is not answered: Meta gives a call about 30–60 s
    /// to be accepted.
    pub max_connect_age: Duration,
    /// A call in progress with no event for this long is forgotten (a backstop: the gateway
    /// reports every end it causes with [`CallLedger::handle_ended`]).
    pub live_ttl: Duration,
    /// The most call ids kept; when full, the record that would expire first goes.
    pub capacity: usize,
}

impl Default for LedgerConfig {
    fn default() -> Self {
        Self {
            forget_after: Duration::from_secs(10 * 60),
            max_connect_age: Duration::from_secs(2 * 60),
            live_ttl: Duration::from_secs(6 * 60 * 60),
            capacity: 100_000,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Connect applied: the gateway answers it, or the call is in progress.
    Answering,
    /// Meta's terminate applied; `answered` says whether a connect came first.
    Terminated { answered: bool },
    /// The gateway rejected or terminated the call itself.
    Ended,
}

#[derive(Debug, Clone, Copy)]
struct Record {
    state: State,
    /// The newest `timestamp` applied (Unix seconds).
    timestamp: Option<u64>,
    expires_at: UnixMs,
}

/// One record per Meta call id (see the module documentation).
#[derive(Debug)]
pub struct CallLedger {
    config: LedgerConfig,
    records: HashMap<String, Record>,
    /// Expiry times, earliest first. An entry whose time no longer matches its record's is
    /// left over from before a state change and skipped.
    expiries: BinaryHeap<Reverse<(UnixMs, String)>>,
}

fn ms(duration: Duration) -> UnixMs {
    UnixMs::try_from(duration.as_millis()).unwrap_or(UnixMs::MAX)
}

impl CallLedger {
    pub fn new(config: LedgerConfig) -> Self {
        Self { config, records: HashMap::new(), expiries: BinaryHeap::new() }
    }

    /// Call ids currently remembered.
    pub fn len(&self) -> usize {
        self.records.len()
    }

    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }

    /// Decides what the event `kind` with Meta's `timestamp` (Unix seconds) means for call
    /// `call_id`, and records it. `now` is the wall clock.
    pub fn handle(&mut self, call_id: &str, kind: CallEventKind, timestamp: Option<u64>, now: UnixMs) -> Verdict {
        self.prune(now);
        let record = self.records.get(call_id).copied();
        if let (Some(record), Some(timestamp)) = (record, timestamp)
            && record.timestamp.is_some_and(|applied| timestamp < applied)
        {
            return Verdict::Ignore(Ignored::Stale);
        }
        match (kind, record.map(|r| r.state)) {
            (CallEventKind::Connect, None) => {
                let age_limit = now / 1000 - ms(self.config.max_connect_age) / 1000;
                if timestamp.is_some_and(|t| i64::try_from(t).unwrap_or(i64::MAX) < age_limit) {
                    return Verdict::Ignore(Ignored::TooOld);
                }
                self.set(call_id, State::Answering, timestamp, now + ms(self.config.live_ttl));
                Verdict::Answer
            }
            (CallEventKind::Connect, Some(State::Answering)) => Verdict::Ignore(Ignored::DuplicateConnect),
            (CallEventKind::Connect, Some(State::Terminated { answered: false })) => {
                Verdict::Ignore(Ignored::TerminatedBeforeConnect)
            }
            (CallEventKind::Connect, Some(State::Terminated { answered: true } | State::Ended)) => {
                Verdict::Ignore(Ignored::CallOver)
            }
            (CallEventKind::Terminate, None) => {
                let over = now + ms(self.config.forget_after);
                self.set(call_id, State::Terminated { answered: false }, timestamp, over);
                Verdict::Ignore(Ignored::TerminateFirst)
            }
            (CallEventKind::Terminate, Some(State::Answering)) => {
                let over = now + ms(self.config.forget_after);
                self.set(call_id, State::Terminated { answered: true }, timestamp, over);
                Verdict::End
            }
            (CallEventKind::Terminate, Some(State::Terminated { .. })) => Verdict::Ignore(Ignored::DuplicateTerminate),
            (CallEventKind::Terminate, Some(State::Ended)) => Verdict::Ignore(Ignored::EndedByGateway),
            (CallEventKind::Other, _) => Verdict::Ignore(Ignored::UnknownEvent),
        }
    }

    /// The gateway rejected or terminated the call (or gave up answering it): Meta's
    /// terminate that follows, and any late connect, change nothing.
    pub fn handle_ended(&mut self, call_id: &str, now: UnixMs) {
        self.prune(now);
        let timestamp = self.records.get(call_id).and_then(|r| r.timestamp);
        let state = match self.records.get(call_id).map(|r| r.state) {
            // Meta ended it first: keep that (a later terminate is a duplicate either way).
            Some(state @ State::Terminated { .. }) => state,
            _ => State::Ended,
        };
        self.set(call_id, state, timestamp, now + ms(self.config.forget_after));
    }

    fn set(&mut self, call_id: &str, state: State, timestamp: Option<u64>, expires_at: UnixMs) {
        if !self.records.contains_key(call_id) && self.records.len() >= self.config.capacity {
            self.evict_one();
        }
        let timestamp = match (self.records.get(call_id).and_then(|r| r.timestamp), timestamp) {
            (Some(applied), Some(new)) => Some(applied.max(new)),
            (applied, new) => new.or(applied),
        };
        self.records.insert(call_id.to_owned(), Record { state, timestamp, expires_at });
        self.expiries.push(Reverse((expires_at, call_id.to_owned())));
    }

    /// Forgets every record past its expiry.
    fn prune(&mut self, now: UnixMs) {
        while let Some(Reverse((expires_at, _))) = self.expiries.peek() {
            if *expires_at > now {
                break;
            }
            let Some(Reverse((expires_at, call_id))) = self.expiries.pop() else { break };
            if self.records.get(&call_id).is_some_and(|r| r.expires_at == expires_at) {
                self.records.remove(&call_id);
            }
        }
    }

    /// Full: drops the record that would expire first.
    fn evict_one(&mut self) {
        while let Some(Reverse((expires_at, call_id))) = self.expiries.pop() {
            if self.records.get(&call_id).is_some_and(|r| r.expires_at == expires_at) {
                self.records.remove(&call_id);
                return;
            }
        }
    }
}

impl Default for CallLedger {
    fn default() -> Self {
        Self::new(LedgerConfig::default())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use CallEventKind::{Connect, Other, Terminate};

    /// 2025-01-01T00:00:00Z, and Meta timestamps around it.
    const T0: UnixMs = 1_735_689_600_000;
    const TS: u64 = 1_735_689_600;

    fn at(seconds: i64) -> UnixMs {
        T0 + seconds * 1000
    }

    fn ledger() -> CallLedger {
        CallLedger::default()
    }

    #[test]
    fn the_first_connect_is_answered_and_its_duplicates_are_not() {
        let mut ledger = ledger();
        assert_eq!(ledger.handle("a", Connect, Some(TS), at(0)), Verdict::Answer);
        for second in [0, 1, 20, 59] {
            assert_eq!(ledger.handle("a", Connect, Some(TS), at(second)), Verdict::Ignore(Ignored::DuplicateConnect));
        }
        assert_eq!(ledger.handle("b", Connect, Some(TS), at(1)), Verdict::Answer, "another call");
        assert_eq!(ledger.len(), 2);
    }

    #[test]
    fn a_terminate_ends_a_call_once() {
        let mut ledger = ledger();
        ledger.handle("a", Connect, Some(TS), at(0));
        assert_eq!(ledger.handle("a", Terminate, Some(TS + 60), at(60)), Verdict::End);
        assert_eq!(ledger.handle("a", Terminate, Some(TS + 60), at(61)), Verdict::Ignore(Ignored::DuplicateTerminate));
        assert_eq!(ledger.handle("a", Connect, Some(TS + 60), at(62)), Verdict::Ignore(Ignored::CallOver));
    }

    #[test]
    fn a_terminate_before_its_connect_means_the_connect_is_not_answered() {
        let mut ledger = ledger();
        // The user hung up within the second: same timestamp, terminate delivered first.
        assert_eq!(ledger.handle("a", Terminate, Some(TS), at(0)), Verdict::Ignore(Ignored::TerminateFirst));
        assert_eq!(ledger.handle("a", Connect, Some(TS), at(1)), Verdict::Ignore(Ignored::TerminatedBeforeConnect));
        assert_eq!(ledger.handle("a", Connect, None, at(2)), Verdict::Ignore(Ignored::TerminatedBeforeConnect));
    }

    #[test]
    fn a_connect_retried_after_its_terminate_is_stale() {
        let mut ledger = ledger();
        assert_eq!(ledger.handle("a", Terminate, Some(TS + 5), at(5)), Verdict::Ignore(Ignored::TerminateFirst));
        assert_eq!(ledger.handle("a", Connect, Some(TS), at(25)), Verdict::Ignore(Ignored::Stale));
    }

    #[test]
    fn events_older_than_one_already_applied_are_dropped() {
        let mut ledger = ledger();
        ledger.handle("a", Connect, Some(TS + 10), at(10));
        assert_eq!(ledger.handle("a", Terminate, Some(TS + 9), at(11)), Verdict::Ignore(Ignored::Stale));
        assert_eq!(ledger.handle("a", Connect, Some(TS + 9), at(11)), Verdict::Ignore(Ignored::Stale));
        // The call is still live: a current terminate ends it.
        assert_eq!(ledger.handle("a", Terminate, Some(TS + 30), at(30)), Verdict::End);
        assert_eq!(ledger.handle("a", Terminate, Some(TS + 29), at(31)), Verdict::Ignore(Ignored::Stale));
    }

    #[test]
    fn events_without_a_timestamp_are_never_stale() {
        let mut ledger = ledger();
        ledger.handle("a", Connect, Some(TS + 10), at(10));
        assert_eq!(ledger.handle("a", Terminate, None, at(11)), Verdict::End);
    }

    #[test]
    fn a_connect_stamped_too_long_ago_is_not_answered() {
        let mut ledger = ledger();
        let limit = LedgerConfig::default().max_connect_age.as_secs() as i64;
        assert_eq!(ledger.handle("old", Connect, Some(TS), at(limit + 1)), Verdict::Ignore(Ignored::TooOld));
        assert!(ledger.is_empty(), "nothing remembered for it");
        assert_eq!(ledger.handle("edge", Connect, Some(TS), at(limit)), Verdict::Answer);
    }

    #[test]
    fn after_the_gateway_ends_a_call_meta_terminate_and_late_connects_change_nothing() {
        let mut ledger = ledger();
        ledger.handle("a", Connect, Some(TS), at(0));
        ledger.handle_ended("a", at(3));
        assert_eq!(ledger.handle("a", Terminate, Some(TS + 3), at(4)), Verdict::Ignore(Ignored::EndedByGateway));
        assert_eq!(ledger.handle("a", Connect, Some(TS + 3), at(5)), Verdict::Ignore(Ignored::CallOver));
        // Ended before Meta's connect even arrived (e.g. declined on a duplicate path).
        ledger.handle_ended("b", at(5));
        assert_eq!(ledger.handle("b", Connect, Some(TS + 5), at(6)), Verdict::Ignore(Ignored::CallOver));
        // Meta ended first, then the gateway noticed: still a duplicate terminate later.
        ledger.handle("c", Connect, Some(TS), at(0));
        assert_eq!(ledger.handle("c", Terminate, Some(TS + 1), at(1)), Verdict::End);
        ledger.handle_ended("c", at(2));
        assert_eq!(ledger.handle("c", Terminate, Some(TS + 1), at(3)), Verdict::Ignore(Ignored::DuplicateTerminate));
    }

    #[test]
    fn other_events_are_ignored() {
        let mut ledger = ledger();
        assert_eq!(ledger.handle("a", Other, Some(TS), at(0)), Verdict::Ignore(Ignored::UnknownEvent));
        ledger.handle("a", Connect, Some(TS), at(0));
        assert_eq!(ledger.handle("a", Other, Some(TS), at(1)), Verdict::Ignore(Ignored::UnknownEvent));
    }

    #[test]
    fn calls_over_are_forgotten_after_forget_after_and_live_calls_after_live_ttl() {
        let config = LedgerConfig {
            forget_after: Duration::from_secs(600),
            max_connect_age: Duration::from_secs(120),
            live_ttl: Duration::from_secs(3600),
            capacity: 100,
        };
        let mut ledger = CallLedger::new(config);
        ledger.handle("over", Connect, Some(TS), at(0));
        ledger.handle("over", Terminate, Some(TS + 10), at(10));
        ledger.handle("live", Connect, Some(TS), at(0));
        ledger.handle("first", Terminate, Some(TS), at(0));
        assert_eq!(ledger.len(), 3);
        // Within forget_after: still known.
        assert_eq!(
            ledger.handle("over", Terminate, Some(TS + 10), at(599)),
            Verdict::Ignore(Ignored::DuplicateTerminate)
        );
        assert_eq!(ledger.len(), 3);
        // Past it: the calls that are over are gone, the live one stays; the late connect of a
        // forgotten call is too old to be answered.
        assert_eq!(ledger.handle("first", Connect, Some(TS), at(611)), Verdict::Ignore(Ignored::TooOld));
        assert_eq!(ledger.len(), 1);
        assert_eq!(ledger.handle("live", Terminate, Some(TS + 3000), at(3000)), Verdict::End);
        // A live call with no event at all is dropped after live_ttl.
        ledger.handle("silent", Connect, Some(TS + 3000), at(3000));
        ledger.handle("x", Other, None, at(3000 + 3601));
        assert!(ledger.is_empty(), "{ledger:?}");
    }

    #[test]
    fn a_state_change_moves_the_expiry_and_the_old_one_is_skipped() {
        let config = LedgerConfig {
            forget_after: Duration::from_secs(10),
            live_ttl: Duration::from_secs(100),
            ..LedgerConfig::default()
        };
        let mut ledger = CallLedger::new(config);
        ledger.handle("a", Connect, Some(TS), at(0));
        ledger.handle("a", Terminate, Some(TS), at(1));
        ledger.handle("x", Other, None, at(12));
        assert!(ledger.is_empty(), "gone at 1 + 10 s, not at 100 s");
        // And the other way round: an old, shorter expiry does not remove a record refreshed
        // with a later one.
        ledger.handle("b", Terminate, Some(TS + 20), at(20));
        ledger.handle_ended("b", at(25));
        ledger.handle("x", Other, None, at(31));
        assert_eq!(ledger.len(), 1, "kept until 25 + 10 s");
        ledger.handle("x", Other, None, at(35));
        assert!(ledger.is_empty());
    }

    #[test]
    fn memory_is_bounded_by_capacity() {
        let config = LedgerConfig { capacity: 3, ..LedgerConfig::default() };
        let mut ledger = CallLedger::new(config);
        for (n, id) in ["a", "b", "c", "d", "e"].iter().enumerate() {
            assert_eq!(ledger.handle(id, Connect, Some(TS), at(n as i64)), Verdict::Answer);
            assert!(ledger.len() <= 3);
        }
        // The earliest-expiring records went first.
        assert_eq!(ledger.handle("e", Connect, Some(TS), at(6)), Verdict::Ignore(Ignored::DuplicateConnect));
        assert_eq!(ledger.handle("a", Connect, Some(TS), at(6)), Verdict::Answer, "forgotten under pressure");
    }

    #[test]
    fn ignored_reasons_have_stable_names() {
        assert_eq!(Ignored::TerminatedBeforeConnect.as_str(), "terminated_before_connect");
        assert_eq!(Ignored::Stale.as_str(), "stale");
    }
}
