//! The Voice webhook as Twilio sends it and the TwiML it expects back
//! (shared/protocols/twilio-protocol.md §1, §4), without any I/O: the form of a real
//! inbound call, `X-Twilio-Signature` as Twilio computes it, and the TwiML answer read the
//! way Twilio reads it (`<Connect><Stream>` or a refusal).
//!
//! This is an implementation of its own, written from the notes, not the gateway's: the
//! simulator checks the gateway, so it must not share its code.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use base64::Engine;
use hmac::{Hmac, Mac};
use rand::Rng;

/// Twilio: "The combined length of each `<Parameter>` name and value attributes must be
/// under 500 characters".
pub const MAX_PARAMETER_CHARS: usize = 499;

/// A fresh SID: `prefix` (`CA`, `MZ`, `AC`, …) and 32 lower-case hex digits.
pub fn new_sid(prefix: &str) -> String {
    let n: u128 = rand::rng().random();
    format!("{prefix}{n:032x}")
}

/// `X-Twilio-Signature` for `url` and the form `params` (§4.1): base64 HMAC-SHA1 keyed
/// with the auth token over the URL followed by each name and value, names sorted, a
/// repeated name's distinct values sorted.
pub fn signature(auth_token: &str, url: &str, params: &[(String, String)]) -> String {
    let mut sorted: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    for (name, value) in params {
        sorted.entry(name).or_default().insert(value);
    }
    let mut mac = Hmac::<sha1::Sha1>::new_from_slice(auth_token.as_bytes()).expect("HMAC takes any key");
    mac.update(url.as_bytes());
    for (name, values) in sorted {
        for value in values {
            mac.update(name.as_bytes());
            mac.update(value.as_bytes());
        }
    }
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

/// The country an E.164 number belongs to, for the `*Country` fields (blank when unknown,
/// as Twilio leaves geo fields it cannot fill).
fn country(number: &str) -> &'static str {
    if number.starts_with("+1") {
        "US"
    } else if number.starts_with("+44") {
        "GB"
    } else if number.starts_with("+49") {
        "DE"
    } else {
        ""
    }
}

/// The form of the first webhook of an inbound call, with the keys and order of a real
/// captured one (§1.1): `CallStatus=ringing`, `Direction=inbound`, `Caller`/`Called`
/// repeating `From`/`To`, geo fields blank except the country.
pub fn inbound_call_form(call_sid: &str, account_sid: &str, from: &str, to: &str) -> Vec<(String, String)> {
    let call_token = format!(
        r#"{{"parentCallInfoToken":"{}","identityHeaderTokens":[]}}"#,
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(format!("{{\"callSid\":\"{call_sid}\"}}"))
    );
    let (from_country, to_country) = (country(from), country(to));
    [
        ("Called", to),
        ("ToState", ""),
        ("CallerCountry", from_country),
        ("Direction", "inbound"),
        ("CallerState", ""),
        ("ToZip", ""),
        ("CallSid", call_sid),
        ("To", to),
        ("CallerZip", ""),
        ("ToCountry", to_country),
        ("StirVerstat", "TN-Validation-Passed-C"),
        ("CallToken", &call_token),
        ("CalledZip", ""),
        ("ApiVersion", "2010-04-01"),
        ("CalledCity", ""),
        ("CallStatus", "ringing"),
        ("From", from),
        ("AccountSid", account_sid),
        ("CalledCountry", to_country),
        ("CallerCity", ""),
        ("ToCity", ""),
        ("FromCountry", from_country),
        ("Caller", from),
        ("FromCity", ""),
        ("CalledState", ""),
        ("FromZip", ""),
        ("FromState", ""),
    ]
    .into_iter()
    .map(|(name, value)| (name.to_owned(), value.to_owned()))
    .collect()
}

/// What the TwiML answer told Twilio to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Twiml {
    /// `<Connect><Stream>`: open the Media Streams WebSocket.
    Connect(StreamTwiml),
    /// The call is turned away (`<Reject>`, `<Hangup>`, or verbs that just run out).
    Refused(Refusal),
}

