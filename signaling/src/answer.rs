//! How an offer is answered: [`AnswerOptions`] (the browser defaults, or what Meta's
//! WhatsApp Calling requires) and the few SDP edits a complete, non-trickle answer needs.

use std::time::Duration;

use crate::PeerError;

/// The DTLS role our answer takes, written as `a=setup` (RFC 5763, RFC 8842).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DtlsRole {
    /// `a=setup:active`: we send the ClientHello.
    Client,
    /// `a=setup:passive`: we wait for the remote side's ClientHello.
    Server,
}

/// The ICE role of our agent (RFC 8445 §6.1.1). Not chosen by us: webrtc-rs derives it from
/// the offer — against an ICE-lite offerer a full agent is *controlling*, otherwise the
/// answerer is *controlled*. Read back with [`Peer::roles`](crate::Peer::roles).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IceRole {
    /// We run the checks and nominate the pair (and the remote side only answers).
    Controlling,
    /// The remote side nominates.
    Controlled,
}

/// The ICE and DTLS roles a peer ended up with, as its transport reports them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PeerRoles {
    /// `None` until ICE has started.
    pub ice: Option<IceRole>,
    /// `None` until DTLS has started.
    pub dtls: Option<DtlsRole>,
}

/// How [`PeerFactory::answer_with`](crate::PeerFactory::answer_with) answers an offer.
///
/// `AnswerOptions::default()` is the browser path, exactly what
/// [`PeerFactory::answer`](crate::PeerFactory::answer) does: webrtc-rs's role defaults, trickle
/// ICE (the answer carries no candidates), Opus only. [`AnswerOptions::whatsapp`] is what
/// Meta's WhatsApp Calling needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AnswerOptions {
    /// The DTLS role written in the answer. `None` leaves it to webrtc-rs 0.21, which answers
    /// `a=setup:active` — except to an ICE-lite offer, where it answers `a=setup:passive`
    /// (its controlling agent becomes DTLS server). Meta requires `active`, so WhatsApp sets
    /// it explicitly.
    pub dtls_role: Option<DtlsRole>,
    /// For peers that do not trickle: gather our candidates first (up to
    /// [`gathering_timeout`](Self::gathering_timeout)) and write them into the answer, and
    /// leave out `a=ice-options:trickle`. Trickled [`LocalCandidate`](crate::PeerEvent)
    /// events still follow; such a peer ignores them.
    pub complete_candidates: bool,
    /// How long gathering may take before the answer goes out with the candidates found so
    /// far (at least one is required).
    pub gathering_timeout: Duration,
    /// Accept RFC 4733 `telephone-event` (8 kHz) when offered and report key presses as
    /// [`PeerEvent::Dtmf`](crate::PeerEvent::Dtmf) instead of audio.
    pub dtmf: bool,
    /// Keep exactly one `a=fingerprint:sha-256` line and fail if there is none: WhatsApp
    /// only accepts SHA-256 fingerprints.
    pub sha256_fingerprint_only: bool,
}

impl Default for AnswerOptions {
    fn default() -> Self {
        Self {
            dtls_role: None,
            complete_candidates: false,
            gathering_timeout: Duration::from_secs(5),
            dtmf: false,
            sha256_fingerprint_only: false,
        }
    }
}

impl AnswerOptions {
    /// Meta's requirements for a WhatsApp Calling answer (shared/protocols/whatsapp-calling.md
    /// §4): DTLS client (`a=setup:active`), a complete answer with our candidates (Meta does
    /// not trickle), a single SHA-256 fingerprint, and `telephone-event` for DTMF. The ICE
    /// role needs no option: Meta offers ICE-lite, so our full agent is controlling.
    pub fn whatsapp() -> Self {
        Self {
            dtls_role: Some(DtlsRole::Client),
            complete_candidates: true,
            gathering_timeout: Duration::from_secs(3),
            dtmf: true,
            sha256_fingerprint_only: true,
        }
    }
}

/// The edits a finished answer gets, line by line, keeping its line endings: without
/// trickle, `a=ice-options:trickle` goes; with `sha256_fingerprint_only`, fingerprints of
/// other hash functions go and exactly one SHA-256 fingerprint must remain.
pub(crate) fn finish_answer(sdp: &str, options: &AnswerOptions) -> Result<String, PeerError> {
    let mut out = String::with_capacity(sdp.len());
    let mut sha256 = 0;
    for line in sdp.split_inclusive('\n') {
        let content = line.trim_end_matches(['\r', '\n']);
        if options.complete_candidates && content == "a=ice-options:trickle" {
            continue;
        }
        if options.sha256_fingerprint_only
            && let Some(fingerprint) = content.strip_prefix("a=fingerprint:")
        {
            let is_sha256 =
                fingerprint.split_ascii_whitespace().next().is_some_and(|hash| hash.eq_ignore_ascii_case("sha-256"));
            if !is_sha256 {
                continue;
            }
            sha256 += 1;
        }
        out.push_str(line);
    }
    if options.sha256_fingerprint_only && sha256 != 1 {
        return Err(PeerError::Answer(format!("{sha256} SHA-256 fingerprints where exactly one is required")));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const ANSWER: &str = "v=0\r\na=ice-options:trickle\r\na=fingerprint:sha-512 AA:BB\r\na=fingerprint:sha-256 01:02\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=setup:active\r\n";

    #[test]
    fn the_default_options_leave_the_answer_untouched() {
        assert_eq!(finish_answer(ANSWER, &AnswerOptions::default()).unwrap(), ANSWER);
    }

    #[test]
    fn a_whatsapp_answer_keeps_one_sha256_fingerprint_and_drops_the_trickle_option() {
        assert_eq!(
            finish_answer(ANSWER, &AnswerOptions::whatsapp()).unwrap(),
            "v=0\r\na=fingerprint:sha-256 01:02\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=setup:active\r\n"
        );
    }

    #[test]
    fn a_whatsapp_answer_without_a_sha256_fingerprint_is_an_error() {
        let sha1_only = "v=0\r\na=fingerprint:sha-1 01:02\r\n";
        assert!(matches!(finish_answer(sha1_only, &AnswerOptions::whatsapp()), Err(PeerError::Answer(_))));
        let two = "v=0\r\na=fingerprint:sha-256 01:02\r\na=fingerprint:SHA-256 03:04\r\n";
        assert!(matches!(finish_answer(two, &AnswerOptions::whatsapp()), Err(PeerError::Answer(_))));
    }
}
