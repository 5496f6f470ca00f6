//! The public widget API (no auth; CORS open, every refusal explained):
//! open a call session, end it, and the call's signaling WebSocket
//! (docs/widget-protocol.md).

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket, WebSocketUpgrade};
use axum::extract::{ConnectInfo, Path, Query, State};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use tower_http::cors::{Any, CorsLayer};

use super::error::{ApiError, ApiResult};
use super::json::ApiJson;
use super::path_id;
use crate::app::AppState;
use crate::call::messages::{ClientInput, ClientMessage, ServerMessage, WidgetState};
use crate::call::session::CallSetup;
use crate::crypto;
use crate::ids::{CallId, ChatbotId};
use crate::providers::SessionSpec;
use crate::store::{AiModel, Call, CallSource, Chatbot, ChatbotType, EndReason, NewCall};
use crate::time::{now_ms, rfc3339};
use crate::voices;

/// Largest WebSocket message accepted from a client (SDP offers are a few KiB).
const MAX_WS_MESSAGE: usize = 64 * 1024;

pub fn router() -> Router<AppState> {
    let cors = CorsLayer::new()
        .allow_origin(Any)
        .allow_methods([Method::GET, Method::POST])
        .allow_headers([header::CONTENT_TYPE])
        .max_age(Duration::from_secs(3600));
    Router::new()
        .route("/api/widget/call/session", post(create_session))
        .route("/api/widget/call/{id}/end", post(end_call))
        .route("/api/widget/call/{id}/ws", get(call_socket))
        .layer(cors)
}

/// Body of `POST /api/widget/call/session`.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct SessionBody {
    chatbot_id: String,
}

/// A new call session.
#[derive(Serialize, Debug)]
#[serde(rename_all = "camelCase")]
pub struct SessionView {
    pub session_id: CallId,
    pub token: String,
    pub ws_url: String,
    pub ice_servers: Vec<IceServerView>,
    pub expires_at: String,
}

/// An ICE server as `RTCPeerConnection` takes it.
#[derive(Serialize, Debug, Clone)]
pub struct IceServerView {
    pub urls: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub credential: Option<String>,
}

/// The client's IP: the socket peer, or the first `X-Forwarded-For` hop behind a trusted proxy.
fn client_ip(headers: &HeaderMap, peer: SocketAddr, trust_forwarded: bool) -> IpAddr {
    if trust_forwarded {
        let forwarded = headers
            .get("x-forwarded-for")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(',').next())
            .and_then(|v| v.trim().parse().ok());
        if let Some(ip) = forwarded {
            return ip;
        }
    }
    peer.ip()
}

async fn create_session(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    ApiJson(body): ApiJson<SessionBody>,
) -> Response {
    let ip = client_ip(&headers, peer, state.config.trust_forwarded_for);
    if let Err(wait) = state.widget_limiter.check(ip) {
        let retry_after = wait.as_secs().max(1).to_string();
        let error = ApiError::rate_limited("too many call sessions from this address; try again shortly");
        return ([(header::RETRY_AFTER, retry_after)], error).into_response();
    }
    let origin = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok());
    match open_session(&state, &body.chatbot_id, origin, false).await {
        Ok(view) => (StatusCode::CREATED, Json(view)).into_response(),
        Err(err) => err.into_response(),
    }
}

/// What a call needs, once every check passed.
pub struct CallPlan {
    pub chatbot: Chatbot,
    pub model: AiModel,
}

