//! Phone calls end to end: the testkit's Twilio simulator calls a real gateway's voice
//! webhook for an integration account, opens the Media Stream the TwiML names, talks and
//! listens in real time; the AI side is the mock OpenAI Realtime (μ-law passed straight
//! through) or the mock Gemini Live (transcoded), and hang-ups go through the mock REST API.
//! A phone caller who asks for a person talks with a support agent's browser (μ-law ↔ Opus
//! in the gateway).
#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use base64::Engine;
use common::*;
use futures::{SinkExt, StreamExt};
use gateway::domain::{CallSource, CallStatus, EndReason, TranscriptRole};
use gateway::ids::CallId;
use reqwest::StatusCode;
use serde_json::{Value, json};
use testkit::twilio_sim::{EndedBy, StreamOpenError, Twiml, tone_hz, utterance_8k};
use testkit::{
    GeminiLiveConfig, MockGeminiLive, MockOpenAiRealtime, MockReply, MockTwilioRest, OpenAiRealtimeConfig, Signing,
    TwilioAccount, TwilioRestConfig, TwilioSim, TwilioSimConfig,
};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

const SECOND: Duration = Duration::from_secs(1);
const CALLER: &str = "+14155550100";
const ACCOUNT_SID: &str = "AC0123456789abcdef0123456789abcdef";
const AUTH_TOKEN: &str = "5f2b0c9e8d7a6b5c4d3e2f1a0b9c8d7e";
const NUMBER: &str = "+15551234567";

/// The mock Twilio REST API, knowing the test account and its number.
async fn twilio_rest() -> MockTwilioRest {
    MockTwilioRest::start(TwilioRestConfig { accounts: vec![TwilioAccount::new(ACCOUNT_SID, AUTH_TOKEN, &[NUMBER])] })
        .await
}

/// A gateway with a Twilio account bound to its call chatbot, and a simulator for it.
struct Line {
    app: TestApp,
    company: gateway::ids::CompanyId,
    bot: String,
    admin: String,
    account: String,
    twilio: MockTwilioRest,
    sim: TwilioSim,
}

impl Line {
    async fn calls(&self) -> Vec<gateway::store::Call> {
        self.app.state.store.list_calls(self.company, &gateway::store::CallFilter::latest(100)).await.unwrap()
    }

