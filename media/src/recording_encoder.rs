//! A call recording in the making: two sides' 20 ms frames in, stereo
//! Ogg Opus pages out.
//!
//! Per slot: the [`SlotAligner`] hands out what each side had (or nothing),
//! each side's mono Opus encoder codes its frame, and the two packets go into
//! one packet of two streams (Ogg Opus channel mapping family 1), which goes
//! onto an Ogg page. Packet `n` of the stream is slot `n` of the call, so time
//! in the file is time since the call was answered, the clock the
//! transcript's offsets use too.
//!
//! Why two mono streams rather than one stereo stream: libopus codes stereo as
//! mid and side and, for speech at the bitrates that make sense here, folds
//! the two together when it is short of bits. Measured with a tone on each
//! side at 48 kbit/s stereo, one side's tone came through on the other at
//! -25 dB and both collapsed toward mono for a few hundred milliseconds at a
//! time. Two mono streams cannot leak into each other, and every player that
//! plays Opus in Ogg decodes them as a stereo file.
//!
//! **What it costs, and why so little.** The encoder is nearly all of a
//! recording's CPU (`BENCHMARKS.md`), so it runs as little as it can:
//!
//! - *Silence is not encoded.* In a call each side is quiet most of the time
//!   (the agent sends nothing while the caller talks; a caller's microphone
//!   sends near-silence while the agent talks). A side's slot without a frame,
//!   or whose frame stays within ±[`RecordingConfig::silence_peak`], gets a
//!   packet of 20 ms of silence made once by that side's own encoder, instead
//!   of an encode ([`OpusEncoder::encode_quiet`], which the WebRTC peers'
//!   outbound audio uses too: one more slot after the last sound, a reset
//!   before the next).
//! - *Each stream is its own encoder*, so one side's silence skips its encode
//!   while the other side talks (libopus's multistream encoder runs every
//!   stream every time); the packet of two streams is put together here
//!   ([`two_stream_packet`], RFC 6716 appendix B framing for the first).
//! - *Each side is encoded at its own rate*: a phone caller's 8 kHz frames go
//!   to an 8 kHz encoder (narrowband, half the work of wideband), the agent's
//!   24 kHz to a 24 kHz one; no resampler is needed, and no side is delayed by
//!   one. A side whose rate changes gets a new encoder at the new rate (the
//!   only allocation after start).
//! - *Speech settings*: SILK (wideband at most by default: speech up to 8
//!   kHz), complexity 1, 16 kbit/s per side. Complexity 0 (and 2) use
//!   SILK's cheapest pitch estimator, which breaks a steady 440 Hz tone at
//!   8 kHz into pieces after about 0.8 s; 1 costs about 6 % more and keeps
//!   it. See [`RecordingConfig`].
//!
//! Everything is allocated by [`RecordingEncoder::new`] (a side's encoder is
//! rebuilt only when that side's rate changes); a warm encoder allocates
//! nothing per frame as long as the output buffer has room.

use crate::ogg_opus::{ChannelMapping, GRANULE_PER_FRAME, GRANULE_RATE, MAX_PACKET, OggOpusWriter, OpusHead};
use crate::opus_encoder::{MAX_OPUS_PACKET, OpusEncoder, OpusEncoderConfig, SILENCE};
use crate::slot_aligner::{AlignedSlot, AlignerConfig, AlignerStats, Side, SideFrame, SlotAligner, SlotPush};
use crate::{MediaError, SampleRate};

/// How recordings are encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordingConfig {
    /// The widest audio coded: a side at a higher rate is band-limited to
    /// half of this. 16 kHz (wideband speech, up to 8 kHz of audio) keeps
    /// libopus in SILK mode, the cheap one; 24 kHz (up to 12 kHz) brings in
    /// hybrid mode at about 1.3× the CPU of a sounding slot. Sides sent at a
    /// lower rate (a phone's 8 kHz) are coded at their own.
    pub max_rate: SampleRate,
    /// Bitrate of both streams together, in bit/s (split evenly; libopus's
    /// VBR spends less on easy speech and far less on silence).
    pub bitrate: u32,
    /// libopus complexity 0..=10 (the CPU knob; see `BENCHMARKS.md`).
    pub complexity: u8,
    /// A side's frame whose samples all lie within ±this is silence: it is
    /// written as a stored silence packet instead of being encoded (64 is
    /// -54 dBFS: far below speech, above the decoded silence of a browser
    /// caller and a μ-law phone line). `None` encodes every slot, silence too.
    pub silence_peak: Option<u16>,
    /// How late frames may be, and how long a recording may grow.
    pub aligner: AlignerConfig,
}

impl Default for RecordingConfig {
    /// Wideband at most, 32 kbit/s for both sides (16 kbit/s of SILK each;
    /// a silent side takes 2.8 kbit/s), complexity 1 (see the module
    /// documentation for why not 0), silence below -54 dBFS not encoded.
    fn default() -> Self {
        RecordingConfig {
            max_rate: SampleRate::Hz16000,
            bitrate: 32_000,
            complexity: 1,
            silence_peak: Some(64),
            aligner: AlignerConfig::default(),
        }
    }
}

