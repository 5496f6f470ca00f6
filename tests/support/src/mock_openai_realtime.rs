//! A local OpenAI Realtime server (WebSocket transport), GA and beta.
//!
//! `GET /v1/realtime?model=<m>` upgrades to a WebSocket when the request
//! carries `Authorization: Bearer <key>` (or the browser subprotocol
//! `openai-insecure-api-key.<key>`). `OpenAI-Beta: realtime=v1` (or the
//! `openai-beta.realtime-v1` subprotocol) selects the beta dialect; without
//! it the connection speaks GA. Every client event is validated against the
//! dialect's schema and answered as the real service answers, errors
//! included; the session stays open after an error.
//!
//! Choices made where the protocol reference is silent:
//! - handshake: a missing key gets 401 with `code: null` and OpenAI's
//!   "You didn't provide an API key…" text, a wrong key 401 `invalid_api_key`;
//!   an unknown model 404 `model_not_found`, no model 400
//!   `missing_required_parameter`; an injected fault 503 `server_error`.
//! - session cap: an `error` event (`session_expired`, "Your session hit the
//!   maximum duration of …"), then close 1001 with the same text, as seen
//!   from the real API; `session.expires_at` reflects the cap.
//! - GA items a client creates get `conversation.item.added` (plus `.done`
//!   for messages); a `function_call_output` only `.added`, as in the trace.
//! - `output_audio_buffer.clear` (WebRTC/SIP only) is answered with an error.

use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

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

use crate::ids;
use crate::realtime_schema;
use crate::realtime_session::{Note, Outcome, RealtimeSession};
use crate::recorder::{Recorder, WaitTimeout};
use crate::script::{HandshakeRejection, MockReply, Pacing, ScriptedToolCall};
use crate::server::{self, ServerHandle};

/// The two wire dialects of OpenAI Realtime.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Dialect {
    /// The generally available interface (no `OpenAI-Beta` header).
    Ga,
    /// The beta interface (`OpenAI-Beta: realtime=v1`).
    Beta,
}

/// What the mock expects and how it behaves.
#[derive(Debug, Clone)]
pub struct OpenAiRealtimeConfig {
    /// The key clients must present.
    pub api_key: String,
    /// The answer to every response, unless `replies` has one left.
    pub reply: MockReply,
    /// Answers used in order, one per response, on each connection; then `reply`.
    pub replies: Vec<MockReply>,
    /// What input transcription "hears" in every caller turn (sent only when
    /// the session enables transcription).
    pub user_transcript: String,
    /// A function call to make when the caller's turn ends.
    pub tool_call: Option<ScriptedToolCall>,
    /// More function calls: at the end of each caller turn the first script (`tool_call`,
    /// then these in order) whose tool the session declares and whose `max_calls` is not
    /// used up is called.
    pub tool_calls: Vec<ScriptedToolCall>,
    /// The transcript of the answer after a tool result; `{output}` is the
    /// `function_call_output` text.
    pub tool_reply_template: String,
    pub pacing: Pacing,
    /// Audio per `response.(output_)audio.delta`.
    pub chunk_ms: u32,
    pub faults: OpenAiFaults,
}

impl Default for OpenAiRealtimeConfig {
    fn default() -> Self {
        Self {
            api_key: "sk-test-openai".into(),
            reply: MockReply::default(),
            replies: Vec::new(),
            user_transcript: "Hi, can you hear me?".into(),
            tool_call: None,
            tool_calls: Vec::new(),
            tool_reply_template: "According to our records: {output}".into(),
            pacing: Pacing::Burst,
            chunk_ms: 100,
            faults: OpenAiFaults::default(),
        }
    }
}

/// Injected failures.
#[derive(Debug, Clone, Default)]
pub struct OpenAiFaults {
    /// Handshakes answered with HTTP 503.
    pub reject_handshakes: HandshakeRejection,
    /// End each session after this long (an `error`, then close 1001).
    pub session_cap: Option<Duration>,
    /// Wait this long before sending `session.created`.
    pub session_created_delay: Duration,
}

