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

use super::error::{ApiError, ApiResult, ErrorBody};
use super::json::ApiJson;
use super::path_id;
use crate::app::AppState;
use crate::call::BrowserLink;
use crate::call::admission::{self, AdmissionError, CallPlan, Entry, Refusal};
use crate::call::messages::{ClientMessage, Control, Routed, ServerMessage, WidgetState};
use crate::call::session::CallSetup;
use crate::crypto;
use crate::ids::{CallId, ChatbotId};
use crate::rate_limit::{PendingGuard, client_ip};
use crate::store::{Call, CallSource, CallStatus, ChatbotType, EndReason, NewCall};
use crate::time::{now_ms, rfc3339};

/// Largest WebSocket message accepted from a client (SDP offers are a few KiB); a larger
/// one closes the socket with 1009.
const MAX_WS_MESSAGE: usize = 64 * 1024;
/// What the WebSocket layer reads at most before giving up on a message.
const HARD_WS_MESSAGE: usize = 1024 * 1024;

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
        .route("/api/widget/call/{id}/rating", post(rate_call))
        .route("/api/widget/chatbots/{id}", get(chatbot_config))
        .layer(cors)
}

/// Body of `POST /api/widget/call/session`.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SessionBody {
    chatbot_id: String,
}

/// A new call session.
#[derive(Serialize, Debug, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SessionView {
    pub session_id: CallId,
    pub token: String,
    pub ws_url: String,
    pub ice_servers: Vec<IceServerView>,
    pub expires_at: String,
}

/// An ICE server as `RTCPeerConnection` takes it.
#[derive(Serialize, Debug, Clone, utoipa::ToSchema)]
pub struct IceServerView {
    pub urls: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub credential: Option<String>,
}

/// Opens a call session for a `call` chatbot (public; rate-limited per IP).
#[utoipa::path(post, path = "/api/widget/call/session", tag = "widget", request_body = SessionBody, security(()),
    responses((status = 201, body = SessionView), (status = 403, body = ErrorBody, description = "calls_disabled, origin_not_allowed"),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody, description = "not_a_call_chatbot"),
        (status = 429, body = ErrorBody, description = "rate_limited"), (status = 503, body = ErrorBody, description = "voice_unavailable, database_unavailable")))]
pub async fn create_session(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    ApiJson(body): ApiJson<SessionBody>,
) -> Response {
    let ip = client_ip(&headers, peer, state.config.trust_forwarded_for);
    if let Err(wait) = state.widget_limiter.check(ip) {
        return ApiError::rate_limited("too many call sessions from this address; try again shortly", wait)
            .into_response();
    }
    let origin = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok());
    match open_session(&state, &body.chatbot_id, origin, false).await {
        Ok(view) => (StatusCode::CREATED, Json(view)).into_response(),
        Err(err) => err.into_response(),
    }
}

impl From<AdmissionError> for ApiError {
    fn from(err: AdmissionError) -> Self {
        match err {
            AdmissionError::Store(err) => err.into(),
            AdmissionError::Refused(refusal) => {
                let status = match refusal {
                    Refusal::ChatbotNotFound | Refusal::NoChatbot => StatusCode::NOT_FOUND,
                    Refusal::CallsDisabled | Refusal::OriginNotAllowed(_) | Refusal::AccountInactive => {
                        StatusCode::FORBIDDEN
                    }
                    Refusal::NotACallChatbot => StatusCode::CONFLICT,
                    Refusal::VoiceUnavailable(_) | Refusal::IntegrationFailing { .. } => {
                        StatusCode::SERVICE_UNAVAILABLE
                    }
                };
                let error = ApiError::new(status, refusal.code(), refusal.message());
                if refusal == Refusal::ChatbotNotFound { error.with_field("chatbotId") } else { error }
            }
        }
    }
}

