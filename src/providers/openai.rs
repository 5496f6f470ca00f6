//! OpenAI Realtime over WebSocket, GA and beta dialects
//! (shared/protocols/realtime-protocols.md §1). Audio is PCM16 24 kHz, or G.711 μ-law /
//! A-law 8 kHz (a phone caller's audio then passes through untouched), as negotiated.
//!
//! Server events are read into one typed, borrowing struct (`ServerEvent`): an audio
//! delta is decoded straight from the frame's text, without building a JSON tree.

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use futures::{SinkExt, StreamExt};
use media::SampleRate;
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use super::{
    AgentAudio, AudioFormat, Capabilities, ProviderCommand, ProviderError, ProviderEvent, ProviderSession, SessionSpec,
};
use crate::domain::RealtimeDialect;
use crate::ws_frames::TextFrames;

/// OpenAI Realtime takes and gives PCM16 at 24 kHz or G.711 at 8 kHz; its server VAD
/// confirms a barge-in (`speech_started`) within a few hundred milliseconds, and an
/// item can be truncated at what the caller heard.
pub const CAPABILITIES: Capabilities = Capabilities {
    input: &[AudioFormat::Pcm16(SampleRate::Hz24000), AudioFormat::Mulaw, AudioFormat::Alaw],
    output: &[AudioFormat::Pcm16(SampleRate::Hz24000), AudioFormat::Mulaw, AudioFormat::Alaw],
    barge_in_confirm: Duration::from_millis(700),
    truncates: true,
    transcribes_only: true,
};

type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// How long the handshake (connect, session.created, session.updated) may take.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Largest frame accepted from the provider (audio deltas are far smaller).
const MAX_MESSAGE_BYTES: usize = 16 << 20;
/// At most this long before a session's expiry, an idle call moves to a fresh session.
const ROLLOVER_MARGIN: Duration = Duration::from_secs(90);
/// Attempts to reopen a session that ended under the call.
const RECONNECT_ATTEMPTS: u32 = 3;
/// The conversation carried into a new session, in characters (most recent kept).
const HISTORY_CHARS: usize = 6000;

/// Where to (re)connect.
#[derive(Clone)]
struct Endpoint {
    url: url::Url,
    key: String,
}

/// An open, configured Realtime session.
struct Connection {
    socket: Socket,
    /// When the server will end the session (from `session.created`), and the margin
    /// before it at which the gateway rolls over to a fresh one by itself.
    expires: Option<(Instant, Duration)>,
}

/// Connects, configures the session and starts its I/O task.
pub async fn connect(base: &url::Url, key: &str, spec: &SessionSpec) -> Result<ProviderSession, ProviderError> {
    let endpoint = Endpoint { url: base.clone(), key: key.to_owned() };
    let connection = open(&endpoint, spec).await?;
    let (commands_tx, commands_rx) = mpsc::channel(256);
    let (events_tx, events_rx) = mpsc::channel(256);
    let worker = Worker {
        endpoint,
        spec: spec.clone(),
        events: events_tx,
        state: ReadState { g711_output: spec.output.is_g711(), ..ReadState::default() },
        history: History::default(),
        response_active: false,
        turn_open: false,
        pending_say: None,
        last_say: None,
        last_loud: None,
        frames: TextFrames::default(),
    };
    tokio::spawn(worker.run(connection, commands_rx));
    Ok(ProviderSession { commands: commands_tx, events: events_rx })
}

/// Opens and configures one Realtime session.
async fn open(endpoint: &Endpoint, spec: &SessionSpec) -> Result<Connection, ProviderError> {
    let mut url = endpoint.url.clone();
    url.query_pairs_mut().append_pair("model", &spec.model);
    let mut request = url.as_str().into_client_request().map_err(|e| ProviderError::Connect(e.to_string()))?;
    let auth = HeaderValue::from_str(&format!("Bearer {}", endpoint.key))
        .map_err(|_| ProviderError::Refused("the API key is not a valid header value".into()))?;
    request.headers_mut().insert("Authorization", auth);
    if spec.dialect == RealtimeDialect::Beta {
        request.headers_mut().insert("OpenAI-Beta", HeaderValue::from_static("realtime=v1"));
    }
    let config = tokio_tungstenite::tungstenite::protocol::WebSocketConfig::default()
        .read_buffer_size(crate::ws_frames::READ_BUFFER_BYTES)
        .max_message_size(Some(MAX_MESSAGE_BYTES))
        .max_frame_size(Some(MAX_MESSAGE_BYTES));
    let handshake = async {
        let (mut ws, _) =
            tokio_tungstenite::connect_async_with_config(request, Some(config), true).await.map_err(|e| match e {
                tokio_tungstenite::tungstenite::Error::Http(response) if response.status() == 401 => {
                    ProviderError::Refused("OpenAI refused the API key (401)".into())
                }
                other => ProviderError::Connect(other.to_string()),
            })?;
        let created = expect_event(&mut ws, "session.created").await?;
        let update = session_update(spec);
        ws.send(Message::text(update.to_string())).await.map_err(|e| ProviderError::Connect(e.to_string()))?;
        expect_event(&mut ws, "session.updated").await?;
        Ok::<_, ProviderError>((ws, created))
    };
    let (socket, created) = tokio::time::timeout(HANDSHAKE_TIMEOUT, handshake)
        .await
        .map_err(|_| ProviderError::Connect("timed out opening the Realtime session".into()))??;
    Ok(Connection { socket, expires: expiry(&created) })
}