/// `<Connect><Stream url>` and its `<Parameter>`s, in document order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamTwiml {
    pub url: String,
    pub parameters: Vec<(String, String)>,
    /// What `<Say>` verbs before `<Connect>` said.
    pub said_first: Vec<String>,
}

/// A refusal: what was said, and how it ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub said: Vec<String>,
    /// `<Reject>` (never answered), with its `reason` when given.
    pub rejected: Option<String>,
    /// `<Hangup>` (rather than the verbs running out).
    pub hung_up: bool,
}

/// Why Twilio could not use an answer. (Twilio reports these as error 12100 "Document
/// parse failure", 12300 "Invalid Content-Type", or 31920 for a bad stream URL.)
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TwimlError {
    ContentType(Option<String>),
    NotXml(String),
    NotAResponse(String),
    StreamWithoutUrl,
    /// `<Stream url>` with a query string, which Twilio does not support.
    QueryString(String),
    /// Not `wss` (`ws` is accepted only when the webhook URL is plain http).
    Scheme(String),
    ParameterWithoutName,
    ParameterTooLong {
        name: String,
        chars: usize,
    },
    ConnectWithoutStream,
}

impl fmt::Display for TwimlError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::ContentType(ct) => write!(f, "12300 Invalid Content-Type: {ct:?}"),
            Self::NotXml(reason) => write!(f, "12100 Document parse failure: {reason}"),
            Self::NotAResponse(root) => write!(f, "12100 root element is <{root}>, not <Response>"),
            Self::StreamWithoutUrl => write!(f, "<Stream> without url"),
            Self::QueryString(url) => write!(f, "31920 <Stream url> has a query string: {url}"),
            Self::Scheme(url) => write!(f, "31920 Twilio supports only wss: {url}"),
            Self::ParameterWithoutName => write!(f, "<Parameter> without name"),
            Self::ParameterTooLong { name, chars } => {
                write!(f, "<Parameter name={name:?}> is {chars} characters with its value (must be under 500)")
            }
            Self::ConnectWithoutStream => write!(f, "<Connect> without <Stream>"),
        }
    }
}

impl std::error::Error for TwimlError {}

/// Reads a webhook answer as Twilio would, for a webhook configured at `webhook_url`.
pub fn parse_twiml(content_type: Option<&str>, body: &str, webhook_url: &str) -> Result<Twiml, TwimlError> {
    let essence = content_type.map(|ct| ct.split(';').next().unwrap_or_default().trim().to_ascii_lowercase());
    if !matches!(essence.as_deref(), Some("text/xml" | "application/xml")) {
        return Err(TwimlError::ContentType(content_type.map(str::to_owned)));
    }
    let document = roxmltree::Document::parse(body).map_err(|e| TwimlError::NotXml(e.to_string()))?;
    let root = document.root_element();
    if root.tag_name().name() != "Response" {
        return Err(TwimlError::NotAResponse(root.tag_name().name().to_owned()));
    }
    let mut said = Vec::new();
    for verb in root.children().filter(roxmltree::Node::is_element) {
        match verb.tag_name().name() {
            "Say" => said.push(verb.text().unwrap_or_default().to_owned()),
            "Connect" => {
                let stream = verb
                    .children()
                    .find(|n| n.is_element() && n.tag_name().name() == "Stream")
                    .ok_or(TwimlError::ConnectWithoutStream)?;
                return Ok(Twiml::Connect(read_stream(stream, webhook_url, said)?));
            }
            "Hangup" => return Ok(Twiml::Refused(Refusal { said, rejected: None, hung_up: true })),
            "Reject" => {
                let reason = verb.attribute("reason").unwrap_or("rejected").to_owned();
                return Ok(Twiml::Refused(Refusal { said, rejected: Some(reason), hung_up: false }));
            }
            _ => {}
        }
    }
    Ok(Twiml::Refused(Refusal { said, rejected: None, hung_up: false }))
}

