//! The slice of Meta's Graph API the gateway calls: `GET /{version}/{phone_number_id}?fields=…`
//! to verify a WhatsApp number, and `POST /{version}/{phone_number_id}/calls` to act on calls
//! (pre_accept, accept, reject, terminate — checked by [`GraphCalls`], see `graph_calls.rs`).
//!
//! Bodies come from `shared/fixtures/whatsapp/graph-*.json`. A token the mock
//! does not know gets the 401 / 190 body; no token 400 / 104; an unknown id
//! 404 `GraphMethodException` 803; a known token asking for another number's
//! id 403 / 200 "(#200) Permissions error"; an unknown field 400 / 100
//! "Tried accessing nonexisting field". The token may also come as the
//! `access_token` query parameter, as Graph allows.
//!
//! Call actions need the Bearer token of the number in the path (401 / 190 otherwise, 403 /
//! 200 for another number's token). Faults can be injected ([`CallFault`]): 500 / 138004,
//! 429 / 138005 or 401 / 190 for the next N call actions. Every call action is recorded with
//! its time ([`CallActionRecord`]); the WhatsApp simulator registers the calls it places and
//! hears of every action that succeeded.

use std::collections::{HashMap, VecDeque};
use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Serialize;
use serde_json::{Map, Value, json};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::fixtures;
use crate::graph_calls::{AppliedAction, GraphCall, GraphCalls, GraphError, success_body};
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

/// One call action as received, with what the mock answered.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CallActionRecord {
    /// Since the mock started.
    #[serde(rename = "at_ms", serialize_with = "as_millis")]
    pub at: Duration,
    pub phone_number_id: String,
    pub call_id: Option<String>,
    pub action: Option<String>,
    pub token: Option<String>,
    /// The request body as sent (parsed), or the raw text when it was not JSON.
    pub body: Value,
    pub status: u16,
    /// `error.code` when the answer was an error.
    pub error_code: Option<u32>,
}

fn as_millis<S: serde::Serializer>(duration: &Duration, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_u64(duration.as_millis() as u64)
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct GraphState {
    pub requests: Vec<GraphRequestRecord>,
    /// Every `POST …/calls`, in arrival order.
    pub call_actions: Vec<CallActionRecord>,
    /// The calls Meta knows and the protocol errors seen.
    pub calls: GraphCalls,
}

/// A failure Meta's side produces for the next call actions, whatever they are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallFault {
    /// 500, code 138004 "Error while connecting the call" (retryable).
    ServerError,
    /// 429, code 138005 "Call rate limit exceeded" (retryable).
    RateLimited,
    /// 401, code 190: the access token was revoked.
    AuthError,
    /// 400, code 100 (an SDP Meta cannot apply), for the next `accept` only: other actions
    /// before it go through.
    RefusedAccept,
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
    faults: Mutex<VecDeque<CallFault>>,
    /// Who hears of the actions that succeeded, per call id.
    observers: Mutex<HashMap<String, mpsc::UnboundedSender<AppliedAction>>>,
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
        let shared = Arc::new(Shared {
            config,
            invalid_token,
            recorder: Recorder::new(GraphState::default()),
            faults: Mutex::new(VecDeque::new()),
            observers: Mutex::new(HashMap::new()),
        });
        let router = Router::new()
            .route("/__mock/state", get(state_json))
            .route("/{version}/{node}", get(node))
            .route("/{version}/{node}/calls", post(call_action))
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

    /// A call the WhatsApp user places on `phone_number_id`: call actions for it are accepted
    /// from now on, and every one that succeeds is sent to the returned receiver.
    pub fn register_call(&self, phone_number_id: &str, call_id: &str) -> mpsc::UnboundedReceiver<AppliedAction> {
        let (tx, rx) = mpsc::unbounded_channel();
        self.shared.observers.lock().unwrap_or_else(PoisonError::into_inner).insert(call_id.to_owned(), tx);
        self.shared.recorder.update(|s| s.calls.register(phone_number_id, call_id));
        rx
    }

    /// What Meta knows of one call.
    pub fn call(&self, call_id: &str) -> Option<GraphCall> {
        self.shared.recorder.read(|s| s.calls.call(call_id).cloned())
    }

    /// A handle on one call for Meta's media side: when it was accepted, and where to report
    /// protocol errors seen on the wire.
    pub fn call_handle(&self, call_id: &str) -> GraphCallHandle {
        GraphCallHandle { shared: self.shared.clone(), call_id: call_id.to_owned() }
    }

    /// The user hung up or Meta ended the call: later business actions are refused.
    pub fn end_by_user(&self, call_id: &str) {
        self.shared.recorder.update(|s| s.calls.end_by_user(call_id, Instant::now()));
    }

    /// The next `times` call actions fail with `fault` (they change nothing).
    pub fn inject_call_faults(&self, fault: CallFault, times: usize) {
        self.shared.faults.lock().unwrap_or_else(PoisonError::into_inner).extend(std::iter::repeat_n(fault, times));
    }

    /// Every call action received so far.
    pub fn call_actions(&self) -> Vec<CallActionRecord> {
        self.shared.recorder.read(|s| s.call_actions.clone())
    }

    /// Mistakes a correct gateway never makes: bad action bodies and SDPs, actions after it
    /// ended a call, RTP before accept (reported by the media side).
    pub fn protocol_errors(&self) -> Vec<String> {
        self.shared.recorder.read(|s| s.calls.protocol_errors().to_vec())
    }
}

