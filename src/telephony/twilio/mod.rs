//! Twilio: phone calls through the Voice webhook, TwiML `<Connect><Stream>` and the Media
//! Streams WebSocket, plus the REST calls the gateway makes (docs/twilio.md;
//! shared/protocols/twilio-protocol.md is the ground truth).
//!
//! Everything here is pure protocol, unit-tested without sockets; the webhook route and
//! the caller leg that bridges a stream to the call session build on it.
//! - [`signature`]: `X-Twilio-Signature` on webhooks and on the stream's upgrade
//! - [`twiml`]: the webhook's answer (connect to our stream, or refuse)
//! - [`media_stream`]: the stream's messages, parsed by borrowing and written into a
//!   reused buffer
//! - [`rest`]: the REST client ("Test connection" checks, hanging up a call)

pub mod media_stream;
pub mod rest;
pub mod signature;
pub mod twiml;

pub use rest::{Capabilities, Hangup, HangupError, IncomingNumber, RetryPolicy, TwilioAccount, TwilioRest};

/// Whether `sid` is a Twilio SID of the kind `prefix` (`AC` account, `CA` call, `MZ`
/// stream): the prefix and 32 hex digits.
pub fn is_sid(prefix: &str, sid: &str) -> bool {
    sid.len() == 34 && sid.starts_with(prefix) && sid[prefix.len()..].bytes().all(|b| b.is_ascii_hexdigit())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sids_are_a_prefix_and_32_hex_digits() {
        assert!(is_sid("CA", "CA2525b24e869be527ef06eb661ef67382"));
        assert!(is_sid("AC", "ACaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"));
        assert!(!is_sid("AC", "CA2525b24e869be527ef06eb661ef67382"));
        assert!(!is_sid("CA", "CA2525b24e869be527ef06eb661ef6738"));
        assert!(!is_sid("CA", "CA2525b24e869be527ef06eb661ef6738/"));
        assert!(!is_sid("CA", "CA2525b24e869be527ef06eb661ef6738é"));
    }
}