/// Checks that `chatbot_id` can take a call from `origin` (test calls skip the origin check).
pub async fn plan_call(state: &AppState, chatbot_id: &str, origin: Option<&str>, test: bool) -> ApiResult<CallPlan> {
    let entry = if test { Entry::Test { chatbot_id } } else { Entry::Widget { chatbot_id, origin } };
    Ok(admission::admit(&state.store, &state.providers, entry).await?)
}

/// Opens a session: checks, then a `pending` call row with a fresh token.
pub async fn open_session(
    state: &AppState,
    chatbot_id: &str,
    origin: Option<&str>,
    test: bool,
) -> ApiResult<SessionView> {
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
            integration_account_id: None,
            external_id: None,
        })
        .await?;
    tracing::info!(call_id = %call.id, company_id = %call.company_id, chatbot_id = %call.chatbot_id, test, "call session opened");
    let ws_base = state.public_base.replacen("http", "ws", 1);
    Ok(SessionView {
        session_id: call.id,
        ws_url: format!("{ws_base}/api/widget/call/{}/ws?token={token}", call.id),
        token,
        ice_servers: ice_servers(state, call.id),
        expires_at: rfc3339(expires_at),
    })
}

/// The STUN/TURN servers for the browser of call `id`. TURN servers get a credential of
/// the caller's own that expires (with GATEWAY_TURN_SECRET), or the long-term one only
/// when the operator chose that (GATEWAY_TURN_STATIC_CREDENTIALS).
pub fn ice_servers(state: &AppState, id: CallId) -> Vec<IceServerView> {
    let config = &state.config;
    let (turn, stun): (Vec<String>, Vec<String>) =
        config.ice_servers.iter().filter(|u| !u.trim().is_empty()).cloned().partition(|u| u.starts_with("turn"));
    let mut servers = Vec::new();
    if !stun.is_empty() {
        servers.push(IceServerView { urls: stun, username: None, credential: None });
    }
    if !turn.is_empty() {
        let (username, credential) = match config.turn_secret.as_deref().filter(|s| !s.is_empty()) {
            Some(secret) => {
                let now_unix = u64::try_from(now_ms() / 1000).unwrap_or_default();
                let ttl = Duration::from_secs(config.turn_credential_ttl_seconds);
                let minted = crate::turn::rest_credential(secret, &id.to_string(), now_unix, ttl);
                (Some(minted.username), Some(minted.credential))
            }
            None if config.turn_static_credentials => (config.turn_username.clone(), config.turn_credential.clone()),
            None => (None, None),
        };
        servers.push(IceServerView { urls: turn, username, credential });
    }
    servers
}

/// What the widget needs to render a chatbot's buttons, and nothing more.
#[derive(Serialize, Debug, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct WidgetConfig {
    pub chatbot_id: ChatbotId,
    pub chatbot_type: ChatbotType,
    pub title: String,
    pub chat: ChatConfig,
    /// Null for chat chatbots.
    pub call: Option<CallConfig>,
}

/// The chat widget's basics.
#[derive(Serialize, Debug, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ChatConfig {
    pub position: crate::settings::WidgetPosition,
    pub primary_color: String,
    pub welcome_message: String,
    pub chat_button_icon: String,
}

/// The call button and call interface.
#[derive(Serialize, Debug, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CallConfig {
    /// Whether a call can be placed now; when false the button shows "Voice calls
    /// temporarily unavailable".
    pub available: bool,
    /// `calls_disabled` or `voice_unavailable` when not available.
    pub unavailable_reason: Option<&'static str>,
    pub button_icon: String,
    pub button_text: String,
    pub button_color: String,
    pub visualizer_style: crate::settings::VisualizerStyle,
    pub show_call_duration: bool,
    pub show_live_transcript: bool,
    pub welcome_message: String,
    /// `getUserMedia` audio constraints.
    pub audio: AudioConstraints,
    /// Who answers: `openai`, `google` or `echo`.
    pub provider: Option<&'static str>,
    /// The echo provider answers (it plays the caller back; no AI): say so on screen.
    pub echo_mode: bool,
}

