//! Self-tests of the WhatsApp simulator: Meta's peer and timers against the gateway's real
//! answer path (`signaling::PeerFactory::answer_with` + `AnswerOptions::whatsapp`), with a
//! small stand-in for the gateway's webhook route and Graph client (those belong to the
//! gateway crate, which depends on this one).

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use media::{OpusDecoder, OpusEncoder, OpusEncoderConfig, SampleRate};
use serde_json::{Value, json};
use signaling::{AnswerOptions, DtlsRole, IceRole, Peer, PeerEvent, PeerEvents, PeerFactory, SignalingConfig};
use tokio_util::sync::CancellationToken;

use crate::caller::utterance;
use crate::graph_calls::CallPhase;
use crate::meta_peer::MetaPeerConfig;
use crate::recorder::Recorder;
use crate::server::{self, ServerHandle};
use crate::whatsapp_sim::{CallOutcome, PlaceCall, WhatsAppSim, WhatsAppSimConfig};
use crate::whatsapp_webhook::{WebhookTarget, signature};

const APP_SECRET: &str = "sim-app-secret-0123456789abcdef";
const WAIT: Duration = Duration::from_secs(15);

/// The gateway's webhook route, reduced to what these tests need: signature check, record,
/// answer 200 (or 500 for the first `fail_first` deliveries).
#[derive(Default)]
struct Received {
    bodies: Vec<Value>,
    bad_signatures: usize,
    fail_first: usize,
}

struct Receiver {
    state: Arc<Recorder<Received>>,
    server: ServerHandle,
}

