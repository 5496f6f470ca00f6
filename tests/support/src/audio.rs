//! Test audio: tones with a smooth envelope, PCM16 little-endian bytes,
//! G.711 µ-law/A-law (the ITU tables, as in the Sun reference code), a level
//! meter and a crude resampler. Enough to make and check real audio in tests;
//! the gateway's own codecs live in the `media` crate.

use base64::Engine;

/// OpenAI Realtime PCM16 rate, and Gemini Live's output rate.
pub const RATE_24K: u32 = 24_000;
/// Gemini Live input rate.
pub const RATE_16K: u32 = 16_000;
/// G.711 (telephony) rate.
pub const RATE_8K: u32 = 8_000;

/// Samples in `ms` milliseconds at `rate`.
pub fn samples_for_ms(rate: u32, ms: u32) -> usize {
    (u64::from(rate) * u64::from(ms) / 1000) as usize
}

/// Milliseconds that `samples` samples last at `rate` (rounded down).
pub fn ms_for_samples(rate: u32, samples: usize) -> u64 {
    samples as u64 * 1000 / u64::from(rate)
}

/// A sine tone of `ms` at `freq_hz`, peak `amplitude` (0..=1 of full scale),
/// with 20 ms raised-cosine fades so it starts and ends without clicks.
pub fn tone(rate: u32, freq_hz: f32, ms: u32, amplitude: f32) -> Vec<i16> {
    let len = samples_for_ms(rate, ms);
    let fade = samples_for_ms(rate, 20).min(len / 2).max(1);
    let peak = amplitude.clamp(0.0, 1.0) * f32::from(i16::MAX);
    (0..len)
        .map(|i| {
            let t = i as f32 / rate as f32;
            let edge = i.min(len - 1 - i);
            let envelope =
                if edge < fade { 0.5 - 0.5 * (std::f32::consts::PI * edge as f32 / fade as f32).cos() } else { 1.0 };
            (peak * envelope * (2.0 * std::f32::consts::PI * freq_hz * t).sin()) as i16
        })
        .collect()
}

/// Digital silence.
pub fn silence(rate: u32, ms: u32) -> Vec<i16> {
    vec![0; samples_for_ms(rate, ms)]
}

/// Something a VAD takes for a spoken turn: a loud 300 Hz burst of
/// `speech_ms` followed by `silence_ms` of silence.
pub fn speech_then_silence(rate: u32, speech_ms: u32, silence_ms: u32) -> Vec<i16> {
    let mut samples = tone(rate, 300.0, speech_ms, 0.5);
    samples.extend(silence(rate, silence_ms));
    samples
}

/// RMS level as a fraction of full scale (0 for silence, ~0.707 for a
/// full-scale sine).
pub fn rms(samples: &[i16]) -> f32 {
    if samples.is_empty() {
        return 0.0;
    }
    let sum: f64 = samples.iter().map(|&s| f64::from(s) * f64::from(s)).sum();
    ((sum / samples.len() as f64).sqrt() / f64::from(i16::MAX)) as f32
}

/// dBFS to a linear RMS fraction.
pub fn db_to_linear(db: f32) -> f32 {
    10f32.powf(db / 20.0)
}

/// PCM16 samples as little-endian bytes.
pub fn pcm16_to_bytes(samples: &[i16]) -> Vec<u8> {
    samples.iter().flat_map(|s| s.to_le_bytes()).collect()
}

/// Little-endian bytes as PCM16 samples (a trailing odd byte is ignored).
pub fn pcm16_from_bytes(bytes: &[u8]) -> Vec<i16> {
    bytes.chunks_exact(2).map(|pair| i16::from_le_bytes([pair[0], pair[1]])).collect()
}

