//! Meta Graph API: the number lookup behind "Test connection" (whatsapp-calling.md §6) and
//! the call actions of a user-initiated call (§3):
//! `POST {base}/{version}/{phone_number_id}/calls` with `Authorization: Bearer <token>` and
//! `{"messaging_product":"whatsapp","call_id":…,"action":…[,"session":{"sdp_type":"answer","sdp":…}]}`.
//!
//! Call actions are retried with exponential back-off (jittered, via `backon`) on 5xx, 429
//! (honouring `Retry-After`) and when Meta cannot be reached, but never past the deadline
//! the caller passes in (the call's time budget: Meta gives about 30–60 s to accept). An
//! error with `error.code` 190 is an authentication failure whatever the HTTP status
//! ([`CallActionError::Auth`]): the account's token is invalid or expired. Other 4xx answers
//! are refusals and are not retried. The access token is never logged.

use std::time::Duration;

use backon::{ExponentialBuilder, Retryable};
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::time::Instant;

use crate::telephony::{RestError, malformed, unreachable};

/// A Graph API client rooted at a configurable base URL and API version.
#[derive(Clone, Debug)]
pub struct GraphApi {
    http: reqwest::Client,
    base: url::Url,
    version: String,
}

/// `GET /{version}/{phone-number-id}`, the fields we use.
#[derive(Debug, Clone, Deserialize)]
pub struct PhoneNumberInfo {
    pub id: String,
    #[serde(default)]
    pub display_phone_number: String,
    #[serde(default)]
    pub verified_name: String,
}

#[derive(Deserialize)]
struct GraphErrorBody {
    error: GraphErrorDetail,
}

#[derive(Deserialize)]
struct GraphErrorDetail {
    message: Option<String>,
    code: Option<i64>,
    #[serde(default)]
    error_data: Option<GraphErrorData>,
}

#[derive(Deserialize)]
struct GraphErrorData {
    details: Option<String>,
}

impl GraphApi {
    /// A client for `base` (e.g. `https://graph.facebook.com`) and `version` (e.g. `v23.0`).
    pub fn new(http: reqwest::Client, base: url::Url, version: String) -> Self {
        Self { http, base, version }
    }

    /// Reads a business phone number with the given access token.
    pub async fn phone_number(&self, phone_number_id: &str, access_token: &str) -> Result<PhoneNumberInfo, RestError> {
        let mut url =
            self.base.join(&format!("{}/{}", self.version, phone_number_id)).map_err(|e| malformed(&self.base, e))?;
        url.query_pairs_mut().append_pair("fields", "display_phone_number,verified_name");
        let response =
            self.http.get(url.clone()).bearer_auth(access_token).send().await.map_err(|e| unreachable(&url, e))?;
        let status = response.status();
        let body = response.bytes().await.map_err(|e| unreachable(&url, e))?;
        if !status.is_success() {
            // Key on error.code (190 = bad token), not on the HTTP status, which varies.
            let error: Option<GraphErrorBody> = serde_json::from_slice(&body).ok();
            return Err(RestError::Api {
                status: status.as_u16(),
                code: error.as_ref().and_then(|e| e.error.code).unwrap_or_default(),
                message: error.and_then(|e| e.error.message).unwrap_or_else(|| status.to_string()),
            });
        }
        serde_json::from_slice(&body).map_err(|e| malformed(&url, e))
    }

    /// The call actions of one WhatsApp number, authenticated with its access token.
    pub fn call_actions(&self, phone_number_id: &str, access_token: &str) -> CallActions {
        CallActions {
            graph: self.clone(),
            phone_number_id: phone_number_id.to_owned(),
            access_token: access_token.to_owned(),
            retry: RetryPolicy::default(),
        }
    }
}

/// A business action on a user-initiated call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallAction {
    /// Ready to answer: Meta applies the SDP answer so ICE and DTLS can start; the caller
    /// sees "Ringing". No media may flow yet.
    PreAccept,
    /// Answer the call (same SDP as the pre_accept): media may flow once this returns 200.
    Accept,
    /// Refuse a call that was not accepted.
    Reject,
    /// Hang up a call.
    Terminate,
}

