//! The gateway's Twilio protocol pieces against the testkit's Twilio simulator, which was
//! written separately from the protocol notes: a bare edge made only of
//! `gateway::telephony::twilio` (signature checks over the public URL, TwiML, stream
//! parsing and writers, REST hang-up) must satisfy it with no fault recorded.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use futures::StreamExt;
use gateway::telephony::twilio::media_stream::{self, FRAME_BYTES, Inbound};
use gateway::telephony::twilio::signature::{RequestValidator, SIGNATURE_HEADER, public_request_url};
use gateway::telephony::twilio::twiml::{self, Refusal, StreamUrl};
use gateway::telephony::twilio::{Hangup, RetryPolicy, TwilioRest};
use testkit::mock_twilio_rest::{MockTwilioRest, TEST_ACCOUNT_SID, TEST_AUTH_TOKEN, TEST_NUMBER, TwilioRestConfig};
use testkit::twilio_sim::{EndedBy, TwilioSim, TwilioSimConfig, Twiml, tone_hz};

const WEBHOOK_PATH: &str = "/api/webhooks/twilio/acct-1/voice";
const STREAM_PATH: &str = "/api/twilio/media-stream";

/// What the bare edge saw on its stream.
#[derive(Default)]
struct EdgeLog {
    call_sid: Option<String>,
    custom_call_id: Option<String>,
    media_frames: usize,
    last_timestamp: u64,
    digits: Vec<char>,
    marks: Vec<String>,
    stopped: bool,
}

struct Edge {
    public_base: url::Url,
    refuse: bool,
    log: Mutex<EdgeLog>,
}

impl Edge {
    fn stream_url(&self) -> StreamUrl {
        StreamUrl::new(&self.public_base, STREAM_PATH).expect("stream url")
    }
}

async fn voice(State(edge): State<Arc<Edge>>, uri: Uri, headers: HeaderMap, body: Bytes) -> Response {
    let url = public_request_url(edge.public_base.as_str(), uri.path(), uri.query());
    let signature = headers.get(SIGNATURE_HEADER).and_then(|v| v.to_str().ok()).unwrap_or_default();
    if !RequestValidator::new(TEST_AUTH_TOKEN).validate_form(&url, &body, signature) {
        return StatusCode::FORBIDDEN.into_response();
    }
    let form: Vec<(String, String)> = serde_urlencoded::from_bytes(&body).unwrap_or_default();
    let call_sid = form.iter().find(|(k, _)| k == "CallSid").map(|(_, v)| v.clone()).unwrap_or_default();
    let xml = if edge.refuse {
        twiml::refuse(Refusal::Say("Sorry, nobody can take your call."))
    } else {
        twiml::connect_stream(&edge.stream_url(), &[("callId", format!("gw-{call_sid}").as_str())])
    };
    ([("content-type", twiml::CONTENT_TYPE)], xml.expect("twiml")).into_response()
}

