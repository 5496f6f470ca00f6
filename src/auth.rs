//! Who is calling the API, and on behalf of which company.
//!
//! A request proves who it is in one of two ways (docs/auth.md):
//! - `Authorization: Bearer <token>`: API clients and scripts. Tokens come from the CLI,
//!   expire (401 `token_expired`) and can be revoked.
//! - the `gw_session` cookie: people signed in to a console with `POST /api/auth/login`.
//!   A browser sends cookies on its own, so cookie-authenticated requests obey two more
//!   rules ([`check_cookie_request`]): state-changing methods echo the session's CSRF token
//!   in `X-CSRF-Token` (403 `csrf_failed`), and WebSocket upgrades come from the gateway's
//!   own origin (401: cross-site WebSocket hijacking). A bearer token is never sent by a
//!   browser on its own, so bearer requests need neither; when both are present the
//!   bearer token is the credential.
//!
//! Company-scoped routes act on the *active company*: the `X-Company-Id` header (the API's
//! equivalent of the platform's active-company cookie), or the user's only company when
//! they have exactly one — the same for both kinds of credential.
//!
//! - [`password`]: Argon2id hashes and the password rules
//! - [`SignIn`]: sign-in settings and limits (attempts per IP and per account, hashing slots),
//!   and the session cookie

pub mod password;

use std::net::IpAddr;
use std::time::Duration;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use cookie::{Cookie, SameSite};

use crate::api::error::ApiError;
use crate::app::AppState;
use crate::crypto::constant_time_eq;
use crate::ids::{CompanyId, UserId};
use crate::rate_limit::{IpRateLimiter, KeyedRateLimiter};
use crate::store::{Role, Session, TokenCheck, User};
use crate::time::now_ms;

/// Header naming the active company.
pub const COMPANY_HEADER: &str = "x-company-id";
/// The sign-in session cookie.
pub const SESSION_COOKIE: &str = "gw_session";
/// Header carrying the session's CSRF token on state-changing cookie requests.
pub const CSRF_HEADER: &str = "x-csrf-token";
/// Longest credential (token or cookie value) looked up; real ones are under 50 characters.
const MAX_CREDENTIAL_CHARS: usize = 200;

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

/// How a request authenticated.
#[derive(Debug, Clone)]
pub enum Credential {
    /// `Authorization: Bearer`.
    Bearer,
    /// The `gw_session` cookie, with the session it names.
    Session(Session),
}

fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then_some(token.trim()).filter(|t| !t.is_empty())
}

/// The `gw_session` cookie's value, if the request carries one.
pub fn session_token(headers: &HeaderMap) -> Option<&str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == SESSION_COOKIE)
        .map(|(_, value)| value.trim())
        .filter(|value| !value.is_empty())
}

/// Why a request with a live session cookie is refused.
#[derive(Debug, PartialEq, Eq)]
pub enum CookieRefusal {
    /// A state-changing method without the session's CSRF token.
    CsrfFailed,
    /// A WebSocket upgrade from a page of another origin.
    ForeignOrigin,
}

impl From<CookieRefusal> for ApiError {
    fn from(refusal: CookieRefusal) -> Self {
        match refusal {
            CookieRefusal::CsrfFailed => ApiError::new(
                StatusCode::FORBIDDEN,
                "csrf_failed",
                "signed-in requests that change something must carry the session's X-CSRF-Token header",
            ),
            CookieRefusal::ForeignOrigin => ApiError::new(
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                "a signed-in WebSocket must be opened from the gateway's own origin",
            ),
        }
    }
}

fn is_websocket_upgrade(method: &Method, headers: &HeaderMap) -> bool {
    // HTTP/1.1 upgrades with `Upgrade: websocket`; HTTP/2 (RFC 8441) with CONNECT.
    *method == Method::CONNECT
        || headers
            .get(header::UPGRADE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.split(',').any(|p| p.trim().eq_ignore_ascii_case("websocket")))
}