/// What a finished recording holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordingSummary {
    /// 20 ms slots in the stream.
    pub slots: u64,
    /// Playable length: `slots × 20` ms.
    pub duration_ms: u64,
    /// Slots each side's encoder ran for (left, right); the others were
    /// silence, written as a stored packet.
    pub encoded: [u64; 2],
    /// What the aligner saw.
    pub stats: AlignerStats,
}

/// One side's mono Opus stream; see the module documentation.
struct SideStream {
    encoder: OpusEncoder,
    /// Slots coded by this side's earlier encoders (one per rate it had).
    encoded_before: u64,
    /// The packet for the current slot: `packet[..len]`.
    packet: Vec<u8>,
    len: usize,
}

impl SideStream {
    fn new(rate: SampleRate, config: &RecordingConfig) -> Result<Self, MediaError> {
        let encoder = OpusEncoder::new(
            rate,
            OpusEncoderConfig {
                complexity: config.complexity,
                bitrate: Some(config.bitrate / 2),
                fec: false,
                packet_loss_perc: 0,
                dtx: false,
                max_rate: Some(config.max_rate),
            },
        )?;
        Ok(SideStream { encoder, encoded_before: 0, packet: vec![0; MAX_OPUS_PACKET], len: 0 })
    }

    /// Codes `frame` (`None`: the side had nothing for the slot) into
    /// `self.packet[..self.len]`: an encode, or the encoder's stored silence packet.
    fn code(&mut self, frame: Option<SideFrame<'_>>, config: &RecordingConfig) -> Result<(), MediaError> {
        let quiet = |pcm: &[i16]| config.silence_peak.is_some_and(|peak| is_quiet(pcm, peak));
        self.len = match frame {
            Some(SideFrame::Opus(packet)) => {
                // Encoded already: recorded as it is, and this side's encoder starts
                // afresh when it is next needed.
                self.encoder.skip();
                self.packet[..packet.len()].copy_from_slice(packet);
                packet.len()
            }
            Some(SideFrame::Pcm { rate, pcm }) if !quiet(pcm) => {
                if rate != self.encoder.rate() {
                    // A new rate (a human agent at 48 kHz taking over from the AI): a
                    // new encoder, which starts from silence like a reset one.
                    let encoded_before = self.encoded();
                    *self = SideStream::new(rate, config)?;
                    self.encoded_before = encoded_before;
                }
                self.encoder.encode(pcm, &mut self.packet)?
            }
            Some(SideFrame::Pcm { rate, pcm }) if rate == self.encoder.rate() => {
                self.encoder.encode_quiet(pcm, &mut self.packet)?
            }
            // Nothing for the slot (or a quiet frame at another rate): silence.
            _ => match config.silence_peak {
                Some(_) => self.encoder.encode_silence(&mut self.packet)?,
                // A recording that codes every slot, the end's flush included.
                None => self.encoder.encode(&SILENCE[..self.encoder.rate().samples_per_frame()], &mut self.packet)?,
            },
        };
        Ok(())
    }

    /// Slots this side's encoders ran for.
    fn encoded(&self) -> u64 {
        self.encoded_before + self.encoder.encodes()
    }

    fn lookahead_48k(&mut self) -> Result<u64, MediaError> {
        let samples = self.encoder.lookahead()?;
        Ok(u64::from(samples) * u64::from(GRANULE_RATE) / u64::from(self.encoder.rate().hz()))
    }
}

/// Whether every sample of `pcm` lies within ±`peak`.
fn is_quiet(pcm: &[i16], peak: u16) -> bool {
    pcm.iter().fold(0u16, |max, s| max.max(s.unsigned_abs())) <= peak
}

/// Writes one Opus packet of two streams into `out` (RFC 7845 channel mapping
/// family 1, RFC 6716 appendix B): `first` in self-delimiting framing, then
/// `second` as it is. Returns the length.
pub(crate) fn two_stream_packet(first: &[u8], second: &[u8], out: &mut [u8]) -> Result<usize, MediaError> {
    let (at, frame_len) = last_frame_length(first)?;
    let mut length = [0u8; 2];
    let n = write_length(frame_len, &mut length);
    let total = first.len() + n + second.len();
    if out.len() < total {
        return Err(MediaError::BufferTooSmall { needed: total, actual: out.len() });
    }
    out[..at].copy_from_slice(&first[..at]);
    out[at..at + n].copy_from_slice(&length[..n]);
    out[at + n..first.len() + n].copy_from_slice(&first[at..]);
    out[first.len() + n..total].copy_from_slice(second);
    Ok(total)
}

fn bad_packet(why: &'static str) -> MediaError {
    MediaError::InvalidStream(format!("opus packet: {why}"))
}

/// An Opus frame length as RFC 6716 §3.2.1 writes it (1 or 2 bytes).
fn write_length(len: usize, out: &mut [u8; 2]) -> usize {
    if len < 252 {
        out[0] = len as u8;
        1
    } else {
        let first = 252 + (len & 3);
        out[0] = first as u8;
        out[1] = ((len - first) >> 2) as u8;
        2
    }
}

/// Reads a frame length at `at`: (length, bytes it took).
fn read_length(packet: &[u8], at: usize) -> Result<(usize, usize), MediaError> {
    match packet.get(at) {
        Some(&b) if b < 252 => Ok((usize::from(b), 1)),
        Some(&b) => {
            let next = packet.get(at + 1).ok_or_else(|| bad_packet("truncated length"))?;
            Ok((usize::from(b) + 4 * usize::from(*next), 2))
        }
        None => Err(bad_packet("truncated length")),
    }
}