async fn voice_by_get(
    State(edge): State<Arc<Edge>>,
    uri: Uri,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Response {
    let url = public_request_url(edge.public_base.as_str(), uri.path(), query.as_deref());
    let signature = headers.get(SIGNATURE_HEADER).and_then(|v| v.to_str().ok()).unwrap_or_default();
    let no_params: [(&str, &str); 0] = [];
    if !RequestValidator::new(TEST_AUTH_TOKEN).validate(&url, &no_params, signature) {
        return StatusCode::FORBIDDEN.into_response();
    }
    ([("content-type", twiml::CONTENT_TYPE)], twiml::refuse(Refusal::Reject).expect("twiml")).into_response()
}

async fn stream(State(edge): State<Arc<Edge>>, headers: HeaderMap, upgrade: WebSocketUpgrade) -> Response {
    let signature = headers.get(SIGNATURE_HEADER).and_then(|v| v.to_str().ok()).unwrap_or_default();
    if !RequestValidator::new(TEST_AUTH_TOKEN).validate_stream(edge.stream_url().as_str(), signature) {
        return StatusCode::FORBIDDEN.into_response();
    }
    upgrade.max_message_size(media_stream::MAX_FRAME_BYTES).on_upgrade(move |socket| serve(edge, socket))
}

/// Plays 300 ms of 440 Hz then a mark as soon as the stream starts, echoes nothing else,
/// clears on `*`, and closes on `#`.
async fn serve(edge: Arc<Edge>, mut socket: WebSocket) {
    let mut out = String::with_capacity(4096);
    let mut audio = [0u8; FRAME_BYTES];
    let mut stream_sid = String::new();
    while let Some(Ok(Message::Text(text))) = socket.next().await {
        let mut replies = Vec::new();
        match media_stream::parse(text.as_str()).expect("Twilio's frames parse") {
            Inbound::Connected(_) => {}
            Inbound::Start(start) => {
                assert!(start.media_format.is_mulaw_8k_mono());
                stream_sid = start.stream_sid.to_string();
                let mut log = edge.log.lock().expect("log");
                log.call_sid = Some(start.call_sid.to_string());
                log.custom_call_id = start.custom_parameters.get("callId").cloned();
                drop(log);
                let tone: Vec<u8> =
                    testkit::audio::tone(8000, 440.0, 300, 0.5).iter().map(|&s| media::g711::ulaw_encode(s)).collect();
                for chunk in tone.chunks(400) {
                    out.clear();
                    media_stream::write_media(&mut out, &stream_sid, chunk);
                    replies.push(out.clone());
                }
                out.clear();
                media_stream::write_mark(&mut out, &stream_sid, "greeting");
                replies.push(out.clone());
            }
            Inbound::Media(media) => {
                assert_eq!(media.decode_payload(&mut audio).expect("160 bytes"), FRAME_BYTES);
                let mut log = edge.log.lock().expect("log");
                log.media_frames += 1;
                log.last_timestamp = media.timestamp;
            }
            Inbound::Dtmf(dtmf) => {
                let key = dtmf.key().expect("a keypad key");
                edge.log.lock().expect("log").digits.push(key);
                match key {
                    '*' => {
                        out.clear();
                        media_stream::write_media(&mut out, &stream_sid, &[0x10; 8000]);
                        replies.push(out.clone());
                        out.clear();
                        media_stream::write_mark(&mut out, &stream_sid, "long");
                        replies.push(out.clone());
                        out.clear();
                        media_stream::write_clear(&mut out, &stream_sid);
                        replies.push(out.clone());
                    }
                    '#' => {
                        let _ = socket.send(Message::Close(None)).await;
                        return;
                    }
                    _ => {}
                }
            }
            Inbound::Mark(mark) => edge.log.lock().expect("log").marks.push(mark.name.to_string()),
            Inbound::Stop(stop) => {
                assert_eq!(Some(stop.call_sid.to_string()), edge.log.lock().expect("log").call_sid);
                edge.log.lock().expect("log").stopped = true;
            }
            Inbound::Unknown { event } => panic!("unknown event {event}"),
        }
        for reply in replies {
            if socket.send(Message::Text(reply.into())).await.is_err() {
                return;
            }
        }
    }
}

/// Starts the bare edge; the simulator knows it by `http://127.0.0.1:port` unless
/// `public` names the https URL in front of it.
async fn start_edge(public: Option<&str>, refuse: bool) -> (Arc<Edge>, TwilioSimConfig) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let public_base: url::Url = public.map_or_else(|| format!("http://{addr}"), str::to_owned).parse().expect("url");
    let edge = Arc::new(Edge { public_base: public_base.clone(), refuse, log: Mutex::default() });
    let router = Router::new()
        .route(WEBHOOK_PATH, post(voice).get(voice_by_get))
        .route(STREAM_PATH, get(stream))
        .with_state(edge.clone());
    tokio::spawn(async move { axum::serve(listener, router).await });
    let webhook_url = format!("{}{}", public_base.as_str().trim_end_matches('/'), WEBHOOK_PATH);
    let mut config = TwilioSimConfig::new(webhook_url, TEST_ACCOUNT_SID, TEST_AUTH_TOKEN, TEST_NUMBER);
    if public.is_some() {
        config.connect_addr = Some(addr);
    }
    (edge, config)
}

#[tokio::test]
async fn a_simulated_call_passes_every_gateway_check_and_hears_the_gateways_audio() {
    let (edge, config) = start_edge(None, false).await;
    let call = TwilioSim::new(config).dial().await.expect("the gateway's TwiML and signatures satisfy Twilio");
    assert_eq!(call.parameters()[0], ("callId".to_owned(), format!("gw-{}", call.call_sid())));

    let greeting = call.wait_for_mark("greeting", Duration::from_secs(3)).await.expect("echoed");
    assert!(!greeting.cleared);
    let heard = call.heard();
    let first = heard.iter().find(|f| f.audio_bytes > 0).expect("heard the greeting").stream_ms;
    assert_eq!(greeting.stream_ms - first, 300, "the mark came back once its 300 ms had played");
    let hz = tone_hz(&call.heard_pcm(first + 40, first + 260));
    assert!((430.0..450.0).contains(&hz), "{hz}");

    call.press('7').await;
    call.hang_up().await;
    call.wait_ended(Duration::from_secs(2)).await.expect("ended");
    tokio::time::sleep(Duration::from_millis(100)).await;
    let log = edge.log.lock().expect("log");
    assert_eq!(log.call_sid.as_deref(), Some(call.call_sid()));
    assert_eq!(log.custom_call_id, Some(format!("gw-{}", call.call_sid())));
    assert!(log.media_frames >= 15, "{}", log.media_frames);
    assert_eq!(log.last_timestamp, 140 + 20 * (log.media_frames as u64 - 1));
    assert_eq!(log.digits, vec!['7']);
    assert_eq!(log.marks, vec!["greeting".to_owned()]);
    assert!(log.stopped);
    assert!(call.faults().is_empty(), "Twilio would have refused: {:?}", call.faults());
}