async fn receive(
    State(state): State<Arc<Recorder<Received>>>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> StatusCode {
    let expected = signature(APP_SECRET, &body);
    let signed = headers.get("x-hub-signature-256").and_then(|v| v.to_str().ok()) == Some(expected.as_str());
    state.update(|s| {
        if !signed {
            s.bad_signatures += 1;
            return StatusCode::FORBIDDEN;
        }
        if s.fail_first > 0 {
            s.fail_first -= 1;
            return StatusCode::INTERNAL_SERVER_ERROR;
        }
        s.bodies.push(serde_json::from_slice(&body).unwrap_or(Value::Null));
        StatusCode::OK
    })
}

impl Receiver {
    async fn start(fail_first: usize) -> Self {
        let state = Arc::new(Recorder::new(Received { fail_first, ..Received::default() }));
        let router = Router::new().route("/hook", post(receive)).with_state(state.clone());
        let server = ServerHandle::bind(server::ephemeral(), router, CancellationToken::new()).await.expect("bind");
        Self { state, server }
    }

    fn target(&self) -> WebhookTarget {
        WebhookTarget {
            url: format!("http://{}/hook", self.server.addr()),
            app_secret: APP_SECRET.into(),
            verify_token: "verify-me".into(),
        }
    }

    /// The `calls[0]` of every received calls webhook for `call_id`, in order.
    fn call_events(&self, call_id: &str) -> Vec<Value> {
        self.state.read(|s| {
            s.bodies
                .iter()
                .map(|b| b["entry"][0]["changes"][0]["value"]["calls"][0].clone())
                .filter(|c| c["id"] == call_id)
                .collect()
        })
    }

    async fn wait_event(&self, call_id: &str, event: &str) -> Value {
        let matches = |s: &Received| {
            s.bodies.iter().any(|b| {
                let call = &b["entry"][0]["changes"][0]["value"]["calls"][0];
                call["id"] == call_id && call["event"] == event
            })
        };
        self.state.wait_for(matches, WAIT).await.unwrap_or_else(|_| panic!("no {event} webhook for {call_id}"));
        self.call_events(call_id).into_iter().find(|c| c["event"] == event).expect("found")
    }
}

async fn sim(config: WhatsAppSimConfig, receiver: &Receiver) -> WhatsAppSim {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
    let sim = WhatsAppSim::start(config).await;
    sim.set_webhook(receiver.target());
    sim
}

/// The business side's Graph calls (the gateway's `graph` module does this for real).
async fn act(sim: &WhatsAppSim, call_id: &str, action: &str, sdp: Option<&str>) -> (u16, Value) {
    let config = sim.config();
    let mut body = json!({"messaging_product": "whatsapp", "call_id": call_id, "action": action});
    if let Some(sdp) = sdp {
        body["session"] = json!({"sdp_type": "answer", "sdp": sdp});
    }
    let url = format!("{}/v23.0/{}/calls", sim.graph().base_url(), config.parties.phone_number_id);
    let response = reqwest::Client::new()
        .post(url)
        .bearer_auth(&config.access_token)
        .json(&body)
        .send()
        .await
        .expect("graph reachable");
    let status = response.status().as_u16();
    (status, response.json().await.expect("json answer"))
}

fn gateway_factory() -> PeerFactory {
    PeerFactory::new(SignalingConfig { bind_ip: [127, 0, 0, 1].into(), ..SignalingConfig::default() }).expect("factory")
}

/// What the gateway's peer received.
#[derive(Default)]
struct GatewaySide {
    connected: bool,
    loud_frames: usize,
    frames: usize,
    digits: String,
}

/// Pumps the gateway peer's events into a recorder.
fn pump(mut events: PeerEvents) -> Arc<Recorder<GatewaySide>> {
    let seen = Arc::new(Recorder::new(GatewaySide::default()));
    let out = seen.clone();
    tokio::spawn(async move {
        let Ok(mut decoder) = OpusDecoder::new(SampleRate::Hz48000) else { return };
        let mut pcm = vec![0i16; 960 * 6];
        while let Some(event) = events.recv().await {
            match event {
                PeerEvent::Connected => out.update(|s| s.connected = true),
                PeerEvent::Rtp(rtp) => {
                    let loud = decoder.decode(&rtp.payload, &mut pcm).is_ok_and(|n| media::dbfs(&pcm[..n]) > -30.0);
                    out.update(|s| {
                        s.frames += 1;
                        s.loud_frames += usize::from(loud);
                    });
                }
                PeerEvent::Dtmf { digit } => out.update(|s| s.digits.push(digit)),
                PeerEvent::Closed => break,
                _ => {}
            }
        }
    });
    seen
}

/// Sends `pcm` as 20 ms Opus frames in real time.
fn speak(peer: Peer, pcm: Vec<i16>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let Ok(mut encoder) = OpusEncoder::new(SampleRate::Hz48000, OpusEncoderConfig::default()) else { return };
        let mut packet = vec![0u8; 1500];
        let mut tick = tokio::time::interval(Duration::from_millis(20));
        for frame in pcm.chunks(960) {
            tick.tick().await;
            let mut frame = frame.to_vec();
            frame.resize(960, 0);
            if let Ok(n) = encoder.encode(&frame, &mut packet) {
                let _ = peer.send_opus(&packet[..n]).await;
            }
        }
    })
}

