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
/// How many slots before its arrival a caller frame may be placed: the recorder's aligner
/// takes frames up to two slots late.
const CALLER_BACKDATE_SLOTS: u64 = 2;

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
    /// The slot the last caller frame went into, and the last frame of the other side
    /// (sent to the caller, recorded or silent).
    last_caller_slot: Option<u64>,
    last_other_slot: Option<u64>,
}

impl CallRecording {
    pub fn new(tap: RecordingTap, answered: Instant, input: AudioFormat, output: AudioFormat) -> Self {
        Self {
            tap,
            answered,
            input_rate: input.rate(),
            output,
            expanded: [0; G711_FRAME],
            last_caller_slot: None,
            last_other_slot: None,
        }
    }

    fn slot(&self, at: Instant) -> u64 {
        slot_at(at.saturating_duration_since(self.answered))
    }

    /// A caller frame (left channel), in the slot after the previous caller frame's, kept
    /// within the two slots before its arrival (see [`caller_slot`]).
    pub fn caller(&mut self, frame: &CallerFrame<'_>) {
        let slot = caller_slot(self.last_caller_slot, self.slot(frame.arrival));
        self.last_caller_slot = Some(slot);
        match frame.samples {
            CallerSamples::Pcm16(pcm) => self.tap.caller(slot, pcm, self.input_rate),
            CallerSamples::Mulaw(codes) => {
                if let Some(pcm) = expand(&mut self.expanded, codes, AudioFormat::Mulaw) {
                    self.tap.caller(slot, pcm, SampleRate::Hz8000);
                }
            }
        }
    }

    /// The slot of a frame of the other side sent (or forwarded) to the caller at `at`.
    /// The caller gets those frames one per 20 ms, but not on the slots' edges: a tick a
    /// little late crosses into the next slot while the one after it is on time, and two
    /// frames fall into one slot. So they are placed like the caller's own frames (see
    /// [`caller_slot`]): consecutive slots, never after their sending.
    fn other_slot(&mut self, at: Instant) -> u64 {
        let slot = caller_slot(self.last_other_slot, self.slot(at));
        self.last_other_slot = Some(slot);
        slot
    }

    /// A frame sent to the caller at `at` (right channel): what they hear from the other side.
    pub fn other(&mut self, frame: AgentFrame<'_>, at: Instant) {
        let slot = self.other_slot(at);
        match frame {
            AgentFrame::Pcm16(pcm) => self.tap.other(slot, pcm, self.output.rate()),
            AgentFrame::G711(codes) => {
                if let Some(pcm) = expand(&mut self.expanded, codes, self.output) {
                    self.tap.other(slot, pcm, SampleRate::Hz8000);
                }
            }
        }
    }

    /// The Opus packet a WebRTC caller was sent at `at` (right channel): recorded as it is,
    /// with no encode, and exactly what the caller got.
    pub fn other_opus(&mut self, packet: &[u8], at: Instant) {
        let slot = self.other_slot(at);
        self.tap.other_opus(slot, packet);
    }

    /// A frame of silence sent to the caller at `at`: nothing to record (a slot without a
    /// frame is silence), but it takes its slot, so the audio after it is not moved into it.
    pub fn other_silence(&mut self, at: Instant) {
        self.other_slot(at);
    }

    /// A human agent's frame at `rate`, sent on to the caller as it arrived at `at` (right
    /// channel, like the AI's audio). Their frames come at the network's pace, like the
    /// caller's, so they find their slots the same way (see [`caller_slot`]).
    pub fn human(&mut self, pcm: &[i16], rate: SampleRate, at: Instant) {
        let slot = self.other_slot(at);
        self.tap.other(slot, pcm, rate);
    }

    /// Ends the recording at `at` (the writer finishes and stores the file on its own task).
    pub fn finish(self, at: Instant) {
        let end_slot = self.slot(at);
        self.tap.finish(EndInfo { end_slot });
    }
}

/// The slot of a caller frame that arrived in slot `arrival`, after one placed in `last`.
/// Caller frames are consecutive 20 ms of audio, but a burst of them (a late packet
/// releasing those behind it, a TCP stall on a phone stream) arrives in one slot: they
/// go into consecutive slots ending at their arrival, as far back as the aligner takes
/// them; a frame after a gap goes where it arrived. So the caller's channel follows the
/// wall clock without drifting, and a burst loses nothing.
pub fn caller_slot(last: Option<u64>, arrival: u64) -> u64 {
    let earliest = arrival.saturating_sub(CALLER_BACKDATE_SLOTS);
    match last {
        // A gap wider than a burst can explain (the start, a stall): where it arrived.
        Some(last) if last + 1 >= earliest => (last + 1).min(arrival),
        _ => arrival,
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
    fn a_burst_of_caller_frames_fills_the_slots_before_its_arrival() {
        // Frames for slots 7, 8 and 9 held up and released together in slot 9.
        let mut last = Some(6);
        let slots: Vec<u64> = (0..3)
            .map(|_| {
                let slot = caller_slot(last, 9);
                last = Some(slot);
                slot
            })
            .collect();
        assert_eq!(slots, [7, 8, 9]);
        // Steady frames then go one per slot where they arrive.
        assert_eq!(caller_slot(Some(9), 10), 10);
    }

    #[test]
    fn frames_sent_on_a_slot_edge_keep_one_slot_each() {
        // Sent every 20 ms at 19.9 ms into each slot; the fourth 0.3 ms late, across the
        // edge into the slot of the fifth. Placed by the send time alone, two would share
        // a slot (and the recorder keep one); placed like caller frames, none is lost.
        let sent_ms = [19.9, 39.9, 59.9, 80.2, 99.9, 119.9];
        let mut last = None;
        let slots: Vec<u64> = sent_ms
            .iter()
            .map(|ms| {
                let slot = caller_slot(last, slot_at(std::time::Duration::from_secs_f64(ms / 1_000.0)));
                last = Some(slot);
                slot
            })
            .collect();
        assert_eq!(slots, [0, 1, 2, 3, 4, 5]);
    }

    #[test]
    fn caller_frames_after_a_gap_go_where_they_arrive_and_never_ahead_of_it() {
        assert_eq!(caller_slot(None, 50), 50, "the first frame");
        assert_eq!(caller_slot(Some(10), 50), 50, "after a gap (lost packets, a muted caller)");
        assert_eq!(caller_slot(Some(50), 50), 50, "never ahead of its arrival: the aligner keeps the first");
    }

    #[test]
    fn a_frame_of_another_length_is_left_out() {
        let mut out = [0; G711_FRAME];
        assert!(expand(&mut out, &[0xFF; 80], AudioFormat::Mulaw).is_none());
        assert!(expand(&mut out, &[0xD5; 80], AudioFormat::Alaw).is_none());
    }
}