fn read_stream(
    stream: roxmltree::Node<'_, '_>,
    webhook_url: &str,
    said_first: Vec<String>,
) -> Result<StreamTwiml, TwimlError> {
    let url = stream.attribute("url").ok_or(TwimlError::StreamWithoutUrl)?.to_owned();
    if url.contains('?') {
        return Err(TwimlError::QueryString(url));
    }
    let development = webhook_url.starts_with("http://");
    if !(url.starts_with("wss://") || (development && url.starts_with("ws://"))) {
        return Err(TwimlError::Scheme(url));
    }
    let mut parameters = Vec::new();
    for parameter in stream.children().filter(|n| n.is_element() && n.tag_name().name() == "Parameter") {
        let name = parameter.attribute("name").filter(|n| !n.is_empty()).ok_or(TwimlError::ParameterWithoutName)?;
        let value = parameter.attribute("value").unwrap_or_default();
        let chars = name.chars().count() + value.chars().count();
        if chars > MAX_PARAMETER_CHARS {
            return Err(TwimlError::ParameterTooLong { name: name.to_owned(), chars });
        }
        parameters.push((name.to_owned(), value.to_owned()));
    }
    Ok(StreamTwiml { url, parameters, said_first })
}

#[cfg(test)]
mod tests {
    use super::*;

    const XML: Option<&str> = Some("text/xml");
    const HTTPS_HOOK: &str = "https://gw.example.com/api/webhooks/twilio/1/voice";