fn lines(sdp: &str) -> Vec<&str> {
    sdp.split("\r\n").collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn whatsapp_meta_peer_and_the_gateway_answer_path_connect_with_the_roles_meta_requires() {
    let receiver = Receiver::start(0).await;
    let sim = sim(WhatsAppSimConfig::default(), &receiver).await;
    let call = sim.place_call().await.expect("call placed");

    // The connect webhook carries Meta's offer as captured.
    let connect = receiver.wait_event(call.call_id(), "connect").await;
    assert_eq!(connect["direction"], "USER_INITIATED");
    assert_eq!(connect["timestamp"], call.connect_timestamp().to_string());
    let offer = connect["session"]["sdp"].as_str().expect("offer").to_owned();
    assert_eq!(connect["session"]["sdp_type"], "offer");
    let offer_lines = lines(&offer);
    assert!(offer_lines.contains(&"a=ice-lite"), "{offer}");
    assert!(offer_lines.contains(&"a=setup:actpass"), "{offer}");
    assert!(offer_lines.contains(&"a=rtpmap:111 opus/48000/2"), "{offer}");
    assert!(offer_lines.contains(&"a=rtpmap:126 telephone-event/8000"), "{offer}");
    assert!(offer_lines.contains(&"a=ptime:20"), "{offer}");
    assert_eq!(offer_lines.iter().filter(|l| l.starts_with("a=fingerprint:sha-256 ")).count(), 1, "{offer}");
    assert_eq!(offer_lines.iter().filter(|l| l.starts_with("a=fingerprint:")).count(), 1, "{offer}");
    assert!(offer_lines.iter().any(|l| l.starts_with("a=ice-pwd:") && l.ends_with("==")), "{offer}");
    assert!(!offer.contains("trickle") && !offer.contains("end-of-candidates"), "{offer}");
    assert!(offer_lines.iter().any(|l| l.starts_with("a=candidate:") && l.ends_with("generation 0 network-cost 50")));

    // The gateway's answer: DTLS client, one SHA-256 fingerprint, DTMF, candidates inside.
    let (gateway, events, answer) =
        gateway_factory().answer_with(&offer, &AnswerOptions::whatsapp()).await.expect("answer");
    let seen = pump(events);
    let answer_lines = lines(&answer);
    assert!(answer_lines.contains(&"a=setup:active"), "{answer}");
    assert_eq!(answer_lines.iter().filter(|l| l.starts_with("a=fingerprint:")).count(), 1, "{answer}");
    assert!(answer_lines.iter().any(|l| l.starts_with("a=fingerprint:sha-256 ")), "{answer}");
    assert!(answer_lines.contains(&"a=rtpmap:111 opus/48000/2"), "{answer}");
    assert!(answer_lines.contains(&"a=rtpmap:126 telephone-event/8000"), "{answer}");
    assert!(answer_lines.iter().any(|l| l.starts_with("a=candidate:")), "{answer}");
    assert!(!answer_lines.contains(&"a=ice-lite"), "{answer}");

    // pre_accept: ICE and DTLS come up, with the gateway controlling and DTLS client.
    assert_eq!(act(&sim, call.call_id(), "pre_accept", Some(&answer)).await.0, 200);
    seen.wait_for(|s| s.connected, WAIT).await.expect("gateway connected");
    call.peer().wait_connected(WAIT).await.expect("Meta connected");
    let roles = gateway.roles().await;
    assert_eq!(roles.ice, Some(IceRole::Controlling));
    assert_eq!(roles.dtls, Some(DtlsRole::Client));
    let meta = call.meta_roles().await.expect("Meta roles");
    assert!(meta.ice_controlled && meta.dtls_server, "{meta:?}");
    // Meta sends nothing before accept.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(call.peer().frames_sent(), 0);
    assert_eq!(seen.read(|s| s.frames), 0);

    // accept with the same SDP; media flows both ways, key presses arrive as DTMF.
    assert_eq!(act(&sim, call.call_id(), "accept", Some(&answer)).await.0, 200);
    call.wait_accepted(WAIT).await.expect("accepted");
    let speaker = speak(gateway.clone(), utterance(1500));
    call.say(utterance(1000)).await;
    call.press_keys("12#").await;
    call.wait_until_heard(600, -30.0, WAIT).await.expect("the user hears the agent");
    seen.wait_for(|s| s.loud_frames * 20 >= 600 && s.digits.len() == 3, WAIT)
        .await
        .expect("the gateway hears the user");
    assert_eq!(seen.read(|s| s.digits.clone()), "12#");
    assert_eq!(call.peer().keys_sent(), vec!['1', '2', '#']);
    speaker.await.expect("speaker");
    assert!(sim.graph().protocol_errors().is_empty(), "{:?}", sim.graph().protocol_errors());

    // The user hangs up: terminate COMPLETED with the call's times.
    call.hang_up();
    let end = call.wait_ended(WAIT).await.expect("ended");
    assert_eq!((end.outcome, end.status.as_str()), (CallOutcome::UserHungUp, "COMPLETED"));
    let terminate = receiver.wait_event(call.call_id(), "terminate").await;
    assert_eq!(terminate["status"], "COMPLETED");
    assert!(terminate["start_time"].is_string() && terminate["end_time"].is_string() && terminate["duration"].is_u64());
    assert_eq!(
        sim.graph().call(call.call_id()).map(|c| c.phase),
        Some(CallPhase::Ended(crate::graph_calls::EndedBy::User))
    );
    // After the hang-up the business can no longer act (and is not blamed for trying).
    assert_eq!(act(&sim, call.call_id(), "terminate", None).await.0, 400);
    assert!(sim.graph().protocol_errors().is_empty());
    gateway.close().await;
}

/// The gateway sends `accept` as soon as its provider is ready, often before its DTLS
/// handshake with Meta is done; a key pressed at once must still arrive (it used to be
/// written before the SRTP keys existed and silently dropped by webrtc-rs).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn whatsapp_keys_pressed_right_after_an_early_accept_reach_the_gateway() {
    let receiver = Receiver::start(0).await;
    let sim = sim(WhatsAppSimConfig::default(), &receiver).await;
    let call = sim.place_call().await.expect("call placed");
    let connect = receiver.wait_event(call.call_id(), "connect").await;
    let offer = connect["session"]["sdp"].as_str().expect("offer").to_owned();
    let (gateway, events, answer) =
        gateway_factory().answer_with(&offer, &AnswerOptions::whatsapp()).await.expect("answer");
    let seen = pump(events);

    // pre_accept and accept back to back, the key pressed as soon as accept is answered.
    assert_eq!(act(&sim, call.call_id(), "pre_accept", Some(&answer)).await.0, 200);
    assert_eq!(act(&sim, call.call_id(), "accept", Some(&answer)).await.0, 200);
    call.wait_accepted(WAIT).await.expect("accepted");
    call.press_keys("7").await;
    let connected = call.peer().wait_connected(WAIT).await.expect("Meta connected");

    seen.wait_for(|s| s.digits == "7", WAIT).await.expect("the key press reaches the gateway");
    let first_sent = call.peer().first_sent_at().expect("Meta sent media");
    assert!(first_sent >= connected, "Meta sent RTP {:?} before DTLS was up", connected - first_sent);
    // Audio follows the key press on the same stream.
    seen.wait_for(|s| s.frames >= 5, WAIT).await.expect("audio after the key press");
    assert!(sim.graph().protocol_errors().is_empty(), "{:?}", sim.graph().protocol_errors());
    call.hang_up();
    gateway.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn whatsapp_rtp_sent_after_pre_accept_but_before_accept_is_a_protocol_error() {
    let receiver = Receiver::start(0).await;
    let sim = sim(WhatsAppSimConfig::default(), &receiver).await;
    let call = sim.place_call().await.expect("call placed");
    let (gateway, events, answer) =
        gateway_factory().answer_with(call.offer_sdp(), &AnswerOptions::whatsapp()).await.expect("answer");
    let seen = pump(events);
    assert_eq!(act(&sim, call.call_id(), "pre_accept", Some(&answer)).await.0, 200);
    seen.wait_for(|s| s.connected, WAIT).await.expect("connected");
    // Too early: the user's client would start its call timer on this.
    speak(gateway.clone(), utterance(200)).await.expect("spoke");
    sim.graph().wait_for(|s| !s.calls.protocol_errors().is_empty(), WAIT).await.expect("early RTP reported");
    let errors = sim.graph().protocol_errors();
    assert!(errors[0].contains(call.call_id()) && errors[0].contains("before its accept"), "{errors:?}");
    gateway.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn whatsapp_an_accepted_call_without_business_media_ends_failed_138021() {
    let receiver = Receiver::start(0).await;
    let config = WhatsAppSimConfig { no_media_timeout: Duration::from_secs(2), ..WhatsAppSimConfig::default() };
    let sim = sim(config, &receiver).await;
    let call = sim.place_call().await.expect("call placed");
    let (gateway, events, answer) =
        gateway_factory().answer_with(call.offer_sdp(), &AnswerOptions::whatsapp()).await.expect("answer");
    let _seen = pump(events);
    assert_eq!(act(&sim, call.call_id(), "accept", Some(&answer)).await.0, 200);
    let accepted = call.wait_accepted(WAIT).await.expect("accepted");
    let end = call.wait_ended(WAIT).await.expect("ended");
    assert_eq!((end.outcome, end.error_code), (CallOutcome::NoMedia, Some(138021)));
    assert!(end.at.duration_since(accepted) >= Duration::from_secs(2));
    let terminate = receiver.wait_event(call.call_id(), "terminate").await;
    assert_eq!(terminate["status"], "FAILED");
    assert_eq!(terminate["errors"][0]["code"], 138021);
    let value = receiver.state.read(|s| s.bodies.last().cloned()).expect("body");
    assert_eq!(value["entry"][0]["changes"][0]["value"]["errors"][0]["code"], 138021);
    gateway.close().await;
}

#[tokio::test]
async fn whatsapp_an_unanswered_call_ends_failed_without_times() {
    let receiver = Receiver::start(0).await;
    let config = WhatsAppSimConfig { no_answer_timeout: Duration::from_millis(500), ..WhatsAppSimConfig::default() };
    let sim = sim(config, &receiver).await;
    let call = sim.place_call().await.expect("call placed");
    let end = call.wait_ended(WAIT).await.expect("ended");
    assert_eq!((end.outcome, end.status.as_str()), (CallOutcome::NoAnswer, "FAILED"));
    let terminate = receiver.wait_event(call.call_id(), "terminate").await;
    assert_eq!(terminate["status"], "FAILED");
    assert!(terminate.get("start_time").is_none() && terminate.get("duration").is_none());
}

#[tokio::test]
async fn whatsapp_a_rejected_call_ends_and_takes_no_more_actions() {
    let receiver = Receiver::start(0).await;
    let sim = sim(WhatsAppSimConfig::default(), &receiver).await;
    let call = sim.place_call().await.expect("call placed");
    receiver.wait_event(call.call_id(), "connect").await;
    assert_eq!(
        act(&sim, call.call_id(), "reject", None).await,
        (200, json!({"messaging_product": "whatsapp", "success": true}))
    );
    let end = call.wait_ended(WAIT).await.expect("ended");
    assert_eq!(end.outcome, CallOutcome::BusinessRejected);
    assert_eq!(receiver.wait_event(call.call_id(), "terminate").await["status"], "FAILED");
    let (status, body) = act(&sim, call.call_id(), "accept", Some("v=0\r\n")).await;
    assert_eq!((status, body["error"]["code"].as_u64()), (400, Some(100)));
    assert_eq!(sim.graph().protocol_errors().len(), 1);
}

#[tokio::test]
async fn whatsapp_terminate_can_overtake_its_connect() {
    let receiver = Receiver::start(0).await;
    let sim = sim(WhatsAppSimConfig::default(), &receiver).await;
    let call =
        sim.place_call_with(PlaceCall { terminate_before_connect: true, ..PlaceCall::default() }).await.expect("call");
    receiver.wait_event(call.call_id(), "connect").await;
    let events: Vec<String> = receiver
        .call_events(call.call_id())
        .iter()
        .map(|c| c["event"].as_str().unwrap_or_default().to_owned())
        .collect();
    assert_eq!(events, ["terminate", "connect"]);
    // Meta no longer takes actions for it.
    let (status, _) = act(&sim, call.call_id(), "reject", None).await;
    assert_eq!(status, 400);
}

#[tokio::test]
async fn whatsapp_webhooks_are_redelivered_until_the_gateway_answers_200() {
    let receiver = Receiver::start(2).await;
    let config = WhatsAppSimConfig { delivery_backoff: Duration::from_millis(50), ..WhatsAppSimConfig::default() };
    let sim = sim(config, &receiver).await;
    let call = sim.place_call().await.expect("call placed");
    receiver.wait_event(call.call_id(), "connect").await;
    sim.wait_for_deliveries(|d| d.len() == 3, WAIT).await.expect("three deliveries");
    let statuses: Vec<Option<u16>> = sim.deliveries().iter().map(|d| d.status).collect();
    assert_eq!(statuses, [Some(500), Some(500), Some(200)]);
    // Duplicates on demand: the same bytes, the same signature.
    let again = call.redeliver_connect_concurrently(3).await;
    assert!(again.iter().all(|r| r.as_ref().is_ok_and(|r| r.status == 200)));
    assert_eq!(receiver.call_events(call.call_id()).len(), 4);
    assert_eq!(receiver.state.read(|s| s.bad_signatures), 0);
}

#[tokio::test]
async fn whatsapp_webhook_sender_misbehaves_on_request() {
    let receiver = Receiver::start(0).await;
    let sim = sim(WhatsAppSimConfig::default(), &receiver).await;
    let webhook = sim.webhook();
    let body = sim.config().parties.text_message("wamid.1", 1, "hi");
    assert_eq!(webhook.post(&body).await.expect("post").status, 200);
    assert_eq!(webhook.post_unsigned(&body).await.expect("post").status, 403);
    assert_eq!(webhook.post_wrongly_signed(&body).await.expect("post").status, 403);
    assert_eq!(receiver.state.read(|s| s.bad_signatures), 2);
    let started = Instant::now();
    let oversized = webhook.post_oversized((1 << 20) + 1).await.expect("post");
    assert_eq!(oversized.status, 200, "this stand-in has no limit");
    assert!(started.elapsed() < WAIT);
    assert_eq!(webhook.post_invalid_json().await.expect("post").status, 200);
    assert_eq!(receiver.state.read(|s| s.bodies.last().cloned()), Some(Value::Null));
}

#[tokio::test]
async fn whatsapp_graph_call_actions_need_the_number_token_and_honour_injected_faults() {
    use crate::mock_graph::CallFault;
    let receiver = Receiver::start(0).await;
    let config = WhatsAppSimConfig {
        peer: MetaPeerConfig { ipv6_candidate: false, ..MetaPeerConfig::default() },
        ..WhatsAppSimConfig::default()
    };
    let sim = sim(config, &receiver).await;
    let call = sim.place_call().await.expect("call placed");
    sim.graph().inject_call_faults(CallFault::ServerError, 1);
    sim.graph().inject_call_faults(CallFault::RateLimited, 1);
    sim.graph().inject_call_faults(CallFault::AuthError, 1);
    let mut answers = Vec::new();
    for _ in 0..4 {
        let (status, body) = act(&sim, call.call_id(), "reject", None).await;
        answers.push((status, body["error"]["code"].as_u64()));
    }
    assert_eq!(answers, [(500, Some(138004)), (429, Some(138005)), (401, Some(190)), (200, None)]);
    let url = format!("{}/v23.0/{}/calls", sim.graph().base_url(), sim.config().parties.phone_number_id);
    let body = json!({"messaging_product": "whatsapp", "call_id": call.call_id(), "action": "terminate"});
    let unauthenticated = reqwest::Client::new().post(&url).json(&body).send().await.expect("post");
    assert_eq!(unauthenticated.status().as_u16(), 400);
    let bad_token = reqwest::Client::new().post(&url).bearer_auth("nope").json(&body).send().await.expect("post");
    assert_eq!(bad_token.status().as_u16(), 401);
    let records = sim.graph().call_actions();
    assert_eq!(records.len(), 6);
    assert!(records.windows(2).all(|w| w[0].at <= w[1].at));
    assert_eq!(records[3].token.as_deref(), Some(sim.config().access_token.as_str()));
    assert_eq!(records[3].action.as_deref(), Some("reject"));
}
