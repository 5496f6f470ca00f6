//! Jitter buffer for incoming RTP audio.
//!
//! Packets arrive late, early, twice, out of order or never; the decoder wants
//! one packet every 20 ms, in order. The buffer holds packets for a *target
//! delay* and hands them out on the caller's 20 ms tick:
//!
//! * **Order** is by RTP sequence number, extended past 16-bit wrap-around.
//! * **Duplicates** and packets arriving after their turn (**late**) are dropped.
//! * **Losses** come out as [`JitterOutput::Lost`] carrying the next packet if
//!   it is already here, so the decoder can rebuild the lost frame from that
//!   packet's in-band FEC ([`crate::OpusDecoder::conceal`]).
//! * **Target delay** follows the measured interarrival jitter (RFC 3550),
//!   `3 × jitter` clamped to `[min_delay, max_delay]`: enough to absorb
//!   ordinary variation, no more.
//! * **Underrun** (nothing to play: a network stall, or DTX silence where the
//!   sender sends nothing) stops the playout point instead of skipping ahead;
//!   the buffer refills to the target delay and resumes, so a stall costs
//!   latency rather than audio. **Excess delay** (the quickest packet of the
//!   last second waited more than a frame longer than the target) is removed
//!   one frame at a time, and any packet that waited past `max_delay` is
//!   dropped when a newer one is waiting.
//! * **Stream changes**: the first packet defines the base (a sender may start
//!   mid-stream), and a jump of more than [`RESYNC_JUMP`] sequence numbers
//!   that the next packet confirms is a new stream (sender restart, SSRC
//!   switch): the buffer flushes and starts over. A lone stray packet is
//!   dropped instead. A timestamp jump with running sequence numbers (a
//!   sender clock reset) changes nothing: playout follows sequence numbers,
//!   and the jitter estimate skips the discontinuity. When the SSRC changes,
//!   the caller should [`JitterBuffer::reset`] rather than rely on this.
//!
//! Payloads are copied into a slot pool allocated once at construction, so a
//! warm buffer never allocates. Time comes in as an argument; the buffer never
//! reads a clock.

use std::time::{Duration, Instant};

use crate::{FRAME_DURATION, MediaError};

/// A sequence jump (either way) larger than this, confirmed by the next
/// packet, is treated as a new stream. 100 packets is 2 s of 20 ms audio:
/// more reordering than any real path shows, less than a sender restart.
pub const RESYNC_JUMP: u16 = 100;

/// Longest run of lost packets [`JitterBuffer::pop_ready`] conceals (100 ms); beyond
/// that, extrapolating speech only produces noise, so the rest is skipped.
pub const MAX_CONCEALED_FRAMES: i64 = 5;

/// Pops per excess-delay measurement window (1 s of 20 ms ticks).
const SHRINK_WINDOW_POPS: u32 = 50;

/// Interarrival differences larger than this (ms) are stream discontinuities
/// (timestamp resets), not jitter, and are left out of the estimate.
const MAX_JITTER_SAMPLE_MS: f64 = 1_000.0;

/// Settings of a [`JitterBuffer`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JitterConfig {
    /// Lowest target delay: what a perfect network still gets.
    pub min_delay: Duration,
    /// Highest target delay, and the age past which a packet is dropped when
    /// a newer one is waiting: the latency budget of the inbound path.
    pub max_delay: Duration,
    /// RTP clock rate of the stream (48 000 for Opus, whatever its PCM rate).
    pub clock_rate: u32,
    /// Audio carried by one packet (the negotiated `ptime`, 20 ms here).
    pub frame_duration: Duration,
    /// Slots in the pool: the most packets held at once. Must cover
    /// `max_delay` plus some reordering.
    pub max_packets: usize,
    /// Largest payload accepted, in bytes (slot size). 1500 covers any payload
    /// that fits an Ethernet MTU.
    pub max_payload: usize,
}

impl Default for JitterConfig {
    fn default() -> Self {
        JitterConfig {
            min_delay: Duration::from_millis(20),
            max_delay: Duration::from_millis(120),
            clock_rate: 48_000,
            frame_duration: FRAME_DURATION,
            max_packets: 32,
            max_payload: 1_500,
        }
    }
}

/// What the buffer hands out for one tick.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JitterOutput<'a> {
    /// The next packet's payload: decode it.
    Packet(&'a [u8]),
    /// The next packet is missing: conceal one frame, using `next` (the packet
    /// after the missing one, if it is here) for FEC. `next` is handed out
    /// again as a `Packet` on the following tick.
    Lost {
        /// The packet after the lost one, if already received.
        next: Option<&'a [u8]>,
    },
}

/// What [`JitterBuffer::push`] did with a packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PushOutcome {
    /// Stored for playout.
    Buffered,
    /// Already held or already played: dropped.
    Duplicate,
    /// Its turn has passed: dropped.
    Late,
    /// Larger than `max_payload`: dropped.
    TooLarge,
    /// A big sequence jump: held aside until the next packet shows whether it
    /// starts a new stream or was a stray.
    Held,
    /// Confirmed a new stream: the buffer restarted from the held packet and this one.
    Resynced,
}

