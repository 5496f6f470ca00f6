//! Company admin API: notices — what the admin console shows when something keeps failing
//! (an integration account's credentials, the voice provider, a webhook endpoint).

use axum::extract::{Path, State};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::error::{ApiError, ApiResult, ErrorBody};
use super::json::ApiQuery;
use super::path_id;
use crate::app::AppState;
use crate::auth::CompanyAdmin;
use crate::ids::NoticeId;
use crate::store::{Notice, NoticeKind, Severity};
use crate::time::{now_ms, rfc3339, rfc3339_opt};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/company/notices", get(list_notices))
        .route("/api/company/notices/{id}/dismiss", post(dismiss_notice))
}

/// Where a notice stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum NoticeStatus {
    /// The condition lasts and nobody dismissed it.
    Open,
    /// The condition cleared (the account passed its test, a call completed, the endpoint
    /// was enabled again).
    Resolved,
    /// An admin dismissed it.
    Dismissed,
}

/// A notice as the admin console shows it.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct NoticeView {
    id: NoticeId,
    /// `integration_failed`, `provider_failures` or `webhook_disabled`.
    kind: NoticeKind,
    /// `info`, `warning` or `critical` (callers are affected).
    severity: Severity,
    message: String,
    /// What it is about: the integration account id, the provider, the webhook id.
    subject: String,
    status: NoticeStatus,
    /// How many times the condition was reported while the notice was open.
    occurrences: i64,
    created_at: String,
    updated_at: String,
    resolved_at: Option<String>,
    dismissed_at: Option<String>,
}

impl From<Notice> for NoticeView {
    fn from(n: Notice) -> Self {
        let status = match (n.resolved_at, n.dismissed_at) {
            (_, Some(_)) => NoticeStatus::Dismissed,
            (Some(_), None) => NoticeStatus::Resolved,
            (None, None) => NoticeStatus::Open,
        };
        Self {
            id: n.id,
            kind: n.kind,
            severity: n.severity,
            message: n.message,
            subject: n.subject,
            status,
            occurrences: n.occurrences,
            created_at: rfc3339(n.created_at),
            updated_at: rfc3339(n.updated_at),
            resolved_at: rfc3339_opt(n.resolved_at),
            dismissed_at: rfc3339_opt(n.dismissed_at),
        }
    }
}

/// Which notices to list.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum NoticeFilter {
    /// Every notice (the default).
    #[default]
    All,
    /// Open notices only.
    Open,
}

/// `?status=&limit=` of the notice list.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NoticesQuery {
    #[serde(default)]
    status: NoticeFilter,
    #[serde(default)]
    limit: Option<i64>,
}

/// The active company's notices, newest first (`?status=open` for open ones only,
/// `?limit=` 1–200, default 50).
#[utoipa::path(get, path = "/api/company/notices", tag = "notices",
    params(("status" = Option<NoticeFilter>, Query), ("limit" = Option<i64>, Query)),
    responses((status = 200, body = [NoticeView]), (status = 403, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn list_notices(
    admin: CompanyAdmin,
    State(state): State<AppState>,
    ApiQuery(query): ApiQuery<NoticesQuery>,
) -> ApiResult<Json<Vec<NoticeView>>> {
    let limit = query.limit.unwrap_or(50);
    if !(1..=200).contains(&limit) {
        return Err(ApiError::invalid("limit", "must be 1 to 200"));
    }
    let notices = state.store.list_notices(admin.company_id, query.status == NoticeFilter::Open, limit).await?;
    Ok(Json(notices.into_iter().map(Into::into).collect()))
}

/// Dismisses a notice (dismissing it again changes nothing). If the condition returns
/// after a dismissal, a new notice is opened.
#[utoipa::path(post, path = "/api/company/notices/{id}/dismiss", tag = "notices", params(("id" = String, Path)),
    responses((status = 200, body = NoticeView), (status = 404, body = ErrorBody)))]
pub async fn dismiss_notice(
    admin: CompanyAdmin,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Json<NoticeView>> {
    let id: NoticeId = path_id(&id, "notice")?;
    let notice = state
        .store
        .dismiss_notice(admin.company_id, id, now_ms())
        .await?
        .ok_or_else(|| ApiError::not_found("notice"))?;
    Ok(Json(notice.into()))
}
