//! `X-Twilio-Signature`, checked the way Twilio's own validators check it
//! (shared/protocols/twilio-protocol.md §4).
//!
//! The signature is `base64(HMAC-SHA1(auth token, URL + params))` where the params are the
//! decoded form fields sorted by name, a repeated name contributing each of its *distinct*
//! values in sorted order. Twilio is inconsistent about the URL it signs (with or without
//! the port, and how the query is percent-encoded), so, like the official libraries, a
//! signature is accepted when it matches any of a few forms of the URL: as given, without
//! its port, with the scheme's standard port, and twilio-node's WHATWG and "legacy
//! querystring" re-serialisations of the last two. Comparisons are constant-time.
//!
//! The URL is always the **public** one Twilio was given (`GATEWAY_PUBLIC_URL` + path +
//! the request's raw query, see [`public_request_url`]), never the address the gateway
//! listens on; behind a proxy the two differ and only the public one verifies.

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet};

use base64::Engine;
use hmac::{Hmac, Mac};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, percent_decode_str, utf8_percent_encode};
use sha1::Sha1;
use sha2::{Digest, Sha256};
use subtle::{Choice, ConstantTimeEq};

type HmacSha1 = Hmac<Sha1>;

/// The header carrying the signature, on webhooks and on the Media Streams upgrade
/// (where Twilio sends it lower-case; HTTP header names are case-insensitive).
pub const SIGNATURE_HEADER: &str = "x-twilio-signature";

/// The query parameter Twilio adds to the URL when it posts a JSON body.
pub const BODY_SHA256_PARAM: &str = "bodySHA256";

/// What Node's `querystring.escape` leaves alone: RFC 3986 unreserved characters plus
/// `! ' ( ) *`, like `encodeURIComponent`.
const QUERYSTRING_ESCAPE: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'!')
    .remove(b'~')
    .remove(b'*')
    .remove(b'\'')
    .remove(b'(')
    .remove(b')');

/// Checks `X-Twilio-Signature` with one account's auth token.
///
/// Holds a borrow of the token: the caller opens the sealed credential for the
/// duration of the check and nothing here copies or logs it.
pub struct RequestValidator<'a> {
    auth_token: &'a str,
}

impl<'a> RequestValidator<'a> {
    pub fn new(auth_token: &'a str) -> Self {
        Self { auth_token }
    }

    /// The signature Twilio would send for `url` and the decoded form `params`
    /// (`[]` for a GET, whose parameters are in the URL).
    pub fn compute_signature<K: AsRef<str>, V: AsRef<str>>(&self, url: &str, params: &[(K, V)]) -> String {
        base64::engine::general_purpose::STANDARD.encode(self.mac(url, &sorted(params)))
    }

    /// A form-encoded (or GET) request: `url` is the public URL with the raw query,
    /// `params` the decoded form fields (empty for a GET).
    pub fn validate<K: AsRef<str>, V: AsRef<str>>(&self, url: &str, params: &[(K, V)], signature: &str) -> bool {
        let params = sorted(params);
        let mut valid = Choice::from(0);
        for candidate in url_candidates(url) {
            valid |= self.matches(&candidate, &params, signature);
        }
        valid.into()
    }

    /// A form-encoded POST, given its raw `application/x-www-form-urlencoded` body.
    pub fn validate_form(&self, url: &str, body: &[u8], signature: &str) -> bool {
        let params: Vec<(Cow<'_, str>, Cow<'_, str>)> = form_urlencoded::parse(body).collect();
        self.validate(url, &params, signature)
    }

    /// A JSON body: the signature covers the URL (which carries `bodySHA256`) with no
    /// params, and `bodySHA256` must be the hex SHA-256 of the exact body bytes. A URL
    /// without `bodySHA256` fails.
    pub fn validate_body(&self, url: &str, body: &[u8], signature: &str) -> bool {
        let Some(claimed) = query_value(url, BODY_SHA256_PARAM) else {
            return false;
        };
        let actual = hex::encode(Sha256::digest(body));
        let body_ok = actual.as_bytes().ct_eq(claimed.as_bytes());
        let no_params: [(&str, &str); 0] = [];
        (body_ok & Choice::from(u8::from(self.validate(url, &no_params, signature)))).into()
    }

