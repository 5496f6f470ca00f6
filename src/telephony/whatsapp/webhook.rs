//! Meta's webhook for WhatsApp calls (whatsapp-calling.md §2 and §5), as pure functions:
//!
//! - [`verify_subscription`]: the GET handshake — `hub.mode=subscribe` and `hub.verify_token`
//!   equal to the account's verify token → answer 200 with exactly `hub.challenge` as a
//!   plain-text body; anything else → 403.
//! - [`verify_signature`]: `X-Hub-Signature-256: sha256=<hex>`, the HMAC-SHA256 of the **raw**
//!   body keyed with the Meta app secret, compared in constant time. Meta signs the bytes it
//!   sends (compact JSON with `\/` and `\uXXXX` escapes); re-serialised JSON would not match.
//! - [`parse`]: the typed envelope `entry[].changes[].value` with `metadata`, `contacts`,
//!   `calls[]`, `statuses[]` and `errors[]`. Unknown fields are ignored (Meta adds some), and
//!   so are `messages`.
//! - [`authenticate`]: the three checks of a POST in the order the route applies them
//!   (size, signature, JSON), each failure with its HTTP status and a stable code.

use hmac::{Hmac, Mac};
use serde::{Deserialize, Deserializer};
use sha2::Sha256;
use subtle::ConstantTimeEq;

/// The largest webhook body accepted (Meta batches up to 1000 updates, far below this).
pub const MAX_BODY_BYTES: usize = 1 << 20;

/// The header carrying Meta's signature.
pub const SIGNATURE_HEADER: &str = "x-hub-signature-256";

/// The longest `hub.challenge` echoed back (Meta sends a number of about ten digits).
const MAX_CHALLENGE_LEN: usize = 256;

/// The query of the subscription handshake:
/// `GET <callback>?hub.mode=subscribe&hub.challenge=<n>&hub.verify_token=<t>`.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct SubscriptionQuery {
    #[serde(rename = "hub.mode")]
    pub mode: Option<String>,
    #[serde(rename = "hub.verify_token")]
    pub verify_token: Option<String>,
    #[serde(rename = "hub.challenge")]
    pub challenge: Option<String>,
}

/// The challenge to send back as the plain-text body of a 200, when the handshake is for
/// this account (`verify_token` is the account's). `None` → answer 403 (code
/// `verification_failed`). The token comparison is constant-time; a challenge that is empty,
/// long or not printable ASCII is refused rather than reflected.
pub fn verify_subscription<'q>(query: &'q SubscriptionQuery, verify_token: &str) -> Option<&'q str> {
    if query.mode.as_deref() != Some("subscribe") {
        return None;
    }
    let token = query.verify_token.as_deref()?;
    if verify_token.is_empty() || !bool::from(token.as_bytes().ct_eq(verify_token.as_bytes())) {
        return None;
    }
    let challenge = query.challenge.as_deref()?;
    let printable = challenge.bytes().all(|b| b.is_ascii_graphic());
    (!challenge.is_empty() && challenge.len() <= MAX_CHALLENGE_LEN && printable).then_some(challenge)
}

/// Why a webhook POST is refused. Each has the status and stable code the route answers
/// with; nothing is done with a refused webhook.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WebhookError {
    /// Over [`MAX_BODY_BYTES`] → 413 `body_too_large`.
    #[error("the webhook body is larger than 1 MiB")]
    TooLarge,
    /// No `X-Hub-Signature-256` header → 401 `signature_missing`.
    #[error("the X-Hub-Signature-256 header is missing")]
    SignatureMissing,
    /// A header that is not `sha256=<64 hex digits>`, or a MAC that does not match → 403
    /// `signature_invalid`.
    #[error("the X-Hub-Signature-256 signature does not match the body")]
    SignatureInvalid,
    /// Authentic, but not a webhook envelope → 400 `invalid_json`.
    #[error("the webhook body is not a valid JSON envelope: {0}")]
    InvalidJson(String),
}

impl WebhookError {
    /// The HTTP status to answer with.
    pub fn status(&self) -> u16 {
        match self {
            Self::TooLarge => 413,
            Self::SignatureMissing => 401,
            Self::SignatureInvalid => 403,
            Self::InvalidJson(_) => 400,
        }
    }

    /// The stable error code for the JSON error body.
    pub fn code(&self) -> &'static str {
        match self {
            Self::TooLarge => "body_too_large",
            Self::SignatureMissing => "signature_missing",
            Self::SignatureInvalid => "signature_invalid",
            Self::InvalidJson(_) => "invalid_json",
        }
    }
}

