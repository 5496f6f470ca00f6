//! The shared wire samples (`shared/fixtures/…`), loaded at run time.
//!
//! The folder is `$GATEWAY_SHARED_DIR` when set, else `<workspace>/../shared`.
//! Keys starting with `_` are provenance and notes; [`strip_meta`] removes
//! them (at any depth) before anything is sent.

use std::fmt;
use std::path::{Path, PathBuf};

use serde_json::Value;

/// The shared folder holding `fixtures/`, `protocols/` and `design/`.
pub fn shared_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("GATEWAY_SHARED_DIR") {
        return PathBuf::from(dir);
    }
    // tests/support -> the workspace root -> its sibling `shared`.
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared")
}

/// A file under `shared/fixtures/`, e.g. `fixture_path("twilio/rest-error-20003-401.json")`.
pub fn fixture_path(relative: &str) -> PathBuf {
    shared_dir().join("fixtures").join(relative)
}

/// A fixture that could not be read or parsed.
#[derive(Debug)]
pub struct FixtureError {
    pub path: PathBuf,
    pub reason: String,
}

impl fmt::Display for FixtureError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "fixture {}: {}", self.path.display(), self.reason)
    }
}

impl std::error::Error for FixtureError {}

/// A JSON fixture, meta keys stripped.
pub fn load_json(relative: &str) -> Result<Value, FixtureError> {
    let path = fixture_path(relative);
    let text =
        std::fs::read_to_string(&path).map_err(|e| FixtureError { path: path.clone(), reason: e.to_string() })?;
    let value: Value =
        serde_json::from_str(&text).map_err(|e| FixtureError { path: path.clone(), reason: e.to_string() })?;
    Ok(strip_meta(&value))
}

/// One line of a JSONL fixture.
#[derive(Debug, Clone, PartialEq)]
pub enum FixtureLine {
    /// Line 1 and other lines made only of `_` keys that are not one of the
    /// ones below (`_source`, `_notes`).
    Meta(Value),
    /// A frame the server sends, exactly as sent (meta keys stripped).
    Server(Value),
    /// `_expect_client`: the frame the client sends at this point.
    ExpectClient(Value),
    /// `_ws_close`: the server closes the socket.
    Close { code: u16, reason: String },
    /// `_note`: commentary.
    Note(String),
}

/// A JSONL fixture, one entry per line.
pub fn load_jsonl(relative: &str) -> Result<Vec<FixtureLine>, FixtureError> {
    let path = fixture_path(relative);
    let text =
        std::fs::read_to_string(&path).map_err(|e| FixtureError { path: path.clone(), reason: e.to_string() })?;
    text.lines()
        .enumerate()
        .filter(|(_, line)| !line.trim().is_empty())
        .map(|(n, line)| {
            let value: Value = serde_json::from_str(line)
                .map_err(|e| FixtureError { path: path.clone(), reason: format!("line {}: {e}", n + 1) })?;
            Ok(classify(value))
        })
        .collect()
}

fn classify(value: Value) -> FixtureLine {
    let Some(object) = value.as_object() else {
        return FixtureLine::Server(value);
    };
    if !object.keys().all(|k| k.starts_with('_')) {
        return FixtureLine::Server(strip_meta(&value));
    }
    if let Some(frame) = object.get("_expect_client") {
        return FixtureLine::ExpectClient(strip_meta(frame));
    }
    if let Some(close) = object.get("_ws_close") {
        return FixtureLine::Close {
            code: close.get("code").and_then(Value::as_u64).unwrap_or(1000) as u16,
            reason: close.get("reason").and_then(Value::as_str).unwrap_or("").to_owned(),
        };
    }
    if let Some(note) = object.get("_note").and_then(Value::as_str) {
        return FixtureLine::Note(note.to_owned());
    }
    FixtureLine::Meta(value)
}

/// `value` without any object key starting with `_`, at any depth.
pub fn strip_meta(value: &Value) -> Value {
    match value {
        Value::Object(map) => Value::Object(
            map.iter().filter(|(k, _)| !k.starts_with('_')).map(|(k, v)| (k.clone(), strip_meta(v))).collect(),
        ),
        Value::Array(items) => Value::Array(items.iter().map(strip_meta).collect()),
        other => other.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn strip_meta_removes_underscore_keys_at_any_depth() {
        let v = json!({"_source": "x", "a": {"_inferred": true, "b": [ {"_n": 1, "c": 2} ]}});
        assert_eq!(strip_meta(&v), json!({"a": {"b": [{"c": 2}]}}));
    }

    #[test]
    fn jsonl_lines_are_classified() {
        let lines = load_jsonl("gemini-live/error.jsonl").expect("fixture readable");
        assert!(matches!(lines[0], FixtureLine::Meta(_)));
        assert!(matches!(lines[1], FixtureLine::ExpectClient(_)));
        assert_eq!(lines[2], FixtureLine::Close { code: 1007, reason: "Request contains an invalid argument.".into() });
    }

    #[test]
    fn json_fixture_loads_without_meta() {
        let v = load_json("twilio/rest-error-20003-401.json").expect("fixture readable");
        assert!(v.get("_source").is_none());
        assert_eq!(v["body"]["code"], 20003);
    }
}