/// When the session expires, from `session.created.session.expires_at` (Unix seconds), and
/// how long before that to roll over: a fifth of the lifetime, at most 90 s.
fn expiry(created: &Value) -> Option<(Instant, Duration)> {
    let expires_at = created["session"]["expires_at"].as_u64()?;
    let now_unix = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).ok()?.as_secs_f64();
    let left = Duration::try_from_secs_f64(expires_at as f64 - now_unix).ok()?;
    let margin = (left / 5).min(ROLLOVER_MARGIN);
    Some((Instant::now().checked_add(left)?, margin))
}

/// Waits for an event of type `wanted` and returns it; an `error` event first means the
/// session was refused.
async fn expect_event(ws: &mut Socket, wanted: &str) -> Result<Value, ProviderError> {
    while let Some(message) = ws.next().await {
        let message = message.map_err(|e| ProviderError::Connect(e.to_string()))?;
        let Message::Text(text) = message else { continue };
        let event: Value =
            serde_json::from_str(&text).map_err(|e| ProviderError::Connect(format!("bad JSON from OpenAI: {e}")))?;
        match event["type"].as_str() {
            Some(t) if t == wanted => return Ok(event),
            Some("error") => {
                let message = event["error"]["message"].as_str().unwrap_or("unknown error");
                return Err(ProviderError::Refused(message.to_owned()));
            }
            _ => {}
        }
    }
    Err(ProviderError::Connect(format!("the connection closed before {wanted}")))
}

/// The `session.update` for the call, in the model's dialect.
pub fn session_update(spec: &SessionSpec) -> Value {
    let turn_detection = json!({
        "type": "server_vad",
        "threshold": spec.vad_threshold,
        "prefix_padding_ms": 300,
        "silence_duration_ms": 500,
        "create_response": spec.respond,
        "interrupt_response": spec.respond && spec.allow_interruption,
    });
    let tools: Vec<Value> = spec
        .tools
        .iter()
        .map(|t| json!({"type": "function", "name": t.name, "description": t.description, "parameters": t.parameters}))
        .collect();
    let session = match spec.dialect {
        RealtimeDialect::Ga => {
            let mut input = json!({
                "format": ga_format(spec.input),
                "turn_detection": turn_detection,
            });
            if spec.transcription {
                input["transcription"] = json!({"model": "gpt-4o-mini-transcribe"});
            }
            if spec.noise_reduction {
                input["noise_reduction"] = json!({"type": "near_field"});
            }
            let mut session = json!({
                "type": "realtime",
                "model": spec.model,
                "output_modalities": ["audio"],
                "instructions": spec.instructions,
                "audio": {
                    "input": input,
                    "output": {"format": ga_format(spec.output), "voice": spec.voice, "speed": spec.speed},
                },
            });
            if !tools.is_empty() {
                session["tools"] = Value::Array(tools);
                session["tool_choice"] = json!("auto");
            }
            session
        }
        RealtimeDialect::Beta => {
            let mut session = json!({
                "modalities": ["text", "audio"],
                "instructions": spec.instructions,
                "voice": spec.voice,
                "input_audio_format": beta_format(spec.input),
                "output_audio_format": beta_format(spec.output),
                "turn_detection": turn_detection,
            });
            if spec.transcription {
                session["input_audio_transcription"] = json!({"model": "whisper-1"});
            }
            if spec.noise_reduction {
                session["input_audio_noise_reduction"] = json!({"type": "near_field"});
            }
            if (spec.speed - 1.0).abs() > f64::EPSILON {
                session["speed"] = json!(spec.speed);
            }
            if !tools.is_empty() {
                session["tools"] = Value::Array(tools);
                session["tool_choice"] = json!("auto");
            }
            session
        }
    };
    json!({"type": "session.update", "session": session})
}

