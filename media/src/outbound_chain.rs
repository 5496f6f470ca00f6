//! Provider -> caller: bursty PCM in, one Opus packet per 20 ms tick out.

use crate::opus_encoder::{OpusEncoder, OpusEncoderConfig};
use crate::pacer::{ItemKey, PacedFrame, Pacer, Played};
use crate::{MediaError, SampleRate, pcm16};

/// One tick's output of an [`OutboundChain`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboundPacket {
    /// Bytes of Opus payload written.
    pub len: usize,
    /// What the frame held (item audio or comfort silence).
    pub frame: PacedFrame,
}

/// Pacer + Opus encoder at the provider's rate: the whole outbound media
/// path to a WebRTC caller. Encoding straight from 24 kHz means no resampler;
/// the RTP timestamp still advances 960 per packet (Opus RTP runs at 48 kHz).
pub struct OutboundChain {
    pacer: Pacer,
    encoder: OpusEncoder,
    /// The frame being encoded; kept so it can be recorded or mixed.
    frame: Vec<i16>,
    /// Conversion buffer for PCM16 byte input; grows to the largest chunk seen.
    pcm: Vec<i16>,
}

impl std::fmt::Debug for OutboundChain {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OutboundChain")
            .field("pacer", &self.pacer)
            .field("encoder", &self.encoder)
            .finish_non_exhaustive()
    }
}

impl OutboundChain {
    /// A chain pacing and encoding audio at `rate`.
    pub fn new(rate: SampleRate, config: OpusEncoderConfig) -> Result<Self, MediaError> {
        Ok(OutboundChain {
            pacer: Pacer::new(rate),
            encoder: OpusEncoder::new(rate, config)?,
            frame: vec![0; rate.samples_per_frame()],
            pcm: Vec::with_capacity(rate.samples_per_ms() * 500),
        })
    }

    /// Queues a chunk of `item`'s audio.
    pub fn push(&mut self, item: ItemKey, samples: &[i16]) {
        self.pacer.push(item, samples);
    }

    /// Queues a chunk given as PCM16 little-endian bytes (a provider audio
    /// delta after base64 decoding).
    pub fn push_le_bytes(&mut self, item: ItemKey, bytes: &[u8]) -> Result<(), MediaError> {
        self.pcm.clear();
        pcm16::le_bytes_to_samples(bytes, &mut self.pcm)?;
        self.pacer.push(item, &self.pcm);
        Ok(())
    }

    /// Takes the next 20 ms frame from the pacer and encodes it into `out`
    /// (1275 bytes always suffice). Call once per 20 ms tick.
    pub fn next_packet(&mut self, out: &mut [u8]) -> Result<OutboundPacket, MediaError> {
        let frame = self.pacer.next_frame(&mut self.frame);
        let len = self.encoder.encode(&self.frame, out)?;
        Ok(OutboundPacket { len, frame })
    }

    /// The PCM of the frame last encoded (for recording or an echo reference).
    pub fn last_frame(&self) -> &[i16] {
        &self.frame
    }

    /// Drops everything queued (barge-in); see [`Pacer::clear`].
    pub fn clear(&mut self) -> Option<Played> {
        self.pacer.clear()
    }

    /// The pacer (queue length, played time per item).
    pub fn pacer(&self) -> &Pacer {
        &self.pacer
    }

    /// The encoder, e.g. to follow congestion control with a new bitrate.
    pub fn encoder_mut(&mut self) -> &mut OpusEncoder {
        &mut self.encoder
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::opus_decoder::OpusDecoder;
    use crate::opus_encoder::MAX_OPUS_PACKET;
    use crate::test_signal::speech_like;

    #[test]
    fn outbound_chain_sends_a_packet_every_tick_even_when_idle() {
        let rate = SampleRate::Hz24000;
        let mut chain = OutboundChain::new(rate, OpusEncoderConfig::default()).unwrap();
        let mut decoder = OpusDecoder::new(SampleRate::Hz48000).unwrap();
        let mut packet = [0u8; MAX_OPUS_PACKET];
        let mut pcm = [0i16; 960];
        let item = ItemKey::new("item_1");
        let speech = speech_like(rate, 100, 3);
        let mut bytes = Vec::new();
        pcm16::samples_to_le_bytes(&speech, &mut bytes);
        chain.push_le_bytes(item.clone(), &bytes).unwrap();
        let mut audio = 0;
        for _ in 0..10 {
            let out = chain.next_packet(&mut packet).unwrap();
            assert!(out.len > 0);
            assert_eq!(decoder.decode(&packet[..out.len], &mut pcm).unwrap(), 960);
            if out.frame.item() == Some(&item) {
                audio += 1;
            }
        }
        assert_eq!(audio, 5);
        assert!(chain.pacer().is_idle());
        assert_eq!(chain.pacer().played_ms(&item), Some(100));
        assert!(chain.last_frame().iter().all(|&s| s == 0));
    }

    #[test]
    fn outbound_chain_clear_reports_the_played_position() {
        let rate = SampleRate::Hz24000;
        let mut chain = OutboundChain::new(rate, OpusEncoderConfig::default()).unwrap();
        let mut packet = [0u8; MAX_OPUS_PACKET];
        let item = ItemKey::new("item_2");
        chain.push(item.clone(), &speech_like(rate, 1_000, 4));
        for _ in 0..7 {
            chain.next_packet(&mut packet).unwrap();
        }
        let played = chain.clear().unwrap();
        assert_eq!(played.item, item);
        assert_eq!(played.played_ms, 140);
        assert_eq!(played.dropped_ms, 860);
        assert!(chain.next_packet(&mut packet).unwrap().frame.is_silence());
        assert!(matches!(chain.push_le_bytes(item, &[1, 2, 3]), Err(MediaError::OddByteCount(3))));
    }
}
