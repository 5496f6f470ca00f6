//! Master admin API: users and their API tokens (list, revoke). Token secrets and hashes
//! are never shown: a token is shown once, by the CLI that issues it.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{delete, get};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::error::{ApiError, ApiResult, ErrorBody};
use super::json::ApiQuery;
use super::path_id;
use crate::app::AppState;
use crate::auth::MasterAdmin;
use crate::ids::{CompanyId, TokenId, UserId};
use crate::store::{Role, TokenStatus, User};
use crate::time::{now_ms, rfc3339, rfc3339_opt};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/admin/users", get(list_users))
        .route("/api/admin/users/{id}/tokens", get(list_tokens).delete(revoke_all))
        .route("/api/admin/users/{id}/tokens/{token_id}", delete(revoke_token))
}

/// A user as the admin API shows them.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct UserView {
    id: UserId,
    email: String,
    name: Option<String>,
    role: Role,
    /// Companies the user is a member of.
    companies: Vec<CompanyId>,
    /// Whether the user can sign in with a password.
    has_password: bool,
    created_at: String,
}

/// `?email=` finds one user by e-mail; `?limit=` caps the list (1–500, default 100).
#[derive(Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct UserQuery {
    email: Option<String>,
    limit: Option<u32>,
}

/// Users, by e-mail.
#[utoipa::path(get, path = "/api/admin/users", tag = "admin", params(UserQuery),
    responses((status = 200, body = [UserView]), (status = 403, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn list_users(
    _: MasterAdmin,
    State(state): State<AppState>,
    ApiQuery(query): ApiQuery<UserQuery>,
) -> ApiResult<Json<Vec<UserView>>> {
    let limit = query.limit.unwrap_or(100);
    if !(1..=500).contains(&limit) {
        return Err(ApiError::invalid("limit", "must be between 1 and 500"));
    }
    if query.email.as_deref().is_some_and(|e| e.trim().is_empty() || e.len() > 320) {
        return Err(ApiError::invalid("email", "must be 1–320 characters"));
    }
    let mut views = Vec::new();
    for (user, has_password) in state.store.list_users(query.email.as_deref(), limit).await? {
        let companies = state.store.user_companies(user.id).await?;
        let User { id, email, name, role, created_at, .. } = user;
        views.push(UserView { id, email, name, role, companies, has_password, created_at: rfc3339(created_at) });
    }
    Ok(Json(views))
}

/// An API token as listed: never its secret or hash.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TokenView {
    id: TokenId,
    /// What it was issued for (`cli`, ...).
    name: String,
    status: TokenStatus,
    created_at: String,
    expires_at: Option<String>,
    /// When it was last used, to the minute.
    last_used_at: Option<String>,
    revoked_at: Option<String>,
}

async fn load_user(state: &AppState, raw: &str) -> ApiResult<User> {
    let id: UserId = path_id(raw, "user")?;
    state.store.user(id).await?.ok_or_else(|| ApiError::not_found("user"))
}

/// A user's API tokens, newest first, revoked and expired ones included.
#[utoipa::path(get, path = "/api/admin/users/{id}/tokens", tag = "admin", params(("id" = String, Path, description = "User id")),
    responses((status = 200, body = [TokenView]), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn list_tokens(
    _: MasterAdmin,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Json<Vec<TokenView>>> {
    let user = load_user(&state, &id).await?;
    let now = now_ms();
    let tokens = state.store.api_tokens(user.id).await?;
    Ok(Json(
        tokens
            .into_iter()
            .map(|t| TokenView {
                id: t.id,
                status: t.status(now),
                created_at: rfc3339(t.created_at),
                expires_at: rfc3339_opt(t.expires_at),
                last_used_at: rfc3339_opt(t.last_used_at),
                revoked_at: rfc3339_opt(t.revoked_at),
                name: t.name,
            })
            .collect(),
    ))
}

/// Revokes one of a user's tokens (at once: its next request is 401). Revoking a revoked
/// token again is harmless.
#[utoipa::path(delete, path = "/api/admin/users/{id}/tokens/{token_id}", tag = "admin",
    params(("id" = String, Path, description = "User id"), ("token_id" = String, Path, description = "Token id")),
    responses((status = 204), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn revoke_token(
    admin: MasterAdmin,
    State(state): State<AppState>,
    Path((id, token_id)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    let user = load_user(&state, &id).await?;
    let token: TokenId = path_id(&token_id, "token")?;
    if !state.store.revoke_api_token(user.id, token).await? {
        return Err(ApiError::not_found("token"));
    }
    tracing::info!(user_id = %user.id, token_id = %token, by = %admin.0.id, "API token revoked");
    Ok(StatusCode::NO_CONTENT)
}

/// What `DELETE /api/admin/users/{id}/tokens` did.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RevokedAll {
    /// Live API tokens revoked.
    revoked_tokens: u64,
    /// Sign-in sessions ended.
    ended_sessions: u64,
}

/// Cuts a user off: revokes all their API tokens and ends their sign-in sessions (their
/// password still works; change it with `gateway user passwd`).
#[utoipa::path(delete, path = "/api/admin/users/{id}/tokens", tag = "admin", params(("id" = String, Path, description = "User id")),
    responses((status = 200, body = RevokedAll), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn revoke_all(
    admin: MasterAdmin,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Json<RevokedAll>> {
    let user = load_user(&state, &id).await?;
    let revoked_tokens = state.store.revoke_tokens(user.id).await?;
    let ended_sessions = state.store.end_sessions(user.id).await?;
    tracing::info!(user_id = %user.id, by = %admin.0.id, revoked_tokens, ended_sessions, "all credentials revoked");
    Ok(Json(RevokedAll { revoked_tokens, ended_sessions }))
}
