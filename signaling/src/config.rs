//! What the gateway operator configures, and the ICE timers derived from it.

use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::PeerError;

/// Network settings shared by every peer a [`PeerFactory`](crate::PeerFactory) builds.
#[derive(Debug, Clone)]
pub struct SignalingConfig {
    /// Local address the media sockets bind to. `0.0.0.0` makes webrtc-rs 0.21 bind one socket
    /// per non-loopback interface (same port on each); give a concrete address to bind exactly
    /// one socket per peer — do that when `public_ips` is set, so only the NATed interface
    /// is advertised.
    pub bind_ip: IpAddr,
    /// Inclusive UDP port range, e.g. `(40000, 40999)`: each peer holds one port of it for its
    /// lifetime (webrtc-rs has no single-port mux). `None` lets the OS pick ephemeral ports.
    pub udp_port_range: Option<(u16, u16)>,
    /// NAT 1:1: the public addresses of this host. Host candidates are advertised with the
    /// public address of their family instead of the local one. At most one per IP family.
    pub public_ips: Vec<IpAddr>,
    /// Also offer passive ICE-TCP candidates, for callers whose networks block UDP.
    ///
    /// Deviation from the first sketch (`ice_tcp_port: Option<u16>`): webrtc-rs 0.21 binds a
    /// TCP listener per peer connection and cannot share one between peers, so each peer
    /// listens on TCP at the same port number as its UDP port (TCP and UDP ports are separate
    /// namespaces, so the pool serves both).
    pub ice_tcp: bool,
    /// STUN/TURN servers handed to the browser. The gateway itself only uses their `stun:`
    /// URLs, and only when `public_ips` is empty (to learn its own public address); it never
    /// allocates TURN relays for itself — the browser's relay is enough to get through.
    pub ice_servers: Vec<IceServer>,
    /// How long the peer may stay unreachable (no answer to ICE consent checks) before the
    /// call is [`Lost`](crate::PeerEvent::Lost). Half of it (at most 3 s) goes to the ICE
    /// agent's own disconnect detection, the rest is grace for the path to come back.
    pub disconnected_timeout: Duration,
    /// A peer that never reaches `Connected` within this time (from creation) is lost.
    pub connect_timeout: Duration,
}

impl Default for SignalingConfig {
    fn default() -> Self {
        Self {
            bind_ip: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            udp_port_range: None,
            public_ips: Vec::new(),
            ice_tcp: false,
            ice_servers: Vec::new(),
            disconnected_timeout: Duration::from_secs(10),
            connect_timeout: Duration::from_secs(20),
        }
    }
}

/// One STUN or TURN server, shaped like the browser's `RTCIceServer` dictionary so the API
/// can hand the list to the widget as JSON unchanged. `Debug` masks the credential, so a
/// logged config never carries it.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct IceServer {
    /// `stun:host:port`, `turn:host:port?transport=udp`, `turns:…`.
    pub urls: Vec<String>,
    /// TURN user name; STUN servers have none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    /// TURN credential; STUN servers have none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credential: Option<String>,
}

impl std::fmt::Debug for IceServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IceServer")
            .field("urls", &self.urls)
            .field("username", &self.username)
            .field("credential", &self.credential.as_ref().map(|_| "***"))
            .finish()
    }
}

/// The ICE agent settings derived from [`SignalingConfig`], split between the agent (which
/// notices silence) and our [`Watchdog`](crate::watchdog::Watchdog) (which decides the call is
/// lost).
///
/// The agent flags `Disconnected` after `ice_disconnected` without hearing from the peer;
/// the watchdog then waits `grace` more. Their sum is the configured `disconnected_timeout`,
/// so the operator sets one number and gets that bound (plus up to one keepalive tick).
/// The agent's own `Failed` verdict is pushed beyond both of our deadlines so ours decide.
///
/// In webrtc-rs 0.21 only STUN refreshes liveness: media and DTLS bypass the ICE agent and
/// count for nothing. So liveness rests on our consent checks (`keepalive`) and their
/// responses, plus the browser's own checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct IceTimers {
    pub ice_disconnected: Duration,
    pub ice_failed: Duration,
    pub keepalive: Duration,
    pub grace: Duration,
    pub connect: Duration,
}

impl IceTimers {
    /// Silence the agent tolerates before it says `Disconnected`: half the budget, but at most
    /// 3 s (four consent round trips without an answer is a real outage, not a lost packet)
    /// and at least 250 ms.
    fn ice_disconnected(disconnected_timeout: Duration) -> Duration {
        (disconnected_timeout / 2).clamp(Duration::from_millis(250), Duration::from_secs(3))
    }

    pub(crate) fn from_config(config: &SignalingConfig) -> Self {
        let ice_disconnected = Self::ice_disconnected(config.disconnected_timeout);
        Self {
            ice_disconnected,
            // Beyond both our deadlines: ICE `Failed` before them would pre-empt the
            // configured policy (the agent also fails a pair that checks for too long).
            ice_failed: config.connect_timeout + config.disconnected_timeout,
            // Four consent checks per silence window, so a lost check or two never
            // disconnects, and a recovered path is noticed within a fraction of the window.
            keepalive: (ice_disconnected / 4).max(Duration::from_millis(100)),
            grace: config.disconnected_timeout.saturating_sub(ice_disconnected),
            connect: config.connect_timeout,
        }
    }
}

