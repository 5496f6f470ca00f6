//! G.711 mu-law and A-law, bit-exact with the ITU-T reference (G.191 STL `g711.c`).
//!
//! Twilio Media Streams carry mu-law at 8 kHz, and OpenAI Realtime accepts
//! `audio/pcmu` / `audio/pcma` directly, so a phone call to OpenAI can pass
//! G.711 through untouched; these are used when it cannot (Gemini, mixing,
//! recording, local VAD).
//!
//! Decoding is a 256-entry table. Encoding has two bit-identical forms: a
//! lookup in a table indexed by the bits the codec keeps (14 for mu-law, 12 for
//! A-law, so 16 KiB + 4 KiB, built at compile time) and the reference segment
//! search done with `leading_zeros`. [`ulaw_encode`]/[`alaw_encode`] and the
//! slice functions use the faster of the two on the benchmark
//! (`BENCHMARKS.md`); the other stays public so the comparison can be re-run.
//!
//! Negative samples follow G.191, which takes the one's complement of a
//! negative sample before quantising (so -1 encodes like +0 with the sign bit
//! cleared). Sun's widely copied `g711.c` negates instead and differs from the
//! ITU reference on some negative inputs; we follow the ITU.

use crate::MediaError;

/// mu-law code -> linear sample (G.191 `ulaw_expand`).
static ULAW_DECODE: [i16; 256] = {
    let mut table = [0i16; 256];
    let mut code = 0;
    while code < 256 {
        table[code] = ulaw_expand(code as u8);
        code += 1;
    }
    table
};

/// A-law code -> linear sample (G.191 `alaw_expand`).
static ALAW_DECODE: [i16; 256] = {
    let mut table = [0i16; 256];
    let mut code = 0;
    while code < 256 {
        table[code] = alaw_expand(code as u8);
        code += 1;
    }
    table
};

/// mu-law encoder indexed by the 14 bits mu-law keeps (`sample as u16 >> 2`).
/// The code depends on nothing else: G.191 drops the two low bits first, and
/// for negatives `!x >> 2 == !(x >> 2)`.
static ULAW_ENCODE: [u8; 1 << 14] = {
    let mut table = [0u8; 1 << 14];
    let mut index = 0;
    while index < (1 << 14) {
        table[index] = ulaw_encode_computed(((index as u16) << 2) as i16);
        index += 1;
    }
    table
};

/// A-law encoder indexed by the 12 bits A-law keeps (`sample as u16 >> 4`).
static ALAW_ENCODE: [u8; 1 << 12] = {
    let mut table = [0u8; 1 << 12];
    let mut index = 0;
    while index < (1 << 12) {
        table[index] = alaw_encode_computed(((index as u16) << 4) as i16);
        index += 1;
    }
    table
};

const fn ulaw_expand(code: u8) -> i16 {
    let sign: i32 = if code < 0x80 { -1 } else { 1 };
    let inverted = !(code as i32);
    let exponent = (inverted >> 4) & 0x07;
    let mantissa = inverted & 0x0F;
    let step = 4 << (exponent + 1);
    (sign * ((0x80 << exponent) + step * mantissa + step / 2 - 4 * 33)) as i16
}

const fn alaw_expand(code: u8) -> i16 {
    let ix = ((code ^ 0x55) & 0x7F) as i32;
    let exponent = ix >> 4;
    let mut mantissa = ix & 0x0F;
    if exponent > 0 {
        mantissa += 16;
    }
    mantissa = (mantissa << 4) + 0x08;
    if exponent > 1 {
        mantissa <<= exponent - 1;
    }
    (if code > 127 { mantissa } else { -mantissa }) as i16
}

/// Encodes one sample to mu-law.
#[inline]
pub fn ulaw_encode(sample: i16) -> u8 {
    ULAW_ENCODE[usize::from(sample as u16 >> 2)]
}

/// Decodes one mu-law code.
#[inline]
pub fn ulaw_decode(code: u8) -> i16 {
    ULAW_DECODE[usize::from(code)]
}

