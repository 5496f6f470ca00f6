//! The agent API (docs/agent-protocol.md): the agent console's WebSocket (presence and
//! offers), accepting an escalation, and the list of waiting ones. Support agents and
//! company admins of the company (master admins naming it) use it, signed in with the
//! cookie or a bearer token.

use std::time::Duration;

use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket, WebSocketUpgrade};
use std::net::SocketAddr;

use axum::extract::{ConnectInfo, Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::error::{ApiError, ApiResult, ErrorBody};
use super::json::{ApiJson, ApiQuery};
use super::path_id;
use super::widget::{
    IceServerView, SocketClient, TokenQuery, close, ice_servers, pump, refuse, refuse_with, signaling_upgrade,
};
use crate::app::AppState;
use crate::auth::{AuthUser, COMPANY_HEADER, CompanyStaff};
use crate::call::JoinError;
use crate::escalation::AcceptRefusal;
use crate::escalation::console::{Console, ConsoleMessage, ConsoleRequest, Offer, parse_request};
use crate::ids::{CallId, CompanyId, EscalationId, PresenceId};
use crate::store::PresenceStatus;
use crate::time::{now_ms, rfc3339};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/agent/ws", get(agent_socket))
        .route("/api/agent/escalations", get(list_escalations))
        .route("/api/agent/escalations/{id}/accept", post(accept))
        .route("/api/agent/call/{id}/ws", get(call_socket))
}

/// Largest message a console may send (presence messages are tens of bytes).
const MAX_WS_MESSAGE: usize = 4 * 1024;
/// How often the gateway pings a console, and refreshes its presence row.
const PING_EVERY: Duration = Duration::from_secs(20);
/// A console silent this long (no message, no pong) is gone.
const CLIENT_SILENT_LIMIT: Duration = Duration::from_secs(65);
/// Longest a write to a console may take before it counts as gone.
const SEND_LIMIT: Duration = Duration::from_secs(5);

/// `?companyId=` of the console socket (browsers cannot set `X-Company-Id` on a WebSocket).
#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SocketQuery {
    #[serde(default)]
    company_id: Option<String>,
}

