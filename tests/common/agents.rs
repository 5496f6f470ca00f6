//! A support agent on the agent API, as tests drive it: a console socket that is
//! available, accepting an offer, and joining the call's media with a WebRTC test client.

use std::time::Duration;

use futures::{SinkExt, StreamExt};
use gateway::ids::CompanyId;
use gateway::store::Role;
use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

use super::TestApp;

/// An agent console's WebSocket.
pub type Console = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

const WITHIN: Duration = Duration::from_secs(10);

/// A new support agent of `company` (`email`), with its console connected and available:
/// (API token, console).
pub async fn available_agent(app: &TestApp, company: CompanyId, email: &str) -> (String, Console) {
    let user = app.state.store.create_user(email, None, Role::SupportAgent, &[company]).await.unwrap();
    let token = app.state.store.create_api_token(user.id, "test").await.unwrap();
    let mut request = format!("ws://{}/api/agent/ws", app.addr).into_client_request().unwrap();
    request.headers_mut().insert("Authorization", format!("Bearer {token}").parse().unwrap());
    let mut console = tokio_tungstenite::connect_async(request).await.unwrap().0;
    let presence = json!({"type": "presence", "status": "available"}).to_string();
    console.send(Message::Text(presence.into())).await.unwrap();
    assert_eq!(next_of(&mut console, "presence").await["status"], "available");
    (token, console)
}

/// The next message of `kind` on a console (others skipped).
pub async fn next_of(console: &mut Console, kind: &str) -> Value {
    let find = async {
        loop {
            if let Message::Text(text) = console.next().await.unwrap().unwrap() {
                let message: Value = serde_json::from_str(&text).unwrap();
                if message["type"] == kind {
                    return message;
                }
            }
        }
    };
    tokio::time::timeout(WITHIN, find).await.unwrap_or_else(|_| panic!("a {kind} message"))
}

/// Accepts the next escalation offered on `console` and joins its media: the agent's
/// WebRTC client, once its leg is `active`.
pub async fn accept_and_join(app: &TestApp, token: &str, console: &mut Console) -> testkit::Caller {
    let offered = next_of(console, "escalation").await;
    let escalation = offered["escalationId"].as_str().unwrap();
    let accept = app.post(&format!("/api/agent/escalations/{escalation}/accept"), token, None, json!({})).await;
    assert_eq!(accept.status, StatusCode::OK, "{}", accept.text);
    let media = testkit::Caller::dial(accept.body["join"]["wsUrl"].as_str().unwrap()).await.unwrap();
    media.wait_for_state("active", WITHIN).await.unwrap();
    media
}
