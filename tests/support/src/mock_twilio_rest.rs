//! The slice of Twilio's REST API (`https://api.twilio.com`) the gateway
//! calls: fetch the account (credential check), find an incoming number
//! (ownership check) and complete a call (hang-up).
//!
//! Bodies come from `shared/fixtures/twilio/`, with the account's SID, token
//! and numbers put in. Authentication is HTTP Basic `AccountSid:AuthToken`;
//! bad credentials get the 401 / 20003 body, a resource the credentials
//! cannot see gets 404 / 20404 with the requested path in its message.
//!
//! Choices made where the reference is silent: a suspended or closed account
//! still authenticates and is fetched with its `status` (the gateway must
//! treat `status != "active"` as a failure); credentials valid for one
//! account but a path naming another get 404 / 20404; completing a call
//! that is unknown or already completed gets 404 / 20404; `Status=canceled`
//! on a call in progress answers 200 with the call still `in-progress`
//! (Twilio cancels only queued or ringing calls), so only
//! `Status=completed` hangs up; any other `Status` is 400 / 21218.
//!
//! The Twilio simulator (`twilio_sim`) registers the calls it places through
//! [`LiveCalls`] and ends its stream when the gateway completes one here.

use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use base64::Engine;
use serde::Serialize;
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use crate::fixtures;
use crate::recorder::{Recorder, WaitTimeout};
use crate::server::{self, ServerHandle};

/// One Twilio account the mock knows.
#[derive(Debug, Clone, PartialEq)]
pub struct TwilioAccount {
    /// `AC` and 32 hex digits.
    pub sid: String,
    pub auth_token: String,
    /// `active`, `suspended` or `closed`.
    pub status: String,
    /// `Full` or `Trial`.
    pub account_type: String,
    pub friendly_name: String,
    /// E.164 numbers the account owns.
    pub numbers: Vec<String>,
    /// Call SIDs in progress, which `POST …/Calls/{CallSid}.json` can complete.
    pub calls: Vec<String>,
}

impl TwilioAccount {
    /// An active full account owning `numbers`.
    pub fn new(sid: impl Into<String>, auth_token: impl Into<String>, numbers: &[&str]) -> Self {
        Self {
            sid: sid.into(),
            auth_token: auth_token.into(),
            status: "active".into(),
            account_type: "Full".into(),
            friendly_name: "My first Twilio account".into(),
            numbers: numbers.iter().map(|n| (*n).to_owned()).collect(),
            calls: Vec::new(),
        }
    }
}

#[derive(Debug, Clone)]
pub struct TwilioRestConfig {
    pub accounts: Vec<TwilioAccount>,
}

/// A test account: `AC` + 32 × `a`, token `test-auth-token`, owning
/// +15551234567.
pub const TEST_ACCOUNT_SID: &str = "ACaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
pub const TEST_AUTH_TOKEN: &str = "test-auth-token";
pub const TEST_NUMBER: &str = "+15551234567";

impl Default for TwilioRestConfig {
    fn default() -> Self {
        Self { accounts: vec![TwilioAccount::new(TEST_ACCOUNT_SID, TEST_AUTH_TOKEN, &[TEST_NUMBER])] }
    }
}

/// One request the mock answered.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RestRequestRecord {
    pub method: String,
    pub path: String,
    pub query: Option<String>,
    /// The Basic user name (an Account SID), when sent.
    pub username: Option<String>,
    pub body: String,
    pub status: u16,
}

/// A call completed through the REST API.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HangupRecord {
    pub account_sid: String,
    pub call_sid: String,
    pub status: String,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct TwilioState {
    pub requests: Vec<RestRequestRecord>,
    pub hangups: Vec<HangupRecord>,
    /// Live accounts (calls are added and completed at run time).
    #[serde(skip)]
    pub accounts: Vec<TwilioAccount>,
    /// Who is on each call the simulator placed: Call SID -> (From, To).
    #[serde(skip)]
    pub parties: HashMap<String, (String, String)>,
}

