//! Opus encoder (libopus) for speech at 16, 24 or 48 kHz.

use opusic_c::{Application, Bitrate, Channels, Encoder, InbandFec, Signal};

use crate::{MediaError, SampleRate};

/// Largest Opus packet libopus produces for one frame (RFC 6716 §3.4); a
/// buffer this size never makes [`OpusEncoder::encode`] fail for lack of room.
pub const MAX_OPUS_PACKET: usize = 1275;

/// Encoder settings. [`Default`] suits speech to a WebRTC peer: 32 kbit/s,
/// in-band FEC for 10 % expected loss, complexity 5, no DTX.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OpusEncoderConfig {
    /// 0 (cheapest) ..= 10 (best). The main CPU knob, and the encoder is most
    /// of a call's media cost: with libopus 1.6, 10 costs about 30 % more
    /// than 5 (`BENCHMARKS.md`). 5 is the default for calls per core; raise
    /// it where CPU is plentiful.
    pub complexity: u8,
    /// Target bitrate in bit/s, or `None` for libopus's automatic choice
    /// (which is generous for mono speech: ~50 kbit/s at 48 kHz).
    pub bitrate: Option<u32>,
    /// In-band forward error correction: each packet also carries a coarse
    /// copy of the previous frame, which the receiver's decoder uses when a
    /// packet is lost ([`crate::OpusDecoder::conceal`]).
    pub fec: bool,
    /// Expected packet loss in percent (0..=100). libopus only spends bits on
    /// FEC when this is above zero, and spends more as it rises.
    pub packet_loss_perc: u8,
    /// Discontinuous transmission: send almost nothing during silence. Off by
    /// default: the peer's jitter buffer copes, but a steady packet flow keeps
    /// NAT bindings and RTCP statistics simple.
    pub dtx: bool,
}

impl Default for OpusEncoderConfig {
    fn default() -> Self {
        OpusEncoderConfig { complexity: 5, bitrate: Some(32_000), fec: true, packet_loss_perc: 10, dtx: false }
    }
}

/// A mono Opus encoder in VOIP mode, fed one 20 ms frame per call.
///
/// It takes PCM at its own rate, so the provider's 24 kHz audio is encoded
/// directly (libopus resamples internally, better and cheaper than a separate
/// resampler would): the packets are ordinary 48 kHz-clock Opus for the peer.
pub struct OpusEncoder {
    inner: Encoder,
    rate: SampleRate,
    config: OpusEncoderConfig,
}

impl std::fmt::Debug for OpusEncoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpusEncoder").field("rate", &self.rate).field("config", &self.config).finish_non_exhaustive()
    }
}

pub(crate) fn opus_rate(rate: SampleRate) -> opusic_c::SampleRate {
    match rate {
        SampleRate::Hz8000 => opusic_c::SampleRate::Hz8000,
        SampleRate::Hz16000 => opusic_c::SampleRate::Hz16000,
        SampleRate::Hz24000 => opusic_c::SampleRate::Hz24000,
        SampleRate::Hz48000 => opusic_c::SampleRate::Hz48000,
    }
}

pub(crate) fn opus_error(op: &'static str) -> impl Fn(opusic_c::ErrorCode) -> MediaError {
    move |code| MediaError::Opus { op, message: code.message() }
}

impl OpusEncoder {
    /// Builds an encoder for `rate` with `config`.
    pub fn new(rate: SampleRate, config: OpusEncoderConfig) -> Result<Self, MediaError> {
        if config.complexity > 10 {
            return Err(MediaError::InvalidConfig("opus complexity must be 0..=10"));
        }
        if config.packet_loss_perc > 100 {
            return Err(MediaError::InvalidConfig("opus packet_loss_perc must be 0..=100"));
        }
        if let Some(bps) = config.bitrate
            && !(500..=512_000).contains(&bps)
        {
            return Err(MediaError::InvalidConfig("opus bitrate must be 500..=512000 bit/s"));
        }
        let mut inner =
            Encoder::new(Channels::Mono, opus_rate(rate), Application::Voip).map_err(opus_error("encoder create"))?;
        let set = opus_error("encoder configure");
        inner.set_complexity(config.complexity).map_err(&set)?;
        inner.set_bitrate(config.bitrate.map_or(Bitrate::Auto, Bitrate::Value)).map_err(&set)?;
        inner.set_inband_fec(if config.fec { InbandFec::Mode1 } else { InbandFec::Off }).map_err(&set)?;
        inner.set_packet_loss(config.packet_loss_perc).map_err(&set)?;
        inner.set_dtx(config.dtx).map_err(&set)?;
        inner.set_signal(Signal::Voice).map_err(&set)?;
        Ok(OpusEncoder { inner, rate, config })
    }

