//! Escalation to a human, as the call session decides it: a pure state machine with the
//! time passed in. The I/O (the escalation row, the agent bus, the ticket) is the
//! session's, through `crate::escalation::Escalations`.
//!
//! ```text
//! Ai ──escalate_to_human──▶ Waiting ──an agent accepts──▶ Joining ──agent media up──▶ WithHuman
//!  ▲                          │  │                           │                          │
//!  │                 nobody / deadline               the agent never joins              │
//!  │                          ▼  ▼                           ▼                          │
//!  │                        TakingMessage ◀──────────────────┘                          │
//!  └──────────────────────────────────────── hand-back ─────────────────────────────────┘
//! ```
//!
//! While the caller waits (`Waiting`, `Joining`) the AI neither hears nor answers them: the
//! caller hears the hold message, then silence with a short "still connecting you" line
//! every [`REMINDER_EVERY`]. `WithHuman`: caller and agent talk; the AI only transcribes.
//! `TakingMessage` is the AI again, now allowed to take a message (`take_message`); after
//! a hand-back the AI is simply back (`Ai`), and may escalate again.

use std::time::{Duration, Instant};

/// How often a caller on hold hears that they are still being connected.
pub const REMINDER_EVERY: Duration = Duration::from_secs(20);
/// What the caller hears every [`REMINDER_EVERY`] on hold.
pub const REMINDER: &str = "Thank you for holding. I'm still connecting you with a team member.";
/// What the AI says when nobody takes the call.
pub const BUSY: &str = "All our agents are busy. Can I take a message?";

/// Where the call is in a hand-over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// The AI is talking with the caller; no escalation (or it ended).
    Ai,
    /// Offered to the company's agents until `deadline`.
    Waiting { deadline: Instant, next_reminder: Instant },
    /// An agent accepted; their media must join by `deadline`.
    Joining { deadline: Instant, next_reminder: Instant },
    /// A human agent is on the call; the AI neither speaks nor answers.
    WithHuman,
    /// Nobody came: the AI is back and may take a message.
    TakingMessage,
}

/// What the session should do now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HandoverAction {
    /// Say this to the caller on hold.
    Remind(&'static str),
    /// The wait is over without an agent: close the escalation, let the AI say [`BUSY`].
    GiveUp,
}

/// Why an escalation cannot start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// One is already in progress.
    AlreadyWaiting,
    /// An earlier one found nobody; the AI takes a message instead.
    NobodyCame,
}

/// The hand-over state of one call.
#[derive(Debug, Clone)]
pub struct Handover {
    stage: Stage,
}

impl Default for Handover {
    fn default() -> Self {
        Self { stage: Stage::Ai }
    }
}

impl Handover {
    pub fn stage(&self) -> Stage {
        self.stage
    }

    /// Whether the AI hears and answers the caller.
    pub fn ai_on_call(&self) -> bool {
        matches!(self.stage, Stage::Ai | Stage::TakingMessage)
    }

    /// Whether `take_message` may be used.
    pub fn may_take_message(&self) -> bool {
        self.stage == Stage::TakingMessage
    }

    /// The model asked for a person at `now`; agents have `timeout` to accept.
    pub fn request(&mut self, now: Instant, timeout: Duration) -> Result<(), Refusal> {
        match self.stage {
            Stage::Ai => {
                self.stage = Stage::Waiting { deadline: now + timeout, next_reminder: now + REMINDER_EVERY };
                Ok(())
            }
            Stage::Waiting { .. } | Stage::Joining { .. } | Stage::WithHuman => Err(Refusal::AlreadyWaiting),
            Stage::TakingMessage => Err(Refusal::NobodyCame),
        }
    }

    /// An agent accepted at `now`; their media has until `join_within` to arrive.
    /// False when the call is no longer waiting (the acceptance is too late).
    pub fn accepted(&mut self, now: Instant, join_within: Duration) -> bool {
        match self.stage {
            Stage::Waiting { next_reminder, .. } => {
                self.stage = Stage::Joining { deadline: now + join_within, next_reminder };
                true
            }
            _ => false,
        }
    }

    /// Agents may accept until `until` (the stored offer's deadline): a wait that would
    /// have ended earlier lasts until then.
    pub fn extend_wait(&mut self, until: Instant) {
        if let Stage::Waiting { deadline, .. } = &mut self.stage {
            *deadline = (*deadline).max(until);
        }
    }

    /// The accepted agent's media connected at the call: caller and agent talk now. False
    /// when the call is not waiting for that agent (the wait ended first).
    pub fn joined(&mut self) -> bool {
        if matches!(self.stage, Stage::Joining { .. }) {
            self.stage = Stage::WithHuman;
            return true;
        }
        false
    }

    /// Whether a human agent is on the call.
    pub fn with_human(&self) -> bool {
        self.stage == Stage::WithHuman
    }

    /// The agent handed the caller back to the AI (or left the call): the AI is back.
    pub fn handed_back(&mut self) {
        if self.stage == Stage::WithHuman {
            self.stage = Stage::Ai;
        }
    }

    /// The wait ended without an agent (nobody available, the deadline, an agent who never
    /// joined): the AI takes a message.
    pub fn gave_up(&mut self) {
        if matches!(self.stage, Stage::Waiting { .. } | Stage::Joining { .. }) {
            self.stage = Stage::TakingMessage;
        }
    }

