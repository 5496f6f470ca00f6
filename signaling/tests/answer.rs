//! Answering real browser offers, and what the gateway advertises. These bind a socket on
//! 127.0.0.1 per peer (gathering needs one) but exchange no traffic.

mod common;

use std::net::IpAddr;
use std::time::Duration;

use common::{OPUS_SILENCE, factory, loopback_config, random_port_range};
use signaling::{IceCandidate, PeerError, PeerEvent, PeerEvents, SignalingConfig};
use tokio::time::{Instant, timeout_at};

/// An audio-only offer as Chrome 126 creates it for `getUserMedia({audio: true})` with
/// trickle ICE: BUNDLE, header extensions, rtcp-mux/rsize, SSRC + msid, no candidates yet.
const CHROME_AUDIO_OFFER: &str = "v=0\r
o=- 7327386284734853208 2 IN IP4 127.0.0.1\r
s=-\r
t=0 0\r
a=group:BUNDLE 0\r
a=extmap-allow-mixed\r
a=msid-semantic: WMS 6d1c1b2e-2b9e-4d43-9d4c-5f0d8b7a1c33\r
m=audio 9 UDP/TLS/RTP/SAVPF 111 63 9 0 8 13 110 126\r
c=IN IP4 0.0.0.0\r
a=rtcp:9 IN IP4 0.0.0.0\r
a=ice-ufrag:q7Zr\r
a=ice-pwd:Vb1pJ0m3Kx9cRz7LwQe5Tn2H\r
a=ice-options:trickle\r
a=fingerprint:sha-256 3A:4F:9C:21:77:0B:E5:D8:6A:12:9F:C4:3B:80:55:E2:17:AA:6C:D1:90:4E:2B:F3:88:5D:C7:09:31:BE:6F:42\r
a=setup:actpass\r
a=mid:0\r
a=extmap:1 urn:ietf:params:rtp-hdrext:ssrc-audio-level\r
a=extmap:2 http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time\r
a=extmap:3 http://www.ietf.org/id/draft-holmer-rmcat-transport-wide-cc-extensions-01\r
a=extmap:4 urn:ietf:params:rtp-hdrext:sdes:mid\r
a=sendrecv\r
a=msid:6d1c1b2e-2b9e-4d43-9d4c-5f0d8b7a1c33 0b4c7c55-1f6e-4a5e-8f3a-2d9e6c1b7a90\r
a=rtcp-mux\r
a=rtcp-rsize\r
a=rtpmap:111 opus/48000/2\r
a=rtcp-fb:111 transport-cc\r
a=fmtp:111 minptime=10;useinbandfec=1\r
a=rtpmap:63 red/48000/2\r
a=fmtp:63 111/111\r
a=rtpmap:9 G722/8000\r
a=rtpmap:0 PCMU/8000\r
a=rtpmap:8 PCMA/8000\r
a=rtpmap:13 CN/8000\r
a=rtpmap:110 telephone-event/48000\r
a=rtpmap:126 telephone-event/8000\r
a=ssrc:2873195312 cname:Gx3mWq9sPz1aLk7B\r
a=ssrc:2873195312 msid:6d1c1b2e-2b9e-4d43-9d4c-5f0d8b7a1c33 0b4c7c55-1f6e-4a5e-8f3a-2d9e6c1b7a90\r
";