    /// The Media Streams WebSocket upgrade: the signature covers exactly the `<Stream url>`
    /// the TwiML gave (a `wss://` URL without query), with no params (§2.4).
    pub fn validate_stream(&self, stream_url: &str, signature: &str) -> bool {
        let no_params: [(&str, &str); 0] = [];
        self.validate(stream_url, &no_params, signature)
    }

    fn matches(&self, url: &str, params: &BTreeMap<&str, BTreeSet<&str>>, signature: &str) -> Choice {
        let expected = base64::engine::general_purpose::STANDARD.encode(self.mac(url, params));
        expected.as_bytes().ct_eq(signature.as_bytes())
    }

    fn mac(&self, url: &str, params: &BTreeMap<&str, BTreeSet<&str>>) -> [u8; 20] {
        // HMAC takes keys of any length; this cannot fail.
        let mut mac = HmacSha1::new_from_slice(self.auth_token.as_bytes()).expect("HMAC accepts any key length");
        mac.update(url.as_bytes());
        for (name, values) in params {
            for value in values {
                mac.update(name.as_bytes());
                mac.update(value.as_bytes());
            }
        }
        mac.finalize().into_bytes().into()
    }
}

/// The URL Twilio signed for a request to `path` (with its raw `query`, as received) on a
/// gateway whose public base URL is `public_base` (`GATEWAY_PUBLIC_URL`, any trailing
/// slash ignored).
pub fn public_request_url(public_base: &str, path: &str, query: Option<&str>) -> String {
    let base = public_base.trim_end_matches('/');
    let path = path.strip_prefix('/').unwrap_or(path);
    match query {
        Some(query) if !query.is_empty() => format!("{base}/{path}?{query}"),
        _ => format!("{base}/{path}"),
    }
}

fn sorted<K: AsRef<str>, V: AsRef<str>>(params: &[(K, V)]) -> BTreeMap<&str, BTreeSet<&str>> {
    let mut sorted: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    for (name, value) in params {
        sorted.entry(name.as_ref()).or_default().insert(value.as_ref());
    }
    sorted
}

/// The first value of `name` in the URL's query, decoded.
fn query_value(url: &str, name: &str) -> Option<String> {
    let query = url.split_once('?')?.1;
    let query = query.split_once('#').map_or(query, |(query, _)| query);
    form_urlencoded::parse(query.as_bytes()).find(|(key, _)| key == name).map(|(_, value)| value.into_owned())
}

/// Every form of `url` Twilio may have signed, without duplicates.
fn url_candidates(url: &str) -> Vec<String> {
    let mut candidates = vec![url.to_owned()];
    let mut push = |candidate: String| {
        if !candidates.contains(&candidate) {
            candidates.push(candidate);
        }
    };
    // twilio-python / -go / -java / -ruby: the string as given, port removed or added.
    if let Some(parts) = RawUrl::split(url) {
        push(parts.without_port());
        if let Some(with_port) = parts.with_port() {
            push(with_port);
        }
    }
    // twilio-node: the WHATWG serialisation of both, and both with the query re-encoded
    // by Node's legacy `querystring` module.
    if let Ok(parsed) = url::Url::parse(url) {
        let mut without_port = parsed.clone();
        // Only fails for URLs that cannot have a port, which have none to remove.
        let _ = without_port.set_port(None);
        let mut node_forms = vec![without_port.to_string()];
        if let Some(with_port) = whatwg_with_port(&parsed) {
            node_forms.push(with_port);
        }
        for form in node_forms {
            let legacy = legacy_querystring(&form);
            push(form);
            push(legacy);
        }
    }
    candidates
}

/// `scheme://[userinfo@]host[:port]rest`, split without normalising anything.
struct RawUrl<'a> {
    scheme: &'a str,
    userinfo: &'a str,
    host: &'a str,
    port: Option<&'a str>,
    rest: &'a str,
}