/// Checks `X-Hub-Signature-256` (`header`, as received) against the raw `body`.
pub fn verify_signature(app_secret: &str, body: &[u8], header: Option<&str>) -> Result<(), WebhookError> {
    let header = header.ok_or(WebhookError::SignatureMissing)?;
    let hex_mac = header.trim().strip_prefix("sha256=").ok_or(WebhookError::SignatureInvalid)?;
    let expected = hex::decode(hex_mac).map_err(|_| WebhookError::SignatureInvalid)?;
    let mut mac = Hmac::<Sha256>::new_from_slice(app_secret.as_bytes()).map_err(|_| WebhookError::SignatureInvalid)?;
    mac.update(body);
    // `verify_slice` compares in constant time and refuses a wrong length.
    mac.verify_slice(&expected).map_err(|_| WebhookError::SignatureInvalid)
}

/// Size, signature, then JSON: what the route does with a POST before looking inside.
pub fn authenticate(app_secret: &str, signature: Option<&str>, body: &[u8]) -> Result<Webhook, WebhookError> {
    if body.len() > MAX_BODY_BYTES {
        return Err(WebhookError::TooLarge);
    }
    verify_signature(app_secret, body, signature)?;
    parse(body)
}

/// Parses an envelope (no signature check: use [`authenticate`] on requests).
pub fn parse(body: &[u8]) -> Result<Webhook, WebhookError> {
    let deserializer = &mut serde_json::Deserializer::from_slice(body);
    serde_path_to_error::deserialize(deserializer).map_err(|err| {
        let path = err.path().to_string();
        WebhookError::InvalidJson(if path == "." {
            err.inner().to_string()
        } else {
            format!("{path}: {}", err.inner())
        })
    })
}

/// `{"object":"whatsapp_business_account","entry":[…]}`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Webhook {
    #[serde(default)]
    pub object: String,
    #[serde(default)]
    pub entry: Vec<Entry>,
}

/// One WhatsApp Business Account's changes.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Entry {
    /// The WABA id.
    #[serde(default)]
    pub id: String,
    #[serde(default)]
    pub changes: Vec<Change>,
}

/// One change: `field` is `calls` for calling webhooks (`messages` and others are ignored).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Change {
    #[serde(default)]
    pub field: String,
    pub value: ChangeValue,
}

/// `entry[].changes[].value`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct ChangeValue {
    #[serde(default)]
    pub messaging_product: Option<String>,
    #[serde(default)]
    pub metadata: Option<Metadata>,
    #[serde(default)]
    pub contacts: Vec<Contact>,
    #[serde(default)]
    pub calls: Vec<Call>,
    #[serde(default)]
    pub statuses: Vec<Status>,
    /// A FAILED terminate repeats its errors here.
    #[serde(default)]
    pub errors: Vec<CallError>,
}

/// Which business number the change is for.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Metadata {
    /// Digits only, e.g. `16315553601`.
    #[serde(default)]
    pub display_phone_number: String,
    /// Route on this: it must be the account's `phoneNumberId`.
    pub phone_number_id: String,
}

/// The WhatsApp user.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Contact {
    #[serde(default)]
    pub profile: Option<Profile>,
    pub wa_id: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Profile {
    #[serde(default)]
    pub name: Option<String>,
}

/// What happened to a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CallEventKind {
    /// The user called (with an SDP offer), or a business-initiated call was answered.
    Connect,
    /// The call is over (user hang-up, business terminate/reject, timeouts).
    Terminate,
    /// Anything newer; ignored.
    #[serde(other)]
    Other,
}

/// Who started the call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Direction {
    UserInitiated,
    BusinessInitiated,
    #[serde(other)]
    Other,
}

/// One `calls[]` element.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Call {
    /// Meta's call id (`wacid.…`): the key of the ledger and of every call action.
    pub id: String,
    /// The user (for user-initiated calls).
    #[serde(default)]
    pub from: String,
    /// The business number.
    #[serde(default)]
    pub to: String,
    pub event: CallEventKind,
    /// Unix seconds (Meta sends a string); orders events of one call.
    #[serde(default, deserialize_with = "unix_seconds")]
    pub timestamp: Option<u64>,
    #[serde(default)]
    pub direction: Option<Direction>,
    /// The SDP offer of a user-initiated connect.
    #[serde(default)]
    pub session: Option<Session>,
    /// `COMPLETED` or `FAILED` (terminate).
    #[serde(default)]
    pub status: Option<String>,
    /// When the call was picked up and ended (terminate of an accepted call).
    #[serde(default, deserialize_with = "unix_seconds")]
    pub start_time: Option<u64>,
    #[serde(default, deserialize_with = "unix_seconds")]
    pub end_time: Option<u64>,
    /// Seconds.
    #[serde(default)]
    pub duration: Option<u64>,
    #[serde(default)]
    pub errors: Vec<CallError>,
    /// Echo of what the business passed in accept.
    #[serde(default)]
    pub biz_opaque_callback_data: Option<String>,
    #[serde(default)]
    pub deeplink_payload: Option<String>,
    #[serde(default)]
    pub cta_payload: Option<String>,
}

