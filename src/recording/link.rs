//! Short-lived links to recordings in local storage: the gateway's own download URL,
//! signed with the gateway's MAC ([`Sealer::mac`]: HMAC-SHA256 under a key derived from
//! the encryption key, so links made before a key rotation keep working until they expire).
//!
//! A link names the recording and when it expires, and carries the signature of both;
//! nothing else is needed to fetch the file, so links can go straight into an `<audio>`
//! element. Changing any part of a link breaks its signature.

use std::time::Duration;

use std::sync::Arc;

use crate::crypto::Sealer;
use crate::ids::RecordingId;
use crate::time::UnixMs;

/// How long a recording link works (spec: signed URLs with a 10-minute expiry).
pub const LINK_TTL: Duration = Duration::from_secs(10 * 60);

/// The purpose recording links are signed for (see [`Sealer::mac`]).
pub const LINK_LABEL: &str = "voice-gateway recording links v1";

/// Why a link is refused (both answer 403).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkRefusal {
    /// The signature does not match the recording and expiry (or is missing or malformed).
    BadSignature,
    /// A genuine link, past its expiry.
    Expired,
}

/// Signs and checks recording links.
#[derive(Clone)]
pub struct LinkSigner {
    sealer: Arc<Sealer>,
}

impl std::fmt::Debug for LinkSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("LinkSigner(..)")
    }
}

/// Expiry of a link handed out at `now`, in seconds since the epoch (as the URL carries it).
pub fn expiry(now: UnixMs) -> i64 {
    now.div_euclid(1000) + LINK_TTL.as_secs() as i64
}

impl LinkSigner {
    /// A signer with the gateway's keys.
    pub fn new(sealer: Arc<Sealer>) -> Self {
        Self { sealer }
    }

    fn message(recording: RecordingId, expires: i64) -> String {
        format!("recording:{recording}:{expires}")
    }

    /// The signature of a link to `recording` that expires at `expires` (seconds).
    pub fn sign(&self, recording: RecordingId, expires: i64) -> String {
        self.sealer.mac(LINK_LABEL, Self::message(recording, expires).as_bytes())
    }

    /// Checks a link at `now`: the signature first (in constant time), then the expiry.
    pub fn check(&self, recording: RecordingId, expires: i64, signature: &str, now: UnixMs) -> Result<(), LinkRefusal> {
        if !self.sealer.verify_mac(LINK_LABEL, Self::message(recording, expires).as_bytes(), signature) {
            return Err(LinkRefusal::BadSignature);
        }
        if now.div_euclid(1000) >= expires {
            return Err(LinkRefusal::Expired);
        }
        Ok(())
    }

    /// The download URL of `recording` under `public_base`, expiring at `expires`.
    pub fn url(&self, public_base: &str, recording: RecordingId, expires: i64) -> String {
        format!(
            "{public_base}/api/recordings/{recording}?expires={expires}&signature={}",
            self.sign(recording, expires)
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: UnixMs = 1_764_028_800_000;

    fn signer_with(key: u8) -> LinkSigner {
        use base64::Engine;
        let key = base64::engine::general_purpose::STANDARD.encode([key; 32]);
        LinkSigner::new(Arc::new(Sealer::from_key_list(&format!("k:{key}")).unwrap()))
    }

    fn signer() -> LinkSigner {
        signer_with(5)
    }

    #[test]
    fn a_link_works_until_its_expiry_ten_minutes_later() {
        let id = RecordingId::new();
        let expires = expiry(NOW);
        assert_eq!(expires, NOW / 1000 + 600);
        let sig = signer().sign(id, expires);
        assert_eq!(signer().check(id, expires, &sig, NOW), Ok(()));
        assert_eq!(signer().check(id, expires, &sig, NOW + 599_999), Ok(()));
        assert_eq!(signer().check(id, expires, &sig, NOW + 600_000), Err(LinkRefusal::Expired));
    }

    #[test]
    fn any_change_to_a_link_breaks_it() {
        let id = RecordingId::new();
        let expires = expiry(NOW);
        let sig = signer().sign(id, expires);
        assert_eq!(signer().check(RecordingId::new(), expires, &sig, NOW), Err(LinkRefusal::BadSignature));
        assert_eq!(signer().check(id, expires + 3600, &sig, NOW), Err(LinkRefusal::BadSignature));
        let mut flipped = sig.clone().into_bytes();
        flipped[3] = if flipped[3] == b'A' { b'B' } else { b'A' };
        assert_eq!(
            signer().check(id, expires, std::str::from_utf8(&flipped).unwrap(), NOW),
            Err(LinkRefusal::BadSignature)
        );
        assert_eq!(signer().check(id, expires, "", NOW), Err(LinkRefusal::BadSignature));
        assert_eq!(signer().check(id, expires, "not base64!", NOW), Err(LinkRefusal::BadSignature));
        assert_eq!(signer_with(6).check(id, expires, &sig, NOW), Err(LinkRefusal::BadSignature));
    }

    #[test]
    fn a_tampered_expired_link_says_tampered() {
        let id = RecordingId::new();
        let sig = signer().sign(id, expiry(NOW));
        assert_eq!(signer().check(id, expiry(NOW) + 1, &sig, NOW + 3_600_000), Err(LinkRefusal::BadSignature));
    }

    #[test]
    fn the_url_carries_id_expiry_and_signature() {
        let id = RecordingId::new();
        let url = signer().url("https://voice.example.com", id, 1_764_029_400);
        assert!(
            url.starts_with(&format!("https://voice.example.com/api/recordings/{id}?expires=1764029400&signature="))
        );
    }
}