/// Microphone processing the browser should apply.
#[derive(Serialize, Debug, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AudioConstraints {
    pub echo_cancellation: bool,
    pub noise_suppression: bool,
    pub auto_gain_control: bool,
}

/// The public widget settings of a chatbot (what the widget renders; public).
#[utoipa::path(get, path = "/api/widget/chatbots/{id}", tag = "widget", params(("id" = String, Path)), security(()),
    responses((status = 200, body = WidgetConfig), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn chatbot_config(
    State(state): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> ApiResult<Json<WidgetConfig>> {
    let chatbot_id: ChatbotId = path_id(&id, "chatbot")?;
    let chatbot = state.store.chatbot_for_widget(chatbot_id).await?.ok_or_else(|| ApiError::not_found("chatbot"))?;
    let origin = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok());
    if !chatbot.settings.widget.allows_origin(origin) && origin.is_some() {
        return Err(
            ApiError::forbidden("this chatbot's widget is not allowed on this site").with_code("origin_not_allowed")
        );
    }
    let widget = &chatbot.settings.widget;
    let call = if chatbot.chatbot_type == ChatbotType::Call {
        let plan = plan_call(&state, &id, None, true).await;
        let (available, reason, provider) = match &plan {
            Ok(plan) => (true, None, Some(plan.model.provider.as_str())),
            Err(err) if err.code == "calls_disabled" => (false, Some("calls_disabled"), None),
            Err(err) if err.code == "voice_unavailable" => (false, Some("voice_unavailable"), None),
            Err(err) if err.code == "internal" => return Err(ApiError::internal("planning a call failed")),
            Err(err) if err.code == "database_unavailable" => return Err(err.clone()),
            Err(_) => (false, Some("voice_unavailable"), None),
        };
        let settings = &chatbot.settings.call;
        Some(CallConfig {
            available,
            unavailable_reason: reason,
            button_icon: widget.call_button_icon.clone(),
            button_text: widget.call_button_text.clone(),
            button_color: widget.call_button_color.clone(),
            visualizer_style: widget.visualizer_style,
            show_call_duration: widget.show_call_duration,
            show_live_transcript: widget.show_live_transcript,
            welcome_message: widget.call_welcome_message.clone(),
            audio: AudioConstraints {
                echo_cancellation: settings.echo_cancellation,
                noise_suppression: settings.noise_suppression,
                auto_gain_control: settings.auto_gain_control,
            },
            provider,
            echo_mode: provider == Some("echo"),
        })
    } else {
        None
    };
    Ok(Json(WidgetConfig {
        chatbot_id,
        chatbot_type: chatbot.chatbot_type,
        title: widget.title.clone(),
        chat: ChatConfig {
            position: widget.position,
            primary_color: widget.primary_color.clone(),
            welcome_message: widget.welcome_message.clone(),
            chat_button_icon: widget.chat_button_icon.clone(),
        },
        call,
    }))
}

/// Body of `POST /api/widget/call/{id}/rating`.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RatingBody {
    token: String,
    rating: i64,
    #[serde(default)]
    comment: Option<String>,
}

/// Stores the caller's 1–5 rating of an ended call (authenticated by the session token).
/// A call is rated once: the first rating stands.
#[utoipa::path(post, path = "/api/widget/call/{id}/rating", tag = "widget", request_body = RatingBody, params(("id" = String, Path)), security(()),
    responses((status = 204), (status = 401, body = ErrorBody),
        (status = 409, body = ErrorBody, description = "`call_not_ended`, or `already_rated` (the first rating stands)"),
        (status = 422, body = ErrorBody)))]
