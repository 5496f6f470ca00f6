//! Recorded calls end to end: a browser caller (WebRTC) and a phone caller (the Twilio
//! simulator) talk to the mock OpenAI Realtime with recording on. The caller says a 1 kHz
//! tone, the agent answers in 440 Hz; the stored stereo Ogg Opus file, fetched through the
//! API's signed link, must carry the caller's tone on the left when the caller said it
//! and the agent's on the right when the transcript says the agent spoke, and neither on
//! the other channel. The caller is told first: the recording notice precedes the greeting.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::{Duration, Instant};

use common::*;
use gateway::domain::{CallStatus, TranscriptRole};
use gateway::ids::CallId;
use gateway::time::now_ms;
use reqwest::StatusCode;
use serde_json::json;
use testkit::audio::tone;
use testkit::recording::{Decoded, assert_no_tone, decode, tone_spans};
use testkit::twilio_sim::TwilioSimConfig;
use testkit::{
    Caller, MockOpenAiRealtime, MockReply, MockTwilioRest, OpenAiRealtimeConfig, TwilioAccount, TwilioRestConfig,
    TwilioSim,
};

const SECOND: Duration = Duration::from_secs(1);
const CALLER_HZ: f64 = 1_000.0;
const AGENT_HZ: f64 = 440.0;
/// How far a tone's start in the file may be from when it was said or heard: the network,
/// the jitter buffer and the tone detector's own edges (about 10 ms).
const TOLERANCE_MS: u64 = 80;

fn openai() -> OpenAiRealtimeConfig {
    OpenAiRealtimeConfig {
        // MockReply::tone is 440 Hz.
        reply: MockReply::tone("We are open from nine to five.", 1_000),
        user_transcript: "When are you open?".into(),
        ..OpenAiRealtimeConfig::default()
    }
}

/// Wall-clock milliseconds of an `Instant` taken in this test.
struct Clock {
    wall: i64,
    at: Instant,
}

impl Clock {
    fn now() -> Self {
        Self { wall: now_ms(), at: Instant::now() }
    }

    fn wall(&self, at: Instant) -> i64 {
        self.wall + at.saturating_duration_since(self.at).as_millis() as i64
    }
}

/// The call's recording, through the API's link, once its writer is done.
async fn fetch_recording(app: &TestApp, admin: &str, id: CallId) -> Decoded {
    app.state.recordings.idle().await;
    let reply = app.get(&format!("/api/company/calls/{id}/recording"), admin, None).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    assert_eq!(reply.body["format"], "ogg/opus");
    let file = reqwest::get(reply.body["url"].as_str().unwrap()).await.unwrap();
    assert_eq!(file.status(), StatusCode::OK);
    let decoded = decode(&file.bytes().await.unwrap());
    let duration = reply.body["durationMs"].as_u64().unwrap();
    assert_eq!(decoded.duration_ms(), duration, "the file lasts as long as the API says");
    decoded
}

/// The checks both channels share: the caller's tone on the left, starting `said_ms` after
/// the answer; the agent's on the right, each span starting where an agent line of the
/// transcript starts; nothing of either on the other channel.
async fn check(app: &TestApp, id: CallId, recording: &Decoded, said_ms: i64) {
    let left = tone_spans(&recording.left, recording.rate, CALLER_HZ);
    assert_eq!(left.len(), 1, "the caller's tone once on the left: {left:?}");
    assert!(
        (left[0].0 as i64).abs_diff(said_ms) <= TOLERANCE_MS,
        "the caller's tone starts at {} ms in the file, said at {said_ms} ms",
        left[0].0
    );
    let said = left[0].1 - left[0].0;
    assert!((1_100..=1_300).contains(&said), "the caller's tone lasts {said} ms in the file");

    let right = tone_spans(&recording.right, recording.rate, AGENT_HZ);
    let lines = app.state.store.transcript(id).await.unwrap();
    let agent: Vec<i64> = lines.iter().filter(|l| l.role == TranscriptRole::Agent).map(|l| l.offset_ms).collect();
    assert_eq!(right.len(), agent.len(), "one 440 Hz span per agent line: {right:?} vs {agent:?}");
    for ((start, end), offset) in right.iter().zip(&agent) {
        assert!(
            (*start as i64).abs_diff(*offset) <= TOLERANCE_MS,
            "the agent's tone starts at {start} ms in the file; its transcript line at {offset} ms"
        );
        assert!((900..=1_100).contains(&(end - start)), "an agent answer lasts {} ms", end - start);
    }
    assert_no_tone(&recording.left, recording.rate, AGENT_HZ);
    assert_no_tone(&recording.right, recording.rate, CALLER_HZ);
}

