//! The agent API against a real gateway (docs/agent-protocol.md): the console socket
//! (401 at the upgrade, presence, offers with the transcript, taken and cancelled, pending
//! offers on becoming available, unavailable on disconnect), accepting (one winner, 409,
//! 410, 404 across companies), the waiting list, the ticket inbox, the escalation
//! settings, and two nodes on one Postgres database. Escalations are opened through the
//! app's `Escalations` service, as the call session opens them.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use common::*;
use futures::{SinkExt, StreamExt};
use gateway::domain::{CallSource, TranscriptRole};
use gateway::escalation::{EscalationRequest, OfferLine, PendingEscalation};
use gateway::ids::{CallId, CompanyId, UserId};
use gateway::store::Role;
use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::{self, Message};

type Socket = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

const WITHIN: Duration = Duration::from_secs(5);

/// A company with calls, its admin, a call chatbot and two support agents.
struct Tenant {
    company: CompanyId,
    admin: String,
    bot: String,
    agents: Vec<(UserId, String)>,
}

async fn tenant(app: &TestApp, name: &str) -> Tenant {
    let (company, admin) = app.company_with_admin(name, true).await;
    let bot = app.call_chatbot(company, &admin).await;
    let mut agents = Vec::new();
    for n in 0..2 {
        let email = format!("agent{n}@{}.test", name.to_lowercase());
        let user = app.state.store.create_user(&email, None, Role::SupportAgent, &[company]).await.unwrap();
        agents.push((user.id, app.state.store.create_api_token(user.id, "test").await.unwrap()));
    }
    Tenant { company, admin, bot, agents }
}

/// A live web call of the company (as the widget opens it).
async fn call(app: &TestApp, acme: &Tenant) -> CallId {
    app.state.store.create_call(web_call(acme.company, &acme.bot)).await.unwrap().id
}

/// Escalates a call as the session does when the model calls `escalate_to_human`.
async fn escalate(app: &TestApp, acme: &Tenant, call: CallId, timeout: Duration) -> PendingEscalation {
    let request = EscalationRequest {
        company_id: acme.company,
        call_id: call,
        reason: "wants to talk about a refund".into(),
        source: CallSource::Web,
        caller: Some("https://shop.example.com".into()),
        transcript: vec![
            OfferLine { role: TranscriptRole::User, text: "I want my money back.".into() },
            OfferLine { role: TranscriptRole::Agent, text: "Let me connect you with a team member.".into() },
        ],
        timeout,
    };
    app.state.escalations.open(request).await.unwrap()
}

async fn console(app: &TestApp, token: &str) -> Socket {
    let mut request = format!("ws://{}/api/agent/ws", app.addr).into_client_request().unwrap();
    request.headers_mut().insert("Authorization", format!("Bearer {token}").parse().unwrap());
    tokio_tungstenite::connect_async(request).await.unwrap().0
}

/// The next JSON message (pings and pongs skipped).
async fn next(socket: &mut Socket) -> Value {
    loop {
        let frame = tokio::time::timeout(WITHIN, socket.next()).await.expect("a message in time").unwrap().unwrap();
        if let Message::Text(text) = frame {
            return serde_json::from_str(&text).unwrap();
        }
    }
}

/// Says the agent is `status` and waits for the gateway's answer.
async fn presence(socket: &mut Socket, status: &str) {
    let message = json!({"type": "presence", "status": status}).to_string();
    socket.send(Message::Text(message.into())).await.unwrap();
    assert_eq!(next(socket).await, json!({"type": "presence", "status": status}));
}

/// An available console of `token`.
async fn available(app: &TestApp, token: &str) -> Socket {
    let mut socket = console(app, token).await;
    presence(&mut socket, "available").await;
    socket
}

fn accept_path(escalation: impl std::fmt::Display) -> String {
    format!("/api/agent/escalations/{escalation}/accept")
}