/// An audio format as the GA dialect names it.
fn ga_format(format: AudioFormat) -> Value {
    match format {
        AudioFormat::Mulaw => json!({"type": "audio/pcmu"}),
        AudioFormat::Alaw => json!({"type": "audio/pcma"}),
        AudioFormat::Pcm16(rate) => json!({"type": "audio/pcm", "rate": rate.hz()}),
    }
}

/// An audio format as the beta dialect names it (PCM16 is always 24 kHz there).
fn beta_format(format: AudioFormat) -> &'static str {
    match format {
        AudioFormat::Mulaw => "g711_ulaw",
        AudioFormat::Alaw => "g711_alaw",
        AudioFormat::Pcm16(_) => "pcm16",
    }
}

/// Per-session state of the reader: partial transcripts and tool names by item.
#[derive(Default)]
struct ReadState {
    user_lines: HashMap<String, String>,
    agent_lines: HashMap<String, String>,
    /// call_id → function name (beta `.done` events carry no name).
    tool_names: HashMap<String, String>,
    /// Interned item ids, so audio events share one allocation per item.
    items: HashMap<String, Arc<str>>,
    audio: Vec<u8>,
    /// Whether agent audio arrives as G.711 codes rather than PCM16.
    g711_output: bool,
}

impl ReadState {
    fn item(&mut self, id: &str) -> Arc<str> {
        if let Some(item) = self.items.get(id) {
            return item.clone();
        }
        let item: Arc<str> = id.into();
        self.items.insert(id.to_owned(), item.clone());
        item
    }
}

/// The final lines of the conversation, carried into a new session on rollover.
#[derive(Default)]
struct History {
    lines: std::collections::VecDeque<String>,
    chars: usize,
}

impl History {
    fn push(&mut self, who: &str, text: &str) {
        if text.trim().is_empty() {
            return;
        }
        let line = format!("{who}: {}", text.trim());
        self.chars += line.len();
        self.lines.push_back(line);
        while self.chars > HISTORY_CHARS {
            let Some(old) = self.lines.pop_front() else { break };
            self.chars -= old.len();
        }
    }

    /// The spec of a session that continues this conversation.
    fn continued(&self, spec: &SessionSpec) -> SessionSpec {
        let mut spec = spec.clone();
        if !self.lines.is_empty() {
            let transcript: Vec<&str> = self.lines.iter().map(String::as_str).collect();
            spec.instructions = format!(
                "{}\n\nThis phone call is continuing after a technical reconnection. Do not greet the caller \
                 again; carry on naturally from where the conversation was. The conversation so far:\n{}",
                spec.instructions,
                transcript.join("\n")
            );
        }
        spec
    }
}

/// The session's I/O task: commands out, events in, and rollover to a fresh session when
/// the current one reaches its time limit or drops — the call holds the same channels.
struct Worker {
    endpoint: Endpoint,
    spec: SessionSpec,
    events: mpsc::Sender<ProviderEvent>,
    state: ReadState,
    history: History,
    /// A response is being generated (between `response.created` and `response.done`).
    response_active: bool,
    /// The caller has spoken and their turn's response has not finished yet: moving to
    /// a new session now would lose that turn.
    turn_open: bool,
    /// Text to say once the active response has been cancelled.
    pending_say: Option<String>,
    /// The last text sent to be said, until its response starts (to retry it when the
    /// server refuses it for a response of its own).
    last_say: Option<String>,
    /// When the caller's audio was last loud: their words may not have reached the
    /// provider's VAD yet, so a rollover waits for a quiet moment.
    last_loud: Option<Instant>,
    /// Caller audio frames are built here without allocating.
    frames: TextFrames,
}
/// Quiet the caller must have kept before the call moves to a new session.
const QUIET_BEFORE_ROLLOVER: Duration = Duration::from_millis(700);

type Standby = tokio::task::JoinHandle<Result<Connection, ProviderError>>;

async fn join_standby(
    standby: &mut Option<Standby>,
) -> Result<Result<Connection, ProviderError>, tokio::task::JoinError> {
    match standby {
        Some(task) => task.await,
        None => std::future::pending().await,
    }
}

