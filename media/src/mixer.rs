//! Mixing two or three mono streams without wrap-around.
//!
//! Recordings mix the caller and the agent; when a human agent joins, each
//! participant hears the other two. Summing PCM16 overflows: plain `i16`
//! addition wraps (a loud click), clamping squares off peaks (harsh). Here
//! sums are formed in `i32`, a gain limiter tames sustained overs, and a soft
//! knee catches the peaks the limiter lets through.

use crate::MAX_FRAME_SAMPLES;

/// Level above which the soft clipper starts bending (about -2.5 dBFS).
const KNEE: i32 = 24_576;
/// Room between the knee and full scale.
const HEADROOM: i32 = i16::MAX as i32 - KNEE;

/// Soft-clips a sum to the `i16` range: identity up to the knee, then a
/// smooth curve (unit slope at the knee) that approaches but never reaches
/// full scale, so it never wraps and never flat-tops.
#[inline]
pub fn soft_clip(sum: i32) -> i16 {
    let magnitude = sum.unsigned_abs() as i64;
    if magnitude <= KNEE as i64 {
        return sum as i16;
    }
    let excess = magnitude - KNEE as i64;
    let headroom = HEADROOM as i64;
    let bent = KNEE as i64 + excess * headroom / (excess + headroom);
    (if sum < 0 { -bent } else { bent }) as i16
}

/// Mixes `inputs` into `out` (overwriting it), soft-clipping the sum. Inputs
/// shorter than `out` count as silence past their end. Stateless; for a
/// continuous mix prefer [`Mixer`], whose limiter avoids clipping at all on
/// sustained loud passages.
pub fn mix_into(out: &mut [i16], inputs: &[&[i16]]) {
    // Sum in stack chunks so the loops vectorise and nothing is allocated.
    const CHUNK: usize = 240;
    let mut acc = [0i32; CHUNK];
    for (c, out) in out.chunks_mut(CHUNK).enumerate() {
        let acc = &mut acc[..out.len()];
        acc.fill(0);
        add_inputs(acc, inputs, c * CHUNK);
        clip_into(out, acc);
    }
}

/// Adds each input's samples from `offset` on into `acc`.
fn add_inputs(acc: &mut [i32], inputs: &[&[i16]], offset: usize) {
    for input in inputs {
        let input = input.get(offset..).unwrap_or(&[]);
        for (a, &s) in acc.iter_mut().zip(input) {
            *a += i32::from(s);
        }
    }
}

/// Writes `sums` to `out`, soft-clipping only if some sum passes the knee.
fn clip_into(out: &mut [i16], sums: &[i32]) {
    let peak = sums.iter().map(|s| s.unsigned_abs()).max().unwrap_or(0);
    if peak <= KNEE as u32 {
        for (o, &s) in out.iter_mut().zip(sums) {
            *o = s as i16;
        }
    } else {
        for (o, &s) in out.iter_mut().zip(sums) {
            *o = soft_clip(s);
        }
    }
}

/// A mixer with a limiter, for continuous streams of up to 20 ms frames.
///
/// The limiter computes each frame's peak; if it exceeds the ceiling the gain
/// drops at once to fit (ramping across the frame from the previous gain, so
/// there is no step), then recovers slowly (about 6 dB per 100 ms). What still
/// exceeds the knee is soft-clipped.
#[derive(Clone)]
pub struct Mixer {
    /// Scratch for the frame's sums (one 48 kHz frame).
    sum: Vec<i32>,
    gain: f32,
}

impl std::fmt::Debug for Mixer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mixer").field("gain", &self.gain).finish_non_exhaustive()
    }
}

impl Default for Mixer {
    fn default() -> Self {
        Self::new()
    }
}

impl Mixer {
    /// Peak the limiter aims the mix at (just under the knee).
    const CEILING: f32 = KNEE as f32;
    /// Gain recovery per frame towards 1.0 (fraction of the remaining gap).
    const RELEASE: f32 = 0.1;

    /// A mixer for frames of up to [`MAX_FRAME_SAMPLES`] samples.
    pub fn new() -> Self {
        Mixer { sum: vec![0; MAX_FRAME_SAMPLES], gain: 1.0 }
    }

