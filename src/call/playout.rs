//! Agent audio waiting to be played, in the provider's output format: a pacer of PCM16
//! samples, or of G.711 codes when the provider's μ-law goes straight to a phone line.

use media::{Cleared, ItemKey, PacedFrame, Pacer, SampleRate};

use super::legs::AgentFrame;
use crate::providers::{AgentAudio, AudioFormat};

/// μ-law silence (the code of a zero sample).
const MULAW_SILENCE: u8 = 0xFF;
/// A-law silence.
const ALAW_SILENCE: u8 = 0xD5;

/// The agent's playout queue and the frame last taken from it.
pub enum Playout {
    Pcm16 { pacer: Pacer<i16>, frame: Vec<i16> },
    G711 { pacer: Pacer<u8>, frame: Vec<u8> },
}

impl Playout {
    /// A queue for agent audio in `format`.
    pub fn new(format: AudioFormat) -> Self {
        match format {
            AudioFormat::Pcm16(rate) => {
                Self::Pcm16 { pacer: Pacer::new(rate), frame: vec![0; rate.samples_per_frame()] }
            }
            AudioFormat::Mulaw | AudioFormat::Alaw => {
                let silence = if format == AudioFormat::Mulaw { MULAW_SILENCE } else { ALAW_SILENCE };
                let rate = SampleRate::Hz8000;
                Self::G711 { pacer: Pacer::with_silence(rate, silence), frame: vec![silence; rate.samples_per_frame()] }
            }
        }
    }

    /// Queues a chunk of `item`'s audio; false when it is not in this queue's format.
    pub fn push(&mut self, item: ItemKey, audio: &AgentAudio) -> bool {
        match (self, audio) {
            (Self::Pcm16 { pacer, .. }, AgentAudio::Pcm16(pcm)) => pacer.push(item, pcm),
            (Self::G711 { pacer, .. }, AgentAudio::G711(codes)) => pacer.push(item, codes),
            _ => return false,
        }
        true
    }

    /// Takes the next 20 ms frame into [`Self::frame`].
    pub fn next_frame(&mut self) -> PacedFrame {
        match self {
            Self::Pcm16 { pacer, frame } => pacer.next_frame(frame),
            Self::G711 { pacer, frame } => pacer.next_frame(frame),
        }
    }

    /// Fills [`Self::frame`] with silence, leaving the queue as it is (a held barge-in).
    pub fn hold(&mut self) {
        match self {
            Self::Pcm16 { pacer, frame } => frame.fill(pacer.silence()),
            Self::G711 { pacer, frame } => frame.fill(pacer.silence()),
        }
    }

    /// The frame last taken (or held).
    pub fn frame(&self) -> AgentFrame<'_> {
        match self {
            Self::Pcm16 { frame, .. } => AgentFrame::Pcm16(frame),
            Self::G711 { frame, .. } => AgentFrame::G711(frame),
        }
    }

    /// Drops everything queued (barge-in).
    pub fn clear(&mut self) -> Option<Cleared> {
        match self {
            Self::Pcm16 { pacer, .. } => pacer.clear(),
            Self::G711 { pacer, .. } => pacer.clear(),
        }
    }

    /// Whether nothing is queued.
    pub fn is_idle(&self) -> bool {
        match self {
            Self::Pcm16 { pacer, .. } => pacer.is_idle(),
            Self::G711 { pacer, .. } => pacer.is_idle(),
        }
    }

    /// The sample rate.
    pub fn rate(&self) -> SampleRate {
        match self {
            Self::Pcm16 { pacer, .. } => pacer.rate(),
            Self::G711 { pacer, .. } => pacer.rate(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_mulaw_playout_holds_in_mulaw_silence_and_refuses_pcm() {
        let mut playout = Playout::new(AudioFormat::Mulaw);
        let item = ItemKey::new("a");
        assert!(!playout.push(item.clone(), &AgentAudio::Pcm16(vec![0; 160])));
        assert!(playout.push(item.clone(), &AgentAudio::G711(vec![0x12; 200])));
        assert_eq!(playout.next_frame(), PacedFrame::Audio { item, samples: 160 });
        playout.hold();
        let AgentFrame::G711(frame) = playout.frame() else { panic!("G.711") };
        assert!(frame.iter().all(|&b| b == MULAW_SILENCE));
        assert!(!playout.is_idle(), "a hold keeps the queue");
        assert_eq!(playout.rate(), SampleRate::Hz8000);
    }
}
