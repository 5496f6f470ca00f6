//! Gemini Live (`BidiGenerateContent`) over WebSocket (shared/protocols/realtime-protocols.md §2).
//! Caller audio goes in as PCM16 at 16 kHz, agent audio comes out as PCM16 at 24 kHz.
//!
//! A pure core and an I/O shell:
//! - [`setup_message`]: the `setup` for a call (and for resuming it on a new connection);
//! - `Translator`: server frames → [`ProviderEvent`]s, with one item id per model turn and
//!   transcripts accumulated into whole lines;
//! - `Resumption`: when a session moves to a new connection (`goAway`, a dropped socket)
//!   and when it gives up;
//! - `Shell::run`: the task that owns the socket, swaps connections under the call without
//!   it noticing, and holds caller audio meanwhile.
//!
//! Gemini has neither truncate nor cancel. With `START_OF_ACTIVITY_INTERRUPTS` the server
//! hears the caller itself, stops generating and says `interrupted`; the gateway flushes its
//! playout and cuts its own transcript of the turn to what was played (the call session
//! does both on [`ProviderEvent::Interrupted`]). The model's context keeps the whole turn:
//! there is no message to tell it how much the caller heard.

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use futures::{SinkExt, StreamExt};
use media::SampleRate;
use serde_json::{Map, Value, json};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::{self, Message};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};
use tracing::Instrument;

use super::{
    AgentAudio, AudioFormat, Capabilities, ProviderCommand, ProviderError, ProviderEvent, ProviderSession, SessionSpec,
};
use crate::store::AiModel;
use crate::ws_frames::TextFrames;

type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;
type Attempt = Pin<Box<dyn Future<Output = Result<Socket, ProviderError>> + Send>>;

const INPUT_RATE: SampleRate = SampleRate::Hz16000;
const OUTPUT_RATE: SampleRate = SampleRate::Hz24000;

/// Gemini Live takes PCM16 at 16 kHz and gives PCM16 at 24 kHz. It has no speech-start
/// event: a barge-in is confirmed by `interrupted` or the caller's first transcribed
/// words, which come later than OpenAI's `speech_started`; and it cannot truncate.
pub const CAPABILITIES: Capabilities = Capabilities {
    input: &[AudioFormat::Pcm16(INPUT_RATE)],
    output: &[AudioFormat::Pcm16(OUTPUT_RATE)],
    barge_in_confirm: Duration::from_millis(1500),
    truncates: false,
    transcribes_only: false,
};
/// The Live API version when the model does not name one (`ai_models.settings.liveApiVersion`).
const DEFAULT_API_VERSION: &str = "v1beta";
/// How long connecting, `setup` and `setupComplete` may take.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Largest frame accepted from the server (audio chunks are far smaller).
const MAX_MESSAGE_BYTES: usize = 16 << 20;
/// Caller audio held while the session moves to a new connection: 2 s at 16 kHz. Beyond
/// it the oldest goes: after a long gap the caller's latest words matter most.
const BACKLOG_AUDIO_BYTES: usize = 2 * 16_000 * 2;
/// Other commands held meanwhile (spoken texts, tool results); more means something is stuck.
const BACKLOG_COMMANDS: usize = 32;
/// Connections tried per rollover before the call is given up.
const RESUME_ATTEMPTS: u32 = 3;
/// Wait before the second attempt; doubles for the third.
const RESUME_BACKOFF: Duration = Duration::from_millis(250);
/// After `goAway` the session moves when the agent's turn is over, but at the latest this
/// long (or half the time left, if less) before the server closes the connection.
const GO_AWAY_MARGIN: Duration = Duration::from_secs(2);
/// Quiet the caller must have kept before the session moves: words still on their way to
/// the server's VAD would otherwise be cut in two across connections.
const QUIET_BEFORE_ROLLOVER: Duration = Duration::from_millis(700);
/// What `Say` asks of the model (Gemini has no "speak this" message; a user turn asks).
const SAY_PROMPT: &str =
    "Say exactly the following to the caller, in the caller's language if it differs, and nothing else: ";

/// Connects, sets the session up and starts its I/O task. The key goes in the
/// `x-goog-api-key` header, never in the URL, so it stays out of URLs and logs.
pub async fn connect(
    base: &url::Url,
    key: &str,
    model: &AiModel,
    spec: &SessionSpec,
) -> Result<ProviderSession, ProviderError> {
    let endpoint = Endpoint::new(base, key, model)?;
    let ws = open(&endpoint, &setup_message(spec, None)).await?;
    tracing::debug!(model = %spec.model, url = %endpoint.url, "Gemini Live session set up");
    let (commands_tx, commands_rx) = mpsc::channel(256);
    let (events_tx, events_rx) = mpsc::channel(256);
    let shell = Shell {
        endpoint,
        spec: spec.clone(),
        events: events_tx,
        translator: Translator::default(),
        resumption: Resumption::default(),
        backlog: Backlog::default(),
        last_loud: None,
        frames: TextFrames::default(),
    };
    tokio::spawn(shell.run(ws, commands_rx).in_current_span());
    Ok(ProviderSession { commands: commands_tx, events: events_rx })
}

// --- setup ---------------------------------------------------------------------------------

/// The `setup` message for a call; `handle` resumes an earlier session.
pub fn setup_message(spec: &SessionSpec, handle: Option<&str>) -> Value {
    let mut generation = json!({"responseModalities": ["AUDIO"]});
    if !spec.voice.is_empty() {
        generation["speechConfig"] = json!({"voiceConfig": {"prebuiltVoiceConfig": {"voiceName": spec.voice}}});
    }
    let mut detection = json!({"disabled": false});
    if let Some((start, end)) = speech_sensitivity(spec.vad_threshold) {
        detection["startOfSpeechSensitivity"] = json!(start);
        detection["endOfSpeechSensitivity"] = json!(end);
    }
    let activity = if spec.allow_interruption { "START_OF_ACTIVITY_INTERRUPTS" } else { "NO_INTERRUPTION" };
    let model = if spec.model.starts_with("models/") { spec.model.clone() } else { format!("models/{}", spec.model) };
    let mut setup = json!({
        "model": model,
        "generationConfig": generation,
        "realtimeInputConfig": {"automaticActivityDetection": detection, "activityHandling": activity},
        // Always asked for, so a call can outlive its connection (goAway, a dropped socket).
        "sessionResumption": match handle {
            Some(handle) => json!({"handle": handle}),
            None => json!({}),
        },
        // Without compression an audio session is capped at 15 minutes.
        "contextWindowCompression": {"slidingWindow": {}},
    });
    if !spec.instructions.trim().is_empty() {
        setup["systemInstruction"] = json!({"parts": [{"text": spec.instructions}]});
    }
    if !spec.tools.is_empty() {
        let declarations: Vec<Value> = spec
            .tools
            .iter()
            .map(|tool| {
                let mut declaration = json!({"name": tool.name, "description": tool.description});
                if let Some(parameters) = tool_parameters(&tool.parameters) {
                    declaration["parameters"] = parameters;
                }
                declaration
            })
            .collect();
        setup["tools"] = json!([{"functionDeclarations": declarations}]);
    }
    if spec.transcription {
        setup["inputAudioTranscription"] = json!({});
        setup["outputAudioTranscription"] = json!({});
    }
    json!({"setup": setup})
}

/// `vad_threshold` (0 = sensitive … 1 = hard to trigger) as Gemini's start- and
/// end-of-speech sensitivities, which have only two levels: below 0.4 asks for HIGH (speech
/// is detected sooner, turns end sooner), above 0.6 for LOW; in between the service default
/// stays (HIGH on Gemini Live, LOW on Vertex AI).
fn speech_sensitivity(threshold: f64) -> Option<(&'static str, &'static str)> {
    if threshold < 0.4 {
        Some(("START_SENSITIVITY_HIGH", "END_SENSITIVITY_HIGH"))
    } else if threshold > 0.6 {
        Some(("START_SENSITIVITY_LOW", "END_SENSITIVITY_LOW"))
    } else {
        None
    }
}

