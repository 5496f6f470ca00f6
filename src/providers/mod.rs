//! Realtime speech-to-speech providers behind one channel pair.
//!
//! A provider session is a task that owns the provider's WebSocket. The call session
//! talks to it with [`ProviderCommand`]s and hears back [`ProviderEvent`]s; it never sees
//! the wire protocol. Audio crosses as PCM16 at the provider's own rates
//! ([`ProviderSession::input_rate`] / [`ProviderSession::output_rate`]), so the media path
//! decodes straight to, and encodes straight from, those rates.
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

use crate::store::{AiModel, Provider, RealtimeDialect};

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
    pub tools: Vec<ToolSpec>,
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
#[derive(Debug)]
pub enum ProviderCommand {
    /// One frame of caller audio at the input rate, PCM16 little-endian; `arrival` is when
    /// its packet reached the gateway (for the added-latency measurement).
    Audio { pcm: Vec<u8>, arrival: Instant },
    /// Speak this text now (greeting, check-ins, goodbyes), as a new response.
    Say { text: String },
    /// The caller heard only `audio_end_ms` of an agent item: cut it there.
    Truncate { item_id: Arc<str>, audio_end_ms: u64 },
    /// Stop the response being generated (used when the provider does not do it itself).
    CancelResponse,
    /// The result of a tool call.
    ToolResult { call_id: String, name: String, output: String },
    /// Close the session.
    Close,
}

/// What the provider tells the call session.
#[derive(Debug)]
pub enum ProviderEvent {
    /// Agent audio at the output rate.
    Audio { item_id: Arc<str>, pcm: Vec<i16>, received: Instant },
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
    pub input_rate: SampleRate,
    pub output_rate: SampleRate,
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

    /// The (input, output) PCM rates of the model's provider, known before connecting so the
    /// caller's codec chain can be set up in parallel with the provider session.
    pub fn rates(&self, model: &AiModel) -> (SampleRate, SampleRate) {
        match model.provider {
            Provider::OpenAi | Provider::Echo => (SampleRate::Hz24000, SampleRate::Hz24000),
            Provider::Google => (SampleRate::Hz16000, SampleRate::Hz24000),
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
