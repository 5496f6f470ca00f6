//! Call recordings: a short-lived link to a call's recording (company admins), the
//! signed download route those links point at for local storage, and the company's
//! recording retention.

use axum::body::Body;
use axum::extract::{Path, Query, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::Response;
use axum::routing::get;
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use tower::ServiceExt;
use utoipa::ToSchema;

use super::error::{ApiError, ApiResult, ErrorBody};
use super::json::ApiJson;
use super::path_id;
use crate::app::AppState;
use crate::auth::CompanyAdmin;
use crate::ids::{CallId, RecordingId};
use crate::recording::LinkRefusal;
use crate::settings::RecordingPolicyPatch;
use crate::time::{now_ms, rfc3339};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/company/calls/{id}/recording", get(recording_link))
        .route("/api/company/recording-settings", get(get_recording_settings).patch(update_recording_settings))
        .route("/api/recordings/{id}", get(download))
}

/// A link to a call's recording.
#[derive(Serialize, Debug, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RecordingLinkView {
    /// Where to fetch the file: a presigned S3 URL, or the gateway's signed download URL.
    /// Works without credentials until `expiresAt`.
    url: String,
    /// When the link stops working (10 minutes after it was handed out).
    expires_at: String,
    /// Playable length, from the answer to the end of the call.
    duration_ms: i64,
    /// `ogg/opus`: stereo, the caller on the left, the agent on the right.
    format: String,
}

/// A 10-minute link to the recording of one of the company's calls.
#[utoipa::path(get, path = "/api/company/calls/{id}/recording", tag = "calls", params(("id" = String, Path)),
    responses((status = 200, body = RecordingLinkView),
        (status = 404, body = ErrorBody, description = "`not_found` (no such call) or `recording_not_found`"),
        (status = 503, body = ErrorBody, description = "`storage_unavailable`")))]
pub async fn recording_link(
    admin: CompanyAdmin,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Json<RecordingLinkView>> {
    let call: CallId = path_id(&id, "call")?;
    state.store.call_for_company(admin.company_id, call).await?.ok_or_else(|| ApiError::not_found("call"))?;
    let recording = state
        .store
        .recording_for_call(admin.company_id, call)
        .await?
        .ok_or_else(|| ApiError::new(StatusCode::NOT_FOUND, "recording_not_found", "this call has no recording"))?;
    let link = state.recordings.link(&recording, now_ms()).await.map_err(storage_unavailable)?;
    Ok(Json(RecordingLinkView {
        url: link.url,
        expires_at: rfc3339(link.expires_at),
        duration_ms: recording.duration_ms,
        format: recording.format,
    }))
}

/// 503 for storage that did not answer, logging the cause.
pub fn storage_unavailable(err: crate::recording::StorageError) -> ApiError {
    tracing::error!(error = %err, "recordings storage unavailable");
    ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "storage_unavailable",
        "recordings storage is not answering; nothing was changed, try again later",
    )
}

/// `?expires=&signature=` of a download link.
#[derive(Deserialize)]
pub struct LinkQuery {
    expires: Option<String>,
    signature: Option<String>,
}

/// Downloads a recording from local storage through a signed link (as handed out by
/// `GET /api/company/calls/{id}/recording`). No bearer token: the link is the credential.
/// Supports `Range` requests.
#[utoipa::path(get, path = "/api/recordings/{id}", tag = "calls", security(()),
    params(("id" = String, Path), ("expires" = i64, Query), ("signature" = String, Query)),
    responses((status = 200, content_type = "audio/ogg", description = "The recording"),
        (status = 206, description = "Part of it (`Range`)"),
        (status = 403, body = ErrorBody, description = "`invalid_link` or `link_expired`"),
        (status = 404, body = ErrorBody)))]
pub async fn download(
    State(state): State<AppState>,
    Path(id): Path<String>,
    query: Result<Query<LinkQuery>, axum::extract::rejection::QueryRejection>,
    request: Request,
) -> ApiResult<Response> {
    let invalid = || ApiError::new(StatusCode::FORBIDDEN, "invalid_link", "this recording link is not valid");
    let Ok(Query(query)) = query else { return Err(invalid()) };
    let id: RecordingId = id.parse().map_err(|_| invalid())?;
    let expires: i64 = query.expires.as_deref().and_then(|e| e.parse().ok()).ok_or_else(invalid)?;
    let signature = query.signature.as_deref().ok_or_else(invalid)?;
    state.recordings.check_link(id, expires, signature, now_ms()).map_err(|refusal| match refusal {
        LinkRefusal::BadSignature => invalid(),
        LinkRefusal::Expired => {
            ApiError::new(StatusCode::FORBIDDEN, "link_expired", "this recording link has expired; ask for a new one")
        }
    })?;
    let recording = state.store.recording(id).await?.ok_or_else(|| ApiError::not_found("recording"))?;
    let path =
        state.recordings.storage().local_path(&recording.object_key).ok_or_else(|| ApiError::not_found("recording"))?;
    let served = tower_http::services::ServeFile::new(path).oneshot(request).await.map_err(ApiError::internal)?;
    if served.status() == StatusCode::NOT_FOUND {
        return Err(ApiError::not_found("recording"));
    }
    let mut response = served.map(Body::new);
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("audio/ogg"));
    if let Ok(value) = HeaderValue::from_str(&format!("inline; filename=\"call-{}.ogg\"", recording.call_id)) {
        headers.insert(header::CONTENT_DISPOSITION, value);
    }
    // The link is the credential: nobody but its holder should keep a copy.
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("private, no-store"));
    Ok(response)
}

/// The company's recording rules.
#[derive(Serialize, Deserialize, Debug, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RecordingSettingsView {
    /// Days a recording is kept after the call (1–3650, default 90).
    retention_days: u32,
}

/// The company's recording rules.
#[utoipa::path(get, path = "/api/company/recording-settings", tag = "calls",
    responses((status = 200, body = RecordingSettingsView), (status = 403, body = ErrorBody)))]
pub async fn get_recording_settings(
    admin: CompanyAdmin,
    State(state): State<AppState>,
) -> ApiResult<Json<RecordingSettingsView>> {
    let company = state.store.company(admin.company_id).await?.ok_or_else(|| ApiError::not_found("company"))?;
    Ok(Json(RecordingSettingsView { retention_days: company.settings.recordings.retention_days }))
}

/// Changes how long the company's recordings are kept, e.g. `{"retentionDays":30}`. The
/// retention sweep applies it to recordings already stored too.
#[utoipa::path(patch, path = "/api/company/recording-settings", tag = "calls", request_body = RecordingPolicyPatch,
    responses((status = 200, body = RecordingSettingsView), (status = 422, body = ErrorBody)))]
pub async fn update_recording_settings(
    admin: CompanyAdmin,
    State(state): State<AppState>,
    ApiJson(patch): ApiJson<RecordingPolicyPatch>,
) -> ApiResult<Json<RecordingSettingsView>> {
    let company = state.store.company(admin.company_id).await?.ok_or_else(|| ApiError::not_found("company"))?;
    let mut settings = company.settings;
    settings.recordings.apply(patch);
    settings.recordings.validate()?;
    let company = state
        .store
        .update_company_settings(admin.company_id, &settings)
        .await?
        .ok_or_else(|| ApiError::not_found("company"))?;
    tracing::info!(company_id = %company.id, retention_days = company.settings.recordings.retention_days, "recording retention changed");
    Ok(Json(RecordingSettingsView { retention_days: company.settings.recordings.retention_days }))
}
