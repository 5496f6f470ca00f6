//! Answering WhatsApp Calling offers (Meta's, as captured): what the answer must say for Meta
//! to accept it, and what webrtc-rs 0.21 says when not told. Connecting to an ICE-lite,
//! DTLS-server peer, media and DTMF are proven against the simulator's Meta peer in
//! `tests/support` (`whatsapp_sim_tests.rs`).

mod common;

use common::{factory, loopback_config};
use signaling::{AnswerOptions, IceRole, PeerError, SignalingConfig};

/// A real offer of a user-initiated WhatsApp call (shared/fixtures/whatsapp/webhook-connect.json):
/// ICE-lite, an IPv4 and an IPv6 host candidate on one port with `network-cost`, no trickle,
/// an ice-pwd with `==` padding, `setup:actpass`, Opus 111 with Meta's fmtp and
/// telephone-event 126.
const META_OFFER: &str = "v=0\r
o=- 1760681506762 2 IN IP4 127.0.0.1\r
s=-\r
t=0 0\r
a=group:BUNDLE audio\r
a=msid-semantic: WMS c3867497-e6f7-4408-82b7-80dbd11b94cf\r
a=ice-lite\r
m=audio 3484 UDP/TLS/RTP/SAVPF 111 126\r
c=IN IP4 57.144.215.49\r
a=rtcp:9 IN IP4 0.0.0.0\r
a=candidate:3935165743 1 udp 2122260223 57.144.215.49 3484 typ host generation 0 network-cost 50\r
a=candidate:2617197009 1 udp 2122262783 2a03:2880:f36b:131:face:b00c:0:699c 3484 typ host generation 0 network-cost 50\r
a=ice-ufrag:AeinEGDfvqBctbtM\r
a=ice-pwd:F6/jjqL0/8/Dzluc0IoZEQ==\r
a=fingerprint:sha-256 A2:EC:E2:C4:E4:FE:75:63:39:0D:77:45:DF:70:64:BC:F9:96:73:DE:F4:92:E5:78:D0:5B:1F:8F:E7:46:D3:C6\r
a=setup:actpass\r
a=mid:audio\r
a=sendrecv\r
a=msid:c3867497-e6f7-4408-82b7-80dbd11b94cf WhatsAppTrack1\r
a=rtcp-mux\r
a=rtpmap:111 opus/48000/2\r
a=rtcp-fb:111 transport-cc\r
a=fmtp:111 maxaveragebitrate=20000;maxplaybackrate=16000;minptime=20;sprop-maxcapturerate=16000;useinbandfec=1\r
a=rtpmap:126 telephone-event/8000\r
a=maxptime:20\r
a=ptime:20\r
a=ssrc:1047224411 cname:WhatsAppAudioStream1\r
";

fn lines(sdp: &str) -> Vec<&str> {
    sdp.split("\r\n").collect()
}

fn count(sdp: &str, prefix: &str) -> usize {
    lines(sdp).iter().filter(|line| line.starts_with(prefix)).count()
}

#[tokio::test]
async fn webrtc_rs_answers_an_ice_lite_offer_as_dtls_server_unless_told_otherwise() {
    // The 0.21 core answers `active` by default — except to an ICE-lite offer, where its
    // controlling agent becomes DTLS server (`passive`). Meta refuses that answer.
    let gateway = factory(loopback_config());
    let (peer, _events, answer) = gateway.answer(META_OFFER).await.expect("answer");
    assert!(lines(&answer).contains(&"a=setup:passive"), "{answer}");
    assert_eq!(peer.roles().await.ice, Some(IceRole::Controlling));
    peer.close().await;
}

