//! A call recording in the making: two sides' 20 ms frames in, stereo
//! Ogg Opus pages out.
//!
//! Per slot: the [`SlotAligner`] hands out what each side had (or silence),
//! each side is resampled to the recording's rate (a copy when it already is
//! at that rate), and the two are encoded as two mono Opus streams in one
//! packet (Ogg Opus channel mapping family 1), which goes onto an Ogg page.
//! Packet `n` of the stream is slot `n` of the call, so time in the file is
//! time since the call was answered, the clock the transcript's offsets use too.
//!
//! Why two mono streams rather than one stereo stream: libopus codes stereo as
//! mid and side and, for speech at the bitrates that make sense here, folds
//! the two together when it is short of bits. Measured with a tone on each
//! side at 48 kbit/s stereo, one side's tone came through on the other at
//! -25 dB and both collapsed toward mono for a few hundred milliseconds at a
//! time. Two mono streams cannot leak into each other, cost about the same
//! CPU, and every player that plays Opus in Ogg decodes them as a stereo file.
//!
//! Everything is allocated by [`RecordingEncoder::new`] (a side's resampler is
//! rebuilt only when that side's rate changes); a warm encoder allocates
//! nothing per frame as long as the output buffer has room.

use opusic_c::multistream;
use opusic_c::{Application, Bitrate, InbandFec, Signal};

use crate::ogg_opus::{ChannelMapping, GRANULE_PER_FRAME, GRANULE_RATE, MAX_PACKET, OggOpusWriter, OpusHead};
use crate::opus_encoder::{opus_error, opus_rate};
use crate::slot_aligner::{AlignedSlot, AlignerConfig, AlignerStats, Side, SideFrame, SlotAligner, SlotPush};
use crate::{MAX_FRAME_SAMPLES, MediaError, Resampler, SampleRate};

/// How recordings are encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordingConfig {
    /// The rate both sides are brought to before encoding. 24 kHz carries
    /// everything a speech model or a phone sends (the providers speak at
    /// 16-24 kHz) without resampling the common case.
    pub rate: SampleRate,
    /// Bitrate of both streams together, in bit/s (split evenly).
    pub bitrate: u32,
    /// libopus complexity 0..=10 (the CPU knob; see `BENCHMARKS.md`).
    pub complexity: u8,
    /// How late frames may be, and how long a recording may grow.
    pub aligner: AlignerConfig,
}

impl Default for RecordingConfig {
    /// 24 kHz, 48 kbit/s for both sides (24 kbit/s of wideband speech each:
    /// about 22 MB an hour), complexity 5.
    fn default() -> Self {
        RecordingConfig { rate: SampleRate::Hz24000, bitrate: 48_000, complexity: 5, aligner: AlignerConfig::default() }
    }
}

/// What a finished recording holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordingSummary {
    /// 20 ms slots in the stream.
    pub slots: u64,
    /// Playable length: `slots × 20` ms.
    pub duration_ms: u64,
    /// What the aligner saw.
    pub stats: AlignerStats,
}

/// One side on its way to the encoder.
struct SidePath {
    /// `None` until the side's first frame; rebuilt when its rate changes.
    resampler: Option<Resampler>,
    /// The side's frame at the recording's rate.
    pcm: Vec<i16>,
}

/// Two mono Opus streams, one per side, in one packet (libopus multistream,
/// no stream coupled).
struct TwoVoiceEncoder {
    inner: multistream::Encoder,
}

impl TwoVoiceEncoder {
    fn new(config: &RecordingConfig) -> Result<Self, MediaError> {
        if config.complexity > 10 {
            return Err(MediaError::InvalidConfig("opus complexity must be 0..=10"));
        }
        if !(1_000..=512_000).contains(&config.bitrate) {
            return Err(MediaError::InvalidConfig("recording bitrate must be 1000..=512000 bit/s"));
        }
        let layout = multistream::Config::<2>::new(2, 0, [0, 1]);
        let mut inner = multistream::Encoder::new(layout, opus_rate(config.rate), Application::Voip)
            .map_err(opus_error("encoder create"))?;
        let set = opus_error("encoder configure");
        inner.set_complexity(config.complexity).map_err(&set)?;
        inner.set_bitrate(Bitrate::Value(config.bitrate)).map_err(&set)?;
        inner.set_signal(Signal::Voice).map_err(&set)?;
        inner.set_inband_fec(InbandFec::Off).map_err(&set)?;
        inner.set_packet_loss(0).map_err(&set)?;
        inner.set_dtx(false).map_err(&set)?;
        Ok(Self { inner })
    }

    /// Encodes one interleaved 20 ms frame (left, right, left, ...).
    fn encode(&mut self, interleaved: &[i16], out: &mut [u8]) -> Result<usize, MediaError> {
        self.inner.encode_to_slice(bytemuck::cast_slice(interleaved), out).map_err(opus_error("encode"))
    }

    fn lookahead(&mut self) -> Result<u32, MediaError> {
        self.inner.get_look_ahead().map_err(opus_error("encoder query"))
    }
}

/// The per-slot work, split from the aligner so the aligner can hand slots to it.
struct EncodePath {
    rate: SampleRate,
    sides: [SidePath; 2],
    interleaved: Vec<i16>,
    encoder: TwoVoiceEncoder,
    packet: Vec<u8>,
    ogg: OggOpusWriter,
    slots: u64,
}

/// Silence at any rate, fed to a side's resampler when the side has nothing
/// for a slot, so its filter runs on without a click or a change of delay.
static SILENCE: [i16; MAX_FRAME_SAMPLES] = [0; MAX_FRAME_SAMPLES];

