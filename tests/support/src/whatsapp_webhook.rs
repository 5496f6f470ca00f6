//! Meta's side of the WhatsApp webhook: bodies shaped and serialised the way Meta sends
//! them, the `X-Hub-Signature-256` they carry, and a sender that posts them to a gateway
//! (shared/protocols/whatsapp-calling.md §2 and §5).
//!
//! Meta serialises compactly, escapes `/` as `\/` and every non-ASCII character as a
//! `\uXXXX` escape, and signs exactly those bytes with the app secret. The bodies here are
//! built from structs whose field order is the order of the captured webhooks, so a body
//! built from the fixture's values is byte-for-byte the fixture's signed body
//! (`signature-vectors.json`).

use std::time::Duration;

use hmac::{Hmac, Mac};
use serde::Serialize;
use sha2::Sha256;

/// `{"object":"whatsapp_business_account","entry":[…]}`.
#[derive(Debug, Clone, Serialize)]
pub struct WebhookEnvelope {
    pub object: &'static str,
    pub entry: Vec<WebhookEntry>,
}

#[derive(Debug, Clone, Serialize)]
pub struct WebhookEntry {
    /// The WhatsApp Business Account id.
    pub id: String,
    pub changes: Vec<WebhookChange>,
}

#[derive(Debug, Clone, Serialize)]
pub struct WebhookChange {
    pub value: ChangeValue,
    /// `calls` for calling webhooks, `messages` for messages.
    pub field: String,
}

/// `entry[].changes[].value`: exactly one of `calls`, `statuses` or `messages` is set.
#[derive(Debug, Clone, Serialize)]
pub struct ChangeValue {
    pub messaging_product: &'static str,
    pub metadata: Metadata,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub contacts: Vec<Contact>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub messages: Vec<serde_json::Value>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub calls: Vec<CallPayload>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub statuses: Vec<StatusPayload>,
    /// A FAILED terminate repeats its errors here (as captured).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<CallError>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Metadata {
    /// The business number, digits only.
    pub display_phone_number: String,
    pub phone_number_id: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct Contact {
    pub profile: Profile,
    pub wa_id: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct Profile {
    pub name: String,
}

/// One `calls[]` element, connect or terminate, keys in the captured order.
#[derive(Debug, Clone, Serialize)]
pub struct CallPayload {
    pub id: String,
    /// The WhatsApp user.
    pub from: String,
    /// The business number.
    pub to: String,
    /// `connect` or `terminate`.
    pub event: String,
    /// Unix seconds, as a string.
    pub timestamp: String,
    pub direction: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub session: Option<SessionPayload>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub biz_opaque_callback_data: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub start_time: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub end_time: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub duration: Option<u64>,
    /// `COMPLETED` or `FAILED` (terminate only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<CallError>,
}

/// `session` of a connect: real captures put `sdp` before `sdp_type`.
#[derive(Debug, Clone, Serialize)]
pub struct SessionPayload {
    pub sdp: String,
    pub sdp_type: &'static str,
}

/// The error object of a FAILED terminate (as captured: `title`, no `href`).
#[derive(Debug, Clone, Serialize)]
pub struct CallError {
    pub code: u32,
    pub title: String,
    pub message: String,
    pub error_data: ErrorData,
}

#[derive(Debug, Clone, Serialize)]
pub struct ErrorData {
    pub details: String,
}

/// `statuses[]` of a business-initiated call.
#[derive(Debug, Clone, Serialize)]
pub struct StatusPayload {
    pub id: String,
    pub timestamp: String,
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// `RINGING`, `ACCEPTED` or `REJECTED`.
    pub status: String,
    pub recipient_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub biz_opaque_callback_data: Option<String>,
}

/// Who is calling which business number: what every webhook of a call repeats.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallParties {
    /// WhatsApp Business Account id (`entry[].id`).
    pub waba_id: String,
    pub phone_number_id: String,
    /// The business number, digits only.
    pub business_number: String,
    /// The caller's wa_id.
    pub user_wa_id: String,
    /// The caller's profile name.
    pub user_name: String,
}

/// Code 138021: the user's client heard nothing from the business for too long.
pub const MEDIA_RECEIVE_TIMEOUT: u32 = 138021;

impl CallParties {
    /// The identities of Meta's documentation samples (as in `webhook-connect.json`).
    pub fn doc_sample() -> Self {
        Self {
            waba_id: "366634483210360".into(),
            phone_number_id: "436666719526789".into(),
            business_number: "16315553601".into(),
            user_wa_id: "16315553602".into(),
            user_name: "Test Name".into(),
        }
    }

