//! The per-frame cost of the Twilio Media Streams path: parsing one inbound 20 ms `media`
//! frame and decoding its payload, and writing one outbound 20 ms `media` frame into a
//! reused buffer. Results are in docs/twilio.md.

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use gateway::telephony::twilio::media_stream::{self, FRAME_BYTES, Inbound};

/// A real captured inbound frame (shared/fixtures/twilio/media-stream-session.jsonl).
const MEDIA: &str = r#"{"event":"media","sequenceNumber":"4","media":{"track":"inbound","chunk":"3","timestamp":"180","payload":"/7mrpKCgpKq36DssJSAgIyo2XL2tpaGgo6m01D8tJiEgIigyTsKupqGgoqiwykYvJyIgIicvRsqwqKKgoaauwk4yKCIgISYtP9S0qaOgoaWtvVw2KiMgICUsO+i3qqSgoKSruf85KyQgICQqN2e7rKWgoKOqttw9LSUhICMpNFS/raahoKKoss5CLiYhICIoMErGr6eioKKnr8ZKMCgiIA=="},"streamSid":"MZ513f801c3087e2522bc3bf8664694197"}"#;
const SID: &str = "MZ513f801c3087e2522bc3bf8664694197";

fn bench(c: &mut Criterion) {
    let mut audio = [0u8; FRAME_BYTES];
    c.bench_function("twilio parse + decode media (20 ms)", |b| {
        b.iter(|| {
            let Ok(Inbound::Media(media)) = media_stream::parse(black_box(MEDIA)) else { unreachable!() };
            black_box(media.decode_payload(&mut audio).expect("decodes"))
        })
    });
    let mulaw = [0x7Fu8; FRAME_BYTES];
    let mut out = String::with_capacity(512);
    c.bench_function("twilio write media (20 ms)", |b| {
        b.iter(|| {
            out.clear();
            media_stream::write_media(&mut out, black_box(SID), black_box(&mulaw));
            black_box(out.len())
        })
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
