//! Synthetic signals and comparison helpers for tests and benchmarks.
//!
//! Audio files are not checked in; tests build what they need here, from a
//! seed, so every run hears the same thing. The "speech-like" signal is a
//! voiced source (harmonics of a gliding pitch, falling 6 dB/octave, shaped by
//! two formant bumps) under a syllabic envelope (about four syllables a second
//! with quiet gaps), plus a little noise: close enough to speech for codec
//! round trips, VAD and loss concealment to behave as they do on real voices.

use std::f64::consts::TAU;

use crate::SampleRate;

/// A small deterministic PRNG (xorshift64*), so signals need no `rand` crate.
#[derive(Debug, Clone)]
pub struct Xorshift(u64);

impl Xorshift {
    /// Seeds the generator (a zero seed is replaced by a fixed non-zero one).
    pub fn new(seed: u64) -> Self {
        Xorshift(if seed == 0 { 0x9E37_79B9_7F4A_7C15 } else { seed })
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Uniform in `[-1, 1)`.
    pub fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 52) as f64 - 1.0
    }

    /// Uniform in `0..n` (`n > 0`).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }
}

/// `ms` milliseconds of a speech-like signal at `rate`, peaking around -6 dBFS.
pub fn speech_like(rate: SampleRate, ms: u32, seed: u64) -> Vec<i16> {
    let fs = f64::from(rate.hz());
    let n = rate.samples_per_ms() * ms as usize;
    let mut rng = Xorshift::new(seed);
    // Per-seed variety: base pitch 100-200 Hz, syllable rate 3.5-5 Hz.
    let base_f0 = 100.0 + 100.0 * (rng.next_f64() + 1.0) / 2.0;
    let syllable_hz = 3.5 + 0.75 * (rng.next_f64() + 1.0);
    let max_harmonic_hz = (fs / 2.0 * 0.9).min(7_000.0);
    let mut phase = 0.0f64;
    let mut out = Vec::with_capacity(n);
    for i in 0..n {
        let t = i as f64 / fs;
        let f0 = base_f0 * (1.0 + 0.12 * (TAU * 2.7 * t).sin());
        phase = (phase + TAU * f0 / fs) % TAU;
        let mut voiced = 0.0;
        let mut k = 1.0;
        while k * f0 < max_harmonic_hz {
            let f = k * f0;
            let formants =
                1.0 + 2.0 * (-((f - 700.0) / 250.0).powi(2)).exp() + 1.2 * (-((f - 1_800.0) / 400.0).powi(2)).exp();
            voiced += formants / k * (k * phase).sin();
            k += 1.0;
        }
        // Syllables: a raised cosine sharpened so gaps are quiet, never silent.
        let syllable = 0.5 * (1.0 - (TAU * syllable_hz * t).cos());
        let envelope = 0.03 + 0.97 * syllable.powf(1.5);
        let noise = 0.003 * rng.next_f64();
        let value = 0.22 * envelope * voiced + noise;
        out.push((value.clamp(-1.0, 1.0) * 32_767.0) as i16);
    }
    out
}

/// Who talks when in a synthetic call (see [`call_tracks`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Talk {
    /// Both sides talk in every slot: a recording's worst case.
    Both,
    /// What `loadgen` does: the caller says 1.5 s every 6 s and sends digital
    /// silence in between; the agent answers with 2 s, 0.5 s after the caller
    /// stops, and sends nothing otherwise.
    Loadgen,
    /// A livelier call: the caller talks 4 s of every 10 s over a -70 dBFS
    /// noise floor; the agent talks 5 s after each caller turn.
    Dialogue,
    /// Nobody talks: the caller's line sends digital silence, the agent nothing.
    Silence,
}

/// One side of a synthetic call, slot by slot: `None` where the side sends no frame.
pub type Track = Vec<Option<Vec<i16>>>;

