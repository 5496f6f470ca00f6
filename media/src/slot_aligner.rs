//! Lines two streams of 20 ms frames up on one clock, slot by slot, for
//! stereo recordings.
//!
//! A call's clock starts when it is answered; slot `n` is the 20 ms from
//! `20 n` ms to `20 (n + 1)` ms. Each frame arrives tagged with its slot, on
//! one of two sides (the caller left, everyone else right), from sources that
//! are not in step: a jittery network releases frames in bunches, a provider
//! falls silent, a side's rate changes when a human agent joins. The aligner
//! holds each side's frames for a couple of slots and then hands out every
//! slot exactly once, in order, with whatever each side had for it:
//!
//! - a frame up to `late_slots` slots late still lands in its own slot;
//! - a later one is dropped (its slot has gone out as silence);
//! - a second frame for a slot is dropped (the first is kept);
//! - a slot a side has nothing for is handed out empty (silence).
//!
//! A frame is therefore always written at its own slot, never shifted by the
//! frames around it, so a recording cannot drift from the call's clock however
//! long the call and however poor the network.

use crate::{MAX_FRAME_SAMPLES, MAX_OPUS_PACKET, SampleRate};

/// One side of a stereo recording.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// The left channel.
    Left,
    /// The right channel.
    Right,
}

impl Side {
    fn index(self) -> usize {
        match self {
            Side::Left => 0,
            Side::Right => 1,
        }
    }
}

/// Slots held per side: how far ahead of the oldest slot not yet handed out a
/// frame may be before that slot is forced out.
const DEPTH: u64 = 8;
/// An empty holding place.
const EMPTY: u64 = u64::MAX;

/// How patient the aligner is, and how long a recording may grow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AlignerConfig {
    /// How many slots behind the newest slot seen a frame may be and still
    /// be placed (0..=6): slot `n` is handed out once a frame for slot
    /// `n + late_slots + 1` (or later) has been seen.
    pub late_slots: u64,
    /// Slots a recording may have at most; frames beyond are refused.
    pub max_slots: u64,
}

impl Default for AlignerConfig {
    /// Two slots of patience (40 ms); four hours at most.
    fn default() -> Self {
        AlignerConfig { late_slots: 2, max_slots: 4 * 3600 * 50 }
    }
}

/// What became of a frame given to [`SlotAligner::push`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SlotPush {
    /// Held for its slot.
    Accepted,
    /// Its slot had already been handed out; dropped.
    Late,
    /// Its side already had a frame for that slot; dropped.
    Duplicate,
    /// Beyond the recording's end or its maximum length; dropped.
    BeyondEnd,
    /// Not one 20 ms frame at its rate; dropped.
    BadFrame,
}

/// Counts of what the aligner saw.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AlignerStats {
    /// Frames placed in their slot.
    pub accepted: u64,
    /// Frames dropped for arriving too late.
    pub late: u64,
    /// Frames dropped as second frames for a slot.
    pub duplicates: u64,
    /// Frames dropped beyond the end.
    pub beyond_end: u64,
    /// Frames dropped for their size.
    pub bad_frames: u64,
    /// Slots handed out without a frame, per side (left, right).
    pub silent_slots: [u64; 2],
}

/// A side's frame in an [`AlignedSlot`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SideFrame<'a> {
    /// One 20 ms frame of PCM at `rate`.
    Pcm {
        /// The frame's rate.
        rate: SampleRate,
        /// `rate.samples_per_frame()` samples.
        pcm: &'a [i16],
    },
    /// One Opus packet of 20 ms, already encoded (what a WebRTC peer was sent).
    Opus(&'a [u8]),
}

/// One slot, handed out once, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AlignedSlot<'a> {
    /// The slot (20 ms units since the clock's start).
    pub slot: u64,
    /// The left side's frame, or `None` for silence.
    pub left: Option<SideFrame<'a>>,
    /// The right side's frame, or `None` for silence.
    pub right: Option<SideFrame<'a>>,
}

/// A frame waiting for its slot: PCM, or an Opus packet when `opus` is set.
struct Held {
    slot: u64,
    rate: SampleRate,
    len: usize,
    pcm: [i16; MAX_FRAME_SAMPLES],
    opus: bool,
    packet: [u8; MAX_OPUS_PACKET],
}

