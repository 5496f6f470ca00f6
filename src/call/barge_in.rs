//! Barge-in bookkeeping: when the caller talks over the agent, stop the agent's audio.
//!
//! Two signals arrive, in this order: the gateway's own energy VAD (a frame or three after
//! the caller starts) and the provider's VAD (`speech_started`, a few hundred ms later,
//! but it knows speech from noise). The local hint *pauses* playout at once, so the caller
//! hears the agent stop immediately; the provider's confirmation *interrupts*: the queued
//! audio is dropped and the agent's item truncated at what was actually heard. A hint
//! the provider does not confirm (a cough, a door) resumes playout after a short wait.
//!
//! The provider can only confirm what it is still generating: once it has sent the whole
//! answer (Gemini sends audio far faster than real time), it has nothing to interrupt and
//! no reason to say anything. Then the gateway's own VAD confirms by itself when the
//! caller keeps talking for [`SUSTAINED_SPEECH`]. The same rule holds for every provider.

use std::time::{Duration, Instant};

/// Caller speech, heard by the gateway's VAD without a pause, that confirms a barge-in
/// on its own when the provider has nothing left to interrupt: long enough that a cough
/// or a door does not cut the agent off, short against the provider's confirmation time.
pub const SUSTAINED_SPEECH: Duration = Duration::from_millis(400);

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

    /// Called every frame. `caller_speaking_since` is when the gateway's VAD last heard the
    /// caller start (None while they are silent); `provider_generating` whether the provider
    /// is still producing the audio being held. A pause the provider cannot confirm because
    /// it has finished generating is confirmed by sustained caller speech; an unconfirmed
    /// pause ends after the confirmation window.
    pub fn poll(
        &mut self,
        now: Instant,
        caller_speaking_since: Option<Instant>,
        provider_generating: bool,
    ) -> BargeInAction {
        let Some(since) = self.paused_since else { return BargeInAction::None };
        let sustained =
            caller_speaking_since.is_some_and(|start| now.saturating_duration_since(start) >= SUSTAINED_SPEECH);
        if !provider_generating && sustained {
            self.paused_since = None;
            return BargeInAction::Interrupt;
        }
        if now.duration_since(since) >= self.confirm_within {
            self.paused_since = None;
            return BargeInAction::Resume;
        }
        BargeInAction::None
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
        assert_eq!(b.poll(t0 + Duration::from_millis(100), Some(t0), true), BargeInAction::None);
        assert_eq!(
            b.poll(t0 + WAIT, Some(t0), true),
            BargeInAction::Resume,
            "the provider is generating: it would confirm"
        );
        assert!(!b.is_paused());
    }

    #[test]
    fn sustained_speech_confirms_when_the_provider_has_nothing_left_to_interrupt() {
        let t0 = Instant::now();
        let mut b = BargeIn::new(true, Duration::from_millis(1500));
        b.handle_local_speech(true, t0);
        assert_eq!(b.poll(t0 + Duration::from_millis(200), Some(t0), false), BargeInAction::None, "not sustained yet");
        assert_eq!(b.poll(t0 + SUSTAINED_SPEECH, Some(t0), false), BargeInAction::Interrupt);
        assert!(!b.is_paused());
    }

    #[test]
    fn a_cough_resumes_even_when_the_provider_is_done() {
        let t0 = Instant::now();
        let mut b = BargeIn::new(true, WAIT);
        b.handle_local_speech(true, t0);
        // The caller stopped after a short sound: the VAD no longer hears them.
        assert_eq!(b.poll(t0 + Duration::from_millis(300), None, false), BargeInAction::None);
        assert_eq!(b.poll(t0 + WAIT, None, false), BargeInAction::Resume);
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