/// Where the self-delimiting framing's extra length goes in `packet`, and
/// its value (RFC 6716 appendix B): the size of the last frame (code 0, 2,
/// 3 VBR) or of every frame (code 1, 3 CBR), right after the lengths the
/// packet already has.
fn last_frame_length(packet: &[u8]) -> Result<(usize, usize), MediaError> {
    let toc = *packet.first().ok_or_else(|| bad_packet("empty"))?;
    let rest = packet.len() - 1;
    match toc & 3 {
        0 => Ok((1, rest)),
        1 if rest.is_multiple_of(2) => Ok((1, rest / 2)),
        1 => Err(bad_packet("code 1 with frames of unequal size")),
        2 => {
            let (first, n) = read_length(packet, 1)?;
            let second = rest.checked_sub(n + first).ok_or_else(|| bad_packet("code 2 frame overruns"))?;
            Ok((1 + n, second))
        }
        _ => {
            let count = *packet.get(1).ok_or_else(|| bad_packet("code 3 without a frame count"))?;
            let (vbr, padded, frames) = (count & 0x80 != 0, count & 0x40 != 0, usize::from(count & 0x3F));
            if frames == 0 {
                return Err(bad_packet("code 3 with no frames"));
            }
            let mut at = 2;
            let mut padding = 0;
            if padded {
                loop {
                    let b = *packet.get(at).ok_or_else(|| bad_packet("truncated padding"))?;
                    at += 1;
                    padding += if b == 255 { 254 } else { usize::from(b) };
                    if b != 255 {
                        break;
                    }
                }
            }
            let mut sizes = 0;
            if vbr {
                for _ in 0..frames - 1 {
                    let (size, n) = read_length(packet, at)?;
                    sizes += size;
                    at += n;
                }
            }
            let data = packet.len().checked_sub(at + padding).ok_or_else(|| bad_packet("padding overruns"))?;
            if vbr {
                Ok((at, data.checked_sub(sizes).ok_or_else(|| bad_packet("code 3 frames overrun"))?))
            } else if data.is_multiple_of(frames) {
                Ok((at, data / frames))
            } else {
                Err(bad_packet("code 3 CBR frames of unequal size"))
            }
        }
    }
}

/// The per-slot work, split from the aligner so the aligner can hand slots to it.
struct EncodePath {
    config: RecordingConfig,
    sides: [SideStream; 2],
    packet: Vec<u8>,
    ogg: OggOpusWriter,
    slots: u64,
}

/// Aligns, encodes and muxes one recording; see the module documentation.
pub struct RecordingEncoder {
    aligner: SlotAligner,
    path: EncodePath,
}

impl std::fmt::Debug for RecordingEncoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RecordingEncoder")
            .field("config", &self.path.config)
            .field("slots", &self.path.slots)
            .field("aligner", &self.aligner)
            .finish_non_exhaustive()
    }
}

impl RecordingEncoder {
    /// Starts a recording: appends the Ogg Opus header pages to `out`.
    ///
    /// `serial` is the Ogg stream's serial number (any value; a random one
    /// keeps files distinguishable when concatenated); `comments` become
    /// `KEY=value` tags of the file.
    pub fn new(
        config: RecordingConfig,
        serial: u32,
        comments: &[(&str, &str)],
        out: &mut Vec<u8>,
    ) -> Result<Self, MediaError> {
        if config.complexity > 10 {
            return Err(MediaError::InvalidConfig("opus complexity must be 0..=10"));
        }
        if !(1_000..=512_000).contains(&config.bitrate) {
            return Err(MediaError::InvalidConfig("recording bitrate must be 1000..=512000 bit/s"));
        }
        let aligner = SlotAligner::new(config.aligner)?;
        // Each side's encoder starts at the widest rate coded and is rebuilt
        // at its side's rate when that differs (a phone's 8 kHz).
        let mut sides = [SideStream::new(config.max_rate, &config)?, SideStream::new(config.max_rate, &config)?];
        // The look-ahead is the same 6.5 ms at every rate, so one pre-skip
        // fits both streams whatever rates they end up at.
        let pre_skip = sides[0].lookahead_48k()?;
        let head = OpusHead {
            channels: 2,
            pre_skip: u16::try_from(pre_skip).map_err(|_| MediaError::InvalidConfig("encoder look-ahead too long"))?,
            input_rate: config.max_rate.hz(),
            mapping: ChannelMapping::TwoMono,
        };
        let ogg = OggOpusWriter::new(head, crate::libopus_version(), comments, serial, out)?;
        Ok(RecordingEncoder { aligner, path: EncodePath { config, sides, packet: vec![0; MAX_PACKET], ogg, slots: 0 } })
    }

    /// Takes `side`'s 20 ms frame for `slot` (at `rate`, any of the four);
    /// appends the Ogg pages that became complete to `out`.
    pub fn push(
        &mut self,
        side: Side,
        slot: u64,
        rate: SampleRate,
        pcm: &[i16],
        out: &mut Vec<u8>,
    ) -> Result<SlotPush, MediaError> {
        let path = &mut self.path;
        self.aligner.push(side, slot, rate, pcm, &mut |aligned| path.encode(aligned, out))
    }