/// One accepted WebSocket connection.
#[derive(Debug, Clone, Serialize)]
pub struct ConnectionRecord {
    pub index: usize,
    pub dialect: Dialect,
    pub model: String,
    /// Request headers, lower-case names, in arrival order.
    pub headers: Vec<(String, String)>,
    #[serde(serialize_with = "as_ms")]
    pub opened_at: Duration,
    #[serde(serialize_with = "as_opt_ms")]
    pub closed_at: Option<Duration>,
    /// Whether the mock ended it because of `session_cap`.
    pub capped: bool,
    pub audio_received_ms: u64,
    /// The effective session after the last `session.update`.
    pub session: Value,
}

impl ConnectionRecord {
    /// A request header's value.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
}

/// A frame received from a client (text frames parsed; anything else as a
/// JSON string describing it).
#[derive(Debug, Clone, Serialize)]
pub struct ClientEventRecord {
    pub connection: usize,
    #[serde(serialize_with = "as_ms")]
    pub at: Duration,
    pub event: Value,
}

/// An event the mock sent (errors included).
#[derive(Debug, Clone, Serialize)]
pub struct ServerEventRecord {
    pub connection: usize,
    #[serde(serialize_with = "as_ms")]
    pub at: Duration,
    pub event: Value,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TruncateRecord {
    pub connection: usize,
    pub item_id: String,
    pub audio_end_ms: u64,
    #[serde(serialize_with = "as_ms")]
    pub received_at: Duration,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ToolOutputRecord {
    pub connection: usize,
    pub call_id: String,
    pub output: String,
}

/// A finished response and how much audio went out for its item.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ResponseRecord {
    pub connection: usize,
    pub response_id: String,
    pub item_id: String,
    /// `completed` or `cancelled`.
    pub status: String,
    pub audio_ms: u64,
    pub transcript: String,
    /// `(name, call_id)` for a function call.
    pub function_call: Option<(String, String)>,
}

/// Everything the mock saw and did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct OpenAiState {
    /// Handshakes attempted, accepted or not.
    pub handshakes: usize,
    /// Handshakes refused (faults, bad key, bad model).
    pub rejected_handshakes: usize,
    pub connections: Vec<ConnectionRecord>,
    pub client_events: Vec<ClientEventRecord>,
    #[serde(skip)]
    pub server_events: Vec<ServerEventRecord>,
    pub errors_sent: Vec<ServerEventRecord>,
    pub truncates: Vec<TruncateRecord>,
    pub tool_outputs: Vec<ToolOutputRecord>,
    pub responses: Vec<ResponseRecord>,
}

impl OpenAiState {
    /// Server events of `kind` sent so far (all connections).
    pub fn count_sent(&self, kind: &str) -> usize {
        self.server_events.iter().filter(|e| e.event["type"] == kind).count()
    }

    /// Client events of `kind` received so far (all connections).
    pub fn count_received(&self, kind: &str) -> usize {
        self.client_events.iter().filter(|e| e.event["type"] == kind).count()
    }

    /// Milliseconds of audio sent for an assistant item whose response has
    /// finished (completed or cancelled).
    pub fn audio_sent_ms(&self, item_id: &str) -> Option<u64> {
        self.responses.iter().find(|r| r.item_id == item_id).map(|r| r.audio_ms)
    }
}

struct Shared {
    config: Arc<OpenAiRealtimeConfig>,
    recorder: Recorder<OpenAiState>,
    cancel: CancellationToken,
}

/// The running mock. Dropping it stops the server and its connections.
pub struct MockOpenAiRealtime {
    shared: Arc<Shared>,
    server: ServerHandle,
}

impl MockOpenAiRealtime {
    /// Starts on `127.0.0.1:0`.
    pub async fn start(config: OpenAiRealtimeConfig) -> Self {
        Self::start_on(server::ephemeral(), config).await.expect("bind 127.0.0.1:0")
    }

