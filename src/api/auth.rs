//! Sign-in for people (docs/auth.md): `POST /api/auth/login` sets the `gw_session` cookie
//! and hands back the CSRF token, `GET /api/auth/session` tells a page who is signed in,
//! `POST /api/auth/logout` ends the session.

use std::net::SocketAddr;
use std::time::Duration;

use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::error::{ApiError, ApiResult, ErrorBody};
use super::json::ApiJson;
use super::me::{Me, me_view};
use crate::app::AppState;
use crate::auth::password::MAX_PASSWORD_BYTES;
use crate::auth::{Authenticated, Credential, session_token};
use crate::rate_limit::client_ip;
use crate::store::Session;
use crate::time::now_ms;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/auth/login", post(login))
        .route("/api/auth/session", get(session))
        .route("/api/auth/logout", post(logout))
}

/// Body of `POST /api/auth/login`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LoginBody {
    email: String,
    password: String,
}

/// A sign-in session: who is signed in, and the token state-changing requests send in
/// `X-CSRF-Token`.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SessionView {
    /// Exactly the body of `GET /api/me`.
    user: Me,
    csrf_token: String,
}

fn rate_limited(wait: Duration, message: &str) -> Response {
    ApiError::rate_limited(message, wait).into_response()
}

fn no_store(mut response: Response) -> Response {
    response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// Signs a person in with their e-mail and password: sets the `gw_session` cookie
/// (HttpOnly, SameSite=Strict, Secure when the public URL is https) and returns the user
/// and the session's CSRF token. Attempts are limited per address and per account.
#[utoipa::path(post, path = "/api/auth/login", tag = "auth", request_body = LoginBody, security(()),
    responses((status = 200, body = SessionView, description = "Signed in; `Set-Cookie: gw_session=…`"),
        (status = 401, body = ErrorBody, description = "invalid_credentials"),
        (status = 422, body = ErrorBody), (status = 429, body = ErrorBody, description = "rate_limited, with Retry-After")))]
pub async fn login(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    ApiJson(body): ApiJson<LoginBody>,
) -> ApiResult<Response> {
    let email = body.email.trim();
    if email.is_empty() || email.len() > 320 {
        return Err(ApiError::invalid("email", "must be 1–320 characters"));
    }
    if body.password.is_empty() || body.password.len() > MAX_PASSWORD_BYTES {
        return Err(ApiError::invalid("password", format!("must be 1–{MAX_PASSWORD_BYTES} bytes")));
    }
    let ip = client_ip(&headers, peer, state.config.trust_forwarded_for);
    if let Err(wait) = state.sign_in.check_attempt(ip, email) {
        return Ok(rate_limited(wait, "too many sign-in attempts; try again later"));
    }
    let candidate = state.store.login_candidate(email).await?;
    let stored = candidate.as_ref().and_then(|(_, hash)| hash.clone());
    let Some(verified) = state.sign_in.verify_password(body.password, stored).await else {
        return Ok(rate_limited(Duration::from_secs(1), "the gateway is busy signing people in; try again"));
    };
    let user = match candidate {
        Some((user, _)) if verified => user,
        _ => {
            tracing::info!(%ip, "sign-in refused: wrong e-mail or password");
            return Err(ApiError::new(StatusCode::UNAUTHORIZED, "invalid_credentials", "wrong e-mail or password"));
        }
    };
    // Signing in again replaces the session this browser had.
    if let Some(old) = session_token(&headers)
        && let Some(old) = state.store.session(old, now_ms()).await?
    {
        state.store.end_session(old.id).await?;
    }
    let now = now_ms();
    let ttl_ms = i64::try_from(state.sign_in.session_ttl.as_millis()).unwrap_or(i64::MAX);
    let session = state.store.create_session(user.id, now, now.saturating_add(ttl_ms)).await?;
    tracing::info!(user_id = %user.id, "signed in");
    let view = SessionView { user: me_view(&state, user.into()).await?, csrf_token: session.csrf_token };
    let cookie = state.sign_in.session_cookie(&session.token);
    Ok(no_store(([(header::SET_COOKIE, cookie)], Json(view)).into_response()))
}

fn cookie_session(auth: Authenticated) -> ApiResult<(crate::auth::AuthUser, Session)> {
    match auth.credential {
        Credential::Session(session) => Ok((auth.user, session)),
        Credential::Bearer => Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "this route is about sign-in sessions (the gw_session cookie), not API tokens",
        )),
    }
}

/// The current sign-in session: the same body as the sign-in answer, or 401.
#[utoipa::path(get, path = "/api/auth/session", tag = "auth", security(("session" = [])),
    responses((status = 200, body = SessionView), (status = 401, body = ErrorBody)))]
pub async fn session(State(state): State<AppState>, auth: Authenticated) -> ApiResult<Response> {
    let (user, session) = cookie_session(auth)?;
    let view = SessionView { user: me_view(&state, user).await?, csrf_token: session.csrf_token };
    Ok(no_store(Json(view).into_response()))
}

/// Signs out: ends the session on the server and expires the cookie. Needs `X-CSRF-Token`.
#[utoipa::path(post, path = "/api/auth/logout", tag = "auth", security(("session" = [])),
    responses((status = 204, description = "Signed out; `Set-Cookie` expires gw_session"),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody, description = "csrf_failed")))]
pub async fn logout(State(state): State<AppState>, auth: Authenticated) -> ApiResult<Response> {
    let (user, session) = cookie_session(auth)?;
    state.store.end_session(session.id).await?;
    tracing::info!(user_id = %user.id, "signed out");
    Ok(([(header::SET_COOKIE, state.sign_in.removal_cookie())], StatusCode::NO_CONTENT).into_response())
}
