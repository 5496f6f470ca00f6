//! The one error type of the HTTP edge: `{"error":{"code","message","field"}}` with a
//! status. Internal causes are logged here and never sent to clients.

use std::time::Duration;

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

use crate::settings::FieldError;
use crate::store::StoreError;

/// An API error: a stable `code` clients can branch on, a message for people, and the
/// offending field where there is one.
#[derive(Debug, Clone)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    pub field: Option<String>,
    /// Seconds after which trying again may succeed, sent as `Retry-After`.
    pub retry_after: Option<u64>,
}

/// `Retry-After` of a `database_unavailable` answer: a locked or restarting database is
/// usually back within seconds.
pub const DATABASE_RETRY_AFTER_SECS: u64 = 5;

/// Body of every error response.
#[derive(Serialize, ToSchema)]
pub struct ErrorBody {
    error: ErrorDetail,
}

/// The error itself.
#[derive(Serialize, ToSchema)]
pub struct ErrorDetail {
    /// Stable machine-readable code, e.g. `not_found`, `invalid_value`, `calls_disabled`.
    code: &'static str,
    /// Explanation for people.
    message: String,
    /// The request field at fault, when there is one (camelCase, dotted for nesting).
    #[serde(skip_serializing_if = "Option::is_none")]
    field: Option<String>,
}

impl ApiError {
    /// An error with a status, code and message.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self { status, code, message: message.into(), field: None, retry_after: None }
    }

    /// Names the field at fault.
    pub fn with_field(mut self, field: impl Into<String>) -> Self {
        self.field = Some(field.into());
        self
    }

    /// Replaces the code, keeping status and message.
    pub fn with_code(mut self, code: &'static str) -> Self {
        self.code = code;
        self
    }

    /// 400 with a code.
    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, message)
    }

    /// 401: no or unknown token.
    pub fn unauthorized() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "a valid `Authorization: Bearer <token>` header is required",
        )
    }

    /// 403 for a role or membership that does not allow the action.
    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "forbidden", message)
    }

    /// 404 for something that does not exist or belongs to another tenant.
    pub fn not_found(what: &str) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", format!("{what} not found"))
    }

    /// 409 with a code.
    pub fn conflict(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, code, message)
    }

    /// 422: a field's value is invalid.
    pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_value", message).with_field(field)
    }

    /// Says when trying again may succeed (`Retry-After`, whole seconds rounded up).
    pub fn with_retry_after(mut self, wait: Duration) -> Self {
        self.retry_after = Some(crate::rate_limit::retry_after_secs(wait));
        self
    }

    /// 429, with how long to wait.
    pub fn rate_limited(message: impl Into<String>, wait: Duration) -> Self {
        Self::new(StatusCode::TOO_MANY_REQUESTS, "rate_limited", message).with_retry_after(wait)
    }

    /// 503: the database cannot serve the request now (nothing was changed); retryable.
    pub fn database_unavailable(cause: impl std::fmt::Display) -> Self {
        tracing::warn!(error = %cause, "database unavailable");
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "database_unavailable",
            "the database is unavailable; nothing was changed, try again shortly",
        )
        .with_retry_after(Duration::from_secs(DATABASE_RETRY_AFTER_SECS))
    }

    /// 500, logging the cause; the client sees a generic message.
    pub fn internal(cause: impl std::fmt::Display) -> Self {
        tracing::error!(error = %cause, "internal error");
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", "internal error; it has been logged")
    }
}

impl From<FieldError> for ApiError {
    fn from(err: FieldError) -> Self {
        Self::invalid(err.field, err.message)
    }
}

impl From<StoreError> for ApiError {
    fn from(err: StoreError) -> Self {
        match err {
            StoreError::Conflict => Self::conflict("already_exists", "a record with the same unique key exists"),
            StoreError::ForeignKey => Self::conflict("in_use", "the record is referenced by other records"),
            unavailable if unavailable.is_unavailable() => Self::database_unavailable(unavailable),
            other => Self::internal(other),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody { error: ErrorDetail { code: self.code, message: self.message, field: self.field } };
        let mut response = (self.status, axum::Json(body)).into_response();
        if let Some(seconds) = self.retry_after {
            response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        response
    }
}

/// Result of a handler.
pub type ApiResult<T> = Result<T, ApiError>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unavailable_database_is_a_retryable_503() {
        let err = ApiError::from(StoreError::Unavailable(sqlx::Error::PoolTimedOut));
        assert_eq!((err.status, err.code), (StatusCode::SERVICE_UNAVAILABLE, "database_unavailable"));
        let response = err.into_response();
        assert_eq!(response.headers()[header::RETRY_AFTER], "5");
        let err = ApiError::from(StoreError::Database(sqlx::Error::RowNotFound));
        assert_eq!((err.status, err.code), (StatusCode::INTERNAL_SERVER_ERROR, "internal"));
    }

    #[test]
    fn rate_limits_say_when_to_come_back_rounded_up() {
        let response = ApiError::rate_limited("slow down", Duration::from_millis(5_900)).into_response();
        assert_eq!(response.headers()[header::RETRY_AFTER], "6");
    }
}
