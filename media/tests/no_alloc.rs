//! Proves that the per-frame hot paths allocate nothing once warm.
//!
//! A counting global allocator needs `unsafe impl GlobalAlloc`, so this test
//! binary (and only it) allows `unsafe_code`; the allocator just forwards to
//! `System` and bumps a per-thread counter. Counting is switched on per thread, so other
//! tests running in parallel threads cannot disturb the count.
#![allow(unsafe_code)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::time::{Duration, Instant};

use media::test_signal::{OutboundPath, speech_like};
use media::{
    EnergyVad, InboundChain, ItemKey, JitterConfig, LevelMeter, MAX_OPUS_PACKET, Mixer, OpusEncoder, OpusEncoderConfig,
    RecordingConfig, RecordingEncoder, Resampler, SampleRate, Side, VadConfig, g711, pcm16,
};

struct CountingAllocator;

thread_local! {
    static COUNTING: Cell<bool> = const { Cell::new(false) };
    /// This thread's allocations while counting (per thread: tests run in parallel).
    static ALLOCATIONS: Cell<u64> = const { Cell::new(0) };
}

fn note_allocation() {
    if COUNTING.with(Cell::get) {
        ALLOCATIONS.with(|n| n.set(n.get() + 1));
    }
}

// SAFETY: every method forwards to `System` with the caller's arguments unchanged.
unsafe impl GlobalAlloc for CountingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note_allocation();
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        note_allocation();
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        note_allocation();
        unsafe { System.realloc(ptr, layout, new_size) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: CountingAllocator = CountingAllocator;

/// Runs `f` with allocation counting on for this thread; returns the count.
fn allocations_during(f: impl FnOnce()) -> u64 {
    let before = ALLOCATIONS.with(Cell::get);
    COUNTING.with(|c| c.set(true));
    f();
    COUNTING.with(|c| c.set(false));
    ALLOCATIONS.with(Cell::get) - before
}

fn opus_packets(rate: SampleRate, ms: u32) -> Vec<Vec<u8>> {
    let mut encoder = OpusEncoder::new(rate, OpusEncoderConfig::default()).expect("encoder");
    let mut buf = [0u8; MAX_OPUS_PACKET];
    speech_like(rate, ms, 99)
        .chunks_exact(rate.samples_per_frame())
        .map(|frame| {
            let n = encoder.encode(frame, &mut buf).expect("encode");
            buf[..n].to_vec()
        })
        .collect()
}

#[test]
fn inbound_path_does_not_allocate_per_frame() {
    let rate = SampleRate::Hz24000;
    let packets = opus_packets(SampleRate::Hz48000, 11_000);
    let mut chain = InboundChain::new(JitterConfig::default(), rate).unwrap();
    let mut pcm = vec![0i16; rate.samples_per_frame()];
    let mut bytes = Vec::with_capacity(rate.samples_per_frame() * 2);
    let t0 = Instant::now();
    let mut frame = |i: usize, chain: &mut InboundChain| {
        let now = t0 + Duration::from_millis(20 * i as u64);
        // Some packets swap places, some are lost, some come twice: every
        // branch of the jitter buffer and the FEC/PLC paths run.
        let order = if i % 10 == 3 {
            i + 1
        } else if i % 10 == 4 {
            i - 1
        } else {
            i
        };
        if order % 17 != 5 {
            let p = &packets[order];
            chain.push(order as u16, (order * 960) as u32, p, now);
            if order % 23 == 0 {
                chain.push(order as u16, (order * 960) as u32, p, now);
            }
        }
        while chain.pop_frame(now + Duration::from_millis(5), &mut pcm).unwrap().is_some() {}
        bytes.clear();
        pcm16::samples_to_le_bytes(&pcm, &mut bytes);
    };
    for i in 0..20 {
        frame(i, &mut chain);
    }
    let n = allocations_during(|| {
        for i in 20..520 {
            frame(i, &mut chain);
        }
    });
    let stats = chain.jitter().stats();
    assert!(stats.lost > 0 && stats.reordered > 0 && stats.duplicates > 0, "{stats:?}");
    assert_eq!(n, 0, "inbound path allocated {n} times in 500 frames");
}

#[test]
fn outbound_path_does_not_allocate_per_frame() {
    let rate = SampleRate::Hz24000;
    let speech = speech_like(rate, 11_000, 5);
    let mut provider_bytes = Vec::new();
    pcm16::samples_to_le_bytes(&speech, &mut provider_bytes);
    let mut chain = OutboundPath::new(rate).unwrap();
    let items = [ItemKey::new("item_a"), ItemKey::new("item_b")];
    let mut packet = [0u8; MAX_OPUS_PACKET];
    // The provider sends 100 ms deltas every 4 ticks (faster than real time),
    // items alternate every 2 s, and a barge-in clears the queue now and then.
    let chunk = rate.samples_per_ms() * 100 * 2;
    let mut frame = |i: usize, chain: &mut OutboundPath| {
        if i.is_multiple_of(4) {
            let item = &items[(i / 100) % 2];
            let at = (i / 4 * chunk) % (provider_bytes.len() - chunk);
            chain.push_le_bytes(item.clone(), &provider_bytes[at..at + chunk]).unwrap();
        }
        if i % 150 == 149 {
            chain.clear();
        }
        chain.next_packet(&mut packet).unwrap();
    };
    for i in 0..20 {
        frame(i, &mut chain);
    }
    let n = allocations_during(|| {
        for i in 20..520 {
            frame(i, &mut chain);
        }
    });
    assert_eq!(n, 0, "outbound path allocated {n} times in 500 frames");
}

#[test]
fn telephony_and_analysis_paths_do_not_allocate_per_frame() {
    // Twilio mu-law 8 kHz -> 24 kHz for the provider, VAD and levels on the
    // way; provider 24 kHz -> 8 kHz mu-law back; a three-way mix.
    let speech8 = speech_like(SampleRate::Hz8000, 11_000, 3);
    let mut ulaw = vec![0u8; speech8.len()];
    g711::ulaw_encode_slice(&speech8, &mut ulaw).unwrap();
    let speech24 = speech_like(SampleRate::Hz24000, 11_000, 4);
    let mut up = Resampler::new(SampleRate::Hz8000, SampleRate::Hz24000).unwrap();
    let mut down = Resampler::new(SampleRate::Hz24000, SampleRate::Hz8000).unwrap();
    let mut vad = EnergyVad::new(VadConfig::default());
    let mut meter = LevelMeter::new();
    let mut mixer = Mixer::new();
    let mut pcm8 = vec![0i16; 160];
    let mut pcm24 = Vec::with_capacity(480);
    let mut back8 = Vec::with_capacity(160);
    let mut codes = vec![0u8; 160];
    let mut mixed = vec![0i16; 480];
    let mut frame = |i: usize| {
        g711::ulaw_decode_slice(&ulaw[i * 160..(i + 1) * 160], &mut pcm8).unwrap();
        pcm24.clear();
        up.process(&pcm8, &mut pcm24).unwrap();
        vad.process(&pcm24);
        meter.process(&pcm24);
        let provider = &speech24[i * 480..(i + 1) * 480];
        back8.clear();
        down.process(provider, &mut back8).unwrap();
        g711::ulaw_encode_slice(&back8, &mut codes).unwrap();
        mixer.mix(&mut mixed, &[&pcm24, provider, provider]);
    };
    for i in 0..20 {
        frame(i);
    }
    let n = allocations_during(|| {
        for i in 20..520 {
            frame(i);
        }
    });
    assert_eq!(n, 0, "telephony path allocated {n} times in 500 frames");
}

#[test]
fn recording_path_does_not_allocate_per_frame() {
    // The recorder's writer: a 16 kHz caller (Gemini input) on the left, the
    // 24 kHz agent on the right, from jittery sources (frames swapped, late by
    // a slot, missing, doubled), aligned, resampled, encoded as stereo Opus
    // and laid into Ogg pages in a buffer drained as the writer drains it.
    let (left_rate, right_rate) = (SampleRate::Hz16000, SampleRate::Hz24000);
    let caller = speech_like(left_rate, 11_000, 21);
    let agent = speech_like(right_rate, 11_000, 22);
    let mut out = Vec::with_capacity(64 * 1024);
    let mut recording = RecordingEncoder::new(RecordingConfig::default(), 7, &[("CALL_ID", "x")], &mut out).unwrap();
    let (lf, rf) = (left_rate.samples_per_frame(), right_rate.samples_per_frame());
    let frame = |i: usize, recording: &mut RecordingEncoder, out: &mut Vec<u8>| {
        let left = if i % 10 == 3 {
            i + 1
        } else if i % 10 == 4 {
            i - 1
        } else {
            i
        };
        if left % 13 != 5 {
            recording.push(Side::Left, left as u64, left_rate, &caller[left * lf..(left + 1) * lf], out).unwrap();
        }
        if i % 7 != 2 {
            recording.push(Side::Right, i as u64, right_rate, &agent[i * rf..(i + 1) * rf], out).unwrap();
        }
        if i.is_multiple_of(29) {
            recording.push(Side::Right, i as u64, right_rate, &agent[i * rf..(i + 1) * rf], out).unwrap();
        }
        if out.len() > 32 * 1024 {
            out.clear();
        }
    };
    for i in 0..20 {
        frame(i, &mut recording, &mut out);
    }
    let n = allocations_during(|| {
        for i in 20..520 {
            frame(i, &mut recording, &mut out);
        }
    });
    let stats = recording.stats();
    assert!(stats.duplicates > 0 && stats.silent_slots[0] > 0 && stats.silent_slots[1] > 0, "{stats:?}");
    assert!(recording.slots() >= 510, "{} slots encoded", recording.slots());
    assert_eq!(n, 0, "recording path allocated {n} times in 500 frames");
}

#[test]
fn the_counting_allocator_sees_allocations() {
    let n = allocations_during(|| {
        let v: Vec<u8> = Vec::with_capacity(64);
        std::hint::black_box(v);
    });
    assert_eq!(n, 1);
}

#[cfg(feature = "denoise")]
#[test]
fn noise_suppression_does_not_allocate_per_frame() {
    let rate = SampleRate::Hz8000;
    let speech = speech_like(rate, 11_000, 8);
    let mut ns = media::NoiseSuppressor::new(rate).expect("denoise");
    let mut frame = vec![0i16; rate.samples_per_frame()];
    let mut run = |i: usize| {
        frame.copy_from_slice(&speech[i * 160..(i + 1) * 160]);
        ns.process(&mut frame).expect("denoise");
    };
    for i in 0..20 {
        run(i);
    }
    let n = allocations_during(|| {
        for i in 20..520 {
            run(i);
        }
    });
    assert_eq!(n, 0, "noise suppression allocated {n} times in 500 frames");
}
