//! Reading call recordings back in tests: decode the stereo Ogg Opus file and find where
//! tones sound on each channel.

use media::SampleRate;

/// A decoded stereo recording: left (caller) and right (agent) at `rate` Hz.
#[derive(Debug, Clone)]
pub struct Decoded {
    pub left: Vec<i16>,
    pub right: Vec<i16>,
    pub rate: u32,
}

impl Decoded {
    /// Playable length in milliseconds.
    pub fn duration_ms(&self) -> u64 {
        self.left.len() as u64 * 1000 / u64::from(self.rate)
    }
}

/// Decodes a stereo Ogg Opus file (checking its pages, headers and granule positions)
/// into its two channels at 48 kHz. Panics on anything else.
pub fn decode_ogg_opus_stereo(bytes: &[u8]) -> (Vec<i16>, Vec<i16>, u32) {
    let decoded = media::decode_ogg_opus(bytes).expect("a valid Ogg Opus stream");
    assert_eq!(decoded.head.channels, 2, "a stereo recording");
    assert!(decoded.ended, "the stream ends with an end-of-stream page");
    (decoded.channel(0), decoded.channel(1), media::ogg_opus::GRANULE_RATE)
}

/// [`decode_ogg_opus_stereo`] as a struct.
pub fn decode(bytes: &[u8]) -> Decoded {
    let (left, right, rate) = decode_ogg_opus_stereo(bytes);
    Decoded { left, right, rate }
}

/// Where a tone of `hz` sounds in `pcm` (at `rate` Hz): `(start_ms, end_ms)` spans, each
/// edge within about 10 ms (see `media::test_signal::tone_spans`).
pub fn tone_spans(pcm: &[i16], rate: u32, hz: f64) -> Vec<(u64, u64)> {
    let rate = SampleRate::try_from(rate).expect("a supported rate");
    media::test_signal::tone_spans(pcm, rate, hz)
}

/// Asserts that `pcm` carries a tone of `hz` exactly once, from `start_ms` to `end_ms`,
/// each edge within `tolerance_ms`.
pub fn assert_tone(pcm: &[i16], rate: u32, hz: f64, (start_ms, end_ms): (u64, u64), tolerance_ms: u64) {
    let spans = tone_spans(pcm, rate, hz);
    assert!(
        spans.len() == 1
            && spans[0].0.abs_diff(start_ms) <= tolerance_ms
            && spans[0].1.abs_diff(end_ms) <= tolerance_ms,
        "{hz} Hz expected from {start_ms} to {end_ms} ms (±{tolerance_ms}), found at {spans:?}"
    );
}

/// Asserts that `pcm` carries no tone of `hz` anywhere.
pub fn assert_no_tone(pcm: &[i16], rate: u32, hz: f64) {
    let spans = tone_spans(pcm, rate, hz);
    assert!(spans.is_empty(), "no {hz} Hz expected, found at {spans:?}");
}
