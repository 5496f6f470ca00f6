//! Helpers shared by the socket tests: loopback factories, a random port range, and a pump
//! that trickles candidates between two peers in one process.

#![allow(dead_code)] // each test binary uses a different subset

use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use signaling::{IceCandidate, Peer, PeerEvent, PeerEvents, PeerFactory, RtpAudio, SignalingConfig};
use tokio::time::{Instant, timeout_at};

/// A valid Opus packet: one 20 ms frame of silence (TOC 0xf8: CELT FB 20 ms, mono).
pub const OPUS_SILENCE: [u8; 3] = [0xf8, 0xff, 0xfe];

pub const LOOPBACK: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

/// Logs to the test's captured output; `RUST_LOG=signaling=debug,webrtc=trace,rtc=debug`
/// shows what the stack did (webrtc-rs logs through `log`, bridged by tracing-subscriber).
pub fn init_tracing() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
}

/// Loopback only, short timeouts so the dead-peer tests stay fast.
pub fn loopback_config() -> SignalingConfig {
    SignalingConfig {
        bind_ip: LOOPBACK,
        disconnected_timeout: Duration::from_secs(2),
        connect_timeout: Duration::from_secs(8),
        ..SignalingConfig::default()
    }
}

pub fn factory(config: SignalingConfig) -> PeerFactory {
    init_tracing();
    PeerFactory::new(config).expect("valid test config")
}

/// A random range of `len` ports high up, so parallel tests (and other developers' tests on
/// this machine) rarely meet; the pool skips ports someone else holds anyway.
pub fn random_port_range(len: u16) -> (u16, u16) {
    let first = 20_000 + rand::random::<u16>() % 30_000;
    (first, first + len - 1)
}

/// Two connected peers: `client` made the offer, `gateway` answered it.
pub struct Pair {
    pub client: Peer,
    pub client_events: PeerEvents,
    pub gateway: Peer,
    pub gateway_events: PeerEvents,
}

/// What `pump` saw besides candidates.
#[derive(Default, Debug)]
pub struct Seen {
    pub client_connected: bool,
    pub gateway_connected: bool,
    pub client_rtp: Vec<RtpAudio>,
    pub gateway_rtp: Vec<RtpAudio>,
    pub client_candidates: Vec<IceCandidate>,
    pub gateway_candidates: Vec<IceCandidate>,
}

/// Which trickled candidates reach the other side.
pub type Filter = fn(&IceCandidate) -> bool;

pub fn every_candidate(_: &IceCandidate) -> bool {
    true
}

impl Pair {
    /// Offer, answer, and apply the answer; no candidates exchanged yet.
    pub async fn negotiate(client: &PeerFactory, gateway: &PeerFactory) -> Self {
        let (client, client_events, offer) = client.offer().await.expect("offer");
        let (gateway, gateway_events, answer) = gateway.answer(&offer).await.expect("answer");
        client.apply_answer(&answer).await.expect("apply answer");
        Self { client, client_events, gateway, gateway_events }
    }

    /// Forwards candidates both ways (through the filters) and records everything else,
    /// until `done` says so or the deadline passes. Returns whether `done` was reached.
    pub async fn pump(
        &mut self,
        seen: &mut Seen,
        deadline: Instant,
        to_gateway: Filter,
        to_client: Filter,
        done: impl Fn(&Seen) -> bool,
    ) -> bool {
        while !done(seen) {
            let event = timeout_at(deadline, async {
                tokio::select! {
                    Some(event) = self.client_events.recv() => (true, event),
                    Some(event) = self.gateway_events.recv() => (false, event),
                }
            })
            .await;
            let Ok((from_client, event)) = event else {
                return false;
            };
            match (from_client, event) {
                (true, PeerEvent::LocalCandidate(c)) => {
                    seen.client_candidates.push(c.clone());
                    if to_gateway(&c) {
                        self.gateway.add_remote_candidate(c).await.expect("gateway add candidate");
                    }
                }
                (false, PeerEvent::LocalCandidate(c)) => {
                    seen.gateway_candidates.push(c.clone());
                    if to_client(&c) {
                        self.client.add_remote_candidate(c).await.expect("client add candidate");
                    }
                }
                (true, PeerEvent::Connected) => seen.client_connected = true,
                (false, PeerEvent::Connected) => seen.gateway_connected = true,
                (true, PeerEvent::Rtp(rtp)) => seen.client_rtp.push(rtp),
                (false, PeerEvent::Rtp(rtp)) => seen.gateway_rtp.push(rtp),
                (side, other) => {
                    panic!("unexpected event on the {}: {other:?}", if side { "client" } else { "gateway" })
                }
            }
        }
        true
    }

