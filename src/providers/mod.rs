//! Realtime speech-to-speech providers behind one channel pair.
//!
//! A provider session is a task that owns the provider's WebSocket. The call session
//! talks to it with [`ProviderCommand`]s and hears back [`ProviderEvent`]s; it never sees
//! the wire protocol. A provider says what it can do ([`Capabilities`]: the audio formats
//! it takes and gives, how long its barge-in confirmation takes); the call picks the
//! formats that suit its caller's leg ([`negotiate`]) and audio crosses in exactly those
//! formats, so a WebRTC leg decodes straight to the provider's rate and a phone leg's
//! μ-law passes through untouched where the provider speaks it.
//!
//! - [`openai`]: OpenAI Realtime, GA and beta dialects
//! - [`gemini`]: Gemini Live, with session resumption across connections
//! - [`echo`]: built in, no network: plays each caller utterance back (demos, diagnostics)

pub mod echo;
pub mod gemini;
pub mod openai;

use std::sync::Arc;
use std::time::{Duration, Instant};

use media::SampleRate;
use tokio::sync::mpsc;

use crate::domain::{Provider, RealtimeDialect};
use crate::store::AiModel;

/// An audio encoding on the provider's wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AudioFormat {
    /// Linear PCM, 16-bit little-endian, mono, at the given rate.
    Pcm16(SampleRate),
    /// G.711 μ-law, 8 kHz mono.
    Mulaw,
    /// G.711 A-law, 8 kHz mono.
    Alaw,
}

impl AudioFormat {
    /// The sample rate.
    pub fn rate(self) -> SampleRate {
        match self {
            Self::Pcm16(rate) => rate,
            Self::Mulaw | Self::Alaw => SampleRate::Hz8000,
        }
    }

    /// Bytes of one 20 ms frame.
    pub fn frame_bytes(self) -> usize {
        match self {
            Self::Pcm16(rate) => rate.samples_per_frame() * 2,
            Self::Mulaw | Self::Alaw => SampleRate::Hz8000.samples_per_frame(),
        }
    }

    /// Whether this is one of the G.711 codes (one byte per sample).
    pub fn is_g711(self) -> bool {
        matches!(self, Self::Mulaw | Self::Alaw)
    }
}

/// What a provider can do.
#[derive(Debug, Clone, Copy)]
pub struct Capabilities {
    /// Formats it takes, most preferred first.
    pub input: &'static [AudioFormat],
    /// Formats it gives, most preferred first.
    pub output: &'static [AudioFormat],
    /// How long after the caller starts talking over the agent the provider's own
    /// confirmation (speech started, interrupted, or first transcribed words) may take.
    pub barge_in_confirm: Duration,
    /// Whether the provider can cut an agent item at the point the caller heard
    /// (OpenAI `conversation.item.truncate`).
    pub truncates: bool,
    /// Whether a session can stop answering and only transcribe (OpenAI: server VAD with
    /// `create_response: false`). Gemini Live has no such mode.
    pub transcribes_only: bool,
}

/// What a provider can do, known before connecting so the caller's codec chain can be set
/// up in parallel with the provider session.
pub fn capabilities(provider: Provider) -> Capabilities {
    match provider {
        Provider::OpenAi => openai::CAPABILITIES,
        Provider::Google => gemini::CAPABILITIES,
        Provider::Echo => echo::CAPABILITIES,
    }
}

/// The formats a call uses with its provider, given the format on the caller's wire:
/// that format itself where the provider speaks it (μ-law passes straight through),
/// else the provider's preferred linear PCM, which the caller's leg converts to and from.
pub fn negotiate(caller_wire: Option<AudioFormat>, caps: &Capabilities) -> (AudioFormat, AudioFormat) {
    let pick = |offered: &[AudioFormat]| {
        caller_wire
            .filter(|wire| offered.contains(wire))
            .or_else(|| offered.iter().copied().find(|f| matches!(f, AudioFormat::Pcm16(_))))
            .unwrap_or(offered[0])
    };
    (pick(caps.input), pick(caps.output))
}

/// The most a 20 ms input frame can take in any supported format (PCM16 at 24 kHz).
pub const MAX_INPUT_FRAME_BYTES: usize = 960;

