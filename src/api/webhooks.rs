//! Company admin API: webhook endpoints for call events, their delivery log and manual
//! redelivery (docs/webhooks.md).

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::error::{ApiError, ApiResult, ErrorBody};
use super::json::{ApiJson, ApiQuery};
use super::path_id;
use crate::app::AppState;
use crate::auth::CompanyAdmin;
use crate::crypto;
use crate::events::address::{self, DestinationError};
use crate::events::signature;
use crate::ids::{CompanyId, DeliveryId, EventId, WebhookId};
use crate::store::{
    Delivery, DeliveryStatus, EventType, MAX_WEBHOOKS_PER_COMPANY, NewWebhookEndpoint, RedeliverRefusal,
    WebhookEndpoint,
};
use crate::time::{now_ms, rfc3339, rfc3339_opt};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/company/webhooks", get(list_webhooks).post(create_webhook))
        .route("/api/company/webhooks/{id}", get(get_webhook).patch(update_webhook).delete(delete_webhook))
        .route("/api/company/webhooks/{id}/rotate-secret", post(rotate_secret))
        .route("/api/company/webhooks/{id}/deliveries", get(list_deliveries))
        .route("/api/company/webhooks/{id}/deliveries/{delivery_id}/redeliver", post(redeliver))
}

/// Longest description accepted.
const MAX_DESCRIPTION_CHARS: usize = 500;

/// A webhook endpoint as the API shows it.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct WebhookView {
    id: WebhookId,
    url: String,
    description: String,
    events: Vec<EventType>,
    enabled: bool,
    /// Why the endpoint is disabled: after persistent failure (with the last error), or by an admin.
    disabled_reason: Option<String>,
    disabled_at: Option<String>,
    /// The first failed attempt since the last delivered one.
    failing_since: Option<String>,
    /// The signing secret: in full only in the responses that create or rotate it, masked
    /// (`whsec_••••1a2b`) everywhere else.
    secret: String,
    created_at: String,
    updated_at: String,
}

impl WebhookView {
    fn new(endpoint: &WebhookEndpoint, secret: String) -> Self {
        Self {
            id: endpoint.id,
            url: endpoint.url.clone(),
            description: endpoint.description.clone(),
            events: endpoint.event_types.clone(),
            enabled: endpoint.enabled,
            disabled_reason: endpoint.disabled_reason.clone(),
            disabled_at: rfc3339_opt(endpoint.disabled_at),
            failing_since: rfc3339_opt(endpoint.failing_since),
            secret,
            created_at: rfc3339(endpoint.created_at),
            updated_at: rfc3339(endpoint.updated_at),
        }
    }
}

fn open_secret(state: &AppState, endpoint: &WebhookEndpoint) -> ApiResult<String> {
    let bytes = state
        .sealer
        .open(&endpoint.secret, endpoint.id.as_string().as_bytes())
        .map_err(|e| ApiError::internal(format!("cannot open the signing secret of webhook {}: {e}", endpoint.id)))?;
    String::from_utf8(bytes).map_err(|_| ApiError::internal(format!("webhook {} has a corrupt secret", endpoint.id)))
}

fn masked(state: &AppState, endpoint: &WebhookEndpoint) -> ApiResult<WebhookView> {
    let secret = open_secret(state, endpoint)?;
    let tail = secret.strip_prefix(signature::SECRET_PREFIX).unwrap_or(&secret);
    Ok(WebhookView::new(endpoint, format!("{}{}", signature::SECRET_PREFIX, crypto::mask(tail))))
}

async fn load(state: &AppState, company: CompanyId, raw_id: &str) -> ApiResult<WebhookEndpoint> {
    let id: WebhookId = path_id(raw_id, "webhook")?;
    state.store.webhook(company, id).await?.ok_or_else(|| ApiError::not_found("webhook"))
}

/// Checks a destination URL: its syntax, then (unless private destinations are allowed)
/// that it is, or resolves to, public addresses only.
async fn check_url(state: &AppState, text: &str) -> ApiResult<String> {
    let url = address::parse_url(text).map_err(|e| ApiError::invalid("url", e.to_string()))?;
    if !state.config.webhooks.allow_private {
        address::check_destination(&url).await.map_err(|e| match e {
            DestinationError::NotPublic { .. } => {
                ApiError::invalid("url", e.to_string()).with_code("destination_not_public")
            }
            other => ApiError::invalid("url", other.to_string()),
        })?;
    }
    Ok(url.to_string())
}