/// Checks that `chatbot_id` can take a call from `origin` (test calls skip the origin check).
pub async fn plan_call(state: &AppState, chatbot_id: &str, origin: Option<&str>, test: bool) -> ApiResult<CallPlan> {
    let id: ChatbotId = chatbot_id.parse().map_err(|_| ApiError::not_found("chatbot").with_field("chatbotId"))?;
    let chatbot = state.store.chatbot_for_widget(id).await?.ok_or_else(|| ApiError::not_found("chatbot"))?;
    let company = state.store.company(chatbot.company_id).await?.ok_or_else(|| ApiError::not_found("chatbot"))?;
    if !company.settings.features.call_enabled {
        return Err(ApiError::forbidden("voice calls are not enabled for this chatbot's company").with_code("calls_disabled"));
    }
    if chatbot.chatbot_type != ChatbotType::Call {
        return Err(ApiError::conflict("not_a_call_chatbot", "this chatbot does not take voice calls"));
    }
    if !test && !chatbot.settings.widget.allows_origin(origin) {
        return Err(ApiError::forbidden(format!("calls to this chatbot are not allowed from {}", origin.unwrap_or("pages without an Origin")))
            .with_code("origin_not_allowed"));
    }
    let unavailable = |why: &str| {
        ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "voice_unavailable", format!("voice calls are temporarily unavailable: {why}"))
    };
    let model_id = chatbot.call_model_id.ok_or_else(|| unavailable("no call model is configured"))?;
    let model = state.store.model(model_id).await?.ok_or_else(|| unavailable("the call model no longer exists"))?;
    if !model.usable_for_calls() {
        return Err(unavailable("the call model is not active"));
    }
    if !state.providers.is_available(&model) {
        return Err(unavailable("the voice provider is not configured"));
    }
    Ok(CallPlan { chatbot, model })
}

/// Opens a session: checks, then a `pending` call row with a fresh token.
pub async fn open_session(state: &AppState, chatbot_id: &str, origin: Option<&str>, test: bool) -> ApiResult<SessionView> {
    let plan = plan_call(state, chatbot_id, origin, test).await?;
    let token = crypto::new_token("cs_");
    let ttl = Duration::from_secs(state.config.widget_session_ttl_seconds);
    let expires_at = now_ms() + ttl.as_millis() as i64;
    let call = state
        .store
        .create_call(NewCall {
            company_id: plan.chatbot.company_id,
            chatbot_id: plan.chatbot.id,
            source: CallSource::Web,
            is_test: test,
            caller: origin.map(str::to_owned),
            provider: plan.model.provider.as_str().to_owned(),
            model_id: plan.model.model_id.clone(),
            node_id: state.node_id.to_string(),
            token_hash: Some(crypto::token_hash(&token)),
            token_expires_at: Some(expires_at),
        })
        .await?;
    tracing::info!(call_id = %call.id, company_id = %call.company_id, chatbot_id = %call.chatbot_id, test, "call session opened");
    let ws_base = state.public_base.replacen("http", "ws", 1);
    Ok(SessionView {
        session_id: call.id,
        ws_url: format!("{ws_base}/api/widget/call/{}/ws?token={token}", call.id),
        token,
        ice_servers: ice_servers(state),
        expires_at: rfc3339(expires_at),
    })
}

/// The STUN/TURN servers for browsers, from the configuration.
pub fn ice_servers(state: &AppState) -> Vec<IceServerView> {
    let config = &state.config;
    let (turn, stun): (Vec<String>, Vec<String>) =
        config.ice_servers.iter().filter(|u| !u.trim().is_empty()).cloned().partition(|u| u.starts_with("turn"));
    let mut servers = Vec::new();
    if !stun.is_empty() {
        servers.push(IceServerView { urls: stun, username: None, credential: None });
    }
    if !turn.is_empty() {
        servers.push(IceServerView { urls: turn, username: config.turn_username.clone(), credential: config.turn_credential.clone() });
    }
    servers
}

/// Body of `POST /api/widget/call/{id}/end`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EndBody {
    token: String,
}

/// A call by id whose session token is `token` (constant-time check).
async fn call_with_token(state: &AppState, raw_id: &str, token: &str) -> ApiResult<Call> {
    let id: CallId = path_id(raw_id, "call")?;
    let call = state.store.call(id).await?.ok_or_else(|| ApiError::not_found("call"))?;
    let valid = call.token_hash.as_deref().is_some_and(|h| crypto::constant_time_eq(h.as_bytes(), crypto::token_hash(token).as_bytes()));
    if !valid {
        return Err(ApiError::new(StatusCode::UNAUTHORIZED, "invalid_token", "the session token is not valid for this call"));
    }
    Ok(call)
}