    async fn only_call(&self) -> CallId {
        let poll = async {
            loop {
                if let [call] = self.calls().await.as_slice() {
                    return call.id;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        };
        tokio::time::timeout(5 * SECOND, poll).await.expect("exactly one phone call")
    }

    async fn wait_for_end(&self, id: CallId) -> gateway::store::Call {
        self.app.wait_for_call_end(id).await
    }
}

async fn line(
    configure: impl FnOnce(&mut gateway::config::ServeArgs),
) -> (TestApp, gateway::ids::CompanyId, String, String) {
    let app = spawn_app_with(|args| {
        args.provider_backoff_ms = 50;
        configure(args);
    })
    .await;
    let (company, admin) = app.company_with_admin("Acme", true).await;
    let bot = app.call_chatbot(company, &admin).await;
    (app, company, bot, admin)
}

/// The account, created through the API and verified against the mock REST server.
async fn with_account(
    (app, company, bot, admin): (TestApp, gateway::ids::CompanyId, String, String),
    twilio: MockTwilioRest,
) -> Line {
    let body = json!({"accountType": "twilio", "name": "Main line", "accountSid": ACCOUNT_SID,
        "authToken": AUTH_TOKEN, "phoneNumber": NUMBER, "chatbotId": bot});
    let created = app.post("/api/company/integration-accounts", &admin, None, body).await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.text);
    let account = created.body["id"].as_str().unwrap().to_owned();
    let tested = app.post(&format!("/api/company/integration-accounts/{account}/test"), &admin, None, json!({})).await;
    assert_eq!(tested.body["ok"], true, "{}", tested.text);
    let webhook = created.body["webhookUrl"].as_str().unwrap().to_owned();
    assert_eq!(webhook, format!("{}/api/webhooks/twilio/{account}/voice", app.base));
    let mut config = TwilioSimConfig::new(webhook, ACCOUNT_SID, AUTH_TOKEN, NUMBER);
    config.from = CALLER.to_owned();
    let sim = TwilioSim::new(config).with_rest(&twilio);
    Line { app, company, bot, admin, account, twilio, sim }
}

async fn openai_line(mock: &MockOpenAiRealtime) -> Line {
    let twilio = twilio_rest().await;
    let (url, rest) = (format!("{}/realtime", mock.ws_base_url()), twilio.base_url());
    let world = line(|args| {
        args.openai_realtime_url = url.parse().unwrap();
        args.openai_api_key = Some("sk-test-openai".into());
        args.twilio_api_base_url = rest.parse().unwrap();
    })
    .await;
    with_account(world, twilio).await
}

fn openai(reply_ms: u32) -> OpenAiRealtimeConfig {
    OpenAiRealtimeConfig {
        reply: MockReply::tone("We are open from nine to five, Monday to Friday.", reply_ms),
        user_transcript: "When are you open?".into(),
        ..OpenAiRealtimeConfig::default()
    }
}

/// Audio the mock OpenAI received from the gateway, as bytes.
fn appended_audio(mock: &MockOpenAiRealtime) -> Vec<u8> {
    mock.state()
        .client_events
        .iter()
        .filter(|e| e.event["type"] == "input_audio_buffer.append")
        .flat_map(|e| base64::engine::general_purpose::STANDARD.decode(e.event["audio"].as_str().unwrap()).unwrap())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_phone_call_on_openai_passes_mulaw_straight_through_and_is_stored_like_a_browser_call() {
    let _serial = media_timing_lock().await;
    let mock = MockOpenAiRealtime::start(openai(1500)).await;
    let line = openai_line(&mock).await;
    let call = line.sim.dial().await.unwrap();

    // The greeting plays on the phone.
    call.wait_until_heard(1000, 10 * SECOND).await.unwrap();
    let update = mock.state().client_events.iter().find(|e| e.event["type"] == "session.update").unwrap().event.clone();
    assert_eq!(update["session"]["audio"]["input"]["format"], json!({"type": "audio/pcmu"}));
    assert_eq!(update["session"]["audio"]["output"]["format"], json!({"type": "audio/pcmu"}));

    // The caller asks; the agent answers in 440 Hz the caller hears.
    let heard_before = call.heard_audio_ms();
    call.say(&utterance_8k(1200)).await;
    call.wait_until_heard(heard_before + 1000, 10 * SECOND).await.unwrap();
    let loud = call.loud_frames(-40.0);
    let last = loud.last().unwrap().stream_ms;
    let hz = tone_hz(&call.heard_pcm(last - 400, last - 100));
    assert!((430.0..450.0).contains(&hz), "the agent's tone at {hz} Hz");

    // What the caller said reached OpenAI byte for byte: no decode, no resample.
    let sent: Vec<u8> = call
        .record()
        .sent
        .iter()
        .filter_map(|text| serde_json::from_str::<Value>(text).ok())
        .filter(|m| m["event"] == "media")
        .flat_map(|m| {
            base64::engine::general_purpose::STANDARD.decode(m["media"]["payload"].as_str().unwrap()).unwrap()
        })
        .collect();
    let received = appended_audio(&mock);
    assert!(received.len() > 8_000, "{} bytes", received.len());
    let start = sent.windows(160).position(|w| w == &received[..160]).expect("the first frame is the caller's");
    assert_eq!(
        &sent[start..start + received.len().min(sent.len() - start)],
        &received[..received.len().min(sent.len() - start)]
    );

    call.hang_up().await;
    let id = line.only_call().await;
    let row = line.wait_for_end(id).await;
    assert_eq!(row.source, CallSource::Twilio);
    assert_eq!((row.status, row.end_reason), (CallStatus::Completed, Some(EndReason::CallerHangup)));
    assert_eq!(row.caller.as_deref(), Some(CALLER));
    assert_eq!(row.integration_account_id.map(|a| a.to_string()), Some(line.account.clone()));
    assert_eq!(row.external_id.as_deref(), Some(call.call_sid()));
    assert!(row.duration_ms.unwrap() > 1000);
    let transcript = line.app.state.store.transcript(id).await.unwrap();
    assert!(transcript.iter().any(|l| l.role == TranscriptRole::User && l.content == "When are you open?"));
    assert!(transcript.iter().any(|l| l.role == TranscriptRole::Agent));
    assert!(call.faults().is_empty(), "Twilio would have refused: {:?}", call.faults());
    assert_eq!(line.calls().await.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_phone_caller_barging_in_is_cleared_at_once_and_cut_at_what_twilio_played() {
    let _serial = media_timing_lock().await;
    let mock = MockOpenAiRealtime::start(openai(6000)).await;
    let line = openai_line(&mock).await;
    line.app.set_call_settings(&line.bot, &line.admin, json!({"greetingMessage": ""})).await;
    let call = line.sim.dial().await.unwrap();
    call.say(&utterance_8k(1000)).await;
    call.wait_until_heard(1500, 10 * SECOND).await.unwrap();

    call.say(&utterance_8k(1500)).await;
    call.wait_for(|r| !r.clears.is_empty(), 5 * SECOND).await.unwrap();
    mock.wait_for(|s| !s.truncates.is_empty(), 5 * SECOND).await.unwrap();
    let clear = call.clears()[0].clone();
    let truncate = mock.truncates()[0].clone();
    // What Twilio played of the answer before the clear, from the simulator's own clock.
    let played_ms: u64 =
        call.heard().iter().filter(|f| f.stream_ms < clear.stream_ms).map(|f| f.audio_bytes as u64).sum::<u64>() / 8;
    let error = truncate.audio_end_ms.abs_diff(played_ms);
    assert!(error <= 40, "truncated at {} ms, Twilio played {played_ms} ms", truncate.audio_end_ms);
    // The clear came right after the caller started talking over the agent.
    let talked_at = *call.record().speech_started.last().unwrap();
    assert!(clear.stream_ms.saturating_sub(talked_at) < 1000, "clear {} ms after", clear.stream_ms - talked_at);
    tokio::time::sleep(SECOND).await;
    let after: usize = call.heard().iter().filter(|f| f.stream_ms > clear.stream_ms + 40).map(|f| f.audio_bytes).sum();
    assert!(after < 8 * 600, "the cut answer did not play on ({after} bytes after the clear)");

    call.hang_up().await;
    let id = line.only_call().await;
    line.wait_for_end(id).await;
    let lines = line.app.state.store.transcript(id).await.unwrap();
    let agent = lines.iter().find(|l| l.role == TranscriptRole::Agent).unwrap();
    assert!(agent.content.ends_with('…'), "the stored line is cut to what was heard: {}", agent.content);
    assert!(call.faults().is_empty(), "{:?}", call.faults());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gemini_phone_call_is_transcoded_both_ways() {
    let _serial = media_timing_lock().await;
    let mock = MockGeminiLive::start(GeminiLiveConfig {
        reply: MockReply::tone("Sure, we ship to Canada.", 1500),
        user_transcript: "Do you ship to Canada?".into(),
        ..GeminiLiveConfig::default()
    })
    .await;
    let twilio = twilio_rest().await;
    let (url, key, rest) = (mock.ws_base_url(), mock.config().api_key.clone(), twilio.base_url());
    let world = line(|args| {
        args.gemini_live_url = url.parse().unwrap();
        args.gemini_api_key = Some(key);
        args.twilio_api_base_url = rest.parse().unwrap();
    })
    .await;
    world.0.set_call_settings(&world.2, &world.3, json!({"aiModelId": GEMINI_2_5, "greetingMessage": ""})).await;
    let line = with_account(world, twilio).await;
    let call = line.sim.dial().await.unwrap();
    call.say(&utterance_8k(1200)).await;
    call.wait_until_heard(1000, 10 * SECOND).await.unwrap();
    let loud = call.loud_frames(-40.0);
    let last = loud.last().unwrap().stream_ms;
    let hz = tone_hz(&call.heard_pcm(last - 400, last - 100));
    assert!((430.0..450.0).contains(&hz), "24 kHz agent audio reached the phone as 8 kHz μ-law: {hz} Hz");
    let audio = mock
        .client_messages()
        .into_iter()
        .filter_map(|m| m["realtimeInput"]["audio"].as_object().cloned())
        .collect::<Vec<_>>();
    assert!(audio.len() > 50);
    assert!(audio.iter().all(|a| a["mimeType"] == "audio/pcm;rate=16000"));
    let frame = base64::engine::general_purpose::STANDARD.decode(audio[10]["data"].as_str().unwrap()).unwrap();
    assert_eq!(frame.len(), 640, "20 ms at 16 kHz");
    call.hang_up().await;
    let id = line.only_call().await;
    let row = line.wait_for_end(id).await;
    assert_eq!(row.end_reason, Some(EndReason::CallerHangup));
    assert!(call.faults().is_empty(), "{:?}", call.faults());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_gateway_ends_a_phone_call_after_the_goodbye_through_twilios_rest_api() {
    let _serial = media_timing_lock().await;
    let mock =
        MockOpenAiRealtime::start(OpenAiRealtimeConfig { user_transcript: "Thanks, goodbye!".into(), ..openai(1200) })
            .await;
    let line = openai_line(&mock).await;
    line.app
        .set_call_settings(&line.bot, &line.admin, json!({"greetingMessage": "", "endCallPhrase": "goodbye"}))
        .await;
    let call = line.sim.dial().await.unwrap();
    call.say(&utterance_8k(1000)).await;
    let end = call.wait_ended(15 * SECOND).await.unwrap();
    assert_eq!(end.by, EndedBy::RestHangUp, "the gateway completed the call through the REST API");
    assert!(call.heard_audio_ms() >= 1000, "the goodbye was heard first ({} ms)", call.heard_audio_ms());
    let id = line.only_call().await;
    let row = line.wait_for_end(id).await;
    assert_eq!((row.status, row.end_reason), (CallStatus::Completed, Some(EndReason::EndPhrase)));
    let hangups: Vec<_> =
        line.twilio.requests().into_iter().filter(|r| r.method == "POST" && r.path.contains("/Calls/")).collect();
    assert_eq!(hangups.len(), 1, "{hangups:?}");
    assert!(hangups[0].path.ends_with(&format!("/Calls/{}.json", call.call_sid())));
    assert!(call.faults().is_empty(), "{:?}", call.faults());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_press_is_a_system_line_and_a_note_to_the_model() {
    let mock = MockOpenAiRealtime::start(openai(800)).await;
    let line = openai_line(&mock).await;
    line.app.set_call_settings(&line.bot, &line.admin, json!({"greetingMessage": ""})).await;
    let call = line.sim.dial().await.unwrap();
    let id = line.only_call().await;
    let poll = async {
        loop {
            if line.app.state.store.call(id).await.unwrap().unwrap().status == CallStatus::Active {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    tokio::time::timeout(5 * SECOND, poll).await.unwrap();
    call.press('1').await;
    mock.wait_for(
        |s| {
            s.client_events.iter().any(|e| {
                e.event["type"] == "conversation.item.create"
                    && e.event["item"]["content"][0]["text"] == "The caller pressed 1"
            })
        },
        5 * SECOND,
    )
    .await
    .unwrap();
    call.hang_up().await;
    line.wait_for_end(id).await;
    let lines = line.app.state.store.transcript(id).await.unwrap();
    assert!(lines.iter().any(|l| l.role == TranscriptRole::System && l.content == "The caller pressed 1"), "{lines:?}");
}

/// Every way the gateway declines a call: unknown account, bad signatures (nothing stored),
/// and the polite TwiML refusals.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_calls_are_answered_as_twilio_expects_and_store_nothing() {
    let mock = MockOpenAiRealtime::start(openai(800)).await;
    let line = openai_line(&mock).await;
    let count = || async { line.calls().await.len() };

    for signing in [Signing::Missing, Signing::Wrong] {
        let answer = line.sim.webhook().signing(signing).send().await.unwrap();
        assert_eq!(answer.status, 403);
    }
    assert_eq!(count().await, 0, "nothing stored for a bad signature");

    let unknown = reqwest::Client::new()
        .post(format!("{}/api/webhooks/twilio/{}/voice", line.app.base, uuid::Uuid::new_v4()))
        .form(&[("CallSid", "CA00000000000000000000000000000000")])
        .send()
        .await
        .unwrap();
    assert_eq!(unknown.status(), StatusCode::NOT_FOUND);

    // Calls switched off for the company: a sorry and a hang-up, no stream.
    let master = line.app.master.clone();
    let off = line
        .app
        .patch(
            &format!("/api/admin/companies/{}/settings", line.company),
            &master,
            None,
            json!({"features": {"callEnabled": false}}),
        )
        .await;
    assert_eq!(off.status, StatusCode::OK, "{}", off.text);
    let refused = line.sim.webhook().send().await.unwrap();
    assert_eq!(refused.status, 200);
    assert_eq!(refused.content_type.as_deref(), Some("text/xml"));
    let Ok(Twiml::Refused(refusal)) = refused.twiml() else { panic!("{refused:?}") };
    assert!(refusal.hung_up && !refusal.said.is_empty());
    assert_eq!(count().await, 0);
}

/// The stream's URL, parameters and a signature Twilio would send for it.
fn signed_stream(stream: &testkit::twilio_sim::StreamTwiml) -> (String, String) {
    let no_params: [(&str, &str); 0] = [];
    let signature = gateway::telephony::twilio::signature::RequestValidator::new(AUTH_TOKEN)
        .compute_signature(&stream.url, &no_params);
    (stream.url.clone(), signature)
}

/// A raw Media Streams client (the simulator only sends what Twilio would).
async fn raw_stream(
    url: &str,
    signature: &str,
) -> tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>> {
    let mut request = url.into_client_request().unwrap();
    request.headers_mut().insert("x-twilio-signature", signature.parse().unwrap());
    tokio_tungstenite::connect_async(request).await.unwrap().0
}

fn start_message(call_sid: &str, parameters: &[(String, String)]) -> String {
    let custom: serde_json::Map<String, Value> =
        parameters.iter().map(|(k, v)| (k.clone(), Value::String(v.clone()))).collect();
    json!({"event": "start", "sequenceNumber": "1", "streamSid": "MZ11111111111111111111111111111111",
        "start": {"accountSid": ACCOUNT_SID, "streamSid": "MZ11111111111111111111111111111111", "callSid": call_sid,
            "tracks": ["inbound"], "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1},
            "customParameters": custom}})
    .to_string()
}

/// Reads until the gateway closes the socket; its close code, if any.
async fn closed_by_gateway(
    ws: &mut tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>,
    within: Duration,
) -> Option<u16> {
    let read = async {
        while let Some(message) = ws.next().await {
            match message {
                Ok(Message::Close(frame)) => return Some(frame.map_or(1005, |f| u16::from(f.code))),
                Ok(_) => {}
                Err(_) => return Some(1006),
            }
        }
        Some(1006)
    };
    tokio::time::timeout(within, read).await.ok().flatten()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streams_that_are_unsigned_forged_or_reused_are_refused_and_answer_no_call() {
    let mock = MockOpenAiRealtime::start(openai(800)).await;
    let line = openai_line(&mock).await;
    let answer = line.sim.webhook().send().await.unwrap();
    let Ok(Twiml::Connect(stream)) = answer.twiml() else { panic!("{answer:?}") };
    // The TwiML names the stream by a URL without a query string, the call by parameters.
    assert!(!stream.url.contains('?'));
    assert!(stream.parameters.iter().any(|(k, _)| k == "token"));

    for signing in [Signing::Missing, Signing::Wrong] {
        let refused = line.sim.open_stream(&answer.call_sid, &stream, signing).await.err();
        assert_eq!(refused, Some(StreamOpenError::Rejected { status: 403 }));
    }
    // A signed upgrade with a forged one-time parameter is closed at its start.
    let mut forged = stream.clone();
    for (k, v) in &mut forged.parameters {
        if k == "token" {
            v.replace_range(..4, "AAAA");
        }
    }
    let call = line.sim.open_stream(&answer.call_sid, &forged, Signing::Valid).await.unwrap();
    let end = call.wait_ended(5 * SECOND).await.unwrap();
    assert!(matches!(end.by, EndedBy::Gateway { code: Some(1008), .. }), "{end:?}");
    let id = line.only_call().await;
    assert_eq!(line.app.state.store.call(id).await.unwrap().unwrap().status, CallStatus::Pending, "not answered");

    // The real one connects; using it again is refused and the first call goes on.
    let call = line.sim.open_stream(&answer.call_sid, &stream, Signing::Valid).await.unwrap();
    call.wait_until_heard(500, 10 * SECOND).await.unwrap();
    let again = line.sim.open_stream(&answer.call_sid, &stream, Signing::Valid).await.unwrap();
    let end = again.wait_ended(5 * SECOND).await.unwrap();
    assert!(matches!(end.by, EndedBy::Gateway { code: Some(1008), .. }), "{end:?}");
    assert!(call.ended().is_none(), "the first stream is still up");
    call.hang_up().await;
    line.wait_for_end(id).await;
    assert_eq!(line.calls().await.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twilios_own_traffic_is_never_rate_limited() {
    let mock = MockOpenAiRealtime::start(openai(800)).await;
    let line = openai_line(&mock).await;
    // One address sends every webhook of every call: well past any per-client limit.
    let limit = line.app.state.config.widget_sessions_per_minute as usize;
    for _ in 0..limit * 3 {
        let answer = line.sim.webhook().send().await.unwrap();
        assert_eq!(answer.status, 200);
        assert!(matches!(answer.twiml(), Ok(Twiml::Connect(_))), "{answer:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replayed_webhook_never_makes_two_calls() {
    let mock = MockOpenAiRealtime::start(openai(800)).await;
    let line = openai_line(&mock).await;
    let first = line.sim.webhook().send().await.unwrap();
    // Twilio retries (or delivers twice at once): the same answer, the same call.
    let (second, third) = tokio::join!(
        line.sim.webhook().call_sid(&first.call_sid).send(),
        line.sim.webhook().call_sid(&first.call_sid).send()
    );
    let (Ok(Twiml::Connect(a)), Ok(Twiml::Connect(b)), Ok(Twiml::Connect(c))) =
        (first.twiml(), second.unwrap().twiml(), third.unwrap().twiml())
    else {
        panic!("every delivery is answered with the stream")
    };
    assert_eq!((a.parameters.clone(), a.parameters.clone()), (b.parameters, c.parameters));
    assert_eq!(line.calls().await.len(), 1);
    let call = line.sim.open_stream(&first.call_sid, &a, Signing::Valid).await.unwrap();
    call.wait_until_heard(500, 10 * SECOND).await.unwrap();
    // Once the call is connected, a late delivery is turned away.
    let late = line.sim.webhook().call_sid(&first.call_sid).send().await.unwrap();
    let Ok(Twiml::Refused(refusal)) = late.twiml() else { panic!("{late:?}") };
    assert!(refusal.rejected.is_some() || refusal.hung_up, "{refusal:?}");
    assert_eq!(line.calls().await.len(), 1);
    call.hang_up().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_on_a_stream_is_ignored_and_an_oversize_frame_closes_it_without_harm() {
    let mock = MockOpenAiRealtime::start(openai(800)).await;
    let line = openai_line(&mock).await;

    // Media before start: refused within 5 s, the call is not answered.
    let answer = line.sim.webhook().send().await.unwrap();
    let Ok(Twiml::Connect(stream)) = answer.twiml() else { panic!("{answer:?}") };
    let (url, signature) = signed_stream(&stream);
    let mut ws = raw_stream(&url, &signature).await;
    ws.send(Message::text(json!({"event": "connected", "protocol": "Call", "version": "1.0.0"}).to_string()))
        .await
        .unwrap();
    ws.send(Message::text(json!({"event": "media", "streamSid": "MZ1", "media": {"payload": "/w=="}}).to_string()))
        .await
        .unwrap();
    assert_eq!(closed_by_gateway(&mut ws, 6 * SECOND).await, Some(1008));
    let id = line.only_call().await;
    assert_eq!(line.app.state.store.call(id).await.unwrap().unwrap().status, CallStatus::Pending);

    // A proper start, then garbage of every kind: the call goes on.
    let mut ws = raw_stream(&url, &signature).await;
    ws.send(Message::text(start_message(&answer.call_sid, &stream.parameters))).await.unwrap();
    for junk in [
        Message::text("not json at all"),
        Message::binary(vec![0u8; 64]),
        Message::text(json!({"event": "dance"}).to_string()),
        Message::text(
            json!({"event": "media", "streamSid": "MZ11111111111111111111111111111111",
                "media": {"track": "inbound", "chunk": "1", "timestamp": "140", "payload": "!!not base64!!"}})
            .to_string(),
        ),
        Message::text(
            json!({"event": "mark", "streamSid": "MZ11111111111111111111111111111111", "mark": {"name": "x"}})
                .to_string(),
        ),
    ] {
        ws.send(junk).await.unwrap();
    }
    let poll = async {
        loop {
            if line.app.state.store.call(id).await.unwrap().unwrap().status == CallStatus::Active {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    tokio::time::timeout(5 * SECOND, poll).await.expect("the call became active despite the garbage");
    // A 1 MiB frame is over the limit: the socket closes and the call ends.
    let _ = ws.send(Message::text("x".repeat(1 << 20))).await;
    let row = line.wait_for_end(id).await;
    assert_eq!(row.end_reason, Some(EndReason::NetworkLost));

    // The gateway is none the worse: the next call works.
    let call = line.sim.dial().await.unwrap();
    call.wait_until_heard(500, 10 * SECOND).await.unwrap();
    call.hang_up().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_to_an_unbound_or_unverified_number_get_a_polite_refusal() {
    let mock = MockOpenAiRealtime::start(openai(800)).await;
    let line = openai_line(&mock).await;
    let unbind = line
        .app
        .patch(
            &format!("/api/company/integration-accounts/{}", line.account),
            &line.admin,
            None,
            json!({"chatbotId": null}),
        )
        .await;
    assert_eq!(unbind.status, StatusCode::OK, "{}", unbind.text);
    let answer = line.sim.webhook().send().await.unwrap();
    assert!(matches!(answer.twiml(), Ok(Twiml::Refused(_))), "{answer:?}");

    // A number the Twilio account does not own fails its test: the account is inactive.
    let body = json!({"accountType": "twilio", "name": "Other line", "accountSid": ACCOUNT_SID,
        "authToken": AUTH_TOKEN, "phoneNumber": "+15559990000", "chatbotId": line.bot});
    let created = line.app.post("/api/company/integration-accounts", &line.admin, None, body).await;
    let other = created.body["id"].as_str().unwrap().to_owned();
    let tested =
        line.app.post(&format!("/api/company/integration-accounts/{other}/test"), &line.admin, None, json!({})).await;
    assert_eq!(tested.body["ok"], false, "{}", tested.text);
    let mut config = line.sim.config().clone();
    config.webhook_url = created.body["webhookUrl"].as_str().unwrap().to_owned();
    let answer = TwilioSim::new(config).webhook().send().await.unwrap();
    assert!(matches!(answer.twiml(), Ok(Twiml::Refused(_))), "{answer:?}");
    assert!(line.calls().await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_phone_caller_who_asks_for_a_person_talks_with_an_agent_in_the_browser() {
    let _serial = media_timing_lock().await;
    let escalate = testkit::ScriptedToolCall {
        max_calls: Some(1),
        ..testkit::ScriptedToolCall::new("escalate_to_human", json!({"reason": "wants a person"}))
    };
    let mock = MockOpenAiRealtime::start(OpenAiRealtimeConfig { tool_calls: vec![escalate], ..openai(600) }).await;
    let line = openai_line(&mock).await;
    line.app
        .set_call_settings(
            &line.bot,
            &line.admin,
            json!({"greetingMessage": "", "escalationEnabled": true, "escalationTimeoutSeconds": 10}),
        )
        .await;
    let (agent_token, mut console) = common::agents::available_agent(&line.app, line.company, "agent@acme.test").await;
    let call = line.sim.dial().await.unwrap();
    call.say(&utterance_8k(1200)).await;
    let agent = common::agents::accept_and_join(&line.app, &agent_token, &mut console).await;
    let joined = std::time::Instant::now();
    let heard_before = call.heard_audio_ms();

    // The caller's μ-law reaches the agent as Opus; the agent's Opus reaches the phone as μ-law.
    call.say(&testkit::audio::tone(8_000, 700.0, 1000, 0.3)).await;
    agent.say(testkit::audio::tone(48_000, 1100.0, 1000, 0.3)).await;
    call.wait_until_heard(heard_before + 800, 10 * SECOND).await.unwrap();
    tokio::time::sleep(SECOND).await;
    let heard_by_agent = agent.audio_since(joined);
    let spans = testkit::recording::tone_spans(&heard_by_agent, 48_000, 700.0);
    assert!(spans.iter().map(|(a, b)| b - a).sum::<u64>() >= 800, "the agent hears the caller: {spans:?}");
    let loud = call.loud_frames(-40.0);
    let last = loud.last().unwrap().stream_ms;
    let hz = tone_hz(&call.heard_pcm(last - 400, last - 100));
    assert!((1080.0..1120.0).contains(&hz), "the caller hears the agent's tone, not the AI's: {hz} Hz");

    agent.send(json!({"type": "end"})).await;
    let ended = call.wait_ended(10 * SECOND).await.unwrap();
    assert_eq!(ended.by, EndedBy::RestHangUp, "the gateway hangs up the phone call through the REST API");
    let id = line.only_call().await;
    let row = line.wait_for_end(id).await;
    assert_eq!(row.end_reason, Some(EndReason::AgentHangup));
    let transcript = line.app.state.store.transcript(id).await.unwrap();
    assert!(transcript.iter().any(|l| l.role == TranscriptRole::HumanAgent), "{transcript:?}");
    assert!(call.faults().is_empty(), "Twilio would have refused: {:?}", call.faults());
}
