//! A measurement, not a check: CPU cost of the signaling layer per call. Ignored by default;
//! run it on purpose, in release, on an otherwise idle machine:
//!
//! ```text
//! PAIRS=40 SECONDS=10 cargo test -p signaling --release --test load_probe -- --ignored --nocapture
//! ```
//!
//! Each pair is a client peer and a gateway peer on loopback, both webrtc-rs, each sending
//! one 20 ms Opus packet every 20 ms. The gateway's share is half the pair's cost (the two
//! sides do the same work). Codec, resampling and the AI provider are not included.

mod common;

use std::time::Duration;

use common::{OPUS_SILENCE, Pair, Seen, factory, loopback_config};
use signaling::PeerEvent;
use tokio::time::Instant;

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|value| value.parse().ok()).unwrap_or(default)
}

/// User + system CPU time of this process, from /proc (Linux).
fn cpu_time() -> Option<Duration> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the command name, which is parenthesised and may contain spaces.
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    // The kernel's USER_HZ is 100 on every mainstream Linux build.
    Some(Duration::from_millis(ticks * 10))
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "measurement: run on purpose, in release"]
async fn signaling_cpu_per_call() {
    let pairs = env_or("PAIRS", 20) as usize;
    let seconds = env_or("SECONDS", 10);
    let client = factory(loopback_config());
    let gateway = factory(loopback_config());

    let setup_start = Instant::now();
    let mut connected = Vec::with_capacity(pairs);
    for _ in 0..pairs {
        let mut pair = Pair::negotiate(&client, &gateway).await;
        pair.connect(&mut Seen::default(), Duration::from_secs(10)).await;
        connected.push(pair);
    }
    let setup = setup_start.elapsed() / pairs as u32;

    let mut senders = Vec::new();
    let mut drains = Vec::new();
    for pair in connected {
        senders.push(pair.client.clone());
        senders.push(pair.gateway.clone());
        let Pair { client, mut client_events, gateway, mut gateway_events } = pair;
        drains.push(tokio::spawn(async move {
            let mut received = 0u64;
            loop {
                let event = tokio::select! {
                    Some(event) = client_events.recv() => event,
                    Some(event) = gateway_events.recv() => event,
                    else => break,
                };
                match event {
                    PeerEvent::Rtp(_) => received += 1,
                    PeerEvent::Closed => {}
                    PeerEvent::Lost { reason } => panic!("lost under load: {reason:?}"),
                    _ => {}
                }
            }
            drop((client, gateway));
            received
        }));
    }

    let cpu_start = cpu_time().expect("/proc/self/stat");
    let wall_start = Instant::now();
    let mut tick = tokio::time::interval(Duration::from_millis(20));
    let frames = seconds * 50;
    for _ in 0..frames {
        tick.tick().await;
        for peer in &senders {
            let _ = peer.send_opus(&OPUS_SILENCE).await;
        }
    }
    let cpu = cpu_time().expect("/proc/self/stat") - cpu_start;
    let wall = wall_start.elapsed();

    for peer in &senders {
        peer.close().await;
    }
    let mut received = 0;
    for drain in drains {
        received += drain.await.expect("drain task");
    }
    let expected = frames * senders.len() as u64;
    let core_share_per_pair = cpu.as_secs_f64() / wall.as_secs_f64() / pairs as f64;
    let per_gateway_peer = core_share_per_pair / 2.0;
    println!(
        "pairs={pairs} setup_per_pair={setup:?} cpu={cpu:?} over {wall:?} \
         received={received}/{expected} => one core per pair {:.2}%, per gateway peer {:.2}% \
         => ~{:.0} calls per core for signaling alone",
        core_share_per_pair * 100.0,
        per_gateway_peer * 100.0,
        1.0 / per_gateway_peer
    );
}