/// The caller's (at `caller_rate`) and the agent's (at `agent_rate`) 20 ms
/// frames for `slots` slots of a call in which they talk as `talk` says.
pub fn call_tracks(talk: Talk, caller_rate: SampleRate, agent_rate: SampleRate, slots: usize) -> (Track, Track) {
    let frames = |rate: SampleRate, seed| -> Vec<Vec<i16>> {
        speech_like(rate, 10_000, seed).chunks_exact(rate.samples_per_frame()).map(<[i16]>::to_vec).collect()
    };
    let (caller_speech, agent_speech) = (frames(caller_rate, 5), frames(agent_rate, 3));
    let n = caller_rate.samples_per_frame();
    let floor = white_noise(n * 64, 0.0003, 9);
    let speech = |frames: &[Vec<i16>], i: usize| Some(frames[i % frames.len()].clone());
    let zeros = || Some(vec![0i16; n]);
    let (mut caller, mut agent) = (Track::new(), Track::new());
    for i in 0..slots {
        let (c, a) = match talk {
            Talk::Both => (speech(&caller_speech, i), speech(&agent_speech, i)),
            Talk::Loadgen => {
                let t = i % 300;
                let c = if t < 75 { speech(&caller_speech, i) } else { zeros() };
                (c, if (100..200).contains(&t) { speech(&agent_speech, i) } else { None })
            }
            Talk::Dialogue => {
                let t = i % 500;
                let c = if t < 200 { speech(&caller_speech, i) } else { Some(floor[(i % 64) * n..][..n].to_vec()) };
                (c, if (225..475).contains(&t) { speech(&agent_speech, i) } else { None })
            }
            Talk::Silence => (zeros(), None),
        };
        caller.push(c);
        agent.push(a);
    }
    (caller, agent)
}

/// `n` samples of a sine at `hz`, amplitude `amplitude` (0..=1 of full scale).
pub fn sine(rate: SampleRate, hz: f64, amplitude: f64, n: usize) -> Vec<i16> {
    let fs = f64::from(rate.hz());
    (0..n).map(|i| (amplitude * 32_767.0 * (TAU * hz * i as f64 / fs).sin()).round() as i16).collect()
}

/// `n` samples of white noise, amplitude `amplitude` (0..=1 of full scale).
pub fn white_noise(n: usize, amplitude: f64, seed: u64) -> Vec<i16> {
    let mut rng = Xorshift::new(seed);
    (0..n).map(|_| (amplitude * 32_767.0 * rng.next_f64()) as i16).collect()
}

/// `x` through a 4th-order Butterworth high-pass at `cutoff_hz` (two RBJ
/// biquads), e.g. to compare signals over the speech band only.
pub fn highpass(x: &[i16], rate: SampleRate, cutoff_hz: f64) -> Vec<i16> {
    let w0 = TAU * cutoff_hz / f64::from(rate.hz());
    let alpha = w0.sin() / (2.0 * std::f64::consts::FRAC_1_SQRT_2);
    let cw = w0.cos();
    let (b0, b1, b2) = ((1.0 + cw) / 2.0, -(1.0 + cw), (1.0 + cw) / 2.0);
    let (a0, a1, a2) = (1.0 + alpha, -2.0 * cw, 1.0 - alpha);
    let mut y: Vec<f64> = x.iter().map(|&v| f64::from(v)).collect();
    for _ in 0..2 {
        let (mut x1, mut x2, mut y1, mut y2) = (0.0, 0.0, 0.0, 0.0);
        for v in y.iter_mut() {
            let x0 = *v;
            let y0 = (b0 * x0 + b1 * x1 + b2 * x2 - a1 * y1 - a2 * y2) / a0;
            (x2, x1, y2, y1) = (x1, x0, y1, y0);
            *v = y0;
        }
    }
    y.iter().map(|&v| v.round() as i16).collect()
}

/// Signal-to-noise ratio in dB of `test` against `reference` (same length),
/// after the best least-squares gain is applied to `test`.
pub fn snr_db(reference: &[i16], test: &[i16]) -> f64 {
    let n = reference.len().min(test.len());
    let (mut rr, mut rt, mut tt) = (0.0f64, 0.0f64, 0.0f64);
    for i in 0..n {
        let r = f64::from(reference[i]);
        let t = f64::from(test[i]);
        rr += r * r;
        rt += r * t;
        tt += t * t;
    }
    if tt == 0.0 {
        return if rr == 0.0 { f64::INFINITY } else { 0.0 };
    }
    let gain = rt / tt;
    let noise = rr - 2.0 * gain * rt + gain * gain * tt;
    10.0 * (rr / noise.max(1e-9)).log10()
}