impl Worker {
    async fn run(mut self, first: Connection, mut commands: mpsc::Receiver<ProviderCommand>) {
        let mut expires = first.expires;
        let (mut sink, mut stream) = first.socket.split();
        // A fresh session being opened in the background, and one ready to take over.
        let mut opening: Option<Standby> = None;
        let mut ready: Option<Connection> = None;
        // After a failed attempt to open the next session, wait before the next one.
        let mut standby_retry = Duration::from_secs(1);
        let mut next_standby_at = Instant::now();
        let reason = 'call: loop {
            let lost = tokio::select! {
                command = commands.recv() => {
                    let Some(command) = command else { break 'call ("the call ended".to_owned(), true) };
                    if matches!(command, ProviderCommand::Close) {
                        let _ = sink.send(Message::Close(None)).await;
                        break 'call ("closed by the gateway".to_owned(), true);
                    }
                    match self.handle_command(command, &mut sink).await {
                        Ok(()) => None,
                        Err(err) => Some(format!("write failed: {err}")),
                    }
                }
                message = stream.next() => match message {
                    Some(Ok(Message::Text(text))) => {
                        if self.handle_text(&text, &mut sink).await.is_err() {
                            break 'call ("the call ended".to_owned(), true);
                        }
                        None
                    }
                    Some(Ok(Message::Close(frame))) => Some(format!(
                        "the provider closed the session ({})",
                        frame.map(|f| f.reason.to_string()).unwrap_or_default()
                    )),
                    Some(Ok(_)) => None,
                    Some(Err(err)) => Some(format!("read failed: {err}")),
                    None => Some("the provider closed the connection".to_owned()),
                },
                opened = join_standby(&mut opening) => {
                    opening = None;
                    match opened {
                        Ok(Ok(connection)) => ready = Some(connection),
                        Ok(Err(err)) => tracing::warn!(error = %err, retry_in_s = standby_retry.as_secs(), "could not open the next Realtime session; will retry"),
                        Err(err) => tracing::warn!(error = %err, "opening the next Realtime session failed"),
                    }
                    if ready.is_none() {
                        next_standby_at = Instant::now() + standby_retry;
                        standby_retry = (standby_retry * 2).min(Duration::from_secs(30));
                    }
                    None
                }
            };
            if let Some(why) = lost {
                crate::metrics::provider_error("openai", "dropped");
                // The session ended under the call (time limit, network): continue in a new one.
                tracing::info!(reason = %why, "Realtime session ended; reconnecting with the conversation so far");
                let next = match ready.take() {
                    // A fresh session was already open and waiting: take it.
                    Some(next) => Some(next),
                    None => self.reconnect().await,
                };
                match next {
                    Some(connection) => {
                        expires = connection.expires;
                        (sink, stream) = connection.socket.split();
                        opening = None;
                        ready = None;
                    }
                    None => break 'call (why, false),
                }
                continue;
            }
            // Near the time limit and idle: move to a fresh session before the server ends this one.
            if let Some((at, margin)) = expires {
                let due = Instant::now() + margin >= at;
                if due && opening.is_none() && ready.is_none() && Instant::now() >= next_standby_at {
                    let (endpoint, spec) = (self.endpoint.clone(), self.history.continued(&self.spec));
                    opening = Some(tokio::spawn(async move { open(&endpoint, &spec).await }));
                }
                let quiet = self.last_loud.is_none_or(|at| at.elapsed() >= QUIET_BEFORE_ROLLOVER);
                if !self.response_active
                    && !self.turn_open
                    && quiet
                    && let Some(next) = ready.take()
                {
                    tracing::info!("rolled over to a fresh Realtime session before the time limit");
                    crate::metrics::provider_reconnect("openai");
                    let _ = sink.send(Message::Close(None)).await;
                    expires = next.expires;
                    (sink, stream) = next.socket.split();
                    // The conversation may have moved on since the session was opened.
                    let update = session_update(&self.history.continued(&self.spec));
                    if let Err(err) = sink.send(Message::text(update.to_string())).await {
                        tracing::warn!(error = %err, "could not bring the new session up to date");
                    }
                }
            }
        };
        let (reason, expected) = reason;
        let _ = self.events.send(ProviderEvent::Closed { reason, expected }).await;
    }

