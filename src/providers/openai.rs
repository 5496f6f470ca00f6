//! OpenAI Realtime over WebSocket, GA and beta dialects
//! (shared/protocols/realtime-protocols.md §1). Audio is PCM16 24 kHz both ways.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use futures::{SinkExt, StreamExt};
use media::SampleRate;
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use super::{ProviderCommand, ProviderError, ProviderEvent, ProviderSession, SessionSpec};
use crate::store::RealtimeDialect;

type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// How long the handshake (connect, session.created, session.updated) may take.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Largest frame accepted from the provider (audio deltas are far smaller).
const MAX_MESSAGE_BYTES: usize = 16 << 20;

/// Connects, configures the session and starts its I/O task.
pub async fn connect(base: &url::Url, key: &str, spec: &SessionSpec) -> Result<ProviderSession, ProviderError> {
    let mut url = base.clone();
    url.query_pairs_mut().append_pair("model", &spec.model);
    let mut request = url.as_str().into_client_request().map_err(|e| ProviderError::Connect(e.to_string()))?;
    let auth = HeaderValue::from_str(&format!("Bearer {key}"))
        .map_err(|_| ProviderError::Refused("the API key is not a valid header value".into()))?;
    request.headers_mut().insert("Authorization", auth);
    if spec.dialect == RealtimeDialect::Beta {
        request.headers_mut().insert("OpenAI-Beta", HeaderValue::from_static("realtime=v1"));
    }
    let config = tokio_tungstenite::tungstenite::protocol::WebSocketConfig::default()
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
        expect_event(&mut ws, "session.created").await?;
        let update = session_update(spec);
        ws.send(Message::text(update.to_string())).await.map_err(|e| ProviderError::Connect(e.to_string()))?;
        expect_event(&mut ws, "session.updated").await?;
        Ok::<_, ProviderError>(ws)
    };
    let ws = tokio::time::timeout(HANDSHAKE_TIMEOUT, handshake)
        .await
        .map_err(|_| ProviderError::Connect("timed out opening the Realtime session".into()))??;

    let (commands_tx, commands_rx) = mpsc::channel(256);
    let (events_tx, events_rx) = mpsc::channel(256);
    tokio::spawn(run(ws, commands_rx, events_tx));
    Ok(ProviderSession {
        commands: commands_tx,
        events: events_rx,
        input_rate: SampleRate::Hz24000,
        output_rate: SampleRate::Hz24000,
    })
}