    /// Mixes `inputs` (two or three streams, usually) into `out`. Inputs
    /// shorter than `out` count as silence past their end.
    ///
    /// # Panics
    /// If `out` is longer than [`MAX_FRAME_SAMPLES`].
    pub fn mix(&mut self, out: &mut [i16], inputs: &[&[i16]]) {
        assert!(out.len() <= MAX_FRAME_SAMPLES, "Mixer::mix takes at most one 20 ms frame at 48 kHz");
        let sum = &mut self.sum[..out.len()];
        sum.fill(0);
        add_inputs(sum, inputs, 0);
        let peak = sum.iter().map(|s| s.unsigned_abs()).max().unwrap_or(0) as f32;
        let released = self.gain + (1.0 - self.gain) * Self::RELEASE;
        let target = if peak * released > Self::CEILING { Self::CEILING / peak } else { released };
        let start = self.gain;
        self.gain = target;
        if start == 1.0 && target == 1.0 {
            // The common case: nothing loud, limiter at rest.
            clip_into(out, sum);
            return;
        }
        let step = if out.is_empty() { 0.0 } else { (target - start) / out.len() as f32 };
        for (i, v) in sum.iter_mut().enumerate() {
            let gain = start + step * (i + 1) as f32;
            *v = (*v as f32 * gain) as i32;
        }
        clip_into(out, sum);
    }

    /// Current limiter gain (1.0 = untouched).
    pub fn gain(&self) -> f32 {
        self.gain
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::SampleRate;
    use crate::test_signal::{sine, snr_db};

    #[test]
    fn soft_clip_is_transparent_below_the_knee_and_never_wraps() {
        for x in [-KNEE, -1_000, 0, 1, 12_345, KNEE] {
            assert_eq!(i32::from(soft_clip(x)), x);
        }
        let mut previous = soft_clip(-200_000);
        for x in (-200_000..200_000).step_by(97) {
            let y = soft_clip(x);
            assert!(y >= previous, "not monotonic at {x}");
            previous = y;
        }
        assert!(soft_clip(i32::MAX) < i16::MAX);
        assert!(soft_clip(i32::MIN + 1) > i16::MIN);
        assert!(soft_clip(3 * 32_767) > 30_000);
    }

    #[test]
    fn mixing_quiet_streams_is_plain_addition() {
        let a = sine(SampleRate::Hz16000, 300.0, 0.2, 320);
        let b = sine(SampleRate::Hz16000, 700.0, 0.2, 320);
        let mut out = vec![0i16; 320];
        mix_into(&mut out, &[&a, &b]);
        for i in 0..320 {
            assert_eq!(i32::from(out[i]), i32::from(a[i]) + i32::from(b[i]));
        }
        let mut mixer = Mixer::new();
        let mut limited = vec![0i16; 320];
        mixer.mix(&mut limited, &[&a, &b]);
        assert_eq!(limited, out);
        assert_eq!(mixer.gain(), 1.0);
    }

    #[test]
    fn mixing_three_full_scale_streams_does_not_wrap() {
        let n = 960;
        let loud = vec![i16::MAX; n];
        let negative = vec![i16::MIN; n];
        let mut out = vec![0i16; n];
        mix_into(&mut out, &[&loud, &loud, &loud]);
        assert!(out.iter().all(|&s| s > 30_000));
        mix_into(&mut out, &[&negative, &negative, &negative]);
        assert!(out.iter().all(|&s| s < -30_000));
    }

    #[test]
    fn shorter_inputs_count_as_silence() {
        let mut out = vec![9i16; 4];
        mix_into(&mut out, &[&[1, 2], &[10, 20, 30]]);
        assert_eq!(out, [11, 22, 30, 0]);
    }

    #[test]
    fn mixer_limiter_keeps_loud_sums_clean() {
        let rate = SampleRate::Hz48000;
        let n = rate.samples_per_frame();
        let a = sine(rate, 200.0, 0.9, n * 50);
        let b = sine(rate, 200.0, 0.9, n * 50);
        let mut mixer = Mixer::new();
        let mut out = vec![0i16; n * 50];
        for (i, chunk) in out.chunks_mut(n).enumerate() {
            mixer.mix(chunk, &[&a[i * n..(i + 1) * n], &b[i * n..(i + 1) * n]]);
        }
        assert!(mixer.gain() < 0.6);
        // After the first frame the limiter holds the peak under the knee, so
        // the output is a clean scaled sine, not a clipped one.
        let snr = snr_db(&a[2 * n..], &out[2 * n..]);
        assert!(snr > 40.0, "SNR {snr:.1} dB");
        assert!(out[n..].iter().all(|s| s.unsigned_abs() <= KNEE as u16));
    }

    #[test]
    fn mixer_gain_recovers_after_a_loud_passage() {
        let n = 320;
        let loud = vec![30_000i16; n];
        let quiet = vec![1_000i16; n];
        let mut mixer = Mixer::new();
        let mut out = vec![0i16; n];
        mixer.mix(&mut out, &[&loud, &loud]);
        assert!(mixer.gain() < 0.5);
        for _ in 0..60 {
            mixer.mix(&mut out, &[&quiet]);
        }
        assert!(mixer.gain() > 0.99);
    }
}
