//! What one slot of a call recording costs, in instructions (callgrind) and in
//! interleaved wall clock, for calls that talk like calls.
//!
//! The criterion benches (`cargo bench -p media -- recording/`) time the worst case,
//! both sides talking in every slot. A call is mostly one side at a time and often
//! neither, so this tool also feeds the recorder conversations:
//!
//! | scenario | caller (left) | agent (right) |
//! |---|---|---|
//! | `talk` | speech in every slot | speech in every slot |
//! | `loadgen` | what `loadgen` does: 1.5 s of speech every 6 s, digital silence frames in between | 2 s of speech 0.5 s after each caller turn, no frames otherwise |
//! | `dialogue` | 4 s of speech every 10 s, a -70 dBFS noise floor in between | 5 s of speech after each caller turn, no frames otherwise |
//!
//! Instruction counts (exact and repeatable on a shared machine):
//!
//! ```text
//! cargo build --release -p media --example recording_instructions
//! for s in talk loadgen dialogue; do for k in 24 16 8; do
//!   valgrind --tool=callgrind --callgrind-out-file=/dev/null \
//!     --toggle-collect='*recording_instructions::run_*' \
//!     target/release/examples/recording_instructions slot $s $k 3000 2>&1 | grep Collected
//! done; done
//! # the encoder alone: mono <khz> <complexity> <bitrate> [frames]
//! valgrind ... recording_instructions mono 24 5 24000 1000
//! ```
//!
//! Divide by the slot (or frame) count for the per-slot figure. `wallclock <seconds>`
//! alternates 50-slot blocks of each scenario (24 kHz caller) and prints medians.
#![allow(clippy::print_stdout, clippy::print_stderr)] // printing the figures is this tool's job

use std::time::Instant;

use media::test_signal::{speech_like, white_noise};
use media::{MAX_OPUS_PACKET, RecordingConfig, RecordingEncoder, SampleRate, Side};

const AGENT_RATE: SampleRate = SampleRate::Hz24000;

/// One side's frames, slot by slot (`None`: no frame for that slot).
type Track = Vec<Option<Vec<i16>>>;

fn speech_frames(rate: SampleRate, seed: u64) -> Vec<Vec<i16>> {
    speech_like(rate, 10_000, seed).chunks_exact(rate.samples_per_frame()).map(<[i16]>::to_vec).collect()
}

/// Caller and agent tracks of `slots` slots for `scenario`.
fn scenario(name: &str, caller_rate: SampleRate, slots: usize) -> (Track, Track) {
    let caller_speech = speech_frames(caller_rate, 5);
    let agent_speech = speech_frames(AGENT_RATE, 3);
    let n = caller_rate.samples_per_frame();
    let zeros = vec![0i16; n];
    let floor = white_noise(n * 64, 0.0003, 9);
    let speech = |frames: &[Vec<i16>], i: usize| Some(frames[i % frames.len()].clone());
    let (mut caller, mut agent) = (Track::new(), Track::new());
    for i in 0..slots {
        let (c, a) = match name {
            "talk" => (speech(&caller_speech, i), speech(&agent_speech, i)),
            "loadgen" => {
                let t = i % 300;
                let c = if t < 75 { speech(&caller_speech, i) } else { Some(zeros.clone()) };
                (c, (100..200).contains(&t).then(|| agent_speech[i % agent_speech.len()].clone()))
            }
            "dialogue" => {
                let t = i % 500;
                let c = if t < 200 {
                    speech(&caller_speech, i)
                } else {
                    let at = (i % 64) * n;
                    Some(floor[at..at + n].to_vec())
                };
                (c, (225..475).contains(&t).then(|| agent_speech[i % agent_speech.len()].clone()))
            }
            other => panic!("unknown scenario {other}"),
        };
        caller.push(c);
        agent.push(a);
    }
    (caller, agent)
}

// Each `run_*` does only per-slot work; state is built outside.