/// Waits for an event of type `wanted`; an `error` event first means the session was refused.
async fn expect_event(ws: &mut Socket, wanted: &str) -> Result<(), ProviderError> {
    while let Some(message) = ws.next().await {
        let message = message.map_err(|e| ProviderError::Connect(e.to_string()))?;
        let Message::Text(text) = message else { continue };
        let event: Value =
            serde_json::from_str(&text).map_err(|e| ProviderError::Connect(format!("bad JSON from OpenAI: {e}")))?;
        match event["type"].as_str() {
            Some(t) if t == wanted => return Ok(()),
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
        "create_response": true,
        "interrupt_response": spec.allow_interruption,
    });
    let tools: Vec<Value> = spec
        .tools
        .iter()
        .map(|t| json!({"type": "function", "name": t.name, "description": t.description, "parameters": t.parameters}))
        .collect();
    let session = match spec.dialect {
        RealtimeDialect::Ga => {
            let mut input = json!({
                "format": {"type": "audio/pcm", "rate": 24000},
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
                    "output": {"format": {"type": "audio/pcm", "rate": 24000}, "voice": spec.voice, "speed": spec.speed},
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
                "input_audio_format": "pcm16",
                "output_audio_format": "pcm16",
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

async fn run(ws: Socket, mut commands: mpsc::Receiver<ProviderCommand>, events: mpsc::Sender<ProviderEvent>) {
    let (mut sink, mut stream) = ws.split();
    let mut state = ReadState::default();
    let mut closing = false;
    let mut frame = String::with_capacity(4096);
    let reason = loop {
        tokio::select! {
            command = commands.recv() => {
                let Some(command) = command else { break "the call ended".to_owned() };
                let arrival = match &command { ProviderCommand::Audio { arrival, .. } => Some(*arrival), _ => None };
                let message = match command {
                    ProviderCommand::Close => {
                        closing = true;
                        let _ = sink.send(Message::Close(None)).await;
                        break "closed by the gateway".to_owned();
                    }
                    ProviderCommand::Audio { pcm, .. } => {
                        frame.clear();
                        frame.push_str(r#"{"type":"input_audio_buffer.append","audio":""#);
                        STANDARD.encode_string(&pcm, &mut frame);
                        frame.push_str("\"}");
                        frame.clone()
                    }
                    other => {
                        let mut failed = None;
                        for event in client_events(other) {
                            if let Err(err) = sink.send(Message::text(event.to_string())).await {
                                failed = Some(err);
                                break;
                            }
                        }
                        match failed {
                            Some(err) => break format!("write failed: {err}"),
                            None => continue,
                        }
                    }
                };
                if let Err(err) = sink.send(Message::text(message)).await {
                    break format!("write failed: {err}");
                }
                if let Some(arrival) = arrival {
                    crate::metrics::inbound_latency(arrival.elapsed());
                }
            }
            message = stream.next() => {
                let message = match message {
                    Some(Ok(message)) => message,
                    Some(Err(err)) => break format!("read failed: {err}"),
                    None => break "the provider closed the connection".to_owned(),
                };
                let text = match message {
                    Message::Text(text) => text,
                    Message::Close(frame) => break format!("the provider closed the connection ({})", frame.map(|f| f.reason.to_string()).unwrap_or_default()),
                    _ => continue,
                };
                let received = Instant::now();
                let Ok(event) = serde_json::from_str::<Value>(&text) else {
                    tracing::warn!("ignoring a non-JSON frame from OpenAI");
                    continue;
                };
                for out in translate(&event, &mut state, received) {
                    if events.send(out).await.is_err() {
                        closing = true;
                        break;
                    }
                }
            }
        }
    };
    let _ = events.send(ProviderEvent::Closed { reason, expected: closing }).await;
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
        ProviderCommand::Audio { .. } | ProviderCommand::Close => unreachable!("handled by the caller"),
    }
}

/// Translates one server event (either dialect) into provider events.
fn translate(event: &Value, state: &mut ReadState, received: Instant) -> Vec<ProviderEvent> {
    let kind = event["type"].as_str().unwrap_or_default();
    let item_id = event["item_id"].as_str().unwrap_or_default();
    match kind {
        "response.output_audio.delta" | "response.audio.delta" => {
            let Some(delta) = event["delta"].as_str() else { return vec![] };
            state.audio.clear();
            if STANDARD.decode_vec(delta, &mut state.audio).is_err() {
                tracing::warn!("ignoring an audio delta that is not base64");
                return vec![];
            }
            let pcm = state.audio.chunks_exact(2).map(|b| i16::from_le_bytes([b[0], b[1]])).collect();
            vec![ProviderEvent::Audio { item_id: state.item(item_id), pcm, received }]
        }
        "response.output_audio.done" | "response.audio.done" => {
            vec![ProviderEvent::AudioDone { item_id: state.item(item_id) }]
        }
        "input_audio_buffer.speech_started" => vec![ProviderEvent::SpeechStarted],
        "input_audio_buffer.speech_stopped" => vec![ProviderEvent::SpeechStopped],
        "conversation.item.input_audio_transcription.delta" => {
            let line = state.user_lines.entry(item_id.to_owned()).or_default();
            line.push_str(event["delta"].as_str().unwrap_or_default());
            let text = line.clone();
            vec![ProviderEvent::UserTranscript { item_id: state.item(item_id), text, is_final: false }]
        }
        "conversation.item.input_audio_transcription.completed" => {
            state.user_lines.remove(item_id);
            let text = event["transcript"].as_str().unwrap_or_default().trim().to_owned();
            vec![ProviderEvent::UserTranscript { item_id: state.item(item_id), text, is_final: true }]
        }
        "conversation.item.input_audio_transcription.failed" => {
            state.user_lines.remove(item_id);
            vec![ProviderEvent::Error {
                code: "transcription_failed".into(),
                message: event["error"]["message"].as_str().unwrap_or("input transcription failed").to_owned(),
            }]
        }
        "response.output_audio_transcript.delta" | "response.audio_transcript.delta" => {
            let line = state.agent_lines.entry(item_id.to_owned()).or_default();
            line.push_str(event["delta"].as_str().unwrap_or_default());
            let text = line.clone();
            vec![ProviderEvent::AgentTranscript { item_id: state.item(item_id), text, is_final: false }]
        }
        "response.output_audio_transcript.done" | "response.audio_transcript.done" => {
            state.agent_lines.remove(item_id);
            let text = event["transcript"].as_str().unwrap_or_default().to_owned();
            vec![ProviderEvent::AgentTranscript { item_id: state.item(item_id), text, is_final: true }]
        }
        "response.output_item.added" => {
            let item = &event["item"];
            if item["type"] == "function_call"
                && let (Some(call_id), Some(name)) = (item["call_id"].as_str(), item["name"].as_str())
            {
                state.tool_names.insert(call_id.to_owned(), name.to_owned());
            }
            vec![]
        }
        "response.function_call_arguments.done" => {
            let call_id = event["call_id"].as_str().unwrap_or_default().to_owned();
            let name = event["name"]
                .as_str()
                .map(str::to_owned)
                .or_else(|| state.tool_names.get(&call_id).cloned())
                .unwrap_or_default();
            state.tool_names.remove(&call_id);
            let arguments = event["arguments"].as_str().unwrap_or("{}").to_owned();
            vec![ProviderEvent::ToolCall { call_id, name, arguments }]
        }
        "response.done" => {
            let status = event["response"]["status"].as_str().unwrap_or("completed").to_owned();
            // Forget the items of finished responses so the interning map stays small.
            if let Some(output) = event["response"]["output"].as_array() {
                for item in output {
                    if let Some(id) = item["id"].as_str() {
                        state.items.remove(id);
                        state.agent_lines.remove(id);
                    }
                }
            }
            vec![ProviderEvent::ResponseDone { status }]
        }
        "error" => {
            let error = &event["error"];
            let code = error["code"].as_str().or(error["type"].as_str()).unwrap_or("error").to_owned();
            let message = error["message"].as_str().unwrap_or_default().to_owned();
            tracing::warn!(code = %code, message = %message, "OpenAI reported an error");
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
            tools: vec![super::super::ToolSpec {
                name: "search_knowledge_base".into(),
                description: "Search".into(),
                parameters: json!({"type": "object", "properties": {"query": {"type": "string"}}, "required": ["query"]}),
            }],
        }
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
            let out = translate(&event, &mut state, Instant::now());
            let [ProviderEvent::Audio { item_id, pcm, .. }] = out.as_slice() else { panic!("{out:?}") };
            assert_eq!(&**item_id, "item_1");
            assert_eq!(pcm.len(), 6);
        }
    }

    #[test]
    fn beta_function_calls_get_their_name_from_the_output_item() {
        let mut state = ReadState::default();
        translate(
            &json!({"type": "response.output_item.added", "item": {"type": "function_call", "call_id": "call_1", "name": "search_knowledge_base"}}),
            &mut state,
            Instant::now(),
        );
        let out = translate(
            &json!({"type": "response.function_call_arguments.done", "call_id": "call_1", "arguments": "{\"query\":\"hours\"}"}),
            &mut state,
            Instant::now(),
        );
        let [ProviderEvent::ToolCall { name, arguments, .. }] = out.as_slice() else { panic!() };
        assert_eq!((name.as_str(), arguments.as_str()), ("search_knowledge_base", "{\"query\":\"hours\"}"));
    }

    #[test]
    fn transcript_deltas_accumulate_into_whole_lines() {
        let mut state = ReadState::default();
        for delta in ["Sure", "!", " I'd"] {
            translate(
                &json!({"type": "response.output_audio_transcript.delta", "item_id": "i", "delta": delta}),
                &mut state,
                Instant::now(),
            );
        }
        let out = translate(
            &json!({"type": "response.output_audio_transcript.delta", "item_id": "i", "delta": " be"}),
            &mut state,
            Instant::now(),
        );
        let [ProviderEvent::AgentTranscript { text, is_final: false, .. }] = out.as_slice() else { panic!() };
        assert_eq!(text, "Sure! I'd be");
    }
}
