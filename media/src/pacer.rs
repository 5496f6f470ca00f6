//! Playout pacer for outgoing audio.
//!
//! The provider streams its answer faster than real time, in chunks of any
//! size; the caller's leg must receive exactly one 20 ms frame every 20 ms,
//! and the RTP clock must keep running when there is nothing to say. The
//! pacer queues the chunks and, on each tick, hands out one frame: audio, the
//! tail of an item padded with silence, or comfort silence.
//!
//! Each frame says which assistant audio item (OpenAI `item_id`, Gemini turn)
//! it carries and how many of its samples, and [`Pacer::clear`] says what a
//! barge-in dropped. Keeping the books of what the caller actually *heard* is
//! not the pacer's job: on WebRTC a frame is heard when it is sent, on a phone
//! line when the carrier says it played it, so the call session keeps one
//! ledger fed by whichever truth its caller's leg has.
//!
//! Frames never mix two items: an item's last partial frame is padded with
//! silence and the next item starts on the next tick, so every frame belongs
//! to exactly one item and the accounting is exact to the sample.
//!
//! The pacer is generic over the sample type: PCM16 (`i16`) for providers
//! that speak linear PCM, and G.711 code bytes (`u8`) when a provider's
//! μ-law passes straight through to a phone line.

use std::collections::VecDeque;
use std::sync::Arc;

use crate::SampleRate;

/// Identifies an assistant audio item (OpenAI `item_id`, Gemini turn).
///
/// Cheap to clone (an `Arc<str>`): build it once when an item starts and pass
/// clones with each chunk; nothing is allocated per frame. Equality compares
/// the ids (clones of one key compare by pointer first).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ItemKey(Arc<str>);

impl ItemKey {
    /// Makes a key (one allocation, for the item's whole life).
    pub fn new(id: &str) -> Self {
        ItemKey(Arc::from(id))
    }

    /// The id as given.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The shared id.
    pub fn as_arc(&self) -> &Arc<str> {
        &self.0
    }
}

impl From<&str> for ItemKey {
    fn from(id: &str) -> Self {
        ItemKey::new(id)
    }
}

impl From<Arc<str>> for ItemKey {
    /// Shares the caller's allocation (no copy).
    fn from(id: Arc<str>) -> Self {
        ItemKey(id)
    }
}

impl From<String> for ItemKey {
    fn from(id: String) -> Self {
        ItemKey(Arc::from(id))
    }
}

impl std::fmt::Display for ItemKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// What [`Pacer::next_frame`] put in the frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PacedFrame {
    /// Audio of `item`: `samples` real samples, the rest of the frame (if
    /// any: the item's tail) is silence.
    Audio {
        /// The item the audio belongs to.
        item: ItemKey,
        /// Samples of the item in this frame (a full frame except at its tail).
        samples: usize,
    },
    /// Nothing queued: comfort silence.
    Silence,
}

impl PacedFrame {
    /// The item the frame belongs to, if it carries audio.
    pub fn item(&self) -> Option<&ItemKey> {
        match self {
            PacedFrame::Audio { item, .. } => Some(item),
            PacedFrame::Silence => None,
        }
    }

    /// Samples of the item in the frame (0 for silence).
    pub fn samples(&self) -> usize {
        match self {
            PacedFrame::Audio { samples, .. } => *samples,
            PacedFrame::Silence => 0,
        }
    }

    /// Whether the frame is comfort silence.
    pub fn is_silence(&self) -> bool {
        matches!(self, PacedFrame::Silence)
    }
}

/// What [`Pacer::clear`] dropped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cleared {
    /// The item at the head of the queue: the one that was about to play on.
    pub item: ItemKey,
    /// Samples dropped (of any item).
    pub dropped_samples: usize,
}

#[derive(Debug)]
struct Segment {
    item: ItemKey,
    /// Samples of this segment still in the queue.
    remaining: usize,
}

/// Growable ring of samples. Grows (doubling) only when a burst exceeds its
/// capacity, and keeps that capacity: a warm pacer does not allocate.
struct SampleRing<S> {
    buf: Vec<S>,
    fill: S,
    head: usize,
    len: usize,
}

impl<S: Copy> SampleRing<S> {
    fn with_capacity(capacity: usize, fill: S) -> Self {
        SampleRing { buf: vec![fill; capacity.next_power_of_two()], fill, head: 0, len: 0 }
    }

