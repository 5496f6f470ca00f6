//! What the caller heard: one record per agent audio item, the single source for barge-in
//! truncation, stored transcript lines, the speaking indicator and the goodbye.
//!
//! Agent audio goes through three stages: *received* from the provider (queued in the
//! pacer), *sent* to the caller's leg one 20 ms frame per tick, and *heard*. What counts
//! as heard depends on the leg, and the leg says so for every frame ([`Delivery`]): on
//! WebRTC a frame is heard when it is sent (the pacer runs in real time and the browser
//! plays what it gets), on a phone line through Twilio only when Twilio echoes the `mark`
//! sent after it, i.e. after it actually played. A barge-in cuts an item at what was
//! heard, never at what was merely sent.
//!
//! Pure and clock-free: time is passed in, nothing here sleeps or reads a clock. The
//! ledger allocates only when an item starts; frames cost nothing.

use std::collections::VecDeque;
use std::time::Instant;

use media::{Cleared, ItemKey, SampleRate};

/// Agent items remembered after they were resolved (heard in full or cut), so that late
/// audio or transcripts of theirs are recognised and dropped.
const RESOLVED_KEPT: usize = 16;

/// How a leg delivered one frame of agent audio.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delivery {
    /// Heard as it was sent (WebRTC).
    Heard,
    /// Heard once the leg reports [`HeardLedger::confirmed`] for this mark (Twilio).
    Pending(u64),
}

/// A change in what the caller heard, for the transcript and the speaking indicator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HeardEvent {
    /// The item's first audio reached the caller at `at`.
    Started { item: ItemKey, at: Instant },
    /// The caller heard the whole item (its audio complete and all of it heard).
    Finished { item: ItemKey },
    /// The item was cut (barge-in, a goodbye taking over, the call ending) after the
    /// caller heard `heard_ms` of the `total_ms` the provider sent.
    Cut { item: ItemKey, heard_ms: u64, total_ms: u64 },
}

/// What a barge-in interrupted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Interruption {
    /// The item the caller was hearing (or about to hear).
    pub item: ItemKey,
    /// How much of it the caller heard: where to truncate it.
    pub heard_ms: u64,
    /// Whether the provider should be told to cut the item there: the caller did not
    /// hear all of it (audio was dropped or not yet complete) and heard some of it.
    pub truncate: bool,
}

#[derive(Debug)]
struct ItemRecord {
    key: ItemKey,
    /// Samples the provider sent.
    received: u64,
    /// Samples handed to the leg.
    sent: u64,
    /// Samples the caller heard.
    heard: u64,
    /// The provider finished sending the item's audio.
    audio_done: bool,
    /// Heard in full or cut: nothing more is reported for it.
    resolved: bool,
    /// Cut by a barge-in or the call's end: its late audio is dropped.
    cut: bool,
    started: bool,
}

impl ItemRecord {
    fn new(key: ItemKey) -> Self {
        Self { key, received: 0, sent: 0, heard: 0, audio_done: false, resolved: false, cut: false, started: false }
    }
}

#[derive(Debug)]
struct PendingFrame {
    mark: u64,
    item: ItemKey,
    samples: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Goodbye {
    None,
    /// The next new item is the goodbye.
    Expected,
    Item(ItemKey),
}

/// The record of what the caller heard; see the module docs.
#[derive(Debug)]
pub struct HeardLedger {
    rate: SampleRate,
    /// Items oldest first: the unresolved ones and the last [`RESOLVED_KEPT`] resolved.
    items: VecDeque<ItemRecord>,
    /// Frames sent but not confirmed heard yet, oldest first.
    pending: VecDeque<PendingFrame>,
    /// Confirmations of marks up to this one mean nothing: those frames were cleared
    /// (the carrier echoes the marks of cleared audio at once).
    void_through: Option<u64>,
    goodbye: Goodbye,
    events: VecDeque<HeardEvent>,
}

impl HeardLedger {
    /// A ledger for agent audio at `rate` (the provider's output rate).
    pub fn new(rate: SampleRate) -> Self {
        Self {
            rate,
            items: VecDeque::with_capacity(RESOLVED_KEPT + 4),
            pending: VecDeque::with_capacity(64),
            void_through: None,
            goodbye: Goodbye::None,
            events: VecDeque::with_capacity(8),
        }
    }