    #[test]
    fn the_signature_matches_twilios_canonical_vector() {
        let params: Vec<(String, String)> = [
            ("To", "+18005551212"),
            ("From", "+14158675309"),
            ("Digits", "1234"),
            ("Caller", "+14158675309"),
            ("CallSid", "CA1234567890ABCDE"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        assert_eq!(
            signature("12345", "https://mycompany.com/myapp.php?foo=1&bar=2", &params),
            "RSOYDt4T1cUTdK1PDd93/VVr8B8="
        );
    }

    #[test]
    fn every_form_fixture_vector_signs_to_its_expected_value_when_valid() {
        let vectors = crate::fixtures::load_json("twilio/signature-vectors.json").expect("vectors");
        let mut checked = 0;
        for vector in vectors.as_array().expect("array") {
            // Node-only and port-variant vectors are signed over another form of the URL
            // than the one given; the rest are what Twilio signs for exactly that URL.
            let url = vector["url"].as_str().expect("url");
            if vector["valid"] != true || vector["body"] != serde_json::Value::Null {
                continue;
            }
            let params: Vec<(String, String)> = vector["params"]
                .as_object()
                .expect("params")
                .iter()
                .flat_map(|(k, v)| match v {
                    serde_json::Value::Array(values) => {
                        values.iter().map(|v| (k.clone(), v.as_str().unwrap_or_default().to_owned())).collect()
                    }
                    v => vec![(k.clone(), v.as_str().unwrap_or_default().to_owned())],
                })
                .collect();
            let token = vector["auth_token"].as_str().expect("token");
            let expected = vector["expected"].as_str().expect("expected");
            let candidates = [url.to_owned(), url.replace(":443/", "/"), url.replacen(".com/", ".com:443/", 1)];
            if candidates.iter().any(|u| signature(token, u, &params) == expected) {
                checked += 1;
            }
        }
        assert!(checked >= 6, "only {checked} vectors reproduced");
    }

    #[test]
    fn an_inbound_call_form_carries_the_keys_of_a_real_call() {
        let form = inbound_call_form("CA1", "AC1", "+14155550100", "+15551234567");
        let keys: Vec<&str> = form.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(keys.len(), 27);
        for key in ["CallSid", "AccountSid", "From", "To", "Caller", "Called", "CallStatus", "Direction", "ApiVersion"]
        {
            assert!(keys.contains(&key), "{key}");
        }
        let value = |key: &str| form.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str());
        assert_eq!(value("CallStatus"), Some("ringing"));
        assert_eq!(value("Direction"), Some("inbound"));
        assert_eq!(value("Caller"), Some("+14155550100"));
        assert_eq!(value("Called"), Some("+15551234567"));
        assert_eq!(value("FromCountry"), Some("US"));
        assert!(new_sid("CA").len() == 34 && new_sid("CA").starts_with("CA"));
        assert_ne!(new_sid("CA"), new_sid("CA"));
    }

    #[test]
    fn a_connect_stream_answer_gives_the_url_and_parameters() {
        let body = r#"<?xml version="1.0" encoding="UTF-8"?>
            <Response><Connect><Stream url="wss://gw.example.com/s">
              <Parameter name="callId" value="c &amp; 1"/><Parameter name="token" value="t"/>
            </Stream></Connect></Response>"#;
        let twiml = parse_twiml(Some("text/xml; charset=utf-8"), body, HTTPS_HOOK).expect("twiml");
        assert_eq!(
            twiml,
            Twiml::Connect(StreamTwiml {
                url: "wss://gw.example.com/s".into(),
                parameters: vec![("callId".into(), "c & 1".into()), ("token".into(), "t".into())],
                said_first: vec![],
            })
        );
    }

    #[test]
    fn say_hangup_and_reject_are_refusals() {
        let said = parse_twiml(XML, "<Response><Say>Sorry</Say><Hangup/></Response>", HTTPS_HOOK).expect("twiml");
        assert_eq!(said, Twiml::Refused(Refusal { said: vec!["Sorry".into()], rejected: None, hung_up: true }));
        let rejected = parse_twiml(XML, r#"<Response><Reject reason="busy"/></Response>"#, HTTPS_HOOK).expect("twiml");
        assert_eq!(rejected, Twiml::Refused(Refusal { said: vec![], rejected: Some("busy".into()), hung_up: false }));
        let empty = parse_twiml(Some("application/xml"), "<Response/>", HTTPS_HOOK).expect("twiml");
        assert!(matches!(empty, Twiml::Refused(Refusal { hung_up: false, rejected: None, .. })));
    }

    #[test]
    fn answers_twilio_would_refuse_are_errors() {
        let stream = |url: &str| format!(r#"<Response><Connect><Stream url="{url}"/></Connect></Response>"#);
        assert!(matches!(
            parse_twiml(XML, &stream("wss://gw.example.com/s?call=1"), HTTPS_HOOK),
            Err(TwimlError::QueryString(_))
        ));
        assert!(matches!(parse_twiml(XML, &stream("ws://gw.example.com/s"), HTTPS_HOOK), Err(TwimlError::Scheme(_))));
        assert!(parse_twiml(XML, &stream("ws://127.0.0.1:1/s"), "http://127.0.0.1:1/voice").is_ok());
        assert!(matches!(
            parse_twiml(XML, &stream("https://gw.example.com/s"), HTTPS_HOOK),
            Err(TwimlError::Scheme(_))
        ));
        assert!(matches!(parse_twiml(Some("application/json"), "{}", HTTPS_HOOK), Err(TwimlError::ContentType(_))));
        assert!(matches!(parse_twiml(None, "<Response/>", HTTPS_HOOK), Err(TwimlError::ContentType(None))));
        assert!(matches!(parse_twiml(XML, "<Response>", HTTPS_HOOK), Err(TwimlError::NotXml(_))));
        assert!(matches!(parse_twiml(XML, "<Reply/>", HTTPS_HOOK), Err(TwimlError::NotAResponse(_))));
        let long = format!(
            r#"<Response><Connect><Stream url="wss://h/s"><Parameter name="n" value="{}"/></Stream></Connect></Response>"#,
            "v".repeat(499)
        );
        assert!(matches!(parse_twiml(XML, &long, HTTPS_HOOK), Err(TwimlError::ParameterTooLong { chars: 500, .. })));
    }
}