impl CallAction {
    /// The `action` value on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::PreAccept => "pre_accept",
            Self::Accept => "accept",
            Self::Reject => "reject",
            Self::Terminate => "terminate",
        }
    }
}

/// The request body of a call action, exactly as in the `action-*.json` fixtures. `sdp` is
/// the SDP answer for `pre_accept` and `accept` (ignored for the others).
pub fn action_body(action: CallAction, call_id: &str, sdp: Option<&str>) -> Value {
    let mut body = json!({"messaging_product": "whatsapp", "call_id": call_id, "action": action.as_str()});
    if let (CallAction::PreAccept | CallAction::Accept, Some(sdp)) = (action, sdp) {
        body["session"] = json!({"sdp_type": "answer", "sdp": sdp});
    }
    body
}

/// How call actions are retried inside their deadline.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// The first pause; it doubles (with jitter) after each failed attempt.
    pub first_delay: Duration,
    /// The longest pause between two attempts.
    pub max_delay: Duration,
    /// The longest one attempt may take (also bounded by the deadline).
    pub attempt_timeout: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            first_delay: Duration::from_millis(250),
            max_delay: Duration::from_secs(2),
            attempt_timeout: Duration::from_secs(10),
        }
    }
}

/// Why a call action did not succeed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CallActionError {
    /// `error.code` 190: the access token is invalid or expired. Not retried; the account
    /// should be marked inactive until an admin fixes its token.
    #[error("the access token was refused: {message} (HTTP {status}, code 190)")]
    Auth { status: u16, message: String },
    /// Meta refused the action (a 4xx other than 429): bad call id, SDP, state… Not retried.
    #[error("Meta refused the call action: {message} (HTTP {status}, code {code})")]
    Refused {
        status: u16,
        code: i64,
        message: String,
        /// `error.error_data.details`, where Meta explains SDP problems.
        details: Option<String>,
    },
    /// 5xx, 429 or no answer on every attempt until the deadline.
    #[error("Meta's Graph API was unavailable for {attempts} attempts: {last}")]
    Unavailable { attempts: u32, last: String },
    /// A 2xx answer that does not say `"success": true`.
    #[error("unexpected answer from the Graph API: {reason}")]
    Malformed { reason: String },
}

/// What one attempt's HTTP answer means.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Attempt {
    /// Worth another try (5xx, 429, no answer), after `retry_after` if Meta said so.
    Retry { reason: String, retry_after: Option<Duration> },
    /// Final.
    Fail(CallActionError),
}

/// Classifies one answer (pure): success, retry, or a final error.
fn classify(status: u16, retry_after: Option<Duration>, body: &[u8]) -> Result<(), Attempt> {
    let error: Option<GraphErrorBody> = serde_json::from_slice(&body[..body.len().min(64 * 1024)]).ok();
    let code = error.as_ref().and_then(|e| e.error.code);
    let message = error.as_ref().and_then(|e| e.error.message.clone()).unwrap_or_else(|| format!("HTTP {status}"));
    if code == Some(190) {
        return Err(Attempt::Fail(CallActionError::Auth { status, message }));
    }
    match status {
        200..=299 => {
            let success = serde_json::from_slice::<Value>(body).ok().and_then(|v| v.get("success")?.as_bool());
            match success {
                Some(true) => Ok(()),
                _ => {
                    Err(Attempt::Fail(CallActionError::Malformed { reason: format!("HTTP {status} without success") }))
                }
            }
        }
        429 | 500..=599 => Err(Attempt::Retry {
            reason: format!("{message} (HTTP {status}, code {})", code.unwrap_or_default()),
            retry_after,
        }),
        _ => Err(Attempt::Fail(CallActionError::Refused {
            status,
            code: code.unwrap_or_default(),
            message,
            details: error.and_then(|e| e.error.error_data).and_then(|d| d.details),
        })),
    }
}