    /// Takes `side`'s Opus packet of 20 ms for `slot`, recorded as it is (no encode: the
    /// packets a WebRTC peer was sent); appends the pages that became complete to `out`.
    pub fn push_opus(
        &mut self,
        side: Side,
        slot: u64,
        packet: &[u8],
        out: &mut Vec<u8>,
    ) -> Result<SlotPush, MediaError> {
        let path = &mut self.path;
        self.aligner.push_opus(side, slot, packet, &mut |aligned| path.encode(aligned, out))
    }

    /// Ends the recording at `end_slot` (slots after the last frame are
    /// silence; frames already given are never cut): encodes what is left,
    /// flushes the encoders' look-ahead, and appends the last page, flagged
    /// end-of-stream and trimmed to exactly `slots × 20` ms.
    pub fn finish(mut self, end_slot: u64, out: &mut Vec<u8>) -> Result<RecordingSummary, MediaError> {
        let path = &mut self.path;
        let slots = self.aligner.finish(end_slot, &mut |aligned| path.encode(aligned, out))?;
        // The last `pre_skip` samples fed are still inside the encoders: run
        // on silence until they are out; the end trim hides it again.
        let flush = u64::from(path.ogg.pre_skip()).div_ceil(GRANULE_PER_FRAME).max(1);
        for _ in 0..flush {
            path.write(None, None, out)?;
        }
        path.ogg.finish(slots * GRANULE_PER_FRAME, out)?;
        Ok(RecordingSummary { slots, duration_ms: slots * 20, encoded: self.encoded(), stats: self.aligner.stats() })
    }

    /// Slots written so far.
    pub fn slots(&self) -> u64 {
        self.path.slots
    }

    /// Slots each side's encoder ran for so far (left, right).
    pub fn encoded(&self) -> [u64; 2] {
        self.path.sides.each_ref().map(|side| side.encoded())
    }

    /// What the aligner saw so far.
    pub fn stats(&self) -> AlignerStats {
        self.aligner.stats()
    }

    /// The encoders' look-ahead in 48 kHz samples (the stream's pre-skip).
    pub fn pre_skip(&self) -> u16 {
        self.path.ogg.pre_skip()
    }
}

impl EncodePath {
    fn encode(&mut self, aligned: AlignedSlot<'_>, out: &mut Vec<u8>) -> Result<(), MediaError> {
        self.write(aligned.left, aligned.right, out)?;
        self.slots += 1;
        Ok(())
    }

