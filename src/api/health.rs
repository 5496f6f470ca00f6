//! `/healthz` (liveness), `/readyz` (readiness), `/metrics` and `/api/openapi.json`.

use std::time::Duration;

use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::json;
use utoipa::OpenApi;

use super::error::DATABASE_RETRY_AFTER_SECS;
use crate::app::AppState;

/// Longest the readiness check waits for the database: a probe must answer quickly, and a
/// database that takes longer to accept a write is not ready.
const READY_CHECK_LIMIT: Duration = Duration::from_secs(2);

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .route("/api/openapi.json", get(openapi))
}

/// Liveness: the process serves HTTP. It does not look at the database, so an outage
/// there does not get healthy nodes restarted; load balancers probe `/readyz`.
#[utoipa::path(get, path = "/healthz", tag = "health", security(()), responses((status = 200, description = "The process is alive")))]
async fn healthz(State(state): State<AppState>) -> Json<serde_json::Value> {
    Json(json!({"status": "ok", "node": &*state.node_id}))
}

/// Readiness: this node can take requests — it is not shutting down and its database
/// accepts a write within 2 s (a locked, read-only or unreachable database is not ready).
#[utoipa::path(get, path = "/readyz", tag = "health", security(()), responses(
    (status = 200, description = "`{\"status\":\"ready\",\"database\":\"ok\"}`"),
    (status = 503, description = "`status` `shutting_down`, or `unavailable` with `database` `unavailable` or `error`; `Retry-After`")))]
async fn readyz(State(state): State<AppState>) -> Response {
    let node = &*state.node_id;
    if state.shutdown.is_cancelled() {
        return not_ready(json!({"status": "shutting_down", "node": node}));
    }
    match tokio::time::timeout(READY_CHECK_LIMIT, state.store.check_writable()).await {
        Ok(Ok(())) => Json(json!({"status": "ready", "database": "ok", "node": node})).into_response(),
        Ok(Err(err)) if err.is_unavailable() => {
            tracing::warn!(error = %err, "readiness: the database is unavailable");
            not_ready(json!({"status": "unavailable", "database": "unavailable", "node": node}))
        }
        Ok(Err(err)) => {
            tracing::error!(error = %err, "readiness: the database check failed");
            not_ready(json!({"status": "unavailable", "database": "error", "node": node}))
        }
        Err(_) => {
            tracing::warn!("readiness: the database did not take a write within {READY_CHECK_LIMIT:?}");
            not_ready(json!({"status": "unavailable", "database": "unavailable", "node": node}))
        }
    }
}

fn not_ready(body: serde_json::Value) -> Response {
    (StatusCode::SERVICE_UNAVAILABLE, [(header::RETRY_AFTER, DATABASE_RETRY_AFTER_SECS.to_string())], Json(body))
        .into_response()
}

/// Prometheus text format.
async fn metrics(State(state): State<AppState>) -> String {
    metrics::gauge!("gateway_calls_live").set(state.calls.live_calls() as f64);
    crate::metrics::handle().render()
}

async fn openapi() -> Json<utoipa::openapi::OpenApi> {
    Json(ApiDoc::openapi())
}

/// The OpenAPI description of the gateway's API.
#[derive(OpenApi)]
#[openapi(
    info(title = "Voice gateway API", description = "Admin, company, agent and widget APIs of the voice gateway. \
        Authenticate with `Authorization: Bearer <token>` (from `gateway user token`), or sign in with \
        `POST /api/auth/login` (the `gw_session` cookie; state-changing requests then send `X-CSRF-Token`, see docs/auth.md); \
        company routes act on the company named by `X-Company-Id`."),
    paths(
        healthz, readyz,
        super::admin::list_companies, super::admin::create_company, super::admin::update_company_settings,
        super::admin::list_models, super::admin::create_model, super::admin::update_model, super::admin::delete_model,
        super::company::list_chatbots, super::company::create_chatbot, super::company::get_chatbot,
        super::company::update_chatbot, super::company::get_call_settings, super::company::update_call_settings,
        super::company::get_widget_settings, super::company::update_widget_settings,
        super::integrations::list_accounts, super::integrations::create_account, super::integrations::get_account,
        super::integrations::update_account, super::integrations::delete_account, super::integrations::test_account,
        super::knowledge::list_categories, super::knowledge::create_category, super::knowledge::get_category,
        super::knowledge::delete_category, super::knowledge::list_documents, super::knowledge::upload_document,
        super::knowledge::get_document, super::knowledge::delete_document, super::knowledge::get_chatbot_categories,
        super::knowledge::set_chatbot_categories, super::knowledge::search,
        super::widget::create_session, super::widget::call_socket, super::widget::end_call, super::widget::rate_call,
        super::widget::chatbot_config,
        super::calls::test_call, super::calls::list_calls, super::calls::get_call,
        super::calls::delete_call, super::calls::download_transcript,
        super::recordings::recording_link, super::recordings::download,
        super::recordings::get_recording_settings, super::recordings::update_recording_settings,
        super::voices::list_models, super::voices::list_voices, super::voices::preview,
        super::me::me,
        super::auth::login, super::auth::session, super::auth::logout,
        super::users::list_users, super::users::list_tokens, super::users::revoke_token, super::users::revoke_all,
        super::webhooks::list_webhooks, super::webhooks::create_webhook, super::webhooks::get_webhook,
        super::webhooks::update_webhook, super::webhooks::delete_webhook, super::webhooks::rotate_secret,
        super::webhooks::list_deliveries, super::webhooks::redeliver,
        super::notices::list_notices, super::notices::dismiss_notice,
        super::agent::agent_socket, super::agent::list_escalations, super::agent::accept, super::agent::call_socket,
        super::tickets::list_tickets, super::tickets::get_ticket, super::tickets::update_ticket,
    ),
    components(schemas(super::error::ErrorBody)),
    modifiers(&BearerAuth),
    security(("bearer" = []), ("session" = [])),
)]
pub struct ApiDoc;

struct BearerAuth;

impl utoipa::Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
        components.add_security_scheme(
            "session",
            SecurityScheme::ApiKey(ApiKey::Cookie(ApiKeyValue::new(crate::auth::SESSION_COOKIE))),
        );
    }
}