/// One 20 ms frame of caller audio in the provider's input format, held inline so a
/// frame crosses to the provider task without an allocation.
#[derive(Clone, Copy)]
pub struct InputFrame {
    bytes: [u8; MAX_INPUT_FRAME_BYTES],
    len: u16,
    /// The gateway's VAD heard speech in it (for rollover timing; measured once, by the
    /// call session).
    pub loud: bool,
    /// When its packet reached the gateway (for the added-latency measurement).
    pub arrival: Instant,
}

impl InputFrame {
    /// A frame of `bytes` (at most [`MAX_INPUT_FRAME_BYTES`]; longer input is cut).
    pub fn new(bytes: &[u8], loud: bool, arrival: Instant) -> Self {
        let len = bytes.len().min(MAX_INPUT_FRAME_BYTES);
        let mut frame = Self { bytes: [0; MAX_INPUT_FRAME_BYTES], len: len as u16, loud, arrival };
        frame.bytes[..len].copy_from_slice(&bytes[..len]);
        frame
    }

    /// The frame's bytes.
    pub fn bytes(&self) -> &[u8] {
        &self.bytes[..usize::from(self.len)]
    }
}

impl std::fmt::Debug for InputFrame {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InputFrame").field("len", &self.len).field("loud", &self.loud).finish_non_exhaustive()
    }
}

/// Agent audio in the provider's output format.
#[derive(Debug, Clone, PartialEq)]
pub enum AgentAudio {
    /// Linear PCM samples at the output rate.
    Pcm16(Vec<i16>),
    /// G.711 codes (μ-law or A-law, as negotiated).
    G711(Vec<u8>),
}

impl AgentAudio {
    /// Samples held.
    pub fn len(&self) -> usize {
        match self {
            Self::Pcm16(pcm) => pcm.len(),
            Self::G711(codes) => codes.len(),
        }
    }

    /// Whether it holds no samples.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// What the agent should be like on this call (from the chatbot's call settings).
#[derive(Debug, Clone)]
pub struct SessionSpec {
    /// Provider model id, e.g. `gpt-realtime`.
    pub model: String,
    pub dialect: RealtimeDialect,
    pub instructions: String,
    pub voice: String,
    pub speed: f64,
    /// 0.0 (sensitive) – 1.0 (less sensitive).
    pub vad_threshold: f64,
    pub allow_interruption: bool,
    pub transcription: bool,
    pub noise_reduction: bool,
    /// Whether the model answers the caller. False: it only transcribes what it hears
    /// (a human agent is on the call; see [`Capabilities::transcribes_only`]).
    pub respond: bool,
    pub tools: Vec<ToolSpec>,
    /// The caller audio format the provider is sent.
    pub input: AudioFormat,
    /// The agent audio format the provider is asked for.
    pub output: AudioFormat,
}

/// A function the agent may call.
#[derive(Debug, Clone)]
pub struct ToolSpec {
    pub name: String,
    pub description: String,
    /// JSON Schema of the arguments (lower-case types; providers translate as needed).
    pub parameters: serde_json::Value,
}

/// What the call session asks of the provider.
// Audio frames travel inline (about 1 KiB) so that a frame costs no allocation; the other
// commands are rare, and the channel's slots are allocated in blocks and reused.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub enum ProviderCommand {
    /// One 20 ms frame of caller audio in the input format.
    Audio(InputFrame),
    /// Speak this text now (greeting, check-ins, goodbyes), as a new response.
    Say { text: String },
    /// Tell the model something the caller did that it cannot hear (a key press), as a
    /// short user message it may answer.
    UserText { text: String },
    /// The caller heard only `audio_end_ms` of an agent item: cut it there.
    Truncate { item_id: Arc<str>, audio_end_ms: u64 },
    /// Stop the response being generated (used when the provider does not do it itself).
    CancelResponse,
    /// The result of a tool call.
    ToolResult { call_id: String, name: String, output: String },
    /// Answer the caller (true), or only transcribe them (false: a human agent took the
    /// call). Providers without a transcription-only mode ignore it.
    Respond(bool),
    /// Close the session.
    Close,
}