    pub async fn start_on(addr: SocketAddr, config: OpenAiRealtimeConfig) -> io::Result<Self> {
        let cancel = CancellationToken::new();
        let shared = Arc::new(Shared {
            config: Arc::new(config),
            recorder: Recorder::new(OpenAiState::default()),
            cancel: cancel.clone(),
        });
        let router = Router::new()
            .route("/v1/realtime", get(handshake))
            .route("/__mock/state", get(state_json))
            .with_state(shared.clone());
        let server = ServerHandle::bind(addr, router, cancel).await?;
        Ok(Self { shared, server })
    }

    pub fn addr(&self) -> SocketAddr {
        self.server.addr()
    }

    /// `http://127.0.0.1:<port>/v1`, the stand-in for `https://api.openai.com/v1`.
    pub fn base_url(&self) -> String {
        format!("http://{}/v1", self.addr())
    }

    /// `ws://127.0.0.1:<port>/v1`, the stand-in for `wss://api.openai.com/v1`.
    pub fn ws_base_url(&self) -> String {
        format!("ws://{}/v1", self.addr())
    }

    /// The full WebSocket URL for `model`.
    pub fn realtime_url(&self, model: &str) -> String {
        format!("{}/realtime?model={model}", self.ws_base_url())
    }

    pub fn config(&self) -> &OpenAiRealtimeConfig {
        &self.shared.config
    }

    /// When the mock started; record times are offsets from it.
    pub fn started_at(&self) -> Instant {
        self.shared.recorder.started()
    }

    /// A copy of everything recorded.
    pub fn state(&self) -> OpenAiState {
        self.shared.recorder.read(Clone::clone)
    }

    /// Every parsed client event, in arrival order (all connections).
    pub fn client_events(&self) -> Vec<Value> {
        self.shared.recorder.read(|s| s.client_events.iter().map(|e| e.event.clone()).collect())
    }

    /// Every server event sent, in order (all connections).
    pub fn server_events(&self) -> Vec<Value> {
        self.shared.recorder.read(|s| s.server_events.iter().map(|e| e.event.clone()).collect())
    }

    /// Every `error` event sent. Empty means the client never tripped one.
    pub fn errors_sent(&self) -> Vec<Value> {
        self.shared.recorder.read(|s| s.errors_sent.iter().map(|e| e.event.clone()).collect())
    }

    /// The `error` events a client caused: all but the `session_expired`
    /// the mock sends on its own when `session_cap` ends a session.
    pub fn client_errors(&self) -> Vec<Value> {
        self.errors_sent().into_iter().filter(|e| e["error"]["code"] != "session_expired").collect()
    }

    pub fn truncates(&self) -> Vec<TruncateRecord> {
        self.shared.recorder.read(|s| s.truncates.clone())
    }

    pub fn tool_outputs(&self) -> Vec<ToolOutputRecord> {
        self.shared.recorder.read(|s| s.tool_outputs.clone())
    }

    pub fn responses(&self) -> Vec<ResponseRecord> {
        self.shared.recorder.read(|s| s.responses.clone())
    }

    pub fn connections(&self) -> Vec<ConnectionRecord> {
        self.shared.recorder.read(|s| s.connections.clone())
    }

    pub fn connection_count(&self) -> usize {
        self.shared.recorder.read(|s| s.connections.len())
    }

    /// Milliseconds of caller audio received, over all connections.
    pub fn audio_received_ms(&self) -> u64 {
        self.shared.recorder.read(|s| s.connections.iter().map(|c| c.audio_received_ms).sum())
    }

    /// Waits until `condition` holds for the recorded state.
    pub async fn wait_for(
        &self,
        condition: impl FnMut(&OpenAiState) -> bool,
        timeout: Duration,
    ) -> Result<(), WaitTimeout> {
        self.shared.recorder.wait_for(condition, timeout).await
    }

