//! Opus encoder (libopus) for speech at 8, 16, 24 or 48 kHz.
//!
//! **Silence costs nothing.** Each side of a call is quiet most of the time (an agent
//! says nothing while the caller talks, and the other way round), and libopus spends as
//! much on 20 ms of silence as on speech. [`OpusEncoder::encode_quiet`] gives a frame
//! nobody would hear a packet of silence the encoder made once, at start, instead of an
//! encode. The encoder runs one more frame after the last sound (its look-ahead still
//! holds the end of it) and is reset before the next sound: the decoder has just decoded
//! silence, and a reset encoder assumes exactly that, so the two agree again. Both the
//! WebRTC peers' outbound audio and call recordings code silence this way.

use opusic_c::{Application, Bandwidth, Bitrate, Channels, Encoder, InbandFec, Signal};

use crate::{MAX_FRAME_SAMPLES, MediaError, SampleRate};

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
    /// The widest audio coded, as a sample rate (audio up to half of it):
    /// `Some(Hz16000)` keeps libopus in SILK mode, the cheap one. `None`:
    /// everything the input rate carries.
    pub max_rate: Option<SampleRate>,
}

impl Default for OpusEncoderConfig {
    fn default() -> Self {
        OpusEncoderConfig {
            complexity: 5,
            bitrate: Some(32_000),
            fec: true,
            packet_loss_perc: 10,
            dtx: false,
            max_rate: None,
        }
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
    /// This encoder's packet for 20 ms of digital silence.
    silence: Vec<u8>,
    /// Quiet frames the encoder still codes after the last sound (see [`HANGOVER_FRAMES`]).
    hangover: u8,
    /// Quiet frames were given the stored packet: reset before the next encode.
    idle: bool,
    /// Frames libopus coded (the others were the stored silence packet).
    encodes: u64,
}

/// Quiet frames the encoder keeps coding after the last sound: one carries
/// the 6.5 ms still in its look-ahead out.
const HANGOVER_FRAMES: u8 = 1;

/// Digital silence at any rate.
pub(crate) static SILENCE: [i16; MAX_FRAME_SAMPLES] = [0; MAX_FRAME_SAMPLES];

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
        if let Some(max_rate) = config.max_rate {
            inner.set_max_bandwidth(max_bandwidth(max_rate)).map_err(&set)?;
        }
        // The silence packet: what this encoder makes of digital silence once it has
        // settled on it (the first packet after a reset may differ).
        let mut packet = [0u8; MAX_OPUS_PACKET];
        let zeros = bytemuck::cast_slice(&SILENCE[..rate.samples_per_frame()]);
        let mut len = 0;
        for _ in 0..3 {
            len = inner.encode_to_slice(zeros, &mut packet).map_err(opus_error("encode"))?;
        }
        inner.reset().map_err(opus_error("encoder reset"))?;
        let silence = packet[..len].to_vec();
        Ok(OpusEncoder { inner, rate, config, silence, hangover: 0, idle: false, encodes: 0 })
    }

    /// Encodes one 20 ms frame (`rate.samples_per_frame()` samples) into
    /// `out` and returns the packet length. [`MAX_OPUS_PACKET`] bytes of `out`
    /// are always enough.
    pub fn encode(&mut self, pcm_20ms: &[i16], out: &mut [u8]) -> Result<usize, MediaError> {
        self.check_size(pcm_20ms)?;
        if std::mem::take(&mut self.idle) {
            self.reset()?;
        }
        self.hangover = HANGOVER_FRAMES;
        self.code(pcm_20ms, out)
    }

    /// A frame with nothing to hear in it (digital silence, or sound far below hearing):
    /// coded while the encoder still holds the end of the last sound, otherwise the
    /// stored silence packet, at no cost (see the module documentation).
    pub fn encode_quiet(&mut self, pcm_20ms: &[i16], out: &mut [u8]) -> Result<usize, MediaError> {
        self.check_size(pcm_20ms)?;
        if self.hangover > 0 {
            self.hangover -= 1;
            return self.code(pcm_20ms, out);
        }
        self.idle = true;
        let (needed, actual) = (self.silence.len(), out.len());
        let packet = out.get_mut(..needed).ok_or(MediaError::BufferTooSmall { needed, actual })?;
        packet.copy_from_slice(&self.silence);
        Ok(needed)
    }

    /// Encodes 20 ms of digital silence: [`encode_quiet`](Self::encode_quiet) on zeros.
    pub fn encode_silence(&mut self, out: &mut [u8]) -> Result<usize, MediaError> {
        self.encode_quiet(&SILENCE[..self.rate.samples_per_frame()], out)
    }

    /// The stream went on without this encoder (a packet made elsewhere took this
    /// frame's place): it is reset before its next encode, as after silence.
    pub fn skip(&mut self) {
        self.idle = true;
        self.hangover = 0;
    }

    /// Frames libopus coded so far (the others were the stored silence packet).
    pub fn encodes(&self) -> u64 {
        self.encodes
    }

    fn check_size(&self, pcm_20ms: &[i16]) -> Result<(), MediaError> {
        let expected = self.rate.samples_per_frame();
        if pcm_20ms.len() != expected {
            return Err(MediaError::FrameSize { expected, actual: pcm_20ms.len() });
        }
        Ok(())
    }

    fn code(&mut self, pcm_20ms: &[i16], out: &mut [u8]) -> Result<usize, MediaError> {
        self.encodes += 1;
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

/// The largest audio band libopus may code for `max_rate`.
fn max_bandwidth(max_rate: SampleRate) -> Bandwidth {
    match max_rate {
        SampleRate::Hz8000 => Bandwidth::Narrow,
        SampleRate::Hz16000 => Bandwidth::Wide,
        SampleRate::Hz24000 => Bandwidth::Superwide,
        SampleRate::Hz48000 => Bandwidth::Full,
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

    /// Talk spurts with silence between, as a WebRTC peer's outbound audio: the silence
    /// costs no encode (one frame after each spurt), decodes as silence, and the speech
    /// decodes as it does when every frame is encoded, the one after the silence too.
    #[test]
    fn silence_is_the_stored_packet_and_the_speech_is_unchanged() {
        use crate::OpusDecoder;
        use crate::test_signal::snr_db;
        let rate = SampleRate::Hz24000;
        let n = rate.samples_per_frame();
        let speech = speech_like(rate, 4_000, 5);
        let talking = |frame: usize| (10..60).contains(&frame) || (120..170).contains(&frame);
        let run = |skip_silence: bool| {
            let mut enc = OpusEncoder::new(rate, OpusEncoderConfig::default()).unwrap();
            let mut dec = OpusDecoder::new(rate).unwrap();
            let (mut out, mut pcm) = ([0u8; MAX_OPUS_PACKET], vec![0i16; n]);
            let (mut decoded, mut silence_packets) = (Vec::new(), Vec::new());
            for frame in 0..200 {
                let len = if talking(frame) {
                    enc.encode(&speech[frame * n..(frame + 1) * n], &mut out).unwrap()
                } else if skip_silence {
                    enc.encode_silence(&mut out).unwrap()
                } else {
                    enc.encode(&vec![0; n], &mut out).unwrap()
                };
                if !talking(frame) && frame > 0 && !talking(frame - 1) {
                    silence_packets.push(out[..len].to_vec());
                }
                assert_eq!(dec.decode(&out[..len], &mut pcm).unwrap(), n);
                decoded.extend_from_slice(&pcm);
            }
            (enc.encodes(), decoded, silence_packets)
        };
        let (skipped, s, packets) = run(true);
        let (every, f, _) = run(false);
        assert_eq!((skipped, every), (50 + 1 + 50 + 1, 200), "speech and one frame after each spurt");
        assert!(packets.windows(2).all(|w| w[0] == w[1]), "one stored packet for silence");
        assert!(packets[0].len() <= 24, "{} bytes: a packet of speech is about 80", packets[0].len());
        let window = |pcm: &[i16], frames: std::ops::Range<usize>| pcm[frames.start * n..frames.end * n].to_vec();
        // The silence, a frame clear of each spurt (the decoder's tail rings on briefly).
        for quiet in [0..9, 62..119, 172..200] {
            let peak = window(&s, quiet.clone()).iter().map(|x| x.unsigned_abs()).max().unwrap();
            assert!(peak <= 64, "frames {quiet:?} not silent: {peak}");
        }
        for talk in [10..60, 120..170] {
            let (a, b) = (window(&s, talk.clone()), window(&f, talk.clone()));
            let snr = snr_db(&b, &a);
            assert!(snr > 8.0, "frames {talk:?}: {snr:.1} dB from the fully encoded speech");
            let level = (crate::dbfs(&a) - crate::dbfs(&b)).abs();
            assert!(level < 0.5, "frames {talk:?}: level differs by {level:.2} dB");
        }
    }

    #[test]
    fn the_linked_libopus_is_the_bundled_one() {
        assert!(libopus_version().contains("1.6"), "{}", libopus_version());
    }
}
