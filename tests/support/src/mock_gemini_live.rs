//! A local Gemini Live server (`BidiGenerateContent` over WebSocket).
//!
//! Paths: `/ws/google.ai.generativelanguage.{v1beta,v1alpha}.GenerativeService.BidiGenerateContent`.
//! The key comes as `?key=` or in `x-goog-api-key`. The first message must be
//! `setup`; the reply is `{"setupComplete":{}}`. Every server frame is a
//! **binary** WebSocket frame holding UTF-8 JSON, as the real service sends
//! them. Client keys are accepted in camelCase and snake_case.
//!
//! Choices made where the protocol reference is silent:
//! - a wrong key: the upgrade succeeds, then close 1007 "API key not valid.
//!   Please pass a valid API key." (Google's text for a bad key); no key:
//!   close 1008 with Google's "unregistered callers" text (cut to 123 bytes).
//! - unknown fields close 1007 with Google's "Invalid JSON payload received.
//!   Unknown name …" text; other bad values with "Request contains an invalid
//!   argument."; so do an unknown resumption handle, a tool response with an
//!   unknown id, `activityStart` while automatic detection is on, and input
//!   audio at a rate other than 16 kHz (the real service resamples; the mock
//!   is stricter so a wrong rate in the gateway shows).
//! - after `goAway{timeLeft}` the connection closes when the time is up with
//!   1011 "Deadline expired before operation could complete." (the close
//!   seen when sessions end).
//! - VAD: start sensitivity LOW is -30 dBFS, HIGH (the default) -45 dBFS;
//!   silence defaults to 500 ms, prefix padding to 20 ms.

use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Json;
use axum::Router;
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::Serialize;
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use crate::live_session::{Frame, LiveNote, LiveOutcome, LiveSession};
use crate::mock_openai_realtime::truncate_reason;
use crate::recorder::{Recorder, WaitTimeout};
use crate::script::{HandshakeRejection, MockReply, Pacing, ScriptedToolCall};
use crate::server::{self, ServerHandle};

/// Models the mock accepts (without the `models/` prefix) [reference §2.2].
pub const GEMINI_MODELS: &[&str] = &[
    "gemini-2.0-flash-exp",
    "gemini-2.0-flash-live-001",
    "gemini-live-2.5-flash-preview",
    "gemini-2.5-flash-native-audio-preview-09-2025",
    "gemini-2.5-flash-native-audio-preview-12-2025",
    "gemini-2.5-flash-native-audio-latest",
    "gemini-3.1-flash-live-preview",
    "gemini-live-2.5-flash-native-audio",
];

#[derive(Debug, Clone)]
pub struct GeminiLiveConfig {
    pub api_key: String,
    /// Accepted model names, without `models/`.
    pub models: Vec<String>,
    pub reply: MockReply,
    /// Answers used in order, one per model turn, on each connection.
    pub replies: Vec<MockReply>,
    /// What input transcription "hears" in every caller turn.
    pub user_transcript: String,
    pub tool_call: Option<ScriptedToolCall>,
    /// The answer after a tool response; `{output}` is the response's
    /// `result`/`output` string, or the response object as JSON.
    pub tool_reply_template: String,
    pub pacing: Pacing,
    /// Audio per `modelTurn` part.
    pub chunk_ms: u32,
    pub go_away: Option<GoAway>,
    pub faults: GeminiFaults,
}

impl Default for GeminiLiveConfig {
    fn default() -> Self {
        Self {
            api_key: "test-gemini-key".into(),
            models: GEMINI_MODELS.iter().map(|m| (*m).to_owned()).collect(),
            reply: MockReply::default(),
            replies: Vec::new(),
            user_transcript: "Hi, can you hear me?".into(),
            tool_call: None,
            tool_reply_template: "According to our records: {output}".into(),
            pacing: Pacing::Burst,
            chunk_ms: 100,
            go_away: None,
            faults: GeminiFaults::default(),
        }
    }
}