    /// Stops the server and closes every connection (1001).
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

/// `GET /__mock/state`: the recorded state as JSON for out-of-process tests
/// (server events and appended audio are left out; they are large).
async fn state_json(State(shared): State<Arc<Shared>>) -> Json<Value> {
    let mut state = shared.recorder.read(Clone::clone);
    state.client_events.retain(|e| e.event["type"] != "input_audio_buffer.append");
    Json(serde_json::to_value(&state).unwrap_or(Value::Null))
}

fn openai_error(status: StatusCode, kind: &str, code: Option<&str>, message: &str, param: Option<&str>) -> Response {
    let body = json!({"error": {"message": message, "type": kind, "param": param, "code": code}});
    (status, Json(body)).into_response()
}

/// How OpenAI masks a key in "Incorrect API key provided" messages.
fn masked(key: &str) -> String {
    let chars: Vec<char> = key.chars().collect();
    if chars.len() <= 8 {
        return "*".repeat(chars.len());
    }
    let head: String = chars[..3].iter().collect();
    let tail: String = chars[chars.len() - 4..].iter().collect();
    format!("{head}{}{tail}", "*".repeat(chars.len() - 7))
}

async fn handshake(
    State(shared): State<Arc<Shared>>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
    upgrade: Result<WebSocketUpgrade, axum::extract::ws::rejection::WebSocketUpgradeRejection>,
) -> Response {
    let config = shared.config.clone();
    let index = shared.recorder.update(|s| {
        s.handshakes += 1;
        s.handshakes - 1
    });
    let reject = |response: Response| {
        shared.recorder.update(|s| s.rejected_handshakes += 1);
        response
    };
    if config.faults.reject_handshakes.rejects(index) {
        return reject(openai_error(
            StatusCode::SERVICE_UNAVAILABLE,
            "server_error",
            None,
            "The server is overloaded or not ready yet.",
            None,
        ));
    }
    let protocols: Vec<String> = headers
        .get_all("sec-websocket-protocol")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(',').map(|p| p.trim().to_owned()))
        .collect();
    let key = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::to_owned)
        .or_else(|| protocols.iter().find_map(|p| p.strip_prefix("openai-insecure-api-key.").map(str::to_owned)));
    match key {
        None => {
            return reject(openai_error(
                StatusCode::UNAUTHORIZED,
                "invalid_request_error",
                None,
                "You didn't provide an API key. You need to provide your API key in an Authorization header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY), or as the password field (with blank username) if you're accessing the API from your browser and are prompted for a username and password. You can obtain an API key from https://platform.openai.com/account/api-keys.",
                None,
            ));
        }
        Some(key) if key != config.api_key => {
            return reject(openai_error(
                StatusCode::UNAUTHORIZED,
                "invalid_request_error",
                Some("invalid_api_key"),
                &format!(
                    "Incorrect API key provided: {}. You can find your API key at https://platform.openai.com/account/api-keys.",
                    masked(&key)
                ),
                None,
            ));
        }
        Some(_) => {}
    }
    let beta = headers
        .get_all("openai-beta")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| v.split(',').any(|p| p.trim() == "realtime=v1"))
        || protocols.iter().any(|p| p == "openai-beta.realtime-v1");
    let dialect = if beta { Dialect::Beta } else { Dialect::Ga };
    let Some(model) = query.get("model").cloned() else {
        return reject(openai_error(
            StatusCode::BAD_REQUEST,
            "invalid_request_error",
            Some("missing_required_parameter"),
            "Missing required parameter: 'model'.",
            Some("model"),
        ));
    };
    if !realtime_schema::known_model(dialect, &model) {
        return reject(openai_error(
            StatusCode::NOT_FOUND,
            "invalid_request_error",
            Some("model_not_found"),
            &format!("The model `{model}` does not exist or you do not have access to it."),
            None,
        ));
    }
    let upgrade = match upgrade {
        Ok(upgrade) => upgrade,
        Err(rejection) => return reject(rejection.into_response()),
    };
    let upgrade = if protocols.iter().any(|p| p == "realtime") { upgrade.protocols(["realtime"]) } else { upgrade };
    let header_list: Vec<(String, String)> = headers
        .iter()
        .map(|(name, value)| (name.as_str().to_owned(), String::from_utf8_lossy(value.as_bytes()).into_owned()))
        .collect();
    // A small read window: tungstenite zero-fills all of it before each read.
    upgrade.read_buffer_size(8 * 1024).on_upgrade(move |socket| async move {
        Connection::open(shared, socket, dialect, model, header_list).run().await;
    })
}

