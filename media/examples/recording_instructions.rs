//! What one slot of a call recording costs, in instructions (callgrind) and in
//! interleaved wall clock, for calls that talk like calls.
//!
//! The criterion benches (`cargo bench -p media -- recording/`) time the same
//! calls in wall clock. A call is mostly one side at a time and often neither,
//! and the recorder does not encode silence, so the figure depends on who talks
//! when (`media::test_signal::Talk`): `both` (both sides in every slot, the worst
//! case), `loadgen` (what the load generator's calls do: caller 25 %, agent 33 %),
//! `dialogue` (caller 40 % over a noise floor, agent 50 %), `silence`.
//!
//! Instruction counts (exact and repeatable on a shared machine):
//!
//! ```text
//! cargo build --release -p media --example recording_instructions
//! for talk in both loadgen dialogue; do for rates in "24 24" "16 24" "8 8"; do
//!   valgrind --tool=callgrind --callgrind-out-file=/dev/null \
//!     --toggle-collect='*recording_instructions::run_*' \
//!     target/release/examples/recording_instructions slot $talk $rates 3000 2>&1 | grep Collected
//! done; done
//! # the settings recordings had before (24 kHz, 48 kbit/s, complexity 5, silence encoded):
//! ... recording_instructions slot both 24 24 3000 old
//! # the encoder alone: mono <khz> <complexity> <bitrate> [frames] [nb|wb|swb|full] [voip|audio]
//! ... recording_instructions mono 24 0 16000 300 wb
//! ```
//!
//! `slot <talk> <caller kHz> <agent kHz> [slots] [old]` runs 10 slots to warm up,
//! then `slots` measured ones: divide by that. `wallclock <seconds>` alternates
//! 50-slot blocks of each call, with today's settings and the old ones, and
//! prints the mean and median µs per slot of each.
#![allow(clippy::print_stdout, clippy::print_stderr)] // printing the figures is this tool's job

use std::time::Instant;

use media::test_signal::{Talk, Track, call_tracks, speech_like};
use media::{MAX_OPUS_PACKET, RecordingConfig, RecordingEncoder, SampleRate, Side};

// Each `run_*` does only per-slot work; state is built outside.

#[inline(never)]
fn run_slots(recording: &mut RecordingEncoder, call: &Call, start: usize, slots: usize, out: &mut Vec<u8>) {
    let (caller, agent) = &call.tracks;
    for slot in start..start + slots {
        let i = slot % caller.len();
        if let Some(pcm) = &caller[i] {
            recording.push(Side::Left, slot as u64, call.caller_rate, pcm, out).expect("push");
        }
        if let Some(pcm) = &agent[i] {
            recording.push(Side::Right, slot as u64, call.agent_rate, pcm, out).expect("push");
        }
        if out.len() > 64 * 1024 {
            out.clear();
        }
    }
}

#[inline(never)]
fn run_mono(encoder: &mut opusic_c::Encoder, speech: &[Vec<i16>], frames: usize) -> usize {
    let mut packet = [0u8; MAX_OPUS_PACKET];
    let mut bytes = 0;
    for i in 0..frames {
        bytes += encoder.encode_to_slice(bytemuck::cast_slice(&speech[i % speech.len()]), &mut packet).expect("encode");
    }
    bytes
}

struct Call {
    caller_rate: SampleRate,
    agent_rate: SampleRate,
    tracks: (Track, Track),
}

impl Call {
    fn new(talk: Talk, caller_rate: SampleRate, agent_rate: SampleRate) -> Self {
        // 3000 slots: a minute, a whole number of every pattern's periods.
        Call { caller_rate, agent_rate, tracks: call_tracks(talk, caller_rate, agent_rate, 3_000) }
    }
}

/// The settings recordings had until the silence gate: 24 kHz (hybrid mode),
/// 48 kbit/s, complexity 5, every slot encoded.
fn old_settings() -> RecordingConfig {
    RecordingConfig {
        max_rate: SampleRate::Hz24000,
        bitrate: 48_000,
        complexity: 5,
        silence_peak: None,
        ..RecordingConfig::default()
    }
}

fn recorder(mut config: RecordingConfig, out: &mut Vec<u8>) -> RecordingEncoder {
    config.aligner.max_slots = u64::MAX / 2;
    RecordingEncoder::new(config, 1, &[], out).expect("recording")
}

fn rate_of(khz: &str) -> SampleRate {
    khz.parse::<u32>().ok().and_then(|k| SampleRate::try_from(k * 1000).ok()).expect("8, 16, 24 or 48")
}

fn talk_of(name: &str) -> Talk {
    match name {
        "both" => Talk::Both,
        "loadgen" => Talk::Loadgen,
        "dialogue" => Talk::Dialogue,
        "silence" => Talk::Silence,
        other => panic!("unknown talk {other}: both, loadgen, dialogue or silence"),
    }
}

