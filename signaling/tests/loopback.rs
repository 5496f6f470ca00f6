//! Scenario tests with real sockets on 127.0.0.1: two peers in one process, the client role
//! (`offer`) against the gateway role (`answer`), candidates trickled through channels.
//! No STUN server and no fixed port: ranges are picked at random high up.

mod common;

use std::time::Duration;

use common::{
    LOOPBACK, OPUS_SILENCE, Pair, Seen, UdpRelay, assert_contiguous_stream, every_candidate, factory, loopback_config,
    next_verdict, no_candidate, random_port_range,
};
use signaling::{IceCandidate, LostReason, PeerError, PeerEvent, SignalingConfig};
use std::sync::atomic::Ordering::Relaxed;
use tokio::time::Instant;

const CONNECT_WITHIN: Duration = Duration::from_secs(8);
const FRAMES: usize = 50;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_peers_connect_over_loopback_and_carry_opus_both_ways() {
    let gateway = factory(SignalingConfig { udp_port_range: Some(random_port_range(16)), ..loopback_config() });
    let client = factory(loopback_config());
    let mut pair = Pair::negotiate(&client, &gateway).await;

    // Nothing goes out before DTLS is up.
    assert!(!pair.client.send_opus(&OPUS_SILENCE).await.unwrap());
    assert!(!pair.gateway.send_opus(&OPUS_SILENCE).await.unwrap());

    let mut seen = Seen::default();
    pair.connect(&mut seen, CONNECT_WITHIN).await;
    assert!(pair.client.is_connected() && pair.gateway.is_connected());

    let (client, gateway_peer) = (pair.client.clone(), pair.gateway.clone());
    let sender = tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_millis(20));
        for _ in 0..FRAMES {
            tick.tick().await;
            assert!(client.send_opus(&OPUS_SILENCE).await.unwrap());
            assert!(gateway_peer.send_opus(&OPUS_SILENCE).await.unwrap());
        }
    });
    pair.pump(&mut seen, Instant::now() + Duration::from_secs(5), every_candidate, every_candidate, |seen| {
        seen.gateway_rtp.len() >= FRAMES && seen.client_rtp.len() >= FRAMES
    })
    .await;
    sender.await.unwrap();

    // The gateway hears the client, and the client hears the gateway.
    assert_contiguous_stream(&seen.gateway_rtp, FRAMES - 2);
    assert_contiguous_stream(&seen.client_rtp, FRAMES - 2);
    assert_eq!(pair.gateway.rtp_dropped(), 0);
    assert!(pair.gateway.rtp_received() >= (FRAMES - 2) as u64);
    pair.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn closing_one_side_makes_the_other_report_lost_within_the_disconnected_timeout() {
    let range = random_port_range(4);
    let gateway_factory = factory(SignalingConfig { udp_port_range: Some(range), ..loopback_config() });
    let client_factory = factory(loopback_config());
    let mut pair = Pair::negotiate(&client_factory, &gateway_factory).await;
    pair.connect(&mut Seen::default(), CONNECT_WITHIN).await;

    let closed_at = Instant::now();
    pair.client.close().await;
    pair.client.close().await; // idempotent
    assert_eq!(pair.client.local_port(), None);
    assert!(!pair.client.is_connected());
    assert!(matches!(pair.client.send_opus(&OPUS_SILENCE).await, Err(PeerError::Closed)));
    assert!(matches!(next_verdict(&mut pair.client_events, Duration::from_secs(1)).await, Some(PeerEvent::Closed)));

    let timeout = loopback_config().disconnected_timeout;
    let verdict = next_verdict(&mut pair.gateway_events, timeout * 3).await;
    let elapsed = closed_at.elapsed();
    assert!(
        matches!(verdict, Some(PeerEvent::Lost { reason: LostReason::Disconnected })),
        "got {verdict:?} after {elapsed:?}"
    );
    // The budget, plus one ICE keepalive tick of detection slack.
    assert!(elapsed <= timeout + Duration::from_millis(700), "lost only after {elapsed:?}");
    assert!(!pair.gateway.is_connected());
    assert!(!pair.gateway.send_opus(&OPUS_SILENCE).await.unwrap());

    assert_eq!(gateway_factory.ports_in_use(), Some(1));
    pair.gateway.close().await;
    pair.gateway.close().await;
    assert_eq!(gateway_factory.ports_in_use(), Some(0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_that_never_connects_is_lost_at_the_connect_timeout() {
    let gateway = factory(SignalingConfig { connect_timeout: Duration::from_millis(600), ..loopback_config() });
    let client = factory(loopback_config());
    // Negotiated, but no candidate is ever exchanged.
    let mut pair = Pair::negotiate(&client, &gateway).await;
    let verdict = next_verdict(&mut pair.gateway_events, Duration::from_secs(3)).await;
    assert!(matches!(verdict, Some(PeerEvent::Lost { reason: LostReason::ConnectTimeout })), "got {verdict:?}");
    pair.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_port_pool_runs_out_and_refills() {
    let (first, last) = random_port_range(2);
    let pool = factory(SignalingConfig { udp_port_range: Some((first, last)), ..loopback_config() });
    let (a, _a_events, _) = pool.offer().await.unwrap();
    let (b, _b_events, _) = pool.offer().await.unwrap();
    let (port_a, port_b) = (a.local_port().unwrap(), b.local_port().unwrap());
    assert_ne!(port_a, port_b);
    assert!((first..=last).contains(&port_a) && (first..=last).contains(&port_b));

    let third = pool.offer().await;
    assert!(matches!(third, Err(PeerError::NoFreePort { first: f, last: l }) if f == first && l == last), "{third:?}");

    a.close().await;
    assert_eq!(pool.ports_in_use(), Some(1));
    let (c, _c_events, _) = pool.offer().await.unwrap();
    assert_eq!(c.local_port(), Some(port_a));
    b.close().await;
    c.close().await;
    assert_eq!(pool.ports_in_use(), Some(0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_port_held_by_another_process_is_skipped() {
    let (first, last) = random_port_range(2);
    // Someone else sits on the first port (if the bind fails, someone already does).
    let _squatter = std::net::UdpSocket::bind((LOOPBACK, first)).ok();
    let pool = factory(SignalingConfig { udp_port_range: Some((first, last)), ..loopback_config() });
    let (peer, _events, _) = pool.offer().await.unwrap();
    assert_eq!(peer.local_port(), Some(last));
    assert!(matches!(pool.offer().await, Err(PeerError::NoFreePort { .. })));
    peer.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_every_handle_closes_the_peer_and_frees_its_port() {
    let range = random_port_range(1);
    let pool = factory(SignalingConfig { udp_port_range: Some(range), ..loopback_config() });
    let (peer, mut events, _) = pool.offer().await.unwrap();
    drop(peer);
    assert!(matches!(next_verdict(&mut events, Duration::from_secs(1)).await, Some(PeerEvent::Closed)));
    // The close runs on a spawned task; the port comes back once the sockets are gone.
    let deadline = Instant::now() + Duration::from_secs(2);
    while pool.ports_in_use() != Some(0) {
        assert!(Instant::now() < deadline, "port never returned");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let (again, _events, _) = pool.offer().await.unwrap();
    again.close().await;
}

/// ICE-TCP end to end: the client only learns the gateway's passive TCP candidate and the
/// gateway learns nothing (it sees the client's connection as peer-reflexive), so the only
/// pair that can work is client-active → gateway-passive over TCP.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audio_flows_over_ice_tcp_when_udp_is_not_an_option() {
    let tcp = SignalingConfig { ice_tcp: true, ..loopback_config() };
    let gateway = factory(SignalingConfig { udp_port_range: Some(random_port_range(8)), ..tcp.clone() });
    let client = factory(tcp);
    let mut pair = Pair::negotiate(&client, &gateway).await;

    fn nothing(_: &IceCandidate) -> bool {
        false
    }
    fn passive_tcp(candidate: &IceCandidate) -> bool {
        candidate.transport().as_deref() == Some("tcp") && candidate.candidate.contains("tcptype passive")
    }
    let mut seen = Seen::default();
    let connected = pair
        .pump(&mut seen, Instant::now() + CONNECT_WITHIN, nothing, passive_tcp, |seen| {
            seen.client_connected && seen.gateway_connected
        })
        .await;
    assert!(connected, "no ICE-TCP connection: {seen:?}");

    for _ in 0..10 {
        assert!(pair.client.send_opus(&OPUS_SILENCE).await.unwrap());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    pair.pump(&mut seen, Instant::now() + Duration::from_secs(3), nothing, passive_tcp, |seen| {
        seen.gateway_rtp.len() >= 10
    })
    .await;
    assert_contiguous_stream(&seen.gateway_rtp, 9);
    pair.close().await;
}

/// Browsers expect RTCP receiver reports for the audio they send (and read our sender
/// reports): the default interceptors must put both on the wire, in both directions.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sender_and_receiver_reports_flow_both_ways() {
    let (client, gateway) = (factory(loopback_config()), factory(loopback_config()));
    let mut pair = Pair::negotiate(&client, &gateway).await;
    let relay = UdpRelay::start(pair.gateway.local_port().unwrap()).await;
    let mut seen = Seen::default();
    pair.connect_through(&relay, &mut seen, CONNECT_WITHIN).await;
    // Reports go out every second once media flows.
    pair.exchange_audio(&mut seen, 75).await;
    let stats = relay.stats();
    assert!(stats.rtcp_to_client.load(Relaxed) >= 1, "no RTCP reached the client");
    assert!(stats.rtcp_to_gateway.load(Relaxed) >= 1, "no RTCP reached the gateway");
    assert_contiguous_stream(&seen.gateway_rtp, 70);
    pair.close().await;
}

/// The network goes dark while both peers live on: a short outage is ridden out, a long
/// one ends the call on both sides.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_short_blackout_is_survived_and_a_long_one_is_lost_on_both_sides() {
    let (client, gateway) = (factory(loopback_config()), factory(loopback_config()));
    let mut pair = Pair::negotiate(&client, &gateway).await;
    let relay = UdpRelay::start(pair.gateway.local_port().unwrap()).await;
    let mut seen = Seen::default();
    pair.connect_through(&relay, &mut seen, CONNECT_WITHIN).await;

    // Audio keeps flowing from both sides all along, as a call session would send it.
    let (client_peer, gateway_peer) = (pair.client.clone(), pair.gateway.clone());
    let sender = tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_millis(20));
        loop {
            tick.tick().await;
            let a = client_peer.send_opus(&OPUS_SILENCE).await;
            let b = gateway_peer.send_opus(&OPUS_SILENCE).await;
            if a.is_err() || b.is_err() {
                break;
            }
        }
    });

    // 0.8 s of nothing: with the consent check before it, usually past the ICE agent's 1 s
    // of silence (so the watchdog's grace is what saves the call), yet short enough that
    // recovery (next consent check + next agent tick) always beats the 2 s budget.
    // The exact deadline arithmetic is unit-tested in `watchdog`.
    relay.set_blackout(true);
    let survived =
        !pair.pump(&mut seen, Instant::now() + Duration::from_millis(800), no_candidate, no_candidate, |_| false).await;
    assert!(survived);
    relay.set_blackout(false);
    let before = (seen.client_rtp.len(), seen.gateway_rtp.len());
    // `pump` fails the test on `Lost`; audio must come through again on both sides.
    let resumed = pair
        .pump(&mut seen, Instant::now() + Duration::from_millis(1500), no_candidate, no_candidate, |seen| {
            seen.client_rtp.len() >= before.0 + 25 && seen.gateway_rtp.len() >= before.1 + 25
        })
        .await;
    assert!(resumed, "audio did not resume after the blackout");
    assert!(pair.client.is_connected() && pair.gateway.is_connected());

    relay.set_blackout(true);
    let dark_at = Instant::now();
    let timeout = loopback_config().disconnected_timeout;
    for (side, events) in [("gateway", &mut pair.gateway_events), ("client", &mut pair.client_events)] {
        let verdict = next_verdict(events, timeout * 3).await;
        assert!(matches!(verdict, Some(PeerEvent::Lost { reason: LostReason::Disconnected })), "{side}: {verdict:?}");
    }
    let elapsed = dark_at.elapsed();
    assert!(elapsed <= timeout + Duration::from_millis(700), "lost only after {elapsed:?}");
    pair.close().await;
    sender.await.unwrap();
}