/// The I/O shell around one `RealtimeSession`.
struct Connection {
    shared: Arc<Shared>,
    socket: WebSocket,
    session: RealtimeSession,
    index: usize,
    opened: Instant,
}

enum Flow {
    Continue,
    Stop,
}

impl Connection {
    fn open(
        shared: Arc<Shared>,
        socket: WebSocket,
        dialect: Dialect,
        model: String,
        headers: Vec<(String, String)>,
    ) -> Self {
        let lifetime = shared.config.faults.session_cap.map_or(1800, |cap| cap.as_secs().max(1));
        let now = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
        let session = RealtimeSession::new(dialect, &model, shared.config.clone(), now + lifetime);
        let at = shared.recorder.elapsed();
        let index = shared.recorder.update(|s| {
            let index = s.connections.len();
            s.connections.push(ConnectionRecord {
                index,
                dialect,
                model,
                headers,
                opened_at: at,
                closed_at: None,
                capped: false,
                audio_received_ms: 0,
                session: session.session().clone(),
            });
            index
        });
        Self { shared, socket, session, index, opened: Instant::now() }
    }

    async fn run(mut self) {
        let cancel = self.shared.cancel.clone();
        let faults = self.shared.config.faults.clone();
        let interval = self.shared.config.pacing.interval(self.shared.config.chunk_ms);
        let cap_at = faults.session_cap.map(|cap| tokio::time::Instant::from_std(self.opened + cap));

        if !faults.session_created_delay.is_zero() {
            tokio::select! {
                _ = cancel.cancelled() => return self.close(1001, "server shutting down").await,
                _ = tokio::time::sleep(faults.session_created_delay) => {}
            }
        }
        let created = self.session.session_created();
        if let Flow::Stop = self.send(created).await {
            return self.closed(false);
        }

        let mut next_chunk_at = tokio::time::Instant::now();
        loop {
            let streaming = self.session.is_streaming();
            let cap_sleep = async {
                match cap_at {
                    Some(at) => tokio::time::sleep_until(at).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                biased;
                _ = cancel.cancelled() => return self.close(1001, "server shutting down").await,
                _ = cap_sleep => return self.cap(faults.session_cap.unwrap_or_default()).await,
                message = self.socket.recv() => {
                    let was_streaming = self.session.is_streaming();
                    let flow = match message {
                        Some(Ok(Message::Text(text))) => {
                            self.record_client(serde_json::from_str(text.as_str()).unwrap_or_else(|_| json!(text.as_str())));
                            let outcome = self.session.handle_text(text.as_str());
                            self.apply(outcome).await
                        }
                        Some(Ok(Message::Binary(bytes))) => {
                            self.record_client(json!(format!("<binary frame, {} bytes>", bytes.len())));
                            let outcome = self.session.handle_binary();
                            self.apply(outcome).await
                        }
                        Some(Ok(Message::Ping(_) | Message::Pong(_))) => Flow::Continue,
                        Some(Ok(Message::Close(_))) | Some(Err(_)) | None => Flow::Stop,
                    };
                    if let Flow::Stop = flow {
                        return self.closed(false);
                    }
                    if !was_streaming && self.session.is_streaming() {
                        next_chunk_at = tokio::time::Instant::now();
                    }
                }
                _ = tokio::time::sleep_until(next_chunk_at), if streaming => {
                    let outcome = self.session.next_chunk();
                    if let Flow::Stop = self.apply(outcome).await {
                        return self.closed(false);
                    }
                    next_chunk_at = tokio::time::Instant::now() + interval;
                }
            }
        }
    }

    fn record_client(&self, event: Value) {
        let at = self.shared.recorder.elapsed();
        let connection = self.index;
        self.shared.recorder.update(|s| s.client_events.push(ClientEventRecord { connection, at, event }));
    }

    async fn apply(&mut self, outcome: Outcome) -> Flow {
        let at = self.shared.recorder.elapsed();
        let connection = self.index;
        let audio_ms = self.session.audio_received_ms();
        self.shared.recorder.update(|s| {
            if let Some(record) = s.connections.get_mut(connection) {
                record.audio_received_ms = audio_ms;
            }
            for note in &outcome.notes {
                match note.clone() {
                    Note::SessionUpdated(session) => {
                        if let Some(record) = s.connections.get_mut(connection) {
                            record.session = session;
                        }
                    }
                    Note::Truncated { item_id, audio_end_ms } => {
                        s.truncates.push(TruncateRecord { connection, item_id, audio_end_ms, received_at: at });
                    }
                    Note::ToolOutput { call_id, output } => {
                        s.tool_outputs.push(ToolOutputRecord { connection, call_id, output });
                    }
                    Note::ResponseDone(r) => s.responses.push(ResponseRecord {
                        connection,
                        response_id: r.response_id,
                        item_id: r.item_id,
                        status: r.status,
                        audio_ms: r.audio_ms,
                        transcript: r.transcript,
                        function_call: r.function_call,
                    }),
                }
            }
        });
        for event in outcome.events {
            if let Flow::Stop = self.send(event).await {
                return Flow::Stop;
            }
        }
        Flow::Continue
    }

    async fn send(&mut self, mut event: Value) -> Flow {
        if let Some(map) = event.as_object_mut() {
            map.insert("event_id".into(), json!(ids::openai("event")));
        }
        let text = event.to_string();
        let record = ServerEventRecord { connection: self.index, at: self.shared.recorder.elapsed(), event };
        let is_error = record.event["type"] == "error";
        if is_error {
            tracing::debug!(connection = self.index, error = %record.event["error"], "mock openai sent an error");
        }
        self.shared.recorder.update(|s| {
            if is_error {
                s.errors_sent.push(record.clone());
            }
            s.server_events.push(record);
        });
        match self.socket.send(Message::Text(text.into())).await {
            Ok(()) => Flow::Continue,
            Err(_) => Flow::Stop,
        }
    }

    async fn cap(mut self, cap: Duration) {
        let length = if cap.as_secs() >= 60 && cap.as_secs().is_multiple_of(60) {
            format!("{} minutes", cap.as_secs() / 60)
        } else {
            format!("{} seconds", cap.as_secs_f64())
        };
        let message = format!("Your session hit the maximum duration of {length}.");
        let error = realtime_schema::ApiError::new(Some("session_expired"), message.clone(), None).to_event(None);
        if let Flow::Continue = self.send(error).await {
            let _ = self
                .socket
                .send(Message::Close(Some(CloseFrame { code: 1001, reason: truncate_reason(&message).into() })))
                .await;
        }
        self.closed(true);
    }

    async fn close(mut self, code: u16, reason: &str) {
        let _ = self.socket.send(Message::Close(Some(CloseFrame { code, reason: reason.into() }))).await;
        self.closed(false);
    }

    fn closed(&self, capped: bool) {
        let at = self.shared.recorder.elapsed();
        let connection = self.index;
        self.shared.recorder.update(|s| {
            if let Some(record) = s.connections.get_mut(connection) {
                record.closed_at = Some(at);
                record.capped = capped;
            }
        });
    }
}

/// Close reasons are limited to 123 bytes.
pub(crate) fn truncate_reason(reason: &str) -> String {
    let mut end = reason.len().min(123);
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    reason[..end].to_owned()
}

#[cfg(test)]
#[path = "mock_openai_realtime_tests.rs"]
mod tests;