struct Templates {
    account: Value,
    unauthorized: Value,
    not_found: Value,
    numbers_page: Value,
    number: Value,
}

impl Templates {
    fn load() -> Result<Self, fixtures::FixtureError> {
        let matched = fixtures::load_json("twilio/rest-incoming-phone-numbers-match-200.json")?;
        Ok(Self {
            account: fixtures::load_json("twilio/rest-account-fetch-200.json")?["body"].clone(),
            unauthorized: fixtures::load_json("twilio/rest-error-20003-401.json")?["body"].clone(),
            not_found: fixtures::load_json("twilio/rest-error-20404-404.json")?["body"].clone(),
            numbers_page: fixtures::load_json("twilio/rest-incoming-phone-numbers-nomatch-200.json")?["body"].clone(),
            number: matched["body"]["incoming_phone_numbers"][0].clone(),
        })
    }
}

struct Shared {
    templates: Templates,
    recorder: Recorder<TwilioState>,
}

pub struct MockTwilioRest {
    shared: Arc<Shared>,
    server: ServerHandle,
}

impl MockTwilioRest {
    /// Starts on `127.0.0.1:0`. Panics when the shared fixtures are missing.
    pub async fn start(config: TwilioRestConfig) -> Self {
        Self::start_on(server::ephemeral(), config).await.expect("start the Twilio REST mock")
    }

    pub async fn start_on(addr: SocketAddr, config: TwilioRestConfig) -> io::Result<Self> {
        let templates = Templates::load().map_err(io::Error::other)?;
        let shared = Arc::new(Shared {
            templates,
            recorder: Recorder::new(TwilioState { accounts: config.accounts, ..Default::default() }),
        });
        let router = Router::new()
            .route("/2010-04-01/Accounts/{file}", get(fetch_account))
            .route("/2010-04-01/Accounts/{sid}/IncomingPhoneNumbers.json", get(incoming_numbers))
            .route("/2010-04-01/Accounts/{sid}/Calls/{file}", post(update_call))
            .route("/__mock/state", get(state_json))
            .fallback(not_found)
            .with_state(shared.clone());
        let server = ServerHandle::bind(addr, router, CancellationToken::new()).await?;
        Ok(Self { shared, server })
    }

    pub fn addr(&self) -> SocketAddr {
        self.server.addr()
    }

    /// `http://127.0.0.1:<port>`, the stand-in for `https://api.twilio.com`.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr())
    }

    pub fn state(&self) -> TwilioState {
        self.shared.recorder.read(Clone::clone)
    }

    pub fn requests(&self) -> Vec<RestRequestRecord> {
        self.shared.recorder.read(|s| s.requests.clone())
    }

    pub fn hangups(&self) -> Vec<HangupRecord> {
        self.shared.recorder.read(|s| s.hangups.clone())
    }

    /// Puts a call in progress on `account_sid` (for hang-up tests).
    pub fn add_call(&self, account_sid: &str, call_sid: &str) {
        self.shared.recorder.update(|s| {
            if let Some(account) = s.accounts.iter_mut().find(|a| a.sid == account_sid) {
                account.calls.push(call_sid.to_owned());
            }
        });
    }

    /// A handle on the live calls, which the Twilio simulator keeps up to date.
    pub fn live_calls(&self) -> LiveCalls {
        LiveCalls { shared: self.shared.clone() }
    }

    pub async fn wait_for(
        &self,
        condition: impl FnMut(&TwilioState) -> bool,
        timeout: Duration,
    ) -> Result<(), WaitTimeout> {
        self.shared.recorder.wait_for(condition, timeout).await
    }

    pub async fn shutdown(mut self) {
        self.server.shutdown().await;
    }
}

/// The calls in progress on the mock's accounts, shared with the Twilio simulator: it
/// adds a call when the stream opens, ends it when the caller hangs up, and learns here
/// when the gateway completed it through the REST API.
#[derive(Clone)]
pub struct LiveCalls {
    shared: Arc<Shared>,
}