fn notice_spoken_first(mock: &MockOpenAiRealtime) {
    let create = mock
        .client_events()
        .into_iter()
        .find(|e| e["type"] == "response.create")
        .expect("the opening words ask for a response");
    let instructions = create["response"]["instructions"].as_str().unwrap();
    let (notice, greeting) = (
        instructions.find("This call may be recorded.").unwrap(),
        instructions.find("Hello from the test line.").unwrap(),
    );
    assert!(notice < greeting, "the notice comes before the greeting: {instructions}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recorded_browser_call_has_the_caller_left_and_the_agent_right_on_the_calls_clock() {
    let _serial = media_timing_lock().await;
    let mock = MockOpenAiRealtime::start(openai()).await;
    let (app, bot, admin) = spawn_call_app(&mock, |_| {}).await;
    app.set_call_settings(&bot, &admin, json!({"callRecording": true, "greetingMessage": "Hello from the test line."}))
        .await;
    let clock = Clock::now();
    let session = app.open_session(&bot, None).await;
    assert_eq!(session.status, StatusCode::CREATED, "{}", session.text);
    let id: CallId = session.body["sessionId"].as_str().unwrap().parse().unwrap();
    let caller = Caller::dial(session.body["wsUrl"].as_str().unwrap()).await.unwrap();
    caller.wait_for_state("active", 10 * SECOND).await.unwrap();
    // The greeting plays out, then the caller speaks and hears the answer.
    caller.wait_until_heard(900, -40.0, 10 * SECOND).await.unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    caller.say(tone(48_000, CALLER_HZ as f32, 1_200, 0.3)).await;
    caller.wait_until_heard(1_900, -40.0, 10 * SECOND).await.unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    caller.hang_up().await;
    let row = app.wait_for_call_end(id).await;
    assert_eq!(row.status, CallStatus::Completed);

    let recording = fetch_recording(&app, &admin, id).await;
    let said = clock.wall(caller.speech_started()[0]) - row.answered_at.unwrap();
    check(&app, id, &recording, said).await;
    notice_spoken_first(&mock);

    // The session timed its first agent audio (the recording is on or off alike).
    let page = app.get("/metrics", "", None).await;
    let count = page
        .text
        .lines()
        .find_map(|l| l.strip_prefix("gateway_first_agent_audio_seconds_count "))
        .and_then(|v| v.trim().parse::<f64>().ok());
    assert!(count.is_some_and(|c| c >= 1.0), "time to first agent audio recorded: {count:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recorded_phone_call_has_the_caller_left_and_the_agent_right_on_the_calls_clock() {
    const SID: &str = "AC0123456789abcdef0123456789abcdef";
    const TOKEN: &str = "5f2b0c9e8d7a6b5c4d3e2f1a0b9c8d7e";
    const NUMBER: &str = "+15551234567";
    let _serial = media_timing_lock().await;
    let mock = MockOpenAiRealtime::start(openai()).await;
    let twilio =
        MockTwilioRest::start(TwilioRestConfig { accounts: vec![TwilioAccount::new(SID, TOKEN, &[NUMBER])] }).await;
    let rest = twilio.base_url();
    let (app, bot, admin) = spawn_call_app(&mock, |args| args.twilio_api_base_url = rest.parse().unwrap()).await;
    app.set_call_settings(&bot, &admin, json!({"callRecording": true, "greetingMessage": "Hello from the test line."}))
        .await;
    let body = json!({"accountType": "twilio", "name": "Main line", "accountSid": SID, "authToken": TOKEN,
        "phoneNumber": NUMBER, "chatbotId": bot});
    let created = app.post("/api/company/integration-accounts", &admin, None, body).await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.text);
    let account = created.body["id"].as_str().unwrap().to_owned();
    let tested = app.post(&format!("/api/company/integration-accounts/{account}/test"), &admin, None, json!({})).await;
    assert_eq!(tested.body["ok"], true, "{}", tested.text);
    let webhook = created.body["webhookUrl"].as_str().unwrap().to_owned();
    let sim = TwilioSim::new(TwilioSimConfig::new(webhook, SID, TOKEN, NUMBER)).with_rest(&twilio);

    let call = sim.dial().await.unwrap();
    call.wait_until_heard(900, 10 * SECOND).await.unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let said_at = now_ms();
    call.say(&tone(8_000, CALLER_HZ as f32, 1_200, 0.3)).await;
    call.wait_until_heard(1_900, 10 * SECOND).await.unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    call.hang_up().await;
    let id = app.state.store.call_by_external_id(gateway::domain::CallSource::Twilio, call.call_sid()).await;
    let id = id.unwrap().unwrap().id;
    let row = app.wait_for_call_end(id).await;
    assert_eq!(row.status, CallStatus::Completed);

    let recording = fetch_recording(&app, &admin, id).await;
    check(&app, id, &recording, said_at - row.answered_at.unwrap()).await;
    notice_spoken_first(&mock);
}