#[tokio::test]
async fn the_agent_socket_refuses_an_unauthenticated_upgrade_with_401() {
    let app = spawn_app().await;
    let refused = tokio_tungstenite::connect_async(format!("ws://{}/api/agent/ws", app.addr)).await.unwrap_err();
    let tungstenite::Error::Http(response) = refused else { panic!("{refused:?}") };
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    let body: Value = serde_json::from_slice(response.body().as_deref().unwrap()).unwrap();
    assert_eq!(body["error"]["code"], "unauthorized");

    let mut forged = format!("ws://{}/api/agent/ws", app.addr).into_client_request().unwrap();
    forged.headers_mut().insert("Authorization", "Bearer gw_forged".parse().unwrap());
    let refused = tokio_tungstenite::connect_async(forged).await.unwrap_err();
    assert!(matches!(refused, tungstenite::Error::Http(r) if r.status() == StatusCode::UNAUTHORIZED));
}

#[tokio::test]
async fn available_agents_are_offered_a_call_with_its_transcript_and_see_who_took_it() {
    let app = spawn_app().await;
    let acme = tenant(&app, "Acme").await;
    let mut first = available(&app, &acme.agents[0].1).await;
    let mut away = console(&app, &acme.agents[1].1).await;
    presence(&mut away, "away").await;

    let call = call(&app, &acme).await;
    let mut pending = escalate(&app, &acme, call, Duration::from_secs(60)).await;
    assert_eq!(pending.available_agents, 1, "the away agent does not count");
    let offer = next(&mut first).await;
    assert_eq!(offer["type"], "escalation");
    assert_eq!(offer["escalationId"], pending.id.to_string());
    assert_eq!(offer["callId"], call.to_string());
    assert_eq!(offer["reason"], "wants to talk about a refund");
    assert_eq!((offer["source"].as_str(), offer["caller"].as_str()), (Some("web"), Some("https://shop.example.com")));
    assert!(offer["waitingSince"].as_str().unwrap().ends_with('Z'));
    assert_eq!(
        offer["transcript"],
        json!([{"role": "user", "text": "I want my money back."},
               {"role": "agent", "text": "Let me connect you with a team member."}])
    );

    // The away agent comes back: the pending offer is sent at once. The waiting list says the same.
    presence(&mut away, "available").await;
    let late = next(&mut away).await;
    assert_eq!(
        (late["type"].as_str(), late["escalationId"].as_str()),
        (Some("escalation"), offer["escalationId"].as_str())
    );
    let listed = app.get("/api/agent/escalations?status=pending", &acme.agents[0].1, None).await;
    assert_eq!(listed.status, StatusCode::OK, "{}", listed.text);
    assert_eq!(listed.body.as_array().unwrap().len(), 1);
    assert_eq!(listed.body[0]["escalationId"], offer["escalationId"]);
    assert_eq!(listed.body[0]["transcript"], offer["transcript"]);

    // The second agent accepts; the first sees it taken; the call's session hears who.
    let accepted = app.post(&accept_path(pending.id), &acme.agents[1].1, None, json!({})).await;
    assert_eq!(accepted.status, StatusCode::OK, "{}", accepted.text);
    assert_eq!(accepted.body["callId"], call.to_string());
    let join = &accepted.body["join"];
    let ws_url = join["wsUrl"].as_str().unwrap();
    let token = join["token"].as_str().unwrap();
    assert_eq!(ws_url, format!("ws://{}/api/agent/call/{call}/ws?token={token}", app.addr));
    assert!(join["iceServers"].is_array() && join["expiresAt"].as_str().unwrap().ends_with('Z'));
    let taken = next(&mut first).await;
    assert_eq!(
        taken,
        json!({"type": "escalation_taken", "escalationId": pending.id.to_string(), "agentId": acme.agents[1].0.to_string()})
    );
    let heard = tokio::time::timeout(WITHIN, pending.accepted()).await.unwrap();
    assert_eq!(heard.agent.id, acme.agents[1].0);
    let joined = app.state.escalations.verify_join(call, token).await.unwrap().unwrap();
    assert_eq!((joined.escalation_id, joined.agent_id), (pending.id, acme.agents[1].0));
    assert!(app.get("/api/agent/escalations", &acme.admin, None).await.body.as_array().unwrap().is_empty());

    // Company admins use the same socket; a bad message is explained, not fatal.
    let mut admin = console(&app, &acme.admin).await;
    admin.send(Message::Text(r#"{"type":"presence","status":"busy"}"#.into())).await.unwrap();
    assert_eq!(next(&mut admin).await["code"], "invalid_message");
    admin.send(Message::Text(r#"{"type":"dance"}"#.into())).await.unwrap();
    assert_eq!(next(&mut admin).await["code"], "unknown_type");
    presence(&mut admin, "available").await;
}

#[tokio::test]
async fn of_two_agents_racing_to_accept_one_wins_and_the_other_gets_409() {
    let app = spawn_app().await;
    let acme = tenant(&app, "Acme").await;
    let call = call(&app, &acme).await;
    let pending = escalate(&app, &acme, call, Duration::from_secs(60)).await;
    let path = accept_path(pending.id);
    let (a, b) = tokio::join!(
        app.post(&path, &acme.agents[0].1, None, json!({})),
        app.post(&path, &acme.agents[1].1, None, json!({})),
    );
    let mut statuses = [a.status, b.status];
    statuses.sort();
    assert_eq!(statuses, [StatusCode::OK, StatusCode::CONFLICT], "{} / {}", a.text, b.text);
    let loser = if a.status == StatusCode::CONFLICT { a } else { b };
    assert_eq!(loser.code(), "already_taken");
}

#[tokio::test]
async fn closed_escalations_are_gone_and_other_companies_cannot_see_or_take_them() {
    let app = spawn_app().await;
    let acme = tenant(&app, "Acme").await;
    let globex = tenant(&app, "Globex").await;
    let mut watcher = available(&app, &acme.agents[0].1).await;

    // The caller hung up while waiting: the offer is withdrawn and accepting is 410.
    let hung_up = escalate(&app, &acme, call(&app, &acme).await, Duration::from_secs(60)).await;
    assert_eq!(next(&mut watcher).await["type"], "escalation");
    app.state.escalations.cancel(hung_up.id).await.unwrap();
    assert_eq!(
        next(&mut watcher).await,
        json!({"type": "escalation_cancelled", "escalationId": hung_up.id.to_string()})
    );
    let gone = app.post(&accept_path(hung_up.id), &acme.agents[0].1, None, json!({})).await;
    assert_eq!((gone.status, gone.code()), (StatusCode::GONE, "escalation_closed"));

    // Nobody accepted in time: the same.
    let timed_out = escalate(&app, &acme, call(&app, &acme).await, Duration::from_secs(60)).await;
    assert_eq!(next(&mut watcher).await["type"], "escalation");
    app.state.escalations.timed_out(timed_out.id).await.unwrap();
    assert_eq!(next(&mut watcher).await["type"], "escalation_cancelled");
    let gone = app.post(&accept_path(timed_out.id), &acme.agents[1].1, None, json!({})).await;
    assert_eq!((gone.status, gone.code()), (StatusCode::GONE, "escalation_closed"));

    // Another company's agent: nothing listed, nothing offered, 404 on accept.
    let waiting = escalate(&app, &acme, call(&app, &acme).await, Duration::from_secs(60)).await;
    let mut foreign = available(&app, &globex.agents[0].1).await;
    let listed = app.get("/api/agent/escalations", &globex.agents[0].1, None).await;
    assert_eq!((listed.status, listed.body.clone()), (StatusCode::OK, json!([])));
    let stolen = app.post(&accept_path(waiting.id), &globex.agents[0].1, None, json!({})).await;
    assert_eq!((stolen.status, stolen.code()), (StatusCode::NOT_FOUND, "not_found"));
    let bogus = app.post(&accept_path("not-an-id"), &acme.agents[0].1, None, json!({})).await;
    assert_eq!(bogus.status, StatusCode::NOT_FOUND);
    let extra = app.post(&accept_path(waiting.id), &acme.agents[0].1, None, json!({"force": true})).await;
    assert_eq!((extra.status, extra.field()), (StatusCode::UNPROCESSABLE_ENTITY, "force"), "accept takes {{}}");
    let status = app.get("/api/agent/escalations?status=closed", &acme.agents[0].1, None).await;
    assert_eq!((status.status, status.field()), (StatusCode::UNPROCESSABLE_ENTITY, "status"));
    // The Globex console saw nothing of Acme's: its next message is the answer to this.
    presence(&mut foreign, "away").await;
}

#[tokio::test]
async fn a_console_that_disconnects_makes_its_agent_unavailable() {
    let app = spawn_app().await;
    let acme = tenant(&app, "Acme").await;
    let available_now =
        || async { app.state.store.available_agents(acme.company, gateway::time::now_ms()).await.unwrap() };
    let mut socket = available(&app, &acme.agents[0].1).await;
    assert_eq!(available_now().await, 1);
    socket.close(None).await.unwrap();
    let deadline = tokio::time::Instant::now() + WITHIN;
    while available_now().await != 0 {
        assert!(tokio::time::Instant::now() < deadline, "still available after disconnecting");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let pending = escalate(&app, &acme, call(&app, &acme).await, Duration::from_secs(60)).await;
    assert_eq!(pending.available_agents, 0, "the session can say at once that nobody is free");
}

#[tokio::test]
async fn messages_taken_land_in_the_ticket_inbox_of_admins_and_agents() {
    let app = spawn_app().await;
    let acme = tenant(&app, "Acme").await;
    let globex = tenant(&app, "Globex").await;
    let call = call(&app, &acme).await;
    let ticket = app
        .state
        .escalations
        .take_message(acme.company, Some(call), "Ada Lovelace", "+15551234567", "Please call me about order 42.")
        .await
        .unwrap();
    app.state.escalations.take_message(acme.company, None, "", "", "Second message").await.unwrap();

    let inbox = app.get("/api/company/tickets", &acme.agents[0].1, None).await;
    assert_eq!(inbox.status, StatusCode::OK, "{}", inbox.text);
    assert_eq!(inbox.body.as_array().unwrap().len(), 2);
    let first = &inbox.body[1];
    assert_eq!(first["id"], ticket.id.to_string());
    assert_eq!(first["callId"], call.to_string());
    assert_eq!(
        (first["name"].as_str(), first["callbackNumber"].as_str()),
        (Some("Ada Lovelace"), Some("+15551234567"))
    );
    assert_eq!(
        (first["message"].as_str(), first["status"].as_str()),
        (Some("Please call me about order 42."), Some("open"))
    );
    let path = format!("/api/company/tickets/{}", ticket.id);
    let one = app.get(&path, &acme.admin, None).await;
    assert_eq!((one.status, one.body.clone()), (StatusCode::OK, first.clone()), "admins see the same");

    let closed = app.patch(&path, &acme.agents[1].1, None, json!({"status": "closed"})).await;
    assert_eq!((closed.status, closed.body["status"].as_str()), (StatusCode::OK, Some("closed")), "{}", closed.text);
    let open = app.get("/api/company/tickets?status=open", &acme.admin, None).await;
    assert_eq!(open.body.as_array().unwrap().len(), 1);
    assert_eq!(app.get("/api/company/tickets?status=closed", &acme.admin, None).await.body[0]["id"], first["id"]);

    let bad = app.patch(&path, &acme.admin, None, json!({"status": "done"})).await;
    assert_eq!((bad.status, bad.field()), (StatusCode::UNPROCESSABLE_ENTITY, "status"));
    let unknown = app.patch(&path, &acme.admin, None, json!({"message": "edited"})).await;
    assert_eq!((unknown.status, unknown.field()), (StatusCode::UNPROCESSABLE_ENTITY, "message"));
    let limit = app.get("/api/company/tickets?limit=0", &acme.admin, None).await;
    assert_eq!((limit.status, limit.field()), (StatusCode::UNPROCESSABLE_ENTITY, "limit"));
    assert_eq!(app.get(&path, &globex.agents[0].1, None).await.status, StatusCode::NOT_FOUND, "tenant isolation");
    let foreign = app.patch(&path, &globex.admin, None, json!({"status": "open"})).await;
    assert_eq!(foreign.status, StatusCode::NOT_FOUND);
    assert!(app.get("/api/company/tickets", &globex.admin, None).await.body.as_array().unwrap().is_empty());
    assert_eq!(app.get(&path, &acme.admin, None).await.body["status"], "closed", "refusals changed nothing");
}

#[tokio::test]
async fn escalation_is_a_call_setting_off_by_default() {
    let app = spawn_app().await;
    let acme = tenant(&app, "Acme").await;
    let path = format!("/api/company/chatbots/{}/call-settings", acme.bot);
    let settings = app.get(&path, &acme.admin, None).await;
    assert_eq!(settings.body["escalationEnabled"], false);
    assert_eq!(settings.body["escalationTimeoutSeconds"], 45);
    assert_eq!(settings.body["holdMessage"], "Let me connect you with a team member. Please hold.");
    let on =
        app.patch(&path, &acme.admin, None, json!({"escalationEnabled": true, "escalationTimeoutSeconds": 20})).await;
    assert_eq!((on.status, on.body["escalationEnabled"].as_bool()), (StatusCode::OK, Some(true)), "{}", on.text);
    for (body, field) in [
        (json!({"escalationTimeoutSeconds": 5}), "escalationTimeoutSeconds"),
        (json!({"escalationTimeoutSeconds": 301}), "escalationTimeoutSeconds"),
        (json!({"holdMessage": " "}), "holdMessage"),
        (json!({"holdMessage": "x".repeat(301)}), "holdMessage"),
    ] {
        let refused = app.patch(&path, &acme.admin, None, body).await;
        assert_eq!((refused.status, refused.field()), (StatusCode::UNPROCESSABLE_ENTITY, field));
    }
    assert_eq!(app.get(&path, &acme.admin, None).await.body["escalationTimeoutSeconds"], 20, "unchanged");
}

#[tokio::test]
async fn on_two_nodes_an_agent_on_b_is_offered_a_call_held_by_a_and_joins_node_a() {
    let Some(node_a) = spawn_postgres_app_with(|_| {}).await else { return };
    let node_b = spawn_node(&node_a, "node-b").await;
    let acme = tenant(&node_a, "Acme").await;
    let mut on_b = available(&node_b, &acme.agents[0].1).await;

    let call = call(&node_a, &acme).await;
    let mut pending = escalate(&node_a, &acme, call, Duration::from_secs(60)).await;
    assert_eq!(pending.available_agents, 1, "presence is shared through the database");
    let offer = next(&mut on_b).await;
    assert_eq!((offer["type"].as_str(), offer["callId"].as_str()), (Some("escalation"), Some(&*call.to_string())));

    let accepted = node_b.post(&accept_path(pending.id), &acme.agents[0].1, None, json!({})).await;
    assert_eq!(accepted.status, StatusCode::OK, "{}", accepted.text);
    let ws_url = accepted.body["join"]["wsUrl"].as_str().unwrap();
    assert!(ws_url.starts_with(&format!("ws://{}/api/agent/call/{call}/ws?token=", node_a.addr)), "{ws_url}");
    let heard = tokio::time::timeout(WITHIN, pending.accepted()).await.expect("node A hears the accept made on B");
    assert_eq!(heard.agent.id, acme.agents[0].0);
    let token = accepted.body["join"]["token"].as_str().unwrap();
    assert!(node_a.state.escalations.verify_join(call, token).await.unwrap().is_some());
    let taken = next(&mut on_b).await;
    assert_eq!(taken["type"], "escalation_taken");
}