    /// Opens a session continuing the conversation, retrying with back-off.
    async fn reconnect(&mut self) -> Option<Connection> {
        self.response_active = false;
        self.turn_open = false;
        self.pending_say = None;
        self.last_say = None;
        let spec = self.history.continued(&self.spec);
        let mut delay = Duration::from_millis(250);
        for attempt in 1..=RECONNECT_ATTEMPTS {
            match open(&self.endpoint, &spec).await {
                Ok(connection) => {
                    crate::metrics::provider_reconnect("openai");
                    tracing::info!(attempt, "continuing the call in a new Realtime session");
                    return Some(connection);
                }
                Err(err) => {
                    crate::metrics::provider_error("openai", err.metric_kind());
                    tracing::warn!(error = %err, attempt, "reconnecting to OpenAI failed");
                    if matches!(err, ProviderError::Refused(_)) {
                        return None;
                    }
                    tokio::time::sleep(delay).await;
                    delay *= 2;
                }
            }
        }
        None
    }

    async fn handle_command(
        &mut self,
        command: ProviderCommand,
        sink: &mut futures::stream::SplitSink<Socket, Message>,
    ) -> Result<(), tokio_tungstenite::tungstenite::Error> {
        match command {
            ProviderCommand::Audio(frame) => {
                if frame.loud {
                    self.last_loud = Some(frame.arrival);
                }
                self.frames.begin(1400);
                self.frames.push_str(r#"{"type":"input_audio_buffer.append","audio":""#);
                self.frames.push_base64(frame.bytes());
                self.frames.push_str("\"}");
                sink.send(self.frames.take_message()).await?;
                crate::metrics::inbound_latency(frame.arrival.elapsed());
            }
            ProviderCommand::Say { text } if self.response_active => {
                // One response at a time: cancel the current one, speak when it is done.
                self.pending_say = Some(text);
                sink.send(Message::text(json!({"type": "response.cancel"}).to_string())).await?;
            }
            ProviderCommand::Say { text } => {
                self.response_active = true;
                self.last_say = Some(text.clone());
                for event in client_events(ProviderCommand::Say { text }) {
                    sink.send(Message::text(event.to_string())).await?;
                }
            }
            ProviderCommand::UserText { text } => {
                let item = json!({
                    "type": "conversation.item.create",
                    "item": {"type": "message", "role": "user", "content": [{"type": "input_text", "text": text}]},
                });
                sink.send(Message::text(item.to_string())).await?;
                // Let the agent react, unless it is answering already (it sees the note then).
                if !self.response_active {
                    self.response_active = true;
                    sink.send(Message::text(json!({"type": "response.create"}).to_string())).await?;
                }
            }
            ProviderCommand::Respond(respond) => {
                // Turn detection goes on (the caller is still transcribed), responses stop
                // or start again; the setting survives a reconnect through `self.spec`.
                self.spec.respond = respond;
                let update = session_update(&self.history.continued(&self.spec));
                sink.send(Message::text(update.to_string())).await?;
                if !respond && self.response_active {
                    self.pending_say = None;
                    sink.send(Message::text(json!({"type": "response.cancel"}).to_string())).await?;
                }
            }
            command @ ProviderCommand::ToolResult { .. } => {
                // Its `response.create` starts a response now, before `response.created` says so.
                self.response_active = true;
                for event in client_events(command) {
                    sink.send(Message::text(event.to_string())).await?;
                }
            }
            other => {
                for event in client_events(other) {
                    sink.send(Message::text(event.to_string())).await?;
                }
            }
        }
        Ok(())
    }

    /// Translates a server event; Err when the call has gone away.
    async fn handle_text(
        &mut self,
        text: &str,
        sink: &mut futures::stream::SplitSink<Socket, Message>,
    ) -> Result<(), ()> {
        let received = Instant::now();
        let event = match serde_json::from_str::<ServerEvent>(text) {
            Ok(event) => event,
            Err(err) => {
                tracing::warn!(error = %err, "ignoring a frame from OpenAI that is not a server event");
                return Ok(());
            }
        };
        let error_code = event.error.as_ref().and_then(|e| e.code.as_deref());
        match &*event.kind {
            "response.created" => {
                self.response_active = true;
                self.last_say = None;
            }
            "input_audio_buffer.speech_started" => self.turn_open = true,
            "response.done" => {
                self.response_active = false;
                self.turn_open = false;
                if let Some(text) = self.pending_say.take() {
                    self.response_active = true;
                    self.last_say = Some(text.clone());
                    for event in client_events(ProviderCommand::Say { text }) {
                        if sink.send(Message::text(event.to_string())).await.is_err() {
                            break;
                        }
                    }
                }
            }
            // A response started by the server (its VAD) raced our `response.create`: say the
            // text once that response is done.
            "error" if error_code == Some("conversation_already_has_active_response") => {
                if let Some(text) = self.last_say.take() {
                    self.pending_say = Some(text);
                }
                self.response_active = true;
                return Ok(());
            }
            // The session is about to end (time limit): the close that follows triggers
            // the reconnect; the call need not hear about it.
            "error" if error_code == Some("session_expired") => return Ok(()),
            _ => {}
        }
        for out in translate(&event, &mut self.state, received) {
            match &out {
                ProviderEvent::UserTranscript { text, is_final: true, .. } => self.history.push("Caller", text),
                ProviderEvent::AgentTranscript { text, is_final: true, .. } => self.history.push("Agent", text),
                _ => {}
            }
            if self.events.send(out).await.is_err() {
                return Err(());
            }
        }
        Ok(())
    }
}

/// The client events for a command (audio is built by hand on the hot path).
fn client_events(command: ProviderCommand) -> Vec<Value> {
    match command {
        ProviderCommand::Say { text } => vec![json!({
            "type": "response.create",
            "response": {"instructions": format!(
                "Say exactly the following to the caller, in the caller's language if it differs, and nothing else: {text}"
            )},
        })],
        ProviderCommand::Truncate { item_id, audio_end_ms } => vec![json!({
            "type": "conversation.item.truncate",
            "item_id": &*item_id,
            "content_index": 0,
            "audio_end_ms": audio_end_ms,
        })],
        ProviderCommand::CancelResponse => vec![json!({"type": "response.cancel"})],
        // The result goes into the conversation; a new response lets the agent use it.
        ProviderCommand::ToolResult { call_id, output, .. } => vec![
            json!({
                "type": "conversation.item.create",
                "item": {"type": "function_call_output", "call_id": call_id, "output": output},
            }),
            json!({"type": "response.create"}),
        ],
        ProviderCommand::Audio(_)
        | ProviderCommand::UserText { .. }
        | ProviderCommand::Respond(_)
        | ProviderCommand::Close => {
            unreachable!("handled by the caller")
        }
    }
}

/// A server event of either dialect, as far as the gateway reads it. Strings borrow from
/// the frame where they can (no escapes), so an audio delta is decoded from the frame's
/// own text.
#[derive(Debug, Deserialize)]
struct ServerEvent<'a> {
    #[serde(rename = "type", borrow)]
    kind: Cow<'a, str>,
    #[serde(default, borrow)]
    item_id: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    delta: Option<Cow<'a, str>>,
    #[serde(default)]
    transcript: Option<String>,
    #[serde(default)]
    call_id: Option<String>,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    arguments: Option<String>,
    #[serde(default)]
    item: Option<OutputItem>,
    #[serde(default)]
    response: Option<ResponseInfo>,
    #[serde(default)]
    error: Option<ErrorInfo>,
}