    /// Encodes one 20 ms frame (`rate.samples_per_frame()` samples) into
    /// `out` and returns the packet length. [`MAX_OPUS_PACKET`] bytes of `out`
    /// are always enough.
    pub fn encode(&mut self, pcm_20ms: &[i16], out: &mut [u8]) -> Result<usize, MediaError> {
        let expected = self.rate.samples_per_frame();
        if pcm_20ms.len() != expected {
            return Err(MediaError::FrameSize { expected, actual: pcm_20ms.len() });
        }
        self.inner.encode_to_slice(bytemuck::cast_slice(pcm_20ms), out).map_err(opus_error("encode"))
    }

    /// The input sample rate.
    pub fn rate(&self) -> SampleRate {
        self.rate
    }

    /// The settings in force.
    pub fn config(&self) -> &OpusEncoderConfig {
        &self.config
    }

    /// Changes the expected loss (e.g. from RTCP receiver reports), which
    /// scales how many bits FEC gets.
    pub fn set_packet_loss_perc(&mut self, percent: u8) -> Result<(), MediaError> {
        let percent = percent.min(100);
        self.inner.set_packet_loss(percent).map_err(opus_error("encoder configure"))?;
        self.config.packet_loss_perc = percent;
        Ok(())
    }

    /// Changes the target bitrate (e.g. from congestion control).
    pub fn set_bitrate(&mut self, bitrate: Option<u32>) -> Result<(), MediaError> {
        self.inner
            .set_bitrate(bitrate.map_or(Bitrate::Auto, Bitrate::Value))
            .map_err(opus_error("encoder configure"))?;
        self.config.bitrate = bitrate;
        Ok(())
    }

    /// Samples of look-ahead the encoder adds at its rate (its share of the
    /// codec delay).
    pub fn lookahead(&mut self) -> Result<u32, MediaError> {
        self.inner.get_look_ahead().map_err(opus_error("encoder query"))
    }

    /// Forgets the signal history, as for a new stream.
    pub fn reset(&mut self) -> Result<(), MediaError> {
        self.inner.reset().map_err(opus_error("encoder reset"))
    }
}

/// The libopus version linked in, e.g. `"libopus 1.6.1"`.
pub fn libopus_version() -> &'static str {
    opusic_c::version()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_signal::speech_like;

    #[test]
    fn opus_encoder_refuses_a_frame_of_the_wrong_size() {
        let mut enc = OpusEncoder::new(SampleRate::Hz24000, OpusEncoderConfig::default()).unwrap();
        let mut out = [0u8; MAX_OPUS_PACKET];
        assert_eq!(enc.encode(&[0; 960], &mut out), Err(MediaError::FrameSize { expected: 480, actual: 960 }));
    }

    #[test]
    fn opus_encoder_rejects_out_of_range_settings() {
        for config in [
            OpusEncoderConfig { complexity: 11, ..Default::default() },
            OpusEncoderConfig { packet_loss_perc: 101, ..Default::default() },
            OpusEncoderConfig { bitrate: Some(100), ..Default::default() },
        ] {
            assert!(matches!(OpusEncoder::new(SampleRate::Hz48000, config), Err(MediaError::InvalidConfig(_))));
        }
    }

    #[test]
    fn opus_encoder_keeps_close_to_the_target_bitrate_at_every_rate() {
        for rate in SampleRate::ALL {
            let mut enc = OpusEncoder::new(rate, OpusEncoderConfig::default()).unwrap();
            let speech = speech_like(rate, 2_000, 11);
            let mut out = [0u8; MAX_OPUS_PACKET];
            let mut bytes = 0;
            for frame in speech.chunks_exact(rate.samples_per_frame()) {
                bytes += enc.encode(frame, &mut out).unwrap();
            }
            let kbps = bytes as f64 * 8.0 / 2.0 / 1000.0;
            assert!((10.0..=40.0).contains(&kbps), "{rate}: {kbps} kbit/s");
        }
    }

    #[test]
    fn the_linked_libopus_is_the_bundled_one() {
        assert!(libopus_version().contains("1.6"), "{}", libopus_version());
    }
}