    fn push_slice(&mut self, samples: &[S]) {
        if self.len + samples.len() > self.buf.len() {
            let mut grown = vec![self.fill; (self.len + samples.len()).next_power_of_two()];
            self.copy_out(&mut grown[..self.len]);
            self.buf = grown;
            self.head = 0;
        }
        let cap = self.buf.len();
        let tail = (self.head + self.len) % cap;
        let first = samples.len().min(cap - tail);
        self.buf[tail..tail + first].copy_from_slice(&samples[..first]);
        self.buf[..samples.len() - first].copy_from_slice(&samples[first..]);
        self.len += samples.len();
    }

    /// Copies the oldest `out.len()` samples into `out` without consuming them.
    fn copy_out(&self, out: &mut [S]) {
        let cap = self.buf.len();
        let first = out.len().min(cap - self.head);
        out[..first].copy_from_slice(&self.buf[self.head..self.head + first]);
        let rest = out.len() - first;
        out[first..].copy_from_slice(&self.buf[..rest]);
    }

    /// Moves the oldest `out.len()` samples (at most `len`) into `out`.
    fn pop_into(&mut self, out: &mut [S]) {
        debug_assert!(out.len() <= self.len);
        self.copy_out(out);
        self.head = (self.head + out.len()) % self.buf.len();
        self.len -= out.len();
    }

    fn clear(&mut self) {
        self.head = 0;
        self.len = 0;
    }
}

/// Turns bursty provider audio into a steady 20 ms frame per tick; see the
/// module docs.
pub struct Pacer<S = i16> {
    rate: SampleRate,
    /// The sample that sounds like nothing (0 for PCM16, 0xFF for μ-law, 0xD5 for A-law).
    silence: S,
    queue: SampleRing<S>,
    /// Runs of queued samples per item, oldest first; their `remaining`
    /// counts add up to `queue.len`.
    segments: VecDeque<Segment>,
}

impl<S> std::fmt::Debug for Pacer<S> {
    // Not derived: the queue holds seconds of samples.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pacer")
            .field("rate", &self.rate)
            .field("queued_samples", &self.queue.len)
            .field("segments", &self.segments)
            .finish_non_exhaustive()
    }
}

impl Pacer<i16> {
    /// A PCM16 pacer for audio at `rate`, with room for 2 s queued before it grows.
    pub fn new(rate: SampleRate) -> Self {
        Pacer::with_silence(rate, 0)
    }
}

impl<S: Copy> Pacer<S> {
    /// A pacer of samples of type `S` at `rate` whose silence is `silence`
    /// (e.g. `0xFF` for μ-law), with room for 2 s queued before it grows.
    pub fn with_silence(rate: SampleRate, silence: S) -> Self {
        Pacer {
            rate,
            silence,
            queue: SampleRing::with_capacity(rate.samples_per_ms() * 2_000, silence),
            segments: VecDeque::with_capacity(16),
        }
    }

    /// Queues a chunk of `item`'s audio (any length, at the pacer's rate).
    pub fn push(&mut self, item: ItemKey, samples: &[S]) {
        if samples.is_empty() {
            return;
        }
        self.queue.push_slice(samples);
        match self.segments.back_mut() {
            Some(last) if last.item == item => last.remaining += samples.len(),
            _ => self.segments.push_back(Segment { item, remaining: samples.len() }),
        }
    }

    /// Fills `out` (exactly one 20 ms frame at the pacer's rate) with the next
    /// frame to send and says what it holds. Call once per 20 ms tick.
    ///
    /// # Panics
    /// If `out` is not exactly one frame long (a programming error).
    pub fn next_frame(&mut self, out: &mut [S]) -> PacedFrame {
        let frame = self.rate.samples_per_frame();
        assert_eq!(out.len(), frame, "Pacer::next_frame needs exactly one 20 ms frame");
        let Some(front) = self.segments.front_mut() else {
            out.fill(self.silence);
            return PacedFrame::Silence;
        };
        let n = front.remaining.min(frame);
        self.queue.pop_into(&mut out[..n]);
        out[n..].fill(self.silence);
        front.remaining -= n;
        let item = if front.remaining == 0 {
            self.segments.pop_front().map(|s| s.item).expect("front segment exists: just borrowed")
        } else {
            front.item.clone()
        };
        PacedFrame::Audio { item, samples: n }
    }