    fn envelope(&self, value: ChangeValue, field: &str) -> WebhookEnvelope {
        WebhookEnvelope {
            object: "whatsapp_business_account",
            entry: vec![WebhookEntry {
                id: self.waba_id.clone(),
                changes: vec![WebhookChange { value, field: field.to_owned() }],
            }],
        }
    }

    fn value(&self, with_contact: bool) -> ChangeValue {
        ChangeValue {
            messaging_product: "whatsapp",
            metadata: Metadata {
                display_phone_number: self.business_number.clone(),
                phone_number_id: self.phone_number_id.clone(),
            },
            contacts: if with_contact {
                vec![Contact { profile: Profile { name: self.user_name.clone() }, wa_id: self.user_wa_id.clone() }]
            } else {
                Vec::new()
            },
            messages: Vec::new(),
            calls: Vec::new(),
            statuses: Vec::new(),
            errors: Vec::new(),
        }
    }

    fn call(&self, call_id: &str, event: &str, timestamp: u64) -> CallPayload {
        CallPayload {
            id: call_id.to_owned(),
            from: self.user_wa_id.clone(),
            to: self.business_number.clone(),
            event: event.to_owned(),
            timestamp: timestamp.to_string(),
            direction: "USER_INITIATED",
            session: None,
            biz_opaque_callback_data: None,
            start_time: None,
            end_time: None,
            duration: None,
            status: None,
            errors: Vec::new(),
        }
    }

    /// A user-initiated `connect` carrying the user's SDP offer.
    pub fn connect(&self, call_id: &str, timestamp: u64, offer_sdp: &str) -> WebhookEnvelope {
        let mut call = self.call(call_id, "connect", timestamp);
        call.session = Some(SessionPayload { sdp: offer_sdp.to_owned(), sdp_type: "offer" });
        let mut value = self.value(true);
        value.calls.push(call);
        self.envelope(value, "calls")
    }

    /// A `terminate`: `COMPLETED` with the call's times when it was picked up
    /// (`answered = Some((start, end))`), else `FAILED` without them; `error` adds the
    /// failure object, in both places the real capture has it.
    pub fn terminate(
        &self,
        call_id: &str,
        timestamp: u64,
        answered: Option<(u64, u64)>,
        error: Option<CallError>,
        biz_opaque_callback_data: Option<String>,
    ) -> WebhookEnvelope {
        let mut call = self.call(call_id, "terminate", timestamp);
        call.biz_opaque_callback_data = biz_opaque_callback_data;
        if let Some((start, end)) = answered {
            call.start_time = Some(start.to_string());
            call.end_time = Some(end.to_string());
            call.duration = Some(end.saturating_sub(start));
        }
        let failed = error.is_some() || answered.is_none();
        call.status = Some(if failed { "FAILED" } else { "COMPLETED" }.to_owned());
        let mut value = self.value(true);
        if let Some(error) = error {
            call.errors.push(error.clone());
            value.errors.push(error);
        }
        value.calls.push(call);
        self.envelope(value, "calls")
    }

    /// The status webhook of a business-initiated call (`RINGING`, `ACCEPTED`, `REJECTED`).
    pub fn status(
        &self,
        call_id: &str,
        timestamp: u64,
        status: &str,
        biz_opaque_callback_data: Option<String>,
    ) -> WebhookEnvelope {
        let mut value = self.value(false);
        value.statuses.push(StatusPayload {
            id: call_id.to_owned(),
            timestamp: timestamp.to_string(),
            kind: "call",
            status: status.to_owned(),
            recipient_id: self.user_wa_id.clone(),
            biz_opaque_callback_data,
        });
        self.envelope(value, "calls")
    }