/// Normalised cross-correlation of `a` and `b` (over the shorter length), in `[-1, 1]`.
pub fn correlation(a: &[i16], b: &[i16]) -> f64 {
    let n = a.len().min(b.len());
    let (mut ab, mut aa, mut bb) = (0.0f64, 0.0f64, 0.0f64);
    for i in 0..n {
        let x = f64::from(a[i]);
        let y = f64::from(b[i]);
        ab += x * y;
        aa += x * x;
        bb += y * y;
    }
    if aa == 0.0 || bb == 0.0 {
        return 0.0;
    }
    ab / (aa * bb).sqrt()
}

/// The delay `d` in `0..=max_lag` that best aligns `delayed[d..]` with
/// `reference`, by normalised correlation over `window` samples.
pub fn best_lag(reference: &[i16], delayed: &[i16], max_lag: usize, window: usize) -> usize {
    let mut best = (0usize, f64::MIN);
    for lag in 0..=max_lag {
        if lag + window > delayed.len() || window > reference.len() {
            break;
        }
        let c = correlation(&reference[..window], &delayed[lag..lag + window]);
        if c > best.1 {
            best = (lag, c);
        }
    }
    best.0
}

/// The outbound half of a call as the gateway ships it, for benches and allocation
/// tests: provider PCM16 bytes are turned into samples, queued in the session's
/// [`crate::Pacer`], and each 20 ms frame is encoded by the WebRTC leg's
/// [`crate::OpusEncoder`].
pub struct OutboundPath {
    pacer: crate::Pacer,
    encoder: crate::OpusEncoder,
    samples: Vec<i16>,
    frame: Vec<i16>,
}

impl OutboundPath {
    /// A path at `rate` with the default encoder settings.
    pub fn new(rate: SampleRate) -> Result<Self, crate::MediaError> {
        Ok(OutboundPath {
            pacer: crate::Pacer::new(rate),
            encoder: crate::OpusEncoder::new(rate, crate::OpusEncoderConfig::default())?,
            samples: Vec::with_capacity(rate.samples_per_ms() * 500),
            frame: vec![0; rate.samples_per_frame()],
        })
    }

    /// Queues a provider delta (PCM16 little-endian bytes) of `item`.
    pub fn push_le_bytes(&mut self, item: crate::ItemKey, bytes: &[u8]) -> Result<(), crate::MediaError> {
        self.samples.clear();
        crate::pcm16::le_bytes_to_samples(bytes, &mut self.samples)?;
        self.pacer.push(item, &self.samples);
        Ok(())
    }

    /// Takes the next frame and encodes it into `out` (a frame of silence as the WebRTC
    /// leg does: [`crate::OpusEncoder::encode_silence`]); returns the packet's length.
    pub fn next_packet(&mut self, out: &mut [u8]) -> Result<usize, crate::MediaError> {
        if self.pacer.next_frame(&mut self.frame).is_silence() {
            return self.encoder.encode_silence(out);
        }
        self.encoder.encode(&self.frame, out)
    }

    /// Drops what is queued (a barge-in).
    pub fn clear(&mut self) {
        self.pacer.clear();
    }
}

/// Amplitude (0..=1 of full scale) of the `hz` component of `pcm`, sampled
/// at `rate_hz`: a Hann-windowed Goertzel filter, so a pure tone of amplitude
/// `a` reads close to `a` whether or not the window holds whole periods.
pub fn tone_amplitude(pcm: &[i16], rate_hz: u32, hz: f64) -> f64 {
    let n = pcm.len();
    if n < 2 {
        return 0.0;
    }
    let coeff = 2.0 * (TAU * hz / f64::from(rate_hz)).cos();
    let (mut s1, mut s2, mut window_sum) = (0.0f64, 0.0f64, 0.0f64);
    for (i, &x) in pcm.iter().enumerate() {
        let w = 0.5 - 0.5 * (TAU * i as f64 / (n - 1) as f64).cos();
        window_sum += w;
        let s0 = w * f64::from(x) / 32_768.0 + coeff * s1 - s2;
        s2 = s1;
        s1 = s0;
    }
    let power = s1 * s1 + s2 * s2 - coeff * s1 * s2;
    2.0 * power.max(0.0).sqrt() / window_sum
}