impl LiveCalls {
    /// A call from `from` to `to` is in progress on `account_sid`.
    pub fn start(&self, account_sid: &str, call_sid: &str, from: &str, to: &str) {
        self.shared.recorder.update(|s| {
            if let Some(account) = s.accounts.iter_mut().find(|a| a.sid == account_sid) {
                account.calls.push(call_sid.to_owned());
            }
            s.parties.insert(call_sid.to_owned(), (from.to_owned(), to.to_owned()));
        });
    }

    /// The call ended by itself (the caller hung up): it is no longer live.
    pub fn end(&self, call_sid: &str) {
        self.shared.recorder.update(|s| {
            for account in &mut s.accounts {
                account.calls.retain(|c| c != call_sid);
            }
        });
    }

    /// Waits until a REST request completed `call_sid`.
    pub async fn completed(&self, call_sid: &str) {
        let done = |s: &TwilioState| s.hangups.iter().any(|h| h.call_sid == call_sid);
        while self.shared.recorder.wait_for(done, Duration::from_secs(3600)).await.is_err() {}
    }
}

fn basic_credentials(headers: &HeaderMap) -> Option<(String, String)> {
    let encoded = headers.get("authorization")?.to_str().ok()?.strip_prefix("Basic ")?;
    let decoded = base64::engine::general_purpose::STANDARD.decode(encoded.trim()).ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let (user, password) = text.split_once(':')?;
    Some((user.to_owned(), password.to_owned()))
}

fn json_response(status: StatusCode, body: Value) -> Response {
    (status, [("content-type", "application/json")], body.to_string()).into_response()
}

impl Shared {
    fn record(&self, method: &Method, uri: &Uri, headers: &HeaderMap, body: &str, status: StatusCode) {
        let record = RestRequestRecord {
            method: method.to_string(),
            path: uri.path().to_owned(),
            query: uri.query().map(str::to_owned),
            username: basic_credentials(headers).map(|(user, _)| user),
            body: body.to_owned(),
            status: status.as_u16(),
        };
        self.recorder.update(|s| s.requests.push(record));
    }

    fn not_found(&self, path: &str) -> Response {
        let mut body = self.templates.not_found.clone();
        body["message"] = json!(format!("The requested resource {path} was not found"));
        json_response(StatusCode::NOT_FOUND, body)
    }

    /// The account the Basic credentials open, if it is the one in the path;
    /// else the 401 or 404 answer.
    fn authorize(&self, headers: &HeaderMap, path_sid: &str, path: &str) -> Result<TwilioAccount, Box<Response>> {
        let account = basic_credentials(headers).and_then(|(user, password)| {
            self.recorder.read(|s| s.accounts.iter().find(|a| a.sid == user && a.auth_token == password).cloned())
        });
        let Some(account) = account else {
            return Err(Box::new(json_response(StatusCode::UNAUTHORIZED, self.templates.unauthorized.clone())));
        };
        if account.sid != path_sid {
            return Err(Box::new(self.not_found(path)));
        }
        Ok(account)
    }

    fn account_body(&self, account: &TwilioAccount) -> Value {
        let text = self.templates.account.to_string().replace(TEST_ACCOUNT_SID, &account.sid);
        let mut body: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
        body["auth_token"] = json!(account.auth_token);
        body["status"] = json!(account.status);
        body["type"] = json!(account.account_type);
        body["friendly_name"] = json!(account.friendly_name);
        body
    }

    fn number_body(&self, account: &TwilioAccount, number: &str) -> Value {
        let sid = format!("PN{:032x}", fnv1a(number.as_bytes()));
        let text = self
            .templates
            .number
            .to_string()
            .replace(TEST_ACCOUNT_SID, &account.sid)
            .replace("PNaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", &sid);
        let mut body: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
        body["phone_number"] = json!(number);
        body["friendly_name"] = json!(friendly_number(number));
        body
    }
}

