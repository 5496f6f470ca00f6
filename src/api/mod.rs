//! The HTTP API, one router per audience, merged once here.
//!
//! - `admin`: master admins (companies, AI models)
//! - `company`: company admins (chatbots and their settings, integration accounts)
//! - `calls`: company admins' test calls and call history
//! - `knowledge`: company admins' knowledge base (categories, documents, chatbot links, search)
//! - `assets`: the widget's files, the Test Call page, the API reference page and the demo site
//! - `widget`: the public widget API (call sessions and their signaling WebSocket)
//! - `health`: `/healthz` (liveness), `/readyz` (readiness), `/metrics` and the OpenAPI document

pub mod admin;
pub mod assets;
pub mod calls;
pub mod company;
pub mod error;
pub mod health;
pub mod integrations;
pub mod json;
pub mod knowledge;
pub mod me;
pub mod voices;
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
        .merge(me::router())
        .merge(voices::router())
        .merge(assets::router())
        .fallback(|| async { ApiError::new(StatusCode::NOT_FOUND, "not_found", "no such route") })
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        // Spans name the path, never the query string: it carries session tokens.
        .layer(TraceLayer::new_for_http().make_span_with(|request: &axum::http::Request<_>| {
            tracing::debug_span!("request", method = %request.method(), path = %request.uri().path())
        }))
        .with_state(state)
}
