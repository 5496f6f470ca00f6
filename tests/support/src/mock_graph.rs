//! The slice of Meta's Graph API the gateway calls to verify a WhatsApp
//! number: `GET /{version}/{phone_number_id}?fields=…` with a Bearer token.
//!
//! Bodies come from `shared/fixtures/whatsapp/graph-*.json`. A token the mock
//! does not know gets the 401 / 190 body; no token 400 / 104; an unknown id
//! 404 `GraphMethodException` 803; a known token asking for another number's
//! id 403 / 200 "(#200) Permissions error"; an unknown field 400 / 100
//! "Tried accessing nonexisting field". The token may also come as the
//! `access_token` query parameter, as Graph allows.

use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::Serialize;
use serde_json::{Map, Value, json};
use tokio_util::sync::CancellationToken;

use crate::fixtures;
use crate::ids;
use crate::recorder::{Recorder, WaitTimeout};
use crate::server::{self, ServerHandle};

/// One WhatsApp Business phone number and the token that may read it.
#[derive(Debug, Clone, PartialEq)]
pub struct GraphPhoneNumber {
    pub id: String,
    pub token: String,
    pub display_phone_number: String,
    pub verified_name: String,
    pub quality_rating: String,
    pub name_status: String,
    pub code_verification_status: String,
}

impl GraphPhoneNumber {
    pub fn new(id: impl Into<String>, token: impl Into<String>) -> Self {
        Self {
            id: id.into(),
            token: token.into(),
            display_phone_number: "+1 555-555-5555".into(),
            verified_name: "Jaspers Market".into(),
            quality_rating: "GREEN".into(),
            name_status: "APPROVED".into(),
            code_verification_status: "VERIFIED".into(),
        }
    }
}

#[derive(Debug, Clone)]
pub struct GraphConfig {
    pub numbers: Vec<GraphPhoneNumber>,
}

pub const TEST_PHONE_NUMBER_ID: &str = "106853218861309";
pub const TEST_ACCESS_TOKEN: &str = "test-graph-token";