/// `session` of a connect.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Session {
    /// `offer` for user-initiated calls.
    pub sdp_type: String,
    pub sdp: String,
}

/// The error object of a FAILED terminate (e.g. 138021: no media from the business).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct CallError {
    pub code: i64,
    #[serde(default)]
    pub title: Option<String>,
    #[serde(default)]
    pub message: Option<String>,
    #[serde(default)]
    pub href: Option<String>,
    #[serde(default)]
    pub error_data: Option<ErrorData>,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct ErrorData {
    #[serde(default)]
    pub details: Option<String>,
}

/// `statuses[]` of business-initiated calls (`RINGING`, `ACCEPTED`, `REJECTED`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Status {
    pub id: String,
    #[serde(default, deserialize_with = "unix_seconds")]
    pub timestamp: Option<u64>,
    #[serde(default, rename = "type")]
    pub kind: Option<String>,
    #[serde(default)]
    pub status: Option<String>,
    #[serde(default)]
    pub recipient_id: Option<String>,
    #[serde(default)]
    pub biz_opaque_callback_data: Option<String>,
}

/// Unix seconds sent as a string (as Meta does) or as a number; anything else is `None`.
fn unix_seconds<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<u64>, D::Error> {
    let value = Option::<serde_json::Value>::deserialize(deserializer)?;
    Ok(match value {
        Some(serde_json::Value::String(text)) => text.trim().parse().ok(),
        Some(serde_json::Value::Number(number)) => number.as_u64(),
        _ => None,
    })
}

/// A call event with the context it arrived in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CallEvent<'a> {
    /// `entry[].id`.
    pub waba_id: &'a str,
    /// `metadata.phone_number_id` (empty when Meta left metadata out).
    pub phone_number_id: &'a str,
    /// The caller's profile name, when the change names the caller.
    pub caller_name: Option<&'a str>,
    pub call: &'a Call,
}

