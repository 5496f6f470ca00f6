//! Twilio REST: what "Test connection" needs (shared/protocols/twilio-protocol.md §5) and
//! hanging up a live call (§1.4).

use std::time::Duration;

use serde::Deserialize;

use crate::telephony::{RestError, malformed, unreachable};

/// A Twilio REST client rooted at a configurable base URL (`TWILIO_API_BASE_URL`).
#[derive(Clone, Debug)]
pub struct TwilioRest {
    http: reqwest::Client,
    base: url::Url,
}

/// `GET /2010-04-01/Accounts/{Sid}.json`, the fields we use.
#[derive(Debug, Clone, Deserialize)]
pub struct TwilioAccount {
    pub sid: String,
    #[serde(default)]
    pub friendly_name: String,
    /// `active`, `suspended` or `closed`.
    pub status: String,
    /// `Trial` or `Full`.
    #[serde(rename = "type", default)]
    pub account_type: String,
}

/// An entry of `IncomingPhoneNumbers.json`.
#[derive(Debug, Clone, Deserialize)]
pub struct IncomingNumber {
    pub phone_number: String,
    #[serde(default)]
    pub capabilities: Capabilities,
    #[serde(default)]
    pub voice_url: Option<String>,
}

/// What a number can do.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Capabilities {
    #[serde(default)]
    pub voice: bool,
}

#[derive(Deserialize)]
struct NumberPage {
    incoming_phone_numbers: Vec<IncomingNumber>,
}

#[derive(Deserialize)]
struct TwilioErrorBody {
    code: Option<i64>,
    message: Option<String>,
}

impl TwilioRest {
    /// A client for `base` (e.g. `https://api.twilio.com`).
    pub fn new(http: reqwest::Client, base: url::Url) -> Self {
        Self { http, base }
    }

    /// Fetches the account with HTTP Basic (SID, auth token).
    pub async fn fetch_account(&self, sid: &str, token: &str) -> Result<TwilioAccount, RestError> {
        let url = self.url(&format!("2010-04-01/Accounts/{sid}.json"))?;
        self.get(url, sid, token).await
    }

    /// The account's numbers equal to `number` (E.164); empty when it owns none.
    pub async fn incoming_numbers(
        &self,
        sid: &str,
        token: &str,
        number: &str,
    ) -> Result<Vec<IncomingNumber>, RestError> {
        let mut url = self.url(&format!("2010-04-01/Accounts/{sid}/IncomingPhoneNumbers.json"))?;
        url.query_pairs_mut().append_pair("PhoneNumber", number);
        let page: NumberPage = self.get(url, sid, token).await?;
        // PhoneNumber is a pattern filter on Twilio's side: keep exact matches only.
        Ok(page.incoming_phone_numbers.into_iter().filter(|n| n.phone_number == number).collect())
    }

    /// Ends a live call: `POST /2010-04-01/Accounts/{AccountSid}/Calls/{CallSid}.json` with
    /// `Status=completed`. A call Twilio no longer knows as live (404 / 20404) counts as
    /// ended. Connection failures, 429 and 5xx are retried with back-off as `policy`
    /// allows; refused credentials (401 / 20003) and other refusals are not.
    pub async fn hang_up(
        &self,
        account_sid: &str,
        auth_token: &str,
        call_sid: &str,
        policy: RetryPolicy,
    ) -> Result<Hangup, HangupError> {
        if !super::is_sid("AC", account_sid) {
            return Err(HangupError::InvalidSid { kind: "Account" });
        }
        if !super::is_sid("CA", call_sid) {
            return Err(HangupError::InvalidSid { kind: "Call" });
        }
        let url = self
            .url(&format!("2010-04-01/Accounts/{account_sid}/Calls/{call_sid}.json"))
            .map_err(HangupError::Refused)?;
        let started = tokio::time::Instant::now();
        let mut attempts = 0;
        loop {
            attempts += 1;
            let sent = self
                .http
                .post(url.clone())
                .basic_auth(account_sid, Some(auth_token))
                .form(&[("Status", "completed")])
                .send()
                .await;
            let attempt = match sent {
                Err(err) => Attempt::Retry { error: unreachable(&url, err), retry_after: None },
                Ok(response) => {
                    let status = response.status().as_u16();
                    let retry_after = response
                        .headers()
                        .get(reqwest::header::RETRY_AFTER)
                        .and_then(|v| v.to_str().ok())
                        .and_then(|v| v.trim().parse::<u64>().ok())
                        .map(Duration::from_secs);
                    match response.bytes().await {
                        Ok(body) => classify_hangup(status, &body, retry_after),
                        Err(err) => Attempt::Retry { error: unreachable(&url, err), retry_after },
                    }
                }
            };
            match attempt {
                Attempt::Done(outcome) => return Ok(outcome),
                Attempt::Fail(error) => return Err(error),
                Attempt::Retry { error, retry_after } => {
                    match policy.next_delay(attempts, started.elapsed(), retry_after) {
                        Some(delay) => {
                            tracing::warn!(%error, attempts, retry_in_ms = delay.as_millis() as u64, "Twilio hang-up failed; retrying");
                            tokio::time::sleep(delay).await;
                        }
                        None => return Err(HangupError::GaveUp { attempts, last: error }),
                    }
                }
            }
        }
    }