    /// The provider sent `samples` more of `item`. False when the item was cut: drop its
    /// audio, the caller must not hear it.
    pub fn received(&mut self, item: &ItemKey, samples: usize) -> bool {
        let goodbye = &mut self.goodbye;
        let index = match self.items.iter().position(|r| &r.key == item) {
            Some(index) => index,
            None => {
                if *goodbye == Goodbye::Expected {
                    *goodbye = Goodbye::Item(item.clone());
                }
                self.items.push_back(ItemRecord::new(item.clone()));
                self.forget_resolved();
                self.items.len() - 1
            }
        };
        let record = &mut self.items[index];
        if record.cut || record.resolved {
            return false;
        }
        record.received += samples as u64;
        true
    }

    /// The provider finished sending `item`'s audio.
    pub fn audio_done(&mut self, item: &ItemKey) {
        if let Some(record) = self.items.iter_mut().find(|r| &r.key == item) {
            record.audio_done = true;
            Self::check_finished(record, &mut self.events);
        } else {
            // Done without any audio (a response with no sound): nothing to hear.
            let mut record = ItemRecord::new(item.clone());
            record.audio_done = true;
            Self::check_finished(&mut record, &mut self.events);
            self.items.push_back(record);
            self.forget_resolved();
        }
    }

    /// One frame of `item` (`samples` of it) went to the leg at `now`, delivered as `delivery`.
    pub fn sent(&mut self, item: &ItemKey, samples: usize, delivery: Delivery, now: Instant) {
        let samples = samples as u64;
        let Some(record) = self.items.iter_mut().find(|r| &r.key == item) else { return };
        record.sent += samples;
        match delivery {
            Delivery::Heard => Self::hear(record, samples, now, &mut self.events),
            Delivery::Pending(mark) => self.pending.push_back(PendingFrame { mark, item: item.clone(), samples }),
        }
    }

    /// The leg confirmed that everything sent up to and including `mark` was heard.
    pub fn confirmed(&mut self, mark: u64, now: Instant) {
        if self.void_through.is_some_and(|void| mark <= void) {
            return;
        }
        while self.pending.front().is_some_and(|f| f.mark <= mark) {
            let Some(frame) = self.pending.pop_front() else { break };
            if let Some(record) = self.items.iter_mut().find(|r| r.key == frame.item) {
                Self::hear(record, frame.samples, now, &mut self.events);
            }
        }
    }

    /// The caller talked over the agent, and `cleared` is what the pacer dropped. Every
    /// unresolved item is cut where the caller was; the one they were hearing is returned
    /// with its truncation point. Frames awaiting confirmation were dropped at the caller's
    /// end too: their confirmations are void.
    pub fn interrupt(&mut self, cleared: Option<&Cleared>) -> Option<Interruption> {
        let audible = self
            .pending
            .back()
            .map(|f| f.item.clone())
            .or_else(|| self.items.iter().rev().find(|r| !r.resolved && r.started).map(|r| r.key.clone()))
            .or_else(|| cleared.map(|c| c.item.clone()))
            .or_else(|| self.items.iter().find(|r| !r.resolved && r.received > 0).map(|r| r.key.clone()));
        self.void_pending();
        let interruption = audible.and_then(|item| {
            let record = self.items.iter().find(|r| r.key == item)?;
            if record.resolved {
                return None;
            }
            let heard_ms = self.ms(record.heard);
            let truncate = heard_ms > 0 && (record.heard < record.received || !record.audio_done);
            Some(Interruption { item, heard_ms, truncate })
        });
        self.cut_unresolved();
        interruption
    }

    /// The call is ending: items not heard in full are cut at what was heard.
    pub fn finish(&mut self) {
        self.void_pending();
        self.cut_unresolved();
    }

    /// The next new item is the goodbye (after a policy or the `end_call` tool ended the call).
    pub fn expect_goodbye(&mut self) {
        self.goodbye = Goodbye::Expected;
    }

    /// Whether the goodbye's audio is complete and the caller heard all of it.
    pub fn goodbye_heard(&self) -> bool {
        match &self.goodbye {
            Goodbye::Item(item) => {
                self.items.iter().find(|r| &r.key == item).is_some_and(|r| r.resolved && !r.cut && r.audio_done)
            }
            Goodbye::None | Goodbye::Expected => false,
        }
    }

