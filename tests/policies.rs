//! How calls behave (spec part 5), through a real call: silence, maximum duration, the
//! end phrase, the `end_call` tool, no-interruption mode and knowledge-base answers —
//! each ending waits for the agent's last words to be heard.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::{Duration, Instant};

use common::*;
use gateway::call::policy::lines;
use gateway::ids::{CallId, ChatbotId};
use gateway::store::{CallStatus, EndReason, TranscriptRole};
use reqwest::StatusCode;
use serde_json::{Value, json};
use testkit::{Caller, MockOpenAiRealtime, MockReply, OpenAiRealtimeConfig, ScriptedToolCall, utterance};

const SECOND: Duration = Duration::from_secs(1);

fn config(reply_ms: u32) -> OpenAiRealtimeConfig {
    OpenAiRealtimeConfig {
        reply: MockReply::tone("Sure, here you go.", reply_ms),
        user_transcript: "I have a question.".into(),
        ..OpenAiRealtimeConfig::default()
    }
}

/// Changes call settings straight in the database: tests use timings below the API's
/// minimums (seconds instead of minutes) to run quickly.
async fn raw_settings(app: &TestApp, bot: &str, change: impl FnOnce(&mut gateway::settings::CallSettings)) {
    let id: ChatbotId = bot.parse().unwrap();
    let mut chatbot = app.state.store.chatbot_for_widget(id).await.unwrap().unwrap();
    change(&mut chatbot.settings.call);
    assert!(app.state.store.update_chatbot(&chatbot).await.unwrap());
}

async fn dial(app: &TestApp, bot: &str) -> (Caller, CallId) {
    let session = app.open_session(bot, None).await;
    assert_eq!(session.status, StatusCode::CREATED, "{}", session.text);
    let caller = Caller::dial(session.body["wsUrl"].as_str().unwrap()).await.unwrap();
    caller.wait_for_state("active", 10 * SECOND).await.unwrap();
    (caller, session.body["sessionId"].as_str().unwrap().parse().unwrap())
}

/// `response.create` instructions the gateway sent, in order.
fn spoken_lines(mock: &MockOpenAiRealtime) -> Vec<String> {
    mock.client_events()
        .into_iter()
        .filter(|e| e["type"] == "response.create")
        .filter_map(|e| e["response"]["instructions"].as_str().map(str::to_owned))
        .collect()
}

/// The ended event, and a check that the agent's last audio was heard before it.
async fn ended(caller: &Caller, timeout: Duration) -> Value {
    let ended = caller.wait_for_state("ended", timeout).await.unwrap();
    let ended_at = caller.timed_events().into_iter().find(|(_, e)| e["state"] == "ended").unwrap().0;
    let last_loud = caller.loud_frames(-50.0).last().map(|h| h.at).unwrap();
    assert!(last_loud <= ended_at, "the goodbye was heard before the call ended");
    ended
}