/// Firefox puts Opus on payload type 109 and the fingerprint at session level.
const FIREFOX_AUDIO_OFFER: &str = "v=0\r
o=mozilla...THIS_IS_SDPARTA-128.0 5036352066787429012 0 IN IP4 0.0.0.0\r
s=-\r
t=0 0\r
a=fingerprint:sha-256 0C:1D:5E:88:A2:47:9B:3F:E0:61:C8:2A:7D:94:B5:10:FF:36:4C:E9:02:8B:D7:53:6E:A1:19:C0:7F:24:9A:E8\r
a=group:BUNDLE 0\r
a=ice-options:trickle\r
a=msid-semantic:WMS *\r
m=audio 9 UDP/TLS/RTP/SAVPF 109 9 0 8 101\r
c=IN IP4 0.0.0.0\r
a=sendrecv\r
a=extmap:1 urn:ietf:params:rtp-hdrext:ssrc-audio-level\r
a=extmap:2/recvonly urn:ietf:params:rtp-hdrext:csrc-audio-level\r
a=extmap:3 urn:ietf:params:rtp-hdrext:sdes:mid\r
a=fmtp:109 maxplaybackrate=48000;stereo=1;useinbandfec=1\r
a=fmtp:101 0-15\r
a=ice-pwd:5d3e0c1f8a9b2c4d6e7f8091a2b3c4d5\r
a=ice-ufrag:9f8e7d6c\r
a=mid:0\r
a=msid:{1b2c3d4e-5f60-4718-8293-a4b5c6d7e8f9} {0a1b2c3d-4e5f-4607-8192-a3b4c5d6e7f8}\r
a=rtcp-mux\r
a=rtpmap:109 opus/48000/2\r
a=rtpmap:9 G722/8000/1\r
a=rtpmap:0 PCMU/8000\r
a=rtpmap:8 PCMA/8000\r
a=rtpmap:101 telephone-event/8000\r
a=setup:actpass\r
a=ssrc:3194725310 cname:{5e6f7081-92a3-4b4c-8d5e-6f708192a3b4}\r
";

fn lines(sdp: &str) -> Vec<&str> {
    sdp.lines().map(str::trim_end).collect()
}

fn media_section(sdp: &str) -> Vec<&str> {
    lines(sdp).into_iter().skip_while(|line| !line.starts_with("m=")).collect()
}

#[tokio::test]
async fn a_chrome_audio_offer_is_answered_with_opus() {
    let gateway = factory(loopback_config());
    let (peer, _events, answer) = gateway.answer(CHROME_AUDIO_OFFER).await.unwrap();
    let all = lines(&answer);
    let media = media_section(&answer);

    assert!(all.contains(&"a=group:BUNDLE 0"), "{answer}");
    assert_eq!(media.iter().filter(|line| line.starts_with("m=")).count(), 1, "{answer}");
    assert!(media[0].starts_with("m=audio 9 UDP/TLS/RTP/SAVPF 111"), "{answer}");
    assert!(!media[0].contains(" 0 ") && !media[0].contains(" 63"), "only Opus: {answer}");
    for expected in [
        "a=rtpmap:111 opus/48000/2",
        "a=fmtp:111 minptime=10;useinbandfec=1",
        "a=setup:active",
        "a=mid:0",
        "a=sendrecv",
        "a=rtcp-mux",
    ] {
        assert!(media.contains(&expected), "missing {expected}: {answer}");
    }
    for prefix in ["a=ice-ufrag:", "a=ice-pwd:", "a=fingerprint:sha-256 ", "a=ssrc:"] {
        assert!(all.iter().any(|line| line.starts_with(prefix)), "missing {prefix}: {answer}");
    }
    assert!(
        !all.iter().any(|line| line.starts_with("a=candidate:")),
        "trickle: the answer carries no candidates: {answer}"
    );

    // Nobody will ever connect to this peer: audio is held back, not lost in webrtc-rs.
    assert!(!peer.send_opus(&OPUS_SILENCE).await.unwrap());
    assert!(!peer.is_connected());
    peer.close().await;
}

#[tokio::test]
async fn a_firefox_offer_gets_its_own_opus_payload_type_back() {
    let gateway = factory(loopback_config());
    let (peer, _events, answer) = gateway.answer(FIREFOX_AUDIO_OFFER).await.unwrap();
    let media = media_section(&answer);
    assert!(media[0].starts_with("m=audio 9 UDP/TLS/RTP/SAVPF 109"), "{answer}");
    assert!(media.contains(&"a=rtpmap:109 opus/48000/2"), "{answer}");
    assert!(media.contains(&"a=setup:active"), "{answer}");
    peer.close().await;
}