/// The agent console's WebSocket: presence in, offers out (docs/agent-protocol.md). Without
/// a valid credential the upgrade is refused with 401.
#[utoipa::path(get, path = "/api/agent/ws", tag = "agent", params(("companyId" = Option<String>, Query)),
    responses((status = 101, description = "WebSocket upgrade; JSON messages as in docs/agent-protocol.md"),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn agent_socket(
    user: AuthUser,
    State(state): State<AppState>,
    headers: HeaderMap,
    ApiQuery(query): ApiQuery<SocketQuery>,
    upgrade: WebSocketUpgrade,
) -> Response {
    let requested = match requested_company(query.company_id.as_deref(), &headers) {
        Ok(requested) => requested,
        Err(err) => return err.into_response(),
    };
    let staff = match CompanyStaff::check(user, requested, &state).await {
        Ok(staff) => staff,
        Err(err) => return err.into_response(),
    };
    let span = tracing::info_span!("agent_console", company_id = %staff.company_id, user_id = %staff.user.id);
    let upgrade = upgrade.read_buffer_size(crate::ws_frames::READ_BUFFER_BYTES);
    upgrade.max_message_size(MAX_WS_MESSAGE).max_frame_size(MAX_WS_MESSAGE).on_upgrade(move |socket| {
        tracing::Instrument::instrument(
            async move {
                let connection = PresenceId::new();
                serve_console(&state, &staff, connection, socket).await;
                // Disconnecting makes the agent unavailable (on this console).
                if let Err(err) = state.store.remove_presence(connection).await {
                    tracing::warn!(error = %err, "could not forget a closed agent console");
                }
            },
            span,
        )
    })
}

/// The company named by `?companyId=`, else by `X-Company-Id`.
fn requested_company(query: Option<&str>, headers: &HeaderMap) -> ApiResult<Option<CompanyId>> {
    if let Some(raw) = query {
        return raw.trim().parse().map(Some).map_err(|_| ApiError::invalid("companyId", "must be a company id"));
    }
    match headers.get(COMPANY_HEADER) {
        Some(value) => value.to_str().ok().and_then(|v| v.trim().parse().ok()).map(Some).ok_or_else(|| {
            ApiError::bad_request("invalid_company_header", "X-Company-Id must be a company id")
                .with_field("X-Company-Id")
        }),
        None => Ok(None),
    }
}

fn frame(message: &ConsoleMessage) -> Message {
    Message::Text(Utf8Bytes::from(serde_json::to_string(message).expect("console messages serialise")))
}

/// Writes a frame unless the console is too slow to take it; false when it failed.
async fn send_within(socket: &mut WebSocket, message: Message) -> bool {
    matches!(tokio::time::timeout(SEND_LIMIT, socket.send(message)).await, Ok(Ok(())))
}

/// Runs one console until it closes, goes silent, or the gateway shuts down.
async fn serve_console(state: &AppState, staff: &CompanyStaff, connection: PresenceId, mut socket: WebSocket) {
    let mut notices = state.escalations.notices();
    let mut console = Console::new(staff.company_id);
    let mut keepalive = tokio::time::interval_at(tokio::time::Instant::now() + PING_EVERY, PING_EVERY);
    let mut last_heard = tokio::time::Instant::now();
    loop {
        tokio::select! {
            _ = state.shutdown.cancelled() => {
                let close = CloseFrame { code: 1001, reason: Utf8Bytes::from_static("server shutting down") };
                let _ = send_within(&mut socket, Message::Close(Some(close))).await;
                return;
            }
            notice = notices.recv() => {
                let messages = match notice {
                    Ok(notice) => console.handle_notice(&notice).into_iter().collect(),
                    // This node's task fell behind: send what is pending now instead.
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => pending_offers(state, &mut console).await,
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
                };
                for message in messages {
                    if !send_within(&mut socket, frame(&message)).await {
                        return;
                    }
                }
            }
            _ = keepalive.tick() => {
                if last_heard.elapsed() > CLIENT_SILENT_LIMIT || !send_within(&mut socket, Message::Ping(Default::default())).await {
                    tracing::info!("an agent console stopped answering");
                    return;
                }
                if let Err(err) = state.store.touch_presence(connection, now_ms()).await {
                    tracing::warn!(error = %err, "could not refresh an agent's presence");
                }
            }
            received = socket.recv() => {
                last_heard = tokio::time::Instant::now();
                let text = match received {
                    Some(Ok(Message::Text(text))) => text,
                    Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
                    Some(Ok(Message::Binary(_))) => {
                        let error = ConsoleMessage::Error { code: "invalid_message", message: "messages are JSON text frames".into() };
                        if !send_within(&mut socket, frame(&error)).await { return; }
                        continue;
                    }
                    Some(Ok(Message::Close(_)) | Err(_)) | None => return,
                };
                let replies = match parse_request(&text) {
                    Ok(ConsoleRequest::Presence { status }) => set_presence(state, staff, connection, &mut console, status).await,
                    Err(error) => vec![error],
                };
                for message in replies {
                    if !send_within(&mut socket, frame(&message)).await {
                        return;
                    }
                }
            }
        }
    }
}

/// Records the console's presence and answers it; an available console then gets the
/// company's pending offers.
async fn set_presence(
    state: &AppState,
    staff: &CompanyStaff,
    connection: PresenceId,
    console: &mut Console,
    status: PresenceStatus,
) -> Vec<ConsoleMessage> {
    let stored =
        state.store.set_presence(connection, staff.user.id, staff.company_id, &state.node_id, status, now_ms()).await;
    if let Err(err) = stored {
        tracing::warn!(error = %err, "could not record an agent's presence");
        let message = "the presence could not be recorded; try again shortly".to_owned();
        return vec![ConsoleMessage::Error { code: "database_unavailable", message }];
    }
    tracing::info!(status = %status, "agent presence");
    let mut messages = vec![console.handle_presence(status)];
    if console.is_available() {
        messages.extend(pending_offers(state, console).await);
    }
    messages
}

/// The company's pending escalations this console has not been shown.
async fn pending_offers(state: &AppState, console: &mut Console) -> Vec<ConsoleMessage> {
    if !console.is_available() {
        return Vec::new();
    }
    match state.store.pending_escalations(console.company_id(), now_ms()).await {
        Ok(pending) => pending.iter().filter_map(|e| console.handle_offer(e)).collect(),
        Err(err) => {
            tracing::warn!(error = %err, "could not list pending escalations for a console");
            Vec::new()
        }
    }
}

/// Which escalations to list.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum EscalationFilter {
    /// Waiting for an agent (the only listing so far).
    #[default]
    Pending,
}

/// `?status=` of the escalation list.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EscalationsQuery {
    #[serde(default)]
    status: EscalationFilter,
}

/// The company's escalations waiting for an agent, oldest first (for a console that
/// reconnects): the same fields as the socket's `escalation` message.
#[utoipa::path(get, path = "/api/agent/escalations", tag = "agent", params(("status" = Option<EscalationFilter>, Query)),
    responses((status = 200, body = [Offer]), (status = 403, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn list_escalations(
    staff: CompanyStaff,
    State(state): State<AppState>,
    ApiQuery(query): ApiQuery<EscalationsQuery>,
) -> ApiResult<Json<Vec<Offer>>> {
    let pending = match query.status {
        EscalationFilter::Pending => state.store.pending_escalations(staff.company_id, now_ms()).await?,
    };
    Ok(Json(pending.iter().map(Offer::from).collect()))
}

/// Body of the accept: `{}`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AcceptBody {}

/// How the accepting agent joins the call's media.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct JoinView {
    /// `ws(s)://` URL of the node holding the call, carrying the token.
    ws_url: String,
    token: String,
    ice_servers: Vec<IceServerView>,
    /// Until when the token opens the WebSocket (RFC 3339).
    expires_at: String,
}

/// An accepted escalation.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AcceptView {
    /// The call, as in `GET /api/company/calls/{id}`.
    call_id: CallId,
    join: JoinView,
}