    /// Trickles everything until both sides report `Connected`.
    pub async fn connect(&mut self, seen: &mut Seen, within: Duration) {
        let connected = self
            .pump(seen, Instant::now() + within, every_candidate, every_candidate, |seen| {
                seen.client_connected && seen.gateway_connected
            })
            .await;
        assert!(connected, "peers did not connect within {within:?}: {seen:?}");
    }

    pub async fn close(&self) {
        self.client.close().await;
        self.gateway.close().await;
    }
}

/// Next event that is not a late candidate or caller audio, within `within`.
pub async fn next_verdict(events: &mut PeerEvents, within: Duration) -> Option<PeerEvent> {
    let deadline = Instant::now() + within;
    loop {
        match timeout_at(deadline, events.recv()).await {
            Ok(Some(PeerEvent::LocalCandidate(_) | PeerEvent::Rtp(_))) => {}
            Ok(event) => return event,
            Err(_) => return None,
        }
    }
}

/// Asserts a run of received packets is one contiguous 20 ms stream.
pub fn assert_contiguous_stream(packets: &[RtpAudio], at_least: usize) {
    assert!(packets.len() >= at_least, "only {} of at least {at_least} packets arrived", packets.len());
    for pair in packets.windows(2) {
        let step = pair[1].sequence.wrapping_sub(pair[0].sequence);
        assert!(step >= 1, "sequence numbers must increase: {pair:?}");
        assert_eq!(
            pair[1].timestamp.wrapping_sub(pair[0].timestamp),
            u32::from(step) * signaling::SAMPLES_PER_FRAME,
            "timestamps must advance 960 per frame"
        );
    }
    assert!(packets.iter().all(|p| p.payload.as_ref() == OPUS_SILENCE));
}