/// Event type names, each known and listed once, at least one.
fn check_events(names: &[String]) -> ApiResult<Vec<EventType>> {
    if names.is_empty() {
        return Err(ApiError::invalid("events", "must list at least one event type"));
    }
    let known = EventType::ALL.iter().map(|t| t.as_str()).collect::<Vec<_>>().join(", ");
    let mut types = Vec::with_capacity(names.len());
    for (i, name) in names.iter().enumerate() {
        let event: EventType =
            name.parse().map_err(|()| ApiError::invalid(format!("events.{i}"), format!("must be one of {known}")))?;
        if types.contains(&event) {
            return Err(ApiError::invalid(format!("events.{i}"), format!("{name} is listed twice")));
        }
        types.push(event);
    }
    Ok(types)
}

fn check_description(text: &str) -> ApiResult<()> {
    if text.chars().count() > MAX_DESCRIPTION_CHARS {
        return Err(ApiError::invalid("description", format!("must be at most {MAX_DESCRIPTION_CHARS} characters")));
    }
    Ok(())
}

/// The active company's webhook endpoints (secrets masked).
#[utoipa::path(get, path = "/api/company/webhooks", tag = "webhooks",
    responses((status = 200, body = [WebhookView]), (status = 403, body = ErrorBody)))]
pub async fn list_webhooks(admin: CompanyAdmin, State(state): State<AppState>) -> ApiResult<Json<Vec<WebhookView>>> {
    let endpoints = state.store.list_webhooks(admin.company_id).await?;
    Ok(Json(endpoints.iter().map(|e| masked(&state, e)).collect::<ApiResult<_>>()?))
}

/// Body of `POST /api/company/webhooks`.
#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NewWebhookBody {
    /// A public http(s) URL.
    url: String,
    /// Event types: `call.started`, `call.ended`, `call.failed`, `call.escalated`, `ticket.created`, `integration.failed`.
    events: Vec<String>,
    #[serde(default)]
    description: String,
}

/// Registers an endpoint. The response carries the signing secret in full, this once.
#[utoipa::path(post, path = "/api/company/webhooks", tag = "webhooks", request_body = NewWebhookBody,
    responses((status = 201, body = WebhookView), (status = 403, body = ErrorBody),
        (status = 409, body = ErrorBody, description = "too_many_webhooks"),
        (status = 422, body = ErrorBody, description = "invalid_value, destination_not_public")))]
pub async fn create_webhook(
    admin: CompanyAdmin,
    State(state): State<AppState>,
    ApiJson(body): ApiJson<NewWebhookBody>,
) -> ApiResult<(StatusCode, Json<WebhookView>)> {
    let event_types = check_events(&body.events)?;
    check_description(&body.description)?;
    let url = check_url(&state, &body.url).await?;
    if state.store.count_webhooks(admin.company_id).await? >= MAX_WEBHOOKS_PER_COMPANY {
        return Err(ApiError::conflict(
            "too_many_webhooks",
            format!("a company may register at most {MAX_WEBHOOKS_PER_COMPANY} webhook endpoints"),
        ));
    }
    let id = WebhookId::new();
    let secret = signature::new_secret();
    let endpoint = state
        .store
        .create_webhook(
            admin.company_id,
            NewWebhookEndpoint {
                id,
                url,
                description: body.description,
                event_types,
                secret: state.sealer.seal(secret.as_bytes(), id.as_string().as_bytes()),
            },
        )
        .await?;
    tracing::info!(company_id = %admin.company_id, webhook_id = %id, "webhook endpoint created");
    Ok((StatusCode::CREATED, Json(WebhookView::new(&endpoint, secret))))
}

/// One endpoint.
#[utoipa::path(get, path = "/api/company/webhooks/{id}", tag = "webhooks", params(("id" = String, Path)),
    responses((status = 200, body = WebhookView), (status = 404, body = ErrorBody)))]
pub async fn get_webhook(
    admin: CompanyAdmin,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Json<WebhookView>> {
    let endpoint = load(&state, admin.company_id, &id).await?;
    Ok(Json(masked(&state, &endpoint)?))
}

/// Body of `PATCH /api/company/webhooks/{id}`: any subset.
#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct WebhookPatchBody {
    url: Option<String>,
    events: Option<Vec<String>>,
    /// `false` pauses deliveries (they wait in the outbox); `true` resumes them, also after
    /// an automatic disabling.
    enabled: Option<bool>,
    description: Option<String>,
}

