//! Test support for the voice gateway: local stand-ins for every external
//! service the gateway talks to, speaking the real wire protocols.
//!
//! Map of the crate:
//! - [`mock_openai_realtime`]: OpenAI Realtime over WebSocket, GA and beta
//!   dialects; the pure per-connection protocol state lives in
//!   `realtime_session` and its request validation in `realtime_schema`.
//! - [`mock_gemini_live`]: Gemini Live `BidiGenerateContent`; the pure state
//!   is in `live_session`.
//! - [`mock_twilio_rest`] and [`mock_graph`]: the REST calls behind the
//!   "Test connection" buttons (Twilio account + number, WhatsApp number), and
//!   Twilio's call hang-up; [`mock_graph`] also takes WhatsApp call actions,
//!   checked by [`graph_calls`].
//! - [`twilio_sim`]: Twilio placing phone calls: the signed Voice webhook, the
//!   TwiML read as Twilio reads it, the Media Streams WebSocket paced in real
//!   time with playback, marks and clear; its pure parts are in
//!   `twilio_webhook` and `twilio_stream`.
//! - [`whatsapp_sim`]: Meta's side of WhatsApp calls — signed webhooks
//!   ([`whatsapp_webhook`]), the Graph mock, an ICE-lite WebRTC peer per call
//!   ([`meta_peer`]) and Meta's timers.
//! - [`script`]: what the speech mocks say and do (replies, tool calls,
//!   pacing, fault injection), shared by both.
//! - [`audio`] and [`energy_vad`]: test audio (tones, G.711, PCM16) and the
//!   energy VAD the speech mocks use to find turns in what clients send.
//! - [`fixtures`]: loads the shared wire samples and strips their `_` meta keys.
//! - [`recorder`]: the state every mock records, with `wait_for` so tests
//!   await a condition instead of sleeping.
//! - [`local_s3`]: a local S3-compatible server (moto) for the recordings storage.
//! - [`recording`]: decode a call recording and find its tones, channel by channel.
//!
//! Every mock binds `127.0.0.1`, records what clients sent, and stops when
//! dropped (or on `shutdown().await`).

pub mod alloc_count;
pub mod audio;
pub mod caller;
pub mod energy_vad;
pub mod fixtures;
pub mod graph_calls;
pub mod local_s3;
pub mod meta_peer;
pub mod mock_gemini_live;
pub mod mock_graph;
pub mod mock_openai_realtime;
pub mod mock_twilio_rest;
pub mod recorder;
pub mod recording;
pub mod script;
pub mod twilio_sim;
pub mod whatsapp_sim;
pub mod whatsapp_webhook;

mod ids;
mod live_session;
mod realtime_schema;
mod realtime_session;
mod server;
mod twilio_stream;
mod twilio_webhook;

#[cfg(test)]
mod fixture_replay_tests;
#[cfg(test)]
mod test_client;
#[cfg(test)]
mod twilio_sim_tests;
#[cfg(test)]
mod whatsapp_sim_tests;

pub use caller::{Caller, Heard, utterance};
pub use local_s3::LocalS3;
pub use mock_gemini_live::{GeminiLiveConfig, MockGeminiLive};
pub use mock_graph::{GraphConfig, GraphPhoneNumber, MockGraph};
pub use mock_openai_realtime::{MockOpenAiRealtime, OpenAiRealtimeConfig};
pub use mock_twilio_rest::{LiveCalls, MockTwilioRest, TwilioAccount, TwilioRestConfig};
pub use recorder::WaitTimeout;
pub use script::{HandshakeRejection, MockReply, Pacing, ScriptedToolCall};
pub use twilio_sim::{PhoneCall, Signing, TwilioSim, TwilioSimConfig};
pub use whatsapp_sim::{CallOutcome, PlaceCall, WhatsAppCall, WhatsAppSim, WhatsAppSimConfig};
pub use whatsapp_webhook::{CallParties, WebhookResponse, WebhookSender, WebhookTarget};