/// Aligns two sides' frames on slots; see the module documentation.
///
/// All of its memory is allocated by [`SlotAligner::new`]; pushing and
/// handing out frames allocate nothing.
pub struct SlotAligner {
    config: AlignerConfig,
    /// The oldest slot not yet handed out.
    next: u64,
    /// The newest slot any frame was tagged with.
    newest: Option<u64>,
    /// `DEPTH` holding places per side; slot `s` of side `i` lives at `i * DEPTH + s % DEPTH`.
    held: Vec<Held>,
    /// No more slots after [`SlotAligner::finish`].
    finished: bool,
    stats: AlignerStats,
}

impl std::fmt::Debug for SlotAligner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SlotAligner")
            .field("config", &self.config)
            .field("next", &self.next)
            .field("newest", &self.newest)
            .field("stats", &self.stats)
            .finish_non_exhaustive()
    }
}

impl SlotAligner {
    /// An aligner whose clock starts at slot 0.
    pub fn new(config: AlignerConfig) -> Result<Self, crate::MediaError> {
        if config.late_slots > DEPTH - 2 {
            return Err(crate::MediaError::InvalidConfig("late_slots must be 0..=6"));
        }
        let held = (0..2 * DEPTH)
            .map(|_| Held {
                slot: EMPTY,
                rate: SampleRate::Hz8000,
                len: 0,
                pcm: [0; MAX_FRAME_SAMPLES],
                opus: false,
                packet: [0; MAX_OPUS_PACKET],
            })
            .collect();
        Ok(SlotAligner { config, next: 0, newest: None, held, finished: false, stats: AlignerStats::default() })
    }

