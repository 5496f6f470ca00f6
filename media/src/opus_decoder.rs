//! Opus decoder (libopus) with loss concealment: FEC when it can, PLC otherwise.

use opusic_c::{Channels, Decoder};

use crate::opus_encoder::{opus_error, opus_rate};
use crate::{MediaError, SampleRate};

/// Longest Opus packet duration (RFC 6716): 120 ms. An output buffer of
/// `rate.samples_per_ms() * MAX_OPUS_PACKET_MS` samples decodes any packet.
pub const MAX_OPUS_PACKET_MS: usize = 120;

/// A mono Opus decoder producing PCM at its own rate.
///
/// libopus decodes straight to 8, 16, 24 or 48 kHz, so the browser -> OpenAI
/// path decodes 48 kHz-clock packets directly to 24 kHz and needs no
/// resampler (and Gemini's 16 kHz input likewise).
pub struct OpusDecoder {
    inner: Decoder,
    rate: SampleRate,
}

impl std::fmt::Debug for OpusDecoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpusDecoder").field("rate", &self.rate).finish_non_exhaustive()
    }
}

impl OpusDecoder {
    /// Builds a decoder that outputs PCM at `rate`.
    pub fn new(rate: SampleRate) -> Result<Self, MediaError> {
        let inner = Decoder::new(Channels::Mono, opus_rate(rate)).map_err(opus_error("decoder create"))?;
        Ok(OpusDecoder { inner, rate })
    }

    /// Decodes one packet into the start of `out`; returns the samples written.
    ///
    /// `out` must hold the packet's duration: one 20 ms frame for the packets
    /// every peer here sends, up to [`MAX_OPUS_PACKET_MS`] in general. An empty
    /// packet means "lost" and is concealed like [`OpusDecoder::conceal`]`(None)`.
    pub fn decode(&mut self, packet: &[u8], out: &mut [i16]) -> Result<usize, MediaError> {
        if packet.is_empty() {
            return self.conceal(None, out);
        }
        self.inner.decode_to_slice(packet, bytemuck::cast_slice_mut(out), false).map_err(opus_error("decode"))
    }

    /// Fills exactly one 20 ms frame (at the decoder's rate) for a packet that
    /// never arrived, and returns its length.
    ///
    /// With `next_packet` (the packet after the lost one, already received), the
    /// frame is rebuilt from the in-band FEC copy that packet carries; libopus
    /// falls back to PLC by itself if it carries none. Without it, PLC
    /// extrapolates from the past. Decode `next_packet` normally afterwards.
    pub fn conceal(&mut self, next_packet: Option<&[u8]>, out: &mut [i16]) -> Result<usize, MediaError> {
        let frame = self.rate.samples_per_frame();
        if out.len() < frame {
            return Err(MediaError::BufferTooSmall { needed: frame, actual: out.len() });
        }
        let out = bytemuck::cast_slice_mut(&mut out[..frame]);
        match next_packet {
            Some(packet) if !packet.is_empty() => {
                self.inner.decode_to_slice(packet, out, true).map_err(opus_error("decode fec"))
            }
            _ => self.inner.decode_to_slice(&[], out, false).map_err(opus_error("decode plc")),
        }
    }

    /// The output sample rate.
    pub fn rate(&self) -> SampleRate {
        self.rate
    }

    /// Samples (at the decoder's rate) the packet would decode to, without decoding it.
    pub fn packet_samples(&self, packet: &[u8]) -> Result<usize, MediaError> {
        self.inner.get_nb_samples(packet).map_err(opus_error("packet inspect"))
    }