/// One call as Meta's media side sees it (see [`MockGraph::call_handle`]).
#[derive(Clone)]
pub struct GraphCallHandle {
    shared: Arc<Shared>,
    call_id: String,
}

impl std::fmt::Debug for GraphCallHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GraphCallHandle").field("call_id", &self.call_id).finish_non_exhaustive()
    }
}

impl GraphCallHandle {
    pub fn call_id(&self) -> &str {
        &self.call_id
    }

    /// When `accept` was answered 200 (set before the response leaves the mock).
    pub fn accepted_at(&self) -> Option<Instant> {
        self.shared.recorder.read(|s| s.calls.call(&self.call_id).and_then(|c| c.accepted_at))
    }

    /// The user hung up or Meta ended the call: later business actions are refused.
    pub fn end_by_user(&self) {
        self.shared.recorder.update(|s| s.calls.end_by_user(&self.call_id, Instant::now()));
    }

    /// Records a protocol error seen outside the Graph API (e.g. RTP before accept).
    pub fn record_protocol_error(&self, error: String) {
        let error = format!("call {}: {error}", self.call_id);
        self.shared.recorder.update(|s| s.calls.record_protocol_error(error));
    }
}

fn graph_error(status: StatusCode, message: &str, kind: &str, code: u32) -> Response {
    (status, [("content-type", "application/json")], error_body(message, kind, code).to_string()).into_response()
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
            return self.invalid_token_response();
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
    let token = bearer(&headers).or_else(|| query.get("access_token").cloned());
    let response = shared.answer(&version, &id, &query, token.as_deref());
    shared.record(&method, &uri, token, response.status());
    response
}

/// A Graph error envelope.
fn error_body(message: &str, kind: &str, code: u32) -> Value {
    json!({"error": {"message": message, "type": kind, "code": code, "fbtrace_id": ids::fbtrace()}})
}