    fn url(&self, path: &str) -> Result<url::Url, RestError> {
        self.base.join(path).map_err(|e| malformed(&self.base, e))
    }

    async fn get<T: serde::de::DeserializeOwned>(&self, url: url::Url, sid: &str, token: &str) -> Result<T, RestError> {
        let response =
            self.http.get(url.clone()).basic_auth(sid, Some(token)).send().await.map_err(|e| unreachable(&url, e))?;
        let status = response.status();
        let body = response.bytes().await.map_err(|e| unreachable(&url, e))?;
        if !status.is_success() {
            let error: Option<TwilioErrorBody> = serde_json::from_slice(&body).ok();
            return Err(RestError::Api {
                status: status.as_u16(),
                code: error.as_ref().and_then(|e| e.code).unwrap_or_default(),
                message: error.and_then(|e| e.message).unwrap_or_else(|| status.to_string()),
            });
        }
        serde_json::from_slice(&body).map_err(|e| malformed(&url, e))
    }
}

/// A call ended through the REST API.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hangup {
    /// Twilio completed the call (200).
    Completed,
    /// Twilio no longer had it live (404 / 20404): it had already ended.
    AlreadyEnded,
}

/// Why a call could not be hung up through the REST API.
#[derive(Debug, thiserror::Error)]
pub enum HangupError {
    /// Not `AC`/`CA` + 32 hex digits; nothing was sent.
    #[error("not a well-formed Twilio {kind} SID")]
    InvalidSid { kind: &'static str },
    /// The Account SID and Auth Token were refused (401 / 20003): fix the integration account.
    #[error("Twilio refused the Account SID and Auth Token (HTTP {status}, code {code})")]
    Unauthorized { status: u16, code: i64 },
    /// Twilio answered with an error retrying will not fix.
    #[error("Twilio refused the hang-up: {0}")]
    Refused(RestError),
    /// Every attempt within the policy's time failed (unreachable, 429 or 5xx).
    #[error("hang-up failed after {attempts} attempts: {last}")]
    GaveUp { attempts: u32, last: RestError },
}

/// How long to keep retrying a REST call that failed for a reason that may pass.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Delay after the first failure; doubles after each further one.
    pub first_delay: Duration,
    /// Longest single delay (a larger `Retry-After` is honoured up to the budget).
    pub max_delay: Duration,
    /// No attempt starts later than this after the first one; each attempt is itself
    /// bounded by the HTTP client's timeout.
    pub budget: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            first_delay: Duration::from_millis(250),
            max_delay: Duration::from_secs(4),
            budget: Duration::from_secs(20),
        }
    }
}

impl RetryPolicy {
    /// The delay before the next attempt after `failures` failed ones, `elapsed` after the
    /// first started, or `None` when the next would start past the budget.
    pub fn next_delay(&self, failures: u32, elapsed: Duration, retry_after: Option<Duration>) -> Option<Duration> {
        let doubling = 2u32.saturating_pow(failures.saturating_sub(1));
        let backoff = self.first_delay.saturating_mul(doubling).min(self.max_delay);
        let delay = retry_after.map_or(backoff, |hint| hint.max(backoff));
        (elapsed.saturating_add(delay) <= self.budget).then_some(delay)
    }
}

/// What one hang-up attempt's answer means.
#[derive(Debug)]
enum Attempt {
    Done(Hangup),
    Retry { error: RestError, retry_after: Option<Duration> },
    Fail(HangupError),
}

