//! Caller -> provider: RTP Opus packets in, PCM at the provider's rate out.
//!
//! This is the inbound media path of every WebRTC leg (browser, WhatsApp, a
//! human agent's console), as the gateway ships it.

use std::time::Instant;

use crate::jitter_buffer::{JitterBuffer, JitterConfig, JitterOutput, PushOutcome};
use crate::opus_decoder::{MAX_OPUS_PACKET_MS, OpusDecoder};
use crate::{MediaError, SampleRate};

/// What [`InboundChain::pop_frame`] produced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InboundFrame {
    /// Decoded from a received packet.
    Decoded,
    /// Rebuilt for a lost or unreadable packet: from the next packet's FEC
    /// (`fec: true`) or by PLC.
    Concealed {
        /// Whether the next packet was available for FEC.
        fec: bool,
    },
}

/// Jitter buffer + Opus decoder at the provider's rate: the whole inbound
/// media path of a WebRTC leg. Decoding straight to 16 or 24 kHz means no
/// resampler.
///
/// Event-driven, because a speech model buffers its own input: in-order
/// packets come out of [`pop_frame`](Self::pop_frame) the moment they are
/// pushed; the chain only waits when a packet is missing, for as long as the
/// measured jitter suggests, then conceals it (FEC or PLC). Call `pop_frame`
/// in a loop after every [`push`](Self::push) and on every 20 ms tick.
pub struct InboundChain {
    jitter: JitterBuffer,
    decoder: OpusDecoder,
    rate: SampleRate,
    /// Decoder output; holds the longest Opus packet.
    scratch: Vec<i16>,
    /// `scratch[carry_pos..carry_end]`: decoded frames not handed out yet
    /// (only when a packet carries more than one 20 ms frame).
    carry_pos: usize,
    carry_end: usize,
    /// What the carried frames were.
    carry_kind: InboundFrame,
    decode_errors: u64,
}

impl std::fmt::Debug for InboundChain {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InboundChain")
            .field("rate", &self.rate)
            .field("jitter", &self.jitter)
            .field("decode_errors", &self.decode_errors)
            .finish_non_exhaustive()
    }
}

impl InboundChain {
    /// A chain decoding to `rate` behind a jitter buffer configured by `jitter`.
    pub fn new(jitter: JitterConfig, rate: SampleRate) -> Result<Self, MediaError> {
        Ok(InboundChain {
            jitter: JitterBuffer::new(jitter)?,
            decoder: OpusDecoder::new(rate)?,
            rate,
            scratch: vec![0; rate.samples_per_ms() * MAX_OPUS_PACKET_MS],
            carry_pos: 0,
            carry_end: 0,
            carry_kind: InboundFrame::Decoded,
            decode_errors: 0,
        })
    }

    /// Takes in one RTP packet's sequence number, timestamp and Opus payload.
    pub fn push(&mut self, seq: u16, rtp_timestamp: u32, payload: &[u8], now: Instant) -> PushOutcome {
        self.jitter.push(seq, rtp_timestamp, payload, now)
    }

    /// Fills `out` (one 20 ms frame at the chain's rate) with the next frame
    /// that is ready at `now`, or returns `None` when nothing is. A packet
    /// libopus cannot read, or whose length is not a whole number of frames,
    /// is concealed instead (and counted in
    /// [`decode_errors`](Self::decode_errors)); a packet carrying several
    /// frames comes out one frame per call.
    pub fn pop_frame(&mut self, now: Instant, out: &mut [i16]) -> Result<Option<InboundFrame>, MediaError> {
        let frame = self.rate.samples_per_frame();
        if out.len() != frame {
            return Err(MediaError::FrameSize { expected: frame, actual: out.len() });
        }
        if self.carry_pos < self.carry_end {
            out.copy_from_slice(&self.scratch[self.carry_pos..self.carry_pos + frame]);
            self.carry_pos += frame;
            return Ok(Some(self.carry_kind));
        }
        let (result, kind) = match self.jitter.pop_ready(now) {
            None => return Ok(None),
            Some(JitterOutput::Packet(payload)) => {
                (self.decoder.decode(payload, &mut self.scratch), InboundFrame::Decoded)
            }
            Some(JitterOutput::Lost { next }) => {
                (self.decoder.conceal(next, &mut self.scratch), InboundFrame::Concealed { fec: next.is_some() })
            }
        };
        let (samples, kind) = match result {
            Ok(n) if n >= frame && n % frame == 0 => (n, kind),
            Ok(_) | Err(_) => {
                self.decode_errors += 1;
                (self.decoder.conceal(None, &mut self.scratch)?.min(frame), InboundFrame::Concealed { fec: false })
            }
        };
        out.copy_from_slice(&self.scratch[..frame]);
        self.carry_pos = frame;
        self.carry_end = samples;
        self.carry_kind = kind;
        Ok(Some(kind))
    }

    /// The jitter buffer (for its statistics).
    pub fn jitter(&self) -> &JitterBuffer {
        &self.jitter
    }

    /// The output rate.
    pub fn rate(&self) -> SampleRate {
        self.rate
    }