#[tokio::test]
async fn offers_without_opus_or_that_do_not_parse_are_refused_without_taking_a_port() {
    let gateway = factory(SignalingConfig { udp_port_range: Some(random_port_range(2)), ..loopback_config() });
    let pcmu_only =
        CHROME_AUDIO_OFFER.replace("a=rtpmap:111 opus/48000/2\r\n", "").replace(" 111 63 9 0 8", " 63 9 0 8");
    assert!(matches!(gateway.answer(&pcmu_only).await, Err(PeerError::NoOpus)));
    assert!(matches!(gateway.answer("hello").await, Err(PeerError::InvalidSdp(_))));
    assert_eq!(gateway.ports_in_use(), Some(0));
}

/// Local candidates of one gathering round, up to the end-of-candidates marker.
async fn gathered(events: &mut PeerEvents) -> Vec<IceCandidate> {
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut candidates = Vec::new();
    loop {
        match timeout_at(deadline, events.recv()).await {
            Ok(Some(PeerEvent::LocalCandidate(c))) if c.is_end_of_candidates() => {
                return candidates;
            }
            Ok(Some(PeerEvent::LocalCandidate(c))) => candidates.push(c),
            Ok(Some(_)) => {}
            other => panic!("gathering did not complete: {other:?} after {candidates:?}"),
        }
    }
}

#[tokio::test]
async fn trickled_candidates_name_the_media_section_and_end_with_a_marker() {
    let gateway = factory(loopback_config());
    let (peer, mut events, answer) = gateway.answer(CHROME_AUDIO_OFFER).await.unwrap();
    let candidates = gathered(&mut events).await;
    let ufrag = answer.lines().find_map(|line| line.trim_end().strip_prefix("a=ice-ufrag:")).unwrap();
    let port = peer.local_port().unwrap();
    assert!(
        candidates.iter().any(|c| c.address() == Some(("127.0.0.1", port))
            && c.transport().as_deref() == Some("udp")
            && c.kind() == Some("host")),
        "{candidates:?}"
    );
    for c in &candidates {
        assert_eq!(c.sdp_mid.as_deref(), Some("0"));
        assert_eq!(c.sdp_m_line_index, Some(0));
        assert_eq!(c.username_fragment.as_deref(), Some(ufrag));
    }
    peer.close().await;
}

#[tokio::test]
async fn with_nat_1to1_host_candidates_carry_the_public_ip() {
    let public: IpAddr = "203.0.113.7".parse().unwrap();
    let gateway = factory(SignalingConfig { public_ips: vec![public], ice_tcp: true, ..loopback_config() });
    let (peer, mut events, _answer) = gateway.answer(CHROME_AUDIO_OFFER).await.unwrap();
    let candidates = gathered(&mut events).await;
    let port = peer.local_port().unwrap();
    assert!(
        candidates.iter().any(|c| c.address() == Some(("203.0.113.7", port)) && c.kind() == Some("host")),
        "{candidates:?}"
    );
    assert!(
        candidates.iter().all(|c| c.address().is_some_and(|(ip, _)| ip != "127.0.0.1")),
        "the private address leaked: {candidates:?}"
    );
    peer.close().await;
}

#[tokio::test]
async fn with_ice_tcp_a_passive_tcp_candidate_is_offered_on_the_peer_port() {
    let gateway =
        factory(SignalingConfig { ice_tcp: true, udp_port_range: Some(random_port_range(4)), ..loopback_config() });
    let (peer, mut events, _answer) = gateway.answer(CHROME_AUDIO_OFFER).await.unwrap();
    let candidates = gathered(&mut events).await;
    let port = peer.local_port().unwrap();
    assert!(
        candidates.iter().any(|c| c.transport().as_deref() == Some("tcp")
            && c.candidate.contains("tcptype passive")
            && c.address() == Some(("127.0.0.1", port))),
        "{candidates:?}"
    );

    // Without ICE-TCP there is none.
    let udp_only = factory(loopback_config());
    let (peer2, mut events2, _answer) = udp_only.answer(CHROME_AUDIO_OFFER).await.unwrap();
    let candidates = gathered(&mut events2).await;
    assert!(candidates.iter().all(|c| c.transport().as_deref() == Some("udp")), "{candidates:?}");
    peer.close().await;
    peer2.close().await;
}
