//! Pure audio processing for the voice gateway.
//!
//! Every call's audio passes through this crate twice per 20 ms, so it decides
//! both call quality and how many calls a core carries.
//!
//! **Purity rule.** No async runtime, no sockets, no files, no clock reads:
//! components are plain structs fed with samples, packets and (where timing
//! matters) a `now: Instant` argument. That keeps them deterministic, unit
//! testable and benchable; the call session's task does the I/O around them.
//! Hot paths write into caller-owned or preallocated buffers and do not
//! allocate per frame (`tests/no_alloc.rs` checks it).
//!
//! | module | what it holds |
//! |---|---|
//! | `sample_rate` | [`SampleRate`], [`FRAME_MS`]: the 20 ms frame everything moves in |
//! | [`pcm16`] | PCM16 little-endian bytes <-> samples |
//! | `audio_frame` | [`AudioFrame`]: an owned frame that carries its rate |
//! | `opus_encoder`, `opus_decoder` | [`OpusEncoder`], [`OpusDecoder`] (libopus 1.6, VOIP, FEC, PLC) at 8-48 kHz |
//! | [`g711`] | mu-law / A-law, bit-exact with ITU-T G.191 |
//! | `resampler` | [`Resampler`]: streaming rubato FFT resampler for any pair of rates |
//! | `jitter_buffer` | [`JitterBuffer`]: reorder, dedupe, adaptive delay, loss signalling |
//! | `pacer` | [`Pacer`]: bursty provider audio -> one frame per tick, tagged with its item (PCM16 or G.711 codes) |
//! | `level_meter`, `energy_vad` | [`LevelMeter`], [`EnergyVad`]: levels and speech start/stop |
//! | `mixer` | [`Mixer`], [`mix_into`]: 2-3 streams without wrap-around |
//! | `slot_aligner` | [`SlotAligner`]: two sides' frames lined up on the call's 20 ms slots |
//! | [`ogg_opus`] | [`OggOpusWriter`], [`decode_ogg_opus`], [`seal_truncated_stream`]: Opus in Ogg (RFC 7845) |
//! | `recording_encoder` | [`RecordingEncoder`]: two sides in, two-channel Ogg Opus pages out (a mono Opus stream per side) |
//! | `noise_suppressor` | `NoiseSuppressor` (feature `denoise`): RNNoise |
//! | `inbound_chain` | [`InboundChain`]: a WebRTC leg's inbound path (jitter buffer + Opus decoder, released on arrival) |
//! | [`test_signal`] | synthetic speech-like signals and comparison helpers for tests and benches |
//!
//! The error type is [`MediaError`]. Costs per frame are in `BENCHMARKS.md`.
#![deny(missing_docs)]

mod audio_frame;
mod energy_vad;
mod error;
pub mod g711;
mod inbound_chain;
mod jitter_buffer;
mod level_meter;
mod mixer;
#[cfg(feature = "denoise")]
mod noise_suppressor;
pub mod ogg_opus;
mod opus_decoder;
mod opus_encoder;
mod pacer;
pub mod pcm16;
mod recording_encoder;
mod resampler;
mod sample_rate;
mod slot_aligner;
pub mod test_signal;

pub use crate::audio_frame::AudioFrame;
pub use crate::energy_vad::{EnergyVad, VadConfig, VadEvent};
pub use crate::error::MediaError;
pub use crate::inbound_chain::{InboundChain, InboundFrame};
pub use crate::jitter_buffer::{
    JitterBuffer, JitterConfig, JitterOutput, JitterStats, MAX_CONCEALED_FRAMES, PushOutcome, RESYNC_JUMP,
};
pub use crate::level_meter::{LevelMeter, MIN_DBFS, alaw_dbfs, dbfs, rms, ulaw_dbfs};
pub use crate::mixer::{Mixer, mix_into, soft_clip};
#[cfg(feature = "denoise")]
pub use crate::noise_suppressor::NoiseSuppressor;
pub use crate::ogg_opus::{
    DecodedOggOpus, OggOpusWriter, OpusHead, SealedStream, decode_ogg_opus, seal_truncated_stream,
};
pub use crate::opus_decoder::{MAX_OPUS_PACKET_MS, OpusDecoder};
pub use crate::opus_encoder::{MAX_OPUS_PACKET, OpusEncoder, OpusEncoderConfig, libopus_version};
pub use crate::pacer::{Cleared, ItemKey, PacedFrame, Pacer};
pub use crate::recording_encoder::{RecordingConfig, RecordingEncoder, RecordingSummary};
pub use crate::resampler::Resampler;
pub use crate::sample_rate::{FRAME_DURATION, FRAME_MS, MAX_FRAME_SAMPLES, SampleRate};
pub use crate::slot_aligner::{AlignedSlot, AlignerConfig, AlignerStats, Side, SideFrame, SlotAligner, SlotPush};
