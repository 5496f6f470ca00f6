//! The voice gateway: website, WhatsApp and phone callers talk to an AI support agent.
//!
//! Map of the crate (cut by domain; see docs/architecture.md):
//! - [`app`]: the application as a value — build (bind, migrate), run, shut down
//! - [`server`]: HTTP/1.1 connections with timeouts, a connection cap and a shutdown deadline
//! - [`config`]: command line and environment
//! - [`api`]: HTTP routers per audience, the one error type, the JSON extractor
//! - [`auth`]: bearer tokens, roles, the active company
//! - [`store`]: every SQL statement, on SQLite or Postgres
//! - [`crypto`]: sealing credentials (AES-256-GCM), tokens
//! - [`settings`]: company and chatbot settings documents and their rules
//! - [`integrations`], [`telephony`]: Twilio/WhatsApp accounts and their REST checks
//! - [`knowledge`]: documents cut into passages, and the search the agent's tool runs
//! - [`call`]: one task per call — the session, its edges, barge-in, transcripts
//! - [`providers`]: OpenAI Realtime and the echo provider behind one channel pair
//! - [`voices`], [`voice_previews`]: which voices each model speaks, and samples of them
//! - [`turn`]: short-lived TURN credentials for callers
//! - [`metrics`], [`rate_limit`], [`logging`]: Prometheus metrics, per-IP limits, log output
//! - [`demo`]: the `--demo` company

pub mod api;
pub mod app;
pub mod auth;
pub mod call;
pub mod config;
pub mod crypto;
pub mod demo;
pub mod ids;
pub mod integrations;
pub mod knowledge;
pub mod logging;
pub mod metrics;
pub mod providers;
pub mod rate_limit;
pub mod server;
pub mod settings;
pub mod store;
pub mod telephony;
pub mod time;
pub mod turn;
pub mod voice_previews;
pub mod voices;
