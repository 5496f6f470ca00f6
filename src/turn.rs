//! Short-lived TURN credentials, in the TURN REST API scheme coturn implements
//! (`use-auth-secret` with `static-auth-secret`): the username is `<expiry unix>:<id>` and
//! the credential `base64(HMAC-SHA1(secret, username))`. The TURN server recomputes the
//! HMAC and refuses a username whose expiry has passed, so a credential handed to one
//! anonymous caller is worth nothing after its TTL, and no other can be made from it.

use std::time::Duration;

use base64::Engine;
use hmac::{Hmac, Mac};
use sha1::Sha1;

/// A username and credential for one caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TurnCredential {
    /// `<expiry unix seconds>:<id>`.
    pub username: String,
    /// `base64(HMAC-SHA1(secret, username))`.
    pub credential: String,
}

/// The credential for `id` (the call's id, so TURN logs name the call), valid from
/// `now_unix` (seconds) for `ttl`.
pub fn rest_credential(secret: &str, id: &str, now_unix: u64, ttl: Duration) -> TurnCredential {
    let username = format!("{}:{id}", now_unix.saturating_add(ttl.as_secs()));
    let mut mac = Hmac::<Sha1>::new_from_slice(secret.as_bytes()).expect("HMAC takes keys of any length");
    mac.update(username.as_bytes());
    let credential = base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
    TurnCredential { username, credential }
}

/// Why the TURN settings cannot be used as given, if they cannot: long-term credentials
/// are handed to anonymous callers only by explicit choice.
pub fn check_settings(
    has_turn_urls: bool,
    secret: Option<&str>,
    static_credentials: (Option<&str>, Option<&str>),
    allow_static: bool,
) -> Result<(), String> {
    let has_secret = secret.is_some_and(|s| !s.is_empty());
    let (username, credential) = static_credentials;
    let has_static = username.is_some_and(|u| !u.is_empty()) || credential.is_some_and(|c| !c.is_empty());
    if !has_turn_urls || has_secret {
        return Ok(());
    }
    if has_static && !allow_static {
        return Err("GATEWAY_TURN_USERNAME / GATEWAY_TURN_CREDENTIAL would be handed to every anonymous caller, who \
                    could then relay through the TURN server at will: set GATEWAY_TURN_SECRET (coturn \
                    `use-auth-secret` + `static-auth-secret`) for short-lived credentials per caller, or \
                    GATEWAY_TURN_STATIC_CREDENTIALS=true to accept that"
            .to_owned());
    }
    if allow_static && !(username.is_some_and(|u| !u.is_empty()) && credential.is_some_and(|c| !c.is_empty())) {
        return Err(
            "GATEWAY_TURN_STATIC_CREDENTIALS needs GATEWAY_TURN_USERNAME and GATEWAY_TURN_CREDENTIAL".to_owned()
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_follow_the_turn_rest_api_scheme() {
        let c = rest_credential("north", "call-1", 1_700_000_000, Duration::from_secs(3600));
        assert_eq!(c.username, "1700003600:call-1");
        // python3: base64.b64encode(hmac.new(b'north', b'1700003600:call-1', hashlib.sha1).digest())
        assert_eq!(c.credential, "FjhuqnwEOvD4AzFkv7xhoMpXmKY=");
    }

    #[test]
    fn long_term_credentials_need_an_explicit_choice() {
        let creds = (Some("gw"), Some("pw"));
        assert!(check_settings(true, None, creds, false).unwrap_err().contains("GATEWAY_TURN_SECRET"));
        assert!(check_settings(true, Some(""), creds, false).is_err(), "an empty secret is no secret");
        assert!(check_settings(true, None, creds, true).is_ok());
        assert!(check_settings(true, Some("s"), creds, false).is_ok(), "the secret wins");
        assert!(check_settings(false, None, creds, false).is_ok(), "no TURN server: nothing is handed out");
        assert!(check_settings(true, None, (None, None), true).is_err(), "the choice without credentials");
        assert!(check_settings(true, None, (None, None), false).is_ok());
    }
}
