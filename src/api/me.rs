//! `GET /api/me`: who the token (or sign-in session) belongs to and which companies it may
//! act on (for company pickers: a user in several companies names one with `X-Company-Id`).
//! The sign-in routes answer with the same body ([`me_view`]).

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use serde::Serialize;

use super::error::ApiResult;
use crate::app::AppState;
use crate::auth::AuthUser;
use crate::ids::{CompanyId, UserId};
use crate::store::Role;

pub fn router() -> Router<AppState> {
    Router::new().route("/api/me", get(me))
}

/// The caller of the API.
#[derive(Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Me {
    id: UserId,
    email: String,
    role: Role,
    /// Companies the user may act on (by name): their memberships, or every company for master admins.
    companies: Vec<CompanyRef>,
}

/// A company the user may act on.
#[derive(Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CompanyRef {
    id: CompanyId,
    name: String,
    call_enabled: bool,
}

/// Who the token belongs to and which companies it may act on.
#[utoipa::path(get, path = "/api/me", tag = "me", responses((status = 200, body = Me), (status = 401, body = super::error::ErrorBody)))]
pub async fn me(user: AuthUser, State(state): State<AppState>) -> ApiResult<Json<Me>> {
    Ok(Json(me_view(&state, user).await?))
}

/// The body of `GET /api/me` for a user.
pub async fn me_view(state: &AppState, user: AuthUser) -> ApiResult<Me> {
    let companies = if user.role == Role::MasterAdmin {
        state.store.list_companies().await?
    } else {
        let mut companies = Vec::new();
        for id in state.store.user_companies(user.id).await? {
            if let Some(company) = state.store.company(id).await? {
                companies.push(company);
            }
        }
        companies
    };
    let mut companies = companies;
    companies.sort_by(|a, b| a.name.cmp(&b.name).then(a.id.cmp(&b.id)));
    Ok(Me {
        id: user.id,
        email: user.email,
        role: user.role,
        companies: companies
            .into_iter()
            .map(|c| CompanyRef { id: c.id, call_enabled: c.settings.features.call_enabled, name: c.name })
            .collect(),
    })
}