pub async fn rate_call(
    State(state): State<AppState>,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<RatingBody>,
) -> ApiResult<StatusCode> {
    let call = call_with_token(&state, &id, &body.token).await?;
    if !(1..=5).contains(&body.rating) {
        return Err(ApiError::invalid("rating", "must be 1 to 5"));
    }
    let comment = body.comment.as_deref().map(str::trim).filter(|c| !c.is_empty());
    if comment.is_some_and(|c| c.chars().count() > 1000) {
        return Err(ApiError::invalid("comment", "must be at most 1000 characters"));
    }
    if !call.status.is_final() {
        return Err(ApiError::conflict("call_not_ended", "a call can be rated once it has ended"));
    }
    if call.rating.is_some() || !state.store.rate_call(call.id, body.rating, comment).await? {
        return Err(ApiError::conflict("already_rated", "this call has been rated; the first rating stands"));
    }
    tracing::info!(call_id = %call.id, rating = body.rating, "call rated");
    Ok(StatusCode::NO_CONTENT)
}

/// Body of `POST /api/widget/call/{id}/end`.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EndBody {
    token: String,
}

/// A call by id whose session token is `token` (constant-time check).
async fn call_with_token(state: &AppState, raw_id: &str, token: &str) -> ApiResult<Call> {
    let id: CallId = path_id(raw_id, "call")?;
    let call = state.store.call(id).await?.ok_or_else(|| ApiError::not_found("call"))?;
    let valid = call
        .token_hash
        .as_deref()
        .is_some_and(|h| crypto::constant_time_eq(h.as_bytes(), crypto::token_hash(token).as_bytes()));
    if !valid {
        return Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "invalid_token",
            "the session token is not valid for this call",
        ));
    }
    Ok(call)
}

/// Ends a call. The body is JSON, sent with any content type: `navigator.sendBeacon` on
/// page unload posts it as `text/plain`, which needs no CORS preflight.
#[utoipa::path(post, path = "/api/widget/call/{id}/end", tag = "widget", request_body = EndBody, params(("id" = String, Path)), security(()),
    responses((status = 204), (status = 401, body = ErrorBody)))]
pub async fn end_call(
    State(state): State<AppState>,
    Path(id): Path<String>,
    body: axum::body::Bytes,
) -> ApiResult<StatusCode> {
    let body: EndBody = super::json::parse(&body)?;
    let call = call_with_token(&state, &id, &body.token).await?;
    if state.calls.hang_up(call.id).await || call.status.is_final() {
        return Ok(StatusCode::NO_CONTENT);
    }
    // Not live here. A call that never connected, or one this node left behind, ends now;
    // one live on another node ends there when its caller's socket closes.
    let ours = call.node_id.as_deref() == Some(&*state.node_id);
    if call.status == CallStatus::Pending || ours {
        state.store.end_call(call.id, EndReason::CallerHangup, now_ms(), None).await?;
    }
    Ok(StatusCode::NO_CONTENT)
}

/// `?token=`: the session token.
#[derive(Deserialize)]
pub struct TokenQuery {
    #[serde(default)]
    pub(crate) token: String,
}

/// The call's signaling WebSocket (docs/widget-protocol.md); `token` is the session token.
#[utoipa::path(get, path = "/api/widget/call/{id}/ws", tag = "widget", params(("id" = String, Path), ("token" = String, Query)), security(()),
    responses((status = 101, description = "WebSocket upgrade; JSON messages as in docs/widget-protocol.md")))]
pub async fn call_socket(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Query(query): Query<TokenQuery>,
    upgrade: WebSocketUpgrade,
) -> Response {
    let ip = client_ip(&headers, peer, state.config.trust_forwarded_for);
    signaling_upgrade(upgrade).on_upgrade(move |socket| serve_socket(state, id, query.token, ip, socket))
}