impl Webhook {
    /// Every call event of the webhook, in order, from `calls` changes.
    pub fn call_events(&self) -> Vec<CallEvent<'_>> {
        let mut events = Vec::new();
        for entry in &self.entry {
            for change in entry.changes.iter().filter(|c| c.field == "calls") {
                let value = &change.value;
                let phone_number_id = value.metadata.as_ref().map_or("", |m| m.phone_number_id.as_str());
                for call in &value.calls {
                    let caller_name = value
                        .contacts
                        .iter()
                        .find(|c| c.wa_id == call.from)
                        .and_then(|c| c.profile.as_ref())
                        .and_then(|p| p.name.as_deref());
                    events.push(CallEvent { waba_id: &entry.id, phone_number_id, caller_name, call });
                }
            }
        }
        events
    }

    /// Every call status (business-initiated calls), in order.
    pub fn call_statuses(&self) -> impl Iterator<Item = &Status> {
        self.entry.iter().flat_map(|e| &e.changes).filter(|c| c.field == "calls").flat_map(|c| &c.value.statuses)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;
    use testkit::fixtures;
    use testkit::whatsapp_webhook::{CallError as SimCallError, CallParties, meta_json, signature};

    fn fixture_bytes(name: &str) -> Vec<u8> {
        serde_json::to_vec(&fixtures::load_json(&format!("whatsapp/{name}")).expect("fixture")).expect("json")
    }

    fn vectors() -> Vec<Value> {
        let text = std::fs::read_to_string(fixtures::fixture_path("whatsapp/signature-vectors.json")).expect("vectors");
        serde_json::from_str(&text).expect("parse")
    }

    #[test]
    fn whatsapp_signatures_are_checked_against_every_vector() {
        for vector in vectors() {
            let secret = vector["app_secret"].as_str().expect("secret");
            let body = vector["body"].as_str().expect("body").as_bytes();
            let header = vector["expected"].as_str();
            let valid = vector["valid"].as_bool().expect("valid");
            let verdict = verify_signature(secret, body, header);
            assert_eq!(verdict.is_ok(), valid, "{}", vector["_source"]);
            if !valid {
                assert_eq!(verdict, Err(WebhookError::SignatureInvalid));
            }
        }
    }

    #[test]
    fn whatsapp_missing_or_malformed_signatures_are_refused_with_their_status() {
        let body = br#"{"object":"whatsapp_business_account","entry":[]}"#;
        let good = signature("secret", body);
        assert_eq!(verify_signature("secret", body, Some(&good)), Ok(()));
        assert_eq!(verify_signature("secret", body, Some(&good.to_uppercase().replace("SHA256=", "sha256="))), Ok(()));
        assert_eq!(verify_signature("secret", body, None), Err(WebhookError::SignatureMissing));
        for bad in ["", "sha256=", "sha1=abcd", &good[7..], "sha256=zz", &good[..good.len() - 2]] {
            assert_eq!(verify_signature("secret", body, Some(bad)), Err(WebhookError::SignatureInvalid), "{bad:?}");
        }
        assert_eq!(WebhookError::SignatureMissing.status(), 401);
        assert_eq!(WebhookError::SignatureInvalid.status(), 403);
    }

    #[test]
    fn whatsapp_the_signature_is_over_the_raw_bytes_not_the_parsed_json() {
        // Meta escapes non-ASCII: the same JSON re-serialised differs and must not verify.
        let vector = &vectors()[4];
        let raw = vector["body"].as_str().expect("body");
        let reserialised = serde_json::to_string(&serde_json::from_str::<Value>(raw).expect("json")).expect("json");
        assert_ne!(raw, reserialised);
        let secret = vector["app_secret"].as_str().expect("secret");
        let header = vector["expected"].as_str();
        assert!(authenticate(secret, header, raw.as_bytes()).is_ok());
        assert_eq!(authenticate(secret, header, reserialised.as_bytes()), Err(WebhookError::SignatureInvalid));
    }

    #[test]
    fn whatsapp_authenticate_checks_size_then_signature_then_json() {
        let big = vec![b' '; MAX_BODY_BYTES + 1];
        assert_eq!(authenticate("s", None, &big), Err(WebhookError::TooLarge));
        assert_eq!(WebhookError::TooLarge.status(), 413);
        let not_json = b"{not json";
        assert_eq!(authenticate("s", None, not_json), Err(WebhookError::SignatureMissing));
        let error = authenticate("s", Some(&signature("s", not_json)), not_json).expect_err("invalid json");
        assert!(matches!(error, WebhookError::InvalidJson(_)));
        assert_eq!((error.status(), error.code()), (400, "invalid_json"));
        let wrong_shape =
            br#"{"entry":[{"changes":[{"value":{"calls":[{"id":"x","event":"connect","session":{}}]}}]}]}"#;
        let error = authenticate("s", Some(&signature("s", wrong_shape)), wrong_shape).expect_err("shape");
        assert!(matches!(&error, WebhookError::InvalidJson(m) if m.contains("session")), "{error:?}");
    }

    #[test]
    fn whatsapp_the_connect_fixture_parses_to_its_call_and_offer() {
        let webhook = parse(&fixture_bytes("webhook-connect.json")).expect("connect");
        assert_eq!(webhook.object, "whatsapp_business_account");
        let events = webhook.call_events();
        assert_eq!(events.len(), 1);
        let event = events[0];
        assert_eq!(
            (event.waba_id, event.phone_number_id, event.caller_name),
            ("366634483210360", "436666719526789", Some("Test Name"))
        );
        let call = event.call;
        assert_eq!(call.id, "wacid.ABGGFjFVU2AfAgo6V-Hc5eCgK5Gh");
        assert_eq!((call.from.as_str(), call.to.as_str()), ("16315553602", "16315553601"));
        assert_eq!(
            (call.event, call.timestamp, call.direction),
            (CallEventKind::Connect, Some(1671644824), Some(Direction::UserInitiated))
        );
        let session = call.session.as_ref().expect("session");
        assert_eq!(session.sdp_type, "offer");
        assert!(session.sdp.starts_with("v=0\r\n") && session.sdp.contains("a=ice-lite\r\n"));
    }

    #[test]
    fn whatsapp_the_terminate_fixtures_parse_with_times_and_errors() {
        let completed = parse(&fixture_bytes("webhook-terminate.json")).expect("terminate");
        let call = completed.call_events()[0].call;
        assert_eq!(call.event, CallEventKind::Terminate);
        assert_eq!(call.status.as_deref(), Some("COMPLETED"));
        assert_eq!((call.start_time, call.end_time, call.duration), (Some(1671644824), Some(1671644944), Some(120)));
        assert_eq!(call.biz_opaque_callback_data.as_deref(), Some("random_string"));
        assert!(call.errors.is_empty());

        let failed = parse(&fixture_bytes("webhook-terminate-failed.json")).expect("terminate failed");
        let value = &failed.entry[0].changes[0].value;
        let call = &value.calls[0];
        assert_eq!(call.status.as_deref(), Some("FAILED"));
        assert_eq!(call.errors[0].code, 138021);
        assert_eq!(value.errors[0].code, 138021);
        assert!(
            call.errors[0].error_data.as_ref().and_then(|d| d.details.as_deref()).is_some_and(|d| d.contains("media"))
        );
    }

    #[test]
    fn whatsapp_status_and_message_webhooks_parse_without_call_events() {
        let status = parse(&fixture_bytes("webhook-status.json")).expect("status");
        assert!(status.call_events().is_empty());
        let statuses: Vec<&Status> = status.call_statuses().collect();
        assert_eq!(statuses.len(), 1);
        assert_eq!((statuses[0].status.as_deref(), statuses[0].kind.as_deref()), (Some("RINGING"), Some("call")));
        // The public vector's body is a `messages` webhook: authentic, parsed, no call event.
        let vector = &vectors()[0];
        let messages = authenticate(
            vector["app_secret"].as_str().expect("secret"),
            vector["expected"].as_str(),
            vector["body"].as_str().expect("body").as_bytes(),
        )
        .expect("messages webhook");
        assert!(messages.call_events().is_empty() && messages.call_statuses().next().is_none());
    }

    #[test]
    fn whatsapp_unknown_fields_events_and_numeric_timestamps_are_tolerated() {
        let body = br#"{"object":"whatsapp_business_account","new_top":1,"entry":[{"id":"1","time":5,"changes":[{"field":"calls","value":{"messaging_product":"whatsapp","metadata":{"display_phone_number":"1","phone_number_id":"2","extra":true},"contacts":[{"wa_id":"3","user_id":"US.1","profile":{"name":"A"}}],"calls":[{"id":"wacid.1","from":"3","to":"1","event":"hold","timestamp":1700000000,"direction":"SOMETHING_NEW","flag":[1]}]}}]}]}"#;
        let webhook = parse(body).expect("tolerant");
        let call = webhook.call_events()[0].call;
        assert_eq!(
            (call.event, call.direction, call.timestamp),
            (CallEventKind::Other, Some(Direction::Other), Some(1700000000))
        );
    }

    #[test]
    fn whatsapp_bodies_built_by_the_simulator_authenticate_and_parse() {
        let parties = CallParties { user_name: "Zoë / 山田".into(), ..CallParties::doc_sample() };
        let failed = parties.terminate(
            "wacid.sim",
            1700000020,
            Some((1700000000, 1700000020)),
            Some(SimCallError::media_receive_timeout()),
            None,
        );
        let body = meta_json(&failed);
        assert!(body.contains(r"\u5c71\u7530") && body.contains(r"Zo\u00eb \/"));
        let webhook =
            authenticate("sim-secret", Some(&signature("sim-secret", body.as_bytes())), body.as_bytes()).expect("ok");
        let event = webhook.call_events()[0];
        assert_eq!(event.caller_name, Some("Zoë / 山田"));
        assert_eq!((event.call.duration, event.call.errors[0].code), (Some(20), 138021));
    }

    #[test]
    fn whatsapp_the_subscription_handshake_echoes_the_challenge_only_for_the_right_token() {
        let query = |mode: &str, token: &str, challenge: &str| SubscriptionQuery {
            mode: Some(mode.into()),
            verify_token: Some(token.into()),
            challenge: Some(challenge.into()),
        };
        assert_eq!(verify_subscription(&query("subscribe", "tok", "1158201444"), "tok"), Some("1158201444"));
        assert_eq!(verify_subscription(&query("subscribe", "nope", "1158201444"), "tok"), None);
        assert_eq!(verify_subscription(&query("unsubscribe", "tok", "1"), "tok"), None);
        assert_eq!(verify_subscription(&query("subscribe", "", "1"), ""), None, "an empty token never verifies");
        assert_eq!(verify_subscription(&query("subscribe", "tok", ""), "tok"), None);
        assert_eq!(verify_subscription(&query("subscribe", "tok", "<script>x y</script>"), "tok"), None);
        assert_eq!(verify_subscription(&query("subscribe", "tok", &"9".repeat(300)), "tok"), None);
        assert_eq!(verify_subscription(&SubscriptionQuery::default(), "tok"), None);
        let parsed: SubscriptionQuery =
            serde_urlencoded::from_str("hub.mode=subscribe&hub.challenge=1158863600&hub.verify_token=iNextLabsCloud")
                .expect("query");
        assert_eq!(verify_subscription(&parsed, "iNextLabsCloud"), Some("1158863600"));
    }
}
