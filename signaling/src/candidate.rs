//! Trickled ICE candidates as the browser speaks them, and the NAT 1:1 address rewrite.
//!
//! webrtc-rs 0.21.1 accepts `SettingEngine::with_nat_1to1_ips` but never reads it (the field
//! is stored and nothing uses it), so advertising the public address is done here: every
//! host candidate leaving this crate, trickled or inside an SDP, carries the configured
//! public IP of its family. Inbound traffic is unaffected — the 1:1 NAT delivers it to the
//! local address the ICE agent knows.

use std::borrow::Cow;
use std::net::IpAddr;

use serde::{Deserialize, Serialize};

/// One ICE candidate, field for field the browser's `RTCIceCandidateInit` JSON.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct IceCandidate {
    /// `candidate:…` attribute (RFC 8839). Empty means end-of-candidates.
    pub candidate: String,
    /// The `a=mid` of the media section the candidate belongs to.
    #[serde(default)]
    pub sdp_mid: Option<String>,
    /// Index of that media section.
    #[serde(default, rename = "sdpMLineIndex")]
    pub sdp_m_line_index: Option<u16>,
    /// ICE ufrag of the generation the candidate belongs to.
    #[serde(default)]
    pub username_fragment: Option<String>,
}

impl IceCandidate {
    /// The "no more candidates" marker for a media section, as browsers send it.
    pub fn end_of_candidates(sdp_mid: Option<String>, username_fragment: Option<String>) -> Self {
        Self { candidate: String::new(), sdp_mid, sdp_m_line_index: Some(0), username_fragment }
    }

    /// Whether this is the end-of-candidates marker rather than a candidate.
    pub fn is_end_of_candidates(&self) -> bool {
        self.candidate.trim().is_empty()
    }

    /// The transport token (`udp` / `tcp`), lower-cased, if the candidate parses that far.
    pub fn transport(&self) -> Option<String> {
        fields(&self.candidate).nth(2).map(str::to_ascii_lowercase)
    }

    /// The connection address and port, if the candidate parses that far.
    pub fn address(&self) -> Option<(&str, u16)> {
        let mut fields = fields(&self.candidate).skip(4);
        let address = fields.next()?;
        let port = fields.next()?.parse().ok()?;
        Some((address, port))
    }

    /// The candidate type (`host`, `srflx`, `prflx`, `relay`).
    pub fn kind(&self) -> Option<&str> {
        let mut fields = fields(&self.candidate).skip(6);
        (fields.next()? == "typ").then_some(())?;
        fields.next()
    }
}

/// The whitespace-separated fields of a candidate attribute, without its `candidate:` prefix.
fn fields(candidate: &str) -> impl Iterator<Item = &str> {
    let candidate = candidate.trim();
    let candidate = candidate.strip_prefix("a=").unwrap_or(candidate).strip_prefix("candidate:").unwrap_or(candidate);
    candidate.split_ascii_whitespace()
}

/// NAT 1:1: replaces the address of a *host* candidate with the public IP of the same
/// family. Other candidate types, and families without a public IP, are left as they are.
pub(crate) fn advertise_public_ip<'a>(candidate: &'a str, public_ips: &[IpAddr]) -> Cow<'a, str> {
    if public_ips.is_empty() {
        return Cow::Borrowed(candidate);
    }
    let tokens: Vec<&str> = fields(candidate).collect();
    if tokens.len() < 8 || tokens[6] != "typ" || tokens[7] != "host" {
        return Cow::Borrowed(candidate);
    }
    let Ok(local) = tokens[4].parse::<IpAddr>() else {
        return Cow::Borrowed(candidate);
    };
    let Some(public) = public_ips.iter().find(|ip| ip.is_ipv4() == local.is_ipv4() && **ip != local) else {
        return Cow::Borrowed(candidate);
    };
    let public = public.to_string();
    let prefix = if candidate.trim_start().starts_with("a=") { "a=candidate:" } else { "candidate:" };
    let mut rewritten = String::with_capacity(candidate.len() + 16);
    rewritten.push_str(prefix);
    for (index, token) in tokens.iter().enumerate() {
        if index > 0 {
            rewritten.push(' ');
        }
        rewritten.push_str(if index == 4 { &public } else { token });
    }
    Cow::Owned(rewritten)
}

