//! Proves that the call session's side of a recording, `RecordingTap::caller` and
//! `RecordingTap::other`, allocates nothing per frame (and does not wait: a full queue
//! drops and counts). The writer runs on another thread; counting is per thread, so
//! only the session's calls are counted.
//!
//! A counting global allocator needs `unsafe impl GlobalAlloc`, so this test binary
//! (and only it) allows `unsafe_code`; the allocator forwards to `System`.
#![allow(unsafe_code, clippy::unwrap_used)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::Arc;

use gateway::ids::{CallId, CompanyId};
use gateway::recording::{EndInfo, LinkSigner, RecordingStorage, Recordings};
use gateway::store::Store;
use media::SampleRate;
use media::test_signal::speech_like;

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

fn allocations_during(f: impl FnOnce()) -> u64 {
    let before = ALLOCATIONS.with(Cell::get);
    COUNTING.with(|c| c.set(true));
    f();
    COUNTING.with(|c| c.set(false));
    ALLOCATIONS.with(Cell::get) - before
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_recording_tap_does_not_allocate_per_frame_even_when_its_queue_is_full() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::connect(&format!("sqlite://{}?mode=rwc", dir.path().join("db").display()), 2).await.unwrap();
    let recordings = Arc::new(
        Recordings::new(
            store,
            RecordingStorage::local(&dir.path().join("recordings")).unwrap(),
            LinkSigner::new(std::sync::Arc::new(
                gateway::crypto::Sealer::from_key_list(&format!(
                    "k:{}",
                    base64::Engine::encode(&base64::engine::general_purpose::STANDARD, [3u8; 32])
                ))
                .unwrap(),
            )),
            "http://127.0.0.1".into(),
            dir.path().join("spool"),
            tokio_util::sync::CancellationToken::new(),
        )
        .unwrap(),
    );
    let tap = recordings.start(CallId::new(), CompanyId::new(), 0);
    let caller = speech_like(SampleRate::Hz16000, 2_000, 1);
    let agent = speech_like(SampleRate::Hz24000, 2_000, 2);
    let frame = |slot: u64| {
        let i = slot as usize % 100;
        tap.caller(slot, &caller[i * 320..(i + 1) * 320], SampleRate::Hz16000);
        tap.other(slot, &agent[i * 480..(i + 1) * 480], SampleRate::Hz24000);
    };
    let n = allocations_during(|| {
        // Far faster than the writer drains: the queue fills and frames are dropped.
        for slot in 0..500 {
            frame(slot);
        }
    });
    assert!(tap.dropped() > 0, "the queue filled up");
    assert_eq!(n, 0, "the tap allocated {n} times in 1000 frames");
    tap.finish(EndInfo { end_slot: 500 });
    recordings.idle().await;
}