    /// Codes one slot of each side and writes the two-stream packet.
    fn write(
        &mut self,
        left: Option<SideFrame<'_>>,
        right: Option<SideFrame<'_>>,
        out: &mut Vec<u8>,
    ) -> Result<(), MediaError> {
        let [l, r] = &mut self.sides;
        l.code(left, &self.config)?;
        r.code(right, &self.config)?;
        let n = two_stream_packet(&l.packet[..l.len], &r.packet[..r.len], &mut self.packet)?;
        self.ogg.write_packet(&self.packet[..n], GRANULE_PER_FRAME, out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ogg_opus::decode_ogg_opus;
    use crate::test_signal::{sine, tone_amplitude, tone_spans};

    /// Left: 440 Hz from slot 10 to 60 at 16 kHz; right: 1 kHz from 40 to 90 at
    /// 24 kHz then 48 kHz. Both come back on their side, at their times.
    #[test]
    fn each_side_comes_back_on_its_channel_at_its_time() {
        let mut out = Vec::new();
        let mut rec = RecordingEncoder::new(RecordingConfig::default(), 42, &[("CALL", "test")], &mut out).unwrap();
        let left_rate = SampleRate::Hz16000;
        let left = sine(left_rate, 440.0, 0.5, left_rate.samples_per_frame() * 100);
        let right24 = sine(SampleRate::Hz24000, 1_000.0, 0.5, 480 * 100);
        let right48 = sine(SampleRate::Hz48000, 1_000.0, 0.5, 960 * 100);
        for slot in 0..100u64 {
            let i = slot as usize;
            if (10..60).contains(&slot) {
                let f = left_rate.samples_per_frame();
                assert_eq!(
                    rec.push(Side::Left, slot, left_rate, &left[i * f..(i + 1) * f], &mut out).unwrap(),
                    SlotPush::Accepted
                );
            }
            if (40..65).contains(&slot) {
                rec.push(Side::Right, slot, SampleRate::Hz24000, &right24[i * 480..(i + 1) * 480], &mut out).unwrap();
            } else if (65..90).contains(&slot) {
                rec.push(Side::Right, slot, SampleRate::Hz48000, &right48[i * 960..(i + 1) * 960], &mut out).unwrap();
            }
        }
        let summary = rec.finish(110, &mut out).unwrap();
        assert_eq!((summary.slots, summary.duration_ms), (110, 2_200));

        let decoded = decode_ogg_opus(&out).unwrap();
        assert!(decoded.ended);
        assert_eq!(decoded.head.channels, 2);
        assert_eq!(decoded.head.input_rate, 16_000);
        assert_eq!(decoded.comments, vec!["CALL=test".to_owned()]);
        assert_eq!(decoded.duration_ms(), 2_200, "exactly the slots, no more, no less");
        let (l, r) = (decoded.channel(0), decoded.channel(1));
        let spans = |pcm: &[i16], hz: f64| tone_spans(pcm, SampleRate::Hz48000, hz);
        let near = |(a, b): (u64, u64), (x, y): (u64, u64)| a.abs_diff(x) <= 20 && b.abs_diff(y) <= 20;
        let l440 = spans(&l, 440.0);
        assert!(l440.len() == 1 && near(l440[0], (200, 1_200)), "left 440 Hz at {l440:?}");
        let r1k = spans(&r, 1_000.0);
        assert!(r1k.len() == 1 && near(r1k[0], (800, 1_800)), "right 1 kHz at {r1k:?}");
        assert!(spans(&l, 1_000.0).is_empty(), "no right tone on the left");
        assert!(spans(&r, 440.0).is_empty(), "no left tone on the right");
    }

    /// Ten minutes of a jittery call (caller frames 0-2 slots late and in bunches, 1 %
    /// lost; the agent steady): beeps placed at known slots near the start, the middle
    /// and the end come out at exactly those times on their own channel, so nothing
    /// accumulates over the call.
    #[test]
    fn beeps_at_the_end_of_a_ten_minute_call_are_where_they_were_put() {
        use crate::test_signal::Xorshift;
        const SLOTS: u64 = 10 * 60 * 50;
        let rate = SampleRate::Hz24000;
        let beep = |hz: f64| sine(rate, hz, 0.5, 480 * 10);
        let (left_beep, right_beep) = (beep(440.0), beep(1_000.0));
        // Beeps of 10 slots (200 ms) at these slots: caller, then agent 100 ms later.
        let starts = [50u64, SLOTS / 2, SLOTS - 100];
        let frame_of = |pcm: &[i16], start: u64, slot: u64| -> Option<Vec<i16>> {
            (start..start + 10).contains(&slot).then(|| {
                let i = (slot - start) as usize * 480;
                pcm[i..i + 480].to_vec()
            })
        };
        let silence = vec![0i16; 480];
        let mut rng = Xorshift::new(10);
        let mut deliveries: Vec<(u64, u64, Side, u64)> = Vec::new();
        for slot in 0..SLOTS {
            if rng.below(100) != 0 {
                deliveries.push((slot + rng.below(3), rng.next_u64(), Side::Left, slot));
            }
            deliveries.push((slot, rng.next_u64(), Side::Right, slot));
        }
        deliveries.sort_unstable_by_key(|&(at, tie, _, _)| (at, tie));
        let mut out = Vec::new();
        let mut rec = RecordingEncoder::new(RecordingConfig::default(), 3, &[], &mut out).unwrap();
        for (_, _, side, slot) in deliveries {
            let pcm = match side {
                Side::Left => starts.iter().find_map(|&s| frame_of(&left_beep, s, slot)),
                Side::Right => starts.iter().find_map(|&s| frame_of(&right_beep, s + 5, slot)),
            };
            rec.push(side, slot, rate, pcm.as_deref().unwrap_or(&silence), &mut out).unwrap();
        }
        let summary = rec.finish(SLOTS, &mut out).unwrap();
        assert_eq!(summary.stats.late, 0);
        let decoded = decode_ogg_opus(&out).unwrap();
        assert_eq!(decoded.duration_ms(), SLOTS * 20);
        let spans = |channel: usize, hz: f64| tone_spans(&decoded.channel(channel), SampleRate::Hz48000, hz);
        let expected =
            |offset: u64| starts.iter().map(|&s| ((s + offset) * 20, (s + offset + 10) * 20)).collect::<Vec<_>>();
        for ((got, want), what) in
            [(spans(0, 440.0), expected(0)), (spans(1, 1_000.0), expected(5))].into_iter().zip(["left", "right"])
        {
            assert_eq!(got.len(), want.len(), "{what}: {got:?}");
            for ((a, b), (x, y)) in got.iter().zip(&want) {
                assert!(a.abs_diff(*x) <= 20 && b.abs_diff(*y) <= 20, "{what}: beep at {a}-{b} ms, put at {x}-{y} ms");
            }
        }
    }

    #[test]
    fn a_recording_of_nothing_is_a_valid_empty_stream() {
        let mut out = Vec::new();
        let rec = RecordingEncoder::new(RecordingConfig::default(), 1, &[], &mut out).unwrap();
        assert_eq!(rec.finish(0, &mut out).unwrap().slots, 0);
        let decoded = decode_ogg_opus(&out).unwrap();
        assert!(decoded.ended && decoded.pcm.is_empty());
    }

    #[test]
    fn the_pre_skip_is_the_encoders_look_ahead_at_48_khz() {
        let mut out = Vec::new();
        let rec = RecordingEncoder::new(RecordingConfig::default(), 1, &[], &mut out).unwrap();
        let mut probe = crate::OpusEncoder::new(SampleRate::Hz24000, crate::OpusEncoderConfig::default()).unwrap();
        assert_eq!(u32::from(rec.pre_skip()), probe.lookahead().unwrap() * 2);
    }

    /// Both sides talking at once, then one alone: neither is ever heard on the
    /// other's channel, and neither dips while the other talks.
    #[test]
    fn the_sides_never_leak_into_each_other() {
        let rate = SampleRate::Hz24000;
        let mut out = Vec::new();
        let mut rec = RecordingEncoder::new(RecordingConfig::default(), 5, &[], &mut out).unwrap();
        let left = sine(rate, 440.0, 0.5, 480 * 250);
        let right = sine(rate, 1_000.0, 0.5, 480 * 250);
        for slot in 0..250u64 {
            let i = slot as usize * 480;
            if slot < 150 {
                rec.push(Side::Left, slot, rate, &left[i..i + 480], &mut out).unwrap();
            }
            if slot >= 50 {
                rec.push(Side::Right, slot, rate, &right[i..i + 480], &mut out).unwrap();
            }
        }
        rec.finish(250, &mut out).unwrap();
        let decoded = decode_ogg_opus(&out).unwrap();
        let (l, r) = (decoded.channel(0), decoded.channel(1));
        for window in 0..l.len() / 960 {
            let ms = window as u64 * 20;
            // Onsets and ends (0, 1 s, 3 s) splatter across the spectrum: skip them.
            if [0, 1_000, 3_000].iter().any(|&edge: &u64| ms.abs_diff(edge) <= 40) {
                continue;
            }
            let (lw, rw) = (&l[window * 960..(window + 1) * 960], &r[window * 960..(window + 1) * 960]);
            let leaked = [tone_amplitude(lw, 48_000, 1_000.0), tone_amplitude(rw, 48_000, 440.0)];
            // The streams are independent (`two_stream_packets_decode_like_their_streams`);
            // what a channel has at the other's frequency is its own coding noise around its
            // tone, about 0.003 at complexity 0-1 (-44 dB under the tone) whether or not the
            // other side is talking.
            assert!(leaked.iter().all(|&a| a < 0.006), "{ms} ms: leaked {leaked:?}");
            let own = [tone_amplitude(lw, 48_000, 440.0), tone_amplitude(rw, 48_000, 1_000.0)];
            let expected = [ms < 3_000, (1_000..5_000).contains(&ms)].map(|on| if on { 0.5 } else { 0.0 });
            for (got, want) in own.into_iter().zip(expected) {
                assert!((got - want).abs() < 0.05, "{ms} ms: {own:?}, expected {expected:?}");
            }
        }
    }

    /// Packets of every framing (codes 0-3, padding, two-byte lengths), put first in a
    /// packet of two streams, decode exactly as they do alone.
    #[test]
    fn two_stream_packets_decode_like_their_streams() {
        use opusic_c::{Decoder, multistream};
        let frames_of = |rate: SampleRate, bitrate: u32, seed: u64| -> Vec<Vec<u8>> {
            let config = crate::OpusEncoderConfig { bitrate: Some(bitrate), ..Default::default() };
            let mut encoder = crate::OpusEncoder::new(rate, config).unwrap();
            let speech = crate::test_signal::speech_like(rate, 400, seed);
            let mut out = [0u8; MAX_OPUS_PACKET];
            speech
                .chunks_exact(rate.samples_per_frame())
                .map(|f| {
                    let n = encoder.encode(f, &mut out).unwrap();
                    out[..n].to_vec()
                })
                .collect()
        };
        let length = |len: usize| {
            let mut b = [0u8; 2];
            let n = write_length(len, &mut b);
            b[..n].to_vec()
        };
        for (rate, bitrate) in [(SampleRate::Hz16000, 16_000), (SampleRate::Hz48000, 256_000)] {
            let packets = frames_of(rate, bitrate, 4);
            let toc = packets[7][0] & 0xFC;
            let alike = [7, 8, 9, 12, 13, 14].map(|i| packets[i][0]);
            assert!(alike.iter().all(|&t| t == toc), "six code 0 packets alike: {alike:?}");
            if bitrate > 100_000 {
                let lens = [7, 8].map(|i| packets[i].len());
                assert!(lens.iter().all(|&n| n > 253), "two-byte lengths: {lens:?}");
            }
            let cat = |parts: &[&[u8]]| parts.concat();
            let variants = |p: &[Vec<u8>]| -> Vec<(&str, Vec<u8>)> {
                let (f1, f2, f3) = (&p[0][1..], &p[1][1..], &p[2][1..]);
                let (l1, l2) = (length(f1.len()), length(f2.len()));
                vec![
                    ("code 0", p[0].clone()),
                    ("code 1", cat(&[&[toc | 1], f1, f1])),
                    ("code 2", cat(&[&[toc | 2], &l1, f1, f2])),
                    ("code 3 VBR", cat(&[&[toc | 3, 0x80 | 3], &l1, &l2, f1, f2, f3])),
                    ("code 3 CBR padded", cat(&[&[toc | 3, 0x40 | 2, 255, 3], f1, f1, &[0; 257]])),
                    ("code 3 VBR padded", cat(&[&[toc | 3, 0xC0 | 3, 10], &l1, &l2, f1, f2, f3, &[0; 10]])),
                ]
            };
            // Both streams of a packet last as long: the second is built like the first.
            for ((what, first), (_, second)) in variants(&packets[7..10]).into_iter().zip(variants(&packets[12..15])) {
                let second = &second;
                let mut both = [0u8; 3 * MAX_PACKET];
                let n = two_stream_packet(&first, second, &mut both).unwrap();
                let layout = multistream::Config::<2>::new(2, 0, [0, 1]);
                let mut stereo = multistream::Decoder::new(layout, opusic_c::SampleRate::Hz48000).unwrap();
                let mut pcm = vec![0u16; 2 * 5_760];
                let samples = stereo.decode_to_slice(&both[..n], &mut pcm, false).expect(what);
                let mono = |packet: &[u8]| {
                    let mut decoder = Decoder::new(opusic_c::Channels::Mono, opusic_c::SampleRate::Hz48000).unwrap();
                    let mut out = vec![0u16; 5_760];
                    let n = decoder.decode_to_slice(packet, &mut out, false).unwrap();
                    out[..n].to_vec()
                };
                let (left, right) = (mono(&first), mono(second));
                assert_eq!(left.len(), right.len());
                assert_eq!(samples, left.len(), "{what}: frames in the packet");
                let channel = |c: usize| pcm[..2 * samples].iter().skip(c).step_by(2).copied().collect::<Vec<_>>();
                assert!(channel(0) == left, "{what} at {bitrate} bit/s: first stream differs");
                assert!(channel(1) == right, "{what}: second stream differs");
            }
        }
        let mut out = [0u8; 16];
        assert!(two_stream_packet(&[], &[1], &mut out).is_err(), "an empty packet");
        assert!(two_stream_packet(&[1, 2, 3, 4], &[1], &mut out).is_err(), "code 1 of unequal halves");
        assert!(two_stream_packet(&[3, 0x80], &[1], &mut out).is_err(), "code 3 of no frames");
        assert!(two_stream_packet(&[0, 1, 2], &[1; 20], &mut out).is_err(), "no room");
    }

    #[test]
    fn the_look_ahead_is_the_same_at_every_rate() {
        for rate in SampleRate::ALL {
            let mut side = SideStream::new(rate, &RecordingConfig::default()).unwrap();
            assert_eq!(side.lookahead_48k().unwrap(), 312, "{rate}: 6.5 ms");
        }
    }

    /// The packets a WebRTC peer was sent go into the recording as they are: the channel
    /// decodes to exactly what those packets decode to, no encode runs for that side,
    /// and a packet that is not 20 ms is refused.
    #[test]
    fn opus_packets_are_recorded_as_they_are() {
        use crate::test_signal::speech_like;
        use opusic_c::Decoder;
        let (lr, rr) = (SampleRate::Hz16000, SampleRate::Hz24000);
        let (left, right) = (speech_like(lr, 2_000, 8), speech_like(rr, 2_000, 9));
        let mut peer = crate::OpusEncoder::new(rr, crate::OpusEncoderConfig::default()).unwrap();
        let mut direct = Decoder::new(opusic_c::Channels::Mono, opusic_c::SampleRate::Hz48000).unwrap();
        let (mut packet, mut expected, mut pcm) = ([0u8; MAX_OPUS_PACKET], Vec::new(), vec![0i16; 960]);
        let mut out = Vec::new();
        let mut rec = RecordingEncoder::new(RecordingConfig::default(), 1, &[], &mut out).unwrap();
        for slot in 0..100u64 {
            let i = slot as usize;
            rec.push(Side::Left, slot, lr, &left[i * 320..(i + 1) * 320], &mut out).unwrap();
            let n = peer.encode(&right[i * 480..(i + 1) * 480], &mut packet).unwrap();
            assert_eq!(rec.push_opus(Side::Right, slot, &packet[..n], &mut out).unwrap(), SlotPush::Accepted);
            direct.decode_to_slice(&packet[..n], bytemuck::cast_slice_mut(&mut pcm), false).unwrap();
            expected.extend_from_slice(&pcm);
        }
        // Forty milliseconds in one packet (TOC config 2: SILK narrowband, 40 ms): refused.
        assert_eq!(rec.push_opus(Side::Right, 100, &[2 << 3, 0, 0], &mut out).unwrap(), SlotPush::BadFrame);
        assert_eq!(rec.push_opus(Side::Right, 100, &[], &mut out).unwrap(), SlotPush::BadFrame);
        let summary = rec.finish(100, &mut out).unwrap();
        assert_eq!(summary.encoded[1], 0, "no encode for the packets");
        assert_eq!(summary.stats.bad_frames, 2);
        let decoded = decode_ogg_opus(&out).unwrap();
        let skip = usize::from(decoded.head.pre_skip);
        let channel = decoded.channel(1);
        assert_eq!(channel.len(), 100 * 960);
        assert!(channel[..channel.len() - skip] == expected[skip..], "the packets' own audio");
        assert!(crate::dbfs(&decoded.channel(0)) > -40.0, "the left side's speech is there");
    }

    #[test]
    fn a_packets_duration_is_read_off_its_toc() {
        use crate::ogg_opus::packet_samples_48k;
        // config 1 (SILK NB 20 ms), code 0; config 13 (hybrid SWB 20 ms); config 31 (CELT
        // FB 20 ms); config 16 (CELT NB 2.5 ms) code 3 with 8 frames; code 1 of 10 ms frames.
        assert_eq!(packet_samples_48k(&[1 << 3]), Some(960));
        assert_eq!(packet_samples_48k(&[13 << 3, 0]), Some(960));
        assert_eq!(packet_samples_48k(&[31 << 3, 0]), Some(960));
        assert_eq!(packet_samples_48k(&[16 << 3 | 3, 8]), Some(960));
        assert_eq!(packet_samples_48k(&[(12 << 3) | 1, 0, 0]), Some(960));
        assert_eq!(packet_samples_48k(&[3 << 3]), Some(2880), "60 ms");
        assert_eq!(packet_samples_48k(&[16 << 3 | 3]), None, "code 3 without its count");
        assert_eq!(packet_samples_48k(&[]), None);
    }

    /// Talk spurts with silence between: the silence is not encoded, comes back as
    /// silence, and the speech comes back as it does when everything is encoded.
    #[test]
    fn silence_is_not_encoded_and_the_speech_is_unchanged() {
        use crate::test_signal::{snr_db, speech_like};
        let (lr, rr) = (SampleRate::Hz16000, SampleRate::Hz24000);
        let (left, right) = (speech_like(lr, 4_000, 6), speech_like(rr, 4_000, 7));
        let zeros = [0i16; 320];
        let record = |config: RecordingConfig| {
            let mut out = Vec::new();
            let mut rec = RecordingEncoder::new(config, 1, &[], &mut out).unwrap();
            for slot in 0..200u64 {
                let i = slot as usize;
                // Left: speech, 1.2 s of silence frames, speech, then nothing.
                if (10..60).contains(&slot) || (120..170).contains(&slot) {
                    rec.push(Side::Left, slot, lr, &left[i * 320..(i + 1) * 320], &mut out).unwrap();
                } else if slot < 120 {
                    rec.push(Side::Left, slot, lr, &zeros, &mut out).unwrap();
                }
                // Right: speech in between, nothing otherwise.
                if (70..110).contains(&slot) {
                    rec.push(Side::Right, slot, rr, &right[i * 480..(i + 1) * 480], &mut out).unwrap();
                }
            }
            let summary = rec.finish(200, &mut out).unwrap();
            (summary, decode_ogg_opus(&out).unwrap())
        };
        let (gated, g) = record(RecordingConfig::default());
        let (full, f) = record(RecordingConfig { silence_peak: None, ..RecordingConfig::default() });
        assert_eq!(gated.encoded, [50 + 1 + 50 + 1, 40 + 1], "speech and one slot after each spurt");
        assert_eq!(full.encoded, [200 + 1, 200 + 1], "every slot and the flush");
        assert_eq!((g.duration_ms(), f.duration_ms()), (4_000, 4_000));
        let window = |pcm: &[i16], slots: std::ops::Range<usize>| pcm[slots.start * 960..slots.end * 960].to_vec();
        // Silent stretches, a slot clear of each spurt (an onset rings a few ms ahead of itself).
        for (channel, speech, silent) in
            [(0, [10..60, 120..170], [0..9, 61..119]), (1, [70..110, 70..110], [0..69, 111..200])]
        {
            let (gc, fc) = (g.channel(channel), f.channel(channel));
            for quiet in silent {
                // The decoder's tail of the last spurt, under the gate's own threshold.
                let peak = window(&gc, quiet.clone()).iter().map(|s| s.unsigned_abs()).max().unwrap();
                assert!(peak <= 64, "channel {channel}: slots {quiet:?} not silent: {peak}");
            }
            for talk in speech {
                let (a, b) = (window(&gc, talk.clone()), window(&fc, talk.clone()));
                let snr = snr_db(&b, &a);
                assert!(snr > 8.0, "channel {channel}, slots {talk:?}: {snr:.1} dB from the fully encoded speech");
                let level = (crate::dbfs(&a) - crate::dbfs(&b)).abs();
                assert!(level < 0.5, "channel {channel}, slots {talk:?}: level differs by {level:.2} dB");
            }
        }
    }

    /// The same speech at 8 kHz on one side and 24 kHz on the other (and 16 / 48 kHz)
    /// comes out at the same time on both: the per-side rates add no offset.
    #[test]
    fn sides_at_different_rates_line_up() {
        use crate::test_signal::{best_lag, speech_like};
        for (lr, rr) in [(SampleRate::Hz8000, SampleRate::Hz24000), (SampleRate::Hz16000, SampleRate::Hz48000)] {
            let (left, right) = (speech_like(lr, 2_000, 8), speech_like(rr, 2_000, 8));
            let (lf, rf) = (lr.samples_per_frame(), rr.samples_per_frame());
            let mut out = Vec::new();
            let mut rec = RecordingEncoder::new(RecordingConfig::default(), 1, &[], &mut out).unwrap();
            for slot in 0..100usize {
                rec.push(Side::Left, slot as u64, lr, &left[slot * lf..(slot + 1) * lf], &mut out).unwrap();
                rec.push(Side::Right, slot as u64, rr, &right[slot * rf..(slot + 1) * rf], &mut out).unwrap();
            }
            rec.finish(100, &mut out).unwrap();
            let decoded = decode_ogg_opus(&out).unwrap();
            let (l, r) = (decoded.channel(0), decoded.channel(1));
            let window = 48_000;
            let (l_late, r_late) =
                (best_lag(&r[200..], &l[200..], 96, window), best_lag(&l[200..], &r[200..], 96, window));
            assert!(
                l_late <= 24 && r_late <= 24,
                "{lr}/{rr}: left late by {l_late}, right by {r_late} samples at 48 kHz"
            );
        }
    }
}