async fn stored_end(app: &TestApp, call: CallId) -> (CallStatus, Option<EndReason>) {
    let row = app.state.store.call(call).await.unwrap().unwrap();
    (row.status, row.end_reason)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silence_brings_a_check_in_and_then_ends_the_call_for_inactivity() {
    let _serial = media_timing_lock().await;
    let mock = MockOpenAiRealtime::start(config(600)).await;
    let (app, bot, _) = spawn_call_app(&mock, |_| {}).await;
    raw_settings(&app, &bot, |s| {
        s.greeting_message = String::new();
        s.silence_timeout_seconds = 2;
    })
    .await;
    let (caller, call) = dial(&app, &bot).await;
    let started = Instant::now();
    let ended = ended(&caller, 15 * SECOND).await;
    assert!(started.elapsed() >= 3 * SECOND, "a check-in and a grace period came first");
    assert_eq!(ended["reason"], "silence_timeout");
    assert_eq!(ended["message"], lines::SILENCE_NOTICE);
    let said = spoken_lines(&mock);
    assert!(said[0].contains(lines::CHECK_IN), "{said:?}");
    assert!(said[1].contains(lines::SILENCE_FAREWELL), "{said:?}");
    assert_eq!(stored_end(&app, call).await, (CallStatus::Completed, Some(EndReason::SilenceTimeout)));
    assert!(mock.client_errors().is_empty(), "{:?}", mock.client_errors());
    caller.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answering_the_check_in_keeps_the_call_going() {
    let _serial = media_timing_lock().await;
    let mock = MockOpenAiRealtime::start(config(400)).await;
    let (app, bot, _) = spawn_call_app(&mock, |_| {}).await;
    raw_settings(&app, &bot, |s| {
        s.greeting_message = String::new();
        s.silence_timeout_seconds = 3;
    })
    .await;
    let (caller, _) = dial(&app, &bot).await;
    // After the check-in, the caller answers.
    let check_in = async {
        while spoken_lines(&mock).is_empty() {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    };
    tokio::time::timeout(10 * SECOND, check_in).await.unwrap();
    caller.say(utterance(800)).await;
    tokio::time::sleep(3 * SECOND).await;
    assert!(!caller.events().iter().any(|e| e["state"] == "ended"), "the caller answered: the call goes on");
    caller.hang_up().await;
    assert_eq!(caller.wait_for_state("ended", 5 * SECOND).await.unwrap()["reason"], "caller_hangup");
    caller.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_maximum_duration_ends_the_call_with_a_closing_line() {
    let _serial = media_timing_lock().await;
    let mock = MockOpenAiRealtime::start(config(800)).await;
    let (app, bot, _) = spawn_call_app(&mock, |_| {}).await;
    raw_settings(&app, &bot, |s| {
        s.greeting_message = String::new();
        s.max_call_duration_minutes = 0;
    })
    .await;
    let (caller, call) = dial(&app, &bot).await;
    let ended = ended(&caller, 10 * SECOND).await;
    assert_eq!(ended["reason"], "max_duration");
    assert!(spoken_lines(&mock)[0].contains(lines::MAX_DURATION_FAREWELL));
    caller.wait_until_heard(600, -50.0, SECOND).await.unwrap();
    assert_eq!(stored_end(&app, call).await, (CallStatus::Completed, Some(EndReason::MaxDuration)));
    caller.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_end_phrase_ends_the_call_after_a_goodbye() {
    let _serial = media_timing_lock().await;
    let mock = MockOpenAiRealtime::start(OpenAiRealtimeConfig {
        user_transcript: "Okay, thanks. Goodbye!".into(),
        ..config(1500)
    })
    .await;
    let (app, bot, admin) = spawn_call_app(&mock, |_| {}).await;
    app.set_call_settings(&bot, &admin, json!({"greetingMessage": "", "endCallPhrase": "goodbye"})).await;
    let (caller, call) = dial(&app, &bot).await;
    caller.say(utterance(1000)).await;
    let ended = ended(&caller, 15 * SECOND).await;
    assert_eq!(ended["reason"], "end_phrase");
    assert!(spoken_lines(&mock).iter().any(|l| l.contains(lines::END_PHRASE_FAREWELL)), "{:?}", spoken_lines(&mock));
    assert_eq!(stored_end(&app, call).await, (CallStatus::Completed, Some(EndReason::EndPhrase)));
    assert!(mock.client_errors().is_empty(), "one response at a time: {:?}", mock.client_errors());
    caller.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_end_call_tool_hangs_up_after_the_agents_own_goodbye() {
    let _serial = media_timing_lock().await;
    let mock = MockOpenAiRealtime::start(OpenAiRealtimeConfig {
        tool_call: Some(ScriptedToolCall::new("end_call", json!({}))),
        ..config(800)
    })
    .await;
    let (app, bot, admin) = spawn_call_app(&mock, |_| {}).await;
    app.set_call_settings(&bot, &admin, json!({"greetingMessage": ""})).await;
    let (caller, call) = dial(&app, &bot).await;
    caller.say(utterance(1000)).await;
    let ended = caller.wait_for_state("ended", 15 * SECOND).await.unwrap();
    assert_eq!(ended["reason"], "end_phrase");
    let tools = mock.connections()[0].session["tools"].clone();
    assert!(tools.as_array().unwrap().iter().any(|t| t["name"] == "end_call"), "{tools}");
    let lines = app.state.store.transcript(call).await.unwrap();
    assert!(lines.iter().any(|l| l.role == TranscriptRole::System && l.content.starts_with("Tool call: end_call")));
    caller.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_interruption_the_agent_finishes_its_sentence() {
    let _serial = media_timing_lock().await;
    let mock = MockOpenAiRealtime::start(config(3000)).await;
    let (app, bot, admin) = spawn_call_app(&mock, |_| {}).await;
    app.set_call_settings(&bot, &admin, json!({"greetingMessage": "", "allowInterruption": false})).await;
    let (caller, _) = dial(&app, &bot).await;
    let detection = &mock.connections()[0].session["audio"]["input"]["turn_detection"];
    assert_eq!(detection["interrupt_response"], false, "{detection}");
    caller.say(utterance(1000)).await;
    caller.wait_until_heard(500, -50.0, 10 * SECOND).await.unwrap();
    caller.say(utterance(800)).await;
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let barge_in = caller.speech_started()[1];
    let after: Vec<_> =
        caller.loud_frames(-50.0).into_iter().filter(|h| h.at > barge_in + Duration::from_millis(300)).collect();
    assert!(after.len() >= 20, "the agent kept talking over the caller");
    assert!(mock.truncates().is_empty());
    caller.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_interruption_the_indicator_says_the_agent_speaks_while_it_does() {
    let _serial = media_timing_lock().await;
    let mock = MockOpenAiRealtime::start(config(3500)).await;
    let (app, bot, admin) = spawn_call_app(&mock, |_| {}).await;
    app.set_call_settings(&bot, &admin, json!({"greetingMessage": "", "allowInterruption": false})).await;
    let (caller, _) = dial(&app, &bot).await;
    caller.say(utterance(1000)).await;
    caller.wait_until_heard(500, -50.0, 10 * SECOND).await.unwrap();
    caller.say(utterance(800)).await;
    // The caller's talking is noticed (the provider's VAD), then the agent goes on speaking.
    mock.wait_for(|s| s.count_sent("input_audio_buffer.speech_started") >= 2, 5 * SECOND).await.unwrap();
    tokio::time::sleep(Duration::from_millis(2500)).await;

    let barge_in = caller.speech_started()[1];
    // The end of the agent audio the caller talked over (without a gap of 200 ms).
    let agent_until = caller
        .loud_frames(-50.0)
        .into_iter()
        .filter(|h| h.at >= barge_in)
        .map(|h| h.at)
        .reduce(|last, at| if at.duration_since(last) < Duration::from_millis(200) { at } else { last })
        .unwrap();
    assert!(agent_until > barge_in + Duration::from_millis(1800), "the agent kept talking over the caller");
    let speaking: Vec<(Instant, Value)> =
        caller.timed_events().into_iter().filter(|(_, e)| e["type"] == "speaking").collect();
    let before = speaking.iter().rfind(|(at, _)| *at <= barge_in).map(|(_, e)| e["who"].clone());
    assert_eq!(before, Some(json!("agent")), "{speaking:?}");
    // While the caller hears the agent the indicator stays on it (a little slack for the
    // socket and the media path arriving apart).
    let changes: Vec<_> = speaking
        .iter()
        .filter(|(at, _)| *at > barge_in && *at + Duration::from_millis(300) < agent_until)
        .map(|(at, e)| (*at - barge_in, e["who"].clone()))
        .collect();
    assert!(changes.is_empty(), "the indicator left the agent while it still spoke: {changes:?}");
    caller.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_agent_answers_from_the_knowledge_base() {
    let _serial = media_timing_lock().await;
    let mock = MockOpenAiRealtime::start(OpenAiRealtimeConfig {
        tool_call: Some(ScriptedToolCall {
            max_calls: Some(1),
            ..ScriptedToolCall::new("search_knowledge_base", json!({"query": "business hours"}))
        }),
        ..config(1500)
    })
    .await;
    let (app, bot, admin) = spawn_call_app(&mock, |_| {}).await;
    app.set_call_settings(&bot, &admin, json!({"greetingMessage": "", "knowledgeBaseAccess": true})).await;
    seed_business_hours(&app, &admin, &bot).await;

    let (caller, call) = dial(&app, &bot).await;
    caller.say(utterance(1000)).await;
    mock.wait_for(|s| !s.tool_outputs.is_empty(), 10 * SECOND).await.unwrap();
    let output = mock.tool_outputs()[0].output.clone();
    assert!(output.contains("Monday-Friday, 9 AM - 5 PM"), "{output}");
    caller.wait_until_heard(1000, -50.0, 10 * SECOND).await.unwrap();
    let answer = caller
        .wait_for_event(10 * SECOND, |e| e["type"] == "transcript" && e["role"] == "agent" && e["final"] == true)
        .await
        .unwrap();
    assert!(answer["text"].as_str().unwrap().contains("Monday-Friday, 9 AM - 5 PM"), "{answer}");
    caller.hang_up().await;
    caller.wait_for_state("ended", 5 * SECOND).await.unwrap();
    let lines = app.state.store.transcript(call).await.unwrap();
    let system: Vec<_> =
        lines.iter().filter(|l| l.role == TranscriptRole::System).map(|l| l.content.as_str()).collect();
    assert!(
        system.iter().any(|l| l.starts_with("Tool call: search_knowledge_base") && l.contains("business hours")),
        "{system:?}"
    );
    assert!(system.iter().any(|l| l.starts_with("Tool result:") && l.contains("9 AM - 5 PM")), "{system:?}");
    assert!(mock.client_errors().is_empty(), "{:?}", mock.client_errors());
    caller.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_gemini_agent_answers_from_the_knowledge_base() {
    let _serial = media_timing_lock().await;
    let mock = testkit::MockGeminiLive::start(testkit::GeminiLiveConfig {
        reply: MockReply::tone("Sure, here you go.", 1500),
        user_transcript: "When are you open?".into(),
        tool_call: Some(ScriptedToolCall {
            max_calls: Some(1),
            ..ScriptedToolCall::new("search_knowledge_base", json!({"query": "business hours"}))
        }),
        ..testkit::GeminiLiveConfig::default()
    })
    .await;
    let (app, bot, admin) = spawn_gemini_app(&mock, |_| {}).await;
    app.set_call_settings(&bot, &admin, json!({"greetingMessage": "", "knowledgeBaseAccess": true})).await;
    seed_business_hours(&app, &admin, &bot).await;

    let (caller, call) = dial(&app, &bot).await;
    caller.say(utterance(1000)).await;
    mock.wait_for(|s| !s.tool_responses.is_empty(), 10 * SECOND).await.unwrap();
    let response = mock.tool_responses()[0].clone();
    assert_eq!(response.name, "search_knowledge_base");
    assert!(response.response.to_string().contains("Monday-Friday, 9 AM - 5 PM"), "{}", response.response);
    caller.wait_until_heard(1000, -50.0, 10 * SECOND).await.unwrap();
    let answer = caller
        .wait_for_event(10 * SECOND, |e| {
            e["type"] == "transcript"
                && e["role"] == "agent"
                && e["text"].as_str().is_some_and(|t| t.contains("9 AM - 5 PM"))
        })
        .await
        .unwrap();
    assert!(answer["text"].as_str().unwrap().contains("According to our records"), "{answer}");
    caller.hang_up().await;
    caller.wait_for_state("ended", 5 * SECOND).await.unwrap();
    let lines = app.state.store.transcript(call).await.unwrap();
    assert!(lines.iter().any(|l| l.role == TranscriptRole::System && l.content.contains("9 AM - 5 PM")));
    assert!(mock.errors_sent().is_empty(), "{:?}", mock.errors_sent());
    caller.close().await;
}

/// A knowledge-base category with the business hours, linked to the chatbot.
pub async fn seed_business_hours(app: &TestApp, admin: &str, bot: &str) {
    let category = app.post("/api/company/knowledge/categories", admin, None, json!({"name": "Store info"})).await;
    assert_eq!(category.status, StatusCode::CREATED, "{}", category.text);
    let category = category.body["id"].as_str().unwrap().to_owned();
    let document = app
        .post(
            &format!("/api/company/knowledge/categories/{category}/documents"),
            admin,
            None,
            json!({"title": "Opening hours", "contentType": "text/markdown",
                   "content": "# Business hours\n\nWe're open Monday-Friday, 9 AM - 5 PM.\n\n# Returns\n\nReturns are accepted within 30 days with a receipt."}),
        )
        .await;
    assert_eq!(document.status, StatusCode::CREATED, "{}", document.text);
    let linked = app
        .call(
            reqwest::Method::PUT,
            &format!("/api/company/chatbots/{bot}/knowledge-categories"),
            admin,
            None,
            Some(json!({"categoryIds": [category]})),
        )
        .await;
    assert_eq!(linked.status, StatusCode::OK, "{}", linked.text);
}
