//! The rules that end or steer a call, as one pure state machine fed with call events and
//! the current time (spec part 5): the silence timeout with its "are you still there?"
//! check-in, the maximum duration, the end-call phrase, and the agent's `end_call` tool.
//! The session turns its decisions into speech and endings; nothing here does I/O.

use std::time::{Duration, Instant};

use crate::store::EndReason;

/// What the session should do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PolicyAction {
    /// Ask whether the caller is still there.
    CheckIn { text: String },
    /// End the call: say `farewell` (if any), let the agent's audio play out, hang up.
    End { reason: EndReason, farewell: Option<String>, notice: Option<String> },
}

/// The policy settings of a call (from the chatbot's call settings).
#[derive(Debug, Clone)]
pub struct PolicyConfig {
    /// Caller silence before the check-in (30–300 s).
    pub silence_timeout: Duration,
    /// Further silence after the check-in before hanging up.
    pub check_in_grace: Duration,
    /// Longest call.
    pub max_duration: Duration,
    /// Phrase that ends the call when the caller says it (empty: off).
    pub end_phrase: String,
}

impl PolicyConfig {
    /// After the check-in the caller gets a third of the timeout (at most 30 s) to answer.
    pub fn new(silence_timeout: Duration, max_duration: Duration, end_phrase: &str) -> Self {
        let grace = (silence_timeout / 3).clamp(Duration::from_secs(1), Duration::from_secs(30));
        Self { silence_timeout, check_in_grace: grace, max_duration, end_phrase: end_phrase.trim().to_owned() }
    }
}

/// What is said at each ending.
pub mod lines {
    pub const CHECK_IN: &str = "Are you still there?";
    pub const SILENCE_FAREWELL: &str =
        "It seems you may have stepped away, so I'll end the call now. Thank you for calling, goodbye!";
    pub const SILENCE_NOTICE: &str = "Call ended due to inactivity";
    pub const MAX_DURATION_FAREWELL: &str =
        "We've reached the maximum length for this call, so I need to end it now. Thank you for calling, goodbye!";
    pub const MAX_DURATION_NOTICE: &str = "Call ended: maximum call duration reached";
    pub const END_PHRASE_FAREWELL: &str = "Thank you for calling. Goodbye!";
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Silence {
    /// Someone is talking: no timer.
    Talking,
    /// Quiet since the instant; the check-in comes at `since + timeout`.
    Quiet { since: Instant },
    /// Checked in at the instant; the call ends at `at + grace` unless the caller speaks.
    CheckedIn { at: Instant },
}

/// The policies of one call.
#[derive(Debug)]
pub struct CallPolicies {
    config: PolicyConfig,
    started: Option<Instant>,
    silence: Silence,
    caller_speaking: bool,
    agent_speaking: bool,
    ended: bool,
}

impl CallPolicies {
    /// Policies that start counting when the call becomes active.
    pub fn new(config: PolicyConfig) -> Self {
        Self {
            config,
            started: None,
            silence: Silence::Talking,
            caller_speaking: false,
            agent_speaking: false,
            ended: false,
        }
    }

    /// The call became active.
    pub fn handle_active(&mut self, now: Instant) {
        self.started = Some(now);
        self.silence = Silence::Quiet { since: now };
    }

    /// The caller started or stopped speaking.
    pub fn handle_caller_speaking(&mut self, speaking: bool, now: Instant) {
        self.caller_speaking = speaking;
        self.update_silence(now, true);
    }

    /// The agent started or stopped being audible.
    pub fn handle_agent_speaking(&mut self, speaking: bool, now: Instant) {
        self.agent_speaking = speaking;
        self.update_silence(now, false);
    }

    fn update_silence(&mut self, now: Instant, caller_event: bool) {
        if self.started.is_none() {
            return;
        }
        if self.caller_speaking || self.agent_speaking {
            // A check-in's own audio must not count as the caller answering.
            if caller_event || !matches!(self.silence, Silence::CheckedIn { .. }) {
                self.silence = Silence::Talking;
            }
        } else if self.silence == Silence::Talking {
            self.silence = Silence::Quiet { since: now };
        }
    }

    /// A final line of the caller's transcript.
    pub fn handle_caller_line(&mut self, text: &str) -> Option<PolicyAction> {
        if self.ended || self.config.end_phrase.is_empty() || !contains_phrase(text, &self.config.end_phrase) {
            return None;
        }
        self.ended = true;
        Some(PolicyAction::End {
            reason: EndReason::EndPhrase,
            farewell: Some(lines::END_PHRASE_FAREWELL.to_owned()),
            notice: None,
        })
    }

    /// The agent called its `end_call` tool (it says goodbye itself).
    pub fn handle_end_call_tool(&mut self) -> Option<PolicyAction> {
        if self.ended {
            return None;
        }
        self.ended = true;
        Some(PolicyAction::End { reason: EndReason::EndPhrase, farewell: None, notice: None })
    }

