//! Streaming resampler between any two of 8, 16, 24 and 48 kHz.
//!
//! Where libopus cannot do the rate change itself (G.711 telephony at 8 kHz
//! to and from the providers' 16/24 kHz, mixing streams of different rates,
//! recordings), this converts on 20 ms chunks, keeping the filter state from
//! one chunk to the next so chunk boundaries are inaudible.
//!
//! It wraps rubato's synchronous FFT resampler: all rate pairs here are small
//! integer ratios, for which it is both the cheapest and the cleanest choice
//! (no sinc interpolation). Each 20 ms chunk is processed as two 10 ms FFT
//! blocks, which halves the added delay (to 5 ms) compared to one 20 ms block.
//! With those short blocks the plain Blackman-Harris window keeps the
//! passband flat to 80 % of the lower Nyquist frequency (-0.3 dB at 85 %, so
//! 3.4 kHz telephony audio at 8 kHz is intact), where rubato's default
//! squared window would already lose 2 dB at 80 %. Everything above the
//! output's Nyquist frequency is removed when downsampling (the FFT spectrum is
//! truncated), so nothing aliases.

use std::time::Duration;

use rubato::audioadapter_buffers::direct::InterleavedSlice;
use rubato::{Fft, FixedSync, Resampler as _, WindowFunction};

use crate::{MediaError, SampleRate};

/// FFT blocks per 20 ms chunk (see the module docs for the trade-off).
const BLOCKS_PER_FRAME: usize = 2;

struct Converter {
    fft: Fft<f32>,
    /// Input samples waiting for a full 20 ms chunk (capacity: one chunk).
    pending: Vec<i16>,
    input: Vec<f32>,
    output: Vec<f32>,
}

/// Converts a mono PCM16 stream from one rate to another, chunk by chunk.
pub struct Resampler {
    from: SampleRate,
    to: SampleRate,
    /// `None` when `from == to`: a copy, no delay.
    converter: Option<Box<Converter>>,
}

impl std::fmt::Debug for Resampler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Resampler")
            .field("from", &self.from)
            .field("to", &self.to)
            .field("delay_samples", &self.delay_samples())
            .finish()
    }
}

fn resampler_error(e: impl std::fmt::Display) -> MediaError {
    MediaError::Resampler(e.to_string())
}

/// Float back to PCM16: round half away from zero, saturate (`as` saturates).
#[inline]
fn to_i16(value: f32) -> i16 {
    (value + 0.5f32.copysign(value)) as i16
}

impl Resampler {
    /// A resampler from `from` to `to` (a plain copy when they are equal).
    pub fn new(from: SampleRate, to: SampleRate) -> Result<Self, MediaError> {
        if from == to {
            return Ok(Resampler { from, to, converter: None });
        }
        let chunk_in = from.samples_per_frame();
        let fft = Fft::<f32>::new_custom(
            from.hz() as usize,
            to.hz() as usize,
            chunk_in,
            BLOCKS_PER_FRAME,
            1,
            WindowFunction::BlackmanHarris,
            FixedSync::Input,
        )
        .map_err(resampler_error)?;
        // Every pair here divides 10 ms evenly, so each chunk yields exactly
        // one 20 ms frame at the output rate.
        debug_assert_eq!(fft.output_frames_next(), to.samples_per_frame());
        Ok(Resampler {
            from,
            to,
            converter: Some(Box::new(Converter {
                pending: Vec::with_capacity(chunk_in),
                input: vec![0.0; chunk_in],
                output: vec![0.0; fft.output_frames_max()],
                fft,
            })),
        })
    }