/// A tool's JSON Schema as Gemini's `Schema`; `None` when the tool takes no arguments
/// (Gemini refuses an OBJECT without properties).
fn tool_parameters(schema: &Value) -> Option<Value> {
    let converted = gemini_schema(schema);
    let object = converted.as_object()?;
    let no_properties = object.get("properties").and_then(Value::as_object).is_none_or(Map::is_empty);
    if object.get("type").and_then(Value::as_str) == Some("OBJECT") && no_properties {
        return None;
    }
    Some(converted)
}

/// JSON Schema → Gemini `Schema` (an OpenAPI 3.0 subset): upper-case types, `["x","null"]`
/// as `nullable`, and keywords Gemini does not know (`additionalProperties`, `$schema`, …)
/// left out, since the service refuses unknown fields.
fn gemini_schema(schema: &Value) -> Value {
    const KEPT: &[&str] = &[
        "format",
        "title",
        "description",
        "nullable",
        "enum",
        "maxItems",
        "minItems",
        "required",
        "minProperties",
        "maxProperties",
        "minLength",
        "maxLength",
        "pattern",
        "example",
        "default",
        "minimum",
        "maximum",
        "propertyOrdering",
    ];
    let Some(map) = schema.as_object() else { return schema.clone() };
    let mut out = Map::new();
    for (key, value) in map {
        match key.as_str() {
            "type" => match value {
                Value::String(t) => {
                    out.insert("type".into(), json!(t.to_ascii_uppercase()));
                }
                Value::Array(types) => {
                    let named: Vec<&str> = types.iter().filter_map(Value::as_str).filter(|t| *t != "null").collect();
                    if let [only] = named.as_slice() {
                        out.insert("type".into(), json!(only.to_ascii_uppercase()));
                    }
                    if named.len() < types.len() {
                        out.insert("nullable".into(), json!(true));
                    }
                }
                _ => {}
            },
            "properties" => {
                if let Some(properties) = value.as_object() {
                    let converted: Map<String, Value> =
                        properties.iter().map(|(name, property)| (name.clone(), gemini_schema(property))).collect();
                    out.insert("properties".into(), Value::Object(converted));
                }
            }
            "items" => {
                out.insert("items".into(), gemini_schema(value));
            }
            "anyOf" => {
                if let Some(options) = value.as_array() {
                    out.insert("anyOf".into(), Value::Array(options.iter().map(gemini_schema).collect()));
                }
            }
            kept if KEPT.contains(&kept) => {
                out.insert(key.clone(), value.clone());
            }
            _ => {}
        }
    }
    Value::Object(out)
}

// --- client messages -----------------------------------------------------------------------

