//! PCM16 little-endian bytes <-> samples.
//!
//! OpenAI Realtime and Gemini Live carry audio as base64 of raw PCM16 LE; the
//! gateway decodes the base64 at the edge and uses these to get samples. Both
//! functions append to a caller-owned buffer so a warm call allocates nothing.

use crate::MediaError;

/// Appends the samples encoded in `bytes` (PCM16, little-endian) to `out` and
/// returns how many were appended.
///
/// Fails with [`MediaError::OddByteCount`] (and appends nothing) when `bytes`
/// does not hold a whole number of samples. Allocates only if `out` lacks
/// capacity.
pub fn le_bytes_to_samples(bytes: &[u8], out: &mut Vec<i16>) -> Result<usize, MediaError> {
    if !bytes.len().is_multiple_of(2) {
        return Err(MediaError::OddByteCount(bytes.len()));
    }
    let n = bytes.len() / 2;
    out.reserve(n);
    out.extend(bytes.chunks_exact(2).map(|pair| i16::from_le_bytes([pair[0], pair[1]])));
    Ok(n)
}

/// Appends `samples` to `out` as PCM16 little-endian bytes. Allocates only if
/// `out` lacks capacity.
pub fn samples_to_le_bytes(samples: &[i16], out: &mut Vec<u8>) {
    let start = out.len();
    out.resize(start + samples.len() * 2, 0);
    for (pair, sample) in out[start..].chunks_exact_mut(2).zip(samples) {
        pair.copy_from_slice(&sample.to_le_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn pcm16_bytes_are_little_endian() {
        let mut samples = Vec::new();
        let n = le_bytes_to_samples(&[0x01, 0x00, 0xff, 0x7f, 0x00, 0x80, 0xff, 0xff], &mut samples).unwrap();
        assert_eq!(n, 4);
        assert_eq!(samples, [1, i16::MAX, i16::MIN, -1]);

        let mut bytes = vec![0xaa];
        samples_to_le_bytes(&[1, -2], &mut bytes);
        assert_eq!(bytes, [0xaa, 0x01, 0x00, 0xfe, 0xff]);
    }

    #[test]
    fn pcm16_odd_byte_count_is_rejected_and_appends_nothing() {
        let mut samples = vec![7];
        assert_eq!(le_bytes_to_samples(&[1, 2, 3], &mut samples), Err(MediaError::OddByteCount(3)));
        assert_eq!(samples, [7]);
    }

    #[test]
    fn pcm16_conversion_appends_without_allocating_when_capacity_suffices() {
        let mut samples = Vec::with_capacity(480);
        let bytes = [0u8; 960];
        le_bytes_to_samples(&bytes, &mut samples).unwrap();
        let ptr = samples.as_ptr();
        samples.clear();
        le_bytes_to_samples(&bytes, &mut samples).unwrap();
        assert_eq!(samples.as_ptr(), ptr);
    }

    proptest! {
        #[test]
        fn pcm16_round_trip_is_lossless(samples in proptest::collection::vec(any::<i16>(), 0..2000)) {
            let mut bytes = Vec::new();
            samples_to_le_bytes(&samples, &mut bytes);
            prop_assert_eq!(bytes.len(), samples.len() * 2);
            let mut back = Vec::new();
            le_bytes_to_samples(&bytes, &mut back).unwrap();
            prop_assert_eq!(back, samples);
        }
    }
}