/// The rules for a request authenticated by a live session cookie (docs/auth.md):
/// WebSocket upgrades must come from `public_origin`; POST, PUT, PATCH and DELETE must
/// carry `csrf_token` in `X-CSRF-Token`; other reads pass.
pub fn check_cookie_request(
    method: &Method,
    headers: &HeaderMap,
    csrf_token: &str,
    public_origin: &str,
) -> Result<(), CookieRefusal> {
    if is_websocket_upgrade(method, headers) {
        let origin = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok());
        return match origin {
            Some(origin) if origin.eq_ignore_ascii_case(public_origin) => Ok(()),
            _ => Err(CookieRefusal::ForeignOrigin),
        };
    }
    if matches!(*method, Method::POST | Method::PUT | Method::PATCH | Method::DELETE) {
        let sent = headers.get(CSRF_HEADER).map(HeaderValue::as_bytes).unwrap_or_default();
        if !constant_time_eq(sent, csrf_token.as_bytes()) {
            return Err(CookieRefusal::CsrfFailed);
        }
    }
    Ok(())
}

fn unauthorized_session() -> ApiError {
    ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", "not signed in, or the session has ended: sign in again")
}

/// Authenticates a request by its bearer token or, without one, its session cookie
/// (applying [`check_cookie_request`]). Every extractor below goes through here; WebSocket
/// handlers take [`AuthUser`] (or [`Authenticated`]) *before* `WebSocketUpgrade`, so a
/// refusal is an HTTP 401/403 and no upgrade happens.
pub async fn authenticate(parts: &Parts, state: &AppState) -> Result<(AuthUser, Credential), ApiError> {
    if parts.headers.contains_key(header::AUTHORIZATION) {
        let token =
            bearer(&parts.headers).filter(|t| t.len() <= MAX_CREDENTIAL_CHARS).ok_or_else(ApiError::unauthorized)?;
        return match state.store.check_api_token(token, now_ms()).await? {
            TokenCheck::Valid(user) => Ok((user.into(), Credential::Bearer)),
            TokenCheck::Expired => Err(ApiError::new(
                StatusCode::UNAUTHORIZED,
                "token_expired",
                "this API token has expired: issue a new one with `gateway user token`",
            )),
            TokenCheck::Refused => Err(ApiError::unauthorized()),
        };
    }
    let token =
        session_token(&parts.headers).filter(|t| t.len() <= MAX_CREDENTIAL_CHARS).ok_or_else(ApiError::unauthorized)?;
    let session = state.store.session(token, now_ms()).await?.ok_or_else(unauthorized_session)?;
    check_cookie_request(&parts.method, &parts.headers, &session.csrf_token, &state.sign_in.public_origin)?;
    Ok((session.user.clone().into(), Credential::Session(session)))
}

impl FromRequestParts<AppState> for AuthUser {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        Ok(authenticate(parts, state).await?.0)
    }
}

/// The user and how they authenticated (for routes that treat sessions specially).
#[derive(Debug, Clone)]
pub struct Authenticated {
    pub user: AuthUser,
    pub credential: Credential,
}