/// `Retry-After` in seconds (Graph does not send dates).
fn retry_after(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    let seconds: u64 = headers.get(reqwest::header::RETRY_AFTER)?.to_str().ok()?.trim().parse().ok()?;
    Some(Duration::from_secs(seconds))
}

/// The call actions of one WhatsApp number ([`GraphApi::call_actions`]).
#[derive(Clone)]
pub struct CallActions {
    graph: GraphApi,
    phone_number_id: String,
    access_token: String,
    retry: RetryPolicy,
}

impl std::fmt::Debug for CallActions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CallActions")
            .field("phone_number_id", &self.phone_number_id)
            .field("access_token", &"***")
            .field("retry", &self.retry)
            .finish_non_exhaustive()
    }
}

impl CallActions {
    /// Replaces the retry policy.
    pub fn with_retry(mut self, retry: RetryPolicy) -> Self {
        self.retry = retry;
        self
    }

    /// `pre_accept` with our SDP answer (from `AnswerOptions::whatsapp()`).
    pub async fn pre_accept(&self, call_id: &str, sdp: &str, deadline: Instant) -> Result<(), CallActionError> {
        self.send(CallAction::PreAccept, call_id, Some(sdp), deadline).await
    }

    /// `accept` with the same SDP answer as the pre_accept. Media may flow once it returns.
    pub async fn accept(&self, call_id: &str, sdp: &str, deadline: Instant) -> Result<(), CallActionError> {
        self.send(CallAction::Accept, call_id, Some(sdp), deadline).await
    }

    /// `reject` of a call the gateway declines.
    pub async fn reject(&self, call_id: &str, deadline: Instant) -> Result<(), CallActionError> {
        self.send(CallAction::Reject, call_id, None, deadline).await
    }

    /// `terminate` of a call the gateway ends.
    pub async fn terminate(&self, call_id: &str, deadline: Instant) -> Result<(), CallActionError> {
        self.send(CallAction::Terminate, call_id, None, deadline).await
    }

