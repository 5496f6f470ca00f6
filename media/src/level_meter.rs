//! Frame levels: RMS and dBFS, plus a meter with peak-hold ballistics.
//!
//! Levels are relative to digital full scale: a full-scale square wave is
//! 0 dBFS and a full-scale sine -3 dBFS. Digital silence is reported as
//! [`MIN_DBFS`] rather than minus infinity, so comparisons stay simple.

/// The floor reported for digital silence (and anything quieter).
pub const MIN_DBFS: f32 = -100.0;

/// RMS of `frame` as a fraction of full scale (0.0 ..= 1.0). An empty frame is 0.
pub fn rms(frame: &[i16]) -> f32 {
    if frame.is_empty() {
        return 0.0;
    }
    let energy: i64 = frame.iter().map(|&s| i64::from(s) * i64::from(s)).sum();
    ((energy as f64 / frame.len() as f64).sqrt() / 32_768.0) as f32
}

/// RMS level of `frame` in dBFS, never below [`MIN_DBFS`].
pub fn dbfs(frame: &[i16]) -> f32 {
    rms_to_dbfs(rms(frame))
}

/// RMS level in dBFS of G.711 μ-law codes, measured on the codes as they are (each code's
/// linear value comes from the decoding table; nothing is decoded into a buffer).
pub fn ulaw_dbfs(codes: &[u8]) -> f32 {
    if codes.is_empty() {
        return MIN_DBFS;
    }
    let energy: i64 = codes.iter().map(|&c| i64::from(crate::g711::ulaw_decode(c)).pow(2)).sum();
    rms_to_dbfs(((energy as f64 / codes.len() as f64).sqrt() / 32_768.0) as f32)
}

/// The same for A-law codes.
pub fn alaw_dbfs(codes: &[u8]) -> f32 {
    if codes.is_empty() {
        return MIN_DBFS;
    }
    let energy: i64 = codes.iter().map(|&c| i64::from(crate::g711::alaw_decode(c)).pow(2)).sum();
    rms_to_dbfs(((energy as f64 / codes.len() as f64).sqrt() / 32_768.0) as f32)
}

fn rms_to_dbfs(r: f32) -> f32 {
    if r <= 0.0 {
        return MIN_DBFS;
    }
    (20.0 * r.log10()).max(MIN_DBFS)
}

/// Per-frame level meter with meter ballistics: it rises at once and falls
/// at a fixed rate, which is what a speaking indicator or a recording level
/// wants (a raw per-frame level flickers between syllables).
#[derive(Debug, Clone)]
pub struct LevelMeter {
    last_dbfs: f32,
    held_dbfs: f32,
    /// dB the held level may fall per frame.
    release_db_per_frame: f32,
}

impl Default for LevelMeter {
    fn default() -> Self {
        Self::new()
    }
}

impl LevelMeter {
    /// A meter that falls 0.5 dB per 20 ms frame (25 dB/s), like a PPM.
    pub fn new() -> Self {
        LevelMeter { last_dbfs: MIN_DBFS, held_dbfs: MIN_DBFS, release_db_per_frame: 0.5 }
    }

    /// Measures one frame; returns its RMS level in dBFS.
    pub fn process(&mut self, frame: &[i16]) -> f32 {
        let level = dbfs(frame);
        self.last_dbfs = level;
        self.held_dbfs = level.max(self.held_dbfs - self.release_db_per_frame);
        level
    }

    /// Level of the last frame, in dBFS.
    pub fn last_dbfs(&self) -> f32 {
        self.last_dbfs
    }

    /// Level with ballistics (instant rise, 25 dB/s fall), in dBFS.
    pub fn held_dbfs(&self) -> f32 {
        self.held_dbfs
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn g711_levels_match_the_level_of_the_decoded_samples() {
        let pcm: Vec<i16> = (0..160).map(|i| ((i as f32 * 0.3).sin() * 8_000.0) as i16).collect();
        let ulaw: Vec<u8> = pcm.iter().map(|&s| crate::g711::ulaw_encode(s)).collect();
        let alaw: Vec<u8> = pcm.iter().map(|&s| crate::g711::alaw_encode(s)).collect();
        let decoded: Vec<i16> = ulaw.iter().map(|&c| crate::g711::ulaw_decode(c)).collect();
        assert_eq!(ulaw_dbfs(&ulaw), dbfs(&decoded));
        assert!((alaw_dbfs(&alaw) - dbfs(&pcm)).abs() < 0.3);
        assert_eq!(ulaw_dbfs(&[0xFF; 160]), MIN_DBFS, "mu-law silence");
        assert_eq!(ulaw_dbfs(&[]), MIN_DBFS);
    }
    use crate::SampleRate;
    use crate::test_signal::sine;

    #[test]
    fn full_scale_square_is_zero_dbfs_and_sine_minus_three() {
        let square: Vec<i16> = (0..960).map(|i| if i % 2 == 0 { -32_768 } else { 32_767 }).collect();
        assert!(dbfs(&square).abs() < 0.01);
        let s = sine(SampleRate::Hz48000, 1_000.0, 1.0, 960);
        assert!((dbfs(&s) + 3.01).abs() < 0.05, "{}", dbfs(&s));
    }

    #[test]
    fn silence_is_reported_at_the_floor() {
        assert_eq!(dbfs(&[0; 160]), MIN_DBFS);
        assert_eq!(dbfs(&[]), MIN_DBFS);
        assert_eq!(rms(&[]), 0.0);
    }

    #[test]
    fn halving_amplitude_lowers_level_by_six_db() {
        let loud = sine(SampleRate::Hz16000, 440.0, 0.5, 320);
        let quiet = sine(SampleRate::Hz16000, 440.0, 0.25, 320);
        assert!((dbfs(&loud) - dbfs(&quiet) - 6.02).abs() < 0.1);
    }

    #[test]
    fn level_meter_rises_at_once_and_falls_slowly() {
        let mut meter = LevelMeter::new();
        let loud = sine(SampleRate::Hz16000, 440.0, 0.5, 320);
        let level = meter.process(&loud);
        assert_eq!(meter.held_dbfs(), level);
        meter.process(&[0; 320]);
        assert_eq!(meter.last_dbfs(), MIN_DBFS);
        assert!((meter.held_dbfs() - (level - 0.5)).abs() < 1e-4);
    }
}
