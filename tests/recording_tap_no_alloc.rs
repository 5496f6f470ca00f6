//! Proves that the call session's side of a recording, `RecordingTap::caller`,
//! `RecordingTap::other` and `RecordingTap::other_opus`, allocates nothing per frame (and does not wait: a full queue
//! drops and counts). The writer runs on another thread; counting is per thread, so
//! only the session's calls are counted.
//!
//! A counting global allocator needs `unsafe impl GlobalAlloc`, so this test binary
//! (and only it) allows `unsafe_code`; the allocator forwards to `System`.
#![allow(unsafe_code, clippy::unwrap_used)]

use std::sync::Arc;

use gateway::ids::{CallId, CompanyId};
use gateway::recording::{EndInfo, LinkSigner, RecordingStorage, Recordings};
use gateway::store::Store;
use media::SampleRate;
use media::test_signal::speech_like;

testkit::counting_allocator!();

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
    // The agent's packets as a WebRTC caller is sent them, every other slot.
    let mut encoder = media::OpusEncoder::new(SampleRate::Hz24000, media::OpusEncoderConfig::default()).unwrap();
    let packets: Vec<Vec<u8>> = agent
        .chunks_exact(480)
        .map(|pcm| {
            let mut packet = [0u8; media::MAX_OPUS_PACKET];
            let n = encoder.encode(pcm, &mut packet).unwrap();
            packet[..n].to_vec()
        })
        .collect();
    let frame = |slot: u64| {
        let i = slot as usize % 100;
        tap.caller(slot, &caller[i * 320..(i + 1) * 320], SampleRate::Hz16000);
        if slot.is_multiple_of(2) {
            tap.other(slot, &agent[i * 480..(i + 1) * 480], SampleRate::Hz24000);
        } else {
            tap.other_opus(slot, &packets[i]);
        }
    };
    let (n, ()) = allocations_during(|| {
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