#[derive(Debug, Deserialize)]
struct OutputItem {
    #[serde(default, rename = "type")]
    kind: Option<String>,
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    call_id: Option<String>,
    #[serde(default)]
    name: Option<String>,
}

#[derive(Debug, Deserialize)]
struct ResponseInfo {
    #[serde(default)]
    status: Option<String>,
    #[serde(default)]
    output: Vec<OutputItem>,
}

#[derive(Debug, Deserialize)]
struct ErrorInfo {
    #[serde(default, rename = "type")]
    kind: Option<String>,
    #[serde(default)]
    code: Option<String>,
    #[serde(default)]
    message: Option<String>,
}

/// Translates one server event (either dialect) into provider events.
fn translate(event: &ServerEvent<'_>, state: &mut ReadState, received: Instant) -> Vec<ProviderEvent> {
    let item_id = event.item_id.as_deref().unwrap_or_default();
    match &*event.kind {
        "response.output_audio.delta" | "response.audio.delta" => {
            let Some(delta) = event.delta.as_deref() else { return vec![] };
            state.audio.clear();
            if STANDARD.decode_vec(delta, &mut state.audio).is_err() {
                tracing::warn!("ignoring an audio delta that is not base64");
                return vec![];
            }
            let audio = if state.g711_output {
                AgentAudio::G711(state.audio.clone())
            } else {
                AgentAudio::Pcm16(state.audio.chunks_exact(2).map(|b| i16::from_le_bytes([b[0], b[1]])).collect())
            };
            vec![ProviderEvent::Audio { item_id: state.item(item_id), audio, received }]
        }
        "response.output_audio.done" | "response.audio.done" => {
            vec![ProviderEvent::AudioDone { item_id: state.item(item_id) }]
        }
        "input_audio_buffer.speech_started" => vec![ProviderEvent::SpeechStarted],
        "input_audio_buffer.speech_stopped" => vec![ProviderEvent::SpeechStopped],
        "conversation.item.input_audio_transcription.delta" => {
            let line = state.user_lines.entry(item_id.to_owned()).or_default();
            line.push_str(event.delta.as_deref().unwrap_or_default());
            let text = line.clone();
            vec![ProviderEvent::UserTranscript { item_id: state.item(item_id), text, is_final: false }]
        }
        "conversation.item.input_audio_transcription.completed" => {
            state.user_lines.remove(item_id);
            let text = event.transcript.as_deref().unwrap_or_default().trim().to_owned();
            // The caller's line is complete: forget its interned id.
            let item = state.items.remove(item_id).unwrap_or_else(|| item_id.into());
            vec![ProviderEvent::UserTranscript { item_id: item, text, is_final: true }]
        }
        "conversation.item.input_audio_transcription.failed" => {
            state.user_lines.remove(item_id);
            state.items.remove(item_id);
            let message = event.error.as_ref().and_then(|e| e.message.clone());
            vec![ProviderEvent::Error {
                code: "transcription_failed".into(),
                message: message.unwrap_or_else(|| "input transcription failed".to_owned()),
            }]
        }
        "response.output_audio_transcript.delta" | "response.audio_transcript.delta" => {
            let line = state.agent_lines.entry(item_id.to_owned()).or_default();
            line.push_str(event.delta.as_deref().unwrap_or_default());
            let text = line.clone();
            vec![ProviderEvent::AgentTranscript { item_id: state.item(item_id), text, is_final: false }]
        }
        "response.output_audio_transcript.done" | "response.audio_transcript.done" => {
            state.agent_lines.remove(item_id);
            let text = event.transcript.clone().unwrap_or_default();
            vec![ProviderEvent::AgentTranscript { item_id: state.item(item_id), text, is_final: true }]
        }
        "response.output_item.added" => {
            if let Some(item) = &event.item
                && item.kind.as_deref() == Some("function_call")
                && let (Some(call_id), Some(name)) = (&item.call_id, &item.name)
            {
                state.tool_names.insert(call_id.clone(), name.clone());
            }
            vec![]
        }
        "response.function_call_arguments.done" => {
            let call_id = event.call_id.clone().unwrap_or_default();
            let name = event.name.clone().or_else(|| state.tool_names.get(&call_id).cloned()).unwrap_or_default();
            state.tool_names.remove(&call_id);
            let arguments = event.arguments.clone().unwrap_or_else(|| "{}".to_owned());
            vec![ProviderEvent::ToolCall { call_id, name, arguments }]
        }
        "response.done" => {
            let response = event.response.as_ref();
            let status = response.and_then(|r| r.status.clone()).unwrap_or_else(|| "completed".to_owned());
            // Forget the items of finished responses so the interning map stays small.
            for item in response.map(|r| r.output.as_slice()).unwrap_or_default() {
                if let Some(id) = &item.id {
                    state.items.remove(id);
                    state.agent_lines.remove(id);
                }
            }
            vec![ProviderEvent::ResponseDone { status }]
        }
        "error" => {
            let error = event.error.as_ref();
            let code =
                error.and_then(|e| e.code.clone().or_else(|| e.kind.clone())).unwrap_or_else(|| "error".to_owned());
            let message = error.and_then(|e| e.message.clone()).unwrap_or_default();
            tracing::warn!(code = %code, message = %message, "OpenAI reported an error");
            crate::metrics::provider_error("openai", "server_error");
            vec![ProviderEvent::Error { code, message }]
        }
        _ => vec![],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(dialect: RealtimeDialect) -> SessionSpec {
        SessionSpec {
            model: "gpt-realtime".into(),
            dialect,
            instructions: "Be brief.".into(),
            voice: "marin".into(),
            speed: 1.0,
            vad_threshold: 0.6,
            allow_interruption: false,
            transcription: true,
            noise_reduction: true,
            respond: true,
            input: AudioFormat::Pcm16(SampleRate::Hz24000),
            output: AudioFormat::Pcm16(SampleRate::Hz24000),
            tools: vec![super::super::ToolSpec {
                name: "search_knowledge_base".into(),
                description: "Search".into(),
                parameters: json!({"type": "object", "properties": {"query": {"type": "string"}}, "required": ["query"]}),
            }],
        }
    }

    /// Translates a JSON event as the worker does.
    fn translate_json(event: Value, state: &mut ReadState) -> Vec<ProviderEvent> {
        let text = event.to_string();
        let event: ServerEvent = serde_json::from_str(&text).unwrap();
        translate(&event, state, Instant::now())
    }

    #[test]
    fn ga_session_update_nests_audio_and_names_the_session_type() {
        let update = session_update(&spec(RealtimeDialect::Ga));
        let s = &update["session"];
        assert_eq!(s["type"], "realtime");
        assert_eq!(s["audio"]["input"]["format"], json!({"type": "audio/pcm", "rate": 24000}));
        assert_eq!(s["audio"]["input"]["turn_detection"]["threshold"], 0.6);
        assert_eq!(s["audio"]["input"]["turn_detection"]["interrupt_response"], false);
        assert_eq!(s["audio"]["output"]["voice"], "marin");
        assert_eq!(s["tools"][0]["name"], "search_knowledge_base");
        assert!(s.get("modalities").is_none() && s.get("voice").is_none());
    }

    #[test]
    fn beta_session_update_uses_flat_string_formats() {
        let update = session_update(&spec(RealtimeDialect::Beta));
        let s = &update["session"];
        assert_eq!(
            (s["input_audio_format"].as_str(), s["output_audio_format"].as_str()),
            (Some("pcm16"), Some("pcm16"))
        );
        assert_eq!(s["input_audio_transcription"]["model"], "whisper-1");
        assert!(s.get("type").is_none() && s.get("audio").is_none());
    }

    #[test]
    fn audio_deltas_of_both_dialects_decode_to_samples() {
        let mut state = ReadState::default();
        for kind in ["response.output_audio.delta", "response.audio.delta"] {
            let event = json!({"type": kind, "item_id": "item_1", "delta": "8//2//v/9//q/+//"});
            let out = translate_json(event, &mut state);
            let [ProviderEvent::Audio { item_id, audio: AgentAudio::Pcm16(pcm), .. }] = out.as_slice() else {
                panic!("{out:?}")
            };
            assert_eq!(&**item_id, "item_1");
            assert_eq!(pcm.len(), 6);
        }
    }

    #[test]
    fn g711_sessions_ask_for_mulaw_in_both_dialects_and_pass_its_codes_through() {
        let mut g711 = spec(RealtimeDialect::Ga);
        (g711.input, g711.output) = (AudioFormat::Mulaw, AudioFormat::Mulaw);
        let update = session_update(&g711);
        assert_eq!(update["session"]["audio"]["input"]["format"], json!({"type": "audio/pcmu"}));
        assert_eq!(update["session"]["audio"]["output"]["format"], json!({"type": "audio/pcmu"}));
        g711.dialect = RealtimeDialect::Beta;
        let update = session_update(&g711);
        assert_eq!(update["session"]["input_audio_format"], "g711_ulaw");
        let mut state = ReadState { g711_output: true, ..ReadState::default() };
        let out =
            translate_json(json!({"type": "response.output_audio.delta", "item_id": "i", "delta": "f/9+"}), &mut state);
        let [ProviderEvent::Audio { audio: AgentAudio::G711(codes), .. }] = out.as_slice() else { panic!("{out:?}") };
        assert_eq!(codes, &[0x7f, 0xff, 0x7e]);
    }

    #[test]
    fn beta_function_calls_get_their_name_from_the_output_item() {
        let mut state = ReadState::default();
        translate_json(
            json!({"type": "response.output_item.added", "item": {"type": "function_call", "call_id": "call_1", "name": "search_knowledge_base"}}),
            &mut state,
        );
        let out = translate_json(
            json!({"type": "response.function_call_arguments.done", "call_id": "call_1", "arguments": "{\"query\":\"hours\"}"}),
            &mut state,
        );
        let [ProviderEvent::ToolCall { name, arguments, .. }] = out.as_slice() else { panic!() };
        assert_eq!((name.as_str(), arguments.as_str()), ("search_knowledge_base", "{\"query\":\"hours\"}"));
    }

    #[test]
    fn transcript_deltas_accumulate_into_whole_lines() {
        let mut state = ReadState::default();
        for delta in ["Sure", "!", " I'd"] {
            translate_json(
                json!({"type": "response.output_audio_transcript.delta", "item_id": "i", "delta": delta}),
                &mut state,
            );
        }
        let out = translate_json(
            json!({"type": "response.output_audio_transcript.delta", "item_id": "i", "delta": " be"}),
            &mut state,
        );
        let [ProviderEvent::AgentTranscript { text, is_final: false, .. }] = out.as_slice() else { panic!() };
        assert_eq!(text, "Sure! I'd be");
    }
}
