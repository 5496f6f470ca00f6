//! Caller -> provider: RTP Opus packets in, PCM at the provider's rate out.

use std::time::Instant;

use crate::jitter_buffer::{JitterBuffer, JitterConfig, JitterOutput, PushOutcome};
use crate::opus_decoder::{MAX_OPUS_PACKET_MS, OpusDecoder};
use crate::{MediaError, SampleRate};

/// Consecutive ticks with nothing to play during which the decoder's PLC is
/// used (it fades the last sound out naturally); after that the chain emits
/// plain silence and spends no CPU on a silent caller (DTX, hold, mute).
const PLC_TICKS: u32 = 10;

/// Upper bound on jitter-buffer pops per tick (only packets shorter than a
/// frame need more than one).
const MAX_POPS_PER_TICK: usize = 8;

/// What [`InboundChain::next_frame`] produced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InboundFrame {
    /// Decoded from received packets.
    Decoded,
    /// Rebuilt for a lost packet: from the next packet's FEC (`fec: true`) or by PLC.
    Concealed {
        /// Whether the next packet was available for FEC.
        fec: bool,
    },
    /// Nothing to play (not started, or the caller has been silent for a
    /// while): digital silence, which the provider should still receive so its
    /// own VAD sees the silence.
    Silence,
}