impl Default for GraphConfig {
    fn default() -> Self {
        Self { numbers: vec![GraphPhoneNumber::new(TEST_PHONE_NUMBER_ID, TEST_ACCESS_TOKEN)] }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GraphRequestRecord {
    pub method: String,
    pub path: String,
    pub query: Option<String>,
    pub token: Option<String>,
    pub status: u16,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct GraphState {
    pub requests: Vec<GraphRequestRecord>,
}

const FIELDS: &[&str] = &[
    "id",
    "display_phone_number",
    "verified_name",
    "quality_rating",
    "name_status",
    "code_verification_status",
    "platform_type",
    "throughput",
];
const DEFAULT_FIELDS: &[&str] = &["id", "display_phone_number", "verified_name", "quality_rating"];

struct Shared {
    config: GraphConfig,
    invalid_token: Value,
    recorder: Recorder<GraphState>,
}

pub struct MockGraph {
    shared: Arc<Shared>,
    server: ServerHandle,
}

impl MockGraph {
    /// Starts on `127.0.0.1:0`. Panics when the shared fixtures are missing.
    pub async fn start(config: GraphConfig) -> Self {
        Self::start_on(server::ephemeral(), config).await.expect("start the Graph mock")
    }

    pub async fn start_on(addr: SocketAddr, config: GraphConfig) -> io::Result<Self> {
        let invalid_token = fixtures::load_json("whatsapp/graph-error-invalid-token.json")
            .map_err(io::Error::other)?["response"]["body"]
            .clone();
        // The success fixture shapes the fields served; load it to fail early
        // when the shared folder is missing.
        fixtures::load_json("whatsapp/graph-phone-number.json").map_err(io::Error::other)?;
        let shared = Arc::new(Shared { config, invalid_token, recorder: Recorder::new(GraphState::default()) });
        let router = Router::new()
            .route("/__mock/state", get(state_json))
            .route("/{version}/{node}", get(node))
            .fallback(unknown_path)
            .with_state(shared.clone());
        let server = ServerHandle::bind(addr, router, CancellationToken::new()).await?;
        Ok(Self { shared, server })
    }

    pub fn addr(&self) -> SocketAddr {
        self.server.addr()
    }

    /// `http://127.0.0.1:<port>`, the stand-in for `https://graph.facebook.com`.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr())
    }

    pub fn requests(&self) -> Vec<GraphRequestRecord> {
        self.shared.recorder.read(|s| s.requests.clone())
    }

    pub async fn wait_for(
        &self,
        condition: impl FnMut(&GraphState) -> bool,
        timeout: Duration,
    ) -> Result<(), WaitTimeout> {
        self.shared.recorder.wait_for(condition, timeout).await
    }

    pub async fn shutdown(mut self) {
        self.server.shutdown().await;
    }
}

fn graph_error(status: StatusCode, message: &str, kind: &str, code: u32) -> Response {
    let body = json!({"error": {"message": message, "type": kind, "code": code, "fbtrace_id": ids::fbtrace()}});
    (status, [("content-type", "application/json")], body.to_string()).into_response()
}

fn is_version(version: &str) -> bool {
    version.strip_prefix('v').and_then(|v| v.split_once('.')).is_some_and(|(major, minor)| {
        !major.is_empty() && !minor.is_empty() && (major.bytes().chain(minor.bytes())).all(|b| b.is_ascii_digit())
    })
}

impl Shared {
    fn answer(&self, version: &str, id: &str, query: &HashMap<String, String>, token: Option<&str>) -> Response {
        if !is_version(version) {
            return graph_error(
                StatusCode::BAD_REQUEST,
                &format!("Unknown path components: /{id}"),
                "OAuthException",
                2500,
            );
        }
        let Some(token) = token else {
            return graph_error(
                StatusCode::BAD_REQUEST,
                "An access token is required to request this resource.",
                "OAuthException",
                104,
            );
        };
        if !self.config.numbers.iter().any(|n| n.token == token) {
            let mut body = self.invalid_token.clone();
            body["error"]["fbtrace_id"] = json!(ids::fbtrace());
            return (StatusCode::UNAUTHORIZED, [("content-type", "application/json")], body.to_string())
                .into_response();
        }
        let Some(number) = self.config.numbers.iter().find(|n| n.id == id) else {
            return graph_error(
                StatusCode::NOT_FOUND,
                &format!("(#803) Some of the aliases you requested do not exist: {id}"),
                "GraphMethodException",
                803,
            );
        };
        if number.token != token {
            return graph_error(StatusCode::FORBIDDEN, "(#200) Permissions error", "OAuthException", 200);
        }
        let requested: Vec<String> = match query.get("fields") {
            Some(fields) => fields.split(',').map(|f| f.trim().to_owned()).filter(|f| !f.is_empty()).collect(),
            None => DEFAULT_FIELDS.iter().map(|f| (*f).to_owned()).collect(),
        };
        if let Some(unknown) = requested.iter().find(|f| !FIELDS.contains(&f.as_str())) {
            return graph_error(
                StatusCode::BAD_REQUEST,
                &format!(
                    "(#100) Tried accessing nonexisting field ({unknown}) on node type (WhatsAppBusinessPhoneNumber)"
                ),
                "OAuthException",
                100,
            );
        }
        let mut body = Map::new();
        body.insert("id".into(), json!(number.id));
        for field in &requested {
            let value = match field.as_str() {
                "display_phone_number" => json!(number.display_phone_number),
                "verified_name" => json!(number.verified_name),
                "quality_rating" => json!(number.quality_rating),
                "name_status" => json!(number.name_status),
                "code_verification_status" => json!(number.code_verification_status),
                "platform_type" => json!("CLOUD_API"),
                "throughput" => json!({"level": "STANDARD"}),
                _ => json!(number.id),
            };
            body.insert(field.clone(), value);
        }
        (StatusCode::OK, [("content-type", "application/json")], Value::Object(body).to_string()).into_response()
    }

    fn record(&self, method: &Method, uri: &Uri, token: Option<String>, status: StatusCode) {
        let record = GraphRequestRecord {
            method: method.to_string(),
            path: uri.path().to_owned(),
            query: uri.query().map(str::to_owned),
            token,
            status: status.as_u16(),
        };
        self.recorder.update(|s| s.requests.push(record));
    }
}

async fn node(
    State(shared): State<Arc<Shared>>,
    Path((version, id)): Path<(String, String)>,
    Query(query): Query<HashMap<String, String>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    let token = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("OAuth ")))
        .map(str::to_owned)
        .or_else(|| query.get("access_token").cloned());
    let response = shared.answer(&version, &id, &query, token.as_deref());
    shared.record(&method, &uri, token, response.status());
    response
}