impl FromRequestParts<AppState> for Authenticated {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let (user, credential) = authenticate(parts, state).await?;
        Ok(Self { user, credential })
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

/// Someone who handles the active company's callers (the agent API, the ticket inbox): a
/// support agent or company admin of it, or a master admin acting on it. Every role may,
/// so membership of the company is what is checked.
#[derive(Debug, Clone)]
pub struct CompanyStaff {
    pub user: AuthUser,
    pub company_id: CompanyId,
}

impl CompanyStaff {
    /// Checks the company: `requested` (for a WebSocket, from the query string), or the
    /// user's only one.
    pub async fn check(user: AuthUser, requested: Option<CompanyId>, state: &AppState) -> Result<Self, ApiError> {
        let company_id = company_for(requested, &user, state).await?;
        Ok(Self { user, company_id })
    }
}

impl FromRequestParts<AppState> for CompanyStaff {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let user = AuthUser::from_request_parts(parts, state).await?;
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
    company_for(requested, user, state).await
}

/// The company a user acts on: `requested` (from `X-Company-Id`, or for a WebSocket, where
/// browsers cannot set headers, a query parameter), checked against their memberships, or
/// their only company.
pub async fn company_for(
    requested: Option<CompanyId>,
    user: &AuthUser,
    state: &AppState,
) -> Result<CompanyId, ApiError> {
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

/// Sign-in settings and the limits on attempts, shared by the sign-in routes.
pub struct SignIn {
    /// How long a session lasts from sign-in (absolute, not sliding).
    pub session_ttl: Duration,
    /// `Secure` on the cookie: when the public URL is https.
    pub secure_cookie: bool,
    /// The public URL's origin (`https://voice.example.com`), which signed-in WebSockets must come from.
    pub public_origin: String,
    per_ip: IpRateLimiter,
    per_account: KeyedRateLimiter<String>,
    /// Bounds concurrent Argon2 checks (19 MiB and tens of milliseconds each).
    hashing: tokio::sync::Semaphore,
}

/// The window over which sign-in attempts are counted.
pub const LOGIN_WINDOW: Duration = Duration::from_secs(15 * 60);

impl SignIn {
    /// Settings from the public URL and the configured limits (attempts per [`LOGIN_WINDOW`]).
    pub fn new(public_url: &url::Url, session_ttl: Duration, per_ip: u32, per_account: u32) -> Self {
        let slots = std::thread::available_parallelism().map_or(2, |n| n.get()).max(2);
        Self {
            session_ttl,
            secure_cookie: public_url.scheme() == "https",
            public_origin: public_url.origin().ascii_serialization(),
            per_ip: IpRateLimiter::per_period(per_ip, LOGIN_WINDOW),
            per_account: KeyedRateLimiter::per_period(per_account, LOGIN_WINDOW),
            hashing: tokio::sync::Semaphore::new(slots),
        }
    }

    /// Counts a sign-in attempt from `ip` for `email` (whether or not such an account
    /// exists): Ok, or how long to wait. An address already refused spends nothing of the
    /// account's allowance.
    pub fn check_attempt(&self, ip: IpAddr, email: &str) -> Result<(), Duration> {
        self.per_ip.check(ip)?;
        self.per_account.check(email.trim().to_lowercase())
    }

    /// Verifies a password off the async runtime, a bounded number at a time; `None` when
    /// no slot freed up within a few seconds (the caller answers 429).
    pub async fn verify_password(&self, password: String, stored: Option<String>) -> Option<bool> {
        let permit = tokio::time::timeout(Duration::from_secs(5), self.hashing.acquire()).await.ok()?.ok()?;
        let verified =
            tokio::task::spawn_blocking(move || password::verify_password(&password, stored.as_deref())).await;
        drop(permit);
        Some(verified.unwrap_or(false))
    }

    /// The `Set-Cookie` value that carries a new session.
    pub fn session_cookie(&self, token: &str) -> HeaderValue {
        let max_age = i64::try_from(self.session_ttl.as_secs()).unwrap_or(i64::MAX);
        let cookie = Cookie::build((SESSION_COOKIE, token))
            .path("/")
            .http_only(true)
            .secure(self.secure_cookie)
            .same_site(SameSite::Strict)
            .max_age(cookie::time::Duration::seconds(max_age))
            .build();
        HeaderValue::from_str(&cookie.to_string()).expect("a session cookie is a valid header value")
    }

    /// The `Set-Cookie` value that makes the browser forget the session.
    pub fn removal_cookie(&self) -> HeaderValue {
        let mut cookie = Cookie::build((SESSION_COOKIE, ""))
            .path("/")
            .http_only(true)
            .secure(self.secure_cookie)
            .same_site(SameSite::Strict)
            .build();
        cookie.make_removal();
        HeaderValue::from_str(&cookie.to_string()).expect("a removal cookie is a valid header value")
    }

    /// Forgets idle rate-limit entries (housekeeping).
    pub fn forget_idle(&self) {
        self.per_ip.forget_idle();
        self.per_account.forget_idle();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ORIGIN: &str = "https://voice.example.com";

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for (name, value) in pairs {
            headers.append(*name, HeaderValue::from_static(value));
        }
        headers
    }

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

    #[test]
    fn the_session_cookie_is_found_among_others() {
        let h = headers(&[("cookie", "theme=dark; gw_session=gws_abc ; other=1")]);
        assert_eq!(session_token(&h), Some("gws_abc"));
        let h = headers(&[("cookie", "theme=dark"), ("cookie", "gw_session=gws_x")]);
        assert_eq!(session_token(&h), Some("gws_x"));
        assert_eq!(session_token(&headers(&[("cookie", "gw_session=")])), None);
        assert_eq!(session_token(&headers(&[("cookie", "not_gw_session=gws_x")])), None);
    }

    #[test]
    fn cookie_requests_that_change_state_need_the_csrf_token() {
        for method in [Method::POST, Method::PUT, Method::PATCH, Method::DELETE] {
            let none = check_cookie_request(&method, &HeaderMap::new(), "csrf-1", ORIGIN);
            assert_eq!(none, Err(CookieRefusal::CsrfFailed), "{method}");
            let wrong = check_cookie_request(&method, &headers(&[("x-csrf-token", "csrf-2")]), "csrf-1", ORIGIN);
            assert_eq!(wrong, Err(CookieRefusal::CsrfFailed));
            let right = check_cookie_request(&method, &headers(&[("x-csrf-token", "csrf-1")]), "csrf-1", ORIGIN);
            assert_eq!(right, Ok(()));
        }
        for method in [Method::GET, Method::HEAD, Method::OPTIONS] {
            assert_eq!(check_cookie_request(&method, &HeaderMap::new(), "csrf-1", ORIGIN), Ok(()), "{method}");
        }
    }

    #[test]
    fn cookie_websockets_must_come_from_the_public_origin() {
        let upgrade = |origin: Option<&'static str>| {
            let mut h = headers(&[("upgrade", "websocket"), ("connection", "Upgrade")]);
            if let Some(origin) = origin {
                h.insert(header::ORIGIN, HeaderValue::from_static(origin));
            }
            check_cookie_request(&Method::GET, &h, "csrf-1", ORIGIN)
        };
        assert_eq!(upgrade(Some(ORIGIN)), Ok(()));
        assert_eq!(upgrade(Some("https://evil.example")), Err(CookieRefusal::ForeignOrigin));
        assert_eq!(upgrade(Some("https://voice.example.com.evil.example")), Err(CookieRefusal::ForeignOrigin));
        assert_eq!(upgrade(None), Err(CookieRefusal::ForeignOrigin));
        let h2 = headers(&[("origin", "https://evil.example")]);
        assert_eq!(check_cookie_request(&Method::CONNECT, &h2, "csrf-1", ORIGIN), Err(CookieRefusal::ForeignOrigin));
    }

    #[test]
    fn session_cookies_are_http_only_strict_and_secure_only_over_https() {
        let ttl = Duration::from_secs(12 * 3600);
        let https = SignIn::new(&"https://voice.example.com/gw/".parse().unwrap(), ttl, 5, 5);
        assert_eq!(https.public_origin, ORIGIN);
        let cookie = https.session_cookie("gws_abc");
        let cookie = cookie.to_str().unwrap();
        for part in ["gw_session=gws_abc", "HttpOnly", "SameSite=Strict", "Secure", "Path=/", "Max-Age=43200"] {
            assert!(cookie.contains(part), "{part} missing from {cookie}");
        }
        let http = SignIn::new(&"http://127.0.0.1:8080".parse().unwrap(), ttl, 5, 5);
        let cookie = http.session_cookie("gws_abc");
        assert!(!cookie.to_str().unwrap().contains("Secure"));
        let removal = http.removal_cookie();
        let removal = removal.to_str().unwrap();
        assert!(removal.starts_with("gw_session=;") && removal.contains("Max-Age=0"), "{removal}");
    }

    #[test]
    fn sign_in_attempts_are_limited_per_address_and_per_account() {
        let limits = SignIn::new(&"http://127.0.0.1:8080".parse().unwrap(), Duration::from_secs(60), 3, 2);
        let (a, b): (IpAddr, IpAddr) = ("192.0.2.1".parse().unwrap(), "192.0.2.2".parse().unwrap());
        assert!(limits.check_attempt(a, "x@example.com").is_ok());
        assert!(limits.check_attempt(b, "X@Example.com ").is_ok(), "one account whatever its spelling");
        assert!(limits.check_attempt(a, "x@example.com").is_err(), "the account's two attempts are spent");
        assert!(limits.check_attempt(a, "y@example.com").is_ok(), "the address has one left");
        let wait = limits.check_attempt(a, "z@example.com").unwrap_err();
        assert!(wait > Duration::from_secs(200) && wait <= LOGIN_WINDOW / 3, "{wait:?}");
    }
}