fn classify_hangup(status: u16, body: &[u8], retry_after: Option<Duration>) -> Attempt {
    if (200..300).contains(&status) {
        return Attempt::Done(Hangup::Completed);
    }
    let error: Option<TwilioErrorBody> = serde_json::from_slice(body).ok();
    let code = error.as_ref().and_then(|e| e.code).unwrap_or_default();
    let message = error.and_then(|e| e.message).unwrap_or_else(|| format!("HTTP {status}"));
    let api = RestError::Api { status, code, message };
    match (status, code) {
        (404, _) | (_, 20404) => Attempt::Done(Hangup::AlreadyEnded),
        (401, _) | (_, 20003) => Attempt::Fail(HangupError::Unauthorized { status, code }),
        (429, _) | (500..=599, _) => Attempt::Retry { error: api, retry_after },
        _ => Attempt::Fail(HangupError::Refused(api)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use axum::Router;
    use axum::http::StatusCode;
    use axum::routing::post;
    use testkit::mock_twilio_rest::{MockTwilioRest, TEST_ACCOUNT_SID, TEST_AUTH_TOKEN, TwilioRestConfig};

    const CALL: &str = "CA2525b24e869be527ef06eb661ef67382";

    fn fixture_body(name: &str) -> Vec<u8> {
        let value = testkit::fixtures::load_json(&format!("twilio/{name}")).expect("fixture");
        value["body"].to_string().into_bytes()
    }

    fn quick() -> RetryPolicy {
        RetryPolicy {
            first_delay: Duration::from_millis(5),
            max_delay: Duration::from_millis(20),
            budget: Duration::from_millis(300),
        }
    }

    #[test]
    fn answers_are_classified_like_twilio_means_them() {
        assert!(matches!(classify_hangup(200, b"{}", None), Attempt::Done(Hangup::Completed)));
        assert!(matches!(
            classify_hangup(404, &fixture_body("rest-error-20404-404.json"), None),
            Attempt::Done(Hangup::AlreadyEnded)
        ));
        assert!(matches!(
            classify_hangup(401, &fixture_body("rest-error-20003-401.json"), None),
            Attempt::Fail(HangupError::Unauthorized { status: 401, code: 20003 })
        ));
        assert!(matches!(classify_hangup(503, b"<html>", None), Attempt::Retry { .. }));
        assert!(matches!(
            classify_hangup(429, b"{}", Some(Duration::from_secs(1))),
            Attempt::Retry { retry_after: Some(_), .. }
        ));
        let bad_request = br#"{"code": 21218, "message": "Invalid Status", "status": 400}"#;
        assert!(matches!(
            classify_hangup(400, bad_request, None),
            Attempt::Fail(HangupError::Refused(RestError::Api { status: 400, code: 21218, .. }))
        ));
    }

    #[test]
    fn back_off_doubles_up_to_its_cap_and_stops_at_the_budget() {
        let policy = RetryPolicy {
            first_delay: Duration::from_millis(250),
            max_delay: Duration::from_secs(1),
            budget: Duration::from_secs(3),
        };
        let ms = Duration::from_millis;
        assert_eq!(policy.next_delay(1, ms(0), None), Some(ms(250)));
        assert_eq!(policy.next_delay(2, ms(300), None), Some(ms(500)));
        assert_eq!(policy.next_delay(3, ms(900), None), Some(ms(1000)));
        assert_eq!(policy.next_delay(40, ms(900), None), Some(ms(1000)), "no overflow");
        assert_eq!(policy.next_delay(1, ms(0), Some(ms(2000))), Some(ms(2000)), "Retry-After is honoured");
        assert_eq!(policy.next_delay(3, ms(2500), None), None, "past the budget");
    }

    #[tokio::test]
    async fn hanging_up_a_live_call_completes_it_once_then_finds_it_ended() {
        let mock = MockTwilioRest::start(TwilioRestConfig::default()).await;
        mock.add_call(TEST_ACCOUNT_SID, CALL);
        let rest = TwilioRest::new(reqwest::Client::new(), mock.base_url().parse().expect("url"));
        let first = rest.hang_up(TEST_ACCOUNT_SID, TEST_AUTH_TOKEN, CALL, quick()).await.expect("hung up");
        assert_eq!(first, Hangup::Completed);
        let again = rest.hang_up(TEST_ACCOUNT_SID, TEST_AUTH_TOKEN, CALL, quick()).await.expect("ended");
        assert_eq!(again, Hangup::AlreadyEnded);
        assert_eq!(mock.hangups().len(), 1);
        assert_eq!(mock.requests()[0].body, "Status=completed");
    }

    #[tokio::test]
    async fn refused_credentials_are_reported_without_retrying() {
        let mock = MockTwilioRest::start(TwilioRestConfig::default()).await;
        mock.add_call(TEST_ACCOUNT_SID, CALL);
        let rest = TwilioRest::new(reqwest::Client::new(), mock.base_url().parse().expect("url"));
        let error = rest.hang_up(TEST_ACCOUNT_SID, "wrong", CALL, quick()).await.expect_err("refused");
        assert!(matches!(error, HangupError::Unauthorized { status: 401, code: 20003 }), "{error}");
        assert_eq!(mock.requests().len(), 1);
        assert!(mock.hangups().is_empty());
    }

    #[tokio::test]
    async fn malformed_sids_are_refused_before_any_request() {
        let rest = TwilioRest::new(reqwest::Client::new(), "http://127.0.0.1:9".parse().expect("url"));
        let error = rest.hang_up(TEST_ACCOUNT_SID, "t", "CA../../x", quick()).await.expect_err("refused");
        assert!(matches!(error, HangupError::InvalidSid { kind: "Call" }));
        let error = rest.hang_up("AC1", "t", CALL, quick()).await.expect_err("refused");
        assert!(matches!(error, HangupError::InvalidSid { kind: "Account" }));
    }

    /// A Twilio that fails `failures` times with 503 before completing the call.
    async fn flaky_twilio(failures: usize) -> (String, Arc<AtomicUsize>) {
        let seen = Arc::new(AtomicUsize::new(0));
        let counter = seen.clone();
        let router = Router::new().route(
            "/2010-04-01/Accounts/{account}/Calls/{call}",
            post(move || {
                let counter = counter.clone();
                async move {
                    if counter.fetch_add(1, Ordering::SeqCst) < failures {
                        (StatusCode::SERVICE_UNAVAILABLE, "{\"code\": 20500, \"message\": \"Internal\"}".to_owned())
                    } else {
                        (StatusCode::OK, format!("{{\"sid\": \"{CALL}\", \"status\": \"completed\"}}"))
                    }
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        tokio::spawn(async move { axum::serve(listener, router).await });
        (format!("http://{addr}"), seen)
    }

    #[tokio::test]
    async fn server_errors_are_retried_until_the_call_is_completed() {
        let (base, seen) = flaky_twilio(2).await;
        let rest = TwilioRest::new(reqwest::Client::new(), base.parse().expect("url"));
        let outcome = rest.hang_up(TEST_ACCOUNT_SID, TEST_AUTH_TOKEN, CALL, quick()).await.expect("completed");
        assert_eq!(outcome, Hangup::Completed);
        assert_eq!(seen.load(Ordering::SeqCst), 3);
    }

    #[tokio::test]
    async fn a_twilio_that_keeps_failing_is_given_up_on_within_the_budget() {
        let (base, seen) = flaky_twilio(usize::MAX).await;
        let rest = TwilioRest::new(reqwest::Client::new(), base.parse().expect("url"));
        let started = std::time::Instant::now();
        let error = rest.hang_up(TEST_ACCOUNT_SID, TEST_AUTH_TOKEN, CALL, quick()).await.expect_err("gave up");
        assert!(matches!(error, HangupError::GaveUp { last: RestError::Api { status: 503, .. }, .. }), "{error}");
        assert!(started.elapsed() < Duration::from_secs(2));
        assert!(seen.load(Ordering::SeqCst) >= 3);
    }

    #[tokio::test]
    async fn an_unreachable_twilio_is_retried_then_reported() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let base = format!("http://{}", listener.local_addr().expect("addr"));
        drop(listener);
        let rest = TwilioRest::new(reqwest::Client::new(), base.parse().expect("url"));
        let error = rest.hang_up(TEST_ACCOUNT_SID, TEST_AUTH_TOKEN, CALL, quick()).await.expect_err("gave up");
        assert!(
            matches!(error, HangupError::GaveUp { attempts, last: RestError::Unreachable { .. } } if attempts > 1),
            "{error}"
        );
    }
}
