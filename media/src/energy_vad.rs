//! Energy voice-activity detection with hysteresis and hangover.
//!
//! Used locally for barge-in (stop playout the moment the caller talks over the
//! agent, before the provider's own VAD reacts) and for silence timers. It looks
//! only at frame energy, so it is cheap and predictable; the provider's model
//! VAD remains the authority on turns.

use crate::FRAME_MS;
use crate::level_meter::dbfs;

/// Thresholds and timings of [`EnergyVad`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct VadConfig {
    /// A frame at or above this level (dBFS) counts towards speech starting.
    pub start_threshold_dbfs: f32,
    /// While speaking, a frame below this level counts towards speech stopping.
    /// Lower than the start threshold: the gap is the hysteresis that keeps a
    /// voice hovering near one threshold from toggling.
    pub stop_threshold_dbfs: f32,
    /// Consecutive loud time needed before `SpeechStarted` (clicks and pops are
    /// shorter than this).
    pub min_speech_ms: u32,
    /// Consecutive quiet time needed before `SpeechStopped` (pauses between
    /// words are shorter than this).
    pub hangover_ms: u32,
}

impl VadConfig {
    /// Maps the product's `vadThreshold` (0.0 = most sensitive, 1.0 = least
    /// sensitive, default 0.5) to energy thresholds.
    ///
    /// The start threshold moves linearly from -55 dBFS (0.0: a quiet talker
    /// far from the microphone still counts) through -40 dBFS (0.5: normal
    /// speech counts, a typical room or line noise floor of -50..-60 dBFS does
    /// not) to -25 dBFS (1.0: only close, loud speech counts). The stop
    /// threshold sits 6 dB lower. Speech must last 60 ms to start and silence
    /// 300 ms to stop. Values outside 0..=1 are clamped; NaN means the default.
    ///
    /// | threshold | start dBFS | stop dBFS |
    /// |-----------|------------|-----------|
    /// | 0.0       | -55        | -61       |
    /// | 0.5       | -40        | -46       |
    /// | 1.0       | -25        | -31       |
    pub fn from_threshold(threshold: f32) -> Self {
        let t = if threshold.is_nan() { 0.5 } else { threshold.clamp(0.0, 1.0) };
        let start = -55.0 + 30.0 * t;
        VadConfig { start_threshold_dbfs: start, stop_threshold_dbfs: start - 6.0, min_speech_ms: 60, hangover_ms: 300 }
    }
}

impl Default for VadConfig {
    fn default() -> Self {
        Self::from_threshold(0.5)
    }
}

/// A change of speaking state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VadEvent {
    /// Speech began (after `min_speech_ms` of loud frames).
    SpeechStarted,
    /// Speech ended (after `hangover_ms` of quiet frames).
    SpeechStopped,
}

/// Energy VAD fed one 20 ms frame at a time (at any sample rate).
#[derive(Debug, Clone)]
pub struct EnergyVad {
    config: VadConfig,
    start_frames: u32,
    hangover_frames: u32,
    speaking: bool,
    /// Consecutive frames at or above the start threshold while not speaking.
    loud_run: u32,
    /// Consecutive frames below the stop threshold while speaking.
    quiet_run: u32,
    last_dbfs: f32,
}

impl EnergyVad {
    /// Builds a VAD. A stop threshold above the start threshold is lowered to
    /// the start threshold (no hysteresis rather than an inverted one).
    pub fn new(config: VadConfig) -> Self {
        let mut config = config;
        if config.stop_threshold_dbfs > config.start_threshold_dbfs {
            config.stop_threshold_dbfs = config.start_threshold_dbfs;
        }
        EnergyVad {
            start_frames: config.min_speech_ms.div_ceil(FRAME_MS).max(1),
            hangover_frames: config.hangover_ms.div_ceil(FRAME_MS).max(1),
            config,
            speaking: false,
            loud_run: 0,
            quiet_run: 0,
            last_dbfs: crate::MIN_DBFS,
        }
    }

    /// Feeds one 20 ms frame; returns an event when the speaking state changes.
    pub fn process(&mut self, frame: &[i16]) -> Option<VadEvent> {
        self.process_level(dbfs(frame))
    }

    /// Feeds the level (dBFS) of one 20 ms frame measured elsewhere (e.g. straight from
    /// G.711 codes with [`crate::ulaw_dbfs`]); returns an event when the speaking state
    /// changes.
    pub fn process_level(&mut self, level: f32) -> Option<VadEvent> {
        self.last_dbfs = level;
        if self.speaking {
            if level < self.config.stop_threshold_dbfs {
                self.quiet_run += 1;
                if self.quiet_run >= self.hangover_frames {
                    self.speaking = false;
                    self.loud_run = 0;
                    return Some(VadEvent::SpeechStopped);
                }
            } else {
                self.quiet_run = 0;
            }
        } else if level >= self.config.start_threshold_dbfs {
            self.loud_run += 1;
            if self.loud_run >= self.start_frames {
                self.speaking = true;
                self.quiet_run = 0;
                return Some(VadEvent::SpeechStarted);
            }
        } else {
            self.loud_run = 0;
        }
        None
    }

    /// Whether speech is in progress.
    pub fn is_speaking(&self) -> bool {
        self.speaking
    }

    /// Level of the last frame processed, in dBFS.
    pub fn last_dbfs(&self) -> f32 {
        self.last_dbfs
    }

    /// The configuration in force.
    pub fn config(&self) -> &VadConfig {
        &self.config
    }