/// Applies [`advertise_public_ip`] to every `a=candidate` line of an SDP, keeping its
/// line endings.
pub(crate) fn advertise_public_ip_in_sdp(sdp: &str, public_ips: &[IpAddr]) -> String {
    if public_ips.is_empty() {
        return sdp.to_owned();
    }
    let mut out = String::with_capacity(sdp.len() + 64);
    for line in sdp.split_inclusive('\n') {
        let content = line.trim_end_matches(['\r', '\n']);
        if content.starts_with("a=candidate:") {
            out.push_str(&advertise_public_ip(content, public_ips));
            out.push_str(&line[content.len()..]);
        } else {
            out.push_str(line);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOST: &str = "candidate:1234 1 udp 2130706431 10.0.0.5 40000 typ host";
    const SRFLX: &str = "candidate:99 1 udp 1694498815 198.51.100.7 40000 typ srflx raddr 10.0.0.5 rport 40000";
    const TCP_PASSIVE: &str = "candidate:77 1 tcp 1671430143 10.0.0.5 40000 typ host tcptype passive";

    fn public() -> Vec<IpAddr> {
        vec!["203.0.113.10".parse().unwrap(), "2001:db8::10".parse().unwrap()]
    }

    #[test]
    fn host_candidates_carry_the_public_ip() {
        assert_eq!(advertise_public_ip(HOST, &public()), "candidate:1234 1 udp 2130706431 203.0.113.10 40000 typ host");
        assert_eq!(
            advertise_public_ip(TCP_PASSIVE, &public()),
            "candidate:77 1 tcp 1671430143 203.0.113.10 40000 typ host tcptype passive"
        );
    }

    #[test]
    fn other_types_and_families_are_untouched() {
        assert_eq!(advertise_public_ip(SRFLX, &public()), SRFLX);
        let v4_only = vec!["203.0.113.10".parse().unwrap()];
        let v6 = "candidate:5 1 udp 2130706431 fd00::5 40000 typ host";
        assert_eq!(advertise_public_ip(v6, &v4_only), v6);
        assert_eq!(advertise_public_ip(HOST, &[]), HOST);
        assert_eq!(advertise_public_ip("garbage", &public()), "garbage");
    }

    #[test]
    fn sdp_candidate_lines_are_rewritten_and_line_endings_kept() {
        let sdp = format!("v=0\r\na=mid:0\r\na={HOST}\r\na={SRFLX}\r\n");
        let rewritten = advertise_public_ip_in_sdp(&sdp, &public());
        assert_eq!(
            rewritten,
            format!("v=0\r\na=mid:0\r\na=candidate:1234 1 udp 2130706431 203.0.113.10 40000 typ host\r\na={SRFLX}\r\n")
        );
    }

    #[test]
    fn candidate_fields_are_readable() {
        let c = IceCandidate {
            candidate: TCP_PASSIVE.to_owned(),
            sdp_mid: Some("0".to_owned()),
            sdp_m_line_index: Some(0),
            username_fragment: None,
        };
        assert_eq!(c.transport().as_deref(), Some("tcp"));
        assert_eq!(c.address(), Some(("10.0.0.5", 40000)));
        assert_eq!(c.kind(), Some("host"));
        assert!(!c.is_end_of_candidates());
        assert!(IceCandidate::end_of_candidates(None, None).is_end_of_candidates());
    }

    #[test]
    fn json_matches_the_browser_rtc_ice_candidate_init() {
        let json = r#"{"candidate":"candidate:1 1 udp 1 10.0.0.5 9 typ host","sdpMid":"0","sdpMLineIndex":0,"usernameFragment":"abcd"}"#;
        let c: IceCandidate = serde_json::from_str(json).unwrap();
        assert_eq!(c.sdp_mid.as_deref(), Some("0"));
        assert_eq!(c.sdp_m_line_index, Some(0));
        assert_eq!(serde_json::to_string(&c).unwrap(), json);
        // Browsers may omit everything but the candidate (and send null for the rest).
        let c: IceCandidate = serde_json::from_str(r#"{"candidate":"","sdpMid":null}"#).unwrap();
        assert!(c.is_end_of_candidates());
    }
}