/// A signaling socket (the widget's, an agent's media leg) reads messages up to a hard
/// limit well above the protocol's, so that a message over the protocol's limit gets the
/// promised 1009 close rather than a cut.
pub(crate) fn signaling_upgrade(upgrade: WebSocketUpgrade) -> WebSocketUpgrade {
    upgrade
        .read_buffer_size(crate::ws_frames::READ_BUFFER_BYTES)
        .max_message_size(HARD_WS_MESSAGE)
        .max_frame_size(HARD_WS_MESSAGE)
}

/// Close codes of the signaling socket (4000–4999 are the application's).
pub(crate) mod close {
    /// A message over the size limit (RFC 6455 "message too big").
    pub const TOO_BIG: u16 = 1009;
    pub const INVALID_TOKEN: u16 = 4401;
    pub const ENDED: u16 = 4409;
    pub const EXPIRED: u16 = 4410;
    pub const TOO_MANY: u16 = 4429;
    pub const UNAVAILABLE: u16 = 4503;
    pub const INTERNAL: u16 = 4500;
}

pub(crate) async fn refuse(socket: WebSocket, code: &'static str, message: &str, close_code: u16) {
    refuse_with(socket, code, message, close_code, false).await;
}

pub(crate) async fn refuse_with(
    mut socket: WebSocket,
    code: &'static str,
    message: &str,
    close_code: u16,
    retryable: bool,
) {
    let error = ServerMessage::Error { code, message: message.to_owned(), retryable };
    let _ = socket.send(Message::Text(json(&error))).await;
    let _ = socket.send(Message::Close(Some(CloseFrame { code: close_code, reason: Utf8Bytes::from(code) }))).await;
}

fn json(message: &ServerMessage) -> Utf8Bytes {
    Utf8Bytes::from(serde_json::to_string(message).expect("server messages serialise"))
}

async fn serve_socket(state: AppState, id: String, token: String, ip: IpAddr, socket: WebSocket) {
    let call = match call_with_token(&state, &id, &token).await {
        Ok(call) => call,
        Err(err) if err.code == "internal" => {
            return refuse(socket, "internal", "internal error", close::INTERNAL).await;
        }
        // The database could not say: the link may be fine, so the caller can try again.
        Err(err) if err.code == "database_unavailable" => {
            let message = "The service is busy right now. Please try again in a moment.";
            return refuse_with(socket, "database_unavailable", message, close::UNAVAILABLE, true).await;
        }
        Err(_) => return refuse(socket, "invalid_token", "This call link is not valid.", close::INVALID_TOKEN).await,
    };
    if call.token_expires_at.is_some_and(|t| t < now_ms()) {
        if call.status == CallStatus::Pending {
            let _ = state.store.end_call(call.id, EndReason::Expired, now_ms(), None).await;
        }
        return refuse(socket, "session_expired", "This call session has expired; start a new call.", close::EXPIRED)
            .await;
    }
    let Some(pending) = state.pending_sockets.acquire(ip) else {
        // The session is untouched: the same link works once a place is free.
        return refuse_with(
            socket,
            "too_many_pending",
            "Too many call connections from this address are waiting to start; try again shortly.",
            close::TOO_MANY,
            true,
        )
        .await;
    };
    match state.store.mark_call_connecting(call.id, &state.node_id).await {
        Ok(true) => {}
        Ok(false) => {
            return refuse(
                socket,
                "session_ended",
                "This call has already ended or is connected elsewhere.",
                close::ENDED,
            )
            .await;
        }
        Err(err) => {
            tracing::error!(error = %err, "could not mark the call connecting");
            return refuse(socket, "internal", "internal error", close::INTERNAL).await;
        }
    }
    // The chatbot's settings may have changed since the session was opened: admit again,
    // and refuse with the same code the session API would give.
    let setup = match call_setup(&state, &call).await {
        Ok(setup) => setup,
        Err(err) => {
            tracing::warn!(call_id = %call.id, code = err.code, error = %err.message, "call refused at connect");
            let _ = state.store.end_call(call.id, EndReason::Error, now_ms(), Some(&err.message)).await;
            return refuse(socket, err.code, &err.message, close::ENDED).await;
        }
    };
    let link = match state.calls.start_browser(setup) {
        Ok(link) => link,
        Err(err) => {
            tracing::error!(call_id = %call.id, error = %err, "could not start the call");
            let _ = state.store.end_call(call.id, EndReason::Error, now_ms(), Some(&err.to_string())).await;
            return refuse(socket, "internal", "internal error", close::INTERNAL).await;
        }
    };
    pump(socket, link, SocketClient::Caller, pending).await;
}

