//! Escalation on a live call, the session's side: the model calls `escalate_to_human`, the
//! caller hears the hold message and is offered to the company's agents; nobody available
//! → the AI says the agents are busy and takes a message with `take_message`, which lands
//! in the ticket inbox; a caller hanging up while waiting withdraws the offer. With an
//! agent who accepts and opens `join.wsUrl` (a WebRTC test client, like the console),
//! caller and agent hear each other's test tones, the AI goes quiet and only transcribes,
//! the agent hangs up or hands the caller back.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use common::agents::{self, Console, next_of};
use common::*;
use gateway::domain::{CallStatus, EndReason, TranscriptRole};
use gateway::ids::CallId;
use reqwest::StatusCode;
use serde_json::{Value, json};
use testkit::audio::tone;
use testkit::recording::tone_spans;
use testkit::{Caller, MockOpenAiRealtime, MockReply, OpenAiRealtimeConfig, ScriptedToolCall, utterance};

const SECOND: Duration = Duration::from_secs(1);
const HOLD: &str = "Let me connect you with a team member. Please hold.";

fn mock_config() -> OpenAiRealtimeConfig {
    let once =
        |name: &str, arguments| ScriptedToolCall { max_calls: Some(1), ..ScriptedToolCall::new(name, arguments) };
    OpenAiRealtimeConfig {
        reply: MockReply::tone("Okay.", 600),
        user_transcript: "I want to talk to a person.".into(),
        tool_calls: vec![
            once("escalate_to_human", json!({"reason": "wants a person"})),
            once(
                "take_message",
                json!({"name": "Ada", "callbackNumber": "+14155550100", "message": "Call me back about my order."}),
            ),
        ],
        ..OpenAiRealtimeConfig::default()
    }
}

