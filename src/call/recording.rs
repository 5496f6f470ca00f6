//! The session's side of a call recording: the caller's frames and the frames sent to the
//! caller, turned into PCM and tagged with their slot on the call's clock (20 ms steps
//! since the answer), for the [`RecordingTap`]. G.711 is expanded into a buffer owned
//! here, so a frame costs a copy and no allocation.

use std::time::Instant;

use media::SampleRate;
use media::g711::{alaw_decode_slice, ulaw_decode_slice};

use super::legs::{AgentFrame, CallerFrame, CallerSamples};
use crate::providers::AudioFormat;
use crate::recording::{EndInfo, RecordingTap, slot_at};

/// Samples of one 20 ms G.711 frame (8 kHz).
const G711_FRAME: usize = 160;

/// A call being recorded, from its answer on.
pub struct CallRecording {
    tap: RecordingTap,
    /// Slot 0 of the call's clock: the instant the call was answered.
    answered: Instant,
    /// The provider's input rate: caller PCM frames come at it.
    input_rate: SampleRate,
    /// The provider's output format: what agent frames are in.
    output: AudioFormat,
    /// G.711 expanded to PCM, one frame at a time.
    expanded: [i16; G711_FRAME],
}

impl CallRecording {
    pub fn new(tap: RecordingTap, answered: Instant, input: AudioFormat, output: AudioFormat) -> Self {
        Self { tap, answered, input_rate: input.rate(), output, expanded: [0; G711_FRAME] }
    }

    fn slot(&self, at: Instant) -> u64 {
        slot_at(at.saturating_duration_since(self.answered))
    }

    /// A caller frame (left channel), in the slot its packet arrived in.
    pub fn caller(&mut self, frame: &CallerFrame<'_>) {
        let slot = self.slot(frame.arrival);
        match frame.samples {
            CallerSamples::Pcm16(pcm) => self.tap.caller(slot, pcm, self.input_rate),
            CallerSamples::Mulaw(codes) => {
                if let Some(pcm) = expand(&mut self.expanded, codes, AudioFormat::Mulaw) {
                    self.tap.caller(slot, pcm, SampleRate::Hz8000);
                }
            }
        }
    }

    /// A frame sent to the caller at `at` (right channel): what they hear from the other side.
    pub fn other(&mut self, frame: AgentFrame<'_>, at: Instant) {
        let slot = self.slot(at);
        match frame {
            AgentFrame::Pcm16(pcm) => self.tap.other(slot, pcm, self.output.rate()),
            AgentFrame::G711(codes) => {
                if let Some(pcm) = expand(&mut self.expanded, codes, self.output) {
                    self.tap.other(slot, pcm, SampleRate::Hz8000);
                }
            }
        }
    }

    /// Ends the recording at `at` (the writer finishes and stores the file on its own task).
    pub fn finish(self, at: Instant) {
        let end_slot = self.slot(at);
        self.tap.finish(EndInfo { end_slot });
    }
}

/// G.711 `codes` as PCM in `out`; `None` for a frame that is not 20 ms.
fn expand<'a>(out: &'a mut [i16; G711_FRAME], codes: &[u8], format: AudioFormat) -> Option<&'a [i16]> {
    let n = match format {
        AudioFormat::Alaw => alaw_decode_slice(codes, out).ok()?,
        _ => ulaw_decode_slice(codes, out).ok()?,
    };
    (n == G711_FRAME).then_some(&out[..n])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_twenty_ms_mulaw_frame_expands_to_pcm() {
        let mut out = [0; G711_FRAME];
        let silence = [0xFFu8; G711_FRAME];
        let pcm = expand(&mut out, &silence, AudioFormat::Mulaw).expect("a whole frame");
        assert_eq!(pcm.len(), G711_FRAME);
        assert!(pcm.iter().all(|&s| s.abs() < 8), "μ-law 0xFF is silence");
    }

    #[test]
    fn a_frame_of_another_length_is_left_out() {
        let mut out = [0; G711_FRAME];
        assert!(expand(&mut out, &[0xFF; 80], AudioFormat::Mulaw).is_none());
        assert!(expand(&mut out, &[0xD5; 80], AudioFormat::Alaw).is_none());
    }
}
