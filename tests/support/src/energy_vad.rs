//! The speech mocks' turn detector: an energy VAD over 10 ms frames.
//!
//! Positions are milliseconds of audio received (never wall clock), so a test
//! that pushes two seconds of audio at once sees exactly the events it would
//! see when streaming in real time. It is a pure state machine: feed samples,
//! get events.

use crate::audio::rms;

/// How the detector decides.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct VadSettings {
    /// Frame RMS (fraction of full scale) at or above which a frame is speech.
    pub threshold_rms: f32,
    /// Audio kept before the detected onset; `audio_start_ms` includes it.
    pub prefix_padding_ms: u32,
    /// Silence that ends a turn.
    pub silence_duration_ms: u32,
    /// Speech needed before a turn starts (rejects clicks).
    pub min_speech_ms: u32,
}

/// A turn boundary, in ms of audio received since the session started.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VadEvent {
    SpeechStarted { audio_start_ms: u64 },
    SpeechStopped { audio_end_ms: u64 },
}

#[derive(Debug, Clone)]
pub struct EnergyVad {
    settings: VadSettings,
    frame_len: usize,
    /// Samples of an unfinished frame, carried to the next push.
    partial: Vec<i16>,
    /// Whole 10 ms frames analysed so far.
    frames: u64,
    in_speech: bool,
    voiced_run: u64,
    voiced_run_start: u64,
    silent_run: u64,
}

impl EnergyVad {
    pub fn new(rate: u32, settings: VadSettings) -> Self {
        Self {
            settings,
            frame_len: (rate / 100).max(1) as usize,
            partial: Vec::new(),
            frames: 0,
            in_speech: false,
            voiced_run: 0,
            voiced_run_start: 0,
            silent_run: 0,
        }
    }

    pub fn settings(&self) -> VadSettings {
        self.settings
    }

    /// Changes thresholds and timings, keeping the position and turn state.
    pub fn set_settings(&mut self, settings: VadSettings) {
        self.settings = settings;
    }

    pub fn in_speech(&self) -> bool {
        self.in_speech
    }

    /// Milliseconds of audio analysed so far.
    pub fn position_ms(&self) -> u64 {
        self.frames * 10
    }

    /// Forgets any turn in progress (the input buffer was cleared).
    pub fn reset_turn(&mut self) {
        self.in_speech = false;
        self.voiced_run = 0;
        self.silent_run = 0;
    }

    /// Ends a turn in progress now (the client said its stream ended).
    pub fn end_turn(&mut self) -> Option<VadEvent> {
        let was = self.in_speech;
        self.reset_turn();
        was.then(|| VadEvent::SpeechStopped { audio_end_ms: self.position_ms() })
    }

    pub fn push(&mut self, samples: &[i16]) -> Vec<VadEvent> {
        let mut events = Vec::new();
        let mut rest = samples;
        if !self.partial.is_empty() {
            let need = self.frame_len - self.partial.len();
            let take = need.min(rest.len());
            self.partial.extend_from_slice(&rest[..take]);
            rest = &rest[take..];
            if self.partial.len() == self.frame_len {
                let frame = std::mem::take(&mut self.partial);
                self.frame(&frame, &mut events);
            }
        }
        let mut frames = rest.chunks_exact(self.frame_len);
        for frame in &mut frames {
            self.frame(frame, &mut events);
        }
        self.partial.extend_from_slice(frames.remainder());
        events
    }

    fn frame(&mut self, frame: &[i16], events: &mut Vec<VadEvent>) {
        let index = self.frames;
        self.frames += 1;
        let voiced = rms(frame) >= self.settings.threshold_rms;
        if !self.in_speech {
            if voiced {
                if self.voiced_run == 0 {
                    self.voiced_run_start = index;
                }
                self.voiced_run += 1;
                if self.voiced_run * 10 >= u64::from(self.settings.min_speech_ms.max(10)) {
                    self.in_speech = true;
                    self.silent_run = 0;
                    let onset = self.voiced_run_start * 10;
                    events.push(VadEvent::SpeechStarted {
                        audio_start_ms: onset.saturating_sub(u64::from(self.settings.prefix_padding_ms)),
                    });
                }
            } else {
                self.voiced_run = 0;
            }
        } else if voiced {
            self.silent_run = 0;
        } else {
            self.silent_run += 1;
            if self.silent_run * 10 >= u64::from(self.settings.silence_duration_ms.max(10)) {
                self.in_speech = false;
                self.voiced_run = 0;
                events.push(VadEvent::SpeechStopped { audio_end_ms: self.frames * 10 });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audio::{RATE_24K, silence, tone};

    fn settings() -> VadSettings {
        VadSettings { threshold_rms: 0.02, prefix_padding_ms: 300, silence_duration_ms: 200, min_speech_ms: 30 }
    }

    #[test]
    fn a_burst_between_silences_is_one_turn_measured_in_audio_ms() {
        let mut vad = EnergyVad::new(RATE_24K, settings());
        let mut audio = silence(RATE_24K, 1000);
        audio.extend(tone(RATE_24K, 300.0, 600, 0.5));
        audio.extend(silence(RATE_24K, 500));
        // Pushed in odd-sized pieces: frames straddle the pushes.
        let events: Vec<VadEvent> = audio.chunks(777).flat_map(|piece| vad.push(piece)).collect();
        assert_eq!(events.len(), 2, "{events:?}");
        let VadEvent::SpeechStarted { audio_start_ms } = events[0] else { panic!("{events:?}") };
        let VadEvent::SpeechStopped { audio_end_ms } = events[1] else { panic!("{events:?}") };
        // Onset at ~1000 ms (the fade-in costs a frame), minus 300 ms padding.
        assert!((690..=720).contains(&audio_start_ms), "{audio_start_ms}");
        // The burst ends at 1600 ms; 200 ms of silence ends the turn.
        assert!((1780..=1820).contains(&audio_end_ms), "{audio_end_ms}");
        assert_eq!(vad.position_ms(), 2100);
    }

    #[test]
    fn silence_and_clicks_are_not_speech() {
        let mut vad = EnergyVad::new(RATE_24K, settings());
        let mut audio = silence(RATE_24K, 500);
        audio.extend(tone(RATE_24K, 300.0, 10, 0.9));
        audio.extend(silence(RATE_24K, 500));
        assert!(vad.push(&audio).is_empty());
    }
}