    /// Forgets the decoding history, as for a new stream.
    pub fn reset(&mut self) -> Result<(), MediaError> {
        self.inner.reset().map_err(opus_error("decoder reset"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::opus_encoder::{MAX_OPUS_PACKET, OpusEncoder, OpusEncoderConfig};
    use crate::test_signal::{best_lag, correlation, highpass, snr_db, speech_like};

    fn encode_all(rate: SampleRate, signal: &[i16], config: OpusEncoderConfig) -> Vec<Vec<u8>> {
        let mut enc = OpusEncoder::new(rate, config).unwrap();
        let mut buf = [0u8; MAX_OPUS_PACKET];
        signal
            .chunks_exact(rate.samples_per_frame())
            .map(|frame| {
                let n = enc.encode(frame, &mut buf).unwrap();
                buf[..n].to_vec()
            })
            .collect()
    }

    fn decode_all(rate: SampleRate, packets: &[Vec<u8>]) -> Vec<i16> {
        let mut dec = OpusDecoder::new(rate).unwrap();
        let mut out = vec![0i16; rate.samples_per_frame()];
        let mut pcm = Vec::new();
        for p in packets {
            let n = dec.decode(p, &mut out).unwrap();
            pcm.extend_from_slice(&out[..n]);
        }
        pcm
    }

    /// Round trip `encode at from -> decode at to`, compared with the same
    /// speech-like signal generated at `to`; returns (correlation, SNR dB).
    ///
    /// Both sides are high-passed at 300 Hz first: in VOIP mode libopus runs a
    /// pitch-adaptive high-pass filter (60-100 Hz and up) that shifts the phase
    /// of the fundamental. That is inaudible, but it alone caps full-band
    /// waveform SNR at about 5 dB whatever the bitrate, so it would hide what
    /// this test is after: that the speech band comes through.
    fn round_trip(from: SampleRate, to: SampleRate) -> (f64, f64) {
        let input = speech_like(from, 3_000, 21);
        let reference = highpass(&speech_like(to, 3_000, 21), to, 300.0);
        let packets = encode_all(from, &input, OpusEncoderConfig::default());
        let decoded = highpass(&decode_all(to, &packets), to, 300.0);
        assert_eq!(decoded.len(), reference.len());
        // Skip the first 200 ms (codec warm-up), align by the codec delay.
        let skip = to.samples_per_ms() * 200;
        let window = to.samples_per_ms() * 2_000;
        let lag = best_lag(&reference[skip..], &decoded[skip..], to.samples_per_ms() * 30, window);
        let r = &reference[skip..skip + window];
        let d = &decoded[skip + lag..skip + lag + window];
        (correlation(r, d), snr_db(r, d))
    }

    #[test]
    fn opus_round_trip_keeps_speech_at_each_rate() {
        for rate in [SampleRate::Hz16000, SampleRate::Hz24000, SampleRate::Hz48000] {
            let (corr, snr) = round_trip(rate, rate);
            assert!(corr > 0.95 && snr > 10.0, "{rate}: correlation {corr:.3}, SNR {snr:.1} dB");
        }
    }

    #[test]
    fn opus_browser_packets_decode_straight_to_provider_rates() {
        // Browser (48 kHz) -> OpenAI (24 kHz) and Gemini (16 kHz), no resampler.
        for to in [SampleRate::Hz24000, SampleRate::Hz16000] {
            let (corr, snr) = round_trip(SampleRate::Hz48000, to);
            assert!(corr > 0.95 && snr > 10.0, "48k -> {to}: correlation {corr:.3}, SNR {snr:.1} dB");
        }
        // Provider (24 kHz) -> browser (48 kHz).
        let (corr, snr) = round_trip(SampleRate::Hz24000, SampleRate::Hz48000);
        assert!(corr > 0.95 && snr > 10.0, "24k -> 48k: correlation {corr:.3}, SNR {snr:.1} dB");
    }

    /// Decodes `packets` dropping `lost`; each lost frame is concealed with FEC
    /// from the next packet (`use_fec`) or with PLC. Returns the PCM.
    fn decode_with_losses(rate: SampleRate, packets: &[Vec<u8>], lost: &[usize], use_fec: bool) -> Vec<i16> {
        let mut dec = OpusDecoder::new(rate).unwrap();
        let frame = rate.samples_per_frame();
        let mut out = vec![0i16; frame];
        let mut pcm = Vec::new();
        for (i, p) in packets.iter().enumerate() {
            let n = if lost.contains(&i) {
                let next = packets.get(i + 1).filter(|_| use_fec && !lost.contains(&(i + 1)));
                dec.conceal(next.map(Vec::as_slice), &mut out).unwrap()
            } else {
                dec.decode(p, &mut out).unwrap()
            };
            assert_eq!(n, frame);
            pcm.extend_from_slice(&out);
        }
        pcm
    }

    #[test]
    fn opus_fec_recovers_lost_frames_better_than_plc() {
        let rate = SampleRate::Hz24000;
        let frame = rate.samples_per_frame();
        let speech = speech_like(SampleRate::Hz48000, 4_000, 33);
        let config = OpusEncoderConfig { packet_loss_perc: 20, ..Default::default() };
        let packets = encode_all(SampleRate::Hz48000, &speech, config);
        let clean = decode_with_losses(rate, &packets, &[], true);
        // Lose every 7th packet (isolated losses, the case FEC is for).
        let lost: Vec<usize> = (10..packets.len() - 1).step_by(7).collect();
        let fec = decode_with_losses(rate, &packets, &lost, true);
        let plc = decode_with_losses(rate, &packets, &lost, false);
        let (mut fec_snr, mut plc_snr) = (0.0, 0.0);
        for &i in &lost {
            let range = i * frame..(i + 1) * frame;
            fec_snr += snr_db(&clean[range.clone()], &fec[range.clone()]).min(60.0);
            plc_snr += snr_db(&clean[range.clone()], &plc[range]).min(60.0);
        }
        fec_snr /= lost.len() as f64;
        plc_snr /= lost.len() as f64;
        assert!(fec_snr > plc_snr + 3.0, "FEC {fec_snr:.1} dB vs PLC {plc_snr:.1} dB");
        assert!(fec_snr > 5.0, "FEC {fec_snr:.1} dB");
    }

    #[test]
    fn opus_plc_fills_a_burst_and_decoding_recovers_after_it() {
        let rate = SampleRate::Hz24000;
        let frame = rate.samples_per_frame();
        let speech = speech_like(rate, 2_000, 8);
        let packets = encode_all(rate, &speech, OpusEncoderConfig::default());
        let clean = decode_with_losses(rate, &packets, &[], false);
        let burst = [40, 41, 42, 43, 44];
        let concealed = decode_with_losses(rate, &packets, &burst, false);
        assert_eq!(concealed.len(), clean.len());
        // Concealment stays bounded (no blow-up) ...
        let peak = concealed[40 * frame..45 * frame].iter().map(|s| s.unsigned_abs()).max().unwrap();
        assert!(peak < 32_000);
        // ... and 3 frames after the burst the decoder tracks the stream again.
        let after = 48 * frame..60 * frame;
        let snr = snr_db(&clean[after.clone()], &concealed[after]);
        assert!(snr > 20.0, "after-burst SNR {snr:.1} dB");
    }

    #[test]
    fn opus_conceal_without_history_is_silence_of_one_frame() {
        for rate in SampleRate::ALL {
            let mut dec = OpusDecoder::new(rate).unwrap();
            let mut out = vec![1i16; rate.samples_per_frame() * 3];
            assert_eq!(dec.conceal(None, &mut out).unwrap(), rate.samples_per_frame());
            assert!(out[..rate.samples_per_frame()].iter().all(|&s| s == 0));
            assert!(out[rate.samples_per_frame()..].iter().all(|&s| s == 1));
            assert_eq!(dec.decode(&[], &mut out).unwrap(), rate.samples_per_frame());
        }
    }

    #[test]
    fn opus_conceal_refuses_a_buffer_shorter_than_a_frame() {
        let mut dec = OpusDecoder::new(SampleRate::Hz48000).unwrap();
        let mut out = [0i16; 100];
        assert_eq!(dec.conceal(None, &mut out), Err(MediaError::BufferTooSmall { needed: 960, actual: 100 }));
    }

    #[test]
    fn opus_decoder_rejects_garbage_without_panicking() {
        let mut dec = OpusDecoder::new(SampleRate::Hz24000).unwrap();
        let mut out = [0i16; 480];
        // A TOC byte announcing a 60 ms frame does not fit a 20 ms buffer.
        assert!(dec.decode(&[0xFF, 0xFF, 0xFF], &mut out).is_err());
        assert_eq!(dec.packet_samples(&[0x08]).unwrap(), 480);
    }
}