async fn end_call(State(state): State<AppState>, Path(id): Path<String>, ApiJson(body): ApiJson<EndBody>) -> ApiResult<StatusCode> {
    let call = call_with_token(&state, &id, &body.token).await?;
    if !state.calls.hang_up(call.id).await && !call.status.is_final() {
        // Not live here: the caller never connected (or the node holding it is gone).
        state.store.end_call(call.id, EndReason::CallerHangup, now_ms(), None).await?;
    }
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize)]
struct TokenQuery {
    #[serde(default)]
    token: String,
}

async fn call_socket(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Query(query): Query<TokenQuery>,
    upgrade: WebSocketUpgrade,
) -> Response {
    upgrade
        .max_message_size(MAX_WS_MESSAGE)
        .max_frame_size(MAX_WS_MESSAGE)
        .on_upgrade(move |socket| serve_socket(state, id, query.token, socket))
}

/// Close codes of the signaling socket (4000–4999 are the application's).
mod close {
    pub const INVALID_TOKEN: u16 = 4401;
    pub const ENDED: u16 = 4409;
    pub const EXPIRED: u16 = 4410;
    pub const INTERNAL: u16 = 4500;
}

async fn refuse(mut socket: WebSocket, code: &'static str, message: &str, close_code: u16) {
    let error = ServerMessage::Error { code, message: message.to_owned(), retryable: false };
    let _ = socket.send(Message::Text(json(&error))).await;
    let _ = socket.send(Message::Close(Some(CloseFrame { code: close_code, reason: Utf8Bytes::from(code) }))).await;
}

fn json(message: &ServerMessage) -> Utf8Bytes {
    Utf8Bytes::from(serde_json::to_string(message).expect("server messages serialise"))
}

async fn serve_socket(state: AppState, id: String, token: String, socket: WebSocket) {
    let call = match call_with_token(&state, &id, &token).await {
        Ok(call) => call,
        Err(err) if err.code == "internal" => return refuse(socket, "internal", "internal error", close::INTERNAL).await,
        Err(_) => return refuse(socket, "invalid_token", "This call link is not valid.", close::INVALID_TOKEN).await,
    };
    if call.token_expires_at.is_some_and(|t| t < now_ms()) {
        let _ = state.store.end_call(call.id, EndReason::Expired, now_ms(), None).await;
        return refuse(socket, "session_expired", "This call session has expired; start a new call.", close::EXPIRED).await;
    }
    match state.store.mark_call_connecting(call.id, &state.node_id).await {
        Ok(true) => {}
        Ok(false) => return refuse(socket, "session_ended", "This call has already ended or is connected elsewhere.", close::ENDED).await,
        Err(err) => {
            tracing::error!(error = %err, "could not mark the call connecting");
            return refuse(socket, "internal", "internal error", close::INTERNAL).await;
        }
    }
    let setup = match call_setup(&state, &call).await {
        Ok(setup) => setup,
        Err(err) => {
            tracing::warn!(call_id = %call.id, error = %err.message, "call refused at connect");
            let _ = state.store.end_call(call.id, EndReason::Error, now_ms(), Some(&err.message)).await;
            return refuse(socket, "provider_unavailable", &err.message, close::ENDED).await;
        }
    };
    let (client, server) = state.calls.start(setup);
    pump(socket, client, server).await;
}

/// Builds the session's setup from the chatbot's current settings.
async fn call_setup(state: &AppState, call: &Call) -> ApiResult<CallSetup> {
    let chatbot = state.store.chatbot(call.company_id, call.chatbot_id).await?.ok_or_else(|| ApiError::not_found("chatbot"))?;
    let plan = plan_call(state, &chatbot.id.to_string(), None, true).await?;
    let settings = &plan.chatbot.settings.call;
    let spec = SessionSpec {
        model: plan.model.model_id.clone(),
        dialect: plan.model.realtime_dialect(),
        instructions: plan.chatbot.instructions.clone(),
        voice: voices::effective_voice(&plan.model, &settings.voice).to_owned(),
        speed: settings.voice_speed,
        vad_threshold: settings.vad_threshold,
        allow_interruption: settings.allow_interruption,
        transcription: settings.realtime_transcription,
        noise_reduction: settings.noise_suppression,
        tools: Vec::new(),
    };
    Ok(CallSetup { call_id: call.id, company_id: call.company_id, model: plan.model, spec, greeting: settings.greeting_message.clone() })
}

