//! Browser calls end to end: a WebRTC caller (webrtc-rs, like the widget) calls a real
//! gateway whose AI provider is the mock OpenAI Realtime server. The tests run on a
//! multi-threaded runtime, as the gateway does: the caller, the gateway and the mock
//! share one process, and a single thread would make each one's bursts the others' stalls.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::{Duration, Instant};

use common::*;
use gateway::ids::CallId;
use gateway::store::{CallStatus, EndReason, TranscriptRole};
use reqwest::StatusCode;
use serde_json::{Value, json};
use testkit::{Caller, HandshakeRejection, MockOpenAiRealtime, MockReply, OpenAiRealtimeConfig, utterance};

const SECOND: Duration = Duration::from_secs(1);
const REPLY: &str =
    "We are open Monday through Friday from nine in the morning to five in the evening, and Saturdays until noon.";

fn mock_config() -> OpenAiRealtimeConfig {
    OpenAiRealtimeConfig {
        reply: MockReply::tone(REPLY, 4000),
        user_transcript: "What are your business hours?".into(),
        ..OpenAiRealtimeConfig::default()
    }
}

async fn dial(app: &TestApp, bot: &str) -> (Caller, CallId) {
    let session = app.open_session(bot, None).await;
    assert_eq!(session.status, StatusCode::CREATED, "{}", session.text);
    let caller = Caller::dial(session.body["wsUrl"].as_str().unwrap()).await.unwrap();
    (caller, session.body["sessionId"].as_str().unwrap().parse().unwrap())
}

