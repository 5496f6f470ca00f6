//! The voice gateway: website, WhatsApp and phone callers talk to an AI support agent.
//!
//! Map of the crate (cut by domain; see docs/architecture.md):
//! - [`app`]: the application as a value — build (bind, migrate), run, shut down
//! - [`server`]: HTTP/1.1 connections with timeouts, a connection cap and a shutdown deadline
//! - [`config`]: command line and environment
//! - [`api`]: HTTP routers per audience, the one error type, the JSON extractor
//! - [`auth`]: bearer tokens and sign-in sessions (cookie, CSRF), passwords, roles, the active company
//! - [`domain`]: the call domain's values (sources, end reasons, roles, providers)
//! - [`store`]: every SQL statement, on SQLite or Postgres
//! - [`crypto`]: sealing credentials (AES-256-GCM, a ring of rotating keys), tokens
//! - [`settings`]: company and chatbot settings documents and their rules
//! - [`integrations`], [`telephony`]: Twilio/WhatsApp accounts and their REST checks
//! - [`knowledge`]: documents cut into passages, and the search the agent's tool runs
//! - [`call`]: one task per call — the session, its edges, barge-in, transcripts
//! - [`escalation`]: calls handed to human agents — offers, the one who accepts, the agent bus, tickets
//! - [`events`]: call events for the companies' systems (webhooks from an outbox), notices
//! - [`providers`]: OpenAI Realtime and the echo provider behind one channel pair
//! - [`recording`]: stereo call recordings — the session's tap, storage, links, retention
//! - [`voices`], [`voice_previews`]: which voices each model speaks, and samples of them
//! - [`turn`]: short-lived TURN credentials for callers
//! - [`metrics`], [`rate_limit`], [`logging`]: Prometheus metrics, per-IP and per-account limits, log output
//! - [`demo`]: the `--demo` company
//! - [`ws_frames`]: WebSocket text frames without an allocation per frame

pub mod api;
pub mod app;
pub mod auth;
pub mod call;
pub mod config;
pub mod crypto;
pub mod demo;
#[macro_use]
pub mod domain;
pub mod escalation;
pub mod events;
pub mod ids;
pub mod integrations;
pub mod knowledge;
pub mod logging;
pub mod metrics;
pub mod providers;
pub mod rate_limit;
pub mod recording;
pub mod server;
pub mod settings;
pub mod store;
pub mod telephony;
pub mod time;
pub mod turn;
pub mod voice_previews;
pub mod voices;
pub mod ws_frames;
