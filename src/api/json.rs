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
        let is_json = req.headers().get(CONTENT_TYPE).and_then(|v| v.to_str().ok()).is_some_and(is_json_media_type);
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
            } else if let Some(slow) = cause::<crate::server::BodyTooSlow>(&rejection) {
                ApiError::new(StatusCode::REQUEST_TIMEOUT, "body_too_slow", slow.to_string())
            } else {
                ApiError::bad_request("invalid_body", rejection.body_text())
            }
        })?;
        parse(&bytes).map(ApiJson)
    }
}

/// The first error of type `E` in `err`'s chain of sources.
fn cause<'a, E: std::error::Error + 'static>(err: &'a (dyn std::error::Error + 'static)) -> Option<&'a E> {
    let mut current = Some(err);
    while let Some(err) = current {
        if let Some(found) = err.downcast_ref::<E>() {
            return Some(found);
        }
        current = err.source();
    }
    None
}

/// Whether a `Content-Type` value names JSON (`application/json` or `application/*+json`).
/// Media types are case-insensitive and may carry parameters (`; charset=UTF-8`).
pub fn is_json_media_type(value: &str) -> bool {
    value.parse::<mime::Mime>().is_ok_and(|media| {
        media.type_() == mime::APPLICATION && (media.subtype() == mime::JSON || media.suffix() == Some(mime::JSON))
    })
}

/// A query string, parsed strictly, with errors in the API's shape (422 and the parameter).
pub struct ApiQuery<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> axum::extract::FromRequestParts<S> for ApiQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut axum::http::request::Parts, _: &S) -> Result<Self, ApiError> {
        let query = parts.uri.query().unwrap_or_default();
        let de = serde_urlencoded::Deserializer::new(form_urlencoded::parse(query.as_bytes()));
        serde_path_to_error::deserialize(de).map(ApiQuery).map_err(|err| {
            let field = err.path().to_string();
            let message = strip_position(&err.into_inner().to_string());
            if field == "." {
                ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_value", message)
            } else {
                ApiError::invalid(field, message)
            }
        })
    }
}

/// Parses JSON, mapping errors to `invalid_json` (syntax, 400) or `invalid_value` (a
/// field of the wrong type, missing or unknown, 422 with its path). Text containing NUL
/// characters is refused everywhere: Postgres cannot store it, and no field needs it.
pub fn parse<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    if contains_nul_escape(bytes)
        && let Ok(value) = serde_json::from_slice::<serde_json::Value>(bytes)
        && let Some(field) = nul_field(&value, String::new())
    {
        let message = "may not contain NUL characters";
        return Err(if field.is_empty() {
            ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_value", message)
        } else {
            ApiError::invalid(field, message)
        });
    }
    let syntax = |inner: serde_json::Error| {
        ApiError::bad_request("invalid_json", format!("the body is not valid JSON: {inner}"))
    };
    let de = &mut serde_json::Deserializer::from_slice(bytes);
    let value = serde_path_to_error::deserialize(&mut *de).map_err(|err| {
        let path = err.path().to_string();
        let inner = err.into_inner();
        if inner.is_syntax() || inner.is_eof() {
            return syntax(inner);
        }
        let message = strip_position(&inner.to_string());
        // The path names the offending key (unknown keys included); "." is the body itself.
        if path == "." {
            ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_value", message)
        } else {
            ApiError::invalid(path, message)
        }
    })?;
    // One value and nothing after it but whitespace: `{…}{…}` is not a body.
    de.end().map_err(syntax)?;
    Ok(value)
}

/// Whether a JSON text has a `\u0000` escape (a raw NUL byte is already invalid JSON).
fn contains_nul_escape(bytes: &[u8]) -> bool {
    bytes.windows(6).any(|w| w[0] == b'\\' && w[1] == b'u' && w[2..].iter().all(|&b| b == b'0'))
}

/// The dotted path of the first string (or key) holding a NUL character.
fn nul_field(value: &serde_json::Value, path: String) -> Option<String> {
    let join = |key: &str| if path.is_empty() { key.to_owned() } else { format!("{path}.{key}") };
    match value {
        serde_json::Value::String(text) => text.contains('\0').then_some(path),
        serde_json::Value::Array(items) => {
            items.iter().enumerate().find_map(|(i, v)| nul_field(v, join(&i.to_string())))
        }
        serde_json::Value::Object(map) => {
            map.iter().find_map(|(k, v)| if k.contains('\0') { Some(join(k)) } else { nul_field(v, join(k)) })
        }
        _ => None,
    }
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
    fn nul_characters_are_refused() {
        let err = parse::<Body>(br#"{"inner":{"callEnabled":"a\u0000b"}}"#).unwrap_err();
        assert_eq!((err.status, err.code), (StatusCode::UNPROCESSABLE_ENTITY, "invalid_value"));
        assert_eq!(err.field.as_deref(), Some("inner.callEnabled"));
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
    fn trailing_data_after_the_body_is_refused() {
        for body in [&br#"{"voiceSpeed":1.0}{"voiceSpeed":2.0}"#[..], br#"{"voiceSpeed":1.0} x"#, br#"{} {}"#] {
            let err = parse::<Body>(body).unwrap_err();
            assert_eq!((err.status, err.code), (StatusCode::BAD_REQUEST, "invalid_json"), "{:?}", err.message);
        }
        assert!(parse::<Body>(b"{\"voiceSpeed\":1.0} \r\n").is_ok(), "trailing whitespace is fine");
    }

    #[test]
    fn media_types_are_matched_case_insensitively_with_any_parameters() {
        for json in [
            "application/json",
            "APPLICATION/JSON",
            "Application/Json; Charset=UTF-8",
            "application/json;charset=utf-8",
            "application/merge-patch+json",
            "application/VND.API+JSON",
        ] {
            assert!(is_json_media_type(json), "{json}");
        }
        for other in
            ["text/plain", "application/jsonx", "text/json+plain; x=+json", "application/x-www-form-urlencoded", ""]
        {
            assert!(!is_json_media_type(other), "{other}");
        }
    }

    #[test]
    fn unknown_fields_are_named() {
        let err = parse::<Body>(br#"{"volume":3}"#).unwrap_err();
        assert_eq!(err.field.as_deref(), Some("volume"));
        let err = parse::<Body>(br#"{"inner":{"x":1}}"#).unwrap_err();
        assert_eq!(err.field.as_deref(), Some("inner.x"));
    }
}