    /// Resamples `input` (normally one 20 ms frame) and appends the result to
    /// `out`; returns the samples appended.
    ///
    /// Input of any length is accepted: samples are converted in whole 20 ms
    /// chunks and a remainder waits for the next call, so feeding exact 20 ms
    /// frames gives exactly one output frame per call and no extra latency.
    /// `out` allocates only if it lacks capacity.
    pub fn process(&mut self, input: &[i16], out: &mut Vec<i16>) -> Result<usize, MediaError> {
        let Some(conv) = self.converter.as_deref_mut() else {
            out.extend_from_slice(input);
            return Ok(input.len());
        };
        let chunk = self.from.samples_per_frame();
        let mut rest = input;
        let mut written = 0;
        while !rest.is_empty() {
            if conv.pending.is_empty() && rest.len() >= chunk {
                let (head, tail) = rest.split_at(chunk);
                written += conv.run(head, out)?;
                rest = tail;
            } else {
                let take = (chunk - conv.pending.len()).min(rest.len());
                conv.pending.extend_from_slice(&rest[..take]);
                rest = &rest[take..];
                if conv.pending.len() == chunk {
                    let pending = std::mem::take(&mut conv.pending);
                    let result = conv.run(&pending, out);
                    conv.pending = pending;
                    conv.pending.clear();
                    written += result?;
                }
            }
        }
        Ok(written)
    }

    /// Latency the resampler adds, in samples at the output rate.
    pub fn delay_samples(&self) -> usize {
        self.converter.as_ref().map_or(0, |c| c.fft.output_delay())
    }

    /// Latency the resampler adds.
    pub fn delay(&self) -> Duration {
        self.to.duration_of(self.delay_samples())
    }

    /// The input rate.
    pub fn from_rate(&self) -> SampleRate {
        self.from
    }

    /// The output rate.
    pub fn to_rate(&self) -> SampleRate {
        self.to
    }

    /// Forgets the filter state and any pending input, as for a new stream.
    pub fn reset(&mut self) {
        if let Some(conv) = self.converter.as_deref_mut() {
            conv.fft.reset();
            conv.pending.clear();
        }
    }
}

