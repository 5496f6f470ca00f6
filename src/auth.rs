//! Who is calling the API, and on behalf of which company.
//!
//! Every API request carries `Authorization: Bearer <token>`. Company-scoped routes act on
//! the *active company*: the `X-Company-Id` header (the API's equivalent of the platform's
//! active-company cookie), or the user's only company when they have exactly one.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderMap, header};

use crate::api::error::ApiError;
use crate::app::AppState;
use crate::ids::{CompanyId, UserId};
use crate::store::{Role, User};

/// Header naming the active company.
pub const COMPANY_HEADER: &str = "x-company-id";

/// An authenticated user.
#[derive(Debug, Clone)]
pub struct AuthUser {
    pub id: UserId,
    pub email: String,
    pub role: Role,
}

impl From<User> for AuthUser {
    fn from(user: User) -> Self {
        Self { id: user.id, email: user.email, role: user.role }
    }
}

fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then_some(token.trim()).filter(|t| !t.is_empty())
}

impl AuthUser {
    /// Resolves the bearer token of a request.
    pub async fn from_headers(headers: &HeaderMap, state: &AppState) -> Result<Self, ApiError> {
        let token = bearer(headers).ok_or_else(ApiError::unauthorized)?;
        if token.len() > 200 {
            return Err(ApiError::unauthorized());
        }
        let user = state.store.user_by_token(token).await?.ok_or_else(ApiError::unauthorized)?;
        Ok(user.into())
    }
}

impl FromRequestParts<AppState> for AuthUser {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        Self::from_headers(&parts.headers, state).await
    }
}

/// A master admin (everyone else gets 403).
#[derive(Debug, Clone)]
pub struct MasterAdmin(pub AuthUser);

impl FromRequestParts<AppState> for MasterAdmin {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let user = AuthUser::from_request_parts(parts, state).await?;
        if user.role != Role::MasterAdmin {
            return Err(ApiError::forbidden("only master admins may do this"));
        }
        Ok(Self(user))
    }
}

/// A company admin of the active company, or a master admin acting on it.
#[derive(Debug, Clone)]
pub struct CompanyAdmin {
    pub user: AuthUser,
    pub company_id: CompanyId,
}

impl FromRequestParts<AppState> for CompanyAdmin {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let user = AuthUser::from_request_parts(parts, state).await?;
        if !matches!(user.role, Role::MasterAdmin | Role::CompanyAdmin) {
            return Err(ApiError::forbidden("only company admins may do this"));
        }
        let company_id = active_company(&parts.headers, &user, state).await?;
        Ok(Self { user, company_id })
    }
}

/// The company a request acts on, checked against the user's memberships.
pub async fn active_company(headers: &HeaderMap, user: &AuthUser, state: &AppState) -> Result<CompanyId, ApiError> {
    let requested = match headers.get(COMPANY_HEADER) {
        Some(value) => Some(value.to_str().ok().and_then(|v| v.trim().parse::<CompanyId>().ok()).ok_or_else(|| {
            ApiError::bad_request("invalid_company_header", "X-Company-Id must be a company id")
                .with_field("X-Company-Id")
        })?),
        None => None,
    };
    if user.role == Role::MasterAdmin {
        let id = requested.ok_or_else(|| {
            ApiError::bad_request("company_required", "master admins name the company with the X-Company-Id header")
                .with_field("X-Company-Id")
        })?;
        state.store.company(id).await?.ok_or_else(|| ApiError::not_found("company"))?;
        return Ok(id);
    }
    match requested {
        Some(id) if state.store.is_member(user.id, id).await? => Ok(id),
        Some(_) => Err(ApiError::forbidden("you are not a member of that company")),
        None => {
            let companies = state.store.user_companies(user.id).await?;
            match companies.as_slice() {
                [only] => Ok(*only),
                [] => Err(ApiError::forbidden("you are not a member of any company")),
                _ => Err(ApiError::bad_request(
                    "company_required",
                    "you belong to several companies; choose one with the X-Company-Id header",
                )
                .with_field("X-Company-Id")),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    #[test]
    fn bearer_tokens_are_read_case_insensitively() {
        let mut headers = HeaderMap::new();
        headers.insert(header::AUTHORIZATION, HeaderValue::from_static("bearer gw_abc"));
        assert_eq!(bearer(&headers), Some("gw_abc"));
        headers.insert(header::AUTHORIZATION, HeaderValue::from_static("Basic abc"));
        assert_eq!(bearer(&headers), None);
        headers.insert(header::AUTHORIZATION, HeaderValue::from_static("Bearer "));
        assert_eq!(bearer(&headers), None);
    }
}
