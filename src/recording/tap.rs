//! The call session's end of a recording: [`RecordingTap`].
//!
//! The session's media loop calls the tap with each 20 ms frame of each side. A call
//! copies the frame into a preallocated lock-free queue and returns: it never waits,
//! never allocates and never fails. When the queue is full (the writer has fallen half
//! a second behind) the frame is dropped and counted; the writer then records silence
//! for that slot, so the recording stays on the call's clock.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crossbeam_queue::ArrayQueue;
use media::{MAX_FRAME_SAMPLES, MAX_OPUS_PACKET, SampleRate, Side};
use tokio::sync::{Notify, oneshot};

use crate::ids::CallId;

/// Frames queued between the tap and its writer: half a second of both sides.
pub(super) const QUEUE_FRAMES: usize = 50;
/// The writer is woken once this many frames wait (it also wakes every 100 ms).
const WAKE_AT: usize = 10;

/// The 20 ms slot of the call's clock at `elapsed` since the call was answered: the
/// `slot` to give [`RecordingTap`] with a frame, and [`EndInfo::end_slot`] at the end.
pub fn slot_at(elapsed: Duration) -> u64 {
    (elapsed.as_millis() / u128::from(media::FRAME_MS)) as u64
}

/// How a recorded call ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EndInfo {
    /// The slot at which the call ended ([`slot_at`] of the time from answer to end): the
    /// recording is this many slots long, silence filling any tail without frames.
    pub end_slot: u64,
}

/// A frame on its way to the writer, inline (no allocation per frame).
pub(super) struct TapFrame {
    pub side: Side,
    pub slot: u64,
    pub audio: TapAudio,
}

/// A frame's audio: `len` samples (or bytes) of it.
#[allow(clippy::large_enum_variant, reason = "inline on purpose: a frame is queued without allocating")]
pub(super) enum TapAudio {
    Pcm {
        rate: SampleRate,
        len: usize,
        pcm: [i16; MAX_FRAME_SAMPLES],
    },
    /// An Opus packet the caller was sent, recorded as it is.
    Opus {
        len: usize,
        packet: [u8; MAX_OPUS_PACKET],
    },
}

/// What the tap and its writer share.
pub(super) struct TapShared {
    pub queue: ArrayQueue<TapFrame>,
    /// Frames dropped because the queue was full.
    pub dropped: AtomicU64,
    /// Wakes the writer early when frames pile up, and when the tap goes away.
    pub wake: Notify,
}

impl TapShared {
    pub fn new() -> Self {
        Self { queue: ArrayQueue::new(QUEUE_FRAMES), dropped: AtomicU64::new(0), wake: Notify::new() }
    }
}

/// Owned by the call session: feeds one call's recording.
///
/// [`RecordingTap::caller`] takes the caller's audio (the left channel),
/// [`RecordingTap::other`] everything the caller hears from the other side (the AI agent,
/// hold audio, a human agent; the right channel). Each frame is one 20 ms frame at 8, 16,
/// 24 or 48 kHz (the sides may differ, and may change rate), tagged with its slot on the
/// call's clock: [`slot_at`] of its time since the call was answered. Frames of a slot may
/// come in any order and up to two slots late; a slot a side has no frame for is silence.
///
/// [`RecordingTap::finish`] ends the recording; dropping the tap without it (a panic, a
/// session that died) ends it too, at the last slot seen. Either way the writer finishes a
/// playable file and stores it.
pub struct RecordingTap {
    call_id: CallId,
    shared: Arc<TapShared>,
    end: Option<oneshot::Sender<EndInfo>>,
}

impl std::fmt::Debug for RecordingTap {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RecordingTap")
            .field("call_id", &self.call_id)
            .field("queued", &self.queued())
            .field("dropped", &self.dropped())
            .finish()
    }
}

impl RecordingTap {
    pub(super) fn new(call_id: CallId, shared: Arc<TapShared>, end: oneshot::Sender<EndInfo>) -> Self {
        Self { call_id, shared, end: Some(end) }
    }

    /// The caller's 20 ms frame for `slot` (left channel). Never blocks or allocates.
    pub fn caller(&self, slot: u64, pcm: &[i16], rate: SampleRate) {
        self.push(Side::Left, slot, pcm, rate);
    }

    /// The other side's 20 ms frame for `slot` (right channel): the agent, hold audio or a
    /// human agent, as the caller hears it. Never blocks or allocates.
    pub fn other(&self, slot: u64, pcm: &[i16], rate: SampleRate) {
        self.push(Side::Right, slot, pcm, rate);
    }

    /// The other side's 20 ms for `slot` as the Opus packet a WebRTC caller was sent: it
    /// goes into the recording as it is, with no encode. Never blocks or allocates.
    pub fn other_opus(&self, slot: u64, packet: &[u8]) {
        // A packet longer than Opus allows goes through empty: the writer counts it as a
        // bad frame and records silence for the slot.
        let len = if packet.len() <= MAX_OPUS_PACKET { packet.len() } else { 0 };
        let mut stored = [0; MAX_OPUS_PACKET];
        stored[..len].copy_from_slice(&packet[..len]);
        self.queue(TapFrame { side: Side::Right, slot, audio: TapAudio::Opus { len, packet: stored } });
    }