impl Shared {
    /// A call resource as `POST …/Calls/{CallSid}.json` returns it (twilio-oai
    /// `api.v2010.account.call`).
    fn call_body(&self, account_sid: &str, call_sid: &str, status: &str) -> Value {
        let (from, to) = self.recorder.read(|s| s.parties.get(call_sid).cloned()).unwrap_or_default();
        let now = rfc2822_now();
        let uri = format!("/2010-04-01/Accounts/{account_sid}/Calls/{call_sid}");
        let ended = status == "completed";
        json!({
            "sid": call_sid,
            "date_created": now,
            "date_updated": now,
            "parent_call_sid": null,
            "account_sid": account_sid,
            "to": to,
            "to_formatted": friendly_number(&to),
            "from": from,
            "from_formatted": friendly_number(&from),
            "phone_number_sid": format!("PN{:032x}", fnv1a(to.as_bytes())),
            "status": status,
            "start_time": now,
            "end_time": if ended { json!(now) } else { Value::Null },
            "duration": if ended { json!("0") } else { Value::Null },
            "price": null,
            "price_unit": "USD",
            "direction": "inbound",
            "answered_by": null,
            "api_version": "2010-04-01",
            "forwarded_from": to,
            "group_sid": null,
            "caller_name": null,
            "queue_time": "0",
            "trunk_sid": null,
            "uri": format!("{uri}.json"),
            "subresource_uris": {
                "notifications": format!("{uri}/Notifications.json"),
                "recordings": format!("{uri}/Recordings.json"),
                "payments": format!("{uri}/Payments.json"),
                "events": format!("{uri}/Events.json"),
                "siprec": format!("{uri}/Siprec.json"),
                "streams": format!("{uri}/Streams.json"),
                "transcriptions": format!("{uri}/Transcriptions.json"),
                "user_defined_message_subscriptions": format!("{uri}/UserDefinedMessageSubscriptions.json"),
                "user_defined_messages": format!("{uri}/UserDefinedMessages.json"),
            },
        })
    }
}

/// Now as Twilio writes dates: `Thu, 30 Jul 2015 20:00:00 +0000`.
fn rfc2822_now() -> String {
    let secs = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
    rfc2822(secs)
}

fn rfc2822(unix_secs: u64) -> String {
    const DAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MONTHS: [&str; 12] = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
    let days = (unix_secs / 86_400) as i64;
    let secs = unix_secs % 86_400;
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{}, {day:02} {} {year} {:02}:{:02}:{:02} +0000",
        DAYS[(days % 7) as usize],
        MONTHS[(month - 1) as usize],
        secs / 3600,
        secs % 3600 / 60,
        secs % 60
    )
}

/// A stable 128-bit hash, so a number keeps its PN SID across runs.
fn fnv1a(bytes: &[u8]) -> u128 {
    let mut hash: u128 = 0x6c62272e07bb014262b821756295c58d;
    for &b in bytes {
        hash ^= u128::from(b);
        hash = hash.wrapping_mul(0x0000000001000000000000000000013B);
    }
    hash
}

/// `(555) 123-4567` for North American numbers, else the E.164 number.
fn friendly_number(number: &str) -> String {
    match number.strip_prefix("+1") {
        Some(rest) if rest.len() == 10 && rest.bytes().all(|b| b.is_ascii_digit()) => {
            format!("({}) {}-{}", &rest[..3], &rest[3..6], &rest[6..])
        }
        _ => number.to_owned(),
    }
}

/// Twilio's `PhoneNumber` filter: a partial number, `*` matching any run.
fn number_matches(pattern: &str, number: &str) -> bool {
    if !pattern.contains('*') {
        return number.contains(pattern);
    }
    let parts: Vec<&str> = pattern.split('*').collect();
    let mut rest = number;
    for (n, part) in parts.iter().enumerate() {
        if part.is_empty() {
            continue;
        }
        match rest.find(part) {
            Some(at) if n > 0 || at == 0 => rest = &rest[at + part.len()..],
            _ => return false,
        }
    }
    parts.last().is_none_or(|last| last.is_empty() || rest.is_empty())
}

