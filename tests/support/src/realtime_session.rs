//! One OpenAI Realtime connection as a pure state machine: client frames in,
//! server events out. No sockets, no clocks: positions are milliseconds of
//! audio received, and the connection task decides when to pull the next
//! chunk of a streaming response (see `MockOpenAiRealtime` for the I/O).
//!
//! Event shapes and their order follow the fixtures in
//! `shared/fixtures/openai-realtime/` for each dialect.

use std::sync::Arc;

use serde_json::{Value, json};

use crate::audio::{self, RATE_8K, RATE_24K};
use crate::energy_vad::{EnergyVad, VadEvent, VadSettings};
use crate::ids;
use crate::mock_openai_realtime::{Dialect, OpenAiRealtimeConfig};
use crate::realtime_schema::{self as schema, ApiError, Checked};
use crate::script::{MockReply, fill_template, transcript_deltas, word_chunk};

/// What a step produced besides events: facts the mock records.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Note {
    SessionUpdated(Value),
    Truncated { item_id: String, audio_end_ms: u64 },
    ToolOutput { call_id: String, output: String },
    ResponseDone(ResponseSummary),
}

/// A finished (completed or cancelled) response.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ResponseSummary {
    pub response_id: String,
    pub item_id: String,
    pub status: String,
    pub audio_ms: u64,
    pub transcript: String,
    /// `(name, call_id)` when the response was a function call.
    pub function_call: Option<(String, String)>,
}

#[derive(Debug, Default)]
pub(crate) struct Outcome {
    pub events: Vec<Value>,
    pub notes: Vec<Note>,
}

impl Outcome {
    fn push(&mut self, event: Value) {
        self.events.push(event);
    }