/// Accepts an escalation: the first agent wins (200); later ones get 409 `already_taken`;
/// one cancelled or timed out is 410 `escalation_closed`.
#[utoipa::path(post, path = "/api/agent/escalations/{id}/accept", tag = "agent", request_body = AcceptBody,
    params(("id" = String, Path)),
    responses((status = 200, body = AcceptView), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody, description = "already_taken"),
        (status = 410, body = ErrorBody, description = "escalation_closed")))]
pub async fn accept(
    staff: CompanyStaff,
    State(state): State<AppState>,
    Path(id): Path<String>,
    ApiJson(_body): ApiJson<AcceptBody>,
) -> ApiResult<Json<AcceptView>> {
    let id: EscalationId = path_id(&id, "escalation")?;
    let outcome = state.escalations.accept(staff.company_id, id, staff.user.id).await.map_err(|err| match err {
        crate::escalation::EscalationError::Store(err) => ApiError::from(err),
        other => ApiError::internal(other),
    })?;
    match outcome {
        Ok(acceptance) => Ok(Json(AcceptView {
            call_id: acceptance.call_id,
            join: JoinView {
                ws_url: acceptance.ws_url,
                token: acceptance.token,
                ice_servers: ice_servers(&state, acceptance.call_id),
                expires_at: rfc3339(acceptance.expires_at),
            },
        })),
        Err(AcceptRefusal::NotFound) => Err(ApiError::not_found("escalation")),
        Err(AcceptRefusal::AlreadyTaken) => {
            Err(ApiError::conflict("already_taken", "another agent accepted this escalation first"))
        }
        Err(AcceptRefusal::Closed) => Err(ApiError::new(
            StatusCode::GONE,
            "escalation_closed",
            "this escalation is closed: the caller hung up, or nobody accepted in time",
        )),
    }
}

/// The agent's media leg of an accepted call (`join.wsUrl`): the widget's signaling
/// protocol plus `handback`, authenticated by the join token in `?token=` (docs/agent-protocol.md).
#[utoipa::path(get, path = "/api/agent/call/{id}/ws", tag = "agent", params(("id" = String, Path), ("token" = String, Query)), security(()),
    responses((status = 101, description = "WebSocket upgrade; the widget's signaling messages plus `handback`, as in docs/agent-protocol.md")))]
pub async fn call_socket(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Query(query): Query<TokenQuery>,
    upgrade: WebSocketUpgrade,
) -> Response {
    let ip = crate::rate_limit::client_ip(&headers, peer, state.config.trust_forwarded_for);
    signaling_upgrade(upgrade).on_upgrade(move |socket| serve_call_socket(state, id, query.token, ip, socket))
}

async fn serve_call_socket(state: AppState, id: String, token: String, ip: std::net::IpAddr, socket: WebSocket) {
    let invalid = "This join link is not valid (a wrong or expired token).";
    let Ok(call_id) = id.parse::<CallId>() else {
        return refuse(socket, "invalid_token", invalid, close::INVALID_TOKEN).await;
    };
    let join = match state.escalations.verify_join(call_id, &token).await {
        Ok(Some(join)) => join,
        Ok(None) => return refuse(socket, "invalid_token", invalid, close::INVALID_TOKEN).await,
        Err(err) => {
            tracing::warn!(error = %err, "could not check an agent's join token");
            let message = "The service is busy right now. Please try again in a moment.";
            return refuse_with(socket, "database_unavailable", message, close::UNAVAILABLE, true).await;
        }
    };
    let Some(pending) = state.pending_sockets.acquire(ip) else {
        let message = "Too many call connections from this address are waiting to start; try again shortly.";
        return refuse_with(socket, "too_many_pending", message, close::TOO_MANY, true).await;
    };
    let span = tracing::info_span!("agent_leg", call_id = %call_id, agent_id = %join.agent_id);
    let link = match state.calls.join_agent(call_id, join) {
        Ok(link) => link,
        Err(err @ (JoinError::NotLive | JoinError::Busy)) => {
            tracing::info!(parent: &span, error = %err, "refused an agent's media leg");
            let message = "This call can no longer be joined here.";
            return refuse(socket, "session_ended", message, close::ENDED).await;
        }
    };
    tracing::Instrument::instrument(pump(socket, link, SocketClient::Agent, pending), span).await;
}
