//! The voice gateway: website, WhatsApp and phone callers talk to an AI support agent.
//!
//! Map of the crate (cut by domain; see docs/architecture.md):
//! - [`app`]: the application as a value — build (bind, migrate), run, shut down
//! - [`config`]: command line and environment
//! - [`api`]: HTTP routers per audience, the one error type, the JSON extractor
//! - [`auth`]: bearer tokens, roles, the active company
//! - [`store`]: every SQL statement, on SQLite or Postgres
//! - [`crypto`]: sealing credentials (AES-256-GCM), tokens
//! - [`settings`]: company and chatbot settings documents and their rules
//! - [`integrations`], [`telephony`]: Twilio/WhatsApp accounts and their REST checks
//! - [`voices`]: which voices each model speaks
//! - [`demo`]: the `--demo` company

pub mod api;
pub mod app;
pub mod auth;
pub mod config;
pub mod crypto;
pub mod demo;
pub mod ids;
pub mod integrations;
pub mod settings;
pub mod store;
pub mod telephony;
pub mod time;
pub mod voices;