async fn fetch_account(
    State(shared): State<Arc<Shared>>,
    Path(file): Path<String>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    let response = match file.strip_suffix(".json") {
        None => shared.not_found(uri.path()),
        Some(sid) => match shared.authorize(&headers, sid, uri.path()) {
            Ok(account) => json_response(StatusCode::OK, shared.account_body(&account)),
            Err(response) => *response,
        },
    };
    shared.record(&method, &uri, &headers, "", response.status());
    response
}

async fn incoming_numbers(
    State(shared): State<Arc<Shared>>,
    Path(sid): Path<String>,
    RawQuery(raw_query): RawQuery,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    let response = match shared.authorize(&headers, &sid, uri.path()) {
        Err(response) => *response,
        Ok(account) => {
            let query: HashMap<String, String> =
                serde_urlencoded::from_str(raw_query.as_deref().unwrap_or_default()).unwrap_or_default();
            let numbers: Vec<Value> = account
                .numbers
                .iter()
                .filter(|n| query.get("PhoneNumber").is_none_or(|p| number_matches(p, n)))
                .map(|n| shared.number_body(&account, n))
                .collect();
            let mut body = shared.templates.numbers_page.clone();
            let page_uri = match &raw_query {
                Some(q) => format!("{}?{q}", uri.path()),
                None => uri.path().to_owned(),
            };
            let page_size: u64 = query.get("PageSize").and_then(|s| s.parse().ok()).unwrap_or(50);
            body["incoming_phone_numbers"] = json!(numbers);
            body["uri"] = json!(page_uri);
            body["first_page_uri"] = json!(page_uri);
            body["page_size"] = json!(page_size);
            body["end"] = json!(numbers.len().saturating_sub(1));
            json_response(StatusCode::OK, body)
        }
    };
    shared.record(&method, &uri, &headers, "", response.status());
    response
}

async fn update_call(
    State(shared): State<Arc<Shared>>,
    Path((sid, file)): Path<(String, String)>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let form = String::from_utf8_lossy(&body).into_owned();
    let response = match (file.strip_suffix(".json"), shared.authorize(&headers, &sid, uri.path())) {
        (_, Err(response)) => *response,
        (None, Ok(_)) => shared.not_found(uri.path()),
        (Some(call_sid), Ok(account)) => {
            let fields: HashMap<String, String> = serde_urlencoded::from_str(&form).unwrap_or_default();
            let status = fields.get("Status").cloned().unwrap_or_default();
            let live = account.calls.iter().any(|c| c == call_sid);
            if !matches!(status.as_str(), "completed" | "canceled") {
                json_response(
                    StatusCode::BAD_REQUEST,
                    json!({"code": 21218, "message": format!("Invalid Status: {status}"),
                           "more_info": "https://www.twilio.com/docs/errors/21218", "status": 400}),
                )
            } else if !live {
                shared.not_found(uri.path())
            } else if status == "canceled" {
                json_response(StatusCode::OK, shared.call_body(&account.sid, call_sid, "in-progress"))
            } else {
                shared.recorder.update(|s| {
                    if let Some(a) = s.accounts.iter_mut().find(|a| a.sid == account.sid) {
                        a.calls.retain(|c| c != call_sid);
                    }
                    s.hangups.push(HangupRecord {
                        account_sid: account.sid.clone(),
                        call_sid: call_sid.to_owned(),
                        status: status.clone(),
                    });
                });
                json_response(StatusCode::OK, shared.call_body(&account.sid, call_sid, "completed"))
            }
        }
    };
    shared.record(&method, &uri, &headers, &form, response.status());
    response
}

async fn not_found(State(shared): State<Arc<Shared>>, method: Method, uri: Uri, headers: HeaderMap) -> Response {
    let response = shared.not_found(uri.path());
    shared.record(&method, &uri, &headers, "", response.status());
    response
}