    /// Drops everything queued at once (barge-in) and says which item was
    /// next and how much was dropped; `None` when nothing was queued.
    pub fn clear(&mut self) -> Option<Cleared> {
        let dropped_samples = self.queue.len;
        self.queue.clear();
        let head = self.segments.front().map(|s| s.item.clone());
        self.segments.clear();
        head.map(|item| Cleared { item, dropped_samples })
    }

    /// Milliseconds of audio waiting to be played.
    pub fn queued_ms(&self) -> u32 {
        u32::try_from(self.rate.samples_to_ms(self.queue.len as u64)).unwrap_or(u32::MAX)
    }

    /// Samples waiting to be played.
    pub fn queued_samples(&self) -> usize {
        self.queue.len
    }

    /// Samples of `item` waiting to be played.
    pub fn queued_samples_of(&self, item: &ItemKey) -> usize {
        self.segments.iter().filter(|s| &s.item == item).map(|s| s.remaining).sum()
    }

    /// Whether nothing is queued (the next frame will be comfort silence).
    pub fn is_idle(&self) -> bool {
        self.segments.is_empty()
    }

    /// The item the next frame will carry, if any is queued.
    pub fn front_item(&self) -> Option<&ItemKey> {
        self.segments.front().map(|s| &s.item)
    }

    /// The pacer's sample rate.
    pub fn rate(&self) -> SampleRate {
        self.rate
    }