/// Encodes one sample to A-law.
#[inline]
pub fn alaw_encode(sample: i16) -> u8 {
    ALAW_ENCODE[usize::from(sample as u16 >> 4)]
}

/// Decodes one A-law code.
#[inline]
pub fn alaw_decode(code: u8) -> i16 {
    ALAW_DECODE[usize::from(code)]
}

/// mu-law encoding by the reference segment search (no table), bit-identical
/// to [`ulaw_encode`].
pub const fn ulaw_encode_computed(sample: i16) -> u8 {
    // 14-bit magnitude; one's complement for negatives, as G.191 does.
    let (magnitude, sign) = if sample < 0 { ((!sample) >> 2, 0x00) } else { (sample >> 2, 0x80) };
    // 33 is the bias that turns the mu-law thresholds into powers of two.
    let mut biased = magnitude as u32 + 33;
    if biased > 0x1FFF {
        biased = 0x1FFF;
    }
    // Segment 1..=8: one more than the bit length of `biased >> 6`.
    let segment = 1 + (32 - (biased >> 6).leading_zeros());
    let high = 8 - segment;
    let low = 15 - ((biased >> segment) & 0x0F);
    ((high << 4) | low) as u8 | sign
}

/// A-law encoding by the reference segment search (no table), bit-identical
/// to [`alaw_encode`].
pub const fn alaw_encode_computed(sample: i16) -> u8 {
    let ix = (if sample < 0 { (!sample) >> 4 } else { sample >> 4 }) as u32; // 0..=2047
    let code = if ix > 15 {
        // Bit length 5..=11; G.191 shifts right until the value fits 5 bits.
        let shift = (32 - ix.leading_zeros()) - 5;
        ((ix >> shift) - 16) + ((shift + 1) << 4)
    } else {
        ix
    };
    let sign = if sample >= 0 { 0x80 } else { 0x00 };
    ((code | sign) ^ 0x55) as u8
}

fn check_len(needed: usize, actual: usize) -> Result<(), MediaError> {
    if actual < needed { Err(MediaError::BufferTooSmall { needed, actual }) } else { Ok(()) }
}

/// Encodes `pcm` to mu-law into the start of `out`; returns the bytes written
/// (`pcm.len()`). Fails, writing nothing, if `out` is shorter than `pcm`.
pub fn ulaw_encode_slice(pcm: &[i16], out: &mut [u8]) -> Result<usize, MediaError> {
    check_len(pcm.len(), out.len())?;
    for (code, &sample) in out.iter_mut().zip(pcm) {
        *code = ulaw_encode(sample);
    }
    Ok(pcm.len())
}

/// Decodes mu-law `codes` into the start of `out`; returns the samples written.
/// Fails, writing nothing, if `out` is shorter than `codes`.
pub fn ulaw_decode_slice(codes: &[u8], out: &mut [i16]) -> Result<usize, MediaError> {
    check_len(codes.len(), out.len())?;
    for (sample, &code) in out.iter_mut().zip(codes) {
        *sample = ulaw_decode(code);
    }
    Ok(codes.len())
}

/// Encodes `pcm` to A-law into the start of `out`; returns the bytes written.
/// Fails, writing nothing, if `out` is shorter than `pcm`.
pub fn alaw_encode_slice(pcm: &[i16], out: &mut [u8]) -> Result<usize, MediaError> {
    check_len(pcm.len(), out.len())?;
    for (code, &sample) in out.iter_mut().zip(pcm) {
        *code = alaw_encode(sample);
    }
    Ok(pcm.len())
}