/// Waits until the call row has `status` (the session stores progress off its media loop).
async fn wait_for_status(app: &TestApp, id: CallId, status: CallStatus) {
    let poll = async {
        loop {
            if app.state.store.call(id).await.unwrap().unwrap().status == status {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    tokio::time::timeout(5 * SECOND, poll).await.unwrap_or_else(|_| panic!("the call never became {status}"));
}

/// What the caller heard of the agent, as (first, last) loud frame times in a window.
fn agent_audio(caller: &Caller, from: Instant, to: Instant) -> Option<(Instant, Instant)> {
    let loud: Vec<_> = caller.loud_frames(-50.0).into_iter().filter(|h| h.at >= from && h.at <= to).collect();
    Some((loud.first()?.at, loud.last()?.at))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_caller_talks_hears_the_agent_barges_in_and_hangs_up() {
    let _serial = media_timing_lock().await;
    let mock = MockOpenAiRealtime::start(mock_config()).await;
    let (app, bot, admin) = spawn_call_app(&mock, |_| {}).await;
    app.set_call_settings(&bot, &admin, json!({"greetingMessage": ""})).await;
    let (caller, call_id) = dial(&app, &bot).await;
    caller.wait_for_state("active", 10 * SECOND).await.unwrap();
    wait_for_status(&app, call_id, CallStatus::Active).await;

    // The caller asks; the agent answers with audio the caller hears.
    caller.say(utterance(1200)).await;
    caller.wait_until_heard(800, -50.0, 10 * SECOND).await.unwrap();
    caller
        .wait_for_event(5 * SECOND, |e| e["type"] == "transcript" && e["role"] == "user" && e["final"] == true)
        .await
        .unwrap();
    caller.wait_for_event(5 * SECOND, |e| e["type"] == "speaking" && e["who"] == "agent").await.unwrap();

    // The caller talks over the agent.
    caller.say(utterance(1500)).await;
    mock.wait_for(|s| !s.truncates.is_empty(), 5 * SECOND).await.unwrap();
    tokio::time::sleep(SECOND).await;
    let barge_in = caller.speech_started()[1];
    let heard_before = agent_audio(&caller, Instant::now() - Duration::from_secs(60), barge_in).unwrap();
    let (_, last) = agent_audio(&caller, heard_before.0, barge_in + Duration::from_millis(900)).unwrap();
    let stopped_after = last.saturating_duration_since(barge_in);
    assert!(
        stopped_after <= Duration::from_millis(100),
        "agent audio went on for {stopped_after:?} after the caller spoke"
    );

    // The truncate names what was played: the agent audio the caller actually heard.
    let truncate = mock.truncates()[0].clone();
    let heard_ms: i64 = caller
        .heard()
        .iter()
        .filter(|h| h.at >= heard_before.0 && h.at <= last + Duration::from_millis(40))
        .map(|h| i64::from(h.loud_ms))
        .sum();
    let diff = (truncate.audio_end_ms as i64 - heard_ms).abs();
    assert!(diff <= 20, "truncated at {} ms, the caller heard {heard_ms} ms", truncate.audio_end_ms);
    let agent_item = mock.responses()[0].item_id.clone();
    assert_eq!(truncate.item_id, agent_item);

    caller.hang_up().await;
    let ended = caller.wait_for_state("ended", 5 * SECOND).await.unwrap();
    assert_eq!(ended["reason"], "caller_hangup");
    let row = app.state.store.call(call_id).await.unwrap().unwrap();
    assert_eq!((row.status, row.end_reason), (CallStatus::Completed, Some(EndReason::CallerHangup)));
    assert!(row.duration_ms.unwrap() > 2000, "{row:?}");
    assert!(row.answered_at.is_some() && row.ended_at.is_some());
    let lines = app.state.store.transcript(call_id).await.unwrap();
    let user = lines.iter().find(|l| l.role == TranscriptRole::User).expect("the caller's line is stored");
    assert_eq!(user.content, "What are your business hours?");
    let agent = lines.iter().find(|l| l.role == TranscriptRole::Agent).expect("the agent's line is stored");
    assert!(REPLY.starts_with(agent.content.trim_end_matches('…')), "{:?}", agent.content);
    assert!(agent.content.len() < REPLY.len(), "the interrupted line is cut to what was heard: {:?}", agent.content);
    assert!(mock.client_errors().is_empty(), "the gateway sent nothing the API refused: {:?}", mock.client_errors());
    caller.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_greeting_is_spoken_when_the_call_becomes_active_and_stored() {
    let _serial = media_timing_lock().await;
    let mock = MockOpenAiRealtime::start(OpenAiRealtimeConfig {
        reply: MockReply::tone("Hi! How can I help?", 1200),
        ..mock_config()
    })
    .await;
    let (app, bot, _) = spawn_call_app(&mock, |_| {}).await;
    let (caller, call_id) = dial(&app, &bot).await;
    caller.wait_for_state("active", 10 * SECOND).await.unwrap();
    caller.wait_until_heard(600, -50.0, 10 * SECOND).await.unwrap();
    let line = caller
        .wait_for_event(5 * SECOND, |e| e["type"] == "transcript" && e["role"] == "agent" && e["final"] == true)
        .await
        .unwrap();
    assert_eq!(line["text"], "Hi! How can I help?");
    let create = mock
        .client_events()
        .into_iter()
        .find(|e| e["type"] == "response.create")
        .expect("the greeting asks for a response");
    assert!(create["response"]["instructions"].as_str().unwrap().contains("How can I help you today?"));
    caller.hang_up().await;
    caller.wait_for_state("ended", 5 * SECOND).await.unwrap();
    let lines = app.state.store.transcript(call_id).await.unwrap();
    assert_eq!(lines[0].content, "Hi! How can I help?");
    assert!(mock.client_errors().is_empty(), "{:?}", mock.client_errors());
    caller.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn muted_callers_are_not_forwarded_to_the_agent() {
    let _serial = media_timing_lock().await;
    let mock = MockOpenAiRealtime::start(mock_config()).await;
    let (app, bot, admin) = spawn_call_app(&mock, |_| {}).await;
    app.set_call_settings(&bot, &admin, json!({"greetingMessage": ""})).await;
    let (caller, _) = dial(&app, &bot).await;
    caller.wait_for_state("active", 10 * SECOND).await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    caller.mute(true).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let before = mock.audio_received_ms();
    caller.say(utterance(1000)).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(mock.audio_received_ms() - before < 100, "muted audio reached the provider");
    caller.mute(false).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(mock.audio_received_ms() > before + 300, "unmuted audio flows again");
    caller.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_session_api_explains_every_refusal() {
    let _serial = media_timing_lock().await;
    let mock = MockOpenAiRealtime::start(mock_config()).await;
    let (app, bot, admin) = spawn_call_app(&mock, |args| args.widget_sessions_per_minute = 1000).await;
    let company = app.state.store.list_companies().await.unwrap()[0].id;

    let missing = app.open_session(&gateway::ids::ChatbotId::new().to_string(), None).await;
    assert_eq!((missing.status, missing.code()), (StatusCode::NOT_FOUND, "not_found"));

    let chat = app.post("/api/company/chatbots", &admin, None, json!({"name": "Chat"})).await;
    let chat_only = app.open_session(chat.body["id"].as_str().unwrap(), None).await;
    assert_eq!((chat_only.status, chat_only.code()), (StatusCode::CONFLICT, "not_a_call_chatbot"));

    app.patch(
        &format!("/api/company/chatbots/{bot}/widget-settings"),
        &admin,
        None,
        json!({"allowedOrigins": ["https://shop.example.com"]}),
    )
    .await;
    let wrong_origin = app.open_session(&bot, Some("https://evil.example.com")).await;
    assert_eq!((wrong_origin.status, wrong_origin.code()), (StatusCode::FORBIDDEN, "origin_not_allowed"));
    let no_origin = app.open_session(&bot, None).await;
    assert_eq!(no_origin.code(), "origin_not_allowed");
    let allowed = app.open_session(&bot, Some("https://shop.example.com")).await;
    assert_eq!(allowed.status, StatusCode::CREATED, "{}", allowed.text);
    for key in ["sessionId", "token", "wsUrl", "iceServers", "expiresAt"] {
        assert!(allowed.body.get(key).is_some(), "{key} in {}", allowed.text);
    }
    assert!(allowed.body["wsUrl"].as_str().unwrap().starts_with("ws://"));

    app.patch(&format!("/api/admin/ai-models/{GPT_REALTIME}"), &app.master, None, json!({"isActive": false})).await;
    let inactive = app.open_session(&bot, Some("https://shop.example.com")).await;
    assert_eq!((inactive.status, inactive.code()), (StatusCode::SERVICE_UNAVAILABLE, "voice_unavailable"));
    app.patch(&format!("/api/admin/ai-models/{GPT_REALTIME}"), &app.master, None, json!({"isActive": true})).await;

    app.patch(
        &format!("/api/admin/companies/{company}/settings"),
        &app.master,
        None,
        json!({"features": {"callEnabled": false}}),
    )
    .await;
    let disabled = app.open_session(&bot, Some("https://shop.example.com")).await;
    assert_eq!((disabled.status, disabled.code()), (StatusCode::FORBIDDEN, "calls_disabled"));

    // Without a provider key there is no voice.
    let keyless = spawn_app().await;
    let (_, keyless_admin) = keyless.company_with_admin("Solo", true).await;
    let keyless_bot =
        keyless.call_chatbot(keyless.state.store.list_companies().await.unwrap()[0].id, &keyless_admin).await;
    let unavailable = keyless.open_session(&keyless_bot, None).await;
    assert_eq!((unavailable.status, unavailable.code()), (StatusCode::SERVICE_UNAVAILABLE, "voice_unavailable"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_are_rate_limited_per_client_address() {
    let _serial = media_timing_lock().await;
    let mock = MockOpenAiRealtime::start(mock_config()).await;
    let (app, bot, _) = spawn_call_app(&mock, |args| args.widget_sessions_per_minute = 2).await;
    assert_eq!(app.open_session(&bot, None).await.status, StatusCode::CREATED);
    assert_eq!(app.open_session(&bot, None).await.status, StatusCode::CREATED);
    let limited = app.open_session(&bot, None).await;
    assert_eq!((limited.status, limited.code()), (StatusCode::TOO_MANY_REQUESTS, "rate_limited"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_websocket_input_is_answered_and_the_call_goes_on() {
    let _serial = media_timing_lock().await;
    let mock = MockOpenAiRealtime::start(mock_config()).await;
    let (app, bot, _) = spawn_call_app(&mock, |_| {}).await;
    let (caller, _) = dial(&app, &bot).await;
    caller.send_text("this is not json").await;
    caller.wait_for_event(5 * SECOND, |e| e["type"] == "error" && e["code"] == "invalid_message").await.unwrap();
    caller.send(json!({"type": "dance"})).await;
    caller.wait_for_event(5 * SECOND, |e| e["type"] == "error" && e["code"] == "unknown_type").await.unwrap();
    caller.send(json!({"type": "mute", "muted": "very"})).await;
    caller.wait_for_state("active", 10 * SECOND).await.unwrap();
    caller.hang_up().await;
    assert_eq!(caller.wait_for_state("ended", 5 * SECOND).await.unwrap()["reason"], "caller_hangup");
    caller.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversize_message_closes_the_socket_and_ends_the_call() {
    let _serial = media_timing_lock().await;
    let mock = MockOpenAiRealtime::start(mock_config()).await;
    let (app, bot, _) = spawn_call_app(&mock, |_| {}).await;
    let (caller, call_id) = dial(&app, &bot).await;
    caller.wait_for_state("active", 10 * SECOND).await.unwrap();
    caller.send(json!({"type": "offer", "sdp": "x".repeat(100_000)})).await;
    let closed = caller.wait_for_event(5 * SECOND, |e| e["type"] == "_closed").await.unwrap();
    assert_eq!(closed["code"], 1009, "closed as the protocol promises (message too big): {closed}");
    let ended = async {
        loop {
            let call = app.state.store.call(call_id).await.unwrap().unwrap();
            if call.status.is_final() {
                return call;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    };
    let call = tokio::time::timeout(5 * SECOND, ended).await.unwrap();
    assert_eq!(call.end_reason, Some(EndReason::CallerHangup));
    caller.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_and_expired_tokens_are_refused() {
    let _serial = media_timing_lock().await;
    let mock = MockOpenAiRealtime::start(mock_config()).await;
    let (app, bot, _) = spawn_call_app(&mock, |args| args.widget_session_ttl_seconds = 1).await;
    let session = app.open_session(&bot, None).await;
    let url = session.body["wsUrl"].as_str().unwrap();
    let wrong = url.replace("token=cs_", "token=cs_x");
    let caller = Caller::dial(&wrong).await.unwrap();
    let error = caller.wait_for_event(5 * SECOND, |e| e["type"] == "error").await.unwrap();
    assert_eq!(error["code"], "invalid_token");
    caller.wait_for_event(5 * SECOND, |e| e["type"] == "_closed").await.unwrap();
    caller.close().await;

    tokio::time::sleep(Duration::from_millis(1200)).await;
    let caller = Caller::dial(url).await.unwrap();
    let error = caller.wait_for_event(5 * SECOND, |e| e["type"] == "error").await.unwrap();
    assert_eq!(error["code"], "session_expired");
    caller.close().await;
    let call =
        app.state.store.call(session.body["sessionId"].as_str().unwrap().parse().unwrap()).await.unwrap().unwrap();
    assert_eq!((call.status, call.end_reason), (CallStatus::Failed, Some(EndReason::Expired)));

    // A session connects once.
    let fresh = app.open_session(&bot, None).await;
    let url = fresh.body["wsUrl"].as_str().unwrap();
    let first = Caller::dial(url).await.unwrap();
    first.wait_for_state("connecting", 5 * SECOND).await.unwrap();
    let second = Caller::dial(url).await.unwrap();
    assert_eq!(second.wait_for_event(5 * SECOND, |e| e["type"] == "error").await.unwrap()["code"], "session_ended");
    first.close().await;
    second.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_provider_is_retried_then_the_call_fails_with_the_transcript_kept() {
    let _serial = media_timing_lock().await;
    let mock = MockOpenAiRealtime::start(OpenAiRealtimeConfig {
        faults: testkit::mock_openai_realtime::OpenAiFaults {
            reject_handshakes: HandshakeRejection::All,
            ..Default::default()
        },
        ..mock_config()
    })
    .await;
    let (app, bot, _) = spawn_call_app(&mock, |_| {}).await;
    let (caller, call_id) = dial(&app, &bot).await;
    let error = caller.wait_for_event(10 * SECOND, |e| e["type"] == "error").await.unwrap();
    assert_eq!((error["code"].as_str(), error["retryable"].as_bool()), (Some("provider_unavailable"), Some(true)));
    let ended = caller.wait_for_state("ended", 5 * SECOND).await.unwrap();
    assert_eq!(ended["reason"], "provider_error");
    assert_eq!(mock.state().rejected_handshakes, 4, "the first attempt and 3 retries");
    let call = app.state.store.call(call_id).await.unwrap().unwrap();
    assert_eq!((call.status, call.end_reason), (CallStatus::Failed, Some(EndReason::ProviderError)));
    caller.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_caller_whose_network_vanishes_ends_with_network_lost() {
    let _serial = media_timing_lock().await;
    let mock = MockOpenAiRealtime::start(mock_config()).await;
    let (app, bot, _) = spawn_call_app(&mock, |_| {}).await;
    let (caller, call_id) = dial(&app, &bot).await;
    caller.wait_for_state("active", 10 * SECOND).await.unwrap();
    caller.vanish().await;
    let ended = caller.wait_for_state("ended", 15 * SECOND).await.unwrap();
    assert_eq!(ended["reason"], "network_lost");
    let call = app.state.store.call(call_id).await.unwrap().unwrap();
    assert_eq!((call.status, call.end_reason), (CallStatus::Failed, Some(EndReason::NetworkLost)));
    caller.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_that_never_connects_ends_by_itself() {
    let _serial = media_timing_lock().await;
    let mock = MockOpenAiRealtime::start(mock_config()).await;
    let (app, bot, _) = spawn_call_app(&mock, |args| args.call_connect_limit_seconds = 2).await;
    let session = app.open_session(&bot, None).await;
    // A client that opens the socket and never sends an offer.
    let (mut socket, _) = tokio_tungstenite::connect_async(session.body["wsUrl"].as_str().unwrap()).await.unwrap();
    let ended = async {
        use futures::StreamExt;
        while let Some(Ok(message)) = socket.next().await {
            if let tokio_tungstenite::tungstenite::Message::Text(text) = message {
                let event: serde_json::Value = serde_json::from_str(&text).unwrap();
                if event["state"] == "ended" {
                    return event;
                }
            }
        }
        panic!("the socket closed without an ended state");
    };
    let event = tokio::time::timeout(10 * SECOND, ended).await.unwrap();
    assert_eq!(event["reason"], "network_lost");
    let id: CallId = session.body["sessionId"].as_str().unwrap().parse().unwrap();
    let call = app.state.store.call(id).await.unwrap().unwrap();
    assert_eq!((call.status, call.end_reason), (CallStatus::Failed, Some(EndReason::NetworkLost)));
    mock.wait_for(|s| s.connections.iter().all(|c| c.closed_at.is_some()), 5 * SECOND).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_end_endpoint_hangs_up_a_live_call() {
    let _serial = media_timing_lock().await;
    let mock = MockOpenAiRealtime::start(mock_config()).await;
    let (app, bot, _) = spawn_call_app(&mock, |_| {}).await;
    let session = app.open_session(&bot, None).await;
    let caller = Caller::dial(session.body["wsUrl"].as_str().unwrap()).await.unwrap();
    caller.wait_for_state("active", 10 * SECOND).await.unwrap();
    let id = session.body["sessionId"].as_str().unwrap();
    let wrong = app
        .http
        .post(format!("{}/api/widget/call/{id}/end", app.base))
        .json(&json!({"token": "cs_wrong"}))
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
    let token = session.body["token"].as_str().unwrap();
    let end = app
        .http
        .post(format!("{}/api/widget/call/{id}/end", app.base))
        .json(&json!({"token": token}))
        .send()
        .await
        .unwrap();
    assert_eq!(end.status(), StatusCode::NO_CONTENT);
    assert_eq!(caller.wait_for_state("ended", 5 * SECOND).await.unwrap()["reason"], "caller_hangup");
    caller.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_outlives_the_realtime_session_limit_with_its_conversation_carried_over() {
    let _serial = media_timing_lock().await;
    let mock = MockOpenAiRealtime::start(OpenAiRealtimeConfig {
        reply: MockReply::tone("We are open nine to five.", 800),
        faults: testkit::mock_openai_realtime::OpenAiFaults {
            session_cap: Some(Duration::from_secs(4)),
            ..Default::default()
        },
        ..mock_config()
    })
    .await;
    let (app, bot, admin) = spawn_call_app(&mock, |_| {}).await;
    app.set_call_settings(&bot, &admin, json!({"greetingMessage": ""})).await;
    let (caller, call_id) = dial(&app, &bot).await;
    caller.wait_for_state("active", 10 * SECOND).await.unwrap();
    caller.say(utterance(1000)).await;
    caller.wait_until_heard(500, -50.0, 10 * SECOND).await.unwrap();

    // The first session reaches its limit; the gateway moves the call to a new one.
    mock.wait_for(|s| s.connections.len() >= 2, 10 * SECOND).await.unwrap();
    let heard_before = caller.loud_frames(-50.0).len();
    tokio::time::sleep(SECOND).await;
    caller.say(utterance(1000)).await;
    let more_audio = async {
        while caller.loud_frames(-50.0).len() < heard_before + 20 {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    };
    tokio::time::timeout(10 * SECOND, more_audio).await.expect("the agent answers in the new session");

    let second = mock.connections()[1].clone();
    let instructions = second.session["instructions"].as_str().unwrap_or_default().to_owned();
    assert!(instructions.contains("Caller: What are your business hours?"), "{instructions}");
    assert!(instructions.contains("Agent: We are open nine to five."), "{instructions}");
    caller.hang_up().await;
    assert_eq!(caller.wait_for_state("ended", 5 * SECOND).await.unwrap()["reason"], "caller_hangup");
    let call = app.state.store.call(call_id).await.unwrap().unwrap();
    assert_eq!(call.status, CallStatus::Completed);
    assert!(mock.client_errors().is_empty(), "{:?}", mock.client_errors());
    caller.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutting_down_ends_live_calls_with_their_transcripts_saved() {
    let _serial = media_timing_lock().await;
    let mock = MockOpenAiRealtime::start(OpenAiRealtimeConfig {
        reply: MockReply::tone("Hello there!", 600),
        ..mock_config()
    })
    .await;
    let (app, bot, _) = spawn_call_app(&mock, |_| {}).await;
    let (caller, call_id) = dial(&app, &bot).await;
    caller.wait_for_state("active", 10 * SECOND).await.unwrap();
    caller
        .wait_for_event(10 * SECOND, |e| e["type"] == "transcript" && e["role"] == "agent" && e["final"] == true)
        .await
        .unwrap();
    app.state.shutdown.cancel();
    let ended = caller.wait_for_state("ended", 5 * SECOND).await.unwrap();
    assert_eq!(ended["reason"], "shutdown");
    // The gateway closed its pool on the way out: read the file afresh.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let url = format!("sqlite://{}", app.data_dir.path().join("gateway.db").display());
    let store = gateway::store::Store::connect(&url, 1).await.unwrap();
    let call = store.call(call_id).await.unwrap().unwrap();
    assert_eq!((call.status, call.end_reason), (CallStatus::Failed, Some(EndReason::Shutdown)));
    let lines = store.transcript(call_id).await.unwrap();
    assert_eq!(lines[0].content, "Hello there!", "the greeting line was kept");
    caller.close().await;
}

// --- the signaling socket before the offer --------------------------------------------

type Socket = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// Opens a call session and its signaling WebSocket, and sends nothing: what an idle (or
/// hostile) client does.
async fn silent_socket(app: &TestApp, bot: &str) -> (Socket, CallId) {
    let session = app.open_session(bot, None).await;
    assert_eq!(session.status, StatusCode::CREATED, "{}", session.text);
    let (socket, _) = tokio_tungstenite::connect_async(session.body["wsUrl"].as_str().unwrap()).await.unwrap();
    (socket, session.body["sessionId"].as_str().unwrap().parse().unwrap())
}

/// The next JSON message on a raw socket.
async fn next_message(socket: &mut Socket) -> Value {
    use futures::StreamExt;
    use tokio_tungstenite::tungstenite::Message;
    let read = async {
        loop {
            match socket.next().await {
                Some(Ok(Message::Text(text))) => return serde_json::from_str(&text).unwrap(),
                Some(Ok(_)) => continue,
                other => panic!("the socket ended before a message: {other:?}"),
            }
        }
    };
    tokio::time::timeout(5 * SECOND, read).await.expect("a message within 5 s")
}

/// Reads a raw socket until the gateway closes it: the JSON messages, and the close code.
async fn until_closed(socket: &mut Socket) -> (Vec<Value>, Option<u16>) {
    use futures::StreamExt;
    use tokio_tungstenite::tungstenite::Message;
    let read = async {
        let mut messages = Vec::new();
        loop {
            match socket.next().await {
                Some(Ok(Message::Text(text))) => messages.push(serde_json::from_str(&text).unwrap()),
                Some(Ok(Message::Close(close))) => return (messages, close.map(|c| u16::from(c.code))),
                Some(Ok(_)) => continue,
                Some(Err(_)) | None => return (messages, None),
            }
        }
    };
    tokio::time::timeout(5 * SECOND, read).await.expect("the gateway closes the socket within 5 s")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_sockets_open_no_provider_session_and_are_bounded_per_address() {
    let _serial = media_timing_lock().await;
    let mock = MockOpenAiRealtime::start(mock_config()).await;
    let (app, bot, _) = spawn_call_app(&mock, |args| args.max_pending_sockets_per_ip = 3).await;

    // Sockets that never offer hold their place, but reach no provider.
    let mut idle = Vec::new();
    for _ in 0..3 {
        let (mut socket, _) = silent_socket(&app, &bot).await;
        assert_eq!(next_message(&mut socket).await, json!({"type": "state", "state": "connecting"}));
        idle.push(socket);
    }
    let (mut refused, refused_id) = silent_socket(&app, &bot).await;
    let (messages, code) = until_closed(&mut refused).await;
    assert_eq!(messages.len(), 1, "{messages:?}");
    assert_eq!((&messages[0]["code"], &messages[0]["retryable"]), (&json!("too_many_pending"), &json!(true)));
    assert_eq!(code, Some(4429));
    let row = app.state.store.call(refused_id).await.unwrap().unwrap();
    assert_eq!(row.status, CallStatus::Pending, "the refused session can be tried again");
    tokio::time::sleep(SECOND).await;
    assert_eq!(mock.state().handshakes, 0, "idle sockets made provider handshakes");

    // One goes away: its place is free, and a caller who offers opens the provider.
    drop(idle.pop());
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (caller, _) = dial(&app, &bot).await;
    caller.wait_for_state("active", 10 * SECOND).await.unwrap();
    assert_eq!(mock.state().handshakes, 1, "one provider session, for the call that offered");

    // The offer gave the caller's place back: another socket may wait beside the two.
    let (mut another, _) = silent_socket(&app, &bot).await;
    assert_eq!(next_message(&mut another).await, json!({"type": "state", "state": "connecting"}));
    assert_eq!(mock.state().handshakes, 1);
    caller.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_socket_for_a_chatbot_that_can_no_longer_take_calls_gets_the_session_apis_code() {
    let mock = MockOpenAiRealtime::start(mock_config()).await;
    let (app, bot, admin) = spawn_call_app(&mock, |_| {}).await;
    let company = app.state.store.list_companies().await.unwrap()[0].id;
    // A session opened while the chatbot could take calls, connected after `change`.
    let connect_after = |change: Value, path: String, token: String| {
        let app = &app;
        let bot = bot.clone();
        async move {
            let session = app.open_session(&bot, None).await;
            assert_eq!(session.status, StatusCode::CREATED, "{}", session.text);
            let changed = app.patch(&path, &token, None, change).await;
            assert_eq!(changed.status, StatusCode::OK, "{}", changed.text);
            let (mut socket, _) =
                tokio_tungstenite::connect_async(session.body["wsUrl"].as_str().unwrap()).await.unwrap();
            let (messages, code) = until_closed(&mut socket).await;
            let error = messages.iter().find(|m| m["type"] == "error").cloned().unwrap_or(Value::Null);
            let call: CallId = session.body["sessionId"].as_str().unwrap().parse().unwrap();
            let row = app.state.store.call(call).await.unwrap().unwrap();
            (error, code, row)
        }
    };

    // The chatbot became a chat chatbot.
    let (error, code, row) =
        connect_after(json!({"chatbotType": "chat"}), format!("/api/company/chatbots/{bot}"), admin.clone()).await;
    assert_eq!((&error["code"], &error["retryable"]), (&json!("not_a_call_chatbot"), &json!(false)), "{error}");
    assert_eq!(code, Some(4409));
    assert_eq!((row.status, row.end_reason), (CallStatus::Failed, Some(EndReason::Error)));

    // Voice calls were switched off for the company.
    let back = app.patch(&format!("/api/company/chatbots/{bot}"), &admin, None, json!({"chatbotType": "call"})).await;
    assert_eq!(back.status, StatusCode::OK, "{}", back.text);
    let (error, code, row) = connect_after(
        json!({"features": {"callEnabled": false}}),
        format!("/api/admin/companies/{company}/settings"),
        app.master.clone(),
    )
    .await;
    assert_eq!((&error["code"], &error["retryable"]), (&json!("calls_disabled"), &json!(false)), "{error}");
    assert_eq!(code, Some(4409));
    assert_eq!((row.status, row.end_reason), (CallStatus::Failed, Some(EndReason::Error)));
    assert_eq!(mock.state().handshakes, 0, "no provider session for a refused call");
}
