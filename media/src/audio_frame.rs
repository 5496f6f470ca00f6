//! An owned mono PCM16 frame that knows its rate.

use std::time::Duration;

use crate::{MediaError, SampleRate};

/// One 20 ms mono PCM16 frame together with its sample rate.
///
/// The hot paths work on plain `&[i16]` slices with the rate held by the
/// component (encoder, pacer, ...). This type is for where a frame crosses a
/// boundary (a channel between tasks, a recording) and must carry its rate so
/// nobody has to guess it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AudioFrame {
    rate: SampleRate,
    // Invariant: `samples.len() == rate.samples_per_frame()`.
    samples: Vec<i16>,
}

impl AudioFrame {
    /// A frame of digital silence.
    pub fn silence(rate: SampleRate) -> Self {
        AudioFrame { rate, samples: vec![0; rate.samples_per_frame()] }
    }

    /// Wraps `samples`, which must be exactly one 20 ms frame at `rate`.
    pub fn new(rate: SampleRate, samples: Vec<i16>) -> Result<Self, MediaError> {
        if samples.len() != rate.samples_per_frame() {
            return Err(MediaError::FrameSize { expected: rate.samples_per_frame(), actual: samples.len() });
        }
        Ok(AudioFrame { rate, samples })
    }

    /// Copies one 20 ms frame out of `samples`.
    pub fn from_slice(rate: SampleRate, samples: &[i16]) -> Result<Self, MediaError> {
        Self::new(rate, samples.to_vec())
    }

    /// The sample rate.
    pub fn rate(&self) -> SampleRate {
        self.rate
    }

    /// The samples (always one 20 ms frame).
    pub fn samples(&self) -> &[i16] {
        &self.samples
    }

    /// The samples, writable in place (the length cannot change).
    pub fn samples_mut(&mut self) -> &mut [i16] {
        &mut self.samples
    }

    /// The frame's duration (always 20 ms).
    pub fn duration(&self) -> Duration {
        self.rate.duration_of(self.samples.len())
    }

    /// Gives back the sample buffer, e.g. to reuse its allocation.
    pub fn into_samples(self) -> Vec<i16> {
        self.samples
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::FRAME_DURATION;

    #[test]
    fn audio_frame_accepts_only_one_twenty_millisecond_frame() {
        assert!(AudioFrame::new(SampleRate::Hz24000, vec![0; 480]).is_ok());
        assert_eq!(
            AudioFrame::new(SampleRate::Hz24000, vec![0; 479]),
            Err(MediaError::FrameSize { expected: 480, actual: 479 })
        );
    }

    #[test]
    fn silent_audio_frame_lasts_twenty_milliseconds() {
        let frame = AudioFrame::silence(SampleRate::Hz8000);
        assert_eq!(frame.duration(), FRAME_DURATION);
        assert!(frame.samples().iter().all(|&s| s == 0));
    }
}