#[tokio::test]
async fn the_gateways_clear_cuts_its_audio_and_its_close_ends_the_call() {
    let (edge, config) = start_edge(None, false).await;
    let call = TwilioSim::new(config).dial().await.expect("dialled");
    call.wait_for_mark("greeting", Duration::from_secs(3)).await.expect("echoed");
    call.press('*').await;
    let long = call.wait_for_mark("long", Duration::from_secs(2)).await.expect("echoed by the clear");
    assert!(long.cleared);
    assert_eq!(call.clears().len(), 1);
    assert!(call.clears()[0].dropped_bytes > 7000, "the second of audio was dropped, not played");

    call.press('#').await;
    let end = call.wait_ended(Duration::from_secs(2)).await.expect("ended");
    assert!(matches!(end.by, EndedBy::Gateway { .. }), "{end:?}");
    assert!(call.faults().is_empty(), "{:?}", call.faults());
    assert_eq!(edge.log.lock().expect("log").marks, vec!["greeting".to_owned(), "long".to_owned()]);
}

#[tokio::test]
async fn behind_an_https_public_url_the_gateway_checks_the_public_urls() {
    let (_edge, config) = start_edge(Some("https://voice.example.com"), false).await;
    let sim = TwilioSim::new(config);
    let answer = sim.webhook().send().await.expect("sent");
    assert_eq!(answer.status, 200);
    let Ok(Twiml::Connect(stream)) = answer.twiml() else { panic!("{answer:?}") };
    assert_eq!(stream.url, format!("wss://voice.example.com{STREAM_PATH}"));
    let call = sim.open_stream(&answer.call_sid, &stream, testkit::Signing::Valid).await.expect("opened");
    call.wait_for_mark("greeting", Duration::from_secs(3)).await.expect("echoed");
    assert!(call.faults().is_empty());
}

#[tokio::test]
async fn the_gateway_refuses_unsigned_or_tampered_requests() {
    let (_edge, config) = start_edge(None, false).await;
    let sim = TwilioSim::new(config);
    assert_eq!(sim.webhook().signing(testkit::Signing::Missing).send().await.expect("sent").status, 403);
    assert_eq!(sim.webhook().signing(testkit::Signing::Wrong).send().await.expect("sent").status, 403);
    assert_eq!(sim.webhook().get().send().await.expect("sent").status, 200, "a signed GET passes");
    let answer = sim.webhook().send().await.expect("sent");
    let Ok(Twiml::Connect(stream)) = answer.twiml() else { panic!("{answer:?}") };
    let refused = sim.open_stream(&answer.call_sid, &stream, testkit::Signing::Wrong).await.err();
    assert_eq!(refused, Some(testkit::twilio_sim::StreamOpenError::Rejected { status: 403 }));
}

#[tokio::test]
async fn the_gateways_refusal_twiml_is_read_as_a_refusal() {
    let (_edge, config) = start_edge(None, true).await;
    let answer = TwilioSim::new(config).webhook().send().await.expect("sent");
    let Ok(Twiml::Refused(refusal)) = answer.twiml() else { panic!("{answer:?}") };
    assert_eq!(refusal.said, vec!["Sorry, nobody can take your call.".to_owned()]);
    assert!(refusal.hung_up);
}

#[tokio::test]
async fn the_gateway_hangs_up_through_rest_and_the_stream_stops() {
    let (edge, config) = start_edge(None, false).await;
    let rest_mock = MockTwilioRest::start(TwilioRestConfig::default()).await;
    let call = TwilioSim::new(config).with_rest(&rest_mock).dial().await.expect("dialled");
    call.wait_for_mark("greeting", Duration::from_secs(3)).await.expect("echoed");

    let rest = TwilioRest::new(reqwest::Client::new(), rest_mock.base_url().parse().expect("url"));
    let outcome = rest.hang_up(TEST_ACCOUNT_SID, TEST_AUTH_TOKEN, call.call_sid(), RetryPolicy::default()).await;
    assert_eq!(outcome.expect("hung up"), Hangup::Completed);
    assert_eq!(call.wait_ended(Duration::from_secs(2)).await.expect("ended").by, EndedBy::RestHangUp);
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(edge.log.lock().expect("log").stopped, "Twilio sent stop");
    let again = rest.hang_up(TEST_ACCOUNT_SID, TEST_AUTH_TOKEN, call.call_sid(), RetryPolicy::default()).await;
    assert_eq!(again.expect("already ended"), Hangup::AlreadyEnded);
}
