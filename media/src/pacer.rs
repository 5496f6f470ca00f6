//! Playout pacer for outgoing audio.
//!
//! The provider streams its answer faster than real time, in chunks of any
//! size; the peer must receive exactly one 20 ms frame every 20 ms, and the RTP
//! clock must keep running when there is nothing to say. The pacer queues the
//! chunks and, on each tick, hands out one frame: audio, the tail of an item
//! padded with silence, or comfort silence.
//!
//! It also keeps the books barge-in needs: for each assistant audio item
//! (OpenAI `item_id`, Gemini turn) how much audio has actually been played.
//! When the caller talks over the agent, [`Pacer::clear`] drops everything
//! queued at once and returns the item that was playing with its played
//! milliseconds: the `audio_end_ms` of OpenAI's `conversation.item.truncate`.
//! A frame counts as played when [`Pacer::next_frame`] hands it out (it goes
//! to the wire right then).
//!
//! Frames never mix two items: an item's last partial frame is padded with
//! silence and the next item starts on the next tick, so every frame belongs
//! to exactly one item and the accounting is exact to the sample.

use std::collections::VecDeque;
use std::sync::Arc;

use crate::SampleRate;

/// Previous items whose played time stays queryable through [`Pacer::played_ms`].
const HISTORY: usize = 8;

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

    /// Whether the frame is comfort silence.
    pub fn is_silence(&self) -> bool {
        matches!(self, PacedFrame::Silence)
    }
}

/// What [`Pacer::clear`] cut short.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Played {
    /// The item that was playing (or, if the previous item had just finished,
    /// the one about to start).
    pub item: ItemKey,
    /// Milliseconds of `item` actually played (rounded down, so never more
    /// than was played): the truncation point.
    pub played_ms: u32,
    /// Milliseconds of queued audio (of any item) that were dropped. Zero
    /// means nothing audible was cut: the item had already played out or
    /// the queue had run dry.
    pub dropped_ms: u32,
}

#[derive(Debug)]
struct Segment {
    item: ItemKey,
    /// Samples of this segment still in the queue.
    remaining: usize,
}

#[derive(Debug)]
struct ItemPlayback {
    item: ItemKey,
    played_samples: u64,
}

/// Growable ring of samples. Grows (doubling) only when a burst exceeds its
/// capacity, and keeps that capacity: a warm pacer does not allocate.
struct SampleRing {
    buf: Vec<i16>,
    head: usize,
    len: usize,
}

impl SampleRing {
    fn with_capacity(capacity: usize) -> Self {
        SampleRing { buf: vec![0; capacity.next_power_of_two()], head: 0, len: 0 }
    }

