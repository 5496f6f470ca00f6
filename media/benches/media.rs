//! Per-frame cost of every hot operation, and of the whole per-frame bridge
//! compared with libopus alone. One iteration = one 20 ms frame (or one
//! packet). Results and their reading: `media/BENCHMARKS.md`.

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use media::test_signal::{OutboundPath, speech_like};
use media::{
    EnergyVad, InboundChain, ItemKey, JitterBuffer, JitterConfig, JitterOutput, LevelMeter, MAX_OPUS_PACKET, Mixer,
    OpusDecoder, OpusEncoder, OpusEncoderConfig, Pacer, RecordingConfig, RecordingEncoder, Resampler, SampleRate, Side,
    VadConfig, g711, mix_into, pcm16,
};

/// Seconds of speech cycled through by codec benches (varied content, so the
/// encoder sees voiced, unvoiced and quiet frames in realistic proportions).
const SPEECH_MS: u32 = 5_000;

fn frames(rate: SampleRate, seed: u64) -> Vec<Vec<i16>> {
    speech_like(rate, SPEECH_MS, seed).chunks_exact(rate.samples_per_frame()).map(<[i16]>::to_vec).collect()
}

fn packets(rate: SampleRate, config: OpusEncoderConfig) -> Vec<Vec<u8>> {
    let mut encoder = OpusEncoder::new(rate, config).expect("encoder");
    let mut buf = [0u8; MAX_OPUS_PACKET];
    frames(rate, 1)
        .iter()
        .map(|f| {
            let n = encoder.encode(f, &mut buf).expect("encode");
            buf[..n].to_vec()
        })
        .collect()
}

fn opus(c: &mut Criterion) {
    let mut group = c.benchmark_group("opus");
    for rate in [SampleRate::Hz16000, SampleRate::Hz24000, SampleRate::Hz48000] {
        for complexity in [5u8, 10] {
            let config = OpusEncoderConfig { complexity, ..OpusEncoderConfig::default() };
            let input = frames(rate, 1);
            let mut encoder = OpusEncoder::new(rate, config).expect("encoder");
            let mut out = [0u8; MAX_OPUS_PACKET];
            let mut i = 0;
            group.bench_function(format!("encode_{}k_c{complexity}", rate.hz() / 1000), |b| {
                b.iter(|| {
                    i = (i + 1) % input.len();
                    black_box(encoder.encode(black_box(&input[i]), &mut out).expect("encode"))
                })
            });
        }
    }
    // Decoding browser packets (encoded at 48 kHz) at each output rate.
    let browser = packets(SampleRate::Hz48000, OpusEncoderConfig::default());
    for rate in [SampleRate::Hz16000, SampleRate::Hz24000, SampleRate::Hz48000] {
        let mut decoder = OpusDecoder::new(rate).expect("decoder");
        let mut out = vec![0i16; rate.samples_per_frame()];
        let mut i = 0;
        group.bench_function(format!("decode_48k_packet_to_{}k", rate.hz() / 1000), |b| {
            b.iter(|| {
                i = (i + 1) % browser.len();
                black_box(decoder.decode(black_box(&browser[i]), &mut out).expect("decode"))
            })
        });
    }
    let rate = SampleRate::Hz24000;
    let mut out = vec![0i16; rate.samples_per_frame()];
    let mut decoder = OpusDecoder::new(rate).expect("decoder");
    let mut i = 0;
    group.bench_function("conceal_fec_24k", |b| {
        b.iter(|| {
            i = (i + 1) % browser.len();
            decoder.conceal(Some(&browser[i]), &mut out).expect("fec");
            black_box(decoder.decode(&browser[i], &mut out).expect("decode"))
        })
    });
    let mut decoder = OpusDecoder::new(rate).expect("decoder");
    let mut i = 0;
    group.bench_function("conceal_plc_24k", |b| {
        b.iter(|| {
            i = (i + 1) % browser.len();
            decoder.decode(&browser[i], &mut out).expect("decode");
            black_box(decoder.conceal(None, &mut out).expect("plc"))
        })
    });
    group.finish();
}