async fn state_json(State(shared): State<Arc<Shared>>) -> Response {
    let state = shared.recorder.read(Clone::clone);
    json_response(StatusCode::OK, serde_json::to_value(&state).unwrap_or(Value::Null))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client() -> reqwest::Client {
        reqwest::Client::new()
    }

    #[test]
    fn phone_number_patterns() {
        assert!(number_matches("+15551234567", "+15551234567"));
        assert!(number_matches("5551234", "+15551234567"));
        assert!(number_matches("+1555*", "+15551234567"));
        assert!(number_matches("*4567", "+15551234567"));
        assert!(!number_matches("+15559999999", "+15551234567"));
        assert!(!number_matches("*4568", "+15551234567"));
        assert_eq!(friendly_number("+15551234567"), "(555) 123-4567");
    }

    #[tokio::test]
    async fn account_fetch_succeeds_or_fails_like_twilio() {
        let mock = MockTwilioRest::start(TwilioRestConfig::default()).await;
        let url = format!("{}/2010-04-01/Accounts/{TEST_ACCOUNT_SID}.json", mock.base_url());
        let ok = client().get(&url).basic_auth(TEST_ACCOUNT_SID, Some(TEST_AUTH_TOKEN)).send().await.expect("get");
        assert_eq!(ok.status(), 200);
        let body: Value = ok.json().await.expect("json");
        assert_eq!(body["sid"], TEST_ACCOUNT_SID);
        assert_eq!(body["status"], "active");
        assert_eq!(body["type"], "Full");
        assert_eq!(body["uri"], format!("/2010-04-01/Accounts/{TEST_ACCOUNT_SID}.json"));

        let bad = client().get(&url).basic_auth(TEST_ACCOUNT_SID, Some("wrong")).send().await.expect("get");
        assert_eq!(bad.status(), 401);
        let body: Value = bad.json().await.expect("json");
        assert_eq!(
            body,
            json!({"code": 20003, "message": "Authenticate", "more_info": "https://www.twilio.com/docs/errors/20003", "status": 401})
        );
        let anonymous = client().get(&url).send().await.expect("get");
        assert_eq!(anonymous.status(), 401);

        let other = "ACbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";
        let missing = client()
            .get(format!("{}/2010-04-01/Accounts/{other}.json", mock.base_url()))
            .basic_auth(TEST_ACCOUNT_SID, Some(TEST_AUTH_TOKEN))
            .send()
            .await
            .expect("get");
        assert_eq!(missing.status(), 404);
        let body: Value = missing.json().await.expect("json");
        assert_eq!(body["code"], 20404);
        assert_eq!(body["message"], format!("The requested resource /2010-04-01/Accounts/{other}.json was not found"));
        assert_eq!(mock.requests().len(), 4);
        assert_eq!(mock.requests()[0].username.as_deref(), Some(TEST_ACCOUNT_SID));
    }

    #[tokio::test]
    async fn number_lookup_lists_owned_numbers_only() {
        let mock = MockTwilioRest::start(TwilioRestConfig::default()).await;
        let url = format!("{}/2010-04-01/Accounts/{TEST_ACCOUNT_SID}/IncomingPhoneNumbers.json", mock.base_url());
        let lookup = |number: &'static str| {
            client()
                .get(&url)
                .query(&[("PhoneNumber", number)])
                .basic_auth(TEST_ACCOUNT_SID, Some(TEST_AUTH_TOKEN))
                .send()
        };
        let owned: Value = lookup(TEST_NUMBER).await.expect("get").json().await.expect("json");
        let numbers = owned["incoming_phone_numbers"].as_array().expect("list");
        assert_eq!(numbers.len(), 1);
        assert_eq!(numbers[0]["phone_number"], TEST_NUMBER);
        assert_eq!(numbers[0]["account_sid"], TEST_ACCOUNT_SID);
        assert_eq!(numbers[0]["capabilities"]["voice"], true);
        assert!(numbers[0]["sid"].as_str().is_some_and(|s| s.starts_with("PN") && s.len() == 34));
        assert_eq!(
            owned["uri"],
            format!("/2010-04-01/Accounts/{TEST_ACCOUNT_SID}/IncomingPhoneNumbers.json?PhoneNumber=%2B15551234567")
        );

        let response = lookup("+15559999999").await.expect("get");
        assert_eq!(response.status(), 200, "a number not owned is an empty page, not a 404");
        let other: Value = response.json().await.expect("json");
        assert_eq!(other["incoming_phone_numbers"], json!([]));
    }

    #[tokio::test]
    async fn completing_a_call_is_recorded_once() {
        let mock = MockTwilioRest::start(TwilioRestConfig::default()).await;
        let call = "CAaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
        mock.add_call(TEST_ACCOUNT_SID, call);
        let url = format!("{}/2010-04-01/Accounts/{TEST_ACCOUNT_SID}/Calls/{call}.json", mock.base_url());
        let hang_up = || {
            client()
                .post(&url)
                .form(&[("Status", "completed")])
                .basic_auth(TEST_ACCOUNT_SID, Some(TEST_AUTH_TOKEN))
                .send()
        };
        assert_eq!(hang_up().await.expect("post").status(), 200);
        let again = hang_up().await.expect("post");
        assert_eq!(again.status(), 404);
        assert_eq!(again.json::<Value>().await.expect("json")["code"], 20404);
        assert_eq!(
            mock.hangups(),
            vec![HangupRecord {
                account_sid: TEST_ACCOUNT_SID.into(),
                call_sid: call.into(),
                status: "completed".into()
            }]
        );
        assert_eq!(mock.requests()[0].body, "Status=completed");
    }

    #[test]
    fn dates_are_written_like_twilios() {
        assert_eq!(rfc2822(1_438_286_400), "Thu, 30 Jul 2015 20:00:00 +0000");
        assert_eq!(rfc2822(951_782_400), "Tue, 29 Feb 2000 00:00:00 +0000");
    }

    #[tokio::test]
    async fn a_completed_call_comes_back_as_a_call_resource_and_wakes_the_simulator() {
        let mock = MockTwilioRest::start(TwilioRestConfig::default()).await;
        let call = "CAbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";
        let live = mock.live_calls();
        live.start(TEST_ACCOUNT_SID, call, "+14155550100", TEST_NUMBER);
        let waiter = tokio::spawn({
            let live = live.clone();
            async move { live.completed(call).await }
        });
        let url = format!("{}/2010-04-01/Accounts/{TEST_ACCOUNT_SID}/Calls/{call}.json", mock.base_url());
        let update = |status: &'static str| {
            client().post(&url).form(&[("Status", status)]).basic_auth(TEST_ACCOUNT_SID, Some(TEST_AUTH_TOKEN)).send()
        };
        let canceled: Value = update("canceled").await.expect("post").json().await.expect("json");
        assert_eq!(canceled["status"], "in-progress", "canceling does not end a call in progress");
        assert!(mock.hangups().is_empty());
        let bad = update("busy").await.expect("post");
        assert_eq!(bad.status(), 400);
        assert_eq!(bad.json::<Value>().await.expect("json")["code"], 21218);

        let done = update("completed").await.expect("post");
        assert_eq!(done.status(), 200);
        let body: Value = done.json().await.expect("json");
        assert_eq!(body["sid"], call);
        assert_eq!(body["status"], "completed");
        assert_eq!(body["from"], "+14155550100");
        assert_eq!(body["to"], TEST_NUMBER);
        assert_eq!(body["direction"], "inbound");
        assert_eq!(body["uri"], format!("/2010-04-01/Accounts/{TEST_ACCOUNT_SID}/Calls/{call}.json"));
        tokio::time::timeout(Duration::from_secs(2), waiter).await.expect("woken").expect("task");

        let other = "CAcccccccccccccccccccccccccccccccc";
        live.start(TEST_ACCOUNT_SID, other, "+14155550100", TEST_NUMBER);
        live.end(other);
        let url = format!("{}/2010-04-01/Accounts/{TEST_ACCOUNT_SID}/Calls/{other}.json", mock.base_url());
        let ended = client()
            .post(&url)
            .form(&[("Status", "completed")])
            .basic_auth(TEST_ACCOUNT_SID, Some(TEST_AUTH_TOKEN))
            .send()
            .await
            .expect("post");
        assert_eq!(ended.status(), 404, "a call the caller ended is no longer live");
    }
}