    fn push_slice(&mut self, samples: &[i16]) {
        if self.len + samples.len() > self.buf.len() {
            let mut grown = vec![0; (self.len + samples.len()).next_power_of_two()];
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
    fn copy_out(&self, out: &mut [i16]) {
        let cap = self.buf.len();
        let first = out.len().min(cap - self.head);
        out[..first].copy_from_slice(&self.buf[self.head..self.head + first]);
        let rest = out.len() - first;
        out[first..].copy_from_slice(&self.buf[..rest]);
    }

    /// Moves the oldest `out.len()` samples (at most `len`) into `out`.
    fn pop_into(&mut self, out: &mut [i16]) {
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
pub struct Pacer {
    rate: SampleRate,
    queue: SampleRing,
    /// Runs of queued samples per item, oldest first; their `remaining`
    /// counts add up to `queue.len`.
    segments: VecDeque<Segment>,
    /// The item of the most recent audio frame.
    current: Option<ItemPlayback>,
    /// Earlier items, newest last, at most [`HISTORY`].
    history: VecDeque<ItemPlayback>,
}

impl std::fmt::Debug for Pacer {
    // Not derived: the queue holds seconds of samples.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pacer")
            .field("rate", &self.rate)
            .field("queued_ms", &self.queued_ms())
            .field("segments", &self.segments)
            .field("current", &self.current)
            .finish_non_exhaustive()
    }
}

impl Pacer {
    /// A pacer for audio at `rate`, with room for 2 s queued before it grows.
    pub fn new(rate: SampleRate) -> Self {
        Pacer {
            rate,
            queue: SampleRing::with_capacity(rate.samples_per_ms() * 2_000),
            segments: VecDeque::with_capacity(16),
            current: None,
            history: VecDeque::with_capacity(HISTORY),
        }
    }

    /// Queues a chunk of `item`'s audio (any length, at the pacer's rate).
    pub fn push(&mut self, item: ItemKey, samples: &[i16]) {
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
    pub fn next_frame(&mut self, out: &mut [i16]) -> PacedFrame {
        let frame = self.rate.samples_per_frame();
        assert_eq!(out.len(), frame, "Pacer::next_frame needs exactly one 20 ms frame");
        let Some(front) = self.segments.front_mut() else {
            out.fill(0);
            return PacedFrame::Silence;
        };
        let n = front.remaining.min(frame);
        self.queue.pop_into(&mut out[..n]);
        out[n..].fill(0);
        front.remaining -= n;
        let item = if front.remaining == 0 {
            self.segments.pop_front().map(|s| s.item).expect("front segment exists: just borrowed")
        } else {
            front.item.clone()
        };
        self.note_played(&item, n);
        PacedFrame::Audio { item, samples: n }
    }

    /// Drops everything queued at once (barge-in) and reports the item that
    /// was playing with how much of it was played. `None` if nothing has
    /// played or been queued since the last clear.
    pub fn clear(&mut self) -> Option<Played> {
        let dropped_ms = self.ms(self.queue.len as u64);
        self.queue.clear();
        let head = self.segments.front().map(|s| s.item.clone());
        self.segments.clear();
        let current = self.current.take();
        let played = match (head, &current) {
            (Some(head), Some(cur)) if head == cur.item => {
                Some(Played { item: head, played_ms: self.ms(cur.played_samples), dropped_ms })
            }
            (Some(head), _) => Some(Played { item: head, played_ms: 0, dropped_ms }),
            (None, Some(cur)) => {
                Some(Played { item: cur.item.clone(), played_ms: self.ms(cur.played_samples), dropped_ms: 0 })
            }
            (None, None) => None,
        };
        if let Some(cur) = current {
            self.remember(cur);
        }
        played
    }

    /// Milliseconds of `item` played so far (rounded down), for the current
    /// item and the last few before it; `None` for an item not seen.
    pub fn played_ms(&self, item: &ItemKey) -> Option<u32> {
        self.current.iter().chain(self.history.iter()).find(|p| &p.item == item).map(|p| self.ms(p.played_samples))
    }

    /// Milliseconds of audio waiting to be played.
    pub fn queued_ms(&self) -> u32 {
        self.ms(self.queue.len as u64)
    }

    /// Samples waiting to be played.
    pub fn queued_samples(&self) -> usize {
        self.queue.len
    }

    /// Whether nothing is queued (the next frame will be comfort silence).
    pub fn is_idle(&self) -> bool {
        self.segments.is_empty()
    }

    /// The item whose audio was handed out last, if not cleared since.
    pub fn current_item(&self) -> Option<&ItemKey> {
        self.current.as_ref().map(|p| &p.item)
    }

    /// The pacer's sample rate.
    pub fn rate(&self) -> SampleRate {
        self.rate
    }

    fn ms(&self, samples: u64) -> u32 {
        u32::try_from(self.rate.samples_to_ms(samples)).unwrap_or(u32::MAX)
    }

    fn note_played(&mut self, item: &ItemKey, samples: usize) {
        match &mut self.current {
            Some(cur) if &cur.item == item => cur.played_samples += samples as u64,
            _ => {
                // A new item starts (or an earlier one comes back): carry on
                // its count if we still have it.
                let earlier = self
                    .history
                    .iter()
                    .position(|p| &p.item == item)
                    .and_then(|i| self.history.remove(i))
                    .map_or(0, |p| p.played_samples);
                if let Some(previous) = self.current.take() {
                    self.remember(previous);
                }
                self.current = Some(ItemPlayback { item: item.clone(), played_samples: earlier + samples as u64 });
            }
        }
    }

    fn remember(&mut self, playback: ItemPlayback) {
        if self.history.len() == HISTORY {
            self.history.pop_front();
        }
        self.history.push_back(playback);
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
        assert_eq!(p.played_ms(&a), Some(55));
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
    fn pacer_clear_reports_played_ms_of_the_audible_item() {
        let mut p = Pacer::new(RATE);
        let a = ItemKey::new("item_a");
        p.push(a.clone(), &ramp(0, 24_000));
        for _ in 0..13 {
            tick(&mut p);
        }
        assert_eq!(p.clear(), Some(Played { item: a.clone(), played_ms: 260, dropped_ms: 740 }));
        assert!(p.is_idle());
        assert_eq!(p.queued_ms(), 0);
        assert_eq!(tick(&mut p).0, PacedFrame::Silence);
        assert_eq!(p.played_ms(&a), Some(260));
        assert_eq!(p.clear(), None, "a second clear has nothing to report");
    }

    #[test]
    fn pacer_played_ms_survives_items_queued_back_to_back() {
        let mut p = Pacer::new(RATE);
        let (a, b) = (ItemKey::new("a"), ItemKey::new("b"));
        p.push(a.clone(), &ramp(0, 6_000)); // 250 ms: 12 frames and a 10 ms tail
        p.push(b.clone(), &ramp(100, 12_000)); // 500 ms
        let frames: Vec<PacedFrame> = (0..20).map(|_| tick(&mut p).0).collect();
        assert_eq!(frames[12], PacedFrame::Audio { item: a.clone(), samples: 240 });
        assert_eq!(frames[13], PacedFrame::Audio { item: b.clone(), samples: 480 });
        assert_eq!(p.played_ms(&a), Some(250));
        assert_eq!(p.played_ms(&b), Some(140));
        assert_eq!(p.current_item(), Some(&b));
        assert_eq!(p.clear(), Some(Played { item: b.clone(), played_ms: 140, dropped_ms: 360 }));
        assert_eq!(p.played_ms(&a), Some(250));
        assert_eq!(p.played_ms(&b), Some(140));
    }

    #[test]
    fn pacer_clear_between_items_reports_the_next_item_unplayed() {
        let mut p = Pacer::new(RATE);
        let (a, b) = (ItemKey::new("a"), ItemKey::new("b"));
        p.push(a.clone(), &ramp(0, 960));
        p.push(b.clone(), &ramp(0, 2_400));
        tick(&mut p);
        tick(&mut p);
        assert_eq!(p.clear(), Some(Played { item: b, played_ms: 0, dropped_ms: 100 }));
        assert_eq!(p.played_ms(&a), Some(40));
    }

    #[test]
    fn pacer_clear_after_the_queue_ran_dry_reports_the_last_item() {
        let mut p = Pacer::new(RATE);
        let a = ItemKey::new("a");
        p.push(a.clone(), &ramp(0, 1_000));
        for _ in 0..5 {
            tick(&mut p);
        }
        // The provider is still streaming item a, but the queue is momentarily empty.
        assert_eq!(p.clear(), Some(Played { item: a, played_ms: 41, dropped_ms: 0 }));
    }

    #[test]
    fn pacer_counts_an_item_that_resumes_after_another() {
        let mut p = Pacer::new(RATE);
        let (a, b) = (ItemKey::new("a"), ItemKey::new("b"));
        p.push(a.clone(), &ramp(0, 480));
        p.push(b.clone(), &ramp(0, 480));
        p.push(a.clone(), &ramp(0, 480));
        for _ in 0..3 {
            tick(&mut p);
        }
        assert_eq!(p.played_ms(&a), Some(40));
        assert_eq!(p.played_ms(&b), Some(20));
        assert_eq!(p.played_ms(&ItemKey::new("unknown")), None);
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
        /// items in a frame, and its played-ms per item and at each clear
        /// match what the model saw played.
        #[test]
        fn pacer_matches_a_sample_by_sample_model(ops in ops()) {
            let keys = [ItemKey::new("x"), ItemKey::new("y"), ItemKey::new("z")];
            let mut p = Pacer::new(RATE);
            let mut model: std::collections::VecDeque<(usize, i16)> = Default::default();
            let mut played = [0u64; 3];
            let mut last_item: Option<usize> = None;
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
                                // The pacer remembers earlier items, so a
                                // returning item continues its count.
                                last_item = Some(i);
                                played[i] += n as u64;
                                prop_assert_eq!(p.played_ms(&keys[i]), Some((played[i] * 1000 / 24_000) as u32));
                            }
                        }
                    }
                    Op::Clear => {
                        let queued = model.len() as u64;
                        let expected = match (model.front().map(|&(i, _)| i), last_item) {
                            (Some(h), Some(c)) if h == c => Some((h, played[h], queued)),
                            (Some(h), _) => Some((h, 0, queued)),
                            (None, Some(c)) => Some((c, played[c], 0)),
                            (None, None) => None,
                        };
                        let got = p.clear();
                        prop_assert_eq!(
                            got,
                            expected.map(|(i, samples, dropped)| Played {
                                item: keys[i].clone(),
                                played_ms: (samples * 1000 / 24_000) as u32,
                                dropped_ms: (dropped * 1000 / 24_000) as u32,
                            })
                        );
                        model.clear();
                        last_item = None;
                    }
                }
                prop_assert_eq!(p.queued_samples(), model.len());
            }
        }
    }
}