    /// Packets that failed to decode (and were concealed).
    pub fn decode_errors(&self) -> u64 {
        self.decode_errors
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::opus_decoder::OpusDecoder;
    use crate::opus_encoder::{MAX_OPUS_PACKET, OpusEncoder, OpusEncoderConfig};
    use crate::test_signal::{best_lag, correlation, highpass, speech_like};
    use std::time::Duration;

    fn packets(ms: u32) -> Vec<Vec<u8>> {
        let rate = SampleRate::Hz48000;
        let mut enc = OpusEncoder::new(rate, OpusEncoderConfig::default()).unwrap();
        let mut buf = [0u8; MAX_OPUS_PACKET];
        speech_like(rate, ms, 17)
            .chunks_exact(rate.samples_per_frame())
            .map(|f| {
                let n = enc.encode(f, &mut buf).unwrap();
                buf[..n].to_vec()
            })
            .collect()
    }

    /// Every frame ready at `now`.
    fn drain(chain: &mut InboundChain, now: Instant, out: &mut [i16], pcm: &mut Vec<i16>) -> Vec<InboundFrame> {
        let mut kinds = Vec::new();
        while let Some(kind) = chain.pop_frame(now, out).unwrap() {
            kinds.push(kind);
            pcm.extend_from_slice(out);
        }
        kinds
    }

    #[test]
    fn inbound_chain_turns_a_clean_stream_into_24khz_speech_without_delay() {
        let rate = SampleRate::Hz24000;
        let mut chain = InboundChain::new(JitterConfig::default(), rate).unwrap();
        let t0 = Instant::now();
        let mut out = vec![0i16; rate.samples_per_frame()];
        let mut pcm = Vec::new();
        for (i, p) in packets(2_000).iter().enumerate() {
            let now = t0 + Duration::from_millis(20 * i as u64);
            chain.push(i as u16, (i * 960) as u32, p, now);
            assert_eq!(drain(&mut chain, now, &mut out, &mut pcm), [InboundFrame::Decoded], "released on arrival");
        }
        // Speech band only: see the Opus round-trip test for why.
        let reference = highpass(&speech_like(rate, 2_000, 17), rate, 300.0);
        let pcm = highpass(&pcm, rate, 300.0);
        let window = rate.samples_per_ms() * 1_000;
        let lag = best_lag(&reference[4_800..], &pcm[4_800..], 2_400, window);
        let corr = correlation(&reference[4_800..4_800 + window], &pcm[4_800 + lag..4_800 + lag + window]);
        assert!(corr > 0.95, "correlation {corr:.3} at lag {lag}");
        assert_eq!(chain.jitter().stats().lost, 0);
    }

    #[test]
    fn inbound_chain_waits_for_a_missing_packet_then_conceals_it_with_fec() {
        let rate = SampleRate::Hz16000;
        let mut chain = InboundChain::new(JitterConfig::default(), rate).unwrap();
        let t0 = Instant::now();
        let mut out = vec![0i16; rate.samples_per_frame()];
        let mut pcm = Vec::new();
        let mut kinds = Vec::new();
        for (i, p) in packets(600).iter().enumerate() {
            let now = t0 + Duration::from_millis(20 * i as u64);
            if i != 10 {
                chain.push(i as u16, (i * 960) as u32, p, now);
            }
            kinds.extend(drain(&mut chain, now, &mut out, &mut pcm));
        }
        kinds.extend(drain(&mut chain, t0 + Duration::from_secs(2), &mut out, &mut pcm));
        assert!(kinds.contains(&InboundFrame::Concealed { fec: true }), "{kinds:?}");
        assert_eq!(kinds.len(), 30, "one frame per packet, the lost one concealed");
        assert_eq!(chain.jitter().stats().lost, 1);
    }

    /// Glues two 20 ms packets of the same configuration into one 40 ms
    /// packet (RFC 6716 code 3, VBR, two frames).
    fn forty_ms_packet(a: &[u8], b: &[u8]) -> Vec<u8> {
        assert_eq!(a[0], b[0], "both frames need the same TOC");
        let first = a.len() - 1;
        assert!(first < 252);
        let mut p = vec![a[0] | 0x03, 0x82, first as u8];
        p.extend_from_slice(&a[1..]);
        p.extend_from_slice(&b[1..]);
        p
    }

    #[test]
    fn inbound_chain_splits_a_40ms_packet_into_two_frames() {
        let rate = SampleRate::Hz48000;
        let ps = packets(200);
        let (a, b) = (&ps[5], &ps[6]);
        let glued = forty_ms_packet(a, b);
        let mut reference = OpusDecoder::new(rate).unwrap();
        let mut expected = vec![0i16; 1_920];
        assert_eq!(reference.decode(&glued, &mut expected).unwrap(), 1_920);

        let mut chain = InboundChain::new(JitterConfig::default(), rate).unwrap();
        let t0 = Instant::now();
        chain.push(0, 0, &glued, t0);
        let mut out = vec![0i16; 960];
        assert_eq!(chain.pop_frame(t0, &mut out).unwrap(), Some(InboundFrame::Decoded));
        assert_eq!(out, expected[..960]);
        assert_eq!(chain.pop_frame(t0, &mut out).unwrap(), Some(InboundFrame::Decoded));
        assert_eq!(out, expected[960..]);
        assert_eq!(chain.pop_frame(t0, &mut out).unwrap(), None);
        assert!(matches!(
            chain.pop_frame(t0, &mut [0i16; 10]),
            Err(MediaError::FrameSize { expected: 960, actual: 10 })
        ));
    }

    #[test]
    fn an_unreadable_packet_is_concealed_not_passed_on() {
        let rate = SampleRate::Hz24000;
        let mut chain = InboundChain::new(JitterConfig::default(), rate).unwrap();
        let t0 = Instant::now();
        let ps = packets(100);
        let mut out = vec![0i16; rate.samples_per_frame()];
        chain.push(0, 0, &ps[0], t0);
        assert_eq!(chain.pop_frame(t0, &mut out).unwrap(), Some(InboundFrame::Decoded));
        // A TOC byte promising a 2.5 ms frame: not a whole 20 ms frame.
        chain.push(1, 960, &[0x84, 0x00, 0x00], t0);
        assert_eq!(chain.pop_frame(t0, &mut out).unwrap(), Some(InboundFrame::Concealed { fec: false }));
        assert_eq!(chain.decode_errors(), 1);
    }
}