/// Counters and gauges of a [`JitterBuffer`], for logs and metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct JitterStats {
    /// Packets pushed (whatever became of them).
    pub received: u64,
    /// Sequence numbers that were never played: concealed, or skipped over
    /// when playout resumed after a gap.
    pub lost: u64,
    /// Packets that arrived after their turn and were dropped.
    pub late: u64,
    /// Packets received twice (the copy was dropped).
    pub duplicates: u64,
    /// Packets accepted out of order (before a higher sequence number that
    /// had already arrived).
    pub reordered: u64,
    /// Packets dropped by the buffer itself: to cut excess delay, for lack of
    /// room, oversized, stray, or flushed by a resync.
    pub discarded: u64,
    /// Times the buffer restarted on a new stream.
    pub resyncs: u64,
    /// Interarrival jitter (RFC 3550 estimator), in milliseconds.
    pub jitter_ms: f64,
    /// How long the last played packet waited in the buffer, in milliseconds.
    pub current_delay_ms: u32,
    /// Delay the buffer aims for, in milliseconds.
    pub target_delay_ms: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SlotState {
    Empty,
    Filled,
    /// Played; kept so a copy arriving later is counted as a duplicate.
    Played,
}

#[derive(Debug, Clone, Copy)]
struct Slot {
    /// Extended sequence number of the packet in this slot.
    ext: i64,
    state: SlotState,
    len: usize,
    arrival: Option<Instant>,
}

const EMPTY_SLOT: Slot = Slot { ext: i64::MIN, state: SlotState::Empty, len: 0, arrival: None };

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// No packet yet.
    Idle,
    /// Waiting for the target delay to build up (at start, and after an underrun).
    Buffering,
    /// Handing out a packet per tick.
    Playing,
}

#[derive(Debug, Clone, Copy)]
struct Held {
    seq: u16,
    ts: u32,
    len: usize,
    arrival: Instant,
}

/// Reorders and times incoming RTP audio packets; see the module docs.
pub struct JitterBuffer {
    config: JitterConfig,
    frame_ms: f64,
    min_delay_ms: f64,
    max_delay_ms: f64,
    /// `slots[ext mod len]`; payload bytes at `pool[i * max_payload..]`.
    slots: Vec<Slot>,
    pool: Vec<u8>,
    phase: Phase,
    /// Whether anything was played since the stream (re)started; before that,
    /// an earlier sequence number may still extend the stream backwards.
    started: bool,
    /// Extended sequence number to play next.
    next: i64,
    /// Highest extended sequence number received.
    highest: i64,
    /// Arrival and RTP timestamp of the previous packet, for the jitter estimate.
    last_arrival: Option<(Instant, u32)>,
    jitter_ms: f64,
    target_ms: f64,
    window_pops: u32,
    window_min_wait_ms: f64,
    held: Option<Held>,
    held_payload: Vec<u8>,
    stats: JitterStats,
}

impl std::fmt::Debug for JitterBuffer {
    // Not derived: the payload pool is tens of kilobytes.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JitterBuffer")
            .field("phase", &self.phase)
            .field("next", &self.next)
            .field("highest", &self.highest)
            .field("buffered", &self.buffered())
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1_000.0
}

impl JitterBuffer {
    /// Builds a buffer, allocating its whole slot pool now.
    pub fn new(config: JitterConfig) -> Result<Self, MediaError> {
        if config.clock_rate == 0 {
            return Err(MediaError::InvalidConfig("jitter clock_rate must be > 0"));
        }
        if config.frame_duration < Duration::from_millis(1) {
            return Err(MediaError::InvalidConfig("jitter frame_duration must be at least 1 ms"));
        }
        if config.min_delay > config.max_delay {
            return Err(MediaError::InvalidConfig("jitter min_delay must not exceed max_delay"));
        }
        let frames_in_max_delay = (ms(config.max_delay) / ms(config.frame_duration)).ceil() as usize;
        if config.max_packets < frames_in_max_delay + 2 {
            return Err(MediaError::InvalidConfig("jitter max_packets must hold max_delay plus two frames"));
        }
        if config.max_payload == 0 || config.max_payload > 65_536 {
            return Err(MediaError::InvalidConfig("jitter max_payload must be 1..=65536 bytes"));
        }
        let min_delay_ms = ms(config.min_delay);
        Ok(JitterBuffer {
            frame_ms: ms(config.frame_duration),
            min_delay_ms,
            max_delay_ms: ms(config.max_delay),
            slots: vec![EMPTY_SLOT; config.max_packets],
            pool: vec![0; config.max_packets * config.max_payload],
            phase: Phase::Idle,
            started: false,
            next: 0,
            highest: 0,
            last_arrival: None,
            jitter_ms: 0.0,
            target_ms: min_delay_ms,
            window_pops: 0,
            window_min_wait_ms: f64::INFINITY,
            held: None,
            held_payload: vec![0; config.max_payload],
            stats: JitterStats { target_delay_ms: min_delay_ms.round() as u32, ..JitterStats::default() },
            config,
        })
    }

    /// Takes in one received packet (its payload is copied).
    pub fn push(&mut self, seq: u16, rtp_timestamp: u32, payload: &[u8], now: Instant) -> PushOutcome {
        self.stats.received += 1;
        if payload.len() > self.config.max_payload {
            self.stats.discarded += 1;
            return PushOutcome::TooLarge;
        }
        if self.phase == Phase::Idle {
            self.start_stream(seq, rtp_timestamp, payload, now);
            return PushOutcome::Buffered;
        }
        let delta = i64::from(seq.wrapping_sub(self.highest as u16) as i16);
        if delta.unsigned_abs() > u64::from(RESYNC_JUMP) {
            if let Some(held) = self.held.take()
                && seq == held.seq.wrapping_add(1)
            {
                self.resync(held);
                let outcome = self.insert(self.highest + 1, rtp_timestamp, payload, now);
                debug_assert_eq!(outcome, PushOutcome::Buffered);
                return PushOutcome::Resynced;
            }
            if self.held.is_some() {
                self.stats.discarded += 1;
            }
            self.held_payload[..payload.len()].copy_from_slice(payload);
            self.held = Some(Held { seq, ts: rtp_timestamp, len: payload.len(), arrival: now });
            return PushOutcome::Held;
        }
        if self.held.take().is_some() {
            // The stream went on where it was: the held packet was a stray.
            self.stats.discarded += 1;
        }
        self.insert(self.highest + delta, rtp_timestamp, payload, now)
    }

