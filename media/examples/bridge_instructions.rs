//! The per-frame bridge measured against libopus alone, two ways that a busy
//! shared machine cannot skew.
//!
//! Wall-clock benches on a shared 2-vCPU machine wobble by 10 % and more,
//! which is the very margin the bridge budget is about. So:
//!
//! * **Instruction counts** (deterministic): run one loop under callgrind,
//!   collecting only inside it, and divide by the frame count:
//!
//!   ```text
//!   cargo build --release -p media --example bridge_instructions
//!   for mode in inbound-codec inbound-bridge outbound-codec outbound-bridge encode-24-c5; do
//!     valgrind --tool=callgrind --callgrind-out-file=/dev/null \
//!       --toggle-collect='*bridge_instructions::run_*' \
//!       target/release/examples/bridge_instructions $mode 1000 2>&1 | grep Collected
//!   done
//!   ```
//!
//! * **Interleaved wall clock**: `bridge_instructions wallclock [seconds]`
//!   alternates 50-frame blocks of codec-only and bridge work, so both see
//!   the same machine load, and prints per-frame medians and minima and
//!   their ratios.
//!
//! `BENCHMARKS.md` has the figures.
#![allow(clippy::print_stdout, clippy::print_stderr)] // printing the figures is this tool's job

use std::hint::black_box;
use std::time::{Duration, Instant};

use media::test_signal::{OutboundPath, speech_like};
use media::{
    InboundChain, ItemKey, JitterConfig, MAX_OPUS_PACKET, OpusDecoder, OpusEncoder, OpusEncoderConfig, SampleRate,
    pcm16,
};

const RATE: SampleRate = SampleRate::Hz24000;

fn speech_frames(rate: SampleRate) -> Vec<Vec<i16>> {
    speech_like(rate, 5_000, 1).chunks_exact(rate.samples_per_frame()).map(<[i16]>::to_vec).collect()
}

fn browser_packets() -> Vec<Vec<u8>> {
    let mut encoder = OpusEncoder::new(SampleRate::Hz48000, OpusEncoderConfig::default()).expect("encoder");
    let mut buf = [0u8; MAX_OPUS_PACKET];
    speech_frames(SampleRate::Hz48000)
        .iter()
        .map(|f| {
            let n = encoder.encode(f, &mut buf).expect("encode");
            buf[..n].to_vec()
        })
        .collect()
}

fn provider_deltas() -> Vec<Vec<u8>> {
    speech_frames(RATE)
        .iter()
        .map(|f| {
            let mut b = Vec::new();
            pcm16::samples_to_le_bytes(f, &mut b);
            b
        })
        .collect()
}

// Each `run_*` processes frames `start..start + frames` with state built
// outside, so only per-frame work is counted.

#[inline(never)]
fn run_inbound_codec(decoder: &mut OpusDecoder, packets: &[Vec<u8>], start: usize, frames: usize) {
    let mut pcm = [0i16; 480];
    for i in start..start + frames {
        black_box(decoder.decode(&packets[i % packets.len()], &mut pcm).expect("decode"));
    }
}

#[inline(never)]
fn run_inbound_bridge(chain: &mut InboundChain, t0: Instant, packets: &[Vec<u8>], start: usize, frames: usize) {
    let mut pcm = [0i16; 480];
    let mut bytes = Vec::with_capacity(960);
    for i in start..start + frames {
        let now = t0 + Duration::from_millis(20 * i as u64);
        chain.push(i as u16, (i * 960) as u32, &packets[i % packets.len()], now);
        black_box(chain.pop_frame(now, &mut pcm).expect("frame"));
        bytes.clear();
        pcm16::samples_to_le_bytes(&pcm, &mut bytes);
        black_box(&bytes);
    }
}

#[inline(never)]
fn run_outbound_codec(encoder: &mut OpusEncoder, speech: &[Vec<i16>], start: usize, frames: usize) {
    let mut packet = [0u8; MAX_OPUS_PACKET];
    for i in start..start + frames {
        black_box(encoder.encode(&speech[i % speech.len()], &mut packet).expect("encode"));
    }
}