async fn unknown_path(State(shared): State<Arc<Shared>>, method: Method, uri: Uri) -> Response {
    let response = graph_error(
        StatusCode::BAD_REQUEST,
        &format!("Unknown path components: {}", uri.path()),
        "OAuthException",
        2500,
    );
    shared.record(&method, &uri, None, response.status());
    response
}

async fn state_json(State(shared): State<Arc<Shared>>) -> Response {
    let state = shared.recorder.read(Clone::clone);
    let body = serde_json::to_value(&state).unwrap_or(Value::Null);
    (StatusCode::OK, [("content-type", "application/json")], body.to_string()).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn get(mock: &MockGraph, path: &str, token: Option<&str>) -> (u16, Value) {
        let mut request = reqwest::Client::new().get(format!("{}{path}", mock.base_url()));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        let response = request.send().await.expect("get");
        let status = response.status().as_u16();
        (status, response.json().await.expect("json"))
    }

    #[tokio::test]
    async fn phone_number_lookup_returns_the_fixture_shape() {
        let mock = MockGraph::start(GraphConfig::default()).await;
        let fixture = fixtures::load_json("whatsapp/graph-phone-number.json").expect("fixture");
        let path = format!(
            "/v23.0/{TEST_PHONE_NUMBER_ID}?fields=display_phone_number,verified_name,quality_rating,name_status,code_verification_status"
        );
        let (status, body) = get(&mock, &path, Some(TEST_ACCESS_TOKEN)).await;
        assert_eq!(status, 200);
        assert_eq!(body, fixture["response"]["body"]);
        let (_, defaults) = get(&mock, &format!("/v23.0/{TEST_PHONE_NUMBER_ID}"), Some(TEST_ACCESS_TOKEN)).await;
        assert_eq!(
            defaults.as_object().map(|o| o.keys().cloned().collect::<Vec<_>>()),
            Some(vec!["display_phone_number".into(), "id".into(), "quality_rating".into(), "verified_name".into()])
        );
        assert_eq!(mock.requests()[0].token.as_deref(), Some(TEST_ACCESS_TOKEN));
    }

    #[tokio::test]
    async fn bad_tokens_ids_and_fields_get_graph_errors() {
        let mock = MockGraph::start(GraphConfig {
            numbers: vec![
                GraphPhoneNumber::new(TEST_PHONE_NUMBER_ID, TEST_ACCESS_TOKEN),
                GraphPhoneNumber::new("222", "other-token"),
            ],
        })
        .await;
        let path = format!("/v23.0/{TEST_PHONE_NUMBER_ID}?fields=display_phone_number,verified_name");
        let (status, body) = get(&mock, &path, Some("not-a-real-token")).await;
        assert_eq!(status, 401);
        assert_eq!(body["error"]["code"], 190);
        assert_eq!(body["error"]["type"], "OAuthException");
        assert_eq!(body["error"]["message"], "Invalid OAuth access token - Cannot parse access token");
        let (status, body) = get(&mock, &path, None).await;
        assert_eq!((status, body["error"]["code"].as_u64()), (400, Some(104)));
        let (status, body) = get(&mock, "/v23.0/999", Some(TEST_ACCESS_TOKEN)).await;
        assert_eq!((status, body["error"]["code"].as_u64()), (404, Some(803)));
        assert_eq!(body["error"]["type"], "GraphMethodException");
        let (status, body) = get(&mock, "/v23.0/222", Some(TEST_ACCESS_TOKEN)).await;
        assert_eq!((status, body["error"]["code"].as_u64()), (403, Some(200)));
        let (status, body) =
            get(&mock, &format!("/v23.0/{TEST_PHONE_NUMBER_ID}?fields=foo"), Some(TEST_ACCESS_TOKEN)).await;
        assert_eq!((status, body["error"]["code"].as_u64()), (400, Some(100)));
        assert_eq!(mock.requests().len(), 5);
    }
}
