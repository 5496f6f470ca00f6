//! Escalation on a live call, the session's side: the model calls `escalate_to_human`, the
//! caller hears the hold message and is offered to the company's agents; nobody available
//! → the AI says the agents are busy and takes a message with `take_message`, which lands
//! in the ticket inbox; a caller hanging up while waiting withdraws the offer.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use common::*;
use futures::{SinkExt, StreamExt};
use gateway::domain::{CallStatus, TranscriptRole};
use gateway::ids::CallId;
use gateway::store::Role;
use reqwest::StatusCode;
use serde_json::{Value, json};
use testkit::{Caller, MockOpenAiRealtime, MockReply, OpenAiRealtimeConfig, ScriptedToolCall, utterance};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

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
    assert!(mock.client_errors().is_empty(), "{:?}", mock.client_errors());
}

type Socket = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// An available agent console of a new support agent of the call's company.
async fn available_agent(app: &TestApp, id: CallId) -> (String, Socket) {
    let company = app.state.store.call(id).await.unwrap().unwrap().company_id;
    let user = app.state.store.create_user("agent@acme.test", None, Role::SupportAgent, &[company]).await.unwrap();
    let token = app.state.store.create_api_token(user.id, "test").await.unwrap();
    let mut request = format!("ws://{}/api/agent/ws", app.addr).into_client_request().unwrap();
    request.headers_mut().insert("Authorization", format!("Bearer {token}").parse().unwrap());
    let mut socket = tokio_tungstenite::connect_async(request).await.unwrap().0;
    let presence = json!({"type": "presence", "status": "available"}).to_string();
    socket.send(Message::Text(presence.into())).await.unwrap();
    assert_eq!(next_of(&mut socket, "presence").await["status"], "available");
    (token, socket)
}

/// The next message of `kind` on an agent console (others skipped).
async fn next_of(socket: &mut Socket, kind: &str) -> Value {
    let find = async {
        loop {
            if let Message::Text(text) = socket.next().await.unwrap().unwrap() {
                let message: Value = serde_json::from_str(&text).unwrap();
                if message["type"] == kind {
                    return message;
                }
            }
        }
    };
    tokio::time::timeout(10 * SECOND, find).await.unwrap_or_else(|_| panic!("a {kind} message"))
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

    // The session takes the acceptance and goes on holding the caller (the agent's media
    // leg is not served yet); it must neither die nor hand the caller back early.
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
