//! The Twilio simulator against a tiny stand-in for the gateway's side: an axum server
//! that checks the webhook and upgrade signatures over its public URL, answers TwiML, and
//! lets each test send `media`/`mark`/`clear` (or nonsense) and close the socket, while it
//! records every frame the simulator sends with its arrival time.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get};
use base64::Engine;
use futures::{SinkExt, StreamExt};
use serde_json::Value;
use tokio::sync::mpsc;

use crate::mock_twilio_rest::{MockTwilioRest, TEST_ACCOUNT_SID, TEST_AUTH_TOKEN, TEST_NUMBER, TwilioRestConfig};
use crate::recorder::Recorder;
use crate::twilio_sim::{
    EndedBy, PhoneCall, Signing, StreamOpenError, TwilioSim, TwilioSimConfig, Twiml, tone_hz, utterance_8k,
};
use crate::twilio_webhook::signature;

const PARAMETERS: [(&str, &str); 2] = [("callId", "call-1"), ("note", "Tom & \"Jerry\"")];

/// A webhook as the stand-in received it: signature header, form (or query), status answered.
type SeenWebhook = (Option<String>, Vec<(String, String)>, u16);

#[derive(Default)]
struct Seen {
    webhooks: Vec<SeenWebhook>,
    upgrades: Vec<(Option<String>, u16)>,
    /// Every text frame from the simulator, with when it arrived.
    frames: Vec<(Instant, Value)>,
    closed: bool,
}

struct FakeGateway {
    /// The URL Twilio knows the gateway by (`http://127.0.0.1:port` unless a test
    /// pretends to be behind a public https name).
    public_base: String,
    seen: Recorder<Seen>,
    socket: Mutex<Option<mpsc::Sender<Message>>>,
    answer: Mutex<Option<String>>,
}

impl FakeGateway {
    async fn start(public_base: Option<&str>) -> (Arc<Self>, SocketAddr) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let gateway = Arc::new(Self {
            public_base: public_base.map_or_else(|| format!("http://{addr}"), str::to_owned),
            seen: Recorder::new(Seen::default()),
            socket: Mutex::new(None),
            answer: Mutex::new(None),
        });
        let router =
            Router::new().route("/voice", any(voice)).route("/stream", get(stream)).with_state(gateway.clone());
        tokio::spawn(async move { axum::serve(listener, router).await });
        (gateway, addr)
    }

    fn config(&self) -> TwilioSimConfig {
        TwilioSimConfig::new(format!("{}/voice", self.public_base), TEST_ACCOUNT_SID, TEST_AUTH_TOKEN, TEST_NUMBER)
    }

    fn stream_url(&self) -> String {
        format!("{}/stream", self.public_base.replacen("http", "ws", 1))
    }

    async fn send(&self, text: String) {
        let socket = self.socket.lock().expect("socket").clone().expect("the stream is open");
        socket.send(Message::Text(text.into())).await.expect("socket task alive");
    }

    async fn send_binary(&self) {
        let socket = self.socket.lock().expect("socket").clone().expect("the stream is open");
        socket.send(Message::Binary(vec![0xFF; 160].into())).await.expect("socket task alive");
    }

    async fn close(&self) {
        let socket = self.socket.lock().expect("socket").clone().expect("the stream is open");
        socket.send(Message::Close(None)).await.expect("socket task alive");
    }

    fn frames(&self) -> Vec<(Instant, Value)> {
        self.seen.read(|s| s.frames.clone())
    }

    fn events(&self, event: &str) -> Vec<Value> {
        self.frames().into_iter().map(|(_, v)| v).filter(|v| v["event"] == event).collect()
    }

    async fn wait_for(&self, condition: impl FnMut(&Seen) -> bool) {
        self.seen.wait_for(condition, Duration::from_secs(5)).await.expect("the gateway side saw it in time");
    }
}