/// A mono libopus encoder as a recording sets one up, at any rate, complexity,
/// bitrate, band and application.
fn mono(args: &[String]) {
    use opusic_c::{Application, Bandwidth, Bitrate, Channels, Encoder, InbandFec, Signal};
    let arg = |i: usize| args.get(i).map(String::as_str).unwrap_or("");
    let rate = rate_of(arg(0));
    let frames: usize = arg(3).parse().unwrap_or(1_000);
    let app = if arg(5) == "audio" { Application::Audio } else { Application::Voip };
    let opus_rate = match rate {
        SampleRate::Hz8000 => opusic_c::SampleRate::Hz8000,
        SampleRate::Hz16000 => opusic_c::SampleRate::Hz16000,
        SampleRate::Hz24000 => opusic_c::SampleRate::Hz24000,
        SampleRate::Hz48000 => opusic_c::SampleRate::Hz48000,
    };
    let mut encoder = Encoder::new(Channels::Mono, opus_rate, app).expect("encoder");
    encoder.set_complexity(arg(1).parse().unwrap_or(5)).expect("complexity");
    encoder.set_bitrate(Bitrate::Value(arg(2).parse().unwrap_or(24_000))).expect("bitrate");
    encoder.set_signal(Signal::Voice).expect("signal");
    encoder.set_inband_fec(InbandFec::Off).expect("fec");
    let bandwidth = match arg(4) {
        "nb" => Bandwidth::Narrow,
        "wb" => Bandwidth::Wide,
        "swb" => Bandwidth::Superwide,
        _ => Bandwidth::Full,
    };
    encoder.set_max_bandwidth(bandwidth).expect("bandwidth");
    let speech: Vec<Vec<i16>> =
        speech_like(rate, 10_000, 5).chunks_exact(rate.samples_per_frame()).map(<[i16]>::to_vec).collect();
    let bytes = run_mono(&mut encoder, &speech, frames);
    eprintln!("{:.1} kbit/s", bytes as f64 * 8.0 / (frames as f64 * 0.02) / 1000.0);
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// Alternates 50-slot blocks of every call, old and new settings, for `seconds`;
/// prints the mean and median µs per slot of each.
fn wallclock(seconds: f64) {
    const BLOCK: usize = 50;
    let (web, phone) = ((SampleRate::Hz24000, SampleRate::Hz24000), (SampleRate::Hz8000, SampleRate::Hz8000));
    let mut runs: Vec<(String, Call, RecordingEncoder, Vec<f64>)> = Vec::new();
    let mut out = Vec::with_capacity(128 * 1024);
    for (talk, name) in [(Talk::Both, "both"), (Talk::Loadgen, "loadgen"), (Talk::Dialogue, "dialogue")] {
        for ((caller, agent), line) in [(web, "browser 24/24 kHz"), (phone, "phone 8/8 kHz")] {
            for (config, which) in [(old_settings(), "old"), (RecordingConfig::default(), "new")] {
                let label = format!("{name:>8}, {line}, {which} settings");
                runs.push((label, Call::new(talk, caller, agent), recorder(config, &mut out), Vec::new()));
            }
        }
    }
    let began = Instant::now();
    let mut start = 0;
    while began.elapsed().as_secs_f64() < seconds {
        for (_, call, recording, times) in &mut runs {
            let t = Instant::now();
            run_slots(recording, call, start, BLOCK, &mut out);
            times.push(t.elapsed().as_secs_f64() * 1e6 / BLOCK as f64);
        }
        start += BLOCK;
    }
    println!("{} blocks of {BLOCK} slots each", runs[0].3.len());
    // A call's slots differ (talk, silence), so the mean over whole calls is the cost per
    // slot; the median of the blocks is the steadier figure for `both`.
    for (label, _, _, times) in &mut runs {
        let mean = times.iter().sum::<f64>() / times.len() as f64;
        println!("{label}: mean {mean:.1} µs, median {:.1} µs per slot", median(times));
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let arg = |i: usize| args.get(i).map(String::as_str).unwrap_or("");
    match arg(0) {
        "slot" => {
            let call = Call::new(talk_of(arg(1)), rate_of(arg(2)), rate_of(arg(3)));
            let slots: usize = arg(4).parse().unwrap_or(3_000);
            let config = if arg(5) == "old" { old_settings() } else { RecordingConfig::default() };
            let mut out = Vec::with_capacity(128 * 1024);
            let mut recording = recorder(config, &mut out);
            // Warm up (first frames, encoders at the sides' rates), then the measured slots.
            run_slots(&mut recording, &call, 0, 10, &mut out);
            run_slots(&mut recording, &call, 10, slots, &mut out);
            let [left, right] = recording.encoded();
            eprintln!("encoded: left {left}, right {right} of {} slots", recording.slots());
        }
        "mono" => mono(&args[1..]),
        "wallclock" => wallclock(arg(1).parse().unwrap_or(10.0)),
        _ => {
            eprintln!(
                "usage: recording_instructions slot <both|loadgen|dialogue|silence> <caller kHz> <agent kHz> [slots] [old] \
                 | mono <khz> <complexity> <bitrate> [frames] [nb|wb|swb|full] [voip|audio] | wallclock [seconds]"
            );
            std::process::exit(2)
        }
    }
}