/// Builds the session's setup from the chatbot's current settings.
async fn call_setup(state: &AppState, call: &Call) -> ApiResult<CallSetup> {
    let chatbot =
        state.store.chatbot(call.company_id, call.chatbot_id).await?.ok_or_else(|| ApiError::not_found("chatbot"))?;
    let plan = plan_call(state, &chatbot.id.to_string(), None, true).await?;
    Ok(crate::call::setup::call_setup(call, &plan.chatbot, plan.model))
}

/// Shuttles messages between the WebSocket and the call until the call ends: offers and
/// candidates to the caller's leg, mute and hang-up to the session, and what the call says
/// back. `pending` holds the socket's place among those waiting for an offer.
pub(crate) async fn pump(mut socket: WebSocket, link: BrowserLink, client: SocketClient, mut pending: PendingGuard) {
    let BrowserLink { control, signals, mut server } = link;
    let mut keepalive = tokio::time::interval(PING_EVERY);
    let mut last_heard = tokio::time::Instant::now();
    loop {
        tokio::select! {
            message = server.recv() => {
                let Some(message) = message else { break };
                let ended = matches!(message, ServerMessage::State { state: WidgetState::Ended, .. });
                if !send_within(&mut socket, Message::Text(json(&message))).await {
                    let _ = control.send(Control::ClientGone).await;
                    return;
                }
                if ended {
                    let close = CloseFrame { code: 1000, reason: Utf8Bytes::from_static("call ended") };
                    let _ = send_within(&mut socket, Message::Close(Some(close))).await;
                    return;
                }
            }
            _ = keepalive.tick() => {
                // Pings keep proxies from closing a quiet socket, and a client that stopped
                // answering them is gone.
                if last_heard.elapsed() > CLIENT_SILENT_LIMIT || !send_within(&mut socket, Message::Ping(Default::default())).await {
                    tracing::info!("the call's signaling socket stopped answering");
                    let _ = control.send(Control::ClientGone).await;
                    return;
                }
            }
            frame = socket.recv() => {
                last_heard = tokio::time::Instant::now();
                let text = match frame {
                    Some(Ok(Message::Text(text))) => text,
                    Some(Ok(Message::Binary(_))) => {
                        let error = ServerMessage::Error { code: "invalid_message", message: "messages are JSON text frames".into(), retryable: false };
                        let _ = send_within(&mut socket, Message::Text(json(&error))).await;
                        continue;
                    }
                    Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
                    Some(Err(err)) if is_too_big(&err) => {
                        return too_big(socket, &control).await;
                    }
                    Some(Ok(Message::Close(_))) | Some(Err(_)) | None => {
                        // The caller's page went away: the session ends the call; keep
                        // nothing else waiting on this socket.
                        let _ = control.send(Control::ClientGone).await;
                        return;
                    }
                };
                if text.len() > MAX_WS_MESSAGE {
                    return too_big(socket, &control).await;
                }
                let message = match parse_client(&text, client) {
                    Ok(message) => message,
                    Err(error) => {
                        let _ = send_within(&mut socket, Message::Text(json(&error))).await;
                        continue;
                    }
                };
                let delivered = match message.route() {
                    Routed::Signal(signal) => {
                        if matches!(signal, crate::call::messages::Signal::Offer(_)) {
                            pending.release();
                        }
                        signals.send(signal).await.is_ok()
                    }
                    Routed::Control(command) => control.send(command).await.is_ok(),
                };
                if !delivered {
                    return;
                }
            }
        }
    }
}