    /// Hands out what to play for this 20 ms tick: `None` while nothing is
    /// due (before the first packet has waited the target delay, and during
    /// an underrun or DTX silence: play silence or PLC then).
    pub fn pop(&mut self, now: Instant) -> Option<JitterOutput<'_>> {
        match self.phase {
            Phase::Idle => return None,
            Phase::Buffering => {
                if !self.ready_to_play(now) {
                    return None;
                }
                self.begin_playout();
            }
            Phase::Playing => {}
        }
        if self.highest < self.next {
            self.phase = Phase::Buffering;
            return None;
        }
        self.drop_overaged(now);

        let slot = self.slots[self.index(self.next)];
        if slot.ext != self.next || slot.state != SlotState::Filled {
            self.stats.lost += 1;
            self.next += 1;
            let following = self.filled_range(self.next);
            return Some(JitterOutput::Lost { next: following.map(|r| &self.pool[r]) });
        }

        let mut wait_ms = ms(slot.arrival.map_or(Duration::ZERO, |a| now.saturating_duration_since(a)));
        self.window_min_wait_ms = self.window_min_wait_ms.min(wait_ms);
        self.window_pops += 1;
        if self.window_pops >= SHRINK_WINDOW_POPS {
            let excess = self.window_min_wait_ms - self.target_ms;
            self.window_pops = 0;
            self.window_min_wait_ms = f64::INFINITY;
            if excess > self.frame_ms && self.filled_range(self.next + 1).is_some() {
                // Every packet of the last second waited over a frame longer
                // than needed: drop one frame to give that frame back.
                self.discard(self.next);
                self.next += 1;
                let arrival = self.slots[self.index(self.next)].arrival;
                wait_ms = ms(arrival.map_or(Duration::ZERO, |a| now.saturating_duration_since(a)));
            }
        }