#[inline(never)]
fn run_slots(
    recording: &mut RecordingEncoder,
    caller_rate: SampleRate,
    tracks: &(Track, Track),
    start: usize,
    slots: usize,
    out: &mut Vec<u8>,
) {
    let (caller, agent) = tracks;
    for slot in start..start + slots {
        let i = slot % caller.len();
        if let Some(pcm) = &caller[i] {
            recording.push(Side::Left, slot as u64, caller_rate, pcm, out).expect("push");
        }
        if let Some(pcm) = &agent[i] {
            recording.push(Side::Right, slot as u64, AGENT_RATE, pcm, out).expect("push");
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

/// A mono libopus encoder as a recording would set one up: `mono <khz> <complexity>
/// <bitrate> [frames] [nb|wb|swb|auto] [voip|audio]`.
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
    let bytes = run_mono(&mut encoder, &speech_frames(rate, 5), frames);
    eprintln!("{:.1} kbit/s", bytes as f64 * 8.0 / (frames as f64 * 0.02) / 1000.0);
}

fn recorder(out: &mut Vec<u8>) -> RecordingEncoder {
    let mut config = RecordingConfig::default();
    config.aligner.max_slots = u64::MAX / 2;
    RecordingEncoder::new(config, 1, &[], out).expect("recording")
}

fn rate_of(khz: &str) -> SampleRate {
    khz.parse::<u32>().ok().and_then(|k| SampleRate::try_from(k * 1000).ok()).expect("8, 16, 24 or 48")
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// Alternates 50-slot blocks of the three scenarios for `seconds`; prints µs per slot.
fn wallclock(seconds: f64) {
    const BLOCK: usize = 50;
    let names = ["talk", "loadgen", "dialogue"];
    let rate = SampleRate::Hz24000;
    let tracks: Vec<_> = names.iter().map(|n| scenario(n, rate, 3_000)).collect();
    let mut out = Vec::with_capacity(128 * 1024);
    let mut recorders: Vec<_> = names.iter().map(|_| recorder(&mut out)).collect();
    let mut times = vec![Vec::new(); names.len()];
    let began = Instant::now();
    let mut start = 0;
    while began.elapsed().as_secs_f64() < seconds {
        for ((recording, tracks), times) in recorders.iter_mut().zip(&tracks).zip(&mut times) {
            let t = Instant::now();
            run_slots(recording, rate, tracks, start, BLOCK, &mut out);
            times.push(t.elapsed().as_secs_f64() * 1e6 / BLOCK as f64);
        }
        start += BLOCK;
    }
    println!("{} blocks of {BLOCK} slots each, caller and agent at 24 kHz", times[0].len());
    for (name, times) in names.iter().zip(&mut times) {
        println!("{name}: median {:.1} µs per slot", median(times));
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let arg = |i: usize| args.get(i).map(String::as_str).unwrap_or("");
    match arg(0) {
        "slot" => {
            let rate = rate_of(arg(2));
            let slots: usize = arg(3).parse().unwrap_or(3_000);
            let tracks = scenario(arg(1), rate, slots);
            let mut out = Vec::with_capacity(128 * 1024);
            let mut recording = recorder(&mut out);
            // Warm up (first frames, resamplers built), then the measured slots.
            run_slots(&mut recording, rate, &tracks, 0, 10, &mut out);
            run_slots(&mut recording, rate, &tracks, 10, slots, &mut out);
        }
        "mono" => mono(&args[1..]),
        "wallclock" => wallclock(arg(1).parse().unwrap_or(10.0)),
        _ => {
            eprintln!(
                "usage: recording_instructions slot <talk|loadgen|dialogue> <8|16|24> [slots] \
                 | mono <khz> <complexity> <bitrate> [frames] [nb|wb|swb|auto] [voip|audio] | wallclock [seconds]"
            );
            std::process::exit(2)
        }
    }
}