/// `realtimeInput.audio` for one frame, built by hand in a reused buffer: it is the hot path.
fn audio_message(frames: &mut TextFrames, pcm: &[u8]) -> Message {
    frames.begin(1000);
    frames.push_str(r#"{"realtimeInput":{"audio":{"data":""#);
    frames.push_base64(pcm);
    frames.push_str(r#"","mimeType":"audio/pcm;rate=16000"}}}"#);
    frames.take_message()
}

/// A user turn asking the model to say `text`.
fn say_message(text: &str) -> Value {
    user_turn(&format!("{SAY_PROMPT}{text}"))
}

/// A user turn of text (what a key press becomes).
fn user_turn(text: &str) -> Value {
    json!({"clientContent": {
        "turns": [{"role": "user", "parts": [{"text": text}]}],
        "turnComplete": true,
    }})
}

/// The answer to a tool call: `output` holds the result as JSON when it is JSON, else as text.
fn tool_response(call_id: &str, name: &str, output: &str) -> Value {
    let output = serde_json::from_str::<Value>(output).unwrap_or_else(|_| Value::String(output.to_owned()));
    json!({"toolResponse": {"functionResponses": [{"id": call_id, "name": name, "response": {"output": output}}]}})
}

// --- connecting ----------------------------------------------------------------------------

/// Where and how to reach Gemini Live. Holds the API key, so deliberately not `Debug`.
#[derive(Clone)]
struct Endpoint {
    url: String,
    key: HeaderValue,
}

impl Endpoint {
    fn new(base: &url::Url, key: &str, model: &AiModel) -> Result<Self, ProviderError> {
        let version = model.settings.live_api_version.as_deref().unwrap_or(DEFAULT_API_VERSION);
        if version.is_empty() || !version.bytes().all(|b| b.is_ascii_alphanumeric()) {
            return Err(ProviderError::Refused(format!("{version:?} is not a Live API version")));
        }
        let mut base = base.clone();
        base.set_query(None);
        base.set_fragment(None);
        let scheme = match base.scheme() {
            "http" => "ws",
            "https" => "wss",
            other => other,
        };
        let rest = base.as_str()[base.scheme().len()..].trim_end_matches('/');
        let url =
            format!("{scheme}{rest}/ws/google.ai.generativelanguage.{version}.GenerativeService.BidiGenerateContent");
        let mut key = HeaderValue::from_str(key)
            .map_err(|_| ProviderError::Refused("the Gemini API key is not a valid header value".into()))?;
        key.set_sensitive(true);
        Ok(Self { url, key })
    }
}

/// Opens a connection, sends `setup` and waits for `setupComplete` (nothing else may be
/// sent before it).
async fn open(endpoint: &Endpoint, setup: &Value) -> Result<Socket, ProviderError> {
    let handshake = async {
        let mut request =
            endpoint.url.as_str().into_client_request().map_err(|e| ProviderError::Connect(e.to_string()))?;
        request.headers_mut().insert("x-goog-api-key", endpoint.key.clone());
        let config = WebSocketConfig::default()
            .read_buffer_size(crate::ws_frames::READ_BUFFER_BYTES)
            .max_message_size(Some(MAX_MESSAGE_BYTES))
            .max_frame_size(Some(MAX_MESSAGE_BYTES));
        let (mut ws, _) =
            tokio_tungstenite::connect_async_with_config(request, Some(config), true).await.map_err(http_error)?;
        ws.send(Message::text(setup.to_string())).await.map_err(|e| ProviderError::Connect(e.to_string()))?;
        while let Some(message) = ws.next().await {
            let message = message.map_err(|e| ProviderError::Connect(e.to_string()))?;
            match incoming(message) {
                Incoming::Json(frame) if frame.get("setupComplete").is_some() => return Ok(ws),
                Incoming::Json(_) | Incoming::Skip => {}
                Incoming::Close(code, reason) => return Err(close_error(code, &reason)),
            }
        }
        Err(ProviderError::Connect("the connection closed before setupComplete".into()))
    };
    tokio::time::timeout(HANDSHAKE_TIMEOUT, handshake)
        .await
        .map_err(|_| ProviderError::Connect("timed out opening the Gemini Live session".into()))?
}

/// A failed upgrade: the key or the request is refused for good, anything else may pass.
fn http_error(error: tungstenite::Error) -> ProviderError {
    match error {
        tungstenite::Error::Http(response) if matches!(response.status().as_u16(), 400 | 401 | 403 | 404) => {
            ProviderError::Refused(format!("Gemini refused the connection (HTTP {})", response.status().as_u16()))
        }
        other => ProviderError::Connect(other.to_string()),
    }
}

/// Gemini reports errors only as close frames: 1007 (invalid argument, bad key) and 1008
/// (not found, policy) will not pass on a retry; 1011 (internal, unavailable) may.
fn close_error(code: Option<u16>, reason: &str) -> ProviderError {
    let text = format!("Gemini closed the connection ({}: {reason})", code.map_or("no code".into(), |c| c.to_string()));
    match code {
        Some(1007 | 1008) => ProviderError::Refused(text),
        _ => ProviderError::Connect(text),
    }
}

/// A server frame: JSON in a text or (as Gemini sends them) binary frame, or a close.
enum Incoming {
    Json(Value),
    Close(Option<u16>, String),
    Skip,
}

fn incoming(message: Message) -> Incoming {
    let parsed = match message {
        Message::Text(text) => serde_json::from_str(&text),
        Message::Binary(bytes) => serde_json::from_slice(&bytes),
        Message::Close(frame) => {
            let (code, reason) =
                frame.map_or((None, String::new()), |f| (Some(u16::from(f.code)), f.reason.to_string()));
            return Incoming::Close(code, reason);
        }
        _ => return Incoming::Skip,
    };
    match parsed {
        Ok(value) => Incoming::Json(value),
        Err(_) => {
            tracing::warn!("ignoring a frame from Gemini that is not JSON");
            Incoming::Skip
        }
    }
}

// --- server frames → events (pure) ---------------------------------------------------------

/// What one server frame means beyond its events.
#[derive(Debug, Default)]
struct Translated {
    events: Vec<ProviderEvent>,
    /// `goAway`: the server closes this connection after this long.
    go_away: Option<Duration>,
    /// `sessionResumptionUpdate`: the new handle, if the session is resumable at this point.
    resumption: Option<Option<String>>,
    usage: Option<Usage>,
}

/// Token counts of a turn (`usageMetadata`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
struct Usage {
    prompt: u64,
    response: u64,
    total: u64,
}

impl Usage {
    fn parse(usage: &Value) -> Self {
        // int32 counts arrive as numbers; accept int64-style strings too.
        let count = |key: &str| {
            let v = &usage[key];
            v.as_u64().or_else(|| v.as_str().and_then(|s| s.parse().ok()))
        };
        Self {
            prompt: count("promptTokenCount").unwrap_or(0),
            // The Live API says `responseTokenCount`; Vertex says `candidatesTokenCount`.
            response: count("responseTokenCount").or_else(|| count("candidatesTokenCount")).unwrap_or(0),
            total: count("totalTokenCount").unwrap_or(0),
        }
    }

    fn record(self) {
        tracing::debug!(
            prompt_tokens = self.prompt,
            response_tokens = self.response,
            total_tokens = self.total,
            "Gemini turn usage"
        );
        metrics::counter!("gateway_provider_tokens_total", "provider" => "google", "kind" => "prompt")
            .increment(self.prompt);
        metrics::counter!("gateway_provider_tokens_total", "provider" => "google", "kind" => "response")
            .increment(self.response);
    }
}

/// The model's turn in progress: one agent item from its first output to `turnComplete`.
#[derive(Debug)]
struct AgentTurn {
    item: Arc<str>,
    text: String,
    /// Set when the turn was closed out early (`interrupted`, or cancelled by the
    /// gateway): its item is finished and later output of the turn is dropped.
    ended: Option<&'static str>,
}

/// The caller's line being transcribed.
#[derive(Debug)]
struct UserLine {
    item: Arc<str>,
    text: String,
}

/// Server frames → provider events. Gemini has no item ids: each model turn becomes one
/// agent item, and the caller's transcription between two model turns one user item.
/// Counters live as long as the call, so ids never repeat across connections.
#[derive(Debug, Default)]
struct Translator {
    turns: u64,
    users: u64,
    turn: Option<AgentTurn>,
    user: Option<UserLine>,
    /// Tool calls of this connection waiting for their result.
    calls: Vec<String>,
    scratch: Vec<u8>,
}

impl Translator {
    fn handle(&mut self, frame: &Value, received: Instant) -> Translated {
        let mut out = Translated::default();
        if let Some(content) = frame.get("serverContent") {
            self.server_content(content, received, &mut out.events);
        }
        if let Some(calls) = frame["toolCall"]["functionCalls"].as_array() {
            for call in calls {
                let (Some(id), Some(name)) = (call["id"].as_str(), call["name"].as_str()) else {
                    tracing::warn!("ignoring a Gemini tool call without id or name");
                    continue;
                };
                self.agent_turn(&mut out.events);
                let arguments = match call.get("args") {
                    Some(args) if args.is_object() => args.to_string(),
                    _ => "{}".to_owned(),
                };
                self.calls.push(id.to_owned());
                out.events.push(ProviderEvent::ToolCall { call_id: id.to_owned(), name: name.to_owned(), arguments });
            }
        }
        if let Some(ids) = frame["toolCallCancellation"]["ids"].as_array() {
            let call_ids: Vec<String> = ids.iter().filter_map(Value::as_str).map(str::to_owned).collect();
            self.calls.retain(|id| !call_ids.contains(id));
            out.events.push(ProviderEvent::ToolCallsCancelled { call_ids });
        }
        if let Some(usage) = frame.get("usageMetadata") {
            out.usage = Some(Usage::parse(usage));
        }
        if let Some(go_away) = frame.get("goAway") {
            out.go_away = Some(go_away["timeLeft"].as_str().and_then(proto_duration).unwrap_or_default());
        }
        if let Some(update) = frame.get("sessionResumptionUpdate") {
            // proto3 JSON leaves `resumable: false` out, so only an explicit true counts.
            let resumable = update["resumable"].as_bool() == Some(true);
            let handle = update["newHandle"].as_str().filter(|h| !h.is_empty() && resumable).map(str::to_owned);
            out.resumption = Some(handle);
        }
        out
    }

    fn server_content(&mut self, content: &Value, received: Instant, out: &mut Vec<ProviderEvent>) {
        if let Some(transcription) = content.get("inputTranscription") {
            self.user_text(transcription["text"].as_str().unwrap_or_default(), out);
            if transcription["finished"] == true {
                self.finish_user(out);
            }
        }
        if let Some(parts) = content["modelTurn"]["parts"].as_array() {
            for part in parts {
                let Some(blob) = part.get("inlineData") else { continue };
                let Some(rate) = blob["mimeType"].as_str().map_or(Some(OUTPUT_RATE.hz()), pcm_rate) else { continue };
                let Some(data) = blob["data"].as_str() else { continue };
                self.scratch.clear();
                if STANDARD.decode_vec(data, &mut self.scratch).is_err() {
                    tracing::warn!("ignoring Gemini audio that is not base64");
                    continue;
                }
                let mut pcm: Vec<i16> =
                    self.scratch.chunks_exact(2).map(|b| i16::from_le_bytes([b[0], b[1]])).collect();
                if rate != OUTPUT_RATE.hz() {
                    pcm = resample(&pcm, rate, OUTPUT_RATE.hz());
                }
                let turn = self.agent_turn(out);
                if turn.ended.is_none() {
                    out.push(ProviderEvent::Audio {
                        item_id: turn.item.clone(),
                        audio: AgentAudio::Pcm16(pcm),
                        received,
                    });
                }
            }
        }
        if let Some(text) = content["outputTranscription"]["text"].as_str()
            && !text.is_empty()
        {
            let turn = self.agent_turn(out);
            if turn.ended.is_none() {
                turn.text.push_str(text);
                let text = turn.text.trim_start().to_owned();
                out.push(ProviderEvent::AgentTranscript { item_id: turn.item.clone(), text, is_final: false });
            }
        }
        if content["interrupted"] == true {
            out.push(ProviderEvent::Interrupted);
            if let Some(turn) = &mut self.turn {
                end_item(turn, "interrupted", out);
            }
        }
        if content["turnComplete"] == true
            && let Some(mut turn) = self.turn.take()
        {
            end_item(&mut turn, "completed", out);
            out.push(ProviderEvent::ResponseDone { status: turn.ended.unwrap_or("completed").to_owned() });
        }
    }

    /// Caller transcription: the line starts with its first words (the server heard the
    /// caller: `SpeechStarted`, which also confirms a local barge-in hint).
    fn user_text(&mut self, text: &str, out: &mut Vec<ProviderEvent>) {
        if text.is_empty() {
            return;
        }
        let user = match &mut self.user {
            Some(user) => user,
            None => {
                self.users += 1;
                out.push(ProviderEvent::SpeechStarted);
                self.user.insert(UserLine { item: format!("user-{}", self.users).into(), text: String::new() })
            }
        };
        user.text.push_str(text);
        out.push(ProviderEvent::UserTranscript {
            item_id: user.item.clone(),
            text: user.text.trim_start().to_owned(),
            is_final: false,
        });
    }

    fn finish_user(&mut self, out: &mut Vec<ProviderEvent>) {
        if let Some(user) = self.user.take() {
            out.push(ProviderEvent::UserTranscript {
                item_id: user.item,
                text: user.text.trim().to_owned(),
                is_final: true,
            });
            out.push(ProviderEvent::SpeechStopped);
        }
    }

    /// The model turn output belongs to; its first output starts it and ends the caller's line.
    fn agent_turn(&mut self, out: &mut Vec<ProviderEvent>) -> &mut AgentTurn {
        if self.turn.is_none() {
            self.finish_user(out);
            self.turns += 1;
        }
        let turns = self.turns;
        self.turn.get_or_insert_with(|| AgentTurn {
            item: format!("turn-{turns}").into(),
            text: String::new(),
            ended: None,
        })
    }

    /// Whether the result of `call_id` is awaited (and from now on no longer).
    fn take_call(&mut self, call_id: &str) -> bool {
        let position = self.calls.iter().position(|id| id == call_id);
        position.map(|i| self.calls.remove(i)).is_some()
    }

    /// The gateway stops the model's turn (`CancelResponse`, or a `Say` that replaces it).
    /// Gemini has no cancel message: the rest of the turn is dropped here, and the server
    /// ends it itself when it hears the caller or gets new client content. Its
    /// `ResponseDone` says `cancelled`.
    fn cancel_turn(&mut self) -> Vec<ProviderEvent> {
        let mut out = Vec::new();
        if let Some(turn) = &mut self.turn {
            end_item(turn, "cancelled", &mut out);
        }
        out
    }

    /// Something is in flight that a new connection would lose: a model turn, a tool
    /// call, or a caller line the model has not answered yet.
    fn is_busy(&self) -> bool {
        self.turn.is_some() || self.user.is_some() || !self.calls.is_empty()
    }

    /// The connection ended: close out what was in flight on it.
    fn connection_ended(&mut self) -> Vec<ProviderEvent> {
        let mut out = Vec::new();
        if !self.calls.is_empty() {
            out.push(ProviderEvent::ToolCallsCancelled { call_ids: std::mem::take(&mut self.calls) });
        }
        if let Some(mut turn) = self.turn.take() {
            end_item(&mut turn, "incomplete", &mut out);
            out.push(ProviderEvent::ResponseDone { status: turn.ended.unwrap_or("incomplete").to_owned() });
        }
        self.finish_user(&mut out);
        out
    }
}

/// Finishes a turn's agent item once: its final transcript (when there is text) and the
/// end of its audio.
fn end_item(turn: &mut AgentTurn, status: &'static str, out: &mut Vec<ProviderEvent>) {
    if turn.ended.is_some() {
        return;
    }
    turn.ended = Some(status);
    let text = turn.text.trim();
    if !text.is_empty() {
        out.push(ProviderEvent::AgentTranscript { item_id: turn.item.clone(), text: text.to_owned(), is_final: true });
    }
    out.push(ProviderEvent::AudioDone { item_id: turn.item.clone() });
}

/// The rate of a `audio/pcm;rate=N` MIME type (24 kHz when unnamed); `None` for other data.
fn pcm_rate(mime: &str) -> Option<u32> {
    let mut parts = mime.split(';').map(str::trim);
    if !parts.next()?.eq_ignore_ascii_case("audio/pcm") {
        return None;
    }
    let rate = parts.find_map(|p| p.strip_prefix("rate=")).and_then(|r| r.trim().parse().ok());
    // Rates outside 8–48 kHz are not audio we can play (and would make resampling huge).
    Some(rate.filter(|r| (8_000..=48_000).contains(r)).unwrap_or(OUTPUT_RATE.hz()))
}

/// Linear resampling, for agent audio at a rate other than the 24 kHz the call expects
/// (never seen so far; speech quality is enough for a fallback).
fn resample(pcm: &[i16], from: u32, to: u32) -> Vec<i16> {
    if pcm.is_empty() || from == to || from == 0 {
        return pcm.to_vec();
    }
    let last = pcm.len() - 1;
    let len = (pcm.len() as u64 * u64::from(to) / u64::from(from)) as usize;
    let step = f64::from(from) / f64::from(to);
    (0..len)
        .map(|i| {
            let position = i as f64 * step;
            let j = (position as usize).min(last);
            let (a, b) = (f64::from(pcm[j]), f64::from(pcm[(j + 1).min(last)]));
            (a + (b - a) * (position - j as f64)).round() as i16
        })
        .collect()
}

/// A protobuf `Duration` in JSON (`"10s"`, `"0.500s"`).
fn proto_duration(text: &str) -> Option<Duration> {
    let seconds: f64 = text.trim().strip_suffix('s')?.parse().ok()?;
    Duration::try_from_secs_f64(seconds).ok()
}

// --- when to move to a new connection (pure) -----------------------------------------------

/// Session resumption bookkeeping: the newest handle, a pending `goAway`, failed attempts.
#[derive(Debug, Default)]
struct Resumption {
    /// The newest handle the server marked resumable.
    handle: Option<String>,
    /// After `goAway`: move by then, even in the middle of a turn.
    move_by: Option<Instant>,
    /// Failed attempts of the rollover in progress.
    failures: u32,
}

#[derive(Debug, PartialEq, Eq)]
enum Step {
    Stay,
    Resume(String),
    GiveUp(String),
}

impl Resumption {
    fn handle_update(&mut self, handle: Option<String>) {
        if let Some(handle) = handle {
            self.handle = Some(handle);
        }
    }

    fn handle_go_away(&mut self, time_left: Duration, now: Instant) {
        // A server may announce any time left; beyond an hour it changes nothing here.
        let time_left = time_left.min(Duration::from_secs(3600));
        let by = now + time_left - GO_AWAY_MARGIN.min(time_left / 2);
        self.move_by = Some(self.move_by.map_or(by, |earlier| earlier.min(by)));
    }

    /// When the session must move even if busy.
    fn move_by(&self) -> Option<Instant> {
        self.move_by
    }

    /// What to do on a live connection: after `goAway`, move as soon as nothing is in
    /// flight, or when time is up.
    fn poll(&self, busy: bool, now: Instant) -> Step {
        match self.move_by {
            Some(by) if !busy || now >= by => match &self.handle {
                Some(handle) => Step::Resume(handle.clone()),
                None => Step::GiveUp("Gemini is closing the connection and gave no handle to resume from".into()),
            },
            _ => Step::Stay,
        }
    }

    /// The connection ended without being asked to: resume unless the server refused
    /// something (1007, 1008), which a new connection would not change.
    fn handle_lost(&self, code: Option<u16>, reason: &str) -> Result<String, String> {
        let cause = match code {
            Some(code) => format!("Gemini closed the connection ({code}: {reason})"),
            None => format!("the Gemini connection was lost ({reason})"),
        };
        match (&self.handle, code) {
            (_, Some(1007 | 1008)) => Err(cause),
            (Some(handle), _) => Ok(handle.clone()),
            (None, _) => Err(format!("{cause}; no handle to resume from")),
        }
    }

    /// An attempt failed: retry after the returned delay, or give up with a reason.
    fn handle_failure(&mut self, error: &ProviderError) -> Result<Duration, String> {
        self.failures += 1;
        match error {
            ProviderError::Connect(_) if self.failures < RESUME_ATTEMPTS => {
                Ok(RESUME_BACKOFF * 2u32.pow(self.failures - 1))
            }
            _ => Err(format!("the Gemini session could not be resumed ({} attempts): {error}", self.failures)),
        }
    }

    fn handle_resumed(&mut self) {
        self.move_by = None;
        self.failures = 0;
    }
}

/// Commands that arrive while the session moves to a new connection, sent once it is up.
#[derive(Debug, Default)]
struct Backlog {
    commands: VecDeque<ProviderCommand>,
    audio_bytes: usize,
    others: usize,
    /// Caller audio dropped since the last `take_stats` (oldest first).
    dropped_bytes: usize,
}

impl Backlog {
    fn push(&mut self, command: ProviderCommand) {
        if let ProviderCommand::Audio(frame) = &command {
            self.audio_bytes += frame.bytes().len();
            while self.audio_bytes > BACKLOG_AUDIO_BYTES {
                let Some(oldest) = self.commands.iter().position(|c| matches!(c, ProviderCommand::Audio(_))) else {
                    break;
                };
                if let Some(ProviderCommand::Audio(frame)) = self.commands.remove(oldest) {
                    self.audio_bytes -= frame.bytes().len();
                    self.dropped_bytes += frame.bytes().len();
                }
            }
        } else if self.others >= BACKLOG_COMMANDS {
            tracing::warn!("too many commands while the Gemini session reconnects; dropped one");
            return;
        } else {
            self.others += 1;
        }
        self.commands.push_back(command);
    }

    fn pop(&mut self) -> Option<ProviderCommand> {
        let command = self.commands.pop_front()?;
        match &command {
            ProviderCommand::Audio(frame) => self.audio_bytes -= frame.bytes().len(),
            _ => self.others -= 1,
        }
        Some(command)
    }

    /// (held, dropped) caller audio in ms; resets the dropped count.
    fn take_stats(&mut self) -> (u64, u64) {
        let ms = |bytes: usize| (bytes / 2) as u64 * 1000 / u64::from(INPUT_RATE.hz());
        (ms(self.audio_bytes), ms(std::mem::take(&mut self.dropped_bytes)))
    }
}

// --- the I/O task ----------------------------------------------------------------------------

/// The connection a session is on.
enum Link {
    /// Boxed: a socket is large and the link changes rarely.
    Live(Box<Socket>),
    /// Moving to a new connection; `since` is when the old one stopped taking audio.
    Resuming { attempt: Attempt, since: Instant, handle: String },
}

enum LinkEvent {
    Message(Option<Result<Message, tungstenite::Error>>),
    Resumed(Result<Box<Socket>, ProviderError>),
}

async fn next_link_event(link: &mut Link) -> LinkEvent {
    match link {
        Link::Live(ws) => LinkEvent::Message(ws.next().await),
        Link::Resuming { attempt, .. } => LinkEvent::Resumed(attempt.as_mut().await.map(Box::new)),
    }
}

enum Flow {
    Continue,
    End { reason: String, expected: bool },
}

/// The session task: one live connection at a time, swapped under the call when Gemini
/// asks (`goAway`) or the socket drops, so the [`ProviderSession`] the call holds never changes.
struct Shell {
    endpoint: Endpoint,
    /// Kept to set up each new connection the same way.
    spec: SessionSpec,
    events: mpsc::Sender<ProviderEvent>,
    translator: Translator,
    resumption: Resumption,
    backlog: Backlog,
    /// When caller audio was last loud (see `QUIET_BEFORE_ROLLOVER`).
    last_loud: Option<Instant>,
    /// Caller audio frames are built here without allocating.
    frames: TextFrames,
}

impl Shell {
    async fn run(mut self, ws: Socket, mut commands: mpsc::Receiver<ProviderCommand>) {
        let mut link = Link::Live(Box::new(ws));
        let (reason, expected) = loop {
            let move_by = match &link {
                Link::Live(_) if self.is_busy() => self.resumption.move_by(),
                _ => None,
            };
            let deadline = move_by.map_or_else(tokio::time::Instant::now, tokio::time::Instant::from_std);
            let flow = tokio::select! {
                command = commands.recv() => self.handle_command(&mut link, command).await,
                event = next_link_event(&mut link) => match event {
                    LinkEvent::Message(message) => self.handle_message(&mut link, message).await,
                    LinkEvent::Resumed(result) => self.handle_attempt(&mut link, result).await,
                },
                _ = tokio::time::sleep_until(deadline), if move_by.is_some() => Flow::Continue,
            };
            if let Flow::End { reason, expected } = flow {
                break (reason, expected);
            }
            if matches!(link, Link::Live(_)) {
                match self.resumption.poll(self.is_busy(), Instant::now()) {
                    Step::Stay => {}
                    Step::Resume(handle) => self.begin_rollover(&mut link, handle).await,
                    Step::GiveUp(reason) => break (reason, false),
                }
            }
        };
        if !expected {
            tracing::warn!(%reason, "Gemini session ended");
            let events = self.translator.connection_ended();
            self.emit(events).await;
        }
        if let Link::Live(ws) = link {
            tokio::spawn(close_quietly(ws));
        }
        let _ = self.events.send(ProviderEvent::Closed { reason, expected }).await;
    }

    /// Whether moving now would lose something: a turn or tool call in flight, or the
    /// caller talking.
    fn is_busy(&self) -> bool {
        self.translator.is_busy() || self.last_loud.is_some_and(|at| at.elapsed() < QUIET_BEFORE_ROLLOVER)
    }

    async fn emit(&mut self, events: Vec<ProviderEvent>) {
        for event in events {
            // A closed channel means the call is over; its `Close` (or the channel
            // closing) ends this task next.
            let _ = self.events.send(event).await;
        }
    }

    async fn handle_command(&mut self, link: &mut Link, command: Option<ProviderCommand>) -> Flow {
        let Some(command) = command else {
            return Flow::End { reason: "the call ended".into(), expected: true };
        };
        match &command {
            ProviderCommand::Close => {
                if let Link::Live(ws) = link {
                    let _ = ws.send(Message::Close(None)).await;
                }
                return Flow::End { reason: "closed by the gateway".into(), expected: true };
            }
            // Gemini has no truncate: the server stopped the turn where it heard the caller,
            // and the call session cuts its own transcript to what was played.
            ProviderCommand::Truncate { .. } | ProviderCommand::Respond(_) => return Flow::Continue,
            // Nor a cancel: drop the rest of the turn here (see `Translator::cancel_turn`).
            ProviderCommand::CancelResponse => {
                let events = self.translator.cancel_turn();
                self.emit(events).await;
                return Flow::Continue;
            }
            ProviderCommand::Audio(frame) if frame.loud => self.last_loud = Some(frame.arrival),
            _ => {}
        }
        let sent = match link {
            Link::Resuming { .. } => {
                self.backlog.push(command);
                Ok(())
            }
            Link::Live(ws) => self.send(ws, command).await,
        };
        match sent {
            Ok(()) => Flow::Continue,
            Err(err) => self.connection_lost(link, None, &format!("write failed: {err}")).await,
        }
    }

    async fn send(&mut self, ws: &mut Socket, command: ProviderCommand) -> Result<(), tungstenite::Error> {
        match command {
            ProviderCommand::Audio(frame) => {
                ws.send(audio_message(&mut self.frames, frame.bytes())).await?;
                crate::metrics::inbound_latency(frame.arrival.elapsed());
            }
            ProviderCommand::Say { text } => {
                // New client content ends a model turn in progress (the server says
                // `interrupted`): the gateway cancelled it, as `response.cancel` would.
                let events = self.translator.cancel_turn();
                self.emit(events).await;
                ws.send(Message::text(say_message(&text).to_string())).await?;
            }
            ProviderCommand::UserText { text } => {
                let events = self.translator.cancel_turn();
                self.emit(events).await;
                ws.send(Message::text(user_turn(&text).to_string())).await?;
            }
            ProviderCommand::ToolResult { call_id, name, output } => {
                if self.translator.take_call(&call_id) {
                    ws.send(Message::text(tool_response(&call_id, &name, &output).to_string())).await?;
                } else {
                    // Cancelled, or asked on a connection that has since been replaced: the
                    // server would refuse an id it does not wait for.
                    tracing::debug!(%call_id, tool = %name, "dropped the result of a tool call Gemini no longer waits for");
                }
            }
            ProviderCommand::Truncate { .. }
            | ProviderCommand::CancelResponse
            | ProviderCommand::Respond(_)
            | ProviderCommand::Close => {}
        }
        Ok(())
    }

    async fn handle_message(&mut self, link: &mut Link, message: Option<Result<Message, tungstenite::Error>>) -> Flow {
        let message = match message {
            Some(Ok(message)) => message,
            Some(Err(err)) => return self.connection_lost(link, None, &format!("read failed: {err}")).await,
            None => return self.connection_lost(link, None, "the connection closed").await,
        };
        match incoming(message) {
            Incoming::Skip => Flow::Continue,
            Incoming::Close(code, reason) => self.connection_lost(link, code, &reason).await,
            Incoming::Json(frame) => {
                let out = self.translator.handle(&frame, Instant::now());
                if let Some(usage) = out.usage {
                    usage.record();
                }
                if let Some(handle) = out.resumption {
                    self.resumption.handle_update(handle);
                }
                if let Some(time_left) = out.go_away {
                    tracing::info!(
                        time_left_ms = time_left.as_millis() as u64,
                        "Gemini will close this connection (goAway)"
                    );
                    self.resumption.handle_go_away(time_left, Instant::now());
                }
                self.emit(out.events).await;
                Flow::Continue
            }
        }
    }

    async fn connection_lost(&mut self, link: &mut Link, code: Option<u16>, reason: &str) -> Flow {
        crate::metrics::provider_error("google", "dropped");
        match self.resumption.handle_lost(code, reason) {
            Ok(handle) => {
                tracing::warn!(code, reason, "Gemini connection lost; resuming the session on a new one");
                self.begin_rollover(link, handle).await;
                Flow::Continue
            }
            Err(reason) => Flow::End { reason, expected: false },
        }
    }

    /// Stops using the current connection and starts resuming on a new one.
    async fn begin_rollover(&mut self, link: &mut Link, handle: String) {
        let events = self.translator.connection_ended();
        self.emit(events).await;
        tracing::info!("Gemini session moving to a new connection");
        let attempt = self.attempt(&handle, Duration::ZERO);
        let old = std::mem::replace(link, Link::Resuming { attempt, since: Instant::now(), handle });
        if let Link::Live(ws) = old {
            tokio::spawn(close_quietly(ws));
        }
    }

    fn attempt(&self, handle: &str, delay: Duration) -> Attempt {
        let endpoint = self.endpoint.clone();
        let setup = setup_message(&self.spec, Some(handle));
        Box::pin(async move {
            tokio::time::sleep(delay).await;
            open(&endpoint, &setup).await
        })
    }

    async fn handle_attempt(&mut self, link: &mut Link, result: Result<Box<Socket>, ProviderError>) -> Flow {
        let Link::Resuming { since, handle, .. } = link else { return Flow::Continue };
        let (since, handle) = (*since, handle.clone());
        match result {
            Ok(ws) => {
                *link = Link::Live(ws);
                self.resumption.handle_resumed();
                crate::metrics::provider_reconnect("google");
                let (held_ms, dropped_ms) = self.backlog.take_stats();
                tracing::info!(
                    pause_ms = since.elapsed().as_millis() as u64,
                    held_ms,
                    dropped_ms,
                    "Gemini session resumed on a new connection"
                );
                while let Some(command) = self.backlog.pop() {
                    let Link::Live(ws) = link else { break };
                    if let Err(err) = self.send(ws, command).await {
                        return self.connection_lost(link, None, &format!("write failed: {err}")).await;
                    }
                }
                Flow::Continue
            }
            Err(err) => match self.resumption.handle_failure(&err) {
                Ok(delay) => {
                    tracing::warn!(error = %err, retry_in_ms = delay.as_millis() as u64, "resuming the Gemini session failed; retrying");
                    let attempt = self.attempt(&handle, delay);
                    *link = Link::Resuming { attempt, since, handle };
                    Flow::Continue
                }
                Err(reason) => Flow::End { reason, expected: false },
            },
        }
    }
}

async fn close_quietly(mut ws: Box<Socket>) {
    let _ = tokio::time::timeout(Duration::from_secs(1), WebSocketStream::close(&mut ws, None)).await;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::providers::ToolSpec;
    use crate::store::{ModelSettings, ModelType, Provider};
    use testkit::fixtures::{FixtureLine, load_jsonl};

    fn spec() -> SessionSpec {
        SessionSpec {
            model: "gemini-2.5-flash-native-audio-preview-12-2025".into(),
            dialect: Default::default(),
            instructions: "You are a friendly phone agent. Keep answers short.".into(),
            voice: "Kore".into(),
            speed: 1.0,
            vad_threshold: 0.8,
            allow_interruption: true,
            transcription: true,
            noise_reduction: true,
            respond: true,
            input: AudioFormat::Pcm16(INPUT_RATE),
            output: AudioFormat::Pcm16(OUTPUT_RATE),
            tools: vec![ToolSpec {
                name: "search_knowledge_base".into(),
                description: "Search the company knowledge base for an answer to the caller's question.".into(),
                parameters: json!({"type": "object", "properties": {"query": {"type": "string", "description": "What to search for."}}, "required": ["query"]}),
            }],
        }
    }

    fn model(version: Option<&str>) -> AiModel {
        AiModel {
            id: crate::ids::ModelId::new(),
            provider: Provider::Google,
            model_id: "gemini-2.5-flash-native-audio-preview-12-2025".into(),
            display_name: "Gemini".into(),
            model_type: ModelType::Call,
            is_active: true,
            settings: ModelSettings { realtime_dialect: None, live_api_version: version.map(str::to_owned) },
            created_at: 0,
            updated_at: 0,
        }
    }

    #[test]
    fn the_setup_for_a_full_spec_carries_every_part() {
        let setup = setup_message(&spec(), None);
        assert_eq!(
            setup,
            json!({"setup": {
                "model": "models/gemini-2.5-flash-native-audio-preview-12-2025",
                "generationConfig": {"responseModalities": ["AUDIO"],
                    "speechConfig": {"voiceConfig": {"prebuiltVoiceConfig": {"voiceName": "Kore"}}}},
                "systemInstruction": {"parts": [{"text": "You are a friendly phone agent. Keep answers short."}]},
                "tools": [{"functionDeclarations": [{"name": "search_knowledge_base",
                    "description": "Search the company knowledge base for an answer to the caller's question.",
                    "parameters": {"type": "OBJECT", "properties": {"query": {"type": "STRING", "description": "What to search for."}}, "required": ["query"]}}]}],
                "realtimeInputConfig": {
                    "automaticActivityDetection": {"disabled": false,
                        "startOfSpeechSensitivity": "START_SENSITIVITY_LOW", "endOfSpeechSensitivity": "END_SENSITIVITY_LOW"},
                    "activityHandling": "START_OF_ACTIVITY_INTERRUPTS"},
                "inputAudioTranscription": {}, "outputAudioTranscription": {},
                "sessionResumption": {},
                "contextWindowCompression": {"slidingWindow": {}},
            }})
        );
    }

    #[test]
    fn the_setup_without_interruption_says_no_interruption_and_resumes_with_the_handle() {
        let spec = SessionSpec {
            allow_interruption: false,
            transcription: false,
            tools: vec![],
            instructions: String::new(),
            ..spec()
        };
        let setup = &setup_message(&spec, Some("handle-1"))["setup"];
        assert_eq!(setup["realtimeInputConfig"]["activityHandling"], "NO_INTERRUPTION");
        assert_eq!(setup["sessionResumption"], json!({"handle": "handle-1"}));
        for absent in ["tools", "systemInstruction", "inputAudioTranscription", "outputAudioTranscription"] {
            assert!(setup.get(absent).is_none(), "{absent} in {setup}");
        }
    }

    #[test]
    fn the_vad_threshold_maps_to_two_sensitivity_levels_with_a_default_band() {
        assert_eq!(speech_sensitivity(0.1), Some(("START_SENSITIVITY_HIGH", "END_SENSITIVITY_HIGH")));
        assert_eq!(speech_sensitivity(0.5), None);
        assert_eq!(speech_sensitivity(0.4), None);
        assert_eq!(speech_sensitivity(0.6), None);
        assert_eq!(speech_sensitivity(0.9), Some(("START_SENSITIVITY_LOW", "END_SENSITIVITY_LOW")));
        let mid = setup_message(&SessionSpec { vad_threshold: 0.5, ..spec() }, None);
        assert_eq!(mid["setup"]["realtimeInputConfig"]["automaticActivityDetection"], json!({"disabled": false}));
    }

    #[test]
    fn tool_schemas_get_upper_case_types_and_lose_what_gemini_does_not_know() {
        let schema = json!({
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "type": "object",
            "additionalProperties": false,
            "properties": {
                "query": {"type": "string", "minLength": 1},
                "limit": {"type": ["integer", "null"], "minimum": 1},
                "tags": {"type": "array", "items": {"type": "string", "enum": ["a", "b"]}},
                "filter": {"type": "object", "properties": {"since": {"type": "string", "format": "date-time"}}},
                "either": {"anyOf": [{"type": "number"}, {"type": "boolean"}]},
            },
            "required": ["query"],
        });
        assert_eq!(
            tool_parameters(&schema),
            Some(json!({
                "type": "OBJECT",
                "properties": {
                    "query": {"type": "STRING", "minLength": 1},
                    "limit": {"type": "INTEGER", "nullable": true, "minimum": 1},
                    "tags": {"type": "ARRAY", "items": {"type": "STRING", "enum": ["a", "b"]}},
                    "filter": {"type": "OBJECT", "properties": {"since": {"type": "STRING", "format": "date-time"}}},
                    "either": {"anyOf": [{"type": "NUMBER"}, {"type": "BOOLEAN"}]},
                },
                "required": ["query"],
            }))
        );
        assert_eq!(tool_parameters(&json!({"type": "object", "properties": {}})), None, "no arguments");
        assert_eq!(tool_parameters(&json!({"type": "object"})), None);
    }

    #[test]
    fn audio_goes_out_as_16_khz_realtime_input() {
        let Message::Text(text) = audio_message(&mut TextFrames::default(), &[0xf3, 0xff, 0xf6, 0xff]) else {
            panic!("a text frame")
        };
        let frame: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(
            frame,
            json!({"realtimeInput": {"audio": {"data": "8//2/w==", "mimeType": "audio/pcm;rate=16000"}}})
        );
    }

    #[test]
    fn tool_responses_carry_the_output_as_json_when_it_is_json() {
        assert_eq!(
            tool_response("function-call-1", "search_knowledge_base", r#"{"answer":"5-7 days"}"#),
            json!({"toolResponse": {"functionResponses": [{"id": "function-call-1", "name": "search_knowledge_base",
                "response": {"output": {"answer": "5-7 days"}}}]}})
        );
        let text = tool_response("function-call-1", "search_knowledge_base", "We ship to Canada.");
        assert_eq!(text["toolResponse"]["functionResponses"][0]["response"], json!({"output": "We ship to Canada."}));
    }

    #[test]
    fn say_is_a_complete_user_turn() {
        let say = say_message("Hello!");
        assert_eq!(say["clientContent"]["turnComplete"], true);
        assert_eq!(say["clientContent"]["turns"][0]["role"], "user");
        assert!(say["clientContent"]["turns"][0]["parts"][0]["text"].as_str().unwrap().ends_with(": Hello!"));
    }

    #[test]
    fn the_url_names_the_models_api_version_and_never_the_key() {
        let base: url::Url = "wss://generativelanguage.googleapis.com".parse().unwrap();
        let beta = Endpoint::new(&base, "secret", &model(None)).unwrap();
        assert_eq!(
            beta.url,
            "wss://generativelanguage.googleapis.com/ws/google.ai.generativelanguage.v1beta.GenerativeService.BidiGenerateContent"
        );
        assert!(beta.key.is_sensitive());
        let local: url::Url = "http://127.0.0.1:9/".parse().unwrap();
        let alpha = Endpoint::new(&local, "secret", &model(Some("v1alpha"))).unwrap();
        assert_eq!(
            alpha.url,
            "ws://127.0.0.1:9/ws/google.ai.generativelanguage.v1alpha.GenerativeService.BidiGenerateContent"
        );
        assert!(!alpha.url.contains("secret"));
        assert!(matches!(Endpoint::new(&base, "k", &model(Some("v1/../x"))), Err(ProviderError::Refused(_))));
    }

    #[test]
    fn close_codes_say_whether_a_retry_can_help() {
        // error.jsonl: a bad setup is closed with 1007.
        let lines = load_jsonl("gemini-live/error.jsonl").unwrap();
        let Some(FixtureLine::Close { code, reason }) = lines.last() else { panic!("{lines:?}") };
        assert!(matches!(close_error(Some(*code), reason), ProviderError::Refused(_)));
        assert!(matches!(close_error(Some(1008), "Requested entity was not found"), ProviderError::Refused(_)));
        assert!(matches!(close_error(Some(1011), "Internal error occurred."), ProviderError::Connect(_)));
        assert!(matches!(close_error(None, ""), ProviderError::Connect(_)));
    }

    /// The fixture's server frames through a translator, as compact lines.
    fn replay(fixture: &str) -> (Vec<String>, Translator, Vec<Translated>) {
        let mut translator = Translator::default();
        let mut lines = Vec::new();
        let mut outs = Vec::new();
        for line in load_jsonl(&format!("gemini-live/{fixture}")).unwrap() {
            let FixtureLine::Server(frame) = line else { continue };
            let mut out = translator.handle(&frame, Instant::now());
            lines.extend(out.events.drain(..).map(|e| describe(&e)));
            outs.push(out);
        }
        (lines, translator, outs)
    }

    fn describe(event: &ProviderEvent) -> String {
        match event {
            ProviderEvent::Audio { item_id, audio, .. } => format!("audio {item_id} {}", audio.len()),
            ProviderEvent::AudioDone { item_id } => format!("audio done {item_id}"),
            ProviderEvent::SpeechStarted => "speech started".into(),
            ProviderEvent::SpeechStopped => "speech stopped".into(),
            ProviderEvent::UserTranscript { item_id, text, is_final } => {
                format!("user {item_id}{} {text}", if *is_final { " final" } else { "" })
            }
            ProviderEvent::AgentTranscript { item_id, text, is_final } => {
                format!("agent {item_id}{} {text}", if *is_final { " final" } else { "" })
            }
            ProviderEvent::Interrupted => "interrupted".into(),
            ProviderEvent::ResponseDone { status } => format!("response {status}"),
            ProviderEvent::ToolCall { call_id, name, arguments } => format!("tool call {call_id} {name} {arguments}"),
            ProviderEvent::ToolCallsCancelled { call_ids } => format!("tool calls cancelled {call_ids:?}"),
            ProviderEvent::Error { code, .. } => format!("error {code}"),
            ProviderEvent::Closed { reason, .. } => format!("closed {reason}"),
        }
    }

    #[test]
    fn a_plain_turn_is_one_user_line_then_one_agent_item() {
        let (events, translator, outs) = replay("plain-turn.jsonl");
        assert_eq!(
            events,
            [
                "speech started",
                "user user-1 Hi,",
                "user user-1 Hi, can you",
                "user user-1 Hi, can you hear me?",
                "user user-1 final Hi, can you hear me?",
                "speech stopped",
                "audio turn-1 6",
                "agent turn-1 Yes, I",
                "audio turn-1 2",
                "agent turn-1 Yes, I can hear you.",
                "audio turn-1 6",
                "agent turn-1 Yes, I can hear you. How can I",
                "audio turn-1 2",
                "agent turn-1 Yes, I can hear you. How can I help you today?",
                "agent turn-1 final Yes, I can hear you. How can I help you today?",
                "audio done turn-1",
                "response completed",
            ]
        );
        assert!(!translator.is_busy());
        let usage = outs.iter().find_map(|o| o.usage).unwrap();
        assert_eq!(usage, Usage { prompt: 6562, response: 111, total: 6673 });
    }

    #[test]
    fn a_barge_in_interrupts_and_closes_out_the_turn_and_the_next_turn_is_a_new_item() {
        let (events, _, _) = replay("barge-in.jsonl");
        let from = events.iter().position(|e| e == "agent turn-1 We are open Monday to Friday, from nine").unwrap();
        assert_eq!(
            events[from + 1..],
            [
                "speech started",
                "user user-2 Sorry,",
                "interrupted",
                "agent turn-1 final We are open Monday to Friday, from nine",
                "audio done turn-1",
                "response interrupted",
                "user user-2 Sorry, and on Saturdays?",
                "user user-2 final Sorry, and on Saturdays?",
                "speech stopped",
                "audio turn-2 2",
                "agent turn-2 On Saturdays",
                "audio turn-2 6",
                "agent turn-2 On Saturdays we are open from ten to two.",
                "agent turn-2 final On Saturdays we are open from ten to two.",
                "audio done turn-2",
                "response completed",
            ]
        );
    }

    #[test]
    fn a_tool_call_belongs_to_the_turn_that_answers_with_its_result() {
        let (events, mut translator, _) = replay("function-call.jsonl");
        assert_eq!(
            events[4..7],
            [
                "user user-1 final Do you ship to Canada?",
                "speech stopped",
                r#"tool call function-call-3612806999080839515 search_knowledge_base {"query":"shipping to Canada"}"#,
            ]
        );
        assert_eq!(events[7], "audio turn-1 6");
        assert!(events.contains(
            &"agent turn-1 final Yes, we ship to Canada. It usually takes five to seven business days.".to_owned()
        ));
        assert!(translator.take_call("function-call-3612806999080839515"), "the result is awaited");
        assert!(!translator.take_call("function-call-3612806999080839515"), "once");
    }

    #[test]
    fn cancelled_tool_calls_are_reported_and_their_results_dropped() {
        let mut t = Translator::default();
        t.handle(
            &json!({"toolCall": {"functionCalls": [{"id": "function-call-1", "name": "lookup", "args": {}}]}}),
            Instant::now(),
        );
        let out = t.handle(&json!({"toolCallCancellation": {"ids": ["function-call-1"]}}), Instant::now());
        assert_eq!(
            out.events.iter().map(describe).collect::<Vec<_>>(),
            [r#"tool calls cancelled ["function-call-1"]"#]
        );
        assert!(!t.take_call("function-call-1"));
    }

    #[test]
    fn go_away_and_resumption_updates_reach_the_shell() {
        let (_, _, outs) = replay("go-away-resumption.jsonl");
        let handles: Vec<_> = outs.iter().filter_map(|o| o.resumption.clone()).collect();
        assert_eq!(handles.len(), 2);
        assert!(handles[1].as_deref().unwrap().ends_with("MTI0"));
        assert_eq!(outs.last().unwrap().go_away, Some(Duration::from_secs(10)));
        let t = Translator::default()
            .handle(&json!({"sessionResumptionUpdate": {"newHandle": "", "resumable": false}}), Instant::now());
        assert_eq!(t.resumption, Some(None), "not resumable at this point");
    }

    #[test]
    fn cancelling_a_turn_closes_its_item_and_drops_the_rest_of_it() {
        let mut t = Translator::default();
        let audio = json!({"serverContent": {"modelTurn": {"parts": [{"inlineData": {"mimeType": "audio/pcm;rate=24000", "data": "8//2//v/9//q/+//"}}]}}});
        t.handle(&audio, Instant::now());
        t.handle(&json!({"serverContent": {"outputTranscription": {"text": "Hello"}}}), Instant::now());
        let cancelled: Vec<_> = t.cancel_turn().iter().map(describe).collect();
        assert_eq!(cancelled, ["agent turn-1 final Hello", "audio done turn-1"]);
        assert!(t.handle(&audio, Instant::now()).events.is_empty(), "late audio of the turn is dropped");
        let done: Vec<_> = t
            .handle(&json!({"serverContent": {"turnComplete": true}}), Instant::now())
            .events
            .iter()
            .map(describe)
            .collect();
        assert_eq!(done, ["response cancelled"]);
    }

    #[test]
    fn a_lost_connection_closes_out_what_was_in_flight() {
        let mut t = Translator::default();
        t.handle(&json!({"serverContent": {"inputTranscription": {"text": " Hello"}}}), Instant::now());
        assert!(t.is_busy());
        let ended: Vec<_> = t.connection_ended().iter().map(describe).collect();
        assert_eq!(ended, ["user user-1 final Hello", "speech stopped"]);
        assert!(!t.is_busy());
    }

    #[test]
    fn audio_at_another_rate_is_resampled_and_other_data_ignored() {
        assert_eq!(pcm_rate("audio/pcm;rate=24000"), Some(24_000));
        assert_eq!(pcm_rate("audio/pcm"), Some(24_000));
        assert_eq!(pcm_rate("audio/pcm; rate=16000"), Some(16_000));
        assert_eq!(pcm_rate("image/jpeg"), None);
        assert_eq!(resample(&[0, 100, 200, 300], 16_000, 24_000).len(), 6);
        let mut t = Translator::default();
        let frame = json!({"serverContent": {"modelTurn": {"parts": [
            {"inlineData": {"mimeType": "audio/pcm;rate=16000", "data": "8//2//v/9//q/+//"}},
            {"inlineData": {"mimeType": "image/png", "data": "AAAA"}},
            {"text": "thinking"},
        ]}}});
        let events: Vec<_> = t.handle(&frame, Instant::now()).events.iter().map(describe).collect();
        assert_eq!(events, ["audio turn-1 9"]);
    }

    #[test]
    fn protobuf_durations_parse() {
        assert_eq!(proto_duration("10s"), Some(Duration::from_secs(10)));
        assert_eq!(proto_duration("0.500s"), Some(Duration::from_millis(500)));
        assert_eq!(proto_duration("ten"), None);
        assert_eq!(proto_duration("-1s"), None);
    }

    #[test]
    fn after_go_away_the_session_moves_once_the_turn_is_over() {
        let t0 = Instant::now();
        let mut r = Resumption::default();
        r.handle_update(Some("h1".into()));
        r.handle_update(None);
        assert_eq!(r.poll(false, t0), Step::Stay, "no goAway yet");
        r.handle_go_away(Duration::from_secs(10), t0);
        assert_eq!(r.poll(true, t0), Step::Stay, "the agent is mid-turn");
        assert_eq!(r.move_by(), Some(t0 + Duration::from_secs(8)));
        assert_eq!(r.poll(true, t0 + Duration::from_secs(8)), Step::Resume("h1".into()), "time is up");
        assert_eq!(r.poll(false, t0 + Duration::from_secs(1)), Step::Resume("h1".into()), "the turn ended");
        r.handle_resumed();
        assert_eq!(r.poll(false, t0), Step::Stay);
    }

    #[test]
    fn without_a_handle_there_is_nothing_to_resume() {
        let t0 = Instant::now();
        let mut r = Resumption::default();
        r.handle_go_away(Duration::from_secs(1), t0);
        assert!(matches!(r.poll(false, t0), Step::GiveUp(_)));
        assert!(r.handle_lost(Some(1011), "Internal error occurred.").is_err());
    }

    #[test]
    fn a_dropped_connection_resumes_unless_the_server_refused_something() {
        let mut r = Resumption::default();
        r.handle_update(Some("h1".into()));
        assert_eq!(r.handle_lost(Some(1011), "Internal error occurred."), Ok("h1".into()));
        assert_eq!(r.handle_lost(None, "reset"), Ok("h1".into()));
        assert!(r.handle_lost(Some(1007), "Request contains an invalid argument.").is_err());
    }

    #[test]
    fn resuming_is_tried_three_times_and_a_refusal_ends_it() {
        let mut r = Resumption::default();
        let down = ProviderError::Connect("refused".into());
        assert_eq!(r.handle_failure(&down), Ok(RESUME_BACKOFF));
        assert_eq!(r.handle_failure(&down), Ok(RESUME_BACKOFF * 2));
        assert!(r.handle_failure(&down).is_err(), "third failure");
        r.handle_resumed();
        assert!(r.handle_failure(&ProviderError::Refused("1007".into())).is_err(), "a bad handle is not retried");
    }

    #[test]
    fn the_backlog_keeps_the_newest_two_seconds_of_audio_and_every_other_command() {
        let mut backlog = Backlog::default();
        let frame = || ProviderCommand::Audio(super::super::InputFrame::new(&[0; 640], false, Instant::now()));
        backlog.push(ProviderCommand::Say { text: "hi".into() });
        for _ in 0..150 {
            backlog.push(frame());
        }
        assert_eq!(backlog.take_stats(), (2000, 1000));
        assert!(matches!(backlog.pop(), Some(ProviderCommand::Say { .. })), "order kept");
        let mut frames = 0;
        while let Some(command) = backlog.pop() {
            assert!(matches!(command, ProviderCommand::Audio(_)));
            frames += 1;
        }
        assert_eq!(frames, 100);
        assert_eq!(backlog.take_stats(), (0, 0));
    }
}