/// Changes an endpoint's URL, events, description, or enables/disables it.
#[utoipa::path(patch, path = "/api/company/webhooks/{id}", tag = "webhooks", request_body = WebhookPatchBody,
    params(("id" = String, Path)),
    responses((status = 200, body = WebhookView), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn update_webhook(
    admin: CompanyAdmin,
    State(state): State<AppState>,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<WebhookPatchBody>,
) -> ApiResult<Json<WebhookView>> {
    let mut endpoint = load(&state, admin.company_id, &id).await?;
    if let Some(events) = &body.events {
        endpoint.event_types = check_events(events)?;
    }
    if let Some(description) = body.description {
        check_description(&description)?;
        endpoint.description = description;
    }
    if let Some(url) = &body.url {
        endpoint.url = check_url(&state, url).await?;
    }
    let now = now_ms();
    match body.enabled {
        Some(true) => endpoint.enabled = true,
        Some(false) if endpoint.enabled => {
            endpoint.enabled = false;
            endpoint.disabled_reason = Some("disabled by an admin".to_owned());
            endpoint.disabled_at = Some(now);
        }
        _ => {}
    }
    if !state.store.update_webhook(&endpoint, now).await? {
        return Err(ApiError::not_found("webhook"));
    }
    let endpoint = load(&state, admin.company_id, &id).await?;
    Ok(Json(masked(&state, &endpoint)?))
}

/// Deletes an endpoint and its delivery log.
#[utoipa::path(delete, path = "/api/company/webhooks/{id}", tag = "webhooks", params(("id" = String, Path)),
    responses((status = 204), (status = 404, body = ErrorBody)))]
pub async fn delete_webhook(
    admin: CompanyAdmin,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    let id: WebhookId = path_id(&id, "webhook")?;
    if !state.store.delete_webhook(admin.company_id, id).await? {
        return Err(ApiError::not_found("webhook"));
    }
    tracing::info!(company_id = %admin.company_id, webhook_id = %id, "webhook endpoint deleted");
    Ok(StatusCode::NO_CONTENT)
}

/// Replaces the signing secret; the response carries the new one in full, this once.
/// Deliveries from now on are signed with it.
#[utoipa::path(post, path = "/api/company/webhooks/{id}/rotate-secret", tag = "webhooks", params(("id" = String, Path)),
    responses((status = 200, body = WebhookView), (status = 404, body = ErrorBody)))]
pub async fn rotate_secret(
    admin: CompanyAdmin,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Json<WebhookView>> {
    let mut endpoint = load(&state, admin.company_id, &id).await?;
    let secret = signature::new_secret();
    endpoint.secret = state.sealer.seal(secret.as_bytes(), endpoint.id.as_string().as_bytes());
    if !state.store.update_webhook(&endpoint, now_ms()).await? {
        return Err(ApiError::not_found("webhook"));
    }
    tracing::info!(company_id = %admin.company_id, webhook_id = %endpoint.id, "webhook signing secret rotated");
    let endpoint = load(&state, admin.company_id, &id).await?;
    Ok(Json(WebhookView::new(&endpoint, secret)))
}

/// One delivery of an event to the endpoint, with its attempts.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DeliveryView {
    id: DeliveryId,
    event_id: EventId,
    event_type: EventType,
    /// `pending` (waiting for an attempt), `delivered` or `failed` (given up).
    status: DeliveryStatus,
    attempts: i64,
    created_at: String,
    /// When the next attempt is due (pending deliveries).
    next_attempt_at: Option<String>,
    last_attempt_at: Option<String>,
    last_status_code: Option<i64>,
    last_error: Option<String>,
    delivered_at: Option<String>,
    /// When an admin last asked for a redelivery.
    redelivered_at: Option<String>,
    /// The latest attempts, newest first.
    log: Vec<AttemptView>,
}

/// One attempt.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AttemptView {
    attempted_at: String,
    /// The receiver's status; null when it never answered.
    status_code: Option<i64>,
    latency_ms: i64,
    error: Option<String>,
}