    /// Takes `side`'s frame for `slot` and hands every slot that is now due
    /// to `emit`, in order. An error from `emit` stops the hand-out and is
    /// returned; the slot it failed on is offered again next time.
    pub fn push<E>(
        &mut self,
        side: Side,
        slot: u64,
        rate: SampleRate,
        pcm: &[i16],
        emit: &mut impl FnMut(AlignedSlot<'_>) -> Result<(), E>,
    ) -> Result<SlotPush, E> {
        let valid = pcm.len() == rate.samples_per_frame();
        self.place(side, slot, valid, emit, |place| {
            place.rate = rate;
            place.len = pcm.len();
            place.pcm[..pcm.len()].copy_from_slice(pcm);
            place.opus = false;
        })
    }

    /// Takes `side`'s Opus packet for `slot`, to be recorded as it is; otherwise
    /// like [`push`](Self::push). A packet that is not 20 ms of audio is a bad frame.
    pub fn push_opus<E>(
        &mut self,
        side: Side,
        slot: u64,
        packet: &[u8],
        emit: &mut impl FnMut(AlignedSlot<'_>) -> Result<(), E>,
    ) -> Result<SlotPush, E> {
        let valid = packet.len() <= MAX_OPUS_PACKET && crate::ogg_opus::packet_samples_48k(packet) == Some(960);
        self.place(side, slot, valid, emit, |place| {
            place.len = packet.len();
            place.packet[..packet.len()].copy_from_slice(packet);
            place.opus = true;
        })
    }

    /// Puts a frame (written by `fill`) in its holding place, then hands out what is due.
    fn place<E>(
        &mut self,
        side: Side,
        slot: u64,
        valid: bool,
        emit: &mut impl FnMut(AlignedSlot<'_>) -> Result<(), E>,
        fill: impl FnOnce(&mut Held),
    ) -> Result<SlotPush, E> {
        if !valid {
            self.stats.bad_frames += 1;
            return Ok(SlotPush::BadFrame);
        }
        if self.finished || slot >= self.config.max_slots {
            self.stats.beyond_end += 1;
            return Ok(SlotPush::BeyondEnd);
        }
        if slot < self.next {
            self.stats.late += 1;
            return Ok(SlotPush::Late);
        }
        self.newest = Some(self.newest.map_or(slot, |n| n.max(slot)));
        // A frame far ahead: what it leaves behind goes out first (as silence
        // where nothing came), so it finds a free place.
        while slot >= self.next + DEPTH {
            self.emit_next(emit)?;
        }
        let place = &mut self.held[side.index() * DEPTH as usize + (slot % DEPTH) as usize];
        let outcome = if place.slot == slot {
            self.stats.duplicates += 1;
            SlotPush::Duplicate
        } else {
            place.slot = slot;
            fill(place);
            self.stats.accepted += 1;
            SlotPush::Accepted
        };
        self.emit_due(emit)?;
        Ok(outcome)
    }

    /// Hands out every remaining slot up to `end_slot` (exclusive; at least
    /// through the newest frame seen, at most the maximum length), then
    /// refuses further frames. Returns the number of slots handed out in all.
    pub fn finish<E>(
        &mut self,
        end_slot: u64,
        emit: &mut impl FnMut(AlignedSlot<'_>) -> Result<(), E>,
    ) -> Result<u64, E> {
        let end = end_slot.max(self.newest.map_or(0, |n| n + 1)).min(self.config.max_slots);
        while self.next < end {
            self.emit_next(emit)?;
        }
        self.finished = true;
        Ok(self.next)
    }

    /// Slots handed out so far (the next slot to go out).
    pub fn next_slot(&self) -> u64 {
        self.next
    }

    /// The newest slot any frame was tagged with.
    pub fn newest_slot(&self) -> Option<u64> {
        self.newest
    }

    /// What the aligner saw so far.
    pub fn stats(&self) -> AlignerStats {
        self.stats
    }

    /// The configuration in force.
    pub fn config(&self) -> AlignerConfig {
        self.config
    }

    fn emit_due<E>(&mut self, emit: &mut impl FnMut(AlignedSlot<'_>) -> Result<(), E>) -> Result<(), E> {
        let Some(newest) = self.newest else { return Ok(()) };
        while self.next + self.config.late_slots < newest {
            self.emit_next(emit)?;
        }
        Ok(())
    }

    fn emit_next<E>(&mut self, emit: &mut impl FnMut(AlignedSlot<'_>) -> Result<(), E>) -> Result<(), E> {
        let slot = self.next;
        let at = (slot % DEPTH) as usize;
        let (left, right) = self.held.split_at_mut(DEPTH as usize);
        fn frame(held: &Held, slot: u64) -> Option<SideFrame<'_>> {
            (held.slot == slot).then_some(match held.opus {
                true => SideFrame::Opus(&held.packet[..held.len]),
                false => SideFrame::Pcm { rate: held.rate, pcm: &held.pcm[..held.len] },
            })
        }
        let aligned = AlignedSlot { slot, left: frame(&left[at], slot), right: frame(&right[at], slot) };
        let silent = [aligned.left.is_none(), aligned.right.is_none()];
        emit(aligned)?;
        for (side, silent) in silent.into_iter().enumerate() {
            if silent {
                self.stats.silent_slots[side] += 1;
            }
        }
        left[at].slot = EMPTY;
        right[at].slot = EMPTY;
        self.next += 1;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_signal::Xorshift;
    use std::convert::Infallible;

    const R: SampleRate = SampleRate::Hz8000;

    fn pcm(frame: SideFrame<'_>) -> &[i16] {
        match frame {
            SideFrame::Pcm { pcm, .. } => pcm,
            SideFrame::Opus(_) => panic!("a PCM frame was expected"),
        }
    }

    /// A frame whose every sample carries `mark`.
    fn frame(rate: SampleRate, mark: i16) -> Vec<i16> {
        vec![mark; rate.samples_per_frame()]
    }

    /// What came out for one slot: each side's mark, or None for silence.
    type Out = (u64, Option<i16>, Option<i16>);

    fn collect(out: &mut Vec<Out>) -> impl FnMut(AlignedSlot<'_>) -> Result<(), Infallible> + '_ {
        |s: AlignedSlot<'_>| {
            out.push((s.slot, s.left.map(|f| pcm(f)[0]), s.right.map(|f| pcm(f)[0])));
            Ok(())
        }
    }

    fn aligner() -> SlotAligner {
        SlotAligner::new(AlignerConfig::default()).unwrap()
    }

    #[test]
    fn each_slot_goes_out_once_in_order_when_the_clock_is_three_slots_past_it() {
        let mut a = aligner();
        let mut out = Vec::new();
        for slot in 0..5u64 {
            let mark = slot as i16 + 1;
            a.push(Side::Left, slot, R, &frame(R, mark), &mut collect(&mut out)).unwrap();
            a.push(Side::Right, slot, SampleRate::Hz24000, &frame(SampleRate::Hz24000, -mark), &mut collect(&mut out))
                .unwrap();
        }
        assert_eq!(out, vec![(0, Some(1), Some(-1)), (1, Some(2), Some(-2))]);
        assert_eq!(a.finish(0, &mut collect(&mut out)).unwrap(), 5);
        assert_eq!(out.len(), 5);
        assert_eq!(out[4], (4, Some(5), Some(-5)));
    }

    #[test]
    fn a_side_with_nothing_for_a_slot_is_silent_there() {
        let mut a = aligner();
        let mut out = Vec::new();
        for slot in [0u64, 1, 3, 4] {
            a.push(Side::Left, slot, R, &frame(R, slot as i16), &mut collect(&mut out)).unwrap();
        }
        a.finish(6, &mut collect(&mut out)).unwrap();
        let left: Vec<Option<i16>> = out.iter().map(|o| o.1).collect();
        assert_eq!(left, vec![Some(0), Some(1), None, Some(3), Some(4), None]);
        assert!(out.iter().all(|o| o.2.is_none()));
        assert_eq!(a.stats().silent_slots, [2, 6]);
    }

    #[test]
    fn frames_one_or_two_slots_late_land_in_their_own_slot() {
        let mut a = aligner();
        let mut out = Vec::new();
        // Slot 1's frame comes after slot 3's, slot 2's after slot 4's: both in time.
        for slot in [0u64, 3, 1, 4, 2, 5] {
            assert_eq!(
                a.push(Side::Left, slot, R, &frame(R, slot as i16), &mut collect(&mut out)).unwrap(),
                SlotPush::Accepted
            );
        }
        a.finish(0, &mut collect(&mut out)).unwrap();
        assert_eq!(out.iter().map(|o| o.1).collect::<Vec<_>>(), (0..6).map(Some).collect::<Vec<_>>());
    }

    #[test]
    fn a_frame_three_slots_late_is_dropped_and_its_slot_stays_silent() {
        let mut a = aligner();
        let mut out = Vec::new();
        for slot in [0u64, 2, 4] {
            a.push(Side::Left, slot, R, &frame(R, slot as i16), &mut collect(&mut out)).unwrap();
        }
        assert_eq!(a.push(Side::Left, 1, R, &frame(R, 1), &mut collect(&mut out)).unwrap(), SlotPush::Late);
        a.finish(0, &mut collect(&mut out)).unwrap();
        assert_eq!(out.iter().map(|o| o.1).collect::<Vec<_>>(), vec![Some(0), None, Some(2), None, Some(4)]);
        assert_eq!(a.stats().late, 1);
    }

    #[test]
    fn a_second_frame_for_a_slot_is_dropped_and_shifts_nothing() {
        let mut a = aligner();
        let mut out = Vec::new();
        a.push(Side::Right, 0, R, &frame(R, 10), &mut collect(&mut out)).unwrap();
        assert_eq!(a.push(Side::Right, 0, R, &frame(R, 99), &mut collect(&mut out)).unwrap(), SlotPush::Duplicate);
        a.push(Side::Right, 1, R, &frame(R, 11), &mut collect(&mut out)).unwrap();
        a.finish(0, &mut collect(&mut out)).unwrap();
        assert_eq!(out.iter().map(|o| o.2).collect::<Vec<_>>(), vec![Some(10), Some(11)]);
        assert_eq!(a.stats().duplicates, 1);
    }

    #[test]
    fn a_jump_ahead_sends_out_what_it_leaves_behind_as_silence() {
        let mut a = aligner();
        let mut out = Vec::new();
        a.push(Side::Left, 0, R, &frame(R, 1), &mut collect(&mut out)).unwrap();
        a.push(Side::Left, 100, R, &frame(R, 2), &mut collect(&mut out)).unwrap();
        assert_eq!(out.len(), 98, "slots 0..=97 are due once slot 100 is seen");
        a.finish(0, &mut collect(&mut out)).unwrap();
        assert_eq!(out.len(), 101);
        assert_eq!(out[0].1, Some(1));
        assert!(out[1..100].iter().all(|o| o.1.is_none()));
        assert_eq!(out[100], (100, Some(2), None));
    }

    #[test]
    fn the_end_pads_with_silence_and_nothing_is_taken_after_it() {
        let mut a = aligner();
        let mut out = Vec::new();
        a.push(Side::Left, 0, R, &frame(R, 1), &mut collect(&mut out)).unwrap();
        assert_eq!(a.finish(50, &mut collect(&mut out)).unwrap(), 50);
        assert_eq!(a.push(Side::Left, 51, R, &frame(R, 1), &mut collect(&mut out)).unwrap(), SlotPush::BeyondEnd);
        assert_eq!(out.len(), 50);
    }

    #[test]
    fn frames_of_the_wrong_size_or_beyond_the_maximum_are_refused() {
        let mut a = SlotAligner::new(AlignerConfig { late_slots: 2, max_slots: 10 }).unwrap();
        let mut out = Vec::new();
        assert_eq!(a.push(Side::Left, 0, R, &[0; 100], &mut collect(&mut out)).unwrap(), SlotPush::BadFrame);
        assert_eq!(a.push(Side::Left, 10, R, &frame(R, 1), &mut collect(&mut out)).unwrap(), SlotPush::BeyondEnd);
        assert_eq!(a.finish(1_000, &mut collect(&mut out)).unwrap(), 10, "never past the maximum");
        assert!(SlotAligner::new(AlignerConfig { late_slots: 7, max_slots: 10 }).is_err());
    }

    #[test]
    fn an_emit_error_is_returned_and_the_slot_offered_again() {
        let mut a = aligner();
        let mut fail = |_: AlignedSlot<'_>| Err::<(), &str>("disk full");
        a.push(Side::Left, 0, R, &frame(R, 1), &mut fail).unwrap();
        assert_eq!(a.push(Side::Left, 3, R, &frame(R, 4), &mut fail), Err("disk full"));
        let mut out = Vec::new();
        a.finish(0, &mut collect(&mut out)).unwrap();
        assert_eq!(out.iter().map(|o| o.1).collect::<Vec<_>>(), vec![Some(1), None, None, Some(4)]);
    }

    /// An hour of a call on both sides from jittery sources: every frame is
    /// delivered 0-2 slots late (so bunches and gaps), about 1 % never arrive
    /// and 0.5 % arrive twice, and the right side switches rate mid-call. Each
    /// frame carries its own slot number; every one that arrived must come out
    /// at exactly that slot, and both sides must end on the same slot.
    #[test]
    fn an_hour_of_jittery_frames_comes_out_without_drift() {
        const SLOTS: u64 = 60 * 60 * 50;
        let mut rng = Xorshift::new(60);
        // (delivery time in slots, tie-break, side, slot)
        let mut deliveries: Vec<(u64, u64, Side, u64)> = Vec::with_capacity(2 * SLOTS as usize + 1_000);
        let mut lost = [0u64; 2];
        for slot in 0..SLOTS {
            for side in [Side::Left, Side::Right] {
                if rng.below(100) == 0 {
                    lost[side.index()] += 1;
                    continue;
                }
                let delay = rng.below(3);
                deliveries.push((slot + delay, rng.next_u64(), side, slot));
                if rng.below(200) == 0 {
                    deliveries.push((slot + rng.below(3), rng.next_u64(), side, slot));
                }
            }
        }
        deliveries.sort_unstable_by_key(|&(at, tie, _, _)| (at, tie));
        let mut a = aligner();
        let mut next_expected = 0u64;
        let mut heard = [0u64; 2];
        let mut check = |s: AlignedSlot<'_>| -> Result<(), String> {
            if s.slot != next_expected {
                return Err(format!("slot {} out of order (expected {next_expected})", s.slot));
            }
            next_expected += 1;
            for (i, side) in [s.left, s.right].into_iter().enumerate() {
                if let Some(f) = side {
                    let mark = (pcm(f)[0] as u16 as u64) | ((pcm(f)[1] as u16 as u64) << 16);
                    if mark != s.slot {
                        return Err(format!("side {i}: frame of slot {mark} came out at slot {}", s.slot));
                    }
                    heard[i] += 1;
                }
            }
            Ok(())
        };
        let mut pcm = [0i16; MAX_FRAME_SAMPLES];
        for (_, _, side, slot) in deliveries {
            let rate = match side {
                Side::Left => SampleRate::Hz16000,
                Side::Right if slot < SLOTS / 2 => SampleRate::Hz24000,
                Side::Right => SampleRate::Hz48000,
            };
            let pcm = &mut pcm[..rate.samples_per_frame()];
            pcm[0] = slot as u16 as i16;
            pcm[1] = (slot >> 16) as u16 as i16;
            let outcome = a.push(side, slot, rate, pcm, &mut check).unwrap();
            assert_ne!(outcome, SlotPush::Late, "a frame at most two slots late is never dropped");
        }
        let end = a.finish(SLOTS, &mut check).unwrap();
        assert_eq!(end, SLOTS);
        assert_eq!(next_expected, SLOTS, "both sides end on the same slot: no drift");
        assert_eq!(heard, [SLOTS - lost[0], SLOTS - lost[1]], "every frame that arrived was heard once");
        assert_eq!(a.stats().silent_slots, lost);
        assert!(a.stats().duplicates > 0);
    }
}
