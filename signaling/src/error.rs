//! The one error type of this crate.

/// Everything that can go wrong while building or driving a [`Peer`](crate::Peer).
///
/// Variants are what a caller can act on: a bad offer is the caller's fault (answer 400),
/// an exhausted port pool is capacity (answer 503 and alert), the rest are internal.
#[derive(Debug, thiserror::Error)]
pub enum PeerError {
    /// [`SignalingConfig`](crate::SignalingConfig) is not usable; the message names the field.
    #[error("invalid signaling config: {0}")]
    Config(String),

    /// Every port of the configured UDP range is taken (by our peers or by other processes).
    #[error("no free UDP port in {first}..={last}")]
    NoFreePort {
        /// First port of the configured range.
        first: u16,
        /// Last port of the configured range (inclusive).
        last: u16,
    },

    /// Could not bind a socket outside the pool (ephemeral port mode).
    #[error("could not bind a socket on {ip}: {source}")]
    Bind {
        /// The configured bind address.
        ip: std::net::IpAddr,
        /// What the OS said.
        source: std::io::Error,
    },

    /// The remote SDP could not be parsed, or is not the kind of description expected.
    #[error("invalid SDP: {0}")]
    InvalidSdp(String),

    /// The remote side offers no audio section with Opus 48 kHz, so there is nothing to answer.
    #[error("the remote description offers no Opus audio")]
    NoOpus,

    /// Our answer cannot meet its [`AnswerOptions`](crate::AnswerOptions): no SHA-256
    /// fingerprint, or no candidate gathered for a non-trickle answer.
    #[error("cannot answer as required: {0}")]
    Answer(String),

    /// A trickled remote ICE candidate could not be parsed or applied.
    #[error("invalid ICE candidate: {0}")]
    InvalidCandidate(String),

    /// The peer was closed; nothing more can be done with it.
    #[error("peer is closed")]
    Closed,

    /// The WebRTC stack refused an operation (internal cause, log it, do not show it).
    #[error("webrtc: {0}")]
    WebRtc(#[from] webrtc::error::Error),
}