impl<'a> RawUrl<'a> {
    fn split(url: &'a str) -> Option<Self> {
        let scheme_end = url.find("://")? + 3;
        let (scheme, after) = url.split_at(scheme_end);
        let authority_end = after.find(['/', '?', '#']).unwrap_or(after.len());
        let (authority, rest) = after.split_at(authority_end);
        let (userinfo, host_port) = match authority.rfind('@') {
            Some(at) => authority.split_at(at + 1),
            None => ("", authority),
        };
        // An IPv6 host is bracketed; its port follows the closing bracket.
        let port_colon = match host_port.rfind(']') {
            Some(bracket) => host_port[bracket..].find(':').map(|c| bracket + c),
            None => host_port.rfind(':'),
        };
        let (host, port) = match port_colon {
            Some(colon) => (&host_port[..colon], Some(&host_port[colon + 1..])),
            None => (host_port, None),
        };
        Some(Self { scheme, userinfo, host, port, rest })
    }

    fn without_port(&self) -> String {
        format!("{}{}{}{}", self.scheme, self.userinfo, self.host, self.rest)
    }

    fn with_port(&self) -> Option<String> {
        let port = match self.port {
            Some(port) => port,
            None => standard_port(self.scheme.trim_end_matches("://"))?,
        };
        Some(format!("{}{}{}:{port}{}", self.scheme, self.userinfo, self.host, self.rest))
    }
}

fn standard_port(scheme: &str) -> Option<&'static str> {
    match scheme.to_ascii_lowercase().as_str() {
        "https" | "wss" => Some("443"),
        "http" | "ws" => Some("80"),
        _ => None,
    }
}

/// twilio-node's `addPort`: the WHATWG form with its port, the standard one spelled out
/// when the URL has none (a WHATWG URL never shows a default port itself).
fn whatwg_with_port(parsed: &url::Url) -> Option<String> {
    if parsed.port().is_some() {
        return Some(parsed.to_string());
    }
    let port = standard_port(parsed.scheme())?;
    let serialised = parsed.as_str();
    let (before, after) = serialised.split_at(parsed[..url::Position::AfterHost].len());
    Some(format!("{before}:{port}{after}"))
}