impl From<Delivery> for DeliveryView {
    fn from(d: Delivery) -> Self {
        Self {
            id: d.id,
            event_id: d.event_id,
            event_type: d.event_type,
            status: d.status,
            attempts: d.attempts,
            created_at: rfc3339(d.created_at),
            next_attempt_at: rfc3339_opt(d.next_attempt_at.filter(|_| d.status == DeliveryStatus::Pending)),
            last_attempt_at: rfc3339_opt(d.last_attempt_at),
            last_status_code: d.last_status_code,
            last_error: d.last_error,
            delivered_at: rfc3339_opt(d.delivered_at),
            redelivered_at: rfc3339_opt(d.redelivered_at),
            log: d
                .log
                .into_iter()
                .map(|a| AttemptView {
                    attempted_at: rfc3339(a.attempted_at),
                    status_code: a.status_code,
                    latency_ms: a.latency_ms,
                    error: a.error,
                })
                .collect(),
        }
    }
}

/// `?limit=&status=` of the delivery log.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeliveriesQuery {
    #[serde(default)]
    limit: Option<i64>,
    #[serde(default)]
    status: Option<DeliveryStatus>,
}

/// The endpoint's deliveries, newest event first (`?limit=` 1–200, default 50;
/// `?status=pending|delivered|failed`).
#[utoipa::path(get, path = "/api/company/webhooks/{id}/deliveries", tag = "webhooks",
    params(("id" = String, Path), ("limit" = Option<i64>, Query), ("status" = Option<DeliveryStatus>, Query)),
    responses((status = 200, body = [DeliveryView]), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn list_deliveries(
    admin: CompanyAdmin,
    State(state): State<AppState>,
    Path(id): Path<String>,
    ApiQuery(query): ApiQuery<DeliveriesQuery>,
) -> ApiResult<Json<Vec<DeliveryView>>> {
    let limit = query.limit.unwrap_or(50);
    if !(1..=200).contains(&limit) {
        return Err(ApiError::invalid("limit", "must be 1 to 200"));
    }
    let endpoint = load(&state, admin.company_id, &id).await?;
    let deliveries = state.store.list_deliveries(admin.company_id, endpoint.id, query.status, limit).await?;
    Ok(Json(deliveries.into_iter().map(Into::into).collect()))
}

/// Sends a delivery again, now: a delivered or failed one gets one more attempt; a
/// pending one is moved to now. The endpoint keeps its order.
#[utoipa::path(post, path = "/api/company/webhooks/{id}/deliveries/{delivery_id}/redeliver", tag = "webhooks",
    params(("id" = String, Path), ("delivery_id" = String, Path)),
    responses((status = 202, body = DeliveryView), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody, description = "webhook_disabled, outbox_full")))]
pub async fn redeliver(
    admin: CompanyAdmin,
    State(state): State<AppState>,
    Path((id, delivery_id)): Path<(String, String)>,
) -> ApiResult<(StatusCode, Json<DeliveryView>)> {
    let endpoint = load(&state, admin.company_id, &id).await?;
    let delivery: DeliveryId = path_id(&delivery_id, "delivery")?;
    match state.store.redeliver(admin.company_id, endpoint.id, delivery, now_ms()).await? {
        Ok(delivery) => {
            tracing::info!(company_id = %admin.company_id, webhook_id = %endpoint.id, delivery_id = %delivery.id, "redelivery requested");
            Ok((StatusCode::ACCEPTED, Json(delivery.into())))
        }
        Err(RedeliverRefusal::NotFound) => Err(ApiError::not_found("delivery")),
        Err(RedeliverRefusal::EndpointDisabled) => Err(ApiError::conflict(
            "webhook_disabled",
            "the endpoint is disabled: enable it (PATCH enabled=true) before redelivering",
        )),
        Err(RedeliverRefusal::OutboxFull) => Err(ApiError::conflict(
            "outbox_full",
            "the company's outbox is full; redeliver once the waiting deliveries have gone out",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_lists_must_be_known_unique_and_not_empty() {
        let names = |list: &[&str]| list.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
        assert_eq!(
            check_events(&names(&["call.ended", "call.failed"])).unwrap(),
            vec![EventType::CallEnded, EventType::CallFailed]
        );
        assert_eq!(check_events(&[]).unwrap_err().field.as_deref(), Some("events"));
        assert_eq!(check_events(&names(&["call.ended", "call.rang"])).unwrap_err().field.as_deref(), Some("events.1"));
        let twice = check_events(&names(&["call.ended", "call.started", "call.ended"])).unwrap_err();
        assert_eq!((twice.field.as_deref(), twice.message.as_str()), (Some("events.2"), "call.ended is listed twice"));
    }
}