        let index = self.index(self.next);
        self.slots[index].state = SlotState::Played;
        self.next += 1;
        self.stats.current_delay_ms = wait_ms.round() as u32;
        let start = index * self.config.max_payload;
        Some(JitterOutput::Packet(&self.pool[start..start + self.slots[index].len]))
    }

    /// Low-latency release, for consumers that need order and loss concealment but no
    /// playout smoothing — a speech model's input, which buffers on its own. The next
    /// packet is handed out the moment it is here; a missing one is waited for until the
    /// packet after it has waited the target delay (the same adaptive `3 × jitter` as
    /// [`Self::pop`], so a reordered packet is not mistaken for a loss), then reported
    /// [`JitterOutput::Lost`] with that packet for FEC. Call it in a loop after every
    /// [`Self::push`] and on every tick until it returns `None`. A gap longer than
    /// [`MAX_CONCEALED_FRAMES`] is concealed only at its end (the rest is skipped and
    /// counted lost). Do not mix with [`Self::pop`] on one buffer.
    pub fn pop_ready(&mut self, now: Instant) -> Option<JitterOutput<'_>> {
        match self.phase {
            Phase::Idle => return None,
            Phase::Buffering => self.begin_playout(),
            Phase::Playing => {}
        }
        if self.highest < self.next {
            return None;
        }
        if self.filled_range(self.next).is_none() {
            let first = self.first_filled()?;
            let arrival = self.slots[self.index(first)].arrival;
            let waited = arrival.map_or(0.0, |a| ms(now.saturating_duration_since(a)));
            if waited < self.target_ms {
                return None;
            }
            let gap = first - self.next;
            if gap > MAX_CONCEALED_FRAMES {
                self.stats.lost += (gap - MAX_CONCEALED_FRAMES) as u64;
                self.next = first - MAX_CONCEALED_FRAMES;
            }
            self.stats.lost += 1;
            self.next += 1;
            let following = self.filled_range(self.next);
            return Some(JitterOutput::Lost { next: following.map(|r| &self.pool[r]) });
        }
        let index = self.index(self.next);
        let wait_ms = self.slots[index].arrival.map_or(0.0, |a| ms(now.saturating_duration_since(a)));
        self.slots[index].state = SlotState::Played;
        self.next += 1;
        self.stats.current_delay_ms = wait_ms.round() as u32;
        let start = index * self.config.max_payload;
        Some(JitterOutput::Packet(&self.pool[start..start + self.slots[index].len]))
    }

    /// Counters and gauges so far.
    pub fn stats(&self) -> JitterStats {
        JitterStats { jitter_ms: self.jitter_ms, target_delay_ms: self.target_ms.round() as u32, ..self.stats }
    }

    /// The delay the buffer currently aims for.
    pub fn target_delay(&self) -> Duration {
        Duration::from_secs_f64(self.target_ms / 1_000.0)
    }

    /// Audio held from the playout point to the newest packet, counting gaps.
    pub fn buffered(&self) -> Duration {
        if self.phase == Phase::Idle || self.highest < self.next {
            return Duration::ZERO;
        }
        self.config.frame_duration * (self.highest - self.next + 1) as u32
    }

    /// Whether packets are being handed out (as opposed to buffering up).
    pub fn is_playing(&self) -> bool {
        self.phase == Phase::Playing
    }

    /// The configuration in force.
    pub fn config(&self) -> &JitterConfig {
        &self.config
    }

    /// Empties the buffer and forgets the stream (keeps the statistics and the
    /// jitter estimate).
    pub fn reset(&mut self) {
        self.slots.fill(EMPTY_SLOT);
        self.phase = Phase::Idle;
        self.started = false;
        self.held = None;
        self.last_arrival = None;
        self.window_pops = 0;
        self.window_min_wait_ms = f64::INFINITY;
    }

    fn index(&self, ext: i64) -> usize {
        ext.rem_euclid(self.slots.len() as i64) as usize
    }

    fn filled_range(&self, ext: i64) -> Option<std::ops::Range<usize>> {
        let index = self.index(ext);
        let slot = &self.slots[index];
        (slot.ext == ext && slot.state == SlotState::Filled).then(|| {
            let start = index * self.config.max_payload;
            start..start + slot.len
        })
    }

    fn start_stream(&mut self, seq: u16, ts: u32, payload: &[u8], now: Instant) {
        self.phase = Phase::Buffering;
        self.started = false;
        self.next = i64::from(seq);
        self.highest = self.next;
        self.last_arrival = None;
        self.store(self.next, payload, now);
        self.update_jitter(ts, now);
    }

    fn resync(&mut self, held: Held) {
        let flushed = self.slots.iter().filter(|s| s.state == SlotState::Filled).count();
        self.stats.discarded += flushed as u64;
        self.stats.resyncs += 1;
        self.reset();
        // Move the held payload out for the copy (no allocation: `take` leaves
        // an empty Vec), then put it back.
        let held_payload = std::mem::take(&mut self.held_payload);
        self.start_stream(held.seq, held.ts, &held_payload[..held.len], held.arrival);
        self.held_payload = held_payload;
    }

    fn insert(&mut self, ext: i64, ts: u32, payload: &[u8], now: Instant) -> PushOutcome {
        let capacity = self.slots.len() as i64;
        if ext < self.next {
            if !self.started && self.highest - ext < capacity {
                // Playout has not begun: this extends the stream backwards.
                self.next = ext;
            } else {
                let slot = &self.slots[self.index(ext)];
                if slot.ext == ext && slot.state != SlotState::Empty {
                    self.stats.duplicates += 1;
                    return PushOutcome::Duplicate;
                }
                self.stats.late += 1;
                return PushOutcome::Late;
            }
        }
        let slot = &self.slots[self.index(ext)];
        if slot.ext == ext && slot.state == SlotState::Filled {
            self.stats.duplicates += 1;
            return PushOutcome::Duplicate;
        }
        if ext - self.next >= capacity {
            self.skip_to(ext - capacity + 1);
        }
        if ext < self.highest {
            self.stats.reordered += 1;
        }
        self.store(ext, payload, now);
        self.highest = self.highest.max(ext);
        self.update_jitter(ts, now);
        PushOutcome::Buffered
    }

    fn store(&mut self, ext: i64, payload: &[u8], now: Instant) {
        let index = self.index(ext);
        let start = index * self.config.max_payload;
        self.pool[start..start + payload.len()].copy_from_slice(payload);
        self.slots[index] = Slot { ext, state: SlotState::Filled, len: payload.len(), arrival: Some(now) };
    }

    fn discard(&mut self, ext: i64) {
        let index = self.index(ext);
        if self.slots[index].ext == ext && self.slots[index].state == SlotState::Filled {
            self.slots[index].state = SlotState::Empty;
            self.stats.discarded += 1;
        }
    }

    /// Moves the playout point forward to `new_next`, dropping what it passes.
    fn skip_to(&mut self, new_next: i64) {
        if new_next <= self.next {
            return;
        }
        let (from, to) = (self.next, new_next);
        let mut filled = 0;
        for slot in &mut self.slots {
            if slot.state == SlotState::Filled && (from..to).contains(&slot.ext) {
                slot.state = SlotState::Empty;
                filled += 1;
            }
        }
        self.stats.discarded += filled;
        if self.started {
            self.stats.lost += (to - from) as u64 - filled;
        }
        self.next = new_next;
    }

    /// Sequence number of the earliest packet at or after the playout point.
    fn first_filled(&self) -> Option<i64> {
        self.slots.iter().filter(|s| s.state == SlotState::Filled && s.ext >= self.next).map(|s| s.ext).min()
    }

    fn ready_to_play(&self, now: Instant) -> bool {
        let Some(first) = self.first_filled() else {
            return false;
        };
        let earliest_arrival = self
            .slots
            .iter()
            .filter(|s| s.state == SlotState::Filled && s.ext >= self.next)
            .filter_map(|s| s.arrival)
            .min();
        let waited = earliest_arrival.is_some_and(|a| ms(now.saturating_duration_since(a)) >= self.target_ms);
        let span_ms = (self.highest - first + 1) as f64 * self.frame_ms;
        waited || span_ms >= self.target_ms + self.frame_ms
    }

    fn begin_playout(&mut self) {
        if let Some(first) = self.first_filled()
            && first > self.next
        {
            if self.started {
                self.stats.lost += (first - self.next) as u64;
            }
            self.next = first;
        }
        self.phase = Phase::Playing;
        self.started = true;
        self.window_pops = 0;
        self.window_min_wait_ms = f64::INFINITY;
    }

    /// Drops packets at the playout point that waited past `max_delay` (plus
    /// the frame being played) while a newer packet is waiting.
    fn drop_overaged(&mut self, now: Instant) {
        let limit = self.max_delay_ms + self.frame_ms;
        while self.next < self.highest {
            let slot = self.slots[self.index(self.next)];
            let overaged = slot.ext == self.next
                && slot.state == SlotState::Filled
                && slot.arrival.is_some_and(|a| ms(now.saturating_duration_since(a)) > limit);
            if !overaged {
                break;
            }
            self.discard(self.next);
            self.next += 1;
        }
    }

    fn update_jitter(&mut self, ts: u32, now: Instant) {
        if let Some((prev_arrival, prev_ts)) = self.last_arrival {
            let arrival_ms = ms(now.saturating_duration_since(prev_arrival));
            let ts_ms = f64::from(ts.wrapping_sub(prev_ts) as i32) * 1_000.0 / f64::from(self.config.clock_rate);
            let d = (arrival_ms - ts_ms).abs();
            if d < MAX_JITTER_SAMPLE_MS {
                self.jitter_ms += (d - self.jitter_ms) / 16.0;
                self.target_ms = (3.0 * self.jitter_ms).clamp(self.min_delay_ms, self.max_delay_ms);
            }
        }
        self.last_arrival = Some((now, ts));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const TS_PER_FRAME: u32 = 960;

    /// What one tick produced, with payloads turned back into sequence numbers.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    enum Out {
        Packet(u16),
        Lost(Option<u16>),
        Nothing,
    }

    fn payload(seq: u16) -> [u8; 3] {
        let [a, b] = seq.to_be_bytes();
        [a, b, 0xAB]
    }

    fn seq_of(p: &[u8]) -> u16 {
        u16::from_be_bytes([p[0], p[1]])
    }

    fn out(o: Option<JitterOutput<'_>>) -> Out {
        match o {
            Some(JitterOutput::Packet(p)) => Out::Packet(seq_of(p)),
            Some(JitterOutput::Lost { next }) => Out::Lost(next.map(seq_of)),
            None => Out::Nothing,
        }
    }

    /// A packet as it arrives: when (ms after t0), which sequence number, which timestamp.
    #[derive(Debug, Clone, Copy)]
    struct Arrival {
        at_ms: u64,
        seq: u16,
        ts: u32,
    }

    /// Feeds `arrivals` (in any order; sorted by time here) and ticks every
    /// 20 ms from `phase_ms` for `ticks` ticks; returns the tick outputs.
    fn simulate(jb: &mut JitterBuffer, arrivals: &[Arrival], phase_ms: u64, ticks: usize) -> Vec<Out> {
        let t0 = Instant::now();
        let at = |ms: u64| t0 + Duration::from_millis(ms);
        let mut arrivals = arrivals.to_vec();
        arrivals.sort_by_key(|a| a.at_ms);
        let mut next_arrival = 0;
        let mut outs = Vec::new();
        for tick in 0..ticks {
            let now_ms = phase_ms + 20 * tick as u64;
            while next_arrival < arrivals.len() && arrivals[next_arrival].at_ms <= now_ms {
                let a = arrivals[next_arrival];
                jb.push(a.seq, a.ts, &payload(a.seq), at(a.at_ms));
                next_arrival += 1;
            }
            outs.push(out(jb.pop(at(now_ms))));
        }
        outs
    }

    /// `n` packets sent every 20 ms from `first_seq`, arriving `delay(i)` ms late.
    fn stream(first_seq: u16, first_ts: u32, n: usize, delay: impl Fn(usize) -> u64) -> Vec<Arrival> {
        (0..n)
            .map(|i| Arrival {
                at_ms: 20 * i as u64 + delay(i),
                seq: first_seq.wrapping_add(i as u16),
                ts: first_ts.wrapping_add(TS_PER_FRAME * i as u32),
            })
            .collect()
    }

    fn packets(outs: &[Out]) -> Vec<u16> {
        outs.iter()
            .filter_map(|o| match o {
                Out::Packet(s) => Some(*s),
                _ => None,
            })
            .collect()
    }

    fn buffer() -> JitterBuffer {
        JitterBuffer::new(JitterConfig::default()).unwrap()
    }

    #[test]
    fn jitter_buffer_plays_an_in_order_stream_after_the_target_delay() {
        let mut jb = buffer();
        let outs = simulate(&mut jb, &stream(1000, 0, 50, |_| 0), 5, 52);
        assert_eq!(outs[0], Out::Nothing, "the first packet has waited only 5 ms");
        assert_eq!(outs[1], Out::Packet(1000));
        assert_eq!(packets(&outs), (1000..1050).collect::<Vec<_>>());
        let stats = jb.stats();
        assert_eq!((stats.received, stats.lost, stats.late, stats.reordered), (50, 0, 0, 0));
        assert_eq!(stats.target_delay_ms, 20);
        assert_eq!(stats.current_delay_ms, 25);
    }

    #[test]
    fn jitter_buffer_reorders_across_sequence_wraparound() {
        let mut jb = buffer();
        // Every pair of packets swaps places; sequence and timestamp both wrap.
        let arrivals = stream(65_530, u32::MAX - 2 * TS_PER_FRAME, 20, |i| if i % 2 == 0 { 25 } else { 0 });
        let outs = simulate(&mut jb, &arrivals, 5, 30);
        let expected: Vec<u16> = (0..20).map(|i| 65_530u16.wrapping_add(i)).collect();
        assert_eq!(packets(&outs), expected);
        let stats = jb.stats();
        assert_eq!(stats.lost, 0);
        assert_eq!(stats.late, 0);
        assert_eq!(stats.reordered, 10);
    }

    #[test]
    fn jitter_buffer_drops_duplicates() {
        let mut jb = buffer();
        let mut arrivals = stream(7, 0, 20, |_| 0);
        arrivals.extend(stream(7, 0, 20, |_| 3));
        let outs = simulate(&mut jb, &arrivals, 10, 25);
        assert_eq!(packets(&outs), (7..27).collect::<Vec<_>>());
        assert_eq!(jb.stats().duplicates, 20);
    }

    #[test]
    fn jitter_buffer_signals_a_loss_with_the_next_packet_for_fec() {
        let mut jb = buffer();
        let arrivals: Vec<_> = stream(100, 0, 20, |_| 0).into_iter().filter(|a| a.seq != 110).collect();
        let outs = simulate(&mut jb, &arrivals, 5, 25);
        let at = outs.iter().position(|o| *o == Out::Lost(Some(111))).unwrap();
        assert_eq!(outs[at - 1], Out::Packet(109));
        assert_eq!(outs[at + 1], Out::Packet(111));
        assert_eq!(jb.stats().lost, 1);
    }

    #[test]
    fn jitter_buffer_drops_packets_arriving_after_their_turn() {
        let mut jb = buffer();
        let arrivals = stream(0, 0, 30, |i| if i == 10 { 300 } else { 0 });
        let outs = simulate(&mut jb, &arrivals, 5, 35);
        assert!(outs.contains(&Out::Lost(Some(11))));
        assert!(!packets(&outs).contains(&10));
        let stats = jb.stats();
        assert_eq!((stats.lost, stats.late), (1, 1));
    }

    #[test]
    fn jitter_buffer_accepts_a_sender_starting_mid_stream() {
        let mut jb = buffer();
        // The first packet to arrive is 5001; 5000 overtook nobody but came 3 ms later.
        let arrivals = [
            Arrival { at_ms: 0, seq: 5001, ts: 123_456 + TS_PER_FRAME },
            Arrival { at_ms: 3, seq: 5000, ts: 123_456 },
            Arrival { at_ms: 20, seq: 5002, ts: 123_456 + 2 * TS_PER_FRAME },
            Arrival { at_ms: 40, seq: 5003, ts: 123_456 + 3 * TS_PER_FRAME },
        ];
        let outs = simulate(&mut jb, &arrivals, 10, 6);
        assert_eq!(packets(&outs), [5000, 5001, 5002, 5003]);
        assert_eq!(jb.stats().lost, 0);
    }

    #[test]
    fn jitter_buffer_rides_out_dtx_silence_without_counting_losses() {
        let mut jb = buffer();
        // 10 packets, then the sender goes quiet for 1 s (sequence numbers go
        // on, timestamps jump), then 10 more.
        let mut arrivals = stream(300, 0, 10, |_| 0);
        arrivals.extend(
            stream(310, 60 * TS_PER_FRAME, 10, |_| 0).into_iter().map(|a| Arrival { at_ms: a.at_ms + 1_200, ..a }),
        );
        let outs = simulate(&mut jb, &arrivals, 5, 80);
        assert_eq!(packets(&outs), (300..320).collect::<Vec<_>>());
        assert!(outs[20..55].iter().all(|o| *o == Out::Nothing));
        let stats = jb.stats();
        assert_eq!((stats.lost, stats.late, stats.discarded), (0, 0, 0));
        assert!(stats.jitter_ms < 1.0, "a DTX gap is not jitter: {}", stats.jitter_ms);
    }

    #[test]
    fn jitter_buffer_resyncs_after_a_sequence_and_timestamp_reset() {
        let mut jb = buffer();
        let t0 = Instant::now();
        let at = |ms: u64| t0 + Duration::from_millis(ms);
        for i in 0..10u16 {
            assert_eq!(
                jb.push(100 + i, u32::from(i) * TS_PER_FRAME, &payload(100 + i), at(20 * u64::from(i))),
                PushOutcome::Buffered
            );
            jb.pop(at(20 * u64::from(i) + 5));
        }
        // The sender restarts with new random sequence numbers and timestamps.
        assert_eq!(jb.push(40_000, 9_999_999, &payload(40_000), at(200)), PushOutcome::Held);
        assert_eq!(jb.push(40_001, 9_999_999 + TS_PER_FRAME, &payload(40_001), at(220)), PushOutcome::Resynced);
        let mut played = Vec::new();
        for i in 0..6u64 {
            let now = at(225 + 20 * i);
            if i >= 1 {
                jb.push(40_001 + i as u16, 9_999_999 + TS_PER_FRAME * (i as u32 + 1), &payload(40_001 + i as u16), now);
            }
            if let Some(JitterOutput::Packet(p)) = jb.pop(now) {
                played.push(seq_of(p));
            }
        }
        assert_eq!(played[..4], [40_000, 40_001, 40_002, 40_003]);
        assert_eq!(jb.stats().resyncs, 1);
    }

    #[test]
    fn jitter_buffer_keeps_playing_through_a_timestamp_reset() {
        let mut jb = buffer();
        // Sequence numbers run on; the timestamps jump (a sender clock reset).
        let arrivals: Vec<_> = stream(500, 1_000, 40, |_| 0)
            .into_iter()
            .map(|a| if a.seq >= 520 { Arrival { ts: a.ts.wrapping_add(3_000_000_000), ..a } } else { a })
            .collect();
        let outs = simulate(&mut jb, &arrivals, 5, 42);
        assert_eq!(packets(&outs), (500..540).collect::<Vec<_>>());
        let stats = jb.stats();
        assert_eq!((stats.lost, stats.resyncs), (0, 0));
        assert!(stats.jitter_ms < 1.0, "the jump is not jitter: {}", stats.jitter_ms);
    }

    #[test]
    fn jitter_buffer_drops_a_lone_stray_packet_instead_of_resyncing() {
        let mut jb = buffer();
        let mut arrivals = stream(100, 0, 30, |_| 0);
        arrivals.push(Arrival { at_ms: 201, seq: 30_000, ts: 77 });
        let outs = simulate(&mut jb, &arrivals, 5, 33);
        assert_eq!(packets(&outs), (100..130).collect::<Vec<_>>());
        let stats = jb.stats();
        assert_eq!((stats.resyncs, stats.discarded, stats.lost), (0, 1, 0));
    }

    #[test]
    fn jitter_buffer_target_delay_grows_with_jitter_and_stays_in_bounds() {
        let mut jb = buffer();
        let mut rng = crate::test_signal::Xorshift::new(5);
        let delays: Vec<u64> = (0..500).map(|_| rng.below(60)).collect();
        let outs = simulate(&mut jb, &stream(0, 0, 500, |i| delays[i]), 3, 510);
        let stats = jb.stats();
        assert!(stats.jitter_ms > 10.0, "jitter {}", stats.jitter_ms);
        assert!((40..=120).contains(&stats.target_delay_ms), "target {}", stats.target_delay_ms);
        // With that delay, almost nothing is lost to lateness.
        assert!(packets(&outs).len() >= 490, "played {}", packets(&outs).len());

        // Then the network calms down: the target falls back to the minimum.
        let mut calm = buffer();
        simulate(&mut calm, &stream(0, 0, 300, |i| if i < 100 { delays[i] } else { 0 }), 3, 310);
        assert_eq!(calm.stats().target_delay_ms, 20);
    }

    #[test]
    fn jitter_buffer_sheds_excess_delay_after_a_stall() {
        let mut jb = buffer();
        // The network freezes for 300 ms: packets 50..65 all arrive in one
        // burst at 1300 ms, after which the stream flows normally again.
        let arrivals = stream(0, 0, 400, |i| if (50..65).contains(&i) { 1_300 - 20 * i as u64 } else { 0 });
        let outs = simulate(&mut jb, &arrivals, 5, 410);
        let stats = jb.stats();
        assert!(stats.current_delay_ms <= 45, "delay stays at {} ms", stats.current_delay_ms);
        assert!(stats.discarded > 0);
        assert_eq!(stats.lost, 0);
        let played = packets(&outs);
        assert!(played.windows(2).all(|w| w[0] < w[1]));
        assert_eq!(played.last(), Some(&399));
    }

    #[test]
    fn jitter_buffer_refuses_oversized_payloads_and_bad_configs() {
        let mut jb = JitterBuffer::new(JitterConfig { max_payload: 4, ..JitterConfig::default() }).unwrap();
        assert_eq!(jb.push(1, 0, &[0; 5], Instant::now()), PushOutcome::TooLarge);
        assert_eq!(jb.stats().discarded, 1);
        for bad in [
            JitterConfig { min_delay: Duration::from_millis(200), ..JitterConfig::default() },
            JitterConfig { max_packets: 4, ..JitterConfig::default() },
            JitterConfig { clock_rate: 0, ..JitterConfig::default() },
            JitterConfig { frame_duration: Duration::ZERO, ..JitterConfig::default() },
            JitterConfig { max_payload: 0, ..JitterConfig::default() },
        ] {
            assert!(matches!(JitterBuffer::new(bad), Err(MediaError::InvalidConfig(_))), "{bad:?}");
        }
    }

    #[derive(Debug, Clone)]
    struct Scenario {
        first_seq: u16,
        first_ts: u32,
        phase_ms: u64,
        /// Per packet: (dropped, duplicated, network delay ms, duplicate's extra delay).
        packets: Vec<(bool, bool, u64, u64)>,
    }

    fn scenario() -> impl Strategy<Value = Scenario> {
        (
            prop_oneof![65_400u16..=65_535, any::<u16>()],
            any::<u32>(),
            0u64..20,
            0u64..=100,
            proptest::collection::vec((any::<u8>(), any::<u8>(), any::<u16>(), 0u64..100), 20..200),
        )
            .prop_map(|(first_seq, first_ts, phase_ms, max_jitter, raw)| Scenario {
                first_seq,
                first_ts,
                phase_ms,
                packets: raw
                    .into_iter()
                    .map(|(d, u, j, e)| (d < 26, u < 26, u64::from(j) % (max_jitter + 1), e))
                    .collect(),
            })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        /// Shuffled (by random network delay), duplicated and dropped packets,
        /// across sequence wrap-around: the output is in order, never repeats,
        /// plays only what was sent, and every packet is accounted for.
        #[test]
        fn jitter_buffer_output_is_ordered_unique_and_accounted_for(s in scenario()) {
            let mut jb = buffer();
            let mut arrivals = Vec::new();
            let mut sent = std::collections::HashSet::new();
            for (i, &(dropped, duplicated, delay, extra)) in s.packets.iter().enumerate() {
                if dropped {
                    continue;
                }
                let a = Arrival {
                    at_ms: 20 * i as u64 + delay,
                    seq: s.first_seq.wrapping_add(i as u16),
                    ts: s.first_ts.wrapping_add(TS_PER_FRAME * i as u32),
                };
                sent.insert(a.seq);
                arrivals.push(a);
                if duplicated {
                    arrivals.push(Arrival { at_ms: a.at_ms + extra, ..a });
                }
            }
            let ticks = s.packets.len() + 20;
            let outs = simulate(&mut jb, &arrivals, s.phase_ms, ticks);

            // Order and uniqueness, in sequence space unwrapped from the first packet.
            let unwrap = |seq: u16| i64::from(seq.wrapping_sub(s.first_seq));
            let mut last = -1i64;
            let mut played = 0u64;
            for o in &outs {
                match *o {
                    Out::Packet(seq) => {
                        prop_assert!(sent.contains(&seq), "played {} which was never sent", seq);
                        prop_assert!(unwrap(seq) > last, "{} out of order after {}", seq, last);
                        last = unwrap(seq);
                        played += 1;
                    }
                    Out::Lost(Some(next)) => prop_assert!(unwrap(next) > last),
                    _ => {}
                }
            }
            // Everything pushed was played or dropped for a counted reason.
            let stats = jb.stats();
            prop_assert_eq!(stats.received, arrivals.len() as u64);
            let held = u64::from(jb.held.is_some());
            prop_assert_eq!(
                played + stats.late + stats.duplicates + stats.discarded + held,
                stats.received,
                "{:?}", stats
            );
            prop_assert!(stats.target_delay_ms >= 20 && stats.target_delay_ms <= 120);
            prop_assert!(stats.lost <= s.packets.len() as u64);
        }
    }

    mod pop_ready {
        use super::*;

        fn buffer() -> JitterBuffer {
            JitterBuffer::new(JitterConfig::default()).unwrap()
        }

        fn payload(seq: u16) -> Vec<u8> {
            seq.to_be_bytes().to_vec()
        }

        fn drain(jb: &mut JitterBuffer, now: Instant) -> Vec<Option<u16>> {
            let mut out = Vec::new();
            while let Some(output) = jb.pop_ready(now) {
                out.push(match output {
                    JitterOutput::Packet(p) => Some(u16::from_be_bytes([p[0], p[1]])),
                    JitterOutput::Lost { .. } => None,
                });
            }
            out
        }

        #[test]
        fn in_order_packets_come_out_the_moment_they_arrive() {
            let t0 = Instant::now();
            let mut jb = buffer();
            for i in 0..10u16 {
                let now = t0 + Duration::from_millis(20 * u64::from(i));
                let seq = 65_530u16.wrapping_add(i);
                jb.push(seq, u32::from(i) * 960, &payload(seq), now);
                assert_eq!(drain(&mut jb, now), vec![Some(seq)], "packet {i} is released at once, across the wrap");
            }
            assert_eq!(jb.stats().lost, 0);
        }

        #[test]
        fn a_reordered_packet_is_waited_for_not_concealed() {
            let mut jb = buffer();
            let t0 = Instant::now();
            jb.push(10, 0, &payload(10), t0);
            assert_eq!(drain(&mut jb, t0), vec![Some(10)]);
            let t1 = t0 + Duration::from_millis(20);
            jb.push(12, 1920, &payload(12), t1);
            assert_eq!(drain(&mut jb, t1), vec![], "11 may still come");
            let t2 = t1 + Duration::from_millis(5);
            jb.push(11, 960, &payload(11), t2);
            assert_eq!(drain(&mut jb, t2), vec![Some(11), Some(12)]);
            assert_eq!(jb.stats().lost, 0);
        }

        #[test]
        fn a_lost_packet_is_concealed_after_the_target_delay_with_the_next_one_for_fec() {
            let mut jb = buffer();
            let t0 = Instant::now();
            jb.push(1, 0, &payload(1), t0);
            drain(&mut jb, t0);
            let t1 = t0 + Duration::from_millis(40);
            jb.push(3, 1920, &payload(3), t1);
            assert_eq!(drain(&mut jb, t1), vec![]);
            let later = t1 + jb.target_delay() + Duration::from_millis(1);
            match jb.pop_ready(later) {
                Some(JitterOutput::Lost { next: Some(next) }) => assert_eq!(next, payload(3).as_slice()),
                other => panic!("{other:?}"),
            }
            assert_eq!(drain(&mut jb, later), vec![Some(3)]);
            assert_eq!(jb.stats().lost, 1);
        }

        #[test]
        fn duplicates_are_dropped_and_long_gaps_are_concealed_only_at_their_end() {
            let mut jb = buffer();
            let t0 = Instant::now();
            jb.push(100, 0, &payload(100), t0);
            drain(&mut jb, t0);
            jb.push(100, 0, &payload(100), t0);
            assert_eq!(drain(&mut jb, t0), vec![]);
            let t1 = t0 + Duration::from_millis(400);
            jb.push(120, 20 * 960, &payload(120), t1);
            let later = t1 + Duration::from_millis(200);
            let out = drain(&mut jb, later);
            assert_eq!(out.iter().filter(|o| o.is_none()).count() as i64, MAX_CONCEALED_FRAMES);
            assert_eq!(out.last(), Some(&Some(120)));
            assert_eq!(jb.stats().lost, 19);
        }
    }
}