/// A UDP relay between a client and a gateway peer on loopback, standing in for the network:
/// it counts RTCP each way and can black the link out (drop everything, both peers alive).
///
/// The client is given [`UdpRelay::candidate`] as its only remote candidate; the gateway
/// learns the relay as a peer-reflexive address from the checks it forwards.
pub struct UdpRelay {
    client_side: std::sync::Arc<tokio::net::UdpSocket>,
    stats: std::sync::Arc<RelayStats>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

#[derive(Default)]
pub struct RelayStats {
    pub blackout: std::sync::atomic::AtomicBool,
    pub rtcp_to_gateway: std::sync::atomic::AtomicU64,
    pub rtcp_to_client: std::sync::atomic::AtomicU64,
}

/// RTCP (RFC 5761 demux): version 2 and a packet type of 192..=223 in the second byte;
/// SRTCP leaves both in the clear.
fn is_rtcp(packet: &[u8]) -> bool {
    packet.len() > 1 && (128..=191).contains(&packet[0]) && (192..=223).contains(&packet[1])
}

impl UdpRelay {
    pub async fn start(gateway_port: u16) -> Self {
        use std::sync::atomic::Ordering::Relaxed;
        use std::sync::{Arc, Mutex};
        use tokio::net::UdpSocket;

        let client_side = Arc::new(UdpSocket::bind((LOOPBACK, 0)).await.expect("bind relay"));
        let gateway_side = Arc::new(UdpSocket::bind((LOOPBACK, 0)).await.expect("bind relay"));
        let stats = Arc::new(RelayStats::default());
        let client_addr = Arc::new(Mutex::new(None));
        let upstream = {
            let (from, to, stats, client_addr) =
                (Arc::clone(&client_side), Arc::clone(&gateway_side), Arc::clone(&stats), Arc::clone(&client_addr));
            tokio::spawn(async move {
                let mut buf = [0u8; 2048];
                while let Ok((n, source)) = from.recv_from(&mut buf).await {
                    *client_addr.lock().expect("relay lock") = Some(source);
                    if stats.blackout.load(Relaxed) {
                        continue;
                    }
                    if is_rtcp(&buf[..n]) {
                        stats.rtcp_to_gateway.fetch_add(1, Relaxed);
                    }
                    let _ = to.send_to(&buf[..n], (LOOPBACK, gateway_port)).await;
                }
            })
        };
        let downstream = {
            let (from, to, stats) = (Arc::clone(&gateway_side), Arc::clone(&client_side), Arc::clone(&stats));
            tokio::spawn(async move {
                let mut buf = [0u8; 2048];
                while let Ok((n, _)) = from.recv_from(&mut buf).await {
                    let client = *client_addr.lock().expect("relay lock");
                    let Some(client) = client else { continue };
                    if stats.blackout.load(Relaxed) {
                        continue;
                    }
                    if is_rtcp(&buf[..n]) {
                        stats.rtcp_to_client.fetch_add(1, Relaxed);
                    }
                    let _ = to.send_to(&buf[..n], client).await;
                }
            })
        };
        Self { client_side, stats, tasks: vec![upstream, downstream] }
    }

    /// The relay's client-facing address as a host candidate for the client.
    pub fn candidate(&self) -> IceCandidate {
        let port = self.client_side.local_addr().expect("relay addr").port();
        IceCandidate {
            candidate: format!("candidate:1 1 udp 2130706431 127.0.0.1 {port} typ host"),
            sdp_mid: Some("0".to_owned()),
            sdp_m_line_index: Some(0),
            username_fragment: None,
        }
    }

    pub fn stats(&self) -> &RelayStats {
        &self.stats
    }

    pub fn set_blackout(&self, blackout: bool) {
        self.stats.blackout.store(blackout, std::sync::atomic::Ordering::Relaxed);
    }
}

impl Drop for UdpRelay {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

pub fn no_candidate(_: &IceCandidate) -> bool {
    false
}

impl Pair {
    /// Connects the pair through `relay` only: no direct candidates are exchanged.
    pub async fn connect_through(&mut self, relay: &UdpRelay, seen: &mut Seen, within: Duration) {
        self.client.add_remote_candidate(relay.candidate()).await.expect("relay candidate");
        let connected = self
            .pump(seen, Instant::now() + within, no_candidate, no_candidate, |seen| {
                seen.client_connected && seen.gateway_connected
            })
            .await;
        assert!(connected, "no connection through the relay: {seen:?}");
    }

    /// Sends `frames` 20 ms frames each way while pumping events into `seen`.
    pub async fn exchange_audio(&mut self, seen: &mut Seen, frames: usize) {
        let (client, gateway) = (self.client.clone(), self.gateway.clone());
        let sender = tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_millis(20));
            for _ in 0..frames {
                tick.tick().await;
                let _ = client.send_opus(&OPUS_SILENCE).await;
                let _ = gateway.send_opus(&OPUS_SILENCE).await;
            }
        });
        let (want_client, want_gateway) = (seen.client_rtp.len() + frames, seen.gateway_rtp.len() + frames);
        let deadline = Instant::now() + Duration::from_millis(20) * frames as u32 + Duration::from_secs(2);
        self.pump(seen, deadline, no_candidate, no_candidate, move |seen| {
            seen.client_rtp.len() >= want_client && seen.gateway_rtp.len() >= want_gateway
        })
        .await;
        sender.await.expect("sender task");
    }
}