    /// What is due at `now`.
    pub fn poll(&mut self, now: Instant) -> Option<HandoverAction> {
        let (Stage::Waiting { deadline, next_reminder } | Stage::Joining { deadline, next_reminder }) = &mut self.stage
        else {
            return None;
        };
        if now >= *deadline {
            return Some(HandoverAction::GiveUp);
        }
        if now >= *next_reminder {
            *next_reminder = now + REMINDER_EVERY;
            return Some(HandoverAction::Remind(REMINDER));
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TIMEOUT: Duration = Duration::from_secs(45);

    #[test]
    fn a_request_puts_the_caller_on_hold_and_the_ai_off_the_call() {
        let t0 = Instant::now();
        let mut h = Handover::default();
        assert!(h.ai_on_call());
        assert_eq!(h.request(t0, TIMEOUT), Ok(()));
        assert!(!h.ai_on_call());
        assert!(!h.may_take_message());
        assert_eq!(h.request(t0, TIMEOUT), Err(Refusal::AlreadyWaiting));
    }

    #[test]
    fn the_caller_on_hold_is_reminded_every_twenty_seconds_until_the_deadline() {
        let t0 = Instant::now();
        let mut h = Handover::default();
        h.request(t0, TIMEOUT).unwrap();
        assert_eq!(h.poll(t0 + Duration::from_secs(19)), None);
        assert_eq!(h.poll(t0 + REMINDER_EVERY), Some(HandoverAction::Remind(REMINDER)));
        assert_eq!(h.poll(t0 + Duration::from_secs(21)), None, "once per period");
        assert_eq!(h.poll(t0 + Duration::from_secs(40)), Some(HandoverAction::Remind(REMINDER)));
        assert_eq!(h.poll(t0 + TIMEOUT), Some(HandoverAction::GiveUp));
    }

    #[test]
    fn nobody_coming_hands_the_call_back_to_the_ai_to_take_a_message() {
        let t0 = Instant::now();
        let mut h = Handover::default();
        h.request(t0, TIMEOUT).unwrap();
        h.gave_up();
        assert_eq!(h.stage(), Stage::TakingMessage);
        assert!(h.ai_on_call() && h.may_take_message());
        assert_eq!(h.poll(t0 + TIMEOUT * 2), None, "nothing is due any more");
        assert_eq!(h.request(t0, TIMEOUT), Err(Refusal::NobodyCame));
        assert!(!h.accepted(t0, TIMEOUT), "a late acceptance changes nothing");
    }

    #[test]
    fn the_wait_lasts_until_the_stored_offer_expires() {
        let t0 = Instant::now();
        let mut h = Handover::default();
        h.request(t0, TIMEOUT).unwrap();
        h.extend_wait(t0 + TIMEOUT + Duration::from_millis(300));
        assert_eq!(h.poll(t0 + TIMEOUT), Some(HandoverAction::Remind(REMINDER)), "not over yet");
        assert_eq!(h.poll(t0 + TIMEOUT + Duration::from_millis(300)), Some(HandoverAction::GiveUp));
        h.gave_up();
        h.extend_wait(t0 + TIMEOUT * 3);
        assert_eq!(h.stage(), Stage::TakingMessage, "extending after the wait changes nothing");
    }

    #[test]
    fn an_agent_who_accepts_but_never_joins_ends_the_wait_too() {
        let t0 = Instant::now();
        let mut h = Handover::default();
        h.request(t0, TIMEOUT).unwrap();
        assert!(h.accepted(t0 + Duration::from_secs(5), Duration::from_secs(120)));
        assert!(matches!(h.stage(), Stage::Joining { .. }));
        assert!(!h.ai_on_call());
        assert_eq!(
            h.poll(t0 + TIMEOUT + Duration::from_secs(1)),
            Some(HandoverAction::Remind(REMINDER)),
            "the offer's deadline no longer applies"
        );
        assert_eq!(h.poll(t0 + Duration::from_secs(125)), Some(HandoverAction::GiveUp));
    }

    #[test]
    fn an_agent_who_joins_takes_the_call_until_they_hand_it_back() {
        let t0 = Instant::now();
        let mut h = Handover::default();
        h.request(t0, TIMEOUT).unwrap();
        assert!(!h.joined(), "nobody accepted yet");
        assert!(h.accepted(t0 + Duration::from_secs(5), Duration::from_secs(120)));
        assert!(h.joined());
        assert!(h.with_human() && !h.ai_on_call() && !h.may_take_message());
        assert_eq!(h.poll(t0 + Duration::from_secs(600)), None, "no reminders, no deadline with a person on");
        assert_eq!(h.request(t0, TIMEOUT), Err(Refusal::AlreadyWaiting));
        h.gave_up();
        assert!(h.with_human(), "giving up is only for a wait");
        h.handed_back();
        assert_eq!(h.stage(), Stage::Ai);
        assert!(h.ai_on_call());
        assert_eq!(h.request(t0, TIMEOUT), Ok(()), "the caller may ask for a person again");
    }

    #[test]
    fn a_wait_that_ended_is_not_joined_late() {
        let t0 = Instant::now();
        let mut h = Handover::default();
        h.request(t0, TIMEOUT).unwrap();
        h.accepted(t0, Duration::from_secs(120));
        h.gave_up();
        assert!(!h.joined());
        assert_eq!(h.stage(), Stage::TakingMessage);
    }
}
