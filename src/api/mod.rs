//! The HTTP API, one router per audience, merged once here.
//!
//! - `auth`: sign-in for people (the `gw_session` cookie)
//! - `admin`: master admins (companies, AI models); `users`: their users and API tokens
//! - `company`: company admins (chatbots and their settings, integration accounts)
//! - `calls`: company admins' test calls, call history, transcript downloads, call deletion
//! - `recordings`: links to call recordings, their signed download route, retention settings
//! - `knowledge`: company admins' knowledge base (categories, documents, chatbot links, search)
//! - `webhooks`, `notices`: company admins' webhook endpoints (delivery log, redelivery) and notices
//! - `assets`: the widget's files, the Test Call page, the API reference page and the demo site
//! - `widget`: the public widget API (call sessions and their signaling WebSocket)
//! - `agent`: the agent console's socket, accepting escalations; `tickets`: the message inbox
//! - `health`: `/healthz` (liveness), `/readyz` (readiness), `/metrics` and the OpenAPI document

pub mod admin;
pub mod agent;
pub mod assets;
pub mod auth;
pub mod calls;
pub mod company;
pub mod error;
pub mod health;
pub mod integrations;
pub mod json;
pub mod knowledge;
pub mod me;
pub mod notices;
pub mod recordings;
pub mod tickets;
pub mod twilio;
mod users;
pub mod voices;
pub mod webhooks;
pub mod whatsapp;
pub mod widget;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::StatusCode;
use tower_http::trace::TraceLayer;

use crate::app::AppState;
use error::ApiError;

/// Largest JSON body any API route accepts.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// Parses an id from a path segment; a malformed id cannot name anything, so it is a 404.
pub fn path_id<T: std::str::FromStr>(raw: &str, what: &str) -> Result<T, ApiError> {
    raw.parse().map_err(|_| ApiError::not_found(what))
}

/// The whole application router.
pub fn router(state: AppState) -> Router {
    Router::new()
        .merge(health::router())
        .merge(admin::router())
        .merge(company::router())
        .merge(integrations::router())
        .merge(knowledge::router())
        .merge(widget::router())
        .merge(calls::router())
        .merge(twilio::router())
        .merge(whatsapp::router())
        .merge(recordings::router())
        .merge(me::router())
        .merge(auth::router())
        .merge(users::router())
        .merge(voices::router())
        .merge(webhooks::router())
        .merge(notices::router())
        .merge(agent::router())
        .merge(tickets::router())
        .merge(assets::router())
        .fallback(|| async { ApiError::new(StatusCode::NOT_FOUND, "not_found", "no such route") })
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        // Spans name the path, never the query string: it carries session tokens.
        .layer(TraceLayer::new_for_http().make_span_with(|request: &axum::http::Request<_>| {
            tracing::debug_span!("request", method = %request.method(), path = %request.uri().path())
        }))
        .with_state(state)
}