    /// Whether the goodbye item has started arriving.
    pub fn goodbye_started(&self) -> bool {
        matches!(self.goodbye, Goodbye::Item(_))
    }

    /// Whether `item` was cut (its late audio and transcript are dropped).
    pub fn is_cut(&self, item: &ItemKey) -> bool {
        self.items.iter().any(|r| &r.key == item && r.cut)
    }

    /// Milliseconds of `item` the caller heard (`None` for an item not known).
    pub fn heard_ms(&self, item: &ItemKey) -> Option<u64> {
        self.items.iter().find(|r| &r.key == item).map(|r| self.ms(r.heard))
    }

    /// Whether audio was sent that the leg has not confirmed heard yet.
    pub fn awaiting_confirmation(&self) -> bool {
        !self.pending.is_empty()
    }

    /// Whether the provider is still producing audio for an item the caller has not
    /// finished hearing: a barge-in then has something to interrupt at the provider.
    pub fn provider_generating(&self) -> bool {
        self.items.iter().any(|r| !r.resolved && !r.cut && !r.audio_done)
    }

    /// The next change in what the caller heard, oldest first.
    pub fn next_event(&mut self) -> Option<HeardEvent> {
        self.events.pop_front()
    }

    fn hear(record: &mut ItemRecord, samples: u64, now: Instant, events: &mut VecDeque<HeardEvent>) {
        if record.resolved || samples == 0 {
            return;
        }
        if !record.started {
            record.started = true;
            events.push_back(HeardEvent::Started { item: record.key.clone(), at: now });
        }
        record.heard += samples;
        Self::check_finished(record, events);
    }

    fn check_finished(record: &mut ItemRecord, events: &mut VecDeque<HeardEvent>) {
        if !record.resolved && record.audio_done && record.heard >= record.received {
            record.resolved = true;
            events.push_back(HeardEvent::Finished { item: record.key.clone() });
        }
    }

    fn void_pending(&mut self) {
        if let Some(last) = self.pending.back() {
            self.void_through = Some(last.mark);
        }
        self.pending.clear();
    }

    fn cut_unresolved(&mut self) {
        let rate = self.rate;
        for record in self.items.iter_mut().filter(|r| !r.resolved) {
            record.resolved = true;
            record.cut = true;
            if record.received > 0 {
                self.events.push_back(HeardEvent::Cut {
                    item: record.key.clone(),
                    heard_ms: rate.samples_to_ms(record.heard),
                    total_ms: rate.samples_to_ms(record.received),
                });
            }
        }
    }

    fn forget_resolved(&mut self) {
        let resolved = self.items.iter().filter(|r| r.resolved).count();
        let mut excess = resolved.saturating_sub(RESOLVED_KEPT);
        while excess > 0 {
            let Some(index) = self.items.iter().position(|r| r.resolved) else { break };
            let goodbye = matches!(&self.goodbye, Goodbye::Item(item) if *item == self.items[index].key);
            if goodbye {
                break;
            }
            self.items.remove(index);
            excess -= 1;
        }
    }