    fn error(&mut self, error: &ApiError, client_event_id: Option<&str>) {
        self.events.push(error.to_event(client_event_id));
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum AudioFormat {
    Pcm16,
    Ulaw,
    Alaw,
}

impl AudioFormat {
    fn from_ga(value: &Value) -> Self {
        match value.get("type").and_then(Value::as_str) {
            Some("audio/pcmu") => Self::Ulaw,
            Some("audio/pcma") => Self::Alaw,
            _ => Self::Pcm16,
        }
    }

    fn from_beta(value: &Value) -> Self {
        match value.as_str() {
            Some("g711_ulaw") => Self::Ulaw,
            Some("g711_alaw") => Self::Alaw,
            _ => Self::Pcm16,
        }
    }

    fn rate(self) -> u32 {
        if self == Self::Pcm16 { RATE_24K } else { RATE_8K }
    }

    fn encode(self, samples: &[i16]) -> Vec<u8> {
        match self {
            Self::Pcm16 => audio::pcm16_to_bytes(samples),
            Self::Ulaw => audio::ulaw_encode_all(samples),
            Self::Alaw => audio::alaw_encode_all(samples),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
struct TurnDetection {
    vad: VadSettings,
    create_response: bool,
    interrupt_response: bool,
}

/// The effective session, as read back from its JSON.
#[derive(Debug, Clone, PartialEq)]
struct Settings {
    input: AudioFormat,
    output: AudioFormat,
    turn: Option<TurnDetection>,
    transcription: bool,
    tools: Vec<String>,
    voice: Value,
    text_only: bool,
}

#[derive(Debug, Clone)]
enum ItemKind {
    User,
    Assistant { audio_ms: u64, has_audio: bool },
    FunctionCall { call_id: String },
    FunctionCallOutput,
    Other,
}

#[derive(Debug, Clone)]
struct Item {
    id: String,
    kind: ItemKind,
    /// The item as the server shows it in events.
    value: Value,
}

/// A response whose audio is going out chunk by chunk.
#[derive(Debug)]
struct Stream {
    response: Value,
    item_id: String,
    previous_item_id: Value,
    format: AudioFormat,
    text_only: bool,
    chunks: Vec<Vec<i16>>,
    next_chunk: usize,
    words: Vec<String>,
    next_word: usize,
    transcript_sent: String,
    samples_sent: usize,
}

pub(crate) struct RealtimeSession {
    dialect: Dialect,
    model: String,
    config: Arc<OpenAiRealtimeConfig>,
    session: Value,
    settings: Settings,
    conversation_id: String,
    items: Vec<Item>,
    vad: Option<EnergyVad>,
    /// Audio position where the current VAD started (it restarts when the
    /// input format changes).
    vad_base_ms: u64,
    received_ms: f64,
    buffer_ms: f64,
    odd_byte: Option<u8>,
    /// The user item announced by `speech_started`, committed at the stop.
    speech_item: Option<String>,
    stream: Option<Stream>,
    pending_transcription: Option<String>,
    pending_tool_outputs: Vec<String>,
    /// Calls made per scripted tool name.
    tool_calls_by_name: std::collections::HashMap<String, usize>,
    replies_used: usize,
    produced_audio: bool,
}

impl RealtimeSession {
    pub(crate) fn new(dialect: Dialect, model: &str, config: Arc<OpenAiRealtimeConfig>, expires_at: u64) -> Self {
        let session = schema::initial_session(dialect, model, &ids::openai("sess"), expires_at);
        let settings = read_settings(dialect, &session);
        let mut this = Self {
            dialect,
            model: model.to_owned(),
            config,
            session,
            settings,
            conversation_id: ids::openai("conv"),
            items: Vec::new(),
            vad: None,
            vad_base_ms: 0,
            received_ms: 0.0,
            buffer_ms: 0.0,
            odd_byte: None,
            speech_item: None,
            stream: None,
            pending_transcription: None,
            pending_tool_outputs: Vec::new(),
            tool_calls_by_name: std::collections::HashMap::new(),
            replies_used: 0,
            produced_audio: false,
        };
        this.rebuild_vad(None);
        this
    }

    pub(crate) fn session_created(&self) -> Value {
        json!({"type": "session.created", "session": self.session})
    }

    pub(crate) fn session(&self) -> &Value {
        &self.session
    }

    pub(crate) fn audio_received_ms(&self) -> u64 {
        self.received_ms as u64
    }

    /// Whether a response is streaming audio (pull it with `next_chunk`).
    pub(crate) fn is_streaming(&self) -> bool {
        self.stream.is_some()
    }

    /// The answer to a binary frame: the API speaks JSON text frames only.
    pub(crate) fn handle_binary(&mut self) -> Outcome {
        let mut out = Outcome::default();
        out.error(
            &ApiError::new(Some("invalid_event"), "Binary frames are not supported; send JSON text frames.", None),
            None,
        );
        out
    }

    pub(crate) fn handle_text(&mut self, text: &str) -> Outcome {
        let mut out = Outcome::default();
        let value: Value = match serde_json::from_str(text) {
            Ok(value) => value,
            Err(_) => {
                out.error(
                    &ApiError::new(
                        Some("invalid_json"),
                        "We could not parse the JSON body of your request. (HINT: This likely means you aren't using your HTTP library correctly. The OpenAI API expects a JSON payload, but what was sent was not valid JSON.)",
                        None,
                    ),
                    None,
                );
                return out;
            }
        };
        let event_id = value.get("event_id").and_then(Value::as_str).map(str::to_owned);
        if let Err(error) = self.dispatch(&value, &mut out) {
            out.error(&error, event_id.as_deref());
        }
        out
    }

    fn dispatch(&mut self, value: &Value, out: &mut Outcome) -> Checked<()> {
        let map = value
            .as_object()
            .ok_or_else(|| ApiError::new(Some("invalid_event"), "The event must be a JSON object.", None))?;
        if let Some(id) = map.get("event_id") {
            let id = schema::string(id, "event_id")?;
            if id.chars().count() > 512 {
                return Err(ApiError::new(
                    Some("string_above_max_length"),
                    format!(
                        "Invalid 'event_id': string too long. Expected a string with maximum length 512, but got a string with length {} instead.",
                        id.chars().count()
                    ),
                    Some("event_id"),
                ));
            }
        }
        let kind = match map.get("type") {
            None => {
                return Err(ApiError::new(Some("invalid_event"), "The 'type' field is missing.", None));
            }
            Some(kind) => schema::one_of(kind, "type", schema::CLIENT_EVENT_TYPES)?,
        };
        let keys = |extra: &[&'static str]| -> Vec<&'static str> {
            let mut keys = vec!["type", "event_id"];
            keys.extend_from_slice(extra);
            keys
        };
        match kind {
            "session.update" => {
                schema::object_with(value, "", &keys(&["session"]))?;
                self.session_update(map.get("session"), out)
            }
            "input_audio_buffer.append" => {
                schema::object_with(value, "", &keys(&["audio"]))?;
                self.append(map.get("audio"), out)
            }
            "input_audio_buffer.commit" => {
                schema::object_with(value, "", &keys(&[]))?;
                self.commit(out)
            }
            "input_audio_buffer.clear" => {
                schema::object_with(value, "", &keys(&[]))?;
                self.buffer_ms = 0.0;
                self.speech_item = None;
                if let Some(vad) = self.vad.as_mut() {
                    vad.reset_turn();
                }
                out.push(json!({"type": "input_audio_buffer.cleared"}));
                Ok(())
            }
            "conversation.item.create" => {
                schema::object_with(value, "", &keys(&["previous_item_id", "item"]))?;
                self.item_create(map.get("previous_item_id"), map.get("item"), out)
            }
            "conversation.item.truncate" => {
                schema::object_with(value, "", &keys(&["item_id", "content_index", "audio_end_ms"]))?;
                self.truncate(value, out)
            }
            "conversation.item.delete" | "conversation.item.retrieve" => {
                schema::object_with(value, "", &keys(&["item_id"]))?;
                let item_id = match map.get("item_id") {
                    Some(id) => schema::string(id, "item_id")?,
                    None => return Err(ApiError::missing("item_id")),
                };
                self.item_delete_or_retrieve(kind == "conversation.item.delete", item_id, out)
            }
            "response.create" => {
                schema::object_with(value, "", &keys(&["response"]))?;
                if let Some(params) = map.get("response") {
                    schema::check_response_params(self.dialect, &self.model, params)?;
                }
                if let Some(stream) = &self.stream {
                    return Err(self.active_response_error(&stream.response));
                }
                self.start_response(map.get("response"), out);
                Ok(())
            }
            "response.cancel" => {
                schema::object_with(value, "", &keys(&["response_id"]))?;
                let wanted = match map.get("response_id") {
                    Some(id) => Some(schema::string(id, "response_id")?),
                    None => None,
                };
                let active = self.stream.as_ref().and_then(|s| s.response["id"].as_str().map(str::to_owned));
                match active {
                    Some(id) if wanted.is_none_or(|w| w == id) => {
                        self.finish_stream("cancelled", Some("client_cancelled"), out);
                        Ok(())
                    }
                    _ => Err(ApiError::new(
                        Some("response_cancel_not_active"),
                        "Cancellation failed: no active response found",
                        None,
                    )),
                }
            }
            // "output_audio_buffer.clear"
            _ => Err(ApiError::new(
                None,
                "output_audio_buffer.clear is only supported for WebRTC and SIP connections.",
                None,
            )),
        }
    }

    fn active_response_error(&self, response: &Value) -> ApiError {
        match self.dialect {
            Dialect::Ga => ApiError::new(
                Some("conversation_already_has_active_response"),
                format!(
                    "Conversation already has an active response in progress: {}. Wait until the response is finished before creating a new one.",
                    response["id"].as_str().unwrap_or_default()
                ),
                None,
            ),
            // The 2025 beta answered with no code and the short text.
            Dialect::Beta => ApiError::new(None, "Conversation already has an active response", None),
        }
    }

    fn session_update(&mut self, session: Option<&Value>, out: &mut Outcome) -> Checked<()> {
        let session = session.ok_or_else(|| ApiError::missing("session"))?;
        schema::check_session(self.dialect, &self.model, session)?;
        let new_voice = match self.dialect {
            Dialect::Ga => session.pointer("/audio/output/voice"),
            Dialect::Beta => session.get("voice"),
        };
        if let Some(voice) = new_voice
            && self.produced_audio
            && *voice != self.settings.voice
        {
            let param = match self.dialect {
                Dialect::Ga => "session.audio.output.voice",
                Dialect::Beta => "session.voice",
            };
            return Err(ApiError::new(
                Some("cannot_update_voice"),
                "Cannot update a conversation's voice if assistant audio is present.",
                Some(param),
            ));
        }
        let previous_input = self.settings.input;
        schema::merge_session(self.dialect, &mut self.session, session);
        if let Some(model) = self.session.get("model").and_then(Value::as_str) {
            self.model = model.to_owned();
        }
        self.settings = read_settings(self.dialect, &self.session);
        self.rebuild_vad(Some(previous_input));
        out.push(json!({"type": "session.updated", "session": self.session}));
        out.notes.push(Note::SessionUpdated(self.session.clone()));
        Ok(())
    }

    /// Keeps the VAD in step with the session's turn detection and format.
    fn rebuild_vad(&mut self, previous_input: Option<AudioFormat>) {
        let Some(turn) = self.settings.turn else {
            self.vad = None;
            self.speech_item = None;
            return;
        };
        match self.vad.as_mut() {
            Some(vad) if previous_input == Some(self.settings.input) => vad.set_settings(turn.vad),
            _ => {
                self.vad_base_ms = self.received_ms as u64;
                self.vad = Some(EnergyVad::new(self.settings.input.rate(), turn.vad));
            }
        }
    }

    fn append(&mut self, audio: Option<&Value>, out: &mut Outcome) -> Checked<()> {
        let text = schema::string(audio.ok_or_else(|| ApiError::missing("audio"))?, "audio")?;
        let mut bytes = audio::base64_decode(text).map_err(|_| {
            ApiError::new(Some("invalid_value"), "Invalid 'audio'. Expected base64-encoded audio bytes.", Some("audio"))
        })?;
        let samples = match self.settings.input {
            AudioFormat::Pcm16 => {
                if let Some(byte) = self.odd_byte.take() {
                    bytes.insert(0, byte);
                }
                if bytes.len() % 2 == 1 {
                    self.odd_byte = bytes.pop();
                }
                audio::pcm16_from_bytes(&bytes)
            }
            AudioFormat::Ulaw => audio::ulaw_decode_all(&bytes),
            AudioFormat::Alaw => audio::alaw_decode_all(&bytes),
        };
        let ms = samples.len() as f64 * 1000.0 / f64::from(self.settings.input.rate());
        self.received_ms += ms;
        self.buffer_ms += ms;
        let events = self.vad.as_mut().map(|vad| vad.push(&samples)).unwrap_or_default();
        for event in events {
            self.handle_vad(event, out);
        }
        Ok(())
    }

    fn handle_vad(&mut self, event: VadEvent, out: &mut Outcome) {
        let Some(turn) = self.settings.turn else {
            return;
        };
        match event {
            VadEvent::SpeechStarted { audio_start_ms } => {
                let item_id = ids::openai("item");
                out.push(json!({
                    "type": "input_audio_buffer.speech_started",
                    "audio_start_ms": self.vad_base_ms + audio_start_ms,
                    "item_id": item_id,
                }));
                self.speech_item = Some(item_id);
                if turn.interrupt_response && self.stream.is_some() {
                    self.finish_stream("cancelled", Some("turn_detected"), out);
                }
            }
            VadEvent::SpeechStopped { audio_end_ms } => {
                let item_id = self.speech_item.take().unwrap_or_else(|| ids::openai("item"));
                out.push(json!({
                    "type": "input_audio_buffer.speech_stopped",
                    "audio_end_ms": self.vad_base_ms + audio_end_ms,
                    "item_id": item_id,
                }));
                self.commit_buffer(item_id, out);
                if turn.create_response && self.stream.is_none() {
                    self.start_response(None, out);
                } else {
                    self.flush_transcription(out);
                }
            }
        }
    }

    fn commit(&mut self, out: &mut Outcome) -> Checked<()> {
        if self.buffer_ms < 100.0 {
            return Err(ApiError::new(
                Some("input_audio_buffer_commit_empty"),
                format!(
                    "Error committing input audio buffer: buffer too small. Expected at least 100ms of audio, but buffer only has {:.2}ms of audio.",
                    self.buffer_ms
                ),
                None,
            ));
        }
        if let Some(vad) = self.vad.as_mut() {
            vad.reset_turn();
        }
        let item_id = self.speech_item.take().unwrap_or_else(|| ids::openai("item"));
        self.commit_buffer(item_id, out);
        // A manual commit transcribes but never creates a response.
        self.flush_transcription(out);
        Ok(())
    }

    fn last_item_id(&self) -> Value {
        self.items.last().map_or(Value::Null, |item| json!(item.id))
    }

    fn item_json(&self, mut item: Value) -> Value {
        if self.dialect == Dialect::Beta
            && let Some(map) = item.as_object_mut()
        {
            map.insert("object".into(), json!("realtime.item"));
        }
        item
    }

    /// Announces an item added to the conversation (`done`: also send the GA
    /// `conversation.item.done`).
    fn announce_item(&self, previous: &Value, item: &Value, done: bool, out: &mut Outcome) {
        match self.dialect {
            Dialect::Ga => {
                out.push(json!({"type": "conversation.item.added", "previous_item_id": previous, "item": item}));
                if done {
                    out.push(json!({"type": "conversation.item.done", "previous_item_id": previous, "item": item}));
                }
            }
            Dialect::Beta => {
                out.push(json!({"type": "conversation.item.created", "previous_item_id": previous, "item": item}));
            }
        }
    }

    fn commit_buffer(&mut self, item_id: String, out: &mut Outcome) {
        let previous = self.last_item_id();
        out.push(json!({
            "type": "input_audio_buffer.committed",
            "previous_item_id": previous,
            "item_id": item_id,
        }));
        let item = self.item_json(json!({
            "id": item_id,
            "type": "message",
            "status": "completed",
            "role": "user",
            "content": [{"type": "input_audio", "transcript": null}],
        }));
        self.announce_item(&previous, &item, true, out);
        self.items.push(Item { id: item_id.clone(), kind: ItemKind::User, value: item });
        self.buffer_ms = 0.0;
        if self.settings.transcription {
            self.pending_transcription = Some(item_id);
        }
    }

    fn flush_transcription(&mut self, out: &mut Outcome) {
        let Some(item_id) = self.pending_transcription.take() else {
            return;
        };
        let transcript = self.config.user_transcript.clone();
        let words = transcript_deltas(&transcript);
        let half = words.len().div_ceil(2);
        for part in [words[..half].concat(), words[half..].concat()] {
            if part.is_empty() {
                continue;
            }
            let mut delta = json!({
                "type": "conversation.item.input_audio_transcription.delta",
                "item_id": item_id,
                "content_index": 0,
                "delta": part,
            });
            if self.dialect == Dialect::Ga {
                delta["obfuscation"] = json!(obfuscation(&part));
            }
            out.push(delta);
        }
        let mut completed = json!({
            "type": "conversation.item.input_audio_transcription.completed",
            "item_id": item_id,
            "content_index": 0,
            "transcript": transcript,
        });
        if self.dialect == Dialect::Ga {
            let words = words.len() as u64;
            completed["usage"] = json!({
                "type": "tokens",
                "total_tokens": words * 3,
                "input_tokens": words * 2,
                "input_token_details": {"text_tokens": 0, "audio_tokens": words * 2},
                "output_tokens": words,
            });
        }
        out.push(completed);
        if let Some(item) = self.items.iter_mut().find(|item| item.id == item_id) {
            item.value["content"][0]["transcript"] = json!(transcript);
        }
    }

    fn item_create(&mut self, previous: Option<&Value>, item: Option<&Value>, out: &mut Outcome) -> Checked<()> {
        let item = item.ok_or_else(|| ApiError::missing("item"))?;
        schema::check_item(self.dialect, item)?;
        if let Some(previous) = previous.filter(|p| !p.is_null()) {
            schema::string(previous, "previous_item_id")?;
        }
        let kind = item["type"].as_str().unwrap_or_default();
        let id = item.get("id").and_then(Value::as_str).map_or_else(|| ids::openai("item"), str::to_owned);
        let previous = previous.filter(|p| !p.is_null()).cloned().unwrap_or_else(|| self.last_item_id());
        let (value, item_kind) = match kind {
            "function_call_output" => {
                let call_id = item["call_id"].as_str().unwrap_or_default();
                let known =
                    self.items.iter().any(|i| matches!(&i.kind, ItemKind::FunctionCall { call_id: c } if c == call_id));
                if !known {
                    return Err(ApiError::new(
                        Some("invalid_tool_call_id"),
                        format!("Tool call ID '{call_id}' not found in conversation."),
                        None,
                    ));
                }
                let mut value = json!({"id": id, "type": kind, "call_id": call_id, "output": item["output"]});
                if self.dialect == Dialect::Ga {
                    value["status"] = json!("completed");
                }
                (value, ItemKind::FunctionCallOutput)
            }
            "function_call" => (
                json!({
                    "id": id,
                    "type": kind,
                    "status": "completed",
                    "name": item["name"],
                    "call_id": item["call_id"],
                    "arguments": item.get("arguments").cloned().unwrap_or(json!("")),
                }),
                ItemKind::FunctionCall { call_id: item["call_id"].as_str().unwrap_or_default().to_owned() },
            ),
            _ => {
                let role = item["role"].as_str().unwrap_or_default();
                let kind = match role {
                    "user" => ItemKind::User,
                    "assistant" => ItemKind::Assistant { audio_ms: 0, has_audio: false },
                    _ => ItemKind::Other,
                };
                (
                    json!({"id": id, "type": "message", "status": "completed", "role": role, "content": item["content"]}),
                    kind,
                )
            }
        };
        let value = self.item_json(value);
        self.announce_item(&previous, &value, kind == "message", out);
        if kind == "function_call_output" {
            let call_id = value["call_id"].as_str().unwrap_or_default().to_owned();
            let output = value["output"].as_str().unwrap_or_default().to_owned();
            self.pending_tool_outputs.push(output.clone());
            out.notes.push(Note::ToolOutput { call_id, output });
        }
        self.items.push(Item { id, kind: item_kind, value });
        Ok(())
    }

    fn truncate(&mut self, event: &Value, out: &mut Outcome) -> Checked<()> {
        let item_id = schema::string(event.get("item_id").ok_or_else(|| ApiError::missing("item_id"))?, "item_id")?;
        let content_index = schema::integer(
            event.get("content_index").ok_or_else(|| ApiError::missing("content_index"))?,
            "content_index",
            0,
            i64::MAX,
        )?;
        let audio_end_ms = schema::integer(
            event.get("audio_end_ms").ok_or_else(|| ApiError::missing("audio_end_ms"))?,
            "audio_end_ms",
            0,
            i64::MAX,
        )? as u64;
        let streamed = self
            .stream
            .as_ref()
            .filter(|s| s.item_id == item_id)
            .map(|s| audio::ms_for_samples(s.format.rate(), s.samples_sent));
        let Some(item) = self.items.iter_mut().find(|item| item.id == item_id) else {
            return Err(ApiError::new(
                Some("item_truncate_invalid_item_id"),
                format!("Error truncating item: the item with id '{item_id}' does not exist."),
                Some("item_id"),
            ));
        };
        let ItemKind::Assistant { audio_ms, has_audio: true } = &mut item.kind else {
            return Err(ApiError::new(None, "Only model output audio messages can be truncated", None));
        };
        if content_index != 0 {
            return Err(ApiError::new(
                Some("invalid_value"),
                format!("Invalid 'content_index': item '{item_id}' has no content part {content_index}."),
                Some("content_index"),
            ));
        }
        let length = streamed.unwrap_or(*audio_ms);
        if audio_end_ms > length {
            return Err(ApiError::new(
                Some("invalid_value"),
                format!("Audio content of {length}ms is already shorter than {audio_end_ms}ms"),
                Some("audio_end_ms"),
            ));
        }
        *audio_ms = audio_end_ms;
        out.push(json!({
            "type": "conversation.item.truncated",
            "item_id": item_id,
            "content_index": content_index,
            "audio_end_ms": audio_end_ms,
        }));
        out.notes.push(Note::Truncated { item_id: item_id.to_owned(), audio_end_ms });
        Ok(())
    }

    fn item_delete_or_retrieve(&mut self, delete: bool, item_id: &str, out: &mut Outcome) -> Checked<()> {
        let Some(index) = self.items.iter().position(|item| item.id == item_id) else {
            let (code, verb) = if delete {
                ("item_delete_invalid_item_id", "deleting")
            } else {
                ("item_retrieve_invalid_item_id", "retrieving")
            };
            return Err(ApiError::new(
                Some(code),
                format!("Error {verb} item: the item with id '{item_id}' does not exist."),
                Some("item_id"),
            ));
        };
        if delete {
            self.items.remove(index);
            out.push(json!({"type": "conversation.item.deleted", "item_id": item_id}));
        } else {
            out.push(json!({"type": "conversation.item.retrieved", "item": self.items[index].value}));
        }
        Ok(())
    }

    fn response_object(&self, id: &str, text_only: bool, voice: &Value) -> Value {
        match self.dialect {
            Dialect::Ga => json!({
                "object": "realtime.response",
                "id": id,
                "status": "in_progress",
                "status_details": null,
                "output": [],
                "conversation_id": self.conversation_id,
                "output_modalities": if text_only { json!(["text"]) } else { json!(["audio"]) },
                "max_output_tokens": "inf",
                "audio": {"output": {"format": self.session["audio"]["output"]["format"], "voice": voice}},
                "usage": null,
                "metadata": null,
            }),
            Dialect::Beta => json!({
                "object": "realtime.response",
                "id": id,
                "status": "in_progress",
                "status_details": null,
                "output": [],
                "conversation_id": self.conversation_id,
                "modalities": if text_only { json!(["text"]) } else { json!(["audio", "text"]) },
                "voice": voice,
                "output_audio_format": self.session["output_audio_format"],
                "temperature": self.session["temperature"],
                "max_output_tokens": "inf",
                "usage": null,
                "metadata": null,
            }),
        }
    }

    fn rate_limits(&self) -> Value {
        json!({
            "type": "rate_limits.updated",
            "rate_limits": [
                {"name": "requests", "limit": 20000, "remaining": 19999, "reset_seconds": 0.003},
                {"name": "tokens", "limit": 15000000, "remaining": 14994457, "reset_seconds": 0.022},
            ],
        })
    }

    fn usage(&self, text_tokens: u64, audio_ms: u64) -> Value {
        let audio_tokens = audio_ms / 20;
        let output = text_tokens + audio_tokens;
        let mut input_details = json!({"text_tokens": 120, "audio_tokens": 40, "cached_tokens": 64,
            "cached_tokens_details": {"text_tokens": 64, "audio_tokens": 0}});
        if self.dialect == Dialect::Ga {
            input_details["image_tokens"] = json!(0);
            input_details["cached_tokens_details"]["image_tokens"] = json!(0);
        }
        json!({
            "total_tokens": 160 + output,
            "input_tokens": 160,
            "output_tokens": output,
            "input_token_details": input_details,
            "output_token_details": {"text_tokens": text_tokens, "audio_tokens": audio_tokens},
        })
    }

    /// Starts a response: a scripted function call when the caller just
    /// spoke and the session has the tool, else a spoken reply.
    fn start_response(&mut self, params: Option<&Value>, out: &mut Outcome) {
        let response_id = ids::openai("resp");
        let text_only = match (self.dialect, params) {
            (Dialect::Ga, Some(p)) if p.get("output_modalities").is_some() => p["output_modalities"] == json!(["text"]),
            (Dialect::Beta, Some(p)) if p.get("modalities").is_some() => p["modalities"] == json!(["text"]),
            _ => self.settings.text_only,
        };
        let voice = match (self.dialect, params) {
            (Dialect::Ga, Some(p)) => p.pointer("/audio/output/voice").cloned(),
            (Dialect::Beta, Some(p)) => p.get("voice").cloned(),
            _ => None,
        }
        .unwrap_or_else(|| self.settings.voice.clone());
        let response = self.response_object(&response_id, text_only, &voice);
        out.push(json!({"type": "response.created", "response": response}));
        self.flush_transcription(out);
        if self.dialect == Dialect::Beta {
            out.push(self.rate_limits());
        }

        let last_is_user = matches!(self.items.last().map(|item| &item.kind), Some(ItemKind::User));
        let script = self.config.tool_call.iter().chain(&self.config.tool_calls).find(|script| {
            let made = self.tool_calls_by_name.get(&script.name).copied().unwrap_or(0);
            self.settings.tools.contains(&script.name) && script.max_calls.is_none_or(|max| made < max)
        });
        if let Some(script) = script
            && last_is_user
        {
            let (name, arguments) = (script.name.clone(), script.arguments.to_string());
            *self.tool_calls_by_name.entry(name.clone()).or_default() += 1;
            self.function_call(response, &name, &arguments, out);
            return;
        }

        let reply = if self.pending_tool_outputs.is_empty() {
            let reply =
                self.config.replies.get(self.replies_used).cloned().unwrap_or_else(|| self.config.reply.clone());
            self.replies_used += 1;
            reply
        } else {
            let output = std::mem::take(&mut self.pending_tool_outputs).join("\n");
            MockReply {
                transcript: fill_template(&self.config.tool_reply_template, &output),
                audio: self.config.reply.audio.clone(),
            }
        };
        let item_id = ids::openai("item");
        let previous = self.last_item_id();
        let item = self.item_json(json!({
            "id": item_id, "type": "message", "status": "in_progress", "role": "assistant", "content": [],
        }));
        out.push(
            json!({"type": "response.output_item.added", "response_id": response_id, "output_index": 0, "item": item}),
        );
        self.announce_item(&previous, &item, false, out);
        let part =
            if text_only { json!({"type": "text", "text": ""}) } else { json!({"type": "audio", "transcript": ""}) };
        out.push(json!({
            "type": "response.content_part.added",
            "response_id": response_id, "item_id": item_id, "output_index": 0, "content_index": 0,
            "part": part,
        }));
        self.items.push(Item {
            id: item_id.clone(),
            kind: ItemKind::Assistant { audio_ms: 0, has_audio: !text_only },
            value: item,
        });

        let format = self.settings.output;
        let chunks = if text_only {
            Vec::new()
        } else {
            let samples = match format {
                AudioFormat::Pcm16 => reply.audio.clone(),
                _ => audio::decimate(&reply.audio, (RATE_24K / RATE_8K) as usize),
            };
            let chunk_len = audio::samples_for_ms(format.rate(), self.config.chunk_ms.max(10));
            samples.chunks(chunk_len.max(1)).map(<[i16]>::to_vec).collect()
        };
        self.stream = Some(Stream {
            response,
            item_id,
            previous_item_id: previous,
            format,
            text_only,
            chunks,
            next_chunk: 0,
            words: transcript_deltas(&reply.transcript),
            next_word: 0,
            transcript_sent: String::new(),
            samples_sent: 0,
        });
        if text_only {
            // Text goes out at once; only audio is paced.
            self.next_chunk_into(out);
        }
    }

    fn function_call(&mut self, mut response: Value, name: &str, arguments: &str, out: &mut Outcome) {
        let response_id = response["id"].as_str().unwrap_or_default().to_owned();
        let item_id = ids::openai("item");
        let call_id = ids::openai_call();
        let previous = self.last_item_id();
        let mut item = self.item_json(json!({
            "id": item_id, "type": "function_call", "status": "in_progress",
            "name": name, "call_id": call_id, "arguments": "",
        }));
        out.push(
            json!({"type": "response.output_item.added", "response_id": response_id, "output_index": 0, "item": item}),
        );
        self.announce_item(&previous, &item, false, out);
        let split = arguments.char_indices().nth(arguments.chars().count() / 2).map_or(arguments.len(), |(i, _)| i);
        for delta in [&arguments[..split], &arguments[split..]] {
            out.push(json!({
                "type": "response.function_call_arguments.delta",
                "response_id": response_id, "item_id": item_id, "output_index": 0, "call_id": call_id,
                "delta": delta,
            }));
        }
        let mut done = json!({
            "type": "response.function_call_arguments.done",
            "response_id": response_id, "item_id": item_id, "output_index": 0, "call_id": call_id,
            "arguments": arguments,
        });
        if self.dialect == Dialect::Ga {
            done["name"] = json!(name);
        }
        out.push(done);
        item["status"] = json!("completed");
        item["arguments"] = json!(arguments);
        out.push(
            json!({"type": "response.output_item.done", "response_id": response_id, "output_index": 0, "item": item}),
        );
        if self.dialect == Dialect::Ga {
            out.push(json!({"type": "conversation.item.done", "previous_item_id": previous, "item": item}));
        }
        response["status"] = json!("completed");
        response["output"] = json!([item]);
        response["usage"] = self.usage(20, 0);
        out.push(json!({"type": "response.done", "response": response}));
        if self.dialect == Dialect::Ga {
            out.push(self.rate_limits());
        }
        self.items.push(Item {
            id: item_id.clone(),
            kind: ItemKind::FunctionCall { call_id: call_id.clone() },
            value: item,
        });
        out.notes.push(Note::ResponseDone(ResponseSummary {
            response_id,
            item_id,
            status: "completed".into(),
            audio_ms: 0,
            transcript: String::new(),
            function_call: Some((name.to_owned(), call_id)),
        }));
    }

    /// The next chunk of the streaming response (and its end after the last
    /// chunk). Nothing when no response is streaming.
    pub(crate) fn next_chunk(&mut self) -> Outcome {
        let mut out = Outcome::default();
        self.next_chunk_into(&mut out);
        out
    }

    fn next_chunk_into(&mut self, out: &mut Outcome) {
        let dialect = self.dialect;
        let Some(stream) = self.stream.as_mut() else {
            return;
        };
        let response_id = stream.response["id"].clone();
        let total_chunks = stream.chunks.len();
        let text_only = stream.text_only;
        let (transcript_type, audio_type) = match (dialect, text_only) {
            (Dialect::Ga, false) => ("response.output_audio_transcript.delta", "response.output_audio.delta"),
            (Dialect::Beta, false) => ("response.audio_transcript.delta", "response.audio.delta"),
            (Dialect::Ga, true) => ("response.output_text.delta", ""),
            (Dialect::Beta, true) => ("response.text.delta", ""),
        };
        let last = stream.next_chunk + 1 >= total_chunks;
        while stream.next_word < stream.words.len()
            && (last || word_chunk(stream.next_word, stream.words.len(), total_chunks) <= stream.next_chunk)
        {
            let word = stream.words[stream.next_word].clone();
            stream.next_word += 1;
            stream.transcript_sent.push_str(&word);
            let mut delta = json!({
                "type": transcript_type,
                "response_id": response_id, "item_id": stream.item_id, "output_index": 0, "content_index": 0,
                "delta": word,
            });
            if dialect == Dialect::Ga && !text_only {
                delta["obfuscation"] = json!(obfuscation(&word));
            }
            out.push(delta);
        }
        if let Some(chunk) = stream.chunks.get(stream.next_chunk) {
            out.push(json!({
                "type": audio_type,
                "response_id": response_id, "item_id": stream.item_id, "output_index": 0, "content_index": 0,
                "delta": audio::base64_encode(&stream.format.encode(chunk)),
            }));
            stream.samples_sent += chunk.len();
            stream.next_chunk += 1;
            self.produced_audio = true;
        }
        let sent_ms = audio::ms_for_samples(stream.format.rate(), stream.samples_sent);
        let item_id = stream.item_id.clone();
        let finished = stream.next_chunk >= total_chunks;
        if let Some(Item { kind: ItemKind::Assistant { audio_ms, .. }, .. }) =
            self.items.iter_mut().find(|item| item.id == item_id)
        {
            *audio_ms = sent_ms;
        }
        if finished {
            self.finish_stream("completed", None, out);
        }
    }

    /// Ends the streaming response: `completed`, or `cancelled` with a reason.
    fn finish_stream(&mut self, status: &str, reason: Option<&str>, out: &mut Outcome) {
        let Some(stream) = self.stream.take() else {
            return;
        };
        let dialect = self.dialect;
        let text_only = stream.text_only;
        let response_id = stream.response["id"].clone();
        let ids = json!({"response_id": response_id, "item_id": stream.item_id, "output_index": 0, "content_index": 0});
        let with = |kind: &str, extra: Value| {
            let mut event = ids.clone();
            event["type"] = json!(kind);
            if let (Some(event), Some(extra)) = (event.as_object_mut(), extra.as_object()) {
                event.extend(extra.clone());
            }
            event
        };
        let transcript = stream.transcript_sent.clone();
        let (part, content) = if text_only {
            let done_type = if dialect == Dialect::Ga { "response.output_text.done" } else { "response.text.done" };
            out.push(with(done_type, json!({"text": transcript})));
            let content_type = if dialect == Dialect::Ga { "output_text" } else { "text" };
            (json!({"type": "text", "text": transcript}), json!({"type": content_type, "text": transcript}))
        } else {
            let (audio_done, transcript_done, content_type) = match dialect {
                Dialect::Ga => ("response.output_audio.done", "response.output_audio_transcript.done", "output_audio"),
                Dialect::Beta => ("response.audio.done", "response.audio_transcript.done", "audio"),
            };
            out.push(with(audio_done, json!({})));
            out.push(with(transcript_done, json!({"transcript": transcript})));
            (
                json!({"type": "audio", "transcript": transcript}),
                json!({"type": content_type, "transcript": transcript}),
            )
        };
        out.push(with("response.content_part.done", json!({"part": part})));
        let item_status = if status == "completed" { "completed" } else { "incomplete" };
        let item = self.item_json(json!({
            "id": stream.item_id, "type": "message", "status": item_status, "role": "assistant", "content": [content],
        }));
        out.push(
            json!({"type": "response.output_item.done", "response_id": response_id, "output_index": 0, "item": item}),
        );
        if dialect == Dialect::Ga {
            out.push(
                json!({"type": "conversation.item.done", "previous_item_id": stream.previous_item_id, "item": item}),
            );
        }
        let audio_ms = audio::ms_for_samples(stream.format.rate(), stream.samples_sent);
        let mut response = stream.response.clone();
        response["status"] = json!(status);
        response["status_details"] = reason.map_or(Value::Null, |r| json!({"type": status, "reason": r}));
        response["output"] = json!([item]);
        response["usage"] = self.usage(stream.next_word as u64, audio_ms);
        out.push(json!({"type": "response.done", "response": response}));
        if dialect == Dialect::Ga && status == "completed" {
            out.push(self.rate_limits());
        }
        if let Some(entry) = self.items.iter_mut().find(|i| i.id == stream.item_id) {
            entry.value = item;
        }
        out.notes.push(Note::ResponseDone(ResponseSummary {
            response_id: response_id.as_str().unwrap_or_default().to_owned(),
            item_id: stream.item_id,
            status: status.to_owned(),
            audio_ms,
            transcript,
            function_call: None,
        }));
    }
}

/// The GA `obfuscation` field pads deltas to hide their length; any opaque
/// text of similar size will do.
fn obfuscation(delta: &str) -> String {
    let pad = 16usize.saturating_sub(delta.len()).max(4);
    ids::openai("x")[2..].chars().take(pad).collect()
}

fn read_settings(dialect: Dialect, session: &Value) -> Settings {
    let (input, output, turn, transcription, voice, text_only) = match dialect {
        Dialect::Ga => (
            AudioFormat::from_ga(&session["audio"]["input"]["format"]),
            AudioFormat::from_ga(&session["audio"]["output"]["format"]),
            &session["audio"]["input"]["turn_detection"],
            !session["audio"]["input"]["transcription"].is_null(),
            session["audio"]["output"]["voice"].clone(),
            session["output_modalities"] == json!(["text"]),
        ),
        Dialect::Beta => (
            AudioFormat::from_beta(&session["input_audio_format"]),
            AudioFormat::from_beta(&session["output_audio_format"]),
            &session["turn_detection"],
            !session["input_audio_transcription"].is_null(),
            session["voice"].clone(),
            session["modalities"] == json!(["text"]),
        ),
    };
    let tools = session["tools"]
        .as_array()
        .map(|tools| tools.iter().filter_map(|t| t["name"].as_str().map(str::to_owned)).collect())
        .unwrap_or_default();
    Settings { input, output, turn: read_turn_detection(turn), transcription, tools, voice, text_only }
}

/// Maps `turn_detection` onto the energy VAD: `threshold` 0..1 spans
/// -60..-10 dBFS (0.5 is -35 dBFS); `semantic_vad` waits longer the less
/// eager it is.
fn read_turn_detection(td: &Value) -> Option<TurnDetection> {
    let kind = td.get("type")?.as_str()?;
    let (threshold, prefix, silence) = if kind == "semantic_vad" {
        let silence = match td["eagerness"].as_str() {
            Some("low") => 1000,
            Some("high") => 250,
            _ => 500,
        };
        (0.5, 300, silence)
    } else {
        (
            td["threshold"].as_f64().unwrap_or(0.5),
            td["prefix_padding_ms"].as_u64().unwrap_or(300),
            td["silence_duration_ms"].as_u64().unwrap_or(200),
        )
    };
    Some(TurnDetection {
        vad: VadSettings {
            threshold_rms: audio::db_to_linear(-60.0 + 50.0 * threshold as f32),
            prefix_padding_ms: prefix as u32,
            silence_duration_ms: silence as u32,
            min_speech_ms: 30,
        },
        create_response: td["create_response"].as_bool().unwrap_or(true),
        interrupt_response: td["interrupt_response"].as_bool().unwrap_or(true),
    })
}