/// Whether a read failed because the message exceeded the hard limit.
fn is_too_big(err: &axum::Error) -> bool {
    let source: &(dyn std::error::Error + 'static) = err;
    let mut cause = std::error::Error::source(source);
    while let Some(err) = cause {
        if let Some(tokio_tungstenite::tungstenite::Error::Capacity(_)) =
            err.downcast_ref::<tokio_tungstenite::tungstenite::Error>()
        {
            return true;
        }
        cause = err.source();
    }
    false
}

/// A message over the limit: close with 1009 as the protocol promises, and hang up.
async fn too_big(mut socket: WebSocket, control: &tokio::sync::mpsc::Sender<Control>) {
    tracing::info!("a client sent a message over the size limit");
    let close = CloseFrame { code: close::TOO_BIG, reason: Utf8Bytes::from_static("message too big") };
    let _ = send_within(&mut socket, Message::Close(Some(close))).await;
    let _ = control.send(Control::ClientGone).await;
}

/// How often the gateway pings the signaling socket.
const PING_EVERY: Duration = Duration::from_secs(20);
/// A client silent this long (no message, no pong) is gone.
const CLIENT_SILENT_LIMIT: Duration = Duration::from_secs(65);
/// Longest a write to a client may take before the client counts as gone.
const SEND_LIMIT: Duration = Duration::from_secs(5);

/// Writes a frame unless the client is too slow to take it; false when it failed.
async fn send_within(socket: &mut WebSocket, message: Message) -> bool {
    matches!(tokio::time::timeout(SEND_LIMIT, socket.send(message)).await, Ok(Ok(())))
}

/// Who is on the other end of a signaling socket: the widget, or a human agent's console
/// (which may also send `handback`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SocketClient {
    Caller,
    Agent,
}

/// Parses a client frame, or says what is wrong with it.
fn parse_client(text: &str, client: SocketClient) -> Result<ClientMessage, ServerMessage> {
    let invalid = |message: String| ServerMessage::Error { code: "invalid_message", message, retryable: false };
    let value: serde_json::Value = serde_json::from_str(text).map_err(|e| invalid(format!("not JSON: {e}")))?;
    let kind = value
        .get("type")
        .and_then(|t| t.as_str())
        .map(str::to_owned)
        .ok_or_else(|| invalid("a message needs a string `type`".into()))?;
    let known = match kind.as_str() {
        "offer" | "candidate" | "mute" | "end" => true,
        "handback" => client == SocketClient::Agent,
        _ => false,
    };
    if !known {
        return Err(ServerMessage::Error {
            code: "unknown_type",
            message: format!("unknown message type {kind:?}"),
            retryable: false,
        });
    }
    serde_json::from_value(value).map_err(|e| invalid(format!("malformed {kind}: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_frames_are_parsed_or_explained() {
        assert_eq!(parse_client(r#"{"type":"end"}"#, SocketClient::Caller).unwrap(), ClientMessage::End);
        assert_eq!(parse_client(r#"{"type":"handback"}"#, SocketClient::Agent).unwrap(), ClientMessage::Handback);
        let code = |text: &str| match parse_client(text, SocketClient::Caller) {
            Err(ServerMessage::Error { code, .. }) => code,
            other => panic!("{other:?}"),
        };
        assert_eq!(code("not json"), "invalid_message");
        assert_eq!(code(r#"{"sdp":"x"}"#), "invalid_message");
        assert_eq!(code(r#"{"type":"dance"}"#), "unknown_type");
        assert_eq!(code(r#"{"type":"handback"}"#), "unknown_type", "a caller cannot hand back");
        assert_eq!(code(r#"{"type":"mute","muted":"yes"}"#), "invalid_message");
        assert_eq!(code(r#"{"type":"offer"}"#), "invalid_message");
    }
}