    fn ms(&self, samples: u64) -> u64 {
        self.rate.samples_to_ms(samples)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    const RATE: SampleRate = SampleRate::Hz24000;
    const FRAME: usize = 480;

    fn key(id: &str) -> ItemKey {
        ItemKey::new(id)
    }

    fn events(ledger: &mut HeardLedger) -> Vec<HeardEvent> {
        std::iter::from_fn(|| ledger.next_event()).collect()
    }

    #[test]
    fn on_webrtc_a_frame_is_heard_when_it_is_sent() {
        let t0 = Instant::now();
        let mut l = HeardLedger::new(RATE);
        let a = key("a");
        assert!(l.received(&a, 3 * FRAME));
        l.sent(&a, FRAME, Delivery::Heard, t0);
        assert_eq!(events(&mut l), [HeardEvent::Started { item: a.clone(), at: t0 }]);
        l.sent(&a, FRAME, Delivery::Heard, t0 + Duration::from_millis(20));
        assert_eq!(l.heard_ms(&a), Some(40));
        l.audio_done(&a);
        assert_eq!(events(&mut l), [], "one frame still to play");
        l.sent(&a, FRAME, Delivery::Heard, t0 + Duration::from_millis(40));
        assert_eq!(events(&mut l), [HeardEvent::Finished { item: a.clone() }]);
        assert_eq!(l.heard_ms(&a), Some(60));
    }

    #[test]
    fn an_item_whose_audio_played_out_before_it_was_done_finishes_when_done() {
        let t0 = Instant::now();
        let mut l = HeardLedger::new(RATE);
        let a = key("a");
        l.received(&a, FRAME);
        l.sent(&a, FRAME, Delivery::Heard, t0);
        events(&mut l);
        assert!(l.provider_generating());
        l.audio_done(&a);
        assert_eq!(events(&mut l), [HeardEvent::Finished { item: a }]);
        assert!(!l.provider_generating());
    }

    #[test]
    fn on_a_phone_line_only_confirmed_marks_count_as_heard() {
        let t0 = Instant::now();
        let mut l = HeardLedger::new(SampleRate::Hz8000);
        let a = key("a");
        l.received(&a, 160 * 5);
        l.audio_done(&a);
        for mark in 1..=5 {
            l.sent(&a, 160, Delivery::Pending(mark), t0);
        }
        assert_eq!(l.heard_ms(&a), Some(0), "sent is not heard");
        assert!(l.awaiting_confirmation());
        assert_eq!(events(&mut l), []);
        l.confirmed(2, t0 + Duration::from_millis(45));
        assert_eq!(events(&mut l), [HeardEvent::Started { item: a.clone(), at: t0 + Duration::from_millis(45) }]);
        assert_eq!(l.heard_ms(&a), Some(40));
        l.confirmed(5, t0 + Duration::from_millis(105));
        assert_eq!(events(&mut l), [HeardEvent::Finished { item: a.clone() }]);
        assert!(!l.awaiting_confirmation());
    }

    #[test]
    fn a_barge_in_on_a_phone_line_truncates_at_the_last_confirmed_mark_and_voids_the_echoes_of_cleared_audio() {
        let t0 = Instant::now();
        let mut l = HeardLedger::new(SampleRate::Hz8000);
        let a = key("a");
        l.received(&a, 160 * 50);
        for mark in 1..=10 {
            l.sent(&a, 160, Delivery::Pending(mark), t0);
        }
        l.confirmed(6, t0);
        let cut = l.interrupt(Some(&Cleared { item: a.clone(), dropped_samples: 160 * 40 }));
        assert_eq!(cut, Some(Interruption { item: a.clone(), heard_ms: 120, truncate: true }));
        // Twilio echoes the marks of what `clear` dropped: they were not heard.
        l.confirmed(10, t0);
        assert_eq!(l.heard_ms(&a), Some(120));
        assert_eq!(
            events(&mut l),
            [
                HeardEvent::Started { item: a.clone(), at: t0 },
                HeardEvent::Cut { item: a.clone(), heard_ms: 120, total_ms: 1000 }
            ]
        );
        assert!(l.is_cut(&a));
        assert!(!l.received(&a, 160), "late audio of a cut item is dropped");
    }

    #[test]
    fn a_barge_in_after_the_whole_item_arrived_and_played_truncates_nothing() {
        let t0 = Instant::now();
        let mut l = HeardLedger::new(RATE);
        let (a, b) = (key("a"), key("b"));
        l.received(&a, 2 * FRAME);
        l.audio_done(&a);
        l.sent(&a, FRAME, Delivery::Heard, t0);
        l.sent(&a, FRAME, Delivery::Heard, t0);
        l.received(&b, 4 * FRAME);
        l.sent(&b, FRAME, Delivery::Heard, t0);
        events(&mut l);
        // b is the one being heard; a was heard in full.
        let cut = l.interrupt(Some(&Cleared { item: b.clone(), dropped_samples: 3 * FRAME }));
        assert_eq!(cut, Some(Interruption { item: b.clone(), heard_ms: 20, truncate: true }));
        assert!(!l.is_cut(&a));
        assert_eq!(events(&mut l), [HeardEvent::Cut { item: b, heard_ms: 20, total_ms: 80 }]);
    }

    #[test]
    fn an_item_fully_heard_but_not_yet_complete_is_still_truncated() {
        let t0 = Instant::now();
        let mut l = HeardLedger::new(RATE);
        let a = key("a");
        l.received(&a, FRAME);
        l.sent(&a, FRAME, Delivery::Heard, t0);
        // The pacer ran dry; the provider is still generating the rest of the item.
        let cut = l.interrupt(None);
        assert_eq!(cut, Some(Interruption { item: a, heard_ms: 20, truncate: true }));
    }

    #[test]
    fn nothing_heard_means_nothing_to_truncate() {
        let mut l = HeardLedger::new(RATE);
        let a = key("a");
        l.received(&a, 4 * FRAME);
        let cut = l.interrupt(Some(&Cleared { item: a.clone(), dropped_samples: 4 * FRAME }));
        assert_eq!(cut, Some(Interruption { item: a.clone(), heard_ms: 0, truncate: false }));
        assert_eq!(events(&mut l), [HeardEvent::Cut { item: a, heard_ms: 0, total_ms: 80 }]);
        assert_eq!(HeardLedger::new(RATE).interrupt(None), None, "no agent audio at all");
    }

    #[test]
    fn the_goodbye_is_the_first_new_item_and_is_done_once_heard_in_full() {
        let t0 = Instant::now();
        let mut l = HeardLedger::new(RATE);
        let (old, bye) = (key("old"), key("bye"));
        l.received(&old, 4 * FRAME);
        l.sent(&old, FRAME, Delivery::Heard, t0);
        // The goodbye takes over: what was playing is cut.
        l.interrupt(None);
        l.expect_goodbye();
        assert!(!l.received(&old, FRAME), "the old item's tail is dropped");
        assert!(!l.goodbye_started());
        l.received(&bye, 2 * FRAME);
        assert!(l.goodbye_started());
        l.sent(&bye, FRAME, Delivery::Heard, t0);
        l.sent(&bye, FRAME, Delivery::Heard, t0);
        assert!(!l.goodbye_heard(), "its audio may not be complete");
        l.audio_done(&bye);
        assert!(l.goodbye_heard());
    }

    #[test]
    fn a_goodbye_candidate_that_was_the_replaced_answer_gives_way_to_the_next_item() {
        let t0 = Instant::now();
        let mut l = HeardLedger::new(RATE);
        let (stale, bye) = (key("answer"), key("bye"));
        l.expect_goodbye();
        // The answer's audio was still on its way when the goodbye was asked for.
        l.received(&stale, 2 * FRAME);
        assert!(l.goodbye_started());
        // Its response ends cancelled: the session cuts it and waits for the next item.
        l.interrupt(None);
        l.expect_goodbye();
        assert!(!l.goodbye_started());
        l.received(&bye, FRAME);
        l.audio_done(&bye);
        assert!(!l.goodbye_heard(), "not played yet");
        l.sent(&bye, FRAME, Delivery::Heard, t0);
        assert!(l.goodbye_heard());
        assert!(l.is_cut(&stale));
    }

    #[test]
    fn a_goodbye_cut_by_the_end_of_the_call_was_not_heard() {
        let t0 = Instant::now();
        let mut l = HeardLedger::new(RATE);
        let bye = key("bye");
        l.expect_goodbye();
        l.received(&bye, 4 * FRAME);
        l.sent(&bye, FRAME, Delivery::Heard, t0);
        l.finish();
        assert!(!l.goodbye_heard());
        assert_eq!(
            events(&mut l),
            [
                HeardEvent::Started { item: bye.clone(), at: t0 },
                HeardEvent::Cut { item: bye, heard_ms: 20, total_ms: 80 }
            ]
        );
    }

    #[test]
    fn an_item_without_audio_resolves_when_done() {
        let mut l = HeardLedger::new(RATE);
        let a = key("silent");
        l.audio_done(&a);
        assert_eq!(events(&mut l), [HeardEvent::Finished { item: a }]);
    }

    #[test]
    fn the_ledger_forgets_old_resolved_items_but_not_unresolved_ones() {
        let t0 = Instant::now();
        let mut l = HeardLedger::new(RATE);
        let open = key("open");
        l.received(&open, FRAME);
        for i in 0..100 {
            let item = key(&format!("i{i}"));
            l.received(&item, FRAME);
            l.audio_done(&item);
            l.sent(&item, FRAME, Delivery::Heard, t0);
        }
        // The open item, the kept resolved ones and the newest (resolved after it was added).
        assert!(l.items.len() <= RESOLVED_KEPT + 2);
        assert_eq!(l.heard_ms(&open), Some(0));
    }
}