/// Jitter buffer + Opus decoder at the provider's rate: the whole inbound
/// media path of a WebRTC caller, one [`next_frame`](Self::next_frame) per
/// 20 ms tick. Decoding straight to 16 or 24 kHz means no resampler.
pub struct InboundChain {
    jitter: JitterBuffer,
    decoder: OpusDecoder,
    rate: SampleRate,
    /// Decoder output; holds the longest Opus packet.
    scratch: Vec<i16>,
    /// `scratch[carry_pos..carry_end]`: decoded samples not handed out yet
    /// (only when a packet is longer than a frame).
    carry_pos: usize,
    carry_end: usize,
    /// Ticks since the last decoded or concealed frame.
    idle_ticks: u32,
    decoded_any: bool,
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
            idle_ticks: 0,
            decoded_any: false,
            decode_errors: 0,
        })
    }

    /// Takes in one RTP packet's sequence number, timestamp and Opus payload.
    pub fn push(&mut self, seq: u16, rtp_timestamp: u32, payload: &[u8], now: Instant) -> PushOutcome {
        self.jitter.push(seq, rtp_timestamp, payload, now)
    }

    /// Fills `out` with the next 20 ms frame at the chain's rate. Call once
    /// per 20 ms tick. A packet that fails to decode is concealed instead (and
    /// counted in [`decode_errors`](Self::decode_errors)).
    pub fn next_frame(&mut self, now: Instant, out: &mut [i16]) -> Result<InboundFrame, MediaError> {
        let frame = self.rate.samples_per_frame();
        if out.len() != frame {
            return Err(MediaError::FrameSize { expected: frame, actual: out.len() });
        }
        let mut filled = self.take_carry(out);
        let mut kind = if filled > 0 { Some(InboundFrame::Decoded) } else { None };
        let mut pops = 0;
        while filled < frame && pops < MAX_POPS_PER_TICK {
            pops += 1;
            let (produced, this_kind) = match self.jitter.pop(now) {
                Some(JitterOutput::Packet(packet)) => match self.decoder.decode(packet, &mut self.scratch) {
                    Ok(n) => (n, InboundFrame::Decoded),
                    Err(_) => {
                        self.decode_errors += 1;
                        let n = self.decoder.conceal(None, &mut self.scratch)?;
                        (n, InboundFrame::Concealed { fec: false })
                    }
                },
                Some(JitterOutput::Lost { next }) => {
                    let n = self.decoder.conceal(next, &mut self.scratch)?;
                    (n, InboundFrame::Concealed { fec: next.is_some() })
                }
                None => break,
            };
            self.decoded_any = true;
            self.idle_ticks = 0;
            kind.get_or_insert(this_kind);
            let n = produced.min(frame - filled);
            out[filled..filled + n].copy_from_slice(&self.scratch[..n]);
            filled += n;
            self.carry_pos = n;
            self.carry_end = produced;
        }
        if filled == frame {
            return Ok(kind.unwrap_or(InboundFrame::Decoded));
        }
        if filled > 0 {
            out[filled..].fill(0);
            return Ok(kind.unwrap_or(InboundFrame::Decoded));
        }
        // Nothing to play this tick.
        self.idle_ticks = self.idle_ticks.saturating_add(1);
        if self.decoded_any && self.idle_ticks <= PLC_TICKS {
            self.decoder.conceal(None, out)?;
            return Ok(InboundFrame::Concealed { fec: false });
        }
        out.fill(0);
        Ok(InboundFrame::Silence)
    }

    fn take_carry(&mut self, out: &mut [i16]) -> usize {
        let n = (self.carry_end - self.carry_pos).min(out.len());
        out[..n].copy_from_slice(&self.scratch[self.carry_pos..self.carry_pos + n]);
        self.carry_pos += n;
        n
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

    #[test]
    fn inbound_chain_turns_a_clean_stream_into_24khz_speech() {
        let rate = SampleRate::Hz24000;
        let mut chain = InboundChain::new(JitterConfig::default(), rate).unwrap();
        let t0 = Instant::now();
        let mut out = vec![0i16; rate.samples_per_frame()];
        let mut pcm = Vec::new();
        for (i, p) in packets(2_000).iter().enumerate() {
            let now = t0 + Duration::from_millis(20 * i as u64);
            chain.push(i as u16, (i * 960) as u32, p, now);
            chain.next_frame(now + Duration::from_millis(5), &mut out).unwrap();
            pcm.extend_from_slice(&out);
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
    fn inbound_chain_conceals_a_lost_packet_with_fec() {
        let rate = SampleRate::Hz16000;
        let mut chain = InboundChain::new(JitterConfig::default(), rate).unwrap();
        let t0 = Instant::now();
        let mut out = vec![0i16; rate.samples_per_frame()];
        let mut kinds = Vec::new();
        let ps = packets(600);
        for (i, p) in ps.iter().enumerate() {
            let now = t0 + Duration::from_millis(20 * i as u64);
            if i != 10 {
                chain.push(i as u16, (i * 960) as u32, p, now);
            }
            // Tick with a 45 ms delay so the packet after a loss is already here.
            let tick = now + Duration::from_millis(5);
            kinds.push(chain.next_frame(tick, &mut out).unwrap());
        }
        assert!(kinds.contains(&InboundFrame::Concealed { fec: true }), "{kinds:?}");
        assert_eq!(chain.jitter().stats().lost, 1);
    }

    #[test]
    fn inbound_chain_goes_quiet_after_the_caller_stops_sending() {
        let rate = SampleRate::Hz24000;
        let mut chain = InboundChain::new(JitterConfig::default(), rate).unwrap();
        let t0 = Instant::now();
        let mut out = vec![0i16; rate.samples_per_frame()];
        assert_eq!(chain.next_frame(t0, &mut out).unwrap(), InboundFrame::Silence);
        for (i, p) in packets(200).iter().enumerate() {
            let now = t0 + Duration::from_millis(20 * i as u64);
            chain.push(i as u16, (i * 960) as u32, p, now);
            chain.next_frame(now, &mut out).unwrap();
        }
        let mut last = InboundFrame::Decoded;
        for i in 10..40 {
            last = chain.next_frame(t0 + Duration::from_millis(20 * i), &mut out).unwrap();
        }
        assert_eq!(last, InboundFrame::Silence);
        assert!(out.iter().all(|&s| s == 0));
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
    fn inbound_chain_splits_a_40ms_packet_over_two_ticks() {
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
        let tick = t0 + Duration::from_millis(40);
        assert_eq!(chain.next_frame(tick, &mut out).unwrap(), InboundFrame::Decoded);
        assert_eq!(out, expected[..960]);
        assert_eq!(chain.next_frame(tick, &mut out).unwrap(), InboundFrame::Decoded);
        assert_eq!(out, expected[960..]);
        assert!(matches!(
            chain.next_frame(t0, &mut [0i16; 10]),
            Err(MediaError::FrameSize { expected: 960, actual: 10 })
        ));
    }
}