    /// A text `messages` webhook (the gateway must acknowledge and ignore it).
    pub fn text_message(&self, message_id: &str, timestamp: u64, text: &str) -> WebhookEnvelope {
        let mut value = self.value(true);
        value.messages.push(serde_json::json!({
            "from": self.user_wa_id,
            "id": message_id,
            "timestamp": timestamp.to_string(),
            "text": {"body": text},
            "type": "text",
        }));
        self.envelope(value, "messages")
    }
}

impl CallError {
    /// 138021 exactly as captured after 20 s without media from the business.
    pub fn media_receive_timeout() -> Self {
        let text =
            "WhatsApp client terminated the call due to not receiving any media for a long time. Please try again";
        Self {
            code: MEDIA_RECEIVE_TIMEOUT,
            title: text.to_owned(),
            message: text.to_owned(),
            error_data: ErrorData {
                details: "WhatsApp client terminated the call due to not receiving any media for a long time.".into(),
            },
        }
    }
}

/// Serialises like Meta: compact, `/` as `\/`, non-ASCII as `\uXXXX` (UTF-16 units).
pub fn meta_json<T: Serialize>(value: &T) -> String {
    let compact = serde_json::to_string(value).expect("webhook bodies serialise");
    let mut out = String::with_capacity(compact.len() + compact.len() / 16);
    for c in compact.chars() {
        match c {
            // Outside strings compact JSON has no `/` and no non-ASCII, so every occurrence
            // is string content.
            '/' => out.push_str("\\/"),
            c if c.is_ascii() => out.push(c),
            c => {
                let mut units = [0u16; 2];
                for unit in c.encode_utf16(&mut units) {
                    out.push_str(&format!("\\u{unit:04x}"));
                }
            }
        }
    }
    out
}

/// `sha256=` and the lowercase hex HMAC-SHA256 of `body` keyed with the app secret.
pub fn signature(app_secret: &str, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(app_secret.as_bytes()).expect("HMAC takes any key length");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// Where a gateway listens for one WhatsApp account's webhooks, and the secrets Meta would
/// hold for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookTarget {
    /// The account's `webhookUrl`.
    pub url: String,
    /// The Meta app secret (signs every POST).
    pub app_secret: String,
    /// The verify token entered in the Meta dashboard (GET handshake).
    pub verify_token: String,
}

/// What the gateway answered to a webhook.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookResponse {
    pub status: u16,
    pub body: String,
    /// How long the gateway took to answer.
    pub took: Duration,
}

/// Meta gives up on a delivery after about 20 s and retries it.
pub const DELIVERY_TIMEOUT: Duration = Duration::from_secs(20);

/// Posts webhooks to a [`WebhookTarget`], signed or deliberately not.
#[derive(Debug, Clone)]
pub struct WebhookSender {
    http: reqwest::Client,
    target: WebhookTarget,
}

impl WebhookSender {
    pub fn new(target: WebhookTarget) -> Self {
        let http = reqwest::Client::builder().timeout(DELIVERY_TIMEOUT).build().expect("HTTP client");
        Self { http, target }
    }

    pub fn target(&self) -> &WebhookTarget {
        &self.target
    }

    /// The subscription handshake, as Meta sends it when the callback URL is saved.
    pub async fn verify_subscription(&self, verify_token: &str, challenge: &str) -> anyhow::Result<WebhookResponse> {
        self.get(&[("hub.mode", "subscribe"), ("hub.challenge", challenge), ("hub.verify_token", verify_token)]).await
    }

    /// A GET with arbitrary query parameters (for malformed handshakes).
    pub async fn get(&self, query: &[(&str, &str)]) -> anyhow::Result<WebhookResponse> {
        let started = std::time::Instant::now();
        let response = self.http.get(&self.target.url).query(query).send().await?;
        Self::read(response, started).await
    }

    /// Serialises `body` the way Meta does, signs it, posts it.
    pub async fn post<T: Serialize>(&self, body: &T) -> anyhow::Result<WebhookResponse> {
        self.post_raw(meta_json(body).as_bytes()).await
    }

    /// Signs exactly these bytes and posts them.
    pub async fn post_raw(&self, body: &[u8]) -> anyhow::Result<WebhookResponse> {
        let signature = signature(&self.target.app_secret, body);
        self.post_with_signature(body, Some(&signature)).await
    }

    /// Posts `body` with the given `X-Hub-Signature-256` value, or none.
    pub async fn post_with_signature(&self, body: &[u8], signature: Option<&str>) -> anyhow::Result<WebhookResponse> {
        let started = std::time::Instant::now();
        let mut request = self.http.post(&self.target.url).header("content-type", "application/json");
        if let Some(signature) = signature {
            request = request.header("x-hub-signature-256", signature);
        }
        let response = request.body(body.to_vec()).send().await?;
        Self::read(response, started).await
    }

    /// Posts a body signed with another secret.
    pub async fn post_wrongly_signed<T: Serialize>(&self, body: &T) -> anyhow::Result<WebhookResponse> {
        let body = meta_json(body);
        let signature = signature(&format!("{}-not", self.target.app_secret), body.as_bytes());
        self.post_with_signature(body.as_bytes(), Some(&signature)).await
    }

    /// Posts a body with no signature header at all.
    pub async fn post_unsigned<T: Serialize>(&self, body: &T) -> anyhow::Result<WebhookResponse> {
        self.post_with_signature(meta_json(body).as_bytes(), None).await
    }

