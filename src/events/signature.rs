//! `X-Gateway-Signature: t=<unix seconds>,v1=<hex>`: HMAC-SHA256, keyed with the endpoint's
//! signing secret (the whole `whsec_…` string, as UTF-8), over the exact bytes
//! `<t>.<body>` — the timestamp in decimal, a full stop, then the request body as sent.
//! The timestamp lets receivers refuse replays of old deliveries (docs/webhooks.md has
//! the receiver's side, which [`verify`] mirrors).

use hmac::{Hmac, Mac};
use sha2::Sha256;

/// The header carrying the signature.
pub const HEADER: &str = "X-Gateway-Signature";

/// Prefix of signing secrets.
pub const SECRET_PREFIX: &str = "whsec_";

/// A new signing secret: `whsec_` and 256 random bits in base64url.
pub fn new_secret() -> String {
    crate::crypto::new_token(SECRET_PREFIX)
}

/// Lower-case hex of HMAC-SHA256(secret, `"<timestamp>.<body>"`).
pub fn sign(secret: &str, timestamp: i64, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes keys of any length");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    hex::encode(mac.finalize().into_bytes())
}

/// The header value for a delivery sent at `timestamp` (Unix seconds).
pub fn header_value(secret: &str, timestamp: i64, body: &[u8]) -> String {
    format!("t={timestamp},v1={}", sign(secret, timestamp, body))
}

/// What a receiver does: parse `t` and every `v1`, refuse a timestamp more than
/// `tolerance_secs` away from `now_secs`, and compare in constant time.
pub fn verify(secret: &str, header: &str, body: &[u8], now_secs: i64, tolerance_secs: i64) -> bool {
    let mut timestamp = None;
    let mut candidates = Vec::new();
    for part in header.split(',') {
        match part.trim().split_once('=') {
            Some(("t", t)) => timestamp = t.parse::<i64>().ok(),
            Some(("v1", v)) => candidates.push(v),
            _ => {}
        }
    }
    let Some(timestamp) = timestamp else { return false };
    if (now_secs - timestamp).abs() > tolerance_secs {
        return false;
    }
    let expected = sign(secret, timestamp, body);
    candidates.iter().any(|c| crate::crypto::constant_time_eq(c.as_bytes(), expected.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_signature_is_hmac_sha256_of_timestamp_dot_body() {
        // Computed independently: printf '1700000000.{"a":1}' | openssl dgst -sha256 -hmac whsec_test
        assert_eq!(
            sign("whsec_test", 1_700_000_000, br#"{"a":1}"#),
            "38877139021993b830af32feea6e18a8da83eb2f6e49ee50bd9e4cf4ca4d3789"
        );
    }

    #[test]
    fn a_signed_body_verifies_and_any_change_does_not() {
        let header = header_value("whsec_abc", 1000, b"{}");
        assert!(header.starts_with("t=1000,v1="));
        assert!(verify("whsec_abc", &header, b"{}", 1100, 300));
        assert!(!verify("whsec_abc", &header, b"{ }", 1100, 300), "another body");
        assert!(!verify("whsec_abd", &header, b"{}", 1100, 300), "another secret");
        assert!(!verify("whsec_abc", &header, b"{}", 2000, 300), "too old");
        assert!(!verify("whsec_abc", &header.replace("t=1000", "t=1001"), b"{}", 1100, 300), "another time");
        assert!(!verify("whsec_abc", "v1=00", b"{}", 1100, 300), "no timestamp");
    }

    #[test]
    fn secrets_are_prefixed_and_random() {
        let a = new_secret();
        assert!(a.starts_with("whsec_") && a.len() == 6 + 43);
        assert_ne!(a, new_secret());
    }
}