    /// The silence sample.
    pub fn silence(&self) -> S {
        self.silence
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const RATE: SampleRate = SampleRate::Hz24000;
    const FRAME: usize = 480;

    fn ramp(start: i16, n: usize) -> Vec<i16> {
        (0..n).map(|i| start.wrapping_add(i as i16)).collect()
    }

    fn tick(p: &mut Pacer) -> (PacedFrame, Vec<i16>) {
        let mut out = vec![0x5555i16; FRAME];
        let f = p.next_frame(&mut out);
        (f, out)
    }

    #[test]
    fn pacer_hands_out_exact_frames_from_chunks_of_any_size() {
        let mut p = Pacer::new(RATE);
        let a = ItemKey::new("a");
        let audio = ramp(1, 1_340);
        for chunk in [&audio[..7], &audio[7..1_007], &audio[1_007..]] {
            p.push(a.clone(), chunk);
        }
        assert_eq!(p.queued_ms(), 55);
        assert_eq!(p.front_item(), Some(&a));
        let mut played = Vec::new();
        let mut kinds = Vec::new();
        for _ in 0..4 {
            let (f, out) = tick(&mut p);
            kinds.push(f);
            played.extend(out);
        }
        assert_eq!(
            kinds,
            [
                PacedFrame::Audio { item: a.clone(), samples: 480 },
                PacedFrame::Audio { item: a.clone(), samples: 480 },
                PacedFrame::Audio { item: a.clone(), samples: 380 },
                PacedFrame::Silence,
            ]
        );
        assert_eq!(played[..1_340], audio[..]);
        assert!(played[1_340..].iter().all(|&s| s == 0), "tail and idle frames are silence");
        assert!(p.is_idle());
    }

    #[test]
    fn pacer_emits_comfort_silence_when_empty() {
        let mut p = Pacer::new(SampleRate::Hz48000);
        let mut out = vec![7i16; 960];
        for _ in 0..3 {
            assert_eq!(p.next_frame(&mut out), PacedFrame::Silence);
            assert!(out.iter().all(|&s| s == 0));
        }
        assert_eq!(p.clear(), None);
    }

    #[test]
    fn a_mulaw_pacer_pads_with_mulaw_silence() {
        let mut p: Pacer<u8> = Pacer::with_silence(SampleRate::Hz8000, 0xFF);
        let a = ItemKey::new("a");
        p.push(a.clone(), &[0x10; 100]);
        let mut out = [0u8; 160];
        assert_eq!(p.next_frame(&mut out), PacedFrame::Audio { item: a, samples: 100 });
        assert!(out[..100].iter().all(|&b| b == 0x10) && out[100..].iter().all(|&b| b == 0xFF));
        assert_eq!(p.next_frame(&mut out), PacedFrame::Silence);
        assert!(out.iter().all(|&b| b == 0xFF));
    }

    #[test]
    fn pacer_drains_a_burst_at_exactly_one_frame_per_tick() {
        let mut p = Pacer::new(RATE);
        p.push(ItemKey::new("burst"), &ramp(0, 24_000));
        assert_eq!(p.queued_ms(), 1_000);
        for i in 1..=50 {
            tick(&mut p);
            assert_eq!(p.queued_ms(), 1_000 - 20 * i);
        }
        assert!(p.is_idle());
    }

    #[test]
    fn pacer_clear_drops_everything_and_names_the_next_item() {
        let mut p = Pacer::new(RATE);
        let (a, b) = (ItemKey::new("a"), ItemKey::new("b"));
        p.push(a.clone(), &ramp(0, 960));
        p.push(b.clone(), &ramp(0, 2_400));
        tick(&mut p);
        assert_eq!(p.queued_samples_of(&a), 480);
        assert_eq!(p.queued_samples_of(&b), 2_400);
        tick(&mut p);
        assert_eq!(p.clear(), Some(Cleared { item: b, dropped_samples: 2_400 }));
        assert!(p.is_idle());
        assert_eq!(p.queued_ms(), 0);
        assert_eq!(tick(&mut p).0, PacedFrame::Silence);
        assert_eq!(p.clear(), None, "a second clear has nothing to report");
    }

    #[test]
    fn item_keys_compare_by_content() {
        let a = ItemKey::new("item_1");
        assert_eq!(a, ItemKey::from("item_1"));
        assert_eq!(a, ItemKey::from(String::from("item_1")));
        assert_ne!(a, ItemKey::new("item_2"));
        assert_eq!(a.to_string(), "item_1");
        assert_eq!(a.as_str(), "item_1");
    }

    #[test]
    #[should_panic(expected = "exactly one 20 ms frame")]
    fn pacer_refuses_a_buffer_that_is_not_one_frame() {
        Pacer::new(RATE).next_frame(&mut [0i16; 100]);
    }

    #[derive(Debug, Clone)]
    enum Op {
        Push(usize, usize),
        Tick,
        Clear,
    }

    fn ops() -> impl Strategy<Value = Vec<Op>> {
        proptest::collection::vec(
            prop_oneof![
                3 => (0usize..3, 0usize..3_000).prop_map(|(i, n)| Op::Push(i, n)),
                6 => Just(Op::Tick),
                1 => Just(Op::Clear),
            ],
            1..200,
        )
    }

    proptest! {
        /// Against a plain model (a list of samples tagged with their item):
        /// the pacer hands out the same samples in the same order, never mixes
        /// items in a frame, and reports at each clear what the model dropped.
        #[test]
        fn pacer_matches_a_sample_by_sample_model(ops in ops()) {
            let keys = [ItemKey::new("x"), ItemKey::new("y"), ItemKey::new("z")];
            let mut p = Pacer::new(RATE);
            let mut model: std::collections::VecDeque<(usize, i16)> = Default::default();
            let mut counter = 0i16;
            for op in ops {
                match op {
                    Op::Push(i, n) => {
                        let chunk: Vec<i16> = (0..n).map(|_| { counter = counter.wrapping_add(1); counter }).collect();
                        model.extend(chunk.iter().map(|&s| (i, s)));
                        p.push(keys[i].clone(), &chunk);
                    }
                    Op::Tick => {
                        let (frame, out) = tick(&mut p);
                        match model.front().map(|&(i, _)| i) {
                            None => prop_assert_eq!(frame, PacedFrame::Silence),
                            Some(i) => {
                                let mut n = 0;
                                while n < FRAME && model.front().is_some_and(|&(j, _)| j == i) {
                                    let (_, s) = model.pop_front().unwrap();
                                    prop_assert_eq!(out[n], s);
                                    n += 1;
                                }
                                prop_assert!(out[n..].iter().all(|&s| s == 0));
                                prop_assert_eq!(frame, PacedFrame::Audio { item: keys[i].clone(), samples: n });
                            }
                        }
                    }
                    Op::Clear => {
                        let expected = model.front().map(|&(i, _)| Cleared { item: keys[i].clone(), dropped_samples: model.len() });
                        prop_assert_eq!(p.clear(), expected);
                        model.clear();
                    }
                }
                prop_assert_eq!(p.queued_samples(), model.len());
            }
        }
    }
}
