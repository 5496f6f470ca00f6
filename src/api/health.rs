//! `/healthz` and `/api/openapi.json`.

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::json;
use utoipa::OpenApi;

use crate::app::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics))
        .route("/api/openapi.json", get(openapi))
}

/// Liveness and database reachability.
#[utoipa::path(get, path = "/healthz", tag = "health", responses((status = 200, description = "Healthy"), (status = 503, description = "Database unreachable")))]
async fn healthz(State(state): State<AppState>) -> (StatusCode, Json<serde_json::Value>) {
    match state.store.ping().await {
        Ok(()) => (StatusCode::OK, Json(json!({"status": "ok", "database": "ok", "node": &*state.node_id}))),
        Err(err) => {
            tracing::error!(error = %err, "health check: database unreachable");
            (StatusCode::SERVICE_UNAVAILABLE, Json(json!({"status": "unavailable", "database": "unreachable"})))
        }
    }
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
    info(title = "Voice gateway API", description = "Admin, company and widget APIs of the voice gateway. \
        Authenticate with `Authorization: Bearer <token>` (from `gateway user token`), or sign in with \
        `POST /api/auth/login` (the `gw_session` cookie; state-changing requests then send `X-CSRF-Token`, see docs/auth.md); \
        company routes act on the company named by `X-Company-Id`."),
    paths(
        healthz,
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
        super::voices::list_models, super::voices::list_voices, super::voices::preview,
        super::me::me,
        super::auth::login, super::auth::session, super::auth::logout,
        super::users::list_users, super::users::list_tokens, super::users::revoke_token, super::users::revoke_all,
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