#[inline(never)]
fn run_outbound_bridge(chain: &mut OutboundPath, item: &ItemKey, deltas: &[Vec<u8>], start: usize, frames: usize) {
    let mut packet = [0u8; MAX_OPUS_PACKET];
    for i in start..start + frames {
        chain.push_le_bytes(item.clone(), &deltas[i % deltas.len()]).expect("even");
        black_box(chain.next_packet(&mut packet).expect("packet"));
    }
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn min(v: &[f64]) -> f64 {
    v.iter().copied().fold(f64::INFINITY, f64::min)
}

/// Alternates codec-only and bridge blocks for `seconds`; prints per-frame µs.
fn wallclock(seconds: f64) {
    const BLOCK: usize = 50;
    let packets = browser_packets();
    let speech = speech_frames(RATE);
    let deltas = provider_deltas();
    let t0 = Instant::now();
    let mut decoder = OpusDecoder::new(RATE).expect("decoder");
    let mut inbound = InboundChain::new(JitterConfig::default(), RATE).expect("chain");
    let mut encoder = OpusEncoder::new(RATE, OpusEncoderConfig::default()).expect("encoder");
    let mut outbound = OutboundPath::new(RATE).expect("chain");
    let item = ItemKey::new("item");
    let (mut dec, mut inb, mut enc, mut outb) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let per_frame = |t: Instant| t.elapsed().as_secs_f64() * 1e6 / BLOCK as f64;
    let mut start = 0;
    let began = Instant::now();
    while began.elapsed().as_secs_f64() < seconds {
        let t = Instant::now();
        run_inbound_codec(&mut decoder, &packets, start, BLOCK);
        dec.push(per_frame(t));
        let t = Instant::now();
        run_inbound_bridge(&mut inbound, t0, &packets, start, BLOCK);
        inb.push(per_frame(t));
        let t = Instant::now();
        run_outbound_codec(&mut encoder, &speech, start, BLOCK);
        enc.push(per_frame(t));
        let t = Instant::now();
        run_outbound_bridge(&mut outbound, &item, &deltas, start, BLOCK);
        outb.push(per_frame(t));
        start += BLOCK;
    }
    println!("{} blocks of {BLOCK} frames each", dec.len());
    for (name, codec, bridge) in [("inbound", &mut dec, &mut inb), ("outbound", &mut enc, &mut outb)] {
        let (cmin, bmin) = (min(codec), min(bridge));
        let (cmed, bmed) = (median(codec), median(bridge));
        println!(
            "{name}: codec median {cmed:.2} µs min {cmin:.2} µs | bridge median {bmed:.2} µs min {bmin:.2} µs | ratio median {:.3} min {:.3}",
            bmed / cmed,
            bmin / cmin
        );
    }
}

fn main() {
    let mut args = std::env::args().skip(1);
    let mode = args.next().unwrap_or_default();
    let count = args.next();
    let frames: usize = count.as_deref().and_then(|n| n.parse().ok()).unwrap_or(1_000);
    // `encode-<khz>-c<complexity>`: the encoder alone at another rate/complexity.
    if let Some(spec) = mode.strip_prefix("encode-") {
        let (khz, complexity) = spec.split_once("-c").unwrap_or((spec, "5"));
        let rate = khz.parse::<u32>().ok().and_then(|k| SampleRate::try_from(k * 1000).ok()).unwrap_or(RATE);
        let config = OpusEncoderConfig { complexity: complexity.parse().unwrap_or(5), ..OpusEncoderConfig::default() };
        let mut encoder = OpusEncoder::new(rate, config).expect("encoder");
        run_outbound_codec(&mut encoder, &speech_frames(rate), 0, frames);
        return;
    }
    match mode.as_str() {
        "inbound-codec" => {
            let mut decoder = OpusDecoder::new(RATE).expect("decoder");
            run_inbound_codec(&mut decoder, &browser_packets(), 0, frames)
        }
        "inbound-bridge" => {
            let mut chain = InboundChain::new(JitterConfig::default(), RATE).expect("chain");
            run_inbound_bridge(&mut chain, Instant::now(), &browser_packets(), 0, frames)
        }
        "outbound-codec" => {
            let mut encoder = OpusEncoder::new(RATE, OpusEncoderConfig::default()).expect("encoder");
            run_outbound_codec(&mut encoder, &speech_frames(RATE), 0, frames)
        }
        "outbound-bridge" => {
            let mut chain = OutboundPath::new(RATE).expect("chain");
            run_outbound_bridge(&mut chain, &ItemKey::new("item"), &provider_deltas(), 0, frames)
        }
        "wallclock" => wallclock(count.as_deref().and_then(|s| s.parse().ok()).unwrap_or(10.0)),
        _ => {
            eprintln!(
                "usage: bridge_instructions <inbound-codec|inbound-bridge|outbound-codec|outbound-bridge|encode-<khz>-c<n>> [frames] | wallclock [seconds]"
            );
            std::process::exit(2)
        }
    }
}