    /// A correctly signed body that is not JSON.
    pub async fn post_invalid_json(&self) -> anyhow::Result<WebhookResponse> {
        self.post_raw(br#"{"object":"whatsapp_business_account","entry":[{"#).await
    }

    /// A correctly signed JSON body of `bytes` bytes (padding in an ignored field), e.g.
    /// just over 1 MiB.
    pub async fn post_oversized(&self, bytes: usize) -> anyhow::Result<WebhookResponse> {
        let head = r#"{"object":"whatsapp_business_account","entry":[],"padding":""#;
        let tail = "\"}";
        let padding = bytes.saturating_sub(head.len() + tail.len());
        let body = format!("{head}{}{tail}", "x".repeat(padding));
        self.post_raw(body.as_bytes()).await
    }

    async fn read(response: reqwest::Response, started: std::time::Instant) -> anyhow::Result<WebhookResponse> {
        let status = response.status().as_u16();
        let body = response.text().await?;
        Ok(WebhookResponse { status, body, took: started.elapsed() })
    }
}

/// Unix seconds now, the unit of every webhook `timestamp`.
pub fn unix_now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures;
    use serde_json::Value;

    fn vectors() -> Vec<Value> {
        let path = fixtures::fixture_path("whatsapp/signature-vectors.json");
        let text = std::fs::read_to_string(path).expect("signature vectors");
        serde_json::from_str::<Vec<Value>>(&text).expect("vectors parse")
    }

    fn offer_of_fixture() -> String {
        let fixture = fixtures::load_json("whatsapp/webhook-connect.json").expect("fixture");
        fixture["entry"][0]["changes"][0]["value"]["calls"][0]["session"]["sdp"].as_str().expect("sdp").to_owned()
    }

    #[test]
    fn whatsapp_signatures_match_every_published_and_computed_vector() {
        for vector in vectors() {
            let body = vector["body"].as_str().expect("body");
            assert_eq!(body.len() as u64, vector["body_length"].as_u64().expect("length"));
            let computed = signature(vector["app_secret"].as_str().expect("secret"), body.as_bytes());
            let expected = vector["expected"].as_str().expect("expected");
            assert_eq!(computed == expected, vector["valid"].as_bool().expect("valid"), "{vector}");
        }
    }

    #[test]
    fn whatsapp_connect_webhook_is_the_signed_fixture_byte_for_byte() {
        let vector = &vectors()[3];
        let body = meta_json(&CallParties::doc_sample().connect(
            "wacid.ABGGFjFVU2AfAgo6V-Hc5eCgK5Gh",
            1671644824,
            &offer_of_fixture(),
        ));
        assert_eq!(body, vector["body"].as_str().expect("body"));
        assert_eq!(signature("test_app_secret_0123456789abcdef", body.as_bytes()), vector["expected"]);
    }

    #[test]
    fn whatsapp_terminate_webhook_escapes_non_ascii_like_meta() {
        let vector = &vectors()[4];
        let parties = CallParties { user_name: "José Müller".into(), ..CallParties::doc_sample() };
        let body = meta_json(&parties.terminate(
            "wacid.ABGGFjFVU2AfAgo6V-Hc5eCgK5Gh",
            1671644944,
            Some((1671644824, 1671644944)),
            None,
            Some("random_string".into()),
        ));
        assert_eq!(body, vector["body"].as_str().expect("body"));
        assert!(body.contains(r"Jos\u00e9 M\u00fcller"));
    }

    #[test]
    fn whatsapp_failed_terminate_has_the_captured_138021_shape() {
        let fixture = fixtures::load_json("whatsapp/webhook-terminate-failed.json").expect("fixture");
        let built = CallParties::doc_sample().terminate(
            "wacid.ABGGFjFVU2AfAgo6V-Hc5eCgK5Gh",
            1671644844,
            Some((1671644824, 1671644844)),
            Some(CallError::media_receive_timeout()),
            None,
        );
        let built: Value = serde_json::from_str(&meta_json(&built)).expect("parses back");
        assert_eq!(built, fixture);
    }

    #[test]
    fn whatsapp_status_webhook_is_the_fixture() {
        let fixture = fixtures::load_json("whatsapp/webhook-status.json").expect("fixture");
        let parties = CallParties { user_wa_id: "163155536021".into(), ..CallParties::doc_sample() };
        let built = parties.status("wacid.ABGGFjFVU2AfAgo6V", 1671644824, "RINGING", Some("random_string".into()));
        let built: Value = serde_json::from_str(&meta_json(&built)).expect("parses back");
        assert_eq!(built, fixture);
    }

    #[test]
    fn whatsapp_meta_json_escapes_astral_characters_as_surrogate_pairs() {
        assert_eq!(meta_json(&"a/é😀"), r#""a\/\u00e9\ud83d\ude00""#);
    }
}