/// "Tell the client this connection ends soon, then end it."
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GoAway {
    pub trigger: GoAwayTrigger,
    /// Sent as `timeLeft`; the connection closes when it has passed.
    pub time_left: Duration,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum GoAwayTrigger {
    /// After this many completed model turns on the connection.
    AfterTurns(usize),
    /// This long after `setupComplete`.
    After(Duration),
}

#[derive(Debug, Clone, Default)]
pub struct GeminiFaults {
    /// Handshakes answered with HTTP 503.
    pub reject_handshakes: HandshakeRejection,
    /// Wait this long before `setupComplete`.
    pub setup_complete_delay: Duration,
    /// Close every connection this long after setup with 1011
    /// "Internal error occurred." (no goAway first).
    pub drop_after: Option<Duration>,
}

#[derive(Debug, Clone, Serialize)]
pub struct LiveConnectionRecord {
    pub index: usize,
    /// `v1beta` or `v1alpha`.
    pub api_version: String,
    pub headers: Vec<(String, String)>,
    /// Model from `setup`, without `models/`.
    pub model: Option<String>,
    pub setup: Option<Value>,
    /// The handle this connection resumed from, if any.
    pub resumed_from: Option<String>,
    #[serde(serialize_with = "as_ms")]
    pub opened_at: Duration,
    #[serde(serialize_with = "as_opt_ms")]
    pub closed_at: Option<Duration>,
    pub audio_received_ms: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct LiveMessageRecord {
    pub connection: usize,
    #[serde(serialize_with = "as_ms")]
    pub at: Duration,
    pub message: Value,
}

/// A close frame the mock sent: Gemini's only error channel.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CloseRecord {
    pub connection: usize,
    pub code: u16,
    pub reason: String,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ToolResponseRecord {
    pub connection: usize,
    pub id: String,
    pub name: String,
    pub response: Value,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TurnRecord {
    pub connection: usize,
    pub interrupted: bool,
    pub audio_ms: u64,
    pub transcript: String,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct GeminiState {
    pub handshakes: usize,
    pub rejected_handshakes: usize,
    pub connections: Vec<LiveConnectionRecord>,
    pub client_messages: Vec<LiveMessageRecord>,
    #[serde(skip)]
    pub server_messages: Vec<LiveMessageRecord>,
    pub closes_sent: Vec<CloseRecord>,
    /// `(connection, id, name)` of every `toolCall` sent.
    pub tool_calls: Vec<(usize, String, String)>,
    pub tool_responses: Vec<ToolResponseRecord>,
    /// Ids in every `toolCallCancellation` sent.
    pub tool_call_cancellations: Vec<(usize, Vec<String>)>,
    pub turns: Vec<TurnRecord>,
    pub issued_handles: Vec<String>,
    pub go_aways_sent: usize,
}

impl GeminiState {
    /// Server messages that have `key` at the top level or in `serverContent`.
    pub fn count_sent(&self, key: &str) -> usize {
        self.server_messages
            .iter()
            .filter(|m| m.message.get(key).is_some() || m.message["serverContent"].get(key).is_some())
            .count()
    }
}

struct Shared {
    config: Arc<GeminiLiveConfig>,
    recorder: Recorder<GeminiState>,
    cancel: CancellationToken,
}

pub struct MockGeminiLive {
    shared: Arc<Shared>,
    server: ServerHandle,
}

const PATH: &str = "GenerativeService.BidiGenerateContent";

impl MockGeminiLive {
    pub async fn start(config: GeminiLiveConfig) -> Self {
        Self::start_on(server::ephemeral(), config).await.expect("bind 127.0.0.1:0")
    }

    pub async fn start_on(addr: SocketAddr, config: GeminiLiveConfig) -> io::Result<Self> {
        let cancel = CancellationToken::new();
        let shared = Arc::new(Shared {
            config: Arc::new(config),
            recorder: Recorder::new(GeminiState::default()),
            cancel: cancel.clone(),
        });
        let router = Router::new()
            .route(&format!("/ws/google.ai.generativelanguage.v1beta.{PATH}"), get(handshake_v1beta))
            .route(&format!("/ws/google.ai.generativelanguage.v1alpha.{PATH}"), get(handshake_v1alpha))
            .route("/__mock/state", get(state_json))
            .with_state(shared.clone());
        let server = ServerHandle::bind(addr, router, cancel).await?;
        Ok(Self { shared, server })
    }

    pub fn addr(&self) -> SocketAddr {
        self.server.addr()
    }

    /// `http://127.0.0.1:<port>`, the stand-in for
    /// `https://generativelanguage.googleapis.com`.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr())
    }

    /// `ws://127.0.0.1:<port>`, the stand-in for `wss://generativelanguage.googleapis.com`.
    pub fn ws_base_url(&self) -> String {
        format!("ws://{}", self.addr())
    }

    /// The v1beta `BidiGenerateContent` URL, without the key.
    pub fn ws_url(&self) -> String {
        format!("{}/ws/google.ai.generativelanguage.v1beta.{PATH}", self.ws_base_url())
    }

    pub fn config(&self) -> &GeminiLiveConfig {
        &self.shared.config
    }

    pub fn started_at(&self) -> Instant {
        self.shared.recorder.started()
    }

    pub fn state(&self) -> GeminiState {
        self.shared.recorder.read(Clone::clone)
    }

    /// Every client message, parsed, in arrival order.
    pub fn client_messages(&self) -> Vec<Value> {
        self.shared.recorder.read(|s| s.client_messages.iter().map(|m| m.message.clone()).collect())
    }

    pub fn server_messages(&self) -> Vec<Value> {
        self.shared.recorder.read(|s| s.server_messages.iter().map(|m| m.message.clone()).collect())
    }

    /// Every close the mock sent (Gemini reports errors only this way).
    pub fn closes_sent(&self) -> Vec<CloseRecord> {
        self.shared.recorder.read(|s| s.closes_sent.clone())
    }

    /// Closes other than the clean ones the test asked for (goAway, shutdown):
    /// empty means the client never tripped an error.
    pub fn errors_sent(&self) -> Vec<CloseRecord> {
        self.closes_sent().into_iter().filter(|c| c.code == 1007 || c.code == 1008).collect()
    }

    pub fn tool_responses(&self) -> Vec<ToolResponseRecord> {
        self.shared.recorder.read(|s| s.tool_responses.clone())
    }

    pub fn turns(&self) -> Vec<TurnRecord> {
        self.shared.recorder.read(|s| s.turns.clone())
    }

    pub fn connections(&self) -> Vec<LiveConnectionRecord> {
        self.shared.recorder.read(|s| s.connections.clone())
    }

    pub fn connection_count(&self) -> usize {
        self.shared.recorder.read(|s| s.connections.len())
    }

    /// Connections that resumed a session with a handle this mock issued.
    pub fn resumptions(&self) -> Vec<LiveConnectionRecord> {
        self.connections().into_iter().filter(|c| c.resumed_from.is_some()).collect()
    }

    pub fn audio_received_ms(&self) -> u64 {
        self.shared.recorder.read(|s| s.connections.iter().map(|c| c.audio_received_ms).sum())
    }

    pub async fn wait_for(
        &self,
        condition: impl FnMut(&GeminiState) -> bool,
        timeout: Duration,
    ) -> Result<(), WaitTimeout> {
        self.shared.recorder.wait_for(condition, timeout).await
    }

    pub async fn shutdown(mut self) {
        self.server.shutdown().await;
    }
}

fn as_ms<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_u64(d.as_millis() as u64)
}

fn as_opt_ms<S: serde::Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
    match d {
        Some(d) => s.serialize_u64(d.as_millis() as u64),
        None => s.serialize_none(),
    }
}

async fn state_json(State(shared): State<Arc<Shared>>) -> Json<Value> {
    let mut state = shared.recorder.read(Clone::clone);
    state
        .client_messages
        .retain(|m| m.message.get("realtimeInput").is_none() && m.message.get("realtime_input").is_none());
    Json(serde_json::to_value(&state).unwrap_or(Value::Null))
}

async fn handshake_v1beta(
    State(shared): State<Arc<Shared>>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
    upgrade: Result<WebSocketUpgrade, axum::extract::ws::rejection::WebSocketUpgradeRejection>,
) -> Response {
    handshake(shared, "v1beta", query, headers, upgrade)
}

async fn handshake_v1alpha(
    State(shared): State<Arc<Shared>>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
    upgrade: Result<WebSocketUpgrade, axum::extract::ws::rejection::WebSocketUpgradeRejection>,
) -> Response {
    handshake(shared, "v1alpha", query, headers, upgrade)
}

fn handshake(
    shared: Arc<Shared>,
    version: &str,
    query: HashMap<String, String>,
    headers: HeaderMap,
    upgrade: Result<WebSocketUpgrade, axum::extract::ws::rejection::WebSocketUpgradeRejection>,
) -> Response {
    let index = shared.recorder.update(|s| {
        s.handshakes += 1;
        s.handshakes - 1
    });
    if shared.config.faults.reject_handshakes.rejects(index) {
        shared.recorder.update(|s| s.rejected_handshakes += 1);
        let body = json!({"error": {"code": 503, "message": "The service is currently unavailable.", "status": "UNAVAILABLE"}});
        return (StatusCode::SERVICE_UNAVAILABLE, Json(body)).into_response();
    }
    let upgrade = match upgrade {
        Ok(upgrade) => upgrade,
        Err(rejection) => {
            shared.recorder.update(|s| s.rejected_handshakes += 1);
            return rejection.into_response();
        }
    };
    let key = query
        .get("key")
        .cloned()
        .or_else(|| headers.get("x-goog-api-key").and_then(|v| v.to_str().ok()).map(str::to_owned));
    let header_list: Vec<(String, String)> = headers
        .iter()
        .map(|(name, value)| (name.as_str().to_owned(), String::from_utf8_lossy(value.as_bytes()).into_owned()))
        .collect();
    let version = version.to_owned();
    upgrade.on_upgrade(move |socket| async move {
        let mut connection = LiveConnection::open(shared, socket, version, header_list);
        match key {
            None => connection.fail(1008, "Method doesn't allow unregistered callers (callers without established identity). Please use API Key or other form of API consumer identity to call this API.").await,
            Some(key) if key != connection.shared.config.api_key => {
                connection.fail(1007, "API key not valid. Please pass a valid API key.").await;
            }
            Some(_) => connection.run().await,
        }
    })
}

struct LiveConnection {
    shared: Arc<Shared>,
    socket: WebSocket,
    session: LiveSession,
    index: usize,
}

enum Flow {
    Continue,
    Stop,
}

/// A protobuf `Duration` in JSON: `"10s"`, `"0.500s"`.
fn proto_duration(d: Duration) -> String {
    if d.subsec_millis() == 0 {
        format!("{}s", d.as_secs())
    } else {
        format!("{}.{:03}s", d.as_secs(), d.subsec_millis())
    }
}

impl LiveConnection {
    fn open(shared: Arc<Shared>, socket: WebSocket, api_version: String, headers: Vec<(String, String)>) -> Self {
        let at = shared.recorder.elapsed();
        let index = shared.recorder.update(|s| {
            let index = s.connections.len();
            s.connections.push(LiveConnectionRecord {
                index,
                api_version,
                headers,
                model: None,
                setup: None,
                resumed_from: None,
                opened_at: at,
                closed_at: None,
                audio_received_ms: 0,
            });
            index
        });
        let session = LiveSession::new(shared.config.clone());
        Self { shared, socket, session, index }
    }

    async fn fail(&mut self, code: u16, reason: &str) {
        self.send_close(code, reason).await;
        self.closed();
    }

    async fn run(mut self) {
        let cancel = self.shared.cancel.clone();
        let config = self.shared.config.clone();
        let interval = config.pacing.interval(config.chunk_ms);
        let far = || tokio::time::Instant::now() + Duration::from_secs(86_400 * 365);
        let mut next_chunk_at = tokio::time::Instant::now();
        let mut go_away_at = far();
        let mut close_at = far();
        let mut close_frame: (u16, &str) = (1011, "Deadline expired before operation could complete.");
        let mut go_away_sent = false;
        loop {
            let streaming = self.session.is_streaming();
            tokio::select! {
                biased;
                _ = cancel.cancelled() => {
                    self.send_close(1001, "server shutting down").await;
                    return self.closed();
                }
                _ = tokio::time::sleep_until(close_at) => {
                    self.send_close(close_frame.0, close_frame.1).await;
                    return self.closed();
                }
                _ = tokio::time::sleep_until(go_away_at), if !go_away_sent => {
                    go_away_sent = true;
                    if let Some(go_away) = config.go_away {
                        if let Flow::Stop = self.send_go_away(go_away).await {
                            return self.closed();
                        }
                        close_at = tokio::time::Instant::now() + go_away.time_left;
                    }
                }
                message = self.socket.recv() => {
                    let was_set_up = self.session.is_set_up();
                    let was_streaming = self.session.is_streaming();
                    let text = match message {
                        Some(Ok(Message::Text(text))) => text.as_str().to_owned(),
                        Some(Ok(Message::Binary(bytes))) => String::from_utf8_lossy(&bytes).into_owned(),
                        Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
                        Some(Ok(Message::Close(_))) | Some(Err(_)) | None => return self.closed(),
                    };
                    self.record_client(&text);
                    if !was_set_up && !config.faults.setup_complete_delay.is_zero() {
                        tokio::time::sleep(config.faults.setup_complete_delay).await;
                    }
                    let shared = self.shared.clone();
                    let outcome = self.session.handle(&text, |handle| {
                        shared.recorder.read(|s| s.issued_handles.iter().any(|h| h == handle))
                    });
                    if let Flow::Stop = self.apply(outcome).await {
                        return self.closed();
                    }
                    if !was_set_up && self.session.is_set_up() {
                        if let Some(GoAway { trigger: GoAwayTrigger::After(after), .. }) = config.go_away {
                            go_away_at = tokio::time::Instant::now() + after;
                        }
                        if let Some(after) = config.faults.drop_after {
                            close_at = tokio::time::Instant::now() + after;
                            close_frame = (1011, "Internal error occurred.");
                        }
                    }
                    if !was_streaming && self.session.is_streaming() {
                        next_chunk_at = tokio::time::Instant::now();
                    }
                }
                _ = tokio::time::sleep_until(next_chunk_at), if streaming => {
                    let outcome = self.session.next_chunk();
                    if let Flow::Stop = self.apply(outcome).await {
                        return self.closed();
                    }
                    next_chunk_at = tokio::time::Instant::now() + interval;
                    if let Some(go_away @ GoAway { trigger: GoAwayTrigger::AfterTurns(turns), .. }) = config.go_away
                        && !go_away_sent
                        && self.session.turns_completed() >= turns
                    {
                        go_away_sent = true;
                        if let Flow::Stop = self.send_go_away(go_away).await {
                            return self.closed();
                        }
                        close_at = tokio::time::Instant::now() + go_away.time_left;
                    }
                }
            }
        }
    }

    async fn send_go_away(&mut self, go_away: GoAway) -> Flow {
        self.shared.recorder.update(|s| s.go_aways_sent += 1);
        self.send_json(json!({"goAway": {"timeLeft": proto_duration(go_away.time_left)}})).await
    }

    fn record_client(&self, text: &str) {
        let message = serde_json::from_str(text).unwrap_or_else(|_| json!(text));
        let at = self.shared.recorder.elapsed();
        let connection = self.index;
        self.shared.recorder.update(|s| s.client_messages.push(LiveMessageRecord { connection, at, message }));
    }

    async fn apply(&mut self, outcome: LiveOutcome) -> Flow {
        let connection = self.index;
        let audio_ms = self.session.audio_received_ms();
        self.shared.recorder.update(|s| {
            if let Some(record) = s.connections.get_mut(connection) {
                record.audio_received_ms = audio_ms;
            }
            for note in outcome.notes {
                match note {
                    LiveNote::Setup { model, setup, resumed_from } => {
                        if let Some(record) = s.connections.get_mut(connection) {
                            record.model = Some(model);
                            record.setup = Some(setup);
                            record.resumed_from = resumed_from;
                        }
                    }
                    LiveNote::HandleIssued(handle) => s.issued_handles.push(handle),
                    LiveNote::ToolCall { id, name } => s.tool_calls.push((connection, id, name)),
                    LiveNote::ToolResponse { id, name, response } => {
                        s.tool_responses.push(ToolResponseRecord { connection, id, name, response });
                    }
                    LiveNote::ToolCallCancelled(ids) => s.tool_call_cancellations.push((connection, ids)),
                    LiveNote::TurnComplete { interrupted, audio_ms, transcript } => {
                        s.turns.push(TurnRecord { connection, interrupted, audio_ms, transcript });
                    }
                }
            }
        });
        for frame in outcome.frames {
            match frame {
                Frame::Json(value) => {
                    if let Flow::Stop = self.send_json(value).await {
                        return Flow::Stop;
                    }
                }
                Frame::Close { code, reason } => {
                    self.send_close(code, &reason).await;
                    return Flow::Stop;
                }
            }
        }
        Flow::Continue
    }

    async fn send_json(&mut self, message: Value) -> Flow {
        let bytes = message.to_string().into_bytes();
        let at = self.shared.recorder.elapsed();
        let connection = self.index;
        self.shared.recorder.update(|s| s.server_messages.push(LiveMessageRecord { connection, at, message }));
        match self.socket.send(Message::Binary(bytes.into())).await {
            Ok(()) => Flow::Continue,
            Err(_) => Flow::Stop,
        }
    }

    async fn send_close(&mut self, code: u16, reason: &str) {
        let reason = truncate_reason(reason);
        let connection = self.index;
        if code != 1001 {
            tracing::debug!(connection, code, reason, "mock gemini closes the connection");
        }
        self.shared.recorder.update(|s| s.closes_sent.push(CloseRecord { connection, code, reason: reason.clone() }));
        let _ = self.socket.send(Message::Close(Some(CloseFrame { code, reason: reason.into() }))).await;
    }

    fn closed(&self) {
        let at = self.shared.recorder.elapsed();
        let connection = self.index;
        self.shared.recorder.update(|s| {
            if let Some(record) = s.connections.get_mut(connection) {
                record.closed_at = Some(at);
            }
        });
    }
}

#[cfg(test)]
#[path = "mock_gemini_live_tests.rs"]
mod tests;