/// Shuttles messages between the WebSocket and the call session until the call ends.
async fn pump(mut socket: WebSocket, client: tokio::sync::mpsc::Sender<ClientInput>, mut server: tokio::sync::mpsc::Receiver<ServerMessage>) {
    loop {
        tokio::select! {
            message = server.recv() => {
                let Some(message) = message else { break };
                let ended = matches!(message, ServerMessage::State { state: WidgetState::Ended, .. });
                if socket.send(Message::Text(json(&message))).await.is_err() {
                    let _ = client.send(ClientInput::Gone).await;
                    return;
                }
                if ended {
                    let _ = socket.send(Message::Close(Some(CloseFrame { code: 1000, reason: Utf8Bytes::from_static("call ended") }))).await;
                    return;
                }
            }
            frame = socket.recv() => {
                match frame {
                    Some(Ok(Message::Text(text))) => match parse_client(&text) {
                        Ok(message) => {
                            if client.send(ClientInput::Message(message)).await.is_err() {
                                return;
                            }
                        }
                        Err(error) => {
                            let _ = socket.send(Message::Text(json(&error))).await;
                        }
                    },
                    Some(Ok(Message::Binary(_))) => {
                        let error = ServerMessage::Error { code: "invalid_message", message: "messages are JSON text frames".into(), retryable: false };
                        let _ = socket.send(Message::Text(json(&error))).await;
                    }
                    Some(Ok(Message::Ping(_) | Message::Pong(_))) => {}
                    Some(Ok(Message::Close(_))) | Some(Err(_)) | None => {
                        // The caller's page went away: the session ends the call; keep
                        // nothing else waiting on this socket.
                        let _ = client.send(ClientInput::Gone).await;
                        return;
                    }
                }
            }
        }
    }
}

/// Parses a client frame, or says what is wrong with it.
fn parse_client(text: &str) -> Result<ClientMessage, ServerMessage> {
    let invalid = |message: String| ServerMessage::Error { code: "invalid_message", message, retryable: false };
    let value: serde_json::Value = serde_json::from_str(text).map_err(|e| invalid(format!("not JSON: {e}")))?;
    let kind = value
        .get("type")
        .and_then(|t| t.as_str())
        .map(str::to_owned)
        .ok_or_else(|| invalid("a message needs a string `type`".into()))?;
    if !matches!(kind.as_str(), "offer" | "candidate" | "mute" | "end") {
        return Err(ServerMessage::Error { code: "unknown_type", message: format!("unknown message type {kind:?}"), retryable: false });
    }
    serde_json::from_value(value).map_err(|e| invalid(format!("malformed {kind}: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_frames_are_parsed_or_explained() {
        assert_eq!(parse_client(r#"{"type":"end"}"#).unwrap(), ClientMessage::End);
        let code = |text: &str| match parse_client(text) {
            Err(ServerMessage::Error { code, .. }) => code,
            other => panic!("{other:?}"),
        };
        assert_eq!(code("not json"), "invalid_message");
        assert_eq!(code(r#"{"sdp":"x"}"#), "invalid_message");
        assert_eq!(code(r#"{"type":"dance"}"#), "unknown_type");
        assert_eq!(code(r#"{"type":"mute","muted":"yes"}"#), "invalid_message");
        assert_eq!(code(r#"{"type":"offer"}"#), "invalid_message");
    }

    #[test]
    fn forwarded_for_is_used_only_behind_a_trusted_proxy() {
        let mut headers = HeaderMap::new();
        headers.insert("x-forwarded-for", "203.0.113.9, 10.0.0.1".parse().unwrap());
        let peer: SocketAddr = "127.0.0.1:5000".parse().unwrap();
        assert_eq!(client_ip(&headers, peer, false), peer.ip());
        assert_eq!(client_ip(&headers, peer, true).to_string(), "203.0.113.9");
    }
}