#[tokio::test]
async fn a_whatsapp_answer_is_dtls_client_with_one_sha256_fingerprint_dtmf_and_its_candidates() {
    let gateway = factory(loopback_config());
    let (peer, _events, answer) = gateway
        .answer_with(META_OFFER, &AnswerOptions::whatsapp())
        .await
        .expect("Meta's offer as captured is accepted");
    let all = lines(&answer);
    assert!(answer.ends_with("\r\n") && !answer.replace("\r\n", "").contains('\n'), "CRLF only: {answer:?}");
    assert!(all.contains(&"a=setup:active"), "{answer}");
    assert_eq!(count(&answer, "a=setup:"), 1, "{answer}");
    assert_eq!(count(&answer, "a=fingerprint:"), 1, "{answer}");
    assert_eq!(count(&answer, "a=fingerprint:sha-256 "), 1, "{answer}");
    assert_eq!(count(&answer, "m="), 1, "{answer}");
    assert!(all.contains(&"m=audio 9 UDP/TLS/RTP/SAVPF 111 126"), "{answer}");
    assert!(all.contains(&"a=rtpmap:111 opus/48000/2"), "{answer}");
    assert!(all.contains(&"a=rtpmap:126 telephone-event/8000"), "{answer}");
    assert!(all.contains(&"a=mid:audio") && all.contains(&"a=group:BUNDLE audio"), "{answer}");
    assert!(!all.contains(&"a=ice-lite"), "a full agent: {answer}");
    assert!(!answer.contains("trickle"), "{answer}");
    let port = peer.local_port().expect("open");
    assert!(
        all.iter().any(|l| l.starts_with("a=candidate:") && l.contains(&format!(" 127.0.0.1 {port} typ host"))),
        "Meta does not trickle: candidates are in the answer: {answer}"
    );
    // Meta is ICE-lite: our full agent controls.
    assert_eq!(peer.roles().await.ice, Some(IceRole::Controlling));
    peer.close().await;
}

#[tokio::test]
async fn the_whatsapp_answer_carries_the_public_ip_with_nat_1to1() {
    let gateway = factory(SignalingConfig { public_ips: vec!["203.0.113.7".parse().unwrap()], ..loopback_config() });
    let (peer, _events, answer) = gateway.answer_with(META_OFFER, &AnswerOptions::whatsapp()).await.expect("answer");
    let port = peer.local_port().expect("open");
    assert!(answer.contains(&format!(" 203.0.113.7 {port} typ host")), "{answer}");
    assert!(!answer.contains("127.0.0.1 "), "the private address leaked: {answer}");
    peer.close().await;
}

#[tokio::test]
async fn whatsapp_options_keep_opus_beside_telephone_event_whatever_the_opus_fmtp() {
    // webrtc-rs keeps only the exact codec matches of an offer when there are any;
    // telephone-event always matches exactly, so an Opus fmtp unlike ours would drop Opus.
    let offer = META_OFFER.replace(
        "a=fmtp:111 maxaveragebitrate=20000;maxplaybackrate=16000;minptime=20;sprop-maxcapturerate=16000;useinbandfec=1",
        "a=fmtp:111 minptime=10;useinbandfec=1;stereo=1",
    );
    let gateway = factory(loopback_config());
    let (peer, _events, answer) = gateway.answer_with(&offer, &AnswerOptions::whatsapp()).await.expect("answer");
    let all = lines(&answer);
    assert!(all.contains(&"m=audio 9 UDP/TLS/RTP/SAVPF 111 126"), "{answer}");
    assert!(all.contains(&"a=fmtp:111 minptime=10;useinbandfec=1;stereo=1"), "the offer's fmtp comes back: {answer}");
    peer.close().await;
}

#[tokio::test]
async fn a_full_ice_offerer_stays_in_control_on_the_whatsapp_path() {
    // Business-initiated style: no ICE-lite, so the offerer controls and we are controlled;
    // the DTLS role is still ours to choose.
    let offer = META_OFFER.replace("a=ice-lite\r\n", "");
    let gateway = factory(loopback_config());
    let (peer, _events, answer) = gateway.answer_with(&offer, &AnswerOptions::whatsapp()).await.expect("answer");
    assert!(lines(&answer).contains(&"a=setup:active"), "{answer}");
    assert_eq!(peer.roles().await.ice, Some(IceRole::Controlled));
    peer.close().await;
}

#[tokio::test]
async fn an_offer_without_opus_is_refused_on_the_whatsapp_path_too() {
    let gateway = factory(loopback_config());
    let pcmu = META_OFFER.replace(" 111 126", " 0 126").replace("a=rtpmap:111 opus/48000/2", "a=rtpmap:0 PCMU/8000");
    assert!(matches!(gateway.answer_with(&pcmu, &AnswerOptions::whatsapp()).await, Err(PeerError::NoOpus)));
}