async fn voice(
    State(gateway): State<Arc<FakeGateway>>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let header = headers.get("x-twilio-signature").and_then(|v| v.to_str().ok()).map(str::to_owned);
    let (url, form): (String, Vec<(String, String)>) = match &query {
        Some(query) => {
            (format!("{}/voice?{query}", gateway.public_base), serde_urlencoded::from_str(query).unwrap_or_default())
        }
        None => (format!("{}/voice", gateway.public_base), serde_urlencoded::from_bytes(&body).unwrap_or_default()),
    };
    let params = if query.is_some() { Vec::new() } else { form.clone() };
    let response = match &header {
        None => (StatusCode::BAD_REQUEST, "no signature").into_response(),
        Some(header) if *header != signature(TEST_AUTH_TOKEN, &url, &params) => {
            (StatusCode::FORBIDDEN, "bad signature").into_response()
        }
        Some(_) => {
            let answer = gateway.answer.lock().expect("answer").clone();
            let twiml = answer.unwrap_or_else(|| {
                let parameters: String = PARAMETERS
                    .iter()
                    .map(|(n, v)| format!(r#"<Parameter name="{n}" value="{}"/>"#, v.replace('&', "&amp;").replace('"', "&quot;")))
                    .collect();
                format!(
                    r#"<?xml version="1.0" encoding="UTF-8"?><Response><Connect><Stream url="{}">{parameters}</Stream></Connect></Response>"#,
                    gateway.stream_url()
                )
            });
            ([("content-type", "text/xml")], twiml).into_response()
        }
    };
    let status = response.status().as_u16();
    gateway.seen.update(|s| s.webhooks.push((header, form, status)));
    response
}

async fn stream(State(gateway): State<Arc<FakeGateway>>, headers: HeaderMap, upgrade: WebSocketUpgrade) -> Response {
    let header = headers.get("x-twilio-signature").and_then(|v| v.to_str().ok()).map(str::to_owned);
    let expected = signature(TEST_AUTH_TOKEN, &gateway.stream_url(), &[]);
    if header.as_deref() != Some(expected.as_str()) {
        gateway.seen.update(|s| s.upgrades.push((header, 403)));
        return StatusCode::FORBIDDEN.into_response();
    }
    gateway.seen.update(|s| s.upgrades.push((header, 101)));
    upgrade.on_upgrade(move |socket| serve_socket(gateway, socket))
}

async fn serve_socket(gateway: Arc<FakeGateway>, socket: WebSocket) {
    let (mut sink, mut stream) = socket.split();
    let (tx, mut rx) = mpsc::channel::<Message>(64);
    *gateway.socket.lock().expect("socket") = Some(tx);
    tokio::spawn(async move {
        while let Some(message) = rx.recv().await {
            let close = matches!(message, Message::Close(_));
            if sink.send(message).await.is_err() || close {
                break;
            }
        }
    });
    while let Some(Ok(message)) = stream.next().await {
        if let Message::Text(text) = message {
            let value: Value = serde_json::from_str(text.as_str()).expect("the simulator sends JSON");
            gateway.seen.update(|s| s.frames.push((Instant::now(), value)));
        }
    }
    gateway.seen.update(|s| s.closed = true);
}

fn mulaw_tone(hz: f32, ms: u32) -> Vec<u8> {
    crate::audio::tone(8000, hz, ms, 0.5).iter().map(|&s| media::g711::ulaw_encode(s)).collect()
}

fn media_message(stream_sid: &str, audio: &[u8]) -> String {
    let payload = base64::engine::general_purpose::STANDARD.encode(audio);
    format!(r#"{{"event":"media","streamSid":"{stream_sid}","media":{{"payload":"{payload}"}}}}"#)
}

fn mark_message(stream_sid: &str, name: &str) -> String {
    format!(r#"{{"event":"mark","streamSid":"{stream_sid}","mark":{{"name":"{name}"}}}}"#)
}

async fn dial(gateway: &FakeGateway) -> PhoneCall {
    let call = TwilioSim::new(gateway.config()).dial().await.expect("dialled");
    gateway.wait_for(|s| s.frames.len() >= 2).await;
    call
}

fn number(value: &Value) -> u64 {
    value.as_str().expect("string-typed").parse().expect("a number")
}

#[tokio::test]
async fn a_call_posts_a_signed_webhook_then_streams_start_and_media_every_20_ms() {
    let (gateway, _) = FakeGateway::start(None).await;
    let call = dial(&gateway).await;

    let (signature_header, form, status) = gateway.seen.read(|s| s.webhooks[0].clone());
    assert_eq!(status, 200, "the webhook signature verifies over the configured URL");
    assert!(signature_header.is_some());
    let field = |name: &str| form.iter().find(|(n, _)| n == name).map(|(_, v)| v.clone());
    assert_eq!(field("CallSid").as_deref(), Some(call.call_sid()));
    assert_eq!(field("AccountSid").as_deref(), Some(TEST_ACCOUNT_SID));
    assert_eq!(field("CallStatus").as_deref(), Some("ringing"));
    assert_eq!(field("To").as_deref(), Some(TEST_NUMBER));
    assert_eq!(field("Called").as_deref(), Some(TEST_NUMBER));
    assert_eq!(gateway.seen.read(|s| s.upgrades.clone()).len(), 1);

    gateway.wait_for(|s| s.frames.iter().filter(|(_, v)| v["event"] == "media").count() >= 60).await;
    call.press('5').await;
    call.hang_up().await;
    gateway.wait_for(|s| s.closed).await;

    let frames = gateway.frames();
    assert_eq!(frames[0].1, serde_json::json!({"event": "connected", "protocol": "Call", "version": "1.0.0"}));
    let start = &frames[1].1;
    assert_eq!(start["event"], "start");
    assert_eq!(start["sequenceNumber"], "1");
    assert_eq!(start["streamSid"], call.stream_sid());
    assert_eq!(start["start"]["streamSid"], call.stream_sid());
    assert_eq!(start["start"]["callSid"], call.call_sid());
    assert_eq!(start["start"]["accountSid"], TEST_ACCOUNT_SID);
    assert_eq!(start["start"]["tracks"], serde_json::json!(["inbound"]));
    assert_eq!(
        start["start"]["mediaFormat"],
        serde_json::json!({"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1})
    );
    assert_eq!(start["start"]["customParameters"], serde_json::json!({"callId": "call-1", "note": "Tom & \"Jerry\""}));

    // One sequence for every message after `connected`; media chunks from 1, +20 ms each.
    for (n, (_, frame)) in frames.iter().enumerate().skip(1) {
        assert_eq!(number(&frame["sequenceNumber"]), n as u64, "{frame}");
    }
    let media: Vec<&(Instant, Value)> = frames.iter().filter(|(_, v)| v["event"] == "media").collect();
    for (n, (_, frame)) in media.iter().enumerate() {
        assert_eq!(number(&frame["media"]["chunk"]), n as u64 + 1);
        assert_eq!(number(&frame["media"]["timestamp"]), 140 + 20 * n as u64);
        assert_eq!(frame["media"]["track"], "inbound");
        let payload = base64::engine::general_purpose::STANDARD
            .decode(frame["media"]["payload"].as_str().expect("payload"))
            .expect("base64");
        assert_eq!(payload, vec![0xFF; 160], "silence while the caller says nothing");
    }
    // Real time: 50 frames take about a second.
    assert!(media.len() >= 51);
    let span = media[50].0 - media[0].0;
    // (Generous bounds: the machine running the tests may be busy.)
    assert!((Duration::from_millis(850)..Duration::from_millis(1300)).contains(&span), "{span:?}");

    let dtmf = gateway.events("dtmf");
    assert_eq!(dtmf.len(), 1);
    assert_eq!(dtmf[0]["dtmf"], serde_json::json!({"track": "inbound_track", "digit": "5"}));
    assert!(dtmf[0].get("media").is_none() && dtmf[0]["streamSid"] == call.stream_sid());
    let (_, last) = frames.last().expect("frames");
    assert_eq!(last["event"], "stop");
    assert_eq!(last["stop"], serde_json::json!({"accountSid": TEST_ACCOUNT_SID, "callSid": call.call_sid()}));
    assert_eq!(call.wait_ended(Duration::from_secs(2)).await.expect("ended").by, EndedBy::Caller);
    assert!(call.faults().is_empty());
}

#[tokio::test]
async fn what_the_caller_says_goes_out_as_mulaw_in_the_media_frames() {
    let (gateway, _) = FakeGateway::start(None).await;
    let call = dial(&gateway).await;
    let speech = utterance_8k(400);
    call.say(&speech).await;
    gateway.wait_for(|s| s.frames.iter().filter(|(_, v)| v["event"] == "media").count() >= 40).await;
    call.hang_up().await;

    let started = call.record().speech_started;
    assert_eq!(started.len(), 1);
    let sent: Vec<u8> = gateway
        .events("media")
        .iter()
        .filter(|frame| number(&frame["media"]["timestamp"]) >= started[0])
        .flat_map(|frame| {
            base64::engine::general_purpose::STANDARD
                .decode(frame["media"]["payload"].as_str().expect("payload"))
                .expect("base64")
        })
        .collect();
    let expected: Vec<u8> = speech.iter().map(|&s| media::g711::ulaw_encode(s)).collect();
    assert_eq!(&sent[..expected.len()], expected.as_slice(), "the utterance, byte for byte, from its first frame");
    assert!(sent[expected.len()..].iter().all(|&b| b == 0xFF), "then silence");
}

#[tokio::test]
async fn gateway_audio_plays_in_real_time_and_each_mark_is_echoed_after_its_audio() {
    let (gateway, _) = FakeGateway::start(None).await;
    let call = dial(&gateway).await;
    let sid = call.stream_sid().to_owned();
    // Two messages of different sizes, as the gateway may batch its audio.
    let tone = mulaw_tone(440.0, 600);
    gateway.send(media_message(&sid, &tone[..1600])).await;
    gateway.send(media_message(&sid, &tone[1600..])).await;
    gateway.send(mark_message(&sid, "first")).await;
    gateway.send(media_message(&sid, &mulaw_tone(1000.0, 400))).await;
    gateway.send(mark_message(&sid, "second")).await;

    let second = call.wait_for_mark("second", Duration::from_secs(3)).await.expect("echoed");
    let first = call.wait_for_mark("first", Duration::from_secs(1)).await.expect("echoed");
    let heard = call.heard();
    let audio_start = heard.iter().find(|f| f.audio_bytes > 0).expect("heard audio").stream_ms;
    assert_eq!(first.stream_ms - audio_start, 600, "after 600 ms of audio at 8 bytes/ms");
    assert_eq!(second.stream_ms - audio_start, 1000);
    assert!(!first.cleared && !second.cleared);
    assert_eq!(call.heard_audio_ms(), 1000);
    let loud = call.loud_frames(-20.0).len();
    assert!((48..=51).contains(&loud), "about 50 loud frames of tone, got {loud}");

    // What was heard, and when: 440 Hz then 1 kHz.
    let low = tone_hz(&call.heard_pcm(audio_start + 100, audio_start + 500));
    let high = tone_hz(&call.heard_pcm(audio_start + 700, audio_start + 900));
    assert!((430.0..450.0).contains(&low), "{low}");
    assert!((980.0..1020.0).contains(&high), "{high}");

    // The echoes reached the gateway, in order, with Twilio's fields.
    gateway.wait_for(|s| s.frames.iter().filter(|(_, v)| v["event"] == "mark").count() == 2).await;
    let marks = gateway.events("mark");
    assert_eq!(marks[0]["mark"]["name"], "first");
    assert_eq!(marks[1]["mark"]["name"], "second");
    assert_eq!(marks[0]["streamSid"], sid.as_str());
    assert!(marks[0]["sequenceNumber"].is_string());
    assert!(call.faults().is_empty(), "{:?}", call.faults());
}

#[tokio::test]
async fn clear_drops_the_queued_audio_at_once_and_echoes_the_pending_marks() {
    let (gateway, _) = FakeGateway::start(None).await;
    let call = dial(&gateway).await;
    let sid = call.stream_sid().to_owned();
    gateway.send(media_message(&sid, &mulaw_tone(440.0, 2000))).await;
    gateway.send(mark_message(&sid, "a")).await;
    gateway.send(media_message(&sid, &mulaw_tone(440.0, 1000))).await;
    gateway.send(mark_message(&sid, "b")).await;

    call.wait_until_heard(500, Duration::from_secs(2)).await.expect("playing");
    let sent_clear = Instant::now();
    gateway.send(format!(r#"{{"event":"clear","streamSid":"{sid}"}}"#)).await;
    call.wait_for(|r| !r.clears.is_empty(), Duration::from_secs(1)).await.expect("clear received");

    let clear = &call.clears()[0];
    assert_eq!(clear.marks, vec!["a".to_owned(), "b".to_owned()]);
    let dropped_ms = clear.dropped_bytes as u64 / 8;
    assert!((2000..=2520).contains(&dropped_ms), "dropped {dropped_ms} ms");
    let marks = call.marks();
    assert!(marks.iter().all(|m| m.cleared && m.stream_ms == clear.stream_ms), "{marks:?}");
    gateway.wait_for(|s| s.frames.iter().filter(|(_, v)| v["event"] == "mark").count() == 2).await;
    let echoed_in = gateway.frames().iter().rfind(|(_, v)| v["event"] == "mark").map(|(at, _)| *at - sent_clear);
    assert!(echoed_in.is_some_and(|d| d < Duration::from_millis(250)), "{echoed_in:?}");

    // Nothing more plays: the agent was cut where the clear landed.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let heard = call.heard();
    let last_audio = heard.iter().rfind(|f| f.audio_bytes > 0).expect("heard audio");
    assert!(last_audio.stream_ms <= clear.stream_ms, "{} > {}", last_audio.stream_ms, clear.stream_ms);
    assert!((480..=1000).contains(&call.heard_audio_ms()), "{}", call.heard_audio_ms());
    assert_eq!(call.heard_audio_ms() + dropped_ms, 3000, "every byte was either played or dropped");
}

#[tokio::test]
async fn messages_twilio_refuses_are_recorded_with_their_error_codes() {
    let (gateway, _) = FakeGateway::start(None).await;
    let call = dial(&gateway).await;
    let sid = call.stream_sid().to_owned();
    gateway.send_binary().await;
    gateway
        .send(format!(r#"{{"event":"media","streamSid":"{sid}","sequenceNumber":"1","media":{{"payload":"/w=="}}}}"#))
        .await;
    gateway.send(media_message("MZ00000000000000000000000000000000", &[0xFF; 160])).await;
    gateway.send(format!(r#"{{"event":"stop","streamSid":"{sid}"}}"#)).await;
    gateway.send("hello".to_owned()).await;
    call.wait_for(|r| r.faults.len() == 5, Duration::from_secs(2)).await.expect("faults recorded");
    let codes: Vec<u32> = call.faults().iter().map(|f| f.fault.code).collect();
    assert_eq!(codes, vec![31950, 31951, 31951, 31951, 31951]);
    assert_eq!(call.record().media_messages, 0, "refused audio is not played");
}

#[tokio::test]
async fn the_gateway_closing_the_socket_ends_the_call() {
    let (gateway, _) = FakeGateway::start(None).await;
    let call = dial(&gateway).await;
    gateway.close().await;
    let end = call.wait_ended(Duration::from_secs(2)).await.expect("ended");
    assert!(matches!(end.by, EndedBy::Gateway { .. }), "{end:?}");
    assert!(gateway.events("stop").is_empty(), "Twilio sends no stop when the app closes");
}

#[tokio::test]
async fn a_rest_hang_up_sends_stop_and_closes_the_stream() {
    let (gateway, _) = FakeGateway::start(None).await;
    let rest = MockTwilioRest::start(TwilioRestConfig::default()).await;
    let call = TwilioSim::new(gateway.config()).with_rest(&rest).dial().await.expect("dialled");
    let url = format!("{}/2010-04-01/Accounts/{TEST_ACCOUNT_SID}/Calls/{}.json", rest.base_url(), call.call_sid());
    let response = reqwest::Client::new()
        .post(&url)
        .basic_auth(TEST_ACCOUNT_SID, Some(TEST_AUTH_TOKEN))
        .form(&[("Status", "completed")])
        .send()
        .await
        .expect("posted");
    assert_eq!(response.status(), 200);
    let end = call.wait_ended(Duration::from_secs(2)).await.expect("ended");
    assert_eq!(end.by, EndedBy::RestHangUp);
    gateway.wait_for(|s| s.closed).await;
    assert_eq!(gateway.events("stop").len(), 1);
    assert_eq!(rest.hangups()[0].call_sid, call.call_sid());
}

#[tokio::test]
async fn a_caller_who_hangs_up_is_no_longer_live_at_the_rest_api() {
    let (gateway, _) = FakeGateway::start(None).await;
    let rest = MockTwilioRest::start(TwilioRestConfig::default()).await;
    let call = TwilioSim::new(gateway.config()).with_rest(&rest).dial().await.expect("dialled");
    call.hang_up().await;
    call.wait_ended(Duration::from_secs(2)).await.expect("ended");
    let url = format!("{}/2010-04-01/Accounts/{TEST_ACCOUNT_SID}/Calls/{}.json", rest.base_url(), call.call_sid());
    let response = reqwest::Client::new()
        .post(&url)
        .basic_auth(TEST_ACCOUNT_SID, Some(TEST_AUTH_TOKEN))
        .form(&[("Status", "completed")])
        .send()
        .await
        .expect("posted");
    assert_eq!(response.status(), 404);
}

#[tokio::test]
async fn webhooks_can_go_unsigned_badly_signed_replayed_customised_or_by_get() {
    let (gateway, _) = FakeGateway::start(None).await;
    let sim = TwilioSim::new(gateway.config());
    assert_eq!(sim.webhook().signing(Signing::Missing).send().await.expect("sent").status, 400);
    assert_eq!(sim.webhook().signing(Signing::Wrong).send().await.expect("sent").status, 403);
    assert_eq!(sim.webhook().signing(Signing::Exactly("abc".into())).send().await.expect("sent").status, 403);

    let first = sim.webhook().send().await.expect("sent");
    let replay = sim.webhook().call_sid(&first.call_sid).send().await.expect("sent");
    assert_eq!(replay.call_sid, first.call_sid);
    let custom = sim.webhook().set("From", "+442071838750").remove("StirVerstat").send().await.expect("sent");
    assert_eq!(custom.status, 200, "a changed form is signed as sent");
    let by_get = sim.webhook().get().send().await.expect("sent");
    assert_eq!(by_get.status, 200, "a GET is signed over the URL with its query");

    let seen = gateway.seen.read(|s| s.webhooks.clone());
    let custom_form = &seen[5].1;
    assert!(custom_form.iter().any(|(n, v)| n == "From" && v == "+442071838750"));
    assert!(!custom_form.iter().any(|(n, _)| n == "StirVerstat"));
    assert!(seen[6].1.iter().any(|(n, _)| n == "CallSid"), "GET parameters are in the query");
}

#[tokio::test]
async fn a_badly_signed_stream_upgrade_is_refused_by_the_gateway() {
    let (gateway, _) = FakeGateway::start(None).await;
    let sim = TwilioSim::new(gateway.config());
    let answer = sim.webhook().send().await.expect("sent");
    let Ok(Twiml::Connect(stream)) = answer.twiml() else { panic!("{answer:?}") };
    for signing in [Signing::Missing, Signing::Wrong] {
        let refused = sim.open_stream(&answer.call_sid, &stream, signing).await.err();
        assert_eq!(refused, Some(StreamOpenError::Rejected { status: 403 }));
    }
    let call = sim.open_stream(&answer.call_sid, &stream, Signing::Valid).await.expect("opened");
    assert_eq!(call.parameters()[0], ("callId".to_owned(), "call-1".to_owned()));
}

#[tokio::test]
async fn a_refusal_or_unusable_twiml_is_reported_and_no_stream_opens() {
    let (gateway, _) = FakeGateway::start(None).await;
    let sim = TwilioSim::new(gateway.config());
    *gateway.answer.lock().expect("answer") = Some("<Response><Say>Sorry</Say><Hangup/></Response>".into());
    let answer = sim.webhook().send().await.expect("sent");
    assert!(matches!(answer.twiml(), Ok(Twiml::Refused(refusal)) if refusal.hung_up && refusal.said == ["Sorry"]));
    assert!(sim.dial().await.is_err());

    let with_query =
        format!(r#"<Response><Connect><Stream url="{}?callId=1"/></Connect></Response>"#, gateway.stream_url());
    *gateway.answer.lock().expect("answer") = Some(with_query);
    let error = sim.dial().await.err().expect("refused").to_string();
    assert!(error.contains("31920"), "{error}");
    assert!(gateway.seen.read(|s| s.upgrades.is_empty()));
}

#[tokio::test]
async fn behind_a_public_https_name_the_public_urls_are_signed() {
    let (gateway, addr) = FakeGateway::start(Some("https://gw.example.com")).await;
    let mut config = gateway.config();
    config.connect_addr = Some(addr);
    let call = TwilioSim::new(config).dial().await.expect("dialled");
    gateway.wait_for(|s| s.frames.len() >= 2).await;
    assert_eq!(gateway.seen.read(|s| s.webhooks[0].2), 200);
    assert_eq!(gateway.seen.read(|s| s.upgrades[0].1), 101);
    assert!(call.faults().is_empty());
}