impl SignalingConfig {
    /// Checks what the types cannot: ranges, families, durations, server URLs.
    pub(crate) fn validate(&self) -> Result<(), PeerError> {
        if let Some((first, last)) = self.udp_port_range
            && (first == 0 || first > last)
        {
            return Err(PeerError::Config(format!("udp_port_range: {first}..={last} is empty or starts at 0")));
        }
        let v4 = self.public_ips.iter().filter(|ip| ip.is_ipv4()).count();
        if v4 > 1 || self.public_ips.len() - v4 > 1 {
            return Err(PeerError::Config("public_ips: at most one address per IP family".to_owned()));
        }
        if self.public_ips.iter().any(|ip| ip.is_unspecified()) {
            return Err(PeerError::Config("public_ips: an unspecified address cannot be advertised".to_owned()));
        }
        if self.disconnected_timeout < Duration::from_millis(500) {
            return Err(PeerError::Config("disconnected_timeout: must be at least 500 ms".to_owned()));
        }
        if self.connect_timeout.is_zero() {
            return Err(PeerError::Config("connect_timeout: must not be zero".to_owned()));
        }
        for server in &self.ice_servers {
            if server.urls.is_empty() {
                return Err(PeerError::Config("ice_servers: a server without urls".to_owned()));
            }
            for url in &server.urls {
                let scheme = url.split(':').next().unwrap_or_default();
                match scheme {
                    "stun" | "stuns" => {}
                    "turn" | "turns" => {
                        if server.username.is_none() || server.credential.is_none() {
                            return Err(PeerError::Config(format!(
                                "ice_servers: {url} needs a username and a credential"
                            )));
                        }
                    }
                    _ => {
                        return Err(PeerError::Config(format!(
                            "ice_servers: {url} is not a stun:, stuns:, turn: or turns: URL"
                        )));
                    }
                }
            }
        }
        Ok(())
    }

    /// The servers the gateway's own ICE agent gathers with: plain STUN only, and none at all
    /// when the public address is configured (nothing left to discover).
    pub(crate) fn own_stun_servers(&self) -> Vec<String> {
        if !self.public_ips.is_empty() {
            return Vec::new();
        }
        self.ice_servers
            .iter()
            .flat_map(|server| server.urls.iter())
            .filter(|url| url.starts_with("stun:"))
            .cloned()
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(disconnected: u64, connect: u64) -> SignalingConfig {
        SignalingConfig {
            disconnected_timeout: Duration::from_secs(disconnected),
            connect_timeout: Duration::from_secs(connect),
            ..SignalingConfig::default()
        }
    }

    #[test]
    fn agent_silence_and_grace_add_up_to_the_configured_timeout() {
        for secs in [1, 2, 10, 60] {
            let timers = IceTimers::from_config(&config(secs, 20));
            assert_eq!(timers.ice_disconnected + timers.grace, Duration::from_secs(secs));
            assert!(timers.keepalive < timers.ice_disconnected);
            assert!(timers.ice_failed > timers.grace + timers.ice_disconnected);
            assert!(timers.ice_failed > timers.connect);
        }
    }

    #[test]
    fn agent_silence_is_capped_for_long_timeouts() {
        let timers = IceTimers::from_config(&config(10, 20));
        assert_eq!(timers.ice_disconnected, Duration::from_secs(3));
        assert_eq!(timers.grace, Duration::from_secs(7));
    }

    #[test]
    fn defaults_are_valid() {
        assert!(SignalingConfig::default().validate().is_ok());
    }

    #[test]
    fn bad_values_are_rejected_with_the_field_named() {
        let cases = [
            SignalingConfig { udp_port_range: Some((41000, 40000)), ..SignalingConfig::default() },
            SignalingConfig {
                public_ips: vec!["203.0.113.1".parse().unwrap(), "203.0.113.2".parse().unwrap()],
                ..SignalingConfig::default()
            },
            SignalingConfig {
                ice_servers: vec![IceServer {
                    urls: vec!["turn:turn.example.com:3478".to_owned()],
                    username: None,
                    credential: None,
                }],
                ..SignalingConfig::default()
            },
            SignalingConfig {
                ice_servers: vec![IceServer {
                    urls: vec!["http://example.com".to_owned()],
                    username: None,
                    credential: None,
                }],
                ..SignalingConfig::default()
            },
            config(0, 20),
        ];
        for case in cases {
            assert!(matches!(case.validate(), Err(PeerError::Config(_))), "{case:?}");
        }
    }

    #[test]
    fn the_gateway_only_uses_stun_and_only_without_a_public_ip() {
        let mut config = SignalingConfig {
            ice_servers: vec![
                IceServer { urls: vec!["stun:stun.example.com:3478".to_owned()], username: None, credential: None },
                IceServer {
                    urls: vec!["turn:turn.example.com:3478".to_owned()],
                    username: Some("u".to_owned()),
                    credential: Some("p".to_owned()),
                },
            ],
            ..SignalingConfig::default()
        };
        assert_eq!(config.own_stun_servers(), ["stun:stun.example.com:3478"]);
        config.public_ips = vec!["203.0.113.1".parse().unwrap()];
        assert!(config.own_stun_servers().is_empty());
    }

    #[test]
    fn debug_output_masks_the_turn_credential() {
        let server = IceServer {
            urls: vec!["turn:turn.example.com".to_owned()],
            username: Some("user".to_owned()),
            credential: Some("s3cret".to_owned()),
        };
        let printed = format!("{:?}", SignalingConfig { ice_servers: vec![server], ..SignalingConfig::default() });
        assert!(!printed.contains("s3cret") && printed.contains("***"), "{printed}");
    }

    #[test]
    fn ice_servers_serialize_like_the_browser_dictionary() {
        let server = IceServer { urls: vec!["stun:stun.example.com".to_owned()], username: None, credential: None };
        assert_eq!(serde_json::to_string(&server).unwrap(), r#"{"urls":["stun:stun.example.com"]}"#);
    }
}