    /// Timers: call every frame (or at least every second).
    pub fn poll(&mut self, now: Instant) -> Option<PolicyAction> {
        let started = self.started?;
        if self.ended {
            return None;
        }
        if now.duration_since(started) >= self.config.max_duration {
            self.ended = true;
            return Some(PolicyAction::End {
                reason: EndReason::MaxDuration,
                farewell: Some(lines::MAX_DURATION_FAREWELL.to_owned()),
                notice: Some(lines::MAX_DURATION_NOTICE.to_owned()),
            });
        }
        match self.silence {
            Silence::Quiet { since } if now.duration_since(since) >= self.config.silence_timeout => {
                self.silence = Silence::CheckedIn { at: now };
                Some(PolicyAction::CheckIn { text: lines::CHECK_IN.to_owned() })
            }
            Silence::CheckedIn { at }
                if !self.agent_speaking && now.duration_since(at) >= self.config.check_in_grace =>
            {
                self.ended = true;
                Some(PolicyAction::End {
                    reason: EndReason::SilenceTimeout,
                    farewell: Some(lines::SILENCE_FAREWELL.to_owned()),
                    notice: Some(lines::SILENCE_NOTICE.to_owned()),
                })
            }
            _ => None,
        }
    }
}

/// Whether `text` contains `phrase` as whole words, ignoring case and punctuation
/// ("Okay, goodbye!" contains "goodbye"; "goodbyes" does not).
pub fn contains_phrase(text: &str, phrase: &str) -> bool {
    let words = |s: &str| -> Vec<String> {
        s.split(|c: char| !c.is_alphanumeric() && c != '\'').filter(|w| !w.is_empty()).map(str::to_lowercase).collect()
    };
    let (text, phrase) = (words(text), words(phrase));
    !phrase.is_empty() && text.windows(phrase.len()).any(|w| w == phrase.as_slice())
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: Duration = Duration::from_secs(1);

    fn policies() -> (CallPolicies, Instant) {
        let t0 = Instant::now();
        let mut p = CallPolicies::new(PolicyConfig::new(30 * S, 600 * S, "goodbye"));
        p.handle_active(t0);
        (p, t0)
    }

    #[test]
    fn silence_brings_a_check_in_then_the_end() {
        let (mut p, t0) = policies();
        assert_eq!(p.poll(t0 + 29 * S), None);
        assert_eq!(p.poll(t0 + 30 * S), Some(PolicyAction::CheckIn { text: lines::CHECK_IN.into() }));
        // The check-in's own audio does not count as an answer.
        p.handle_agent_speaking(true, t0 + 30 * S);
        p.handle_agent_speaking(false, t0 + 32 * S);
        assert_eq!(p.poll(t0 + 39 * S), None, "a grace period follows the check-in");
        let Some(PolicyAction::End { reason, notice, .. }) = p.poll(t0 + 40 * S) else { panic!("ends") };
        assert_eq!(reason, EndReason::SilenceTimeout);
        assert_eq!(notice.as_deref(), Some("Call ended due to inactivity"));
        assert_eq!(p.poll(t0 + 100 * S), None, "ends once");
    }

    #[test]
    fn the_caller_answering_the_check_in_resets_the_timer() {
        let (mut p, t0) = policies();
        p.poll(t0 + 30 * S);
        p.handle_caller_speaking(true, t0 + 33 * S);
        p.handle_caller_speaking(false, t0 + 34 * S);
        assert_eq!(p.poll(t0 + 50 * S), None);
        assert!(matches!(p.poll(t0 + 64 * S), Some(PolicyAction::CheckIn { .. })));
    }

    #[test]
    fn silence_counts_only_while_nobody_talks() {
        let (mut p, t0) = policies();
        p.handle_caller_speaking(true, t0 + 5 * S);
        p.handle_caller_speaking(false, t0 + 6 * S);
        p.handle_agent_speaking(true, t0 + 7 * S);
        assert_eq!(p.poll(t0 + 40 * S), None, "the agent is talking");
        p.handle_agent_speaking(false, t0 + 45 * S);
        assert_eq!(p.poll(t0 + 74 * S), None);
        assert!(matches!(p.poll(t0 + 75 * S), Some(PolicyAction::CheckIn { .. })));
    }

    #[test]
    fn the_maximum_duration_ends_the_call_whatever_happens() {
        let (mut p, t0) = policies();
        p.handle_caller_speaking(true, t0 + S);
        let Some(PolicyAction::End { reason, farewell, .. }) = p.poll(t0 + 600 * S) else { panic!() };
        assert_eq!(reason, EndReason::MaxDuration);
        assert!(farewell.is_some());
    }

    #[test]
    fn the_end_phrase_ends_the_call_with_a_goodbye() {
        let (mut p, _) = policies();
        assert_eq!(p.handle_caller_line("Thanks, that's all I needed"), None);
        let Some(PolicyAction::End { reason, farewell, .. }) = p.handle_caller_line("Okay, Goodbye!") else { panic!() };
        assert_eq!((reason, farewell.as_deref()), (EndReason::EndPhrase, Some(lines::END_PHRASE_FAREWELL)));
        assert_eq!(p.handle_caller_line("goodbye"), None, "once");
    }

    #[test]
    fn an_empty_end_phrase_is_off() {
        let mut p = CallPolicies::new(PolicyConfig::new(30 * S, 600 * S, ""));
        p.handle_active(Instant::now());
        assert_eq!(p.handle_caller_line("goodbye"), None);
    }

    #[test]
    fn phrases_match_whole_words_ignoring_case_and_punctuation() {
        assert!(contains_phrase("OK. Good-bye, bye now", "bye now"));
        assert!(contains_phrase("Alright, GOODBYE.", "goodbye"));
        assert!(!contains_phrase("goodbyes are hard", "goodbye"));
        assert!(!contains_phrase("anything", ""));
    }

    #[test]
    fn nothing_runs_before_the_call_is_active() {
        let mut p = CallPolicies::new(PolicyConfig::new(30 * S, 60 * S, "goodbye"));
        assert_eq!(p.poll(Instant::now() + 1000 * S), None);
    }

    #[test]
    fn the_end_call_tool_ends_without_a_farewell_of_ours() {
        let (mut p, _) = policies();
        assert_eq!(
            p.handle_end_call_tool(),
            Some(PolicyAction::End { reason: EndReason::EndPhrase, farewell: None, notice: None })
        );
    }
}
