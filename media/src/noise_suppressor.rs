//! Server-side noise suppression (RNNoise, through `nnnoiseless`), behind the
//! `denoise` feature.
//!
//! Browsers suppress noise before encoding; phones and WhatsApp clients often
//! do not, and a noisy line makes the provider's VAD hear "speech" that is
//! not there. RNNoise works on 10 ms frames at 48 kHz, so a 20 ms frame is two
//! RNNoise frames, and other rates go up to 48 kHz and back through
//! [`Resampler`]s. RNNoise delays the audio by 10 ms; the two resamplers add
//! 5 ms each, so 20 ms in all below 48 kHz ([`NoiseSuppressor::delay`]).

use nnnoiseless::DenoiseState;

use crate::{MediaError, Resampler, SampleRate};

/// RNNoise's frame: 10 ms at 48 kHz.
const RNNOISE_FRAME: usize = DenoiseState::FRAME_SIZE;

/// Denoises one 20 ms frame at a time, in place.
pub struct NoiseSuppressor {
    rate: SampleRate,
    state: Box<DenoiseState<'static>>,
    /// `rate -> 48 kHz` and back; `None` at 48 kHz.
    resamplers: Option<(Resampler, Resampler)>,
    up: Vec<i16>,
    down: Vec<i16>,
    input: [f32; RNNOISE_FRAME],
    output: [f32; RNNOISE_FRAME],
    frame48: Vec<i16>,
}

impl std::fmt::Debug for NoiseSuppressor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NoiseSuppressor").field("rate", &self.rate).finish_non_exhaustive()
    }
}

impl NoiseSuppressor {
    /// A suppressor for 20 ms frames at `rate`.
    pub fn new(rate: SampleRate) -> Result<Self, MediaError> {
        let resamplers = if rate == SampleRate::Hz48000 {
            None
        } else {
            Some((Resampler::new(rate, SampleRate::Hz48000)?, Resampler::new(SampleRate::Hz48000, rate)?))
        };
        Ok(NoiseSuppressor {
            rate,
            state: DenoiseState::new(),
            resamplers,
            up: Vec::with_capacity(SampleRate::Hz48000.samples_per_frame()),
            down: Vec::with_capacity(rate.samples_per_frame()),
            input: [0.0; RNNOISE_FRAME],
            output: [0.0; RNNOISE_FRAME],
            frame48: vec![0; SampleRate::Hz48000.samples_per_frame()],
        })
    }

    /// Denoises one 20 ms frame in place; returns RNNoise's voice probability
    /// (0..=1, the larger of the frame's two halves).
    pub fn process(&mut self, frame: &mut [i16]) -> Result<f32, MediaError> {
        let expected = self.rate.samples_per_frame();
        if frame.len() != expected {
            return Err(MediaError::FrameSize { expected, actual: frame.len() });
        }
        match &mut self.resamplers {
            None => self.frame48.copy_from_slice(frame),
            Some((up, _)) => {
                self.up.clear();
                up.process(frame, &mut self.up)?;
                self.frame48.copy_from_slice(&self.up);
            }
        }
        let mut voice = 0.0f32;
        for half in self.frame48.chunks_exact_mut(RNNOISE_FRAME) {
            for (dst, &src) in self.input.iter_mut().zip(half.iter()) {
                *dst = f32::from(src);
            }
            voice = voice.max(self.state.process_frame(&mut self.output, &self.input));
            for (dst, &src) in half.iter_mut().zip(self.output.iter()) {
                *dst = src.clamp(-32_768.0, 32_767.0) as i16;
            }
        }
        match &mut self.resamplers {
            None => frame.copy_from_slice(&self.frame48),
            Some((_, down)) => {
                self.down.clear();
                down.process(&self.frame48, &mut self.down)?;
                frame.copy_from_slice(&self.down);
            }
        }
        Ok(voice)
    }

    /// The frame rate.
    pub fn rate(&self) -> SampleRate {
        self.rate
    }

    /// Latency added, in samples at the frame rate.
    pub fn delay_samples(&self) -> usize {
        let rnnoise = self.rate.samples_per_ms() * 10;
        rnnoise
            + self.resamplers.as_ref().map_or(0, |(up, down)| {
                // The up-resampler's delay is counted at 48 kHz.
                up.delay_samples() * self.rate.samples_per_ms() / 48 + down.delay_samples()
            })
    }

    /// Latency added.
    pub fn delay(&self) -> std::time::Duration {
        self.rate.duration_of(self.delay_samples())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::level_meter::dbfs;
    use crate::test_signal::{best_lag, snr_db, speech_like, white_noise};

    /// Room-like background noise (white noise through a one-pole low-pass)
    /// at about -36 dBFS.
    fn room_noise(n: usize) -> Vec<i16> {
        let mut low = 0.0f64;
        white_noise(n, 1.0, 12)
            .iter()
            .map(|&w| {
                low = 0.9 * low + 0.1 * f64::from(w);
                (low * 0.12) as i16
            })
            .collect()
    }

    fn denoise(rate: SampleRate, input: &[i16]) -> Vec<i16> {
        let mut ns = NoiseSuppressor::new(rate).unwrap();
        let mut out = Vec::new();
        for frame in input.chunks_exact(rate.samples_per_frame()) {
            let mut f = frame.to_vec();
            ns.process(&mut f).unwrap();
            out.extend_from_slice(&f);
        }
        out
    }

    #[test]
    fn noise_suppressor_removes_room_noise_and_keeps_speech_at_every_rate() {
        for rate in SampleRate::ALL {
            let n = rate.samples_per_ms() * 3_000;
            let noise = room_noise(n);
            let quiet = denoise(rate, &noise);
            let (before, after) = (dbfs(&noise[n / 3..]), dbfs(&quiet[n / 3..]));
            assert!(before - after > 30.0, "{rate}: noise {before:.1} -> {after:.1} dBFS");

            let clean = speech_like(rate, 3_000, 3);
            let noisy: Vec<i16> = clean.iter().zip(&noise).map(|(&c, &v)| c.saturating_add(v)).collect();
            let out = denoise(rate, &noisy);
            let delay = NoiseSuppressor::new(rate).unwrap().delay_samples();
            let (skip, window) = (n / 3, n / 2);
            let lag = best_lag(&clean[skip..], &out[skip..], 2 * delay, window);
            assert!(lag.abs_diff(delay) <= 1, "{rate}: measured {lag}, reported {delay}");
            let snr = snr_db(&clean[skip..skip + window], &out[skip + lag..skip + lag + window]);
            assert!(snr > 12.0, "{rate}: speech SNR {snr:.1} dB after denoising");
        }
    }

    #[test]
    fn noise_suppressor_refuses_a_wrong_frame_size() {
        let mut ns = NoiseSuppressor::new(SampleRate::Hz48000).unwrap();
        assert!(matches!(ns.process(&mut [0; 480]), Err(MediaError::FrameSize { expected: 960, actual: 480 })));
    }
}