impl Converter {
    fn run(&mut self, chunk: &[i16], out: &mut Vec<i16>) -> Result<usize, MediaError> {
        for (dst, &src) in self.input.iter_mut().zip(chunk) {
            *dst = f32::from(src);
        }
        let frames_in = self.input.len();
        let frames_out = self.output.len();
        let input = InterleavedSlice::new(&self.input[..], 1, frames_in).map_err(resampler_error)?;
        let mut output = InterleavedSlice::new_mut(&mut self.output[..], 1, frames_out).map_err(resampler_error)?;
        let (_, produced) = self.fft.process_into_buffer(&input, &mut output, None).map_err(resampler_error)?;
        out.extend(self.output[..produced].iter().map(|&v| to_i16(v)));
        Ok(produced)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_signal::{best_lag, snr_db, speech_like};
    use std::f64::consts::TAU;

    /// A mix of tones below 80 % of the lower Nyquist frequency, as it would
    /// be sampled at `rate`, starting at sample `offset`.
    fn tones(rate: SampleRate, limit_hz: f64, n: usize) -> Vec<i16> {
        let fs = f64::from(rate.hz());
        let freqs = [310.0, 1_030.0, 0.8 * limit_hz];
        (0..n)
            .map(|i| {
                let t = i as f64 / fs;
                let v: f64 = freqs.iter().map(|f| (TAU * f * t).sin()).sum::<f64>() / 3.0;
                (0.5 * 32_767.0 * v).round() as i16
            })
            .collect()
    }

    fn pairs() -> Vec<(SampleRate, SampleRate)> {
        let mut pairs = Vec::new();
        for from in SampleRate::ALL {
            for to in SampleRate::ALL {
                if from != to {
                    pairs.push((from, to));
                }
            }
        }
        pairs
    }

    fn run(r: &mut Resampler, input: &[i16]) -> Vec<i16> {
        let mut out = Vec::new();
        for frame in input.chunks(r.from_rate().samples_per_frame()) {
            r.process(frame, &mut out).unwrap();
        }
        out
    }

    #[test]
    fn resampler_passes_through_when_rates_match() {
        let mut r = Resampler::new(SampleRate::Hz24000, SampleRate::Hz24000).unwrap();
        let input = speech_like(SampleRate::Hz24000, 100, 1);
        assert_eq!(run(&mut r, &input), input);
        assert_eq!(r.delay_samples(), 0);
    }

    #[test]
    fn resampler_turns_each_20ms_frame_into_one_20ms_frame() {
        for (from, to) in pairs() {
            let mut r = Resampler::new(from, to).unwrap();
            let mut out = Vec::new();
            for _ in 0..5 {
                let n = r.process(&vec![0; from.samples_per_frame()], &mut out).unwrap();
                assert_eq!(n, to.samples_per_frame(), "{from} -> {to}");
            }
        }
    }

    #[test]
    fn resampler_snr_is_high_for_every_rate_pair() {
        for (from, to) in pairs() {
            let limit = f64::from(from.hz().min(to.hz())) / 2.0;
            let mut r = Resampler::new(from, to).unwrap();
            let input = tones(from, limit, from.samples_per_ms() * 1_000);
            let out = run(&mut r, &input);
            let ideal = tones(to, limit, out.len());
            let d = r.delay_samples();
            // Compare after the first 100 ms (filter start-up).
            let skip = to.samples_per_ms() * 100;
            let snr = snr_db(&ideal[skip..out.len() - d], &out[skip + d..]);
            assert!(snr > 50.0, "{from} -> {to}: SNR {snr:.1} dB");
        }
    }

    #[test]
    fn resampler_reports_the_delay_it_adds() {
        for (from, to) in pairs() {
            let mut r = Resampler::new(from, to).unwrap();
            // Incommensurate tones below every Nyquist frequency: one clear
            // correlation peak within the search range.
            let signal = |rate: SampleRate| -> Vec<i16> {
                let fs = f64::from(rate.hz());
                (0..rate.samples_per_ms() * 1_000)
                    .map(|i| {
                        let t = i as f64 / fs;
                        let v = [(230.0, 0.3), (470.0, 1.1), (1_130.0, 2.0), (1_790.0, 0.7), (2_610.0, 1.9)]
                            .iter()
                            .map(|(f, phase)| (TAU * f * t + phase).sin())
                            .sum::<f64>();
                        (5_000.0 * v) as i16
                    })
                    .collect()
            };
            let out = run(&mut r, &signal(from));
            let ideal = signal(to);
            let window = to.samples_per_ms() * 500;
            let lag = best_lag(&ideal[..window], &out, to.samples_per_ms() * 30, window);
            let d = r.delay_samples();
            assert!(lag.abs_diff(d) <= 1, "{from} -> {to}: measured {lag}, reported {d}");
            assert!(r.delay() <= Duration::from_millis(5), "{from} -> {to}: {:?}", r.delay());
        }
    }

    #[test]
    fn resampler_output_does_not_depend_on_how_input_is_chunked() {
        let (from, to) = (SampleRate::Hz8000, SampleRate::Hz24000);
        let input = speech_like(from, 500, 2);
        let mut whole = Resampler::new(from, to).unwrap();
        let expected = run(&mut whole, &input);
        let mut odd = Resampler::new(from, to).unwrap();
        let mut out = Vec::new();
        for piece in input.chunks(37) {
            odd.process(piece, &mut out).unwrap();
        }
        assert_eq!(out, expected);
    }

    #[test]
    fn downsampling_removes_what_the_lower_rate_cannot_carry() {
        let (from, to) = (SampleRate::Hz16000, SampleRate::Hz8000);
        let fs = f64::from(from.hz());
        let alias: Vec<i16> = (0..16_000).map(|i| (16_000.0 * (TAU * 6_000.0 * i as f64 / fs).sin()) as i16).collect();
        let mut r = Resampler::new(from, to).unwrap();
        let out = run(&mut r, &alias);
        let level = crate::level_meter::dbfs(&out[800..]);
        assert!(level < -60.0, "6 kHz leaked at {level:.1} dBFS");
    }

    #[test]
    fn resampler_reset_forgets_the_previous_stream() {
        let (from, to) = (SampleRate::Hz48000, SampleRate::Hz16000);
        let input = speech_like(from, 200, 6);
        let mut r = Resampler::new(from, to).unwrap();
        let first = run(&mut r, &input);
        r.process(&input[..100], &mut Vec::new()).unwrap();
        r.reset();
        assert_eq!(run(&mut r, &input), first);
    }
}