    /// Forgets the speaking state (e.g. when the stream restarts).
    pub fn reset(&mut self) {
        self.speaking = false;
        self.loud_run = 0;
        self.quiet_run = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::SampleRate;
    use crate::test_signal::{sine, speech_like, white_noise};

    fn frames(signal: &[i16], rate: SampleRate) -> impl Iterator<Item = &[i16]> {
        signal.chunks_exact(rate.samples_per_frame())
    }

    #[test]
    fn vad_threshold_maps_linearly_to_dbfs() {
        assert_eq!(VadConfig::from_threshold(0.0).start_threshold_dbfs, -55.0);
        assert_eq!(VadConfig::from_threshold(0.5).start_threshold_dbfs, -40.0);
        assert_eq!(VadConfig::from_threshold(1.0).start_threshold_dbfs, -25.0);
        assert_eq!(VadConfig::from_threshold(7.0), VadConfig::from_threshold(1.0));
        assert_eq!(VadConfig::from_threshold(f32::NAN), VadConfig::default());
        let c = VadConfig::default();
        assert_eq!(c.stop_threshold_dbfs, c.start_threshold_dbfs - 6.0);
    }

    #[test]
    fn vad_starts_after_min_speech_and_stops_after_hangover() {
        let rate = SampleRate::Hz16000;
        let mut vad = EnergyVad::new(VadConfig::default());
        let tone = sine(rate, 300.0, 0.1, rate.samples_per_frame()); // about -23 dBFS
        let silence = vec![0i16; rate.samples_per_frame()];
        assert_eq!(vad.process(&tone), None);
        assert_eq!(vad.process(&tone), None);
        assert_eq!(vad.process(&tone), Some(VadEvent::SpeechStarted));
        assert!(vad.is_speaking());
        for _ in 0..14 {
            assert_eq!(vad.process(&silence), None);
        }
        assert_eq!(vad.process(&silence), Some(VadEvent::SpeechStopped));
        assert!(!vad.is_speaking());
    }

    #[test]
    fn vad_ignores_a_click_shorter_than_min_speech() {
        let rate = SampleRate::Hz8000;
        let mut vad = EnergyVad::new(VadConfig::default());
        let loud = sine(rate, 1_000.0, 0.5, rate.samples_per_frame());
        let silence = vec![0i16; rate.samples_per_frame()];
        for _ in 0..10 {
            assert_eq!(vad.process(&loud), None);
            assert_eq!(vad.process(&silence), None);
        }
    }

    #[test]
    fn vad_pause_shorter_than_hangover_keeps_speaking() {
        let rate = SampleRate::Hz8000;
        let mut vad = EnergyVad::new(VadConfig::default());
        let loud = sine(rate, 200.0, 0.3, rate.samples_per_frame());
        let silence = vec![0i16; rate.samples_per_frame()];
        let events: Vec<_> = std::iter::repeat_n(&loud, 5)
            .chain(std::iter::repeat_n(&silence, 10))
            .chain(std::iter::repeat_n(&loud, 5))
            .filter_map(|f| vad.process(f))
            .collect();
        assert_eq!(events, [VadEvent::SpeechStarted]);
    }

    #[test]
    fn vad_hysteresis_keeps_speech_between_thresholds() {
        let rate = SampleRate::Hz16000;
        let mut vad = EnergyVad::new(VadConfig::default()); // start -40, stop -46
        let loud = sine(rate, 300.0, 0.05, rate.samples_per_frame()); // about -29 dBFS
        let middle = sine(rate, 300.0, 0.0095, rate.samples_per_frame()); // about -43.5 dBFS
        for _ in 0..3 {
            vad.process(&loud);
        }
        assert!(vad.is_speaking());
        for _ in 0..50 {
            assert_eq!(vad.process(&middle), None);
        }
        assert!(vad.is_speaking());
    }

    #[test]
    fn vad_sensitivity_decides_whether_quiet_noise_is_speech() {
        let rate = SampleRate::Hz16000;
        let noise = white_noise(rate.samples_per_frame() * 20, 0.02, 9); // about -39 dBFS
        let mut sensitive = EnergyVad::new(VadConfig::from_threshold(0.0));
        let mut strict = EnergyVad::new(VadConfig::from_threshold(1.0));
        for frame in frames(&noise, rate) {
            sensitive.process(frame);
            strict.process(frame);
        }
        assert!(sensitive.is_speaking());
        assert!(!strict.is_speaking());
    }

    #[test]
    fn vad_follows_syllables_of_a_speech_like_signal() {
        let rate = SampleRate::Hz24000;
        let speech = speech_like(rate, 3_000, 5);
        let mut vad = EnergyVad::new(VadConfig::default());
        let mut started = 0;
        for frame in frames(&speech, rate) {
            if vad.process(frame) == Some(VadEvent::SpeechStarted) {
                started += 1;
            }
        }
        let silence = vec![0i16; rate.samples_per_frame()];
        for _ in 0..20 {
            vad.process(&silence);
        }
        assert!(started >= 1);
        assert!(!vad.is_speaking());
    }

    #[test]
    fn inverted_thresholds_are_normalised() {
        let vad = EnergyVad::new(VadConfig {
            start_threshold_dbfs: -40.0,
            stop_threshold_dbfs: -30.0,
            min_speech_ms: 0,
            hangover_ms: 0,
        });
        assert_eq!(vad.config().stop_threshold_dbfs, -40.0);
    }
}