/// Decodes A-law `codes` into the start of `out`; returns the samples written.
/// Fails, writing nothing, if `out` is shorter than `codes`.
pub fn alaw_decode_slice(codes: &[u8], out: &mut [i16]) -> Result<usize, MediaError> {
    check_len(codes.len(), out.len())?;
    for (sample, &code) in out.iter_mut().zip(codes) {
        *sample = alaw_decode(code);
    }
    Ok(codes.len())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The ITU-T G.191 STL reference (`g711.c`: `ulaw_compress`, `ulaw_expand`,
    /// `alaw_compress`, `alaw_expand`), transcribed loop for loop with C `short`
    /// arithmetic and kept independent of the code under test: no shared
    /// helpers, no `leading_zeros`, no tables.
    mod itu_reference {
        pub fn ulaw_compress(linbuf: i16) -> u8 {
            let lin = i32::from(linbuf);
            let mut absno = if lin < 0 { ((!lin) >> 2) + 33 } else { (lin >> 2) + 33 };
            if absno > 0x1FFF {
                absno = 0x1FFF;
            }
            let mut i = absno >> 6;
            let mut segno = 1;
            while i != 0 {
                segno += 1;
                i >>= 1;
            }
            let high_nibble = 0x0008 - segno;
            let mut low_nibble = (absno >> segno) & 0x000F;
            low_nibble = 0x000F - low_nibble;
            let mut logbuf = (high_nibble << 4) | low_nibble;
            if lin >= 0 {
                logbuf |= 0x0080;
            }
            logbuf as u8
        }

        pub fn ulaw_expand(logbuf: u8) -> i16 {
            let log = i32::from(logbuf);
            let sign = if log < 0x0080 { -1 } else { 1 };
            let mut mantissa = !log;
            let exponent = (mantissa >> 4) & 0x0007;
            let segment = exponent + 1;
            mantissa &= 0x000F;
            let step = 4 << segment;
            (sign * ((0x0080 << exponent) + step * mantissa + step / 2 - 4 * 33)) as i16
        }

        pub fn alaw_compress(linbuf: i16) -> u8 {
            let lin = i32::from(linbuf);
            let mut ix = if lin < 0 { (!lin) >> 4 } else { lin >> 4 };
            if ix > 15 {
                let mut iexp = 1;
                while ix > 16 + 15 {
                    ix >>= 1;
                    iexp += 1;
                }
                ix -= 16;
                ix += iexp << 4;
            }
            if lin >= 0 {
                ix |= 0x0080;
            }
            (ix ^ 0x0055) as u8
        }

        pub fn alaw_expand(logbuf: u8) -> i16 {
            let log = i32::from(logbuf);
            let mut ix = log ^ 0x0055;
            ix &= 0x007F;
            let iexp = ix >> 4;
            let mut mant = ix & 0x000F;
            if iexp > 0 {
                mant += 16;
            }
            mant = (mant << 4) + 0x0008;
            if iexp > 1 {
                mant <<= iexp - 1;
            }
            (if log > 127 { mant } else { -mant }) as i16
        }
    }

    fn all_samples() -> impl Iterator<Item = i16> {
        i16::MIN..=i16::MAX
    }

    #[test]
    fn ulaw_encoding_matches_the_itu_reference_on_all_65536_inputs() {
        let reference: Vec<u8> = all_samples().map(itu_reference::ulaw_compress).collect();
        let table: Vec<u8> = all_samples().map(ulaw_encode).collect();
        let computed: Vec<u8> = all_samples().map(ulaw_encode_computed).collect();
        assert_eq!(table.len(), 65_536);
        assert!(table == reference, "table encoder differs from G.191");
        assert!(computed == reference, "computed encoder differs from G.191");
    }

    #[test]
    fn alaw_encoding_matches_the_itu_reference_on_all_65536_inputs() {
        let reference: Vec<u8> = all_samples().map(itu_reference::alaw_compress).collect();
        let table: Vec<u8> = all_samples().map(alaw_encode).collect();
        let computed: Vec<u8> = all_samples().map(alaw_encode_computed).collect();
        assert!(table == reference, "table encoder differs from G.191");
        assert!(computed == reference, "computed encoder differs from G.191");
    }

    #[test]
    fn g711_decoding_matches_the_itu_reference_on_all_256_codes() {
        for code in 0..=255u8 {
            assert_eq!(ulaw_decode(code), itu_reference::ulaw_expand(code), "mu-law {code:#04x}");
            assert_eq!(alaw_decode(code), itu_reference::alaw_expand(code), "A-law {code:#04x}");
        }
    }

    #[test]
    fn g711_anchor_values_match_the_published_tables() {
        // Silence and full scale, as in G.711 Tables 1a/2a scaled to 16 bits.
        assert_eq!(ulaw_encode(0), 0xFF);
        assert_eq!(ulaw_encode(-1), 0x7F);
        assert_eq!(alaw_encode(0), 0xD5);
        assert_eq!(alaw_encode(-1), 0x55);
        assert_eq!(ulaw_decode(0x00), -32124);
        assert_eq!(ulaw_decode(0x80), 32124);
        assert_eq!(ulaw_decode(0xFF), 0);
        assert_eq!(ulaw_decode(0x7F), 0);
        assert_eq!(alaw_decode(0xAA), 32256);
        assert_eq!(alaw_decode(0x2A), -32256);
        assert_eq!(alaw_decode(0xD5), 8);
        assert_eq!(alaw_decode(0x55), -8);
        assert_eq!(ulaw_encode(i16::MAX), 0x80);
        assert_eq!(ulaw_encode(i16::MIN), 0x00);
    }

    #[test]
    fn g711_codes_survive_decode_then_encode() {
        for code in 0..=255u8 {
            assert_eq!(alaw_encode(alaw_decode(code)), code);
            // 0x7F is mu-law's "negative zero"; it decodes to 0, which encodes as 0xFF.
            let expected = if code == 0x7F { 0xFF } else { code };
            assert_eq!(ulaw_encode(ulaw_decode(code)), expected);
        }
    }

    #[test]
    fn g711_slice_functions_refuse_short_outputs_and_write_nothing() {
        let mut out = [0xEEu8; 2];
        assert_eq!(ulaw_encode_slice(&[0, 0, 0], &mut out), Err(MediaError::BufferTooSmall { needed: 3, actual: 2 }));
        assert_eq!(out, [0xEE, 0xEE]);
        let mut pcm = [0i16; 4];
        assert_eq!(alaw_decode_slice(&[0xD5, 0x55], &mut pcm), Ok(2));
        assert_eq!(pcm, [8, -8, 0, 0]);
    }

    proptest! {
        #[test]
        fn g711_quantisation_is_monotonic_and_close(a in any::<i16>(), b in any::<i16>()) {
            let (lo, hi) = if a <= b { (a, b) } else { (b, a) };
            prop_assert!(ulaw_decode(ulaw_encode(lo)) <= ulaw_decode(ulaw_encode(hi)));
            prop_assert!(alaw_decode(alaw_encode(lo)) <= alaw_decode(alaw_encode(hi)));
            for x in [a, b] {
                let bound = i32::from(x).abs() / 16 + 16;
                let mu_err = (i32::from(ulaw_decode(ulaw_encode(x))) - i32::from(x)).abs();
                let a_err = (i32::from(alaw_decode(alaw_encode(x))) - i32::from(x)).abs();
                prop_assert!(mu_err <= bound, "mu-law error {} at {}", mu_err, x);
                prop_assert!(a_err <= bound, "A-law error {} at {}", a_err, x);
            }
        }

        #[test]
        fn g711_slice_encoding_equals_sample_encoding(pcm in proptest::collection::vec(any::<i16>(), 0..400)) {
            let mut mu = vec![0u8; pcm.len()];
            let mut al = vec![0u8; pcm.len()];
            ulaw_encode_slice(&pcm, &mut mu).unwrap();
            alaw_encode_slice(&pcm, &mut al).unwrap();
            let mut back = vec![0i16; pcm.len()];
            ulaw_decode_slice(&mu, &mut back).unwrap();
            for (i, &x) in pcm.iter().enumerate() {
                prop_assert_eq!(mu[i], ulaw_encode(x));
                prop_assert_eq!(al[i], alaw_encode(x));
                prop_assert_eq!(back[i], ulaw_decode(mu[i]));
            }
        }
    }
}