pub fn base64_encode(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

pub fn base64_decode(text: &str) -> Result<Vec<u8>, base64::DecodeError> {
    base64::engine::general_purpose::STANDARD.decode(text)
}

/// PCM16 samples as the base64 string the speech APIs carry.
pub fn pcm16_base64(samples: &[i16]) -> String {
    base64_encode(&pcm16_to_bytes(samples))
}

/// A base64 PCM16 payload back to samples.
pub fn pcm16_from_base64(text: &str) -> Result<Vec<i16>, base64::DecodeError> {
    Ok(pcm16_from_bytes(&base64_decode(text)?))
}

/// Linear interpolation resampling. Crude, but these are test tones.
pub fn resample(samples: &[i16], from: u32, to: u32) -> Vec<i16> {
    if from == to || samples.is_empty() {
        return samples.to_vec();
    }
    let out_len = (samples.len() as u64 * u64::from(to) / u64::from(from)) as usize;
    let step = f64::from(from) / f64::from(to);
    (0..out_len)
        .map(|i| {
            let pos = i as f64 * step;
            let index = pos as usize;
            let frac = pos - index as f64;
            let a = f64::from(samples[index.min(samples.len() - 1)]);
            let b = f64::from(samples[(index + 1).min(samples.len() - 1)]);
            (a + (b - a) * frac) as i16
        })
        .collect()
}

/// Averages each group of `factor` samples (a boxcar low-pass and decimation),
/// e.g. 24 kHz to 8 kHz with factor 3.
pub fn decimate(samples: &[i16], factor: usize) -> Vec<i16> {
    samples
        .chunks(factor.max(1))
        .map(|group| (group.iter().map(|&s| i32::from(s)).sum::<i32>() / group.len() as i32) as i16)
        .collect()
}

const QUANT_MASK: i32 = 0x0F;
const SEG_SHIFT: i32 = 4;
const SEG_MASK: i32 = 0x70;
const SIGN_BIT: i32 = 0x80;
const ULAW_BIAS: i32 = 0x84;
const ULAW_CLIP: i32 = 8159;
const SEG_ULAW_END: [i32; 8] = [0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF, 0x1FFF];
const SEG_ALAW_END: [i32; 8] = [0x1F, 0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF];

fn segment(value: i32, table: &[i32; 8]) -> i32 {
    table.iter().position(|&end| value <= end).map_or(8, |i| i as i32)
}

/// One linear sample to G.711 µ-law.
pub fn ulaw_encode(sample: i16) -> u8 {
    let mut pcm = i32::from(sample) >> 2;
    let mask = if pcm < 0 {
        pcm = -pcm;
        0x7F
    } else {
        0xFF
    };
    pcm = pcm.min(ULAW_CLIP) + (ULAW_BIAS >> 2);
    let seg = segment(pcm, &SEG_ULAW_END);
    if seg >= 8 {
        return (0x7F ^ mask) as u8;
    }
    (((seg << 4) | ((pcm >> (seg + 1)) & 0xF)) ^ mask) as u8
}

/// One G.711 µ-law byte to a linear sample.
pub fn ulaw_decode(byte: u8) -> i16 {
    let u = !i32::from(byte) & 0xFF;
    let mut t = ((u & QUANT_MASK) << 3) + ULAW_BIAS;
    t <<= (u & SEG_MASK) >> SEG_SHIFT;
    (if u & SIGN_BIT != 0 { ULAW_BIAS - t } else { t - ULAW_BIAS }) as i16
}

/// One linear sample to G.711 A-law.
pub fn alaw_encode(sample: i16) -> u8 {
    let mut pcm = i32::from(sample) >> 3;
    let mask = if pcm >= 0 {
        0xD5
    } else {
        pcm = -pcm - 1;
        0x55
    };
    let seg = segment(pcm, &SEG_ALAW_END);
    if seg >= 8 {
        return (0x7F ^ mask) as u8;
    }
    let mut aval = seg << SEG_SHIFT;
    aval |= if seg < 2 { (pcm >> 1) & QUANT_MASK } else { (pcm >> seg) & QUANT_MASK };
    (aval ^ mask) as u8
}

/// One G.711 A-law byte to a linear sample.
pub fn alaw_decode(byte: u8) -> i16 {
    let a = i32::from(byte) ^ 0x55;
    let mut t = (a & QUANT_MASK) << 4;
    let seg = (a & SEG_MASK) >> SEG_SHIFT;
    match seg {
        0 => t += 8,
        1 => t += 0x108,
        _ => {
            t += 0x108;
            t <<= seg - 1;
        }
    }
    (if a & SIGN_BIT != 0 { t } else { -t }) as i16
}

pub fn ulaw_encode_all(samples: &[i16]) -> Vec<u8> {
    samples.iter().map(|&s| ulaw_encode(s)).collect()
}

pub fn ulaw_decode_all(bytes: &[u8]) -> Vec<i16> {
    bytes.iter().map(|&b| ulaw_decode(b)).collect()
}

pub fn alaw_encode_all(samples: &[i16]) -> Vec<u8> {
    samples.iter().map(|&s| alaw_encode(s)).collect()
}

pub fn alaw_decode_all(bytes: &[u8]) -> Vec<i16> {
    bytes.iter().map(|&b| alaw_decode(b)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tone_has_the_expected_length_and_level() {
        let t = tone(RATE_24K, 440.0, 1500, 0.3);
        assert_eq!(t.len(), 36_000);
        let level = rms(&t);
        assert!((0.19..0.22).contains(&level), "rms {level}");
        assert_eq!(t[0], 0, "starts from silence");
    }

    #[test]
    fn g711_round_trips_within_quantisation_error() {
        for sample in [-32768_i16, -20000, -1000, -10, 0, 10, 1000, 20000, 32767] {
            let u = ulaw_decode(ulaw_encode(sample));
            let a = alaw_decode(alaw_encode(sample));
            let tolerance = (i32::from(sample).abs() / 16).max(16);
            assert!((i32::from(u) - i32::from(sample)).abs() <= tolerance, "ulaw {sample} -> {u}");
            assert!((i32::from(a) - i32::from(sample)).abs() <= tolerance, "alaw {sample} -> {a}");
        }
        assert_eq!(ulaw_encode(0), 0xFF, "µ-law silence is 0xFF");
        assert_eq!(alaw_encode(0), 0xD5, "A-law silence is 0xD5");
    }

    #[test]
    fn pcm16_bytes_are_little_endian() {
        assert_eq!(pcm16_to_bytes(&[0x0102, -2]), vec![0x02, 0x01, 0xFE, 0xFF]);
        assert_eq!(pcm16_from_bytes(&[0x02, 0x01, 0xFE, 0xFF, 0x07]), vec![0x0102, -2]);
        // The fixtures' 12-byte payload decodes to 6 samples.
        assert_eq!(pcm16_from_base64("8//2//v/9//q/+//").map(|s| s.len()), Ok(6));
    }

    #[test]
    fn resampling_keeps_duration() {
        let t = tone(RATE_16K, 300.0, 100, 0.5);
        assert_eq!(resample(&t, RATE_16K, RATE_24K).len(), 2400);
        assert_eq!(decimate(&tone(RATE_24K, 300.0, 100, 0.5), 3).len(), 800);
    }
}