/// twilio-node's `withLegacyQuerystring`: the query parsed and re-stringified by Node's
/// `querystring` module, which decodes `%27` to `'` and groups repeated keys.
fn legacy_querystring(url: &str) -> String {
    let Some((base, query)) = url.split_once('?') else {
        return url.to_owned();
    };
    let query = query.split_once('#').map_or(query, |(query, _)| query);
    if query.is_empty() {
        return url.to_owned();
    }
    let decode = |text: &str| percent_decode_str(&text.replace('+', " ")).decode_utf8_lossy().into_owned();
    let mut grouped: Vec<(String, Vec<String>)> = Vec::new();
    for piece in query.split('&').filter(|piece| !piece.is_empty()) {
        let (key, value) = piece.split_once('=').unwrap_or((piece, ""));
        let (key, value) = (decode(key), decode(value));
        match grouped.iter_mut().find(|(existing, _)| *existing == key) {
            Some((_, values)) => values.push(value),
            None => grouped.push((key, vec![value])),
        }
    }
    let mut out = String::with_capacity(url.len());
    out.push_str(base);
    out.push('?');
    let mut first = true;
    for (key, values) in &grouped {
        for value in values {
            if !first {
                out.push('&');
            }
            first = false;
            out.extend(utf8_percent_encode(key, QUERYSTRING_ESCAPE));
            out.push('=');
            out.extend(utf8_percent_encode(value, QUERYSTRING_ESCAPE));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;
    use std::collections::HashMap;

    #[derive(Deserialize)]
    #[serde(untagged)]
    enum ParamValue {
        One(String),
        Many(Vec<String>),
    }

    #[derive(Deserialize)]
    struct Vector {
        auth_token: String,
        url: String,
        params: HashMap<String, ParamValue>,
        body: Option<String>,
        expected: String,
        valid: bool,
        #[serde(rename = "_source")]
        source: String,
    }

    fn vectors() -> Vec<Vector> {
        let path = testkit::fixtures::fixture_path("twilio/signature-vectors.json");
        let text = std::fs::read_to_string(&path).expect("signature vectors");
        serde_json::from_str(&text).expect("vectors parse")
    }

    fn pairs(params: &HashMap<String, ParamValue>) -> Vec<(String, String)> {
        params
            .iter()
            .flat_map(|(name, value)| match value {
                ParamValue::One(value) => vec![(name.clone(), value.clone())],
                ParamValue::Many(values) => values.iter().map(|v| (name.clone(), v.clone())).collect(),
            })
            .collect()
    }

    const CANONICAL_URL: &str = "https://mycompany.com/myapp.php?foo=1&bar=2";

    fn canonical_params() -> Vec<(&'static str, &'static str)> {
        vec![
            ("CallSid", "CA1234567890ABCDE"),
            ("Caller", "+14158675309"),
            ("Digits", "1234"),
            ("From", "+14158675309"),
            ("To", "+18005551212"),
        ]
    }

    #[test]
    fn every_fixture_vector_validates_as_the_reference_validators_decide() {
        let vectors = vectors();
        assert!(vectors.len() >= 16, "all vectors loaded");
        for vector in vectors {
            let validator = RequestValidator::new(&vector.auth_token);
            let valid = match &vector.body {
                Some(body) => validator.validate_body(&vector.url, body.as_bytes(), &vector.expected),
                None => validator.validate(&vector.url, &pairs(&vector.params), &vector.expected),
            };
            assert_eq!(valid, vector.valid, "{} ({})", vector.source, vector.url);
        }
    }

    #[test]
    fn the_canonical_signature_is_computed_over_the_url_and_sorted_params() {
        let validator = RequestValidator::new("12345");
        assert_eq!(validator.compute_signature(CANONICAL_URL, &canonical_params()), "RSOYDt4T1cUTdK1PDd93/VVr8B8=");
    }

    #[test]
    fn repeated_form_keys_sign_their_distinct_values_in_order() {
        let validator = RequestValidator::new("12345");
        let params =
            [("Sid", "CA123"), ("SidAccount", "AC123"), ("Digits", "5678"), ("Digits", "1234"), ("Digits", "1234")];
        assert_eq!(validator.compute_signature(CANONICAL_URL, &params), "IK+Dwps556ElfBT0I3Rgjkr1wJU=");
    }

    #[test]
    fn a_raw_form_body_validates_with_its_decoded_values() {
        let validator = RequestValidator::new("12345");
        let body = b"To=%2B18005551212&From=%2B14158675309&Caller=%2B14158675309&Digits=1234&CallSid=CA1234567890ABCDE";
        assert!(validator.validate_form(CANONICAL_URL, body, "RSOYDt4T1cUTdK1PDd93/VVr8B8="));
        let tampered =
            b"To=%2B18005551213&From=%2B14158675309&Caller=%2B14158675309&Digits=1234&CallSid=CA1234567890ABCDE";
        assert!(!validator.validate_form(CANONICAL_URL, tampered, "RSOYDt4T1cUTdK1PDd93/VVr8B8="));
    }

    #[test]
    fn a_url_signed_with_its_standard_port_validates_without_it_and_back() {
        let validator = RequestValidator::new("12345");
        let params = canonical_params();
        for (signed, received) in [
            ("https://mycompany.com:443/myapp.php?foo=1&bar=2", CANONICAL_URL),
            ("http://mycompany.com:80/myapp.php?foo=1&bar=2", "http://mycompany.com/myapp.php?foo=1&bar=2"),
            (CANONICAL_URL, "https://mycompany.com:443/myapp.php?foo=1&bar=2"),
        ] {
            let signature = validator.compute_signature(signed, &params);
            assert!(validator.validate(received, &params, &signature), "{signed} vs {received}");
        }
        // A custom port: the port-less signature validates, and so does the as-is one.
        let custom = "https://mycompany.com:1234/myapp.php?foo=1&bar=2";
        assert!(validator.validate(custom, &params, &validator.compute_signature(CANONICAL_URL, &params)));
        assert!(validator.validate(custom, &params, &validator.compute_signature(custom, &params)));
        // Another host or path does not.
        let other = validator.compute_signature("https://evil.com/myapp.php?foo=1&bar=2", &params);
        assert!(!validator.validate(CANONICAL_URL, &params, &other));
    }

    #[test]
    fn another_auth_token_or_an_extra_param_fails() {
        let params = canonical_params();
        let signature = RequestValidator::new("12345").compute_signature(CANONICAL_URL, &params);
        assert!(!RequestValidator::new("54321").validate(CANONICAL_URL, &params, &signature));
        let mut extra = params.clone();
        extra.push(("Injected", "1"));
        assert!(!RequestValidator::new("12345").validate(CANONICAL_URL, &extra, &signature));
        assert!(!RequestValidator::new("12345").validate(CANONICAL_URL, &params, ""));
    }

    #[test]
    fn a_json_body_needs_a_matching_body_sha256_and_signature() {
        let validator = RequestValidator::new("12345");
        let body = br#"{"property": "value", "boolean": true}"#;
        let url = format!(
            "https://mycompany.com/myapp.php?foo=1&bar=2&bodySHA256={}",
            "0a1ff7634d9ab3b95db5c9a2dfe9416e41502b283a80c7cf19632632f96e6620"
        );
        let no_params: [(&str, &str); 0] = [];
        let signature = validator.compute_signature(&url, &no_params);
        assert!(validator.validate_body(&url, body, &signature));
        assert!(!validator.validate_body(&url, br#"{"property": "value", "boolean": false}"#, &signature));
        assert!(!validator.validate_body(CANONICAL_URL, body, &validator.compute_signature(CANONICAL_URL, &no_params)));
    }

    #[test]
    fn the_stream_upgrade_is_signed_over_the_bare_stream_url() {
        let validator = RequestValidator::new("12345");
        let url = "wss://gateway.example.com/api/twilio/media-stream";
        let no_params: [(&str, &str); 0] = [];
        let signature = validator.compute_signature(url, &no_params);
        assert!(validator.validate_stream(url, &signature));
        assert!(validator.validate_stream("wss://gateway.example.com:443/api/twilio/media-stream", &signature));
        assert!(!validator.validate_stream("ws://127.0.0.1:8080/api/twilio/media-stream", &signature));
        assert!(!validator.validate_stream(url, "bm9wZQ=="));
    }

    #[test]
    fn url_candidates_cover_the_port_and_encoding_forms() {
        let forms = url_candidates("https://example.com/path?test=param'WithQuote");
        assert!(forms.contains(&"https://example.com:443/path?test=param'WithQuote".to_owned()));
        assert!(forms.contains(&"https://example.com/path?test=param%27WithQuote".to_owned()));
        let forms = url_candidates("https://user:pw@[::1]:8443/p");
        assert!(forms.contains(&"https://user:pw@[::1]/p".to_owned()), "{forms:?}");
        assert_eq!(legacy_querystring("https://h/p?a=1&b=x+y&a=%27"), "https://h/p?a=1&a='&b=x%20y");
        assert_eq!(legacy_querystring("https://h/p"), "https://h/p");
    }

    #[test]
    fn the_public_request_url_joins_base_path_and_raw_query() {
        assert_eq!(
            public_request_url("https://gw.example.com/", "/api/webhooks/twilio/1/voice", Some("a=%2B1")),
            "https://gw.example.com/api/webhooks/twilio/1/voice?a=%2B1"
        );
        assert_eq!(public_request_url("https://gw.example.com", "/x", None), "https://gw.example.com/x");
        assert_eq!(public_request_url("https://gw.example.com", "/x", Some("")), "https://gw.example.com/x");
    }
}