fn g711_codec(c: &mut Criterion) {
    let mut group = c.benchmark_group("g711");
    let pcm = frames(SampleRate::Hz8000, 2).swap_remove(3);
    let mut codes = [0u8; 160];
    let mut out = [0i16; 160];
    group.bench_function("ulaw_encode_frame_table", |b| {
        b.iter(|| g711::ulaw_encode_slice(black_box(&pcm), &mut codes).expect("fits"))
    });
    group.bench_function("ulaw_encode_frame_computed", |b| {
        b.iter(|| {
            for (c, &s) in codes.iter_mut().zip(black_box(&pcm)) {
                *c = g711::ulaw_encode_computed(s);
            }
        })
    });
    group.bench_function("alaw_encode_frame_table", |b| {
        b.iter(|| g711::alaw_encode_slice(black_box(&pcm), &mut codes).expect("fits"))
    });
    group.bench_function("alaw_encode_frame_computed", |b| {
        b.iter(|| {
            for (c, &s) in codes.iter_mut().zip(black_box(&pcm)) {
                *c = g711::alaw_encode_computed(s);
            }
        })
    });
    g711::ulaw_encode_slice(&pcm, &mut codes).expect("fits");
    group.bench_function("ulaw_decode_frame", |b| {
        b.iter(|| g711::ulaw_decode_slice(black_box(&codes), &mut out).expect("fits"))
    });
    group.bench_function("alaw_decode_frame", |b| {
        b.iter(|| g711::alaw_decode_slice(black_box(&codes), &mut out).expect("fits"))
    });
    group.finish();
}

fn resampler(c: &mut Criterion) {
    let mut group = c.benchmark_group("resample");
    use SampleRate::*;
    for (from, to) in [
        (Hz8000, Hz16000),
        (Hz8000, Hz24000),
        (Hz16000, Hz8000),
        (Hz24000, Hz8000),
        (Hz24000, Hz48000),
        (Hz48000, Hz24000),
        (Hz48000, Hz16000),
    ] {
        let input = frames(from, 3);
        let mut r = Resampler::new(from, to).expect("resampler");
        let mut out = Vec::with_capacity(to.samples_per_frame());
        let mut i = 0;
        group.bench_function(format!("{}k_to_{}k", from.hz() / 1000, to.hz() / 1000), |b| {
            b.iter(|| {
                i = (i + 1) % input.len();
                out.clear();
                black_box(r.process(black_box(&input[i]), &mut out).expect("resample"))
            })
        });
    }
    group.finish();
}

fn jitter_and_pacer(c: &mut Criterion) {
    let mut group = c.benchmark_group("queue");
    let payload = [0x5Au8; 80];
    let mut jb = JitterBuffer::new(JitterConfig::default()).expect("jitter");
    let t0 = Instant::now();
    let mut i: u64 = 0;
    group.bench_function("jitter_push_pop", |b| {
        b.iter(|| {
            i += 1;
            let now = t0 + Duration::from_millis(20 * i);
            jb.push(i as u16, (i * 960) as u32, black_box(&payload), now);
            match jb.pop(now + Duration::from_millis(5)) {
                Some(JitterOutput::Packet(p)) => black_box(p.len()),
                _ => 0,
            }
        })
    });
    let rate = SampleRate::Hz24000;
    let chunk = speech_like(rate, 20, 4);
    let item = ItemKey::new("item_bench");
    let mut pacer = Pacer::new(rate);
    let mut out = vec![0i16; rate.samples_per_frame()];
    group.bench_function("pacer_push_next_frame_24k", |b| {
        b.iter(|| {
            pacer.push(item.clone(), black_box(&chunk));
            black_box(pacer.next_frame(&mut out))
        })
    });
    let mut bytes = Vec::new();
    pcm16::samples_to_le_bytes(&chunk, &mut bytes);
    let mut samples = Vec::with_capacity(chunk.len());
    group.bench_function("pcm16_bytes_to_samples_24k", |b| {
        b.iter(|| {
            samples.clear();
            pcm16::le_bytes_to_samples(black_box(&bytes), &mut samples).expect("even")
        })
    });
    let mut back = Vec::with_capacity(bytes.len());
    group.bench_function("pcm16_samples_to_bytes_24k", |b| {
        b.iter(|| {
            back.clear();
            pcm16::samples_to_le_bytes(black_box(&chunk), &mut back)
        })
    });
    group.finish();
}

