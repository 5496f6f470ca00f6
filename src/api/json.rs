//! `ApiJson<T>`: the JSON body extractor of every route. Unlike axum's `Json` it answers
//! with the API's error shape, and names the field a value is wrong for.

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::StatusCode;
use axum::http::header::CONTENT_TYPE;
use serde::de::DeserializeOwned;

use super::error::ApiError;

/// A JSON request body, parsed strictly.
pub struct ApiJson<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let is_json = req
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("application/json") || v.contains("+json"));
        if !is_json {
            return Err(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                "the body must be JSON with `Content-Type: application/json`",
            ));
        }
        let bytes = Bytes::from_request(req, state).await.map_err(|rejection| {
            if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "body_too_large", "the request body is too large")
            } else {
                ApiError::bad_request("invalid_body", rejection.body_text())
            }
        })?;
        parse(&bytes).map(ApiJson)
    }
}

/// Parses JSON, mapping errors to `invalid_json` (syntax, 400) or `invalid_value` (a
/// field of the wrong type, missing or unknown, 422 with its path).
pub fn parse<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let de = &mut serde_json::Deserializer::from_slice(bytes);
    serde_path_to_error::deserialize(de).map_err(|err| {
        let path = err.path().to_string();
        let inner = err.into_inner();
        if inner.is_syntax() || inner.is_eof() {
            return ApiError::bad_request("invalid_json", format!("the body is not valid JSON: {inner}"));
        }
        let message = strip_position(&inner.to_string());
        // The path names the offending key (unknown keys included); "." is the body itself.
        if path == "." {
            ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_value", message)
        } else {
            ApiError::invalid(path, message)
        }
    })
}

fn strip_position(message: &str) -> String {
    match message.find(" at line ") {
        Some(i) => message[..i].to_owned(),
        None => message.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(serde::Deserialize, Debug)]
    #[serde(deny_unknown_fields, rename_all = "camelCase")]
    #[allow(dead_code)]
    struct Body {
        voice_speed: Option<f64>,
        inner: Option<Inner>,
    }

    #[derive(serde::Deserialize, Debug)]
    #[serde(deny_unknown_fields, rename_all = "camelCase")]
    #[allow(dead_code)]
    struct Inner {
        call_enabled: Option<bool>,
    }

    #[test]
    fn syntax_errors_are_invalid_json() {
        let err = parse::<Body>(b"{nope").unwrap_err();
        assert_eq!((err.status, err.code), (StatusCode::BAD_REQUEST, "invalid_json"));
    }

    #[test]
    fn wrong_types_name_the_field() {
        let err = parse::<Body>(br#"{"voiceSpeed":"fast"}"#).unwrap_err();
        assert_eq!((err.status, err.field.as_deref()), (StatusCode::UNPROCESSABLE_ENTITY, Some("voiceSpeed")));
        let err = parse::<Body>(br#"{"inner":{"callEnabled":"yes"}}"#).unwrap_err();
        assert_eq!(err.field.as_deref(), Some("inner.callEnabled"));
    }

    #[test]
    fn unknown_fields_are_named() {
        let err = parse::<Body>(br#"{"volume":3}"#).unwrap_err();
        assert_eq!(err.field.as_deref(), Some("volume"));
        let err = parse::<Body>(br#"{"inner":{"x":1}}"#).unwrap_err();
        assert_eq!(err.field.as_deref(), Some("inner.x"));
    }
}
