//! Barge-in bookkeeping: when the caller talks over the agent, stop the agent's audio.
//!
//! Two signals arrive, in this order: the gateway's own energy VAD (a frame or three after
//! the caller starts) and the provider's VAD (`speech_started`, a few hundred ms later,
//! but it knows speech from noise). The local hint *pauses* playout at once, so the caller
//! hears the agent stop immediately; the provider's confirmation *interrupts*: the queued
//! audio is dropped and the agent's item truncated at what was actually played. A hint
//! the provider does not confirm (a cough, a door) resumes playout after a short wait.

use std::time::{Duration, Instant};

/// What the call session should do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BargeInAction {
    /// Nothing.
    None,
    /// Hold playout (send silence, keep the queue).
    Pause,
    /// Resume held playout.
    Resume,
    /// Drop the queued agent audio and truncate the item at the played position.
    Interrupt,
}

/// The barge-in state of one call.
#[derive(Debug)]
pub struct BargeIn {
    allowed: bool,
    confirm_within: Duration,
    paused_since: Option<Instant>,
}

impl BargeIn {
    /// `allowed` is the chatbot's `allowInterruption`; a local hint not confirmed by the
    /// provider within `confirm_within` is dropped.
    pub fn new(allowed: bool, confirm_within: Duration) -> Self {
        Self { allowed, confirm_within, paused_since: None }
    }

    /// Whether playout is held.
    pub fn is_paused(&self) -> bool {
        self.paused_since.is_some()
    }

    /// The local VAD heard the caller start speaking.
    pub fn handle_local_speech(&mut self, agent_audible: bool, now: Instant) -> BargeInAction {
        if !self.allowed || !agent_audible || self.paused_since.is_some() {
            return BargeInAction::None;
        }
        self.paused_since = Some(now);
        BargeInAction::Pause
    }

    /// The provider's VAD heard the caller start speaking.
    pub fn handle_provider_speech(&mut self, agent_audible: bool) -> BargeInAction {
        let was_paused = self.paused_since.take().is_some();
        if self.allowed && (agent_audible || was_paused) { BargeInAction::Interrupt } else { BargeInAction::None }
    }

    /// The provider flushed its own output (Gemini `interrupted`): whatever is queued is stale.
    pub fn handle_provider_interrupted(&mut self) -> BargeInAction {
        self.paused_since = None;
        BargeInAction::Interrupt
    }

    /// Called every frame: an unconfirmed pause ends.
    pub fn poll(&mut self, now: Instant) -> BargeInAction {
        match self.paused_since {
            Some(since) if now.duration_since(since) >= self.confirm_within => {
                self.paused_since = None;
                BargeInAction::Resume
            }
            _ => BargeInAction::None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const WAIT: Duration = Duration::from_millis(600);

    #[test]
    fn a_local_hint_pauses_and_the_provider_confirms_the_interrupt() {
        let t0 = Instant::now();
        let mut b = BargeIn::new(true, WAIT);
        assert_eq!(b.handle_local_speech(true, t0), BargeInAction::Pause);
        assert!(b.is_paused());
        assert_eq!(b.handle_local_speech(true, t0), BargeInAction::None, "one pause at a time");
        assert_eq!(b.handle_provider_speech(true), BargeInAction::Interrupt);
        assert!(!b.is_paused());
    }

    #[test]
    fn an_unconfirmed_hint_resumes_playout() {
        let t0 = Instant::now();
        let mut b = BargeIn::new(true, WAIT);
        b.handle_local_speech(true, t0);
        assert_eq!(b.poll(t0 + Duration::from_millis(100)), BargeInAction::None);
        assert_eq!(b.poll(t0 + WAIT), BargeInAction::Resume);
        assert!(!b.is_paused());
    }

    #[test]
    fn the_provider_alone_interrupts_audible_agent_audio() {
        let mut b = BargeIn::new(true, WAIT);
        assert_eq!(b.handle_provider_speech(true), BargeInAction::Interrupt);
        assert_eq!(b.handle_provider_speech(false), BargeInAction::None, "nothing to interrupt");
    }

    #[test]
    fn nothing_interrupts_when_interruption_is_not_allowed() {
        let t0 = Instant::now();
        let mut b = BargeIn::new(false, WAIT);
        assert_eq!(b.handle_local_speech(true, t0), BargeInAction::None);
        assert_eq!(b.handle_provider_speech(true), BargeInAction::None);
    }

    #[test]
    fn speech_while_the_agent_is_silent_is_just_a_turn() {
        let mut b = BargeIn::new(true, WAIT);
        assert_eq!(b.handle_local_speech(false, Instant::now()), BargeInAction::None);
    }
}