fn analysis(c: &mut Criterion) {
    let mut group = c.benchmark_group("analysis");
    let rate = SampleRate::Hz24000;
    let input = frames(rate, 5);
    let mut vad = EnergyVad::new(VadConfig::default());
    let mut i = 0;
    group.bench_function("vad_24k", |b| {
        b.iter(|| {
            i = (i + 1) % input.len();
            black_box(vad.process(black_box(&input[i])))
        })
    });
    let mut meter = LevelMeter::new();
    group.bench_function("level_meter_24k", |b| {
        b.iter(|| {
            i = (i + 1) % input.len();
            black_box(meter.process(black_box(&input[i])))
        })
    });
    let wide = frames(SampleRate::Hz48000, 6);
    let mut out = vec![0i16; 960];
    let mut mixer = Mixer::new();
    group.bench_function("mixer_3_streams_48k", |b| {
        b.iter(|| {
            i = (i + 1) % (wide.len() - 2);
            mixer.mix(&mut out, black_box(&[&wide[i], &wide[i + 1], &wide[i + 2]]));
        })
    });
    group.bench_function("mix_into_2_streams_48k", |b| {
        b.iter(|| {
            i = (i + 1) % (wide.len() - 1);
            mix_into(&mut out, black_box(&[&wide[i], &wide[i + 1]]));
        })
    });
    #[cfg(feature = "denoise")]
    {
        let mut ns = media::NoiseSuppressor::new(SampleRate::Hz48000).expect("denoise");
        let mut frame = vec![0i16; 960];
        group.bench_function("denoise_48k", |b| {
            b.iter(|| {
                i = (i + 1) % wide.len();
                frame.copy_from_slice(&wide[i]);
                black_box(ns.process(&mut frame).expect("denoise"))
            })
        });
        let mut ns = media::NoiseSuppressor::new(SampleRate::Hz8000).expect("denoise");
        let narrow = frames(SampleRate::Hz8000, 7);
        let mut frame = vec![0i16; 160];
        group.bench_function("denoise_8k", |b| {
            b.iter(|| {
                i = (i + 1) % narrow.len();
                frame.copy_from_slice(&narrow[i]);
                black_box(ns.process(&mut frame).expect("denoise"))
            })
        });
    }
    group.finish();
}

/// The whole per-frame bridge against libopus alone on the same data.
fn bridge(c: &mut Criterion) {
    let mut group = c.benchmark_group("bridge");
    let rate = SampleRate::Hz24000;

    // Inbound: browser Opus (48 kHz) -> jitter buffer -> decode at 24 kHz ->
    // PCM16 bytes for the provider.
    let browser = packets(SampleRate::Hz48000, OpusEncoderConfig::default());
    let mut decoder = OpusDecoder::new(rate).expect("decoder");
    let mut pcm = vec![0i16; rate.samples_per_frame()];
    let mut i = 0;
    group.bench_function("inbound_codec_only", |b| {
        b.iter(|| {
            i = (i + 1) % browser.len();
            black_box(decoder.decode(black_box(&browser[i]), &mut pcm).expect("decode"))
        })
    });
    let mut chain = InboundChain::new(JitterConfig::default(), rate).expect("chain");
    let mut bytes = Vec::with_capacity(rate.samples_per_frame() * 2);
    let t0 = Instant::now();
    let mut seq: u64 = 0;
    group.bench_function("inbound_bridge", |b| {
        b.iter(|| {
            seq += 1;
            let now = t0 + Duration::from_millis(20 * seq);
            let p = &browser[seq as usize % browser.len()];
            chain.push(seq as u16, (seq * 960) as u32, black_box(p), now);
            let kind = chain.pop_frame(now, &mut pcm).expect("frame");
            bytes.clear();
            pcm16::samples_to_le_bytes(&pcm, &mut bytes);
            black_box((kind, bytes.len()))
        })
    });

    // Outbound: provider PCM16 bytes at 24 kHz -> pacer -> Opus packet.
    let speech = frames(rate, 1);
    let deltas: Vec<Vec<u8>> = speech
        .iter()
        .map(|f| {
            let mut b = Vec::new();
            pcm16::samples_to_le_bytes(f, &mut b);
            b
        })
        .collect();
    let mut encoder = OpusEncoder::new(rate, OpusEncoderConfig::default()).expect("encoder");
    let mut packet = [0u8; MAX_OPUS_PACKET];
    let mut i = 0;
    group.bench_function("outbound_codec_only", |b| {
        b.iter(|| {
            i = (i + 1) % speech.len();
            black_box(encoder.encode(black_box(&speech[i]), &mut packet).expect("encode"))
        })
    });
    let mut chain = OutboundPath::new(rate).expect("chain");
    let item = ItemKey::new("item_bench");
    let mut i = 0;
    group.bench_function("outbound_bridge", |b| {
        b.iter(|| {
            i = (i + 1) % deltas.len();
            chain.push_le_bytes(item.clone(), black_box(&deltas[i])).expect("even");
            black_box(chain.next_packet(&mut packet).expect("packet"))
        })
    });
    group.finish();
}