    /// One action, retried inside `deadline`.
    pub async fn send(
        &self,
        action: CallAction,
        call_id: &str,
        sdp: Option<&str>,
        deadline: Instant,
    ) -> Result<(), CallActionError> {
        let url = self
            .graph
            .base
            .join(&format!("{}/{}/calls", self.graph.version, self.phone_number_id))
            .map_err(|e| CallActionError::Malformed { reason: format!("bad Graph URL: {e}") })?;
        let body = action_body(action, call_id, sdp);
        let attempts = std::sync::atomic::AtomicU32::new(0);
        let attempt = || async {
            attempts.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(Attempt::Retry { reason: "the deadline passed".into(), retry_after: None });
            }
            let response = self
                .graph
                .http
                .post(url.clone())
                .bearer_auth(&self.access_token)
                .timeout(left.min(self.retry.attempt_timeout))
                .json(&body)
                .send()
                .await
                .map_err(|e| Attempt::Retry { reason: unreachable(&url, e).to_string(), retry_after: None })?;
            let status = response.status().as_u16();
            let wait = retry_after(response.headers());
            let bytes = response
                .bytes()
                .await
                .map_err(|e| Attempt::Retry { reason: unreachable(&url, e).to_string(), retry_after: None })?;
            classify(status, wait, &bytes)
        };
        let backoff = ExponentialBuilder::default()
            .with_min_delay(self.retry.first_delay)
            .with_max_delay(self.retry.max_delay)
            .with_jitter()
            .without_max_times();
        let outcome = attempt
            .retry(backoff)
            .sleep(tokio::time::sleep)
            .when(|e| matches!(e, Attempt::Retry { .. }))
            .adjust(|e, delay| {
                let delay = match e {
                    Attempt::Retry { retry_after: Some(wait), .. } => Some(*wait),
                    _ => delay,
                }?;
                // Stop rather than sleep past the deadline.
                (Instant::now() + delay < deadline).then_some(delay)
            })
            .notify(|e, delay| {
                if let Attempt::Retry { reason, .. } = e {
                    tracing::warn!(action = action.as_str(), %call_id, %reason, retry_in_ms = delay.as_millis() as u64, "Graph call action failed; retrying");
                }
            })
            .await;
        match outcome {
            Ok(()) => {
                tracing::debug!(action = action.as_str(), %call_id, "Graph call action done");
                Ok(())
            }
            // An `accept` Meta refuses only after an attempt that went unanswered (or got a
            // 5xx) most likely refuses a call that attempt already accepted: it is taken as
            // accepted, and the media decides (no media: the call ends network_lost, terminated).
            Err(Attempt::Fail(error @ CallActionError::Refused { .. }))
                if action == CallAction::Accept && attempts.load(std::sync::atomic::Ordering::Relaxed) > 1 =>
            {
                tracing::warn!(%call_id, error = %error, "Meta refused a retried accept: taken as accepted by the earlier attempt");
                Ok(())
            }
            Err(Attempt::Fail(error)) => Err(error),
            Err(Attempt::Retry { reason, .. }) => Err(CallActionError::Unavailable {
                attempts: attempts.load(std::sync::atomic::Ordering::Relaxed),
                last: reason,
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use testkit::fixtures;
    use testkit::mock_graph::{CallFault, GraphConfig, GraphPhoneNumber, MockGraph};

    const PNID: &str = "436666719526789";
    const TOKEN: &str = "graph-test-token";

    /// The fixtures' SDP answer plus the candidate a real (non-trickle) answer carries.
    fn answer_sdp() -> String {
        let fixture = fixtures::load_json("whatsapp/action-pre-accept.json").expect("fixture");
        let sdp = fixture["request"]["body"]["session"]["sdp"].as_str().expect("sdp").to_owned();
        format!("{sdp}a=candidate:1 1 udp 2130706431 127.0.0.1 40000 typ host\r\n")
    }

    fn fixture_body(name: &str) -> Value {
        fixtures::load_json(&format!("whatsapp/{name}")).expect("fixture")["request"]["body"].clone()
    }

    async fn graph() -> (MockGraph, GraphApi) {
        let mock = MockGraph::start(GraphConfig { numbers: vec![GraphPhoneNumber::new(PNID, TOKEN)] }).await;
        let base = url::Url::parse(&mock.base_url()).expect("url");
        (mock, GraphApi::new(reqwest::Client::new(), base, "v23.0".into()))
    }

    fn fast() -> RetryPolicy {
        RetryPolicy {
            first_delay: Duration::from_millis(20),
            max_delay: Duration::from_millis(100),
            attempt_timeout: Duration::from_secs(5),
        }
    }

    fn soon(seconds: u64) -> Instant {
        Instant::now() + Duration::from_secs(seconds)
    }

    #[test]
    fn whatsapp_action_bodies_are_the_fixtures() {
        let call = "wacid.ABGGFjFVU2AfAgo6V-Hc5eCgK5Gh";
        let sdp = fixture_body("action-pre-accept.json")["session"]["sdp"].as_str().expect("sdp").to_owned();
        assert_eq!(action_body(CallAction::PreAccept, call, Some(&sdp)), fixture_body("action-pre-accept.json"));
        let mut accept = fixture_body("action-accept.json");
        accept.as_object_mut().map(|o| o.remove("biz_opaque_callback_data"));
        assert_eq!(action_body(CallAction::Accept, call, Some(&sdp)), accept);
        assert_eq!(action_body(CallAction::Reject, call, Some(&sdp)), fixture_body("action-reject.json"));
        assert_eq!(action_body(CallAction::Terminate, call, None), fixture_body("action-terminate.json"));
    }

    #[test]
    fn whatsapp_answers_are_classified_by_error_code_then_status() {
        let error = |status: u16, code: i64| {
            let body = json!({"error": {"message": "m", "type": "OAuthException", "code": code, "fbtrace_id": "x"}});
            classify(status, None, body.to_string().as_bytes())
        };
        assert_eq!(classify(200, None, br#"{"messaging_product":"whatsapp","success":true}"#), Ok(()));
        assert_eq!(classify(200, None, br#"{"success":true}"#), Ok(()));
        assert!(matches!(
            classify(200, None, br#"{"success":false}"#),
            Err(Attempt::Fail(CallActionError::Malformed { .. }))
        ));
        // 190 is an auth failure whatever the status (401 usually, 400 seen once).
        for status in [400, 401, 403, 500] {
            assert!(matches!(error(status, 190), Err(Attempt::Fail(CallActionError::Auth { .. }))), "{status}");
        }
        assert!(matches!(error(500, 138004), Err(Attempt::Retry { .. })));
        assert!(matches!(error(503, 1), Err(Attempt::Retry { .. })));
        assert!(matches!(
            classify(429, Some(Duration::from_secs(2)), b"{}"),
            Err(Attempt::Retry { retry_after: Some(d), .. }) if d == Duration::from_secs(2)
        ));
        let body = json!({"error": {"message": "(#100) Invalid parameter", "code": 100, "error_data": {"details": "No fingerprint found in SDP"}}});
        assert_eq!(
            classify(400, None, body.to_string().as_bytes()),
            Err(Attempt::Fail(CallActionError::Refused {
                status: 400,
                code: 100,
                message: "(#100) Invalid parameter".into(),
                details: Some("No fingerprint found in SDP".into()),
            }))
        );
        assert!(matches!(
            classify(404, None, b"not json"),
            Err(Attempt::Fail(CallActionError::Refused { code: 0, .. }))
        ));
    }

    #[tokio::test]
    async fn whatsapp_pre_accept_accept_and_terminate_reach_meta_as_the_fixtures_show() {
        let (mock, graph) = graph().await;
        let call = "wacid.gateway-test-1";
        let _actions = mock.register_call(PNID, call);
        let actions = graph.call_actions(PNID, TOKEN);
        let sdp = answer_sdp();
        actions.pre_accept(call, &sdp, soon(5)).await.expect("pre_accept");
        actions.accept(call, &sdp, soon(5)).await.expect("accept");
        actions.terminate(call, soon(5)).await.expect("terminate");
        let records = mock.call_actions();
        let names: Vec<_> = records.iter().map(|r| r.action.clone().unwrap_or_default()).collect();
        assert_eq!(names, ["pre_accept", "accept", "terminate"]);
        assert!(records.iter().all(|r| r.status == 200 && r.token.as_deref() == Some(TOKEN)));
        assert_eq!(records[0].body, action_body(CallAction::PreAccept, call, Some(&sdp)));
        assert!(mock.protocol_errors().is_empty(), "{:?}", mock.protocol_errors());
    }

    #[tokio::test]
    async fn whatsapp_server_errors_and_rate_limits_are_retried_until_meta_answers() {
        let (mock, graph) = graph().await;
        let call = "wacid.gateway-test-2";
        let _actions = mock.register_call(PNID, call);
        mock.inject_call_faults(CallFault::ServerError, 2);
        mock.inject_call_faults(CallFault::RateLimited, 1);
        graph.call_actions(PNID, TOKEN).with_retry(fast()).reject(call, soon(5)).await.expect("reject in the end");
        let statuses: Vec<u16> = mock.call_actions().iter().map(|r| r.status).collect();
        assert_eq!(statuses, [500, 500, 429, 200]);
    }

    #[tokio::test]
    async fn whatsapp_an_accept_refused_on_a_retry_counts_as_accepted_but_not_a_first_refusal() {
        let (mock, graph) = graph().await;
        let call = "wacid.gateway-test-6";
        let _actions = mock.register_call(PNID, call);
        let actions = graph.call_actions(PNID, TOKEN).with_retry(fast());
        actions.pre_accept(call, &answer_sdp(), soon(5)).await.expect("pre_accept");
        // The first attempt's answer is lost (a 500); the retry is refused.
        mock.inject_call_faults(CallFault::ServerError, 1);
        mock.inject_call_faults(CallFault::RefusedAccept, 1);
        actions.accept(call, &answer_sdp(), soon(5)).await.expect("taken as accepted");
        let statuses: Vec<u16> = mock.call_actions().iter().map(|r| r.status).collect();
        assert_eq!(statuses, [200, 500, 400]);
        // Refused at the first attempt: a refusal.
        let call = "wacid.gateway-test-7";
        let _actions = mock.register_call(PNID, call);
        actions.pre_accept(call, &answer_sdp(), soon(5)).await.expect("pre_accept");
        mock.inject_call_faults(CallFault::RefusedAccept, 1);
        let error = actions.accept(call, &answer_sdp(), soon(5)).await.expect_err("refused");
        assert!(matches!(error, CallActionError::Refused { status: 400, .. }), "{error:?}");
    }

    #[tokio::test]
    async fn whatsapp_an_auth_error_is_reported_at_once_and_distinctly() {
        let (mock, graph) = graph().await;
        let call = "wacid.gateway-test-3";
        let _actions = mock.register_call(PNID, call);
        mock.inject_call_faults(CallFault::AuthError, 1);
        let error = graph.call_actions(PNID, TOKEN).with_retry(fast()).reject(call, soon(5)).await.expect_err("auth");
        assert!(matches!(error, CallActionError::Auth { status: 401, .. }), "{error:?}");
        let error = graph.call_actions(PNID, "revoked").reject(call, soon(5)).await.expect_err("bad token");
        assert!(matches!(error, CallActionError::Auth { .. }), "{error:?}");
        assert_eq!(mock.call_actions().len(), 2, "no retry");
    }

    #[tokio::test]
    async fn whatsapp_refusals_are_not_retried_and_carry_meta_details() {
        let (mock, graph) = graph().await;
        let call = "wacid.gateway-test-4";
        let _actions = mock.register_call(PNID, call);
        let passive = answer_sdp().replace("a=setup:active", "a=setup:passive");
        let error = graph.call_actions(PNID, TOKEN).pre_accept(call, &passive, soon(5)).await.expect_err("refused");
        let CallActionError::Refused { status, code, details, .. } = error else { panic!("{error:?}") };
        assert_eq!((status, code), (400, 100));
        assert!(details.is_some_and(|d| d.contains("setup:active")));
        assert_eq!(mock.call_actions().len(), 1);
    }

    #[tokio::test]
    async fn whatsapp_retries_stop_at_the_deadline() {
        let (mock, graph) = graph().await;
        let call = "wacid.gateway-test-5";
        let _actions = mock.register_call(PNID, call);
        mock.inject_call_faults(CallFault::ServerError, 1000);
        let started = Instant::now();
        let deadline = started + Duration::from_millis(600);
        let error =
            graph.call_actions(PNID, TOKEN).with_retry(fast()).terminate(call, deadline).await.expect_err("gave up");
        let CallActionError::Unavailable { attempts, last } = error else { panic!("{error:?}") };
        assert!(attempts >= 3, "{attempts}");
        assert!(last.contains("138004"), "{last}");
        assert!(started.elapsed() < Duration::from_millis(900), "{:?}", started.elapsed());
        assert_eq!(mock.call_actions().len() as u32, attempts);
    }

    #[tokio::test]
    async fn whatsapp_an_unreachable_graph_is_unavailable_after_the_deadline() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let base = url::Url::parse(&format!("http://{}", listener.local_addr().expect("addr"))).expect("url");
        drop(listener);
        let graph = GraphApi::new(reqwest::Client::new(), base, "v23.0".into());
        let error = graph
            .call_actions(PNID, TOKEN)
            .with_retry(fast())
            .terminate("wacid.x", Instant::now() + Duration::from_millis(300))
            .await
            .expect_err("unreachable");
        assert!(matches!(error, CallActionError::Unavailable { .. }), "{error:?}");
        assert!(!format!("{error:?}").contains(TOKEN));
    }

    #[test]
    fn whatsapp_call_actions_never_show_their_token() {
        let graph =
            GraphApi::new(reqwest::Client::new(), url::Url::parse("http://graph.test").expect("url"), "v23.0".into());
        let printed = format!("{:?}", graph.call_actions(PNID, "EAAG-secret-token"));
        assert!(!printed.contains("secret") && printed.contains("***"), "{printed}");
    }
}