async fn escalating_call(mock: &MockOpenAiRealtime) -> (TestApp, String, Caller, CallId) {
    let (app, bot, admin) = spawn_call_app(mock, |_| {}).await;
    app.set_call_settings(
        &bot,
        &admin,
        json!({"greetingMessage": "", "escalationEnabled": true, "escalationTimeoutSeconds": 10}),
    )
    .await;
    let session = app.open_session(&bot, None).await;
    assert_eq!(session.status, StatusCode::CREATED, "{}", session.text);
    let id: CallId = session.body["sessionId"].as_str().unwrap().parse().unwrap();
    let caller = Caller::dial(session.body["wsUrl"].as_str().unwrap()).await.unwrap();
    caller.wait_for_state("active", 10 * SECOND).await.unwrap();
    (app, admin, caller, id)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_nobody_available_the_ai_takes_a_message_that_lands_in_the_ticket_inbox() {
    let _serial = media_timing_lock().await;
    let mock = MockOpenAiRealtime::start(mock_config()).await;
    let (app, admin, caller, id) = escalating_call(&mock).await;

    // The caller asks for a person: the model escalates and is told to say the hold message.
    caller.say(utterance(1200)).await;
    mock.wait_for(
        |s| {
            s.client_events.iter().any(|e| {
                e.event["type"] == "conversation.item.create"
                    && e.event["item"]["type"] == "function_call_output"
                    && e.event["item"]["output"].as_str().is_some_and(|o| o.contains(HOLD))
            })
        },
        10 * SECOND,
    )
    .await
    .unwrap();
    // No agent is available: the AI says so at once, and offers to take a message.
    mock.wait_for(
        |s| {
            s.client_events.iter().any(|e| {
                e.event["type"] == "response.create"
                    && e.event["response"]["instructions"]
                        .as_str()
                        .is_some_and(|i| i.contains("All our agents are busy"))
            })
        },
        10 * SECOND,
    )
    .await
    .unwrap();

    // The caller leaves a message: the model calls take_message, a ticket is opened.
    tokio::time::sleep(SECOND).await;
    caller.say(utterance(1200)).await;
    let inbox = async {
        loop {
            let reply = app.get("/api/company/tickets", &admin, None).await;
            assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
            if let Some(ticket) = reply.body.as_array().and_then(|t| t.first().cloned()) {
                return ticket;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    };
    let ticket = tokio::time::timeout(15 * SECOND, inbox).await.expect("a ticket in the inbox");
    assert_eq!(ticket["name"], "Ada");
    assert_eq!(ticket["callbackNumber"], "+14155550100");
    assert_eq!(ticket["message"], "Call me back about my order.");
    assert_eq!(ticket["status"], "open");
    assert_eq!(ticket["callId"], id.to_string());

    caller.hang_up().await;
    let row = app.wait_for_call_end(id).await;
    assert_eq!(row.status, CallStatus::Completed);
    let lines = app.state.store.transcript(id).await.unwrap();
    let system: Vec<&str> =
        lines.iter().filter(|l| l.role == TranscriptRole::System).map(|l| l.content.as_str()).collect();
    assert!(
        system.iter().any(|l| l.starts_with("Escalation to a human agent requested: wants a person")),
        "{system:?}"
    );
    assert!(system.contains(&"No agent was available"), "{system:?}");
    assert!(system.iter().any(|l| l.starts_with("Tool result:") && l.contains("ticketId")), "{system:?}");
    assert_no_client_errors(&mock);
}

/// No request the mock refused, but for one race the protocol allows: "All our agents are
/// busy" is said by cancelling the hold message's response, which on a loaded machine may
/// have finished on the server before the cancel arrived (`response_cancel_not_active`;
/// the gateway speaks when the response's `response.done` comes, either way).
fn assert_no_client_errors(mock: &MockOpenAiRealtime) {
    let errors: Vec<Value> =
        mock.client_errors().into_iter().filter(|e| e["error"]["code"] != "response_cancel_not_active").collect();
    assert!(errors.is_empty(), "{errors:?}");
}

/// An available agent console of a new support agent of the call's company.
async fn available_agent(app: &TestApp, id: CallId) -> (String, Console) {
    let company = app.state.store.call(id).await.unwrap().unwrap().company_id;
    agents::available_agent(app, company, "agent@acme.test").await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_caller_who_hangs_up_while_waiting_withdraws_the_offer() {
    let _serial = media_timing_lock().await;
    let mock = MockOpenAiRealtime::start(mock_config()).await;
    let (app, _admin, caller, id) = escalating_call(&mock).await;
    // An agent is available, so the call waits for them.
    let (agent, mut console) = available_agent(&app, id).await;

    caller.say(utterance(1200)).await;
    let offered = next_of(&mut console, "escalation").await;
    assert_eq!(offered["callId"], id.to_string());
    assert_eq!(offered["reason"], "wants a person");
    let waiting = app.get("/api/agent/escalations?status=pending", &agent, None).await;
    assert_eq!(waiting.body.as_array().map(Vec::len), Some(1), "{}", waiting.text);
    // On hold, the caller is not heard by the AI: no reply to the hold.
    tokio::time::sleep(SECOND).await;
    let responses = mock.client_events().into_iter().filter(|e| e["type"] == "response.create").count();
    caller.say(utterance(1200)).await;
    tokio::time::sleep(2 * SECOND).await;
    let appended_after = mock.client_events().into_iter().filter(|e| e["type"] == "response.create").count();
    assert_eq!(appended_after, responses, "the AI does not answer a caller on hold");

    caller.hang_up().await;
    app.wait_for_call_end(id).await;
    let cancelled = next_of(&mut console, "escalation_cancelled").await;
    assert_eq!(cancelled["escalationId"], offered["escalationId"]);
    let waiting = app.get("/api/agent/escalations?status=pending", &agent, None).await;
    assert_eq!(waiting.body.as_array().map(Vec::len), Some(0), "{}", waiting.text);
    let escalation = offered["escalationId"].as_str().unwrap();
    let accept = app.post(&format!("/api/agent/escalations/{escalation}/accept"), &agent, None, json!({})).await;
    assert_eq!(accept.status, StatusCode::GONE, "{}", accept.text);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_accepted_call_stays_up_on_hold_and_ends_cleanly() {
    let _serial = media_timing_lock().await;
    let mock = MockOpenAiRealtime::start(mock_config()).await;
    let (app, _admin, caller, id) = escalating_call(&mock).await;
    let (agent, mut console) = available_agent(&app, id).await;

    caller.say(utterance(1200)).await;
    let offered = next_of(&mut console, "escalation").await;
    let escalation = offered["escalationId"].as_str().unwrap();
    let accept = app.post(&format!("/api/agent/escalations/{escalation}/accept"), &agent, None, json!({})).await;
    assert_eq!(accept.status, StatusCode::OK, "{}", accept.text);

    // The session takes the acceptance and goes on holding the caller until the agent's
    // media joins; it must neither die nor hand the caller back early.
    tokio::time::sleep(2 * SECOND).await;
    assert_eq!(app.state.store.call(id).await.unwrap().unwrap().status, CallStatus::Active);
    caller.hang_up().await;
    let row = app.wait_for_call_end(id).await;
    assert_eq!(row.status, CallStatus::Completed);
    let lines = app.state.store.transcript(id).await.unwrap();
    assert!(
        lines.iter().any(|l| l.role == TranscriptRole::System && l.content.ends_with("accepted the call")),
        "{lines:?}"
    );
    assert!(!lines.iter().any(|l| l.content == "No agent was available"), "{lines:?}");
}

/// The AI's test tone (the mock's replies), the caller's and the agent's.
const AI_HZ: f64 = 440.0;
const CALLER_HZ: f64 = 700.0;
const AGENT_HZ: f64 = 1100.0;

/// Milliseconds of a tone of `hz` in 48 kHz audio.
fn tone_ms(pcm: &[i16], hz: f64) -> u64 {
    tone_spans(pcm, 48_000, hz).iter().map(|(start, end)| end - start).sum()
}

/// A call on hold for an agent who accepted it and joined its media: (app, admin token,
/// caller, call id, the agent's media client, when the agent's leg became active).
async fn joined_call(mock: &MockOpenAiRealtime) -> (TestApp, String, Caller, CallId, Caller, std::time::Instant) {
    let (app, admin, caller, id) = escalating_call(mock).await;
    let (agent, mut console) = available_agent(&app, id).await;
    caller.say(utterance(1200)).await;
    let media = agents::accept_and_join(&app, &agent, &mut console).await;
    let joined = std::time::Instant::now();
    // The conversation so far came first, as final lines, before the leg's state.
    let events = media.events();
    let first_state = events.iter().position(|e| e["type"] == "state").unwrap();
    let before: Vec<&Value> = events[..first_state].iter().filter(|e| e["type"] == "transcript").collect();
    assert!(!before.is_empty(), "{events:?}");
    assert!(before.iter().all(|e| e["final"] == true), "{before:?}");
    assert!(before.iter().any(|e| e["role"] == "user" && e["text"] == "I want to talk to a person."), "{before:?}");
    (app, admin, caller, id, media, joined)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_who_joins_talks_with_the_caller_while_the_ai_only_transcribes() {
    let _serial = media_timing_lock().await;
    let mock = MockOpenAiRealtime::start(mock_config()).await;
    let (app, admin, caller, id, agent, joined) = joined_call(&mock).await;
    // The call row says a person is on it (the call stays active; the row is written off
    // the call's task, so it may take a moment).
    let with_human = async {
        loop {
            let row = app.get(&format!("/api/company/calls/{id}"), &admin, None).await;
            if row.body["withHuman"] == true {
                return row;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    let row = tokio::time::timeout(5 * SECOND, with_human).await.expect("the call row says a person is on it");
    assert_eq!(row.body["status"], "active", "{}", row.text);
    assert!(row.body["humanAgentId"].is_string() && row.body["humanJoinedAt"].is_string(), "{}", row.text);

    // Each hears the other's tone, forwarded; the caller hears no AI from the join on.
    caller.say(tone(48_000, CALLER_HZ as f32, 1000, 0.3)).await;
    agent.say(tone(48_000, AGENT_HZ as f32, 1000, 0.3)).await;
    tokio::time::sleep(3 * SECOND).await;
    let settled = joined + Duration::from_millis(300);
    let heard_by_agent = agent.audio_since(joined);
    let heard_by_caller = caller.audio_since(joined);
    assert!(tone_ms(&heard_by_agent, CALLER_HZ) >= 800, "{:?}", tone_spans(&heard_by_agent, 48_000, CALLER_HZ));
    assert!(tone_ms(&heard_by_caller, AGENT_HZ) >= 800, "{:?}", tone_spans(&heard_by_caller, 48_000, AGENT_HZ));
    assert_eq!(tone_ms(&caller.audio_since(settled), AI_HZ), 0, "no AI audio after the join");
    assert_eq!(tone_ms(&heard_by_agent, AGENT_HZ), 0, "the agent does not hear themselves");

    // The call's provider session stopped answering; a second one transcribes the agent.
    let listening_only =
        |e: &Value| e["type"] == "session.update" && e.to_string().contains(r#""create_response":false"#);
    let updates = mock.client_events().into_iter().filter(|e| listening_only(e)).count();
    assert!(updates >= 2, "the call's session and the agent's transcriber only transcribe");
    assert!(mock.connections().len() >= 2);

    // The agent hangs up: the caller's call ends with agent_hangup.
    agent.send(json!({"type": "end"})).await;
    let ended = caller.wait_for_state("ended", 10 * SECOND).await.unwrap();
    assert_eq!(ended["reason"], "agent_hangup");
    let agent_end = agent.wait_for_state("ended", 10 * SECOND).await.unwrap();
    assert_eq!(agent_end["reason"], "agent_hangup");
    let row = app.wait_for_call_end(id).await;
    assert_eq!(row.end_reason, Some(EndReason::AgentHangup));
    let lines = app.state.store.transcript(id).await.unwrap();
    assert!(
        lines.iter().any(|l| l.role == TranscriptRole::System && l.content.ends_with("joined the call")),
        "{lines:?}"
    );
    let joined_at = lines.iter().position(|l| l.content.ends_with("joined the call")).unwrap();
    assert!(
        lines[joined_at..].iter().any(|l| l.role == TranscriptRole::HumanAgent),
        "the agent's voice is transcribed: {lines:?}"
    );
    assert!(!lines[joined_at..].iter().any(|l| l.role == TranscriptRole::Agent), "the AI said nothing: {lines:?}");
    assert_no_client_errors(&mock);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_hands_the_caller_back_to_the_ai_which_resumes_with_the_context() {
    let _serial = media_timing_lock().await;
    let mock = MockOpenAiRealtime::start(mock_config()).await;
    let (app, _admin, caller, id, agent, _joined) = joined_call(&mock).await;
    agent.say(tone(48_000, AGENT_HZ as f32, 800, 0.3)).await;
    tokio::time::sleep(2 * SECOND).await;

    agent.send(json!({"type": "handback"})).await;
    let agent_end = agent.wait_for_state("ended", 10 * SECOND).await.unwrap();
    assert_eq!(agent_end["reason"], "transferred");
    let handed_back = std::time::Instant::now();
    // The AI answers again, told what was said while the person was on.
    mock.wait_for(
        |s| {
            s.client_events.iter().any(|e| {
                e.event["type"] == "conversation.item.create"
                    && e.event.to_string().contains("handed the call back to you")
            })
        },
        10 * SECOND,
    )
    .await
    .unwrap();
    tokio::time::sleep(2 * SECOND).await;
    assert!(tone_ms(&caller.audio_since(handed_back), AI_HZ) > 0, "the AI speaks to the caller again");
    let row = app.state.store.call(id).await.unwrap().unwrap();
    assert_eq!(row.status, CallStatus::Active);
    assert!(!row.with_human() && row.human_left_at.is_some(), "the hand-back is on the call row: {row:?}");

    caller.hang_up().await;
    let row = app.wait_for_call_end(id).await;
    assert_eq!(row.end_reason, Some(EndReason::CallerHangup));
    let lines = app.state.store.transcript(id).await.unwrap();
    assert!(
        lines.iter().any(|l| l.role == TranscriptRole::System && l.content.ends_with("handed the call back to the AI")),
        "{lines:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_caller_who_hangs_up_ends_the_agents_leg() {
    let _serial = media_timing_lock().await;
    let mock = MockOpenAiRealtime::start(mock_config()).await;
    let (app, _admin, caller, id, agent, _joined) = joined_call(&mock).await;
    caller.hang_up().await;
    let agent_end = agent.wait_for_state("ended", 10 * SECOND).await.unwrap();
    assert_eq!(agent_end["reason"], "caller_hangup");
    let row = app.wait_for_call_end(id).await;
    assert!(row.human_agent_id.is_some() && row.human_left_at == row.ended_at, "{row:?}");
    let lines = app.state.store.transcript(id).await.unwrap();
    assert!(lines.iter().any(|l| l.content.ends_with("joined the call")), "{lines:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_two_nodes_an_agent_whose_console_is_on_b_joins_the_media_of_a_call_held_by_a() {
    let _serial = media_timing_lock().await;
    let mock = MockOpenAiRealtime::start(mock_config()).await;
    let url = format!("{}/realtime", mock.ws_base_url());
    let Some(node_a) = spawn_postgres_app_with(|args| {
        args.openai_realtime_url = url.parse().unwrap();
        args.openai_api_key = Some("sk-test-openai".into());
        args.provider_backoff_ms = 50;
    })
    .await
    else {
        return;
    };
    let node_b = spawn_node(&node_a, "node-b").await;
    let (company, admin) = node_a.company_with_admin("Acme", true).await;
    let bot = node_a.call_chatbot(company, &admin).await;
    node_a
        .set_call_settings(
            &bot,
            &admin,
            json!({"greetingMessage": "", "escalationEnabled": true, "escalationTimeoutSeconds": 10}),
        )
        .await;
    let (agent_token, mut console_on_b) = agents::available_agent(&node_b, company, "agent@acme.test").await;

    let session = node_a.open_session(&bot, None).await;
    assert_eq!(session.status, StatusCode::CREATED, "{}", session.text);
    let id: CallId = session.body["sessionId"].as_str().unwrap().parse().unwrap();
    let caller = Caller::dial(session.body["wsUrl"].as_str().unwrap()).await.unwrap();
    caller.wait_for_state("active", 10 * SECOND).await.unwrap();
    caller.say(utterance(1200)).await;

    // Offered and accepted on B; the join link points at A, which holds the media.
    let agent = agents::accept_and_join(&node_b, &agent_token, &mut console_on_b).await;
    let joined = std::time::Instant::now();
    caller.say(tone(48_000, CALLER_HZ as f32, 1000, 0.3)).await;
    agent.say(tone(48_000, AGENT_HZ as f32, 1000, 0.3)).await;
    tokio::time::sleep(3 * SECOND).await;
    assert!(tone_ms(&agent.audio_since(joined), CALLER_HZ) >= 800);
    assert!(tone_ms(&caller.audio_since(joined), AGENT_HZ) >= 800);
    assert!(!node_b.state.calls.is_live(id), "the media stayed on node A");

    caller.hang_up().await;
    assert_eq!(agent.wait_for_state("ended", 10 * SECOND).await.unwrap()["reason"], "caller_hangup");
    let row = node_a.wait_for_call_end(id).await;
    assert_eq!(row.end_reason, Some(EndReason::CallerHangup));
}