/// What the provider tells the call session.
#[derive(Debug)]
pub enum ProviderEvent {
    /// Agent audio in the output format.
    Audio { item_id: Arc<str>, audio: AgentAudio, received: Instant },
    /// The agent item's audio is complete.
    AudioDone { item_id: Arc<str> },
    /// The provider heard the caller start speaking (its VAD).
    SpeechStarted,
    /// The provider heard the caller stop speaking.
    SpeechStopped,
    /// Caller transcript: the whole line so far, or the final line.
    UserTranscript { item_id: Arc<str>, text: String, is_final: bool },
    /// Agent transcript: the whole line so far, or the final line.
    AgentTranscript { item_id: Arc<str>, text: String, is_final: bool },
    /// The provider flushed its own output (Gemini `interrupted`): stop playing.
    Interrupted,
    /// A response finished (completed, cancelled, ...).
    ResponseDone { status: String },
    /// The agent calls a tool.
    ToolCall { call_id: String, name: String, arguments: String },
    /// Tool calls the provider no longer wants answered.
    ToolCallsCancelled { call_ids: Vec<String> },
    /// A non-fatal error the provider reported (the session goes on).
    Error { code: String, message: String },
    /// The session ended; `expected` when we closed it.
    Closed { reason: String, expected: bool },
}

/// A live provider session.
pub struct ProviderSession {
    pub commands: mpsc::Sender<ProviderCommand>,
    pub events: mpsc::Receiver<ProviderEvent>,
}

/// Why a provider session could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum ProviderError {
    /// No API key configured for the provider.
    #[error("no API key is configured for {0}")]
    NotConfigured(&'static str),
    /// Could not connect or the handshake failed; worth retrying.
    #[error("could not connect: {0}")]
    Connect(String),
    /// The provider refused the session configuration; retrying will not help.
    #[error("the provider refused the session: {0}")]
    Refused(String),
}

impl ProviderError {
    fn is_retryable(&self) -> bool {
        matches!(self, Self::Connect(_))
    }

    /// Its `kind` in `gateway_provider_errors_total`.
    pub fn metric_kind(&self) -> &'static str {
        match self {
            Self::Refused(_) | Self::NotConfigured(_) => "rejected",
            Self::Connect(_) => "connect",
        }
    }
}

/// Endpoints and keys of the providers (from the configuration).
#[derive(Debug, Clone)]
pub struct ProviderSettings {
    pub openai_url: url::Url,
    pub openai_key: Option<String>,
    pub gemini_url: url::Url,
    pub gemini_key: Option<String>,
    /// Attempts after the first one when connecting fails.
    pub retries: u32,
    /// First back-off delay; doubles per retry.
    pub backoff: Duration,
}

impl ProviderSettings {
    /// Whether calls on `model` can be served with the configured keys.
    pub fn is_available(&self, model: &AiModel) -> bool {
        match model.provider {
            Provider::OpenAi => self.openai_key.is_some(),
            Provider::Google => self.gemini_key.is_some(),
            Provider::Echo => true,
        }
    }

    /// Opens a session for `model`, retrying connection failures with exponential back-off.
    pub async fn connect(&self, model: &AiModel, spec: &SessionSpec) -> Result<ProviderSession, ProviderError> {
        let mut delay = self.backoff;
        let mut attempt = 0;
        loop {
            let result = match model.provider {
                Provider::OpenAi => {
                    let key = self.openai_key.as_deref().ok_or(ProviderError::NotConfigured("OpenAI"))?;
                    openai::connect(&self.openai_url, key, spec).await
                }
                Provider::Google => {
                    let key = self.gemini_key.as_deref().ok_or(ProviderError::NotConfigured("Gemini Live"))?;
                    gemini::connect(&self.gemini_url, key, model, spec).await
                }
                Provider::Echo => Ok(echo::start(spec)),
            };
            if let Err(err) = &result {
                crate::metrics::provider_error(model.provider.as_str(), err.metric_kind());
            }
            match result {
                Err(err) if err.is_retryable() && attempt < self.retries => {
                    attempt += 1;
                    tracing::warn!(error = %err, attempt, retry_in_ms = delay.as_millis() as u64, "provider connection failed; retrying");
                    tokio::time::sleep(delay).await;
                    delay *= 2;
                }
                other => return other,
            }
        }
    }
}