/// Aligns, resamples, encodes and muxes one recording; see the module documentation.
pub struct RecordingEncoder {
    aligner: SlotAligner,
    path: EncodePath,
}

impl std::fmt::Debug for RecordingEncoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RecordingEncoder")
            .field("rate", &self.path.rate)
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
        let aligner = SlotAligner::new(config.aligner)?;
        let mut encoder = TwoVoiceEncoder::new(&config)?;
        let lookahead = u64::from(encoder.lookahead()?);
        let pre_skip = lookahead * u64::from(GRANULE_RATE) / u64::from(config.rate.hz());
        let head = OpusHead {
            channels: 2,
            pre_skip: u16::try_from(pre_skip).map_err(|_| MediaError::InvalidConfig("encoder look-ahead too long"))?,
            input_rate: config.rate.hz(),
            mapping: ChannelMapping::TwoMono,
        };
        let ogg = OggOpusWriter::new(head, crate::libopus_version(), comments, serial, out)?;
        let frame = config.rate.samples_per_frame();
        let side = || SidePath { resampler: None, pcm: Vec::with_capacity(frame) };
        Ok(RecordingEncoder {
            aligner,
            path: EncodePath {
                rate: config.rate,
                sides: [side(), side()],
                interleaved: vec![0; 2 * frame],
                encoder,
                packet: vec![0; MAX_PACKET],
                ogg,
                slots: 0,
            },
        })
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

    /// Ends the recording at `end_slot` (slots after the last frame are
    /// silence; frames already given are never cut): encodes what is left,
    /// flushes the encoder's look-ahead, and appends the last page, flagged
    /// end-of-stream and trimmed to exactly `slots × 20` ms.
    pub fn finish(mut self, end_slot: u64, out: &mut Vec<u8>) -> Result<RecordingSummary, MediaError> {
        let path = &mut self.path;
        let slots = self.aligner.finish(end_slot, &mut |aligned| path.encode(aligned, out))?;
        // The last `pre_skip` samples fed are still inside the encoder: push
        // silence through until they are out; the end trim hides it again.
        let flush = u64::from(path.ogg.pre_skip()).div_ceil(GRANULE_PER_FRAME).max(1);
        path.interleaved.fill(0);
        for _ in 0..flush {
            path.encode_interleaved(out)?;
        }
        path.ogg.finish(slots * GRANULE_PER_FRAME, out)?;
        Ok(RecordingSummary { slots, duration_ms: slots * 20, stats: self.aligner.stats() })
    }

    /// Slots encoded so far.
    pub fn slots(&self) -> u64 {
        self.path.slots
    }

    /// What the aligner saw so far.
    pub fn stats(&self) -> AlignerStats {
        self.aligner.stats()
    }

    /// The encoder's look-ahead in 48 kHz samples (the stream's pre-skip).
    pub fn pre_skip(&self) -> u16 {
        self.path.ogg.pre_skip()
    }
}

impl EncodePath {
    fn encode(&mut self, aligned: AlignedSlot<'_>, out: &mut Vec<u8>) -> Result<(), MediaError> {
        let frame = self.rate.samples_per_frame();
        for (side, input) in self.sides.iter_mut().zip([aligned.left, aligned.right]) {
            side.fill(input, self.rate)?;
        }
        let [left, right] = &self.sides;
        for (i, pair) in self.interleaved.chunks_exact_mut(2).enumerate().take(frame) {
            pair[0] = left.pcm[i];
            pair[1] = right.pcm[i];
        }
        self.encode_interleaved(out)?;
        self.slots += 1;
        Ok(())
    }

    fn encode_interleaved(&mut self, out: &mut Vec<u8>) -> Result<(), MediaError> {
        let n = self.encoder.encode(&self.interleaved, &mut self.packet)?;
        self.ogg.write_packet(&self.packet[..n], GRANULE_PER_FRAME, out)
    }
}

impl SidePath {
    /// Leaves exactly one frame at `rate` in `self.pcm`: the input resampled,
    /// or silence.
    fn fill(&mut self, input: Option<SideFrame<'_>>, rate: SampleRate) -> Result<(), MediaError> {
        self.pcm.clear();
        if let Some(frame) = input {
            if self.resampler.as_ref().is_none_or(|r| r.from_rate() != frame.rate) {
                // First frame of the side, or a new rate: a new filter (the
                // only allocation after start, and only on such a change).
                self.resampler = Some(Resampler::new(frame.rate, rate)?);
            }
            if let Some(resampler) = self.resampler.as_mut() {
                resampler.process(frame.pcm, &mut self.pcm)?;
            }
        } else if let Some(resampler) = self.resampler.as_mut() {
            let n = resampler.from_rate().samples_per_frame();
            resampler.process(&SILENCE[..n], &mut self.pcm)?;
        }
        self.pcm.resize(rate.samples_per_frame(), 0);
        Ok(())
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
        assert_eq!(decoded.head.input_rate, 24_000);
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
            assert!(leaked.iter().all(|&a| a < 0.003), "{ms} ms: leaked {leaked:?}");
            let own = [tone_amplitude(lw, 48_000, 440.0), tone_amplitude(rw, 48_000, 1_000.0)];
            let expected = [ms < 3_000, (1_000..5_000).contains(&ms)].map(|on| if on { 0.5 } else { 0.0 });
            for (got, want) in own.into_iter().zip(expected) {
                assert!((got - want).abs() < 0.05, "{ms} ms: {own:?}, expected {expected:?}");
            }
        }
    }
}