/// One 20 ms slot of a call recording: the caller's frame and the agent's
/// frame pushed, aligned, encoded (or, for a silent side, not) as two mono
/// Opus streams in one packet and laid into Ogg pages. Per call: both sides
/// talking in every slot (the worst case), the load generator's calls, a
/// livelier dialogue (`test_signal::Talk`); browser (24 kHz both sides) and
/// phone (8 kHz both sides); and today's settings against the old ones.
fn recording(c: &mut Criterion) {
    use media::test_signal::{Talk, call_tracks};
    let mut group = c.benchmark_group("recording");
    let old = RecordingConfig {
        max_rate: SampleRate::Hz24000,
        bitrate: 48_000,
        complexity: 5,
        silence_peak: None,
        ..RecordingConfig::default()
    };
    let (web, gemini, phone) = (
        (SampleRate::Hz24000, SampleRate::Hz24000, "browser"),
        (SampleRate::Hz16000, SampleRate::Hz24000, "gemini"),
        (SampleRate::Hz8000, SampleRate::Hz8000, "phone"),
    );
    let calls = [
        (Talk::Both, web, old, "old_settings"),
        (Talk::Both, web, RecordingConfig::default(), "now"),
        (Talk::Both, gemini, RecordingConfig::default(), "now"),
        (Talk::Both, phone, old, "old_settings"),
        (Talk::Both, phone, RecordingConfig::default(), "now"),
        (Talk::Loadgen, web, RecordingConfig::default(), "now"),
        (Talk::Loadgen, phone, RecordingConfig::default(), "now"),
        (Talk::Dialogue, web, RecordingConfig::default(), "now"),
        (Talk::Dialogue, phone, RecordingConfig::default(), "now"),
        (Talk::Silence, web, RecordingConfig::default(), "now"),
    ];
    for (talk, (caller_rate, agent_rate, line), mut config, settings) in calls {
        config.aligner.max_slots = u64::MAX / 2;
        let (caller, agent) = call_tracks(talk, caller_rate, agent_rate, 3_000);
        let mut out = Vec::with_capacity(128 * 1024);
        let mut encoder = RecordingEncoder::new(config, 1, &[], &mut out).expect("recording");
        let mut slot = 0u64;
        let name = format!("{}_{line}_{settings}", format!("{talk:?}").to_lowercase());
        group.bench_function(name, |b| {
            b.iter(|| {
                let i = slot as usize % caller.len();
                if let Some(pcm) = &caller[i] {
                    encoder.push(Side::Left, slot, caller_rate, black_box(pcm), &mut out).expect("push");
                }
                if let Some(pcm) = &agent[i] {
                    encoder.push(Side::Right, slot, agent_rate, black_box(pcm), &mut out).expect("push");
                }
                slot += 1;
                if out.len() > 64 * 1024 {
                    out.clear();
                }
            })
        });
    }
    group.finish();
}

fn config() -> Criterion {
    Criterion::default().warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(3)).sample_size(30)
}

criterion_group! {
    name = benches;
    config = config();
    targets = bridge, opus, g711_codec, resampler, jitter_and_pacer, analysis, recording
}
criterion_main!(benches);