/// Where a tone of `hz` sounds in `pcm`: spans `(start_ms, end_ms)` from the
/// start of `pcm`, each within about 10 ms of the truth.
///
/// The signal is cut into 20 ms windows every 10 ms; a window "has" the tone
/// when the tone is louder than -34 dBFS and carries at least half of the
/// window's power. Runs of such windows (from the centre of the first to the
/// centre of the last) less than 30 ms apart are joined (a codec or resampler
/// change can blur a window or two), and runs shorter than 30 ms are ignored
/// as transients.
pub fn tone_spans(pcm: &[i16], rate: SampleRate, hz: f64) -> Vec<(u64, u64)> {
    let window = rate.samples_per_ms() * 20;
    let hop = rate.samples_per_ms() * 10;
    let mut spans = Vec::new();
    let mut current: Option<(u64, u64)> = None;
    let mut start = 0;
    while start + window <= pcm.len() {
        let w = &pcm[start..start + window];
        let amplitude = tone_amplitude(w, rate.hz(), hz);
        let mean_square = w.iter().map(|&x| (f64::from(x) / 32_768.0).powi(2)).sum::<f64>() / window as f64;
        let present = amplitude > 0.02 && amplitude * amplitude / 2.0 >= 0.5 * mean_square;
        let centre = ((start + window / 2) / rate.samples_per_ms()) as u64;
        match (present, current.as_mut()) {
            (true, Some(span)) => span.1 = centre,
            (true, None) => current = Some((centre, centre)),
            (false, _) => spans.extend(current.take()),
        }
        start += hop;
    }
    spans.extend(current);
    let mut joined: Vec<(u64, u64)> = Vec::with_capacity(spans.len());
    for (start, end) in spans {
        match joined.last_mut() {
            Some(last) if start - last.1 < 30 => last.1 = end,
            _ => joined.push((start, end)),
        }
    }
    joined.retain(|(a, b)| b - a >= 30);
    joined
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::level_meter::dbfs;

    #[test]
    fn speech_like_signal_is_deterministic_and_speech_loud() {
        let a = speech_like(SampleRate::Hz16000, 1_000, 7);
        let b = speech_like(SampleRate::Hz16000, 1_000, 7);
        assert_eq!(a, b);
        assert_eq!(a.len(), 16_000);
        let level = dbfs(&a);
        assert!((-30.0..-10.0).contains(&level), "level {level} dBFS");
        let peak = a.iter().map(|s| s.unsigned_abs()).max().unwrap();
        assert!(peak < 32_000, "clipped: {peak}");
    }

    #[test]
    fn speech_like_signal_has_quiet_gaps_between_syllables() {
        let s = speech_like(SampleRate::Hz16000, 2_000, 3);
        let levels: Vec<f32> = s.chunks(320).map(dbfs).collect();
        let loud = levels.iter().cloned().fold(f32::MIN, f32::max);
        let quiet = levels.iter().cloned().fold(f32::MAX, f32::min);
        assert!(loud - quiet > 20.0, "loud {loud} quiet {quiet}");
    }

    #[test]
    fn highpass_removes_low_tones_and_keeps_high_ones() {
        let rate = SampleRate::Hz16000;
        let low = sine(rate, 60.0, 0.5, 16_000);
        let high = sine(rate, 2_000.0, 0.5, 16_000);
        assert!(dbfs(&highpass(&low, rate, 300.0)[8_000..]) < dbfs(&low) - 40.0);
        assert!((dbfs(&highpass(&high, rate, 300.0)[8_000..]) - dbfs(&high)).abs() < 0.1);
    }

    #[test]
    fn tone_spans_find_a_tone_and_only_that_tone() {
        let rate = SampleRate::Hz48000;
        let mut pcm = vec![0i16; 48 * 200];
        pcm.extend(sine(rate, 440.0, 0.3, 48 * 500));
        pcm.extend(white_noise(48 * 300, 0.01, 5));
        let spans = tone_spans(&pcm, rate, 440.0);
        assert_eq!(spans.len(), 1, "{spans:?}");
        let (start, end) = spans[0];
        assert!(start.abs_diff(200) <= 10 && end.abs_diff(700) <= 10, "{spans:?}");
        assert!(tone_spans(&pcm, rate, 1_000.0).is_empty());
        assert!((tone_amplitude(&sine(rate, 1_000.0, 0.25, 960), 48_000, 1_000.0) - 0.25).abs() < 0.02);
    }

    #[test]
    fn best_lag_finds_a_known_delay() {
        let s = speech_like(SampleRate::Hz8000, 500, 1);
        let mut delayed = vec![0i16; 37];
        delayed.extend_from_slice(&s);
        assert_eq!(best_lag(&s, &delayed, 100, 2_000), 37);
        assert!(snr_db(&s[..2_000], &delayed[37..2_037]) > 100.0);
    }
}