impl Shared {
    /// The `POST …/calls` decision: fault, authentication, then [`GraphCalls::handle`].
    fn call_action(
        &self,
        version: &str,
        phone_number_id: &str,
        token: Option<&str>,
        body: &Value,
    ) -> (StatusCode, Value) {
        if !is_version(version) {
            return (StatusCode::BAD_REQUEST, error_body("Unknown path components: /calls", "OAuthException", 2500));
        }
        let fault = {
            let mut faults = self.faults.lock().unwrap_or_else(PoisonError::into_inner);
            let for_accept = faults.front() == Some(&CallFault::RefusedAccept);
            if for_accept && body["action"] != "accept" { None } else { faults.pop_front() }
        };
        match fault {
            Some(CallFault::RefusedAccept) => {
                return (
                    StatusCode::BAD_REQUEST,
                    error_body(
                        "(#100) Invalid parameter: the SDP answer does not match the offer",
                        "OAuthException",
                        100,
                    ),
                );
            }
            Some(CallFault::ServerError) => {
                return (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    error_body("Error while connecting the call", "OAuthException", 138004),
                );
            }
            Some(CallFault::RateLimited) => {
                return (
                    StatusCode::TOO_MANY_REQUESTS,
                    error_body("Call rate limit exceeded", "OAuthException", 138005),
                );
            }
            Some(CallFault::AuthError) => return self.invalid_token_answer(),
            None => {}
        }
        let Some(token) = token else {
            return (
                StatusCode::BAD_REQUEST,
                error_body("An access token is required to request this resource.", "OAuthException", 104),
            );
        };
        if !self.config.numbers.iter().any(|n| n.token == token) {
            return self.invalid_token_answer();
        }
        match self.config.numbers.iter().find(|n| n.id == phone_number_id) {
            Some(number) if number.token == token => {}
            Some(_) => return (StatusCode::FORBIDDEN, error_body("(#200) Permissions error", "OAuthException", 200)),
            None => {
                return (
                    StatusCode::NOT_FOUND,
                    error_body(
                        &format!("(#803) Some of the aliases you requested do not exist: {phone_number_id}"),
                        "GraphMethodException",
                        803,
                    ),
                );
            }
        }
        let outcome = self.recorder.update(|s| s.calls.handle(phone_number_id, body, Instant::now()));
        match outcome {
            Ok(applied) => {
                let observer =
                    self.observers.lock().unwrap_or_else(PoisonError::into_inner).get(&applied.call_id).cloned();
                if let Some(observer) = observer {
                    let _ = observer.send(applied);
                }
                (StatusCode::OK, success_body())
            }
            Err(error) => call_error(&error),
        }
    }

    fn invalid_token_answer(&self) -> (StatusCode, Value) {
        let mut body = self.invalid_token.clone();
        body["error"]["fbtrace_id"] = json!(ids::fbtrace());
        (StatusCode::UNAUTHORIZED, body)
    }

    fn invalid_token_response(&self) -> Response {
        let (status, body) = self.invalid_token_answer();
        (status, [("content-type", "application/json")], body.to_string()).into_response()
    }
}

fn call_error(error: &GraphError) -> (StatusCode, Value) {
    (StatusCode::from_u16(error.status).unwrap_or(StatusCode::BAD_REQUEST), error.body(&ids::fbtrace()))
}

fn bearer(headers: &HeaderMap) -> Option<String> {
    headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("OAuth ")))
        .map(str::to_owned)
}

async fn call_action(
    State(shared): State<Arc<Shared>>,
    Path((version, phone_number_id)): Path<(String, String)>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let token = bearer(&headers);
    let json_content = headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.to_ascii_lowercase().starts_with("application/json"));
    let parsed = serde_json::from_slice::<Value>(&body);
    let (status, answer) = match (&parsed, json_content) {
        (Ok(json), true) => shared.call_action(&version, &phone_number_id, token.as_deref(), json),
        _ => {
            let error = GraphError {
                status: 400,
                code: 100,
                kind: "OAuthException",
                message: "(#100) Invalid parameter".into(),
                details: Some("the body must be JSON sent as application/json".into()),
            };
            shared.recorder.update(|s| s.calls.record_protocol_error(error.details.clone().unwrap_or_default()));
            call_error(&error)
        }
    };
    let body = parsed.unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&body).into_owned()));
    let record = CallActionRecord {
        at: shared.recorder.elapsed(),
        phone_number_id,
        call_id: body.get("call_id").and_then(Value::as_str).map(str::to_owned),
        action: body.get("action").and_then(Value::as_str).map(str::to_owned),
        token,
        body,
        status: status.as_u16(),
        error_code: answer["error"]["code"].as_u64().map(|code| code as u32),
    };
    shared.recorder.update(|s| s.call_actions.push(record));
    (status, [("content-type", "application/json")], answer.to_string()).into_response()
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