    fn push(&self, side: Side, slot: u64, pcm: &[i16], rate: SampleRate) {
        // A frame of the wrong size still goes through (truncated to fit): the writer
        // counts and drops it, so the tap has one path and no error to return.
        let len = pcm.len().min(MAX_FRAME_SAMPLES);
        let mut stored = [0; MAX_FRAME_SAMPLES];
        stored[..len].copy_from_slice(&pcm[..len]);
        self.queue(TapFrame { side, slot, audio: TapAudio::Pcm { rate, len, pcm: stored } });
    }

    fn queue(&self, frame: TapFrame) {
        match self.shared.queue.push(frame) {
            Ok(()) if self.shared.queue.len() >= WAKE_AT => self.shared.wake.notify_one(),
            Ok(()) => {}
            Err(_) => {
                self.shared.dropped.fetch_add(1, Ordering::Relaxed);
                self.shared.wake.notify_one();
            }
        }
    }

    /// Ends the recording at `end`; the writer finishes and stores the file on its own task.
    pub fn finish(mut self, end: EndInfo) {
        if let Some(sender) = self.end.take() {
            let _ = sender.send(end);
        }
    }

    /// The call being recorded.
    pub fn call_id(&self) -> CallId {
        self.call_id
    }

    /// Frames waiting for the writer.
    pub fn queued(&self) -> usize {
        self.shared.queue.len()
    }

    /// Frames dropped so far because the writer had fallen behind.
    pub fn dropped(&self) -> u64 {
        self.shared.dropped.load(Ordering::Relaxed)
    }
}

impl Drop for RecordingTap {
    fn drop(&mut self) {
        // Without `finish`, the writer sees its end channel close and ends the recording
        // at the last slot it saw. Either way it must look now, not at its next tick.
        self.end.take();
        self.shared.wake.notify_one();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tap() -> (RecordingTap, Arc<TapShared>, oneshot::Receiver<EndInfo>) {
        let shared = Arc::new(TapShared::new());
        let (tx, rx) = oneshot::channel();
        (RecordingTap::new(CallId::new(), shared.clone(), tx), shared, rx)
    }

    #[test]
    fn slots_are_twenty_millisecond_steps_since_the_answer() {
        assert_eq!(slot_at(Duration::ZERO), 0);
        assert_eq!(slot_at(Duration::from_millis(19)), 0);
        assert_eq!(slot_at(Duration::from_millis(20)), 1);
        assert_eq!(slot_at(Duration::from_secs(3600)), 180_000);
    }

    #[test]
    fn frames_queue_with_their_side_slot_and_rate() {
        let (tap, shared, _rx) = tap();
        tap.caller(7, &[1; 480], SampleRate::Hz24000);
        tap.other(7, &[2; 320], SampleRate::Hz16000);
        tap.other_opus(8, &[0x08, 3, 4]);
        let pcm = |frame: TapFrame| match frame.audio {
            TapAudio::Pcm { rate, len, pcm } => (frame.side, frame.slot, rate, len, pcm[len - 1]),
            TapAudio::Opus { .. } => panic!("PCM expected"),
        };
        assert_eq!(pcm(shared.queue.pop().unwrap()), (Side::Left, 7, SampleRate::Hz24000, 480, 1));
        assert_eq!(pcm(shared.queue.pop().unwrap()), (Side::Right, 7, SampleRate::Hz16000, 320, 2));
        let c = shared.queue.pop().unwrap();
        let TapAudio::Opus { len, packet } = c.audio else { panic!("an Opus packet expected") };
        assert_eq!((c.side, c.slot, &packet[..len]), (Side::Right, 8, &[0x08, 3, 4][..]));
        // Longer than any Opus packet: queued empty, for the writer to refuse.
        tap.other_opus(9, &[0x08; MAX_OPUS_PACKET + 1]);
        let d = shared.queue.pop().unwrap();
        assert!(matches!(d.audio, TapAudio::Opus { len: 0, .. }));
    }

    #[test]
    fn a_full_queue_drops_and_counts_instead_of_waiting() {
        let (tap, shared, _rx) = tap();
        for slot in 0..QUEUE_FRAMES as u64 + 5 {
            tap.caller(slot, &[0; 160], SampleRate::Hz8000);
        }
        assert_eq!(shared.queue.len(), QUEUE_FRAMES);
        assert_eq!(tap.dropped(), 5);
    }

    #[test]
    fn finish_sends_the_end_and_dropping_closes_without_one() {
        let (tap, _, mut rx) = tap();
        tap.finish(EndInfo { end_slot: 42 });
        assert_eq!(rx.try_recv().unwrap(), EndInfo { end_slot: 42 });
        let (tap, _, mut rx) = self::tap();
        drop(tap);
        assert!(matches!(rx.try_recv(), Err(oneshot::error::TryRecvError::Closed)));
    }
}
