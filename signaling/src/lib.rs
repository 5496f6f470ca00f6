//! WebRTC peers for the voice gateway, on webrtc-rs 0.21.
//!
//! A [`PeerFactory`] answers a browser's or WhatsApp's offer (or makes an offer, for test
//! clients) with one sendrecv Opus audio transceiver; the resulting [`Peer`] sends 20 ms Opus
//! packets, and its [`PeerEvents`] deliver trickled candidates, the caller's RTP and DTMF,
//! and the `Connected` / `Lost` / `Closed` verdicts that the call session acts on. See `README.md` beside this
//! crate for how webrtc-rs 0.21 behaves underneath (DTLS role, interceptors, cost per peer).
//!
//! Module map:
//! - `config`     — [`SignalingConfig`], [`IceServer`], and the ICE timers derived from them
//! - `answer`     — [`AnswerOptions`] (browser defaults, WhatsApp's requirements), roles
//! - `factory`    — [`PeerFactory`]: port, sockets, codecs, interceptors, ICE settings per peer
//! - `peer`       — [`Peer`], [`PeerEvents`], [`PeerEvent`], [`RtpAudio`]: the send path
//! - `handler`    — webrtc-rs callbacks, run on its driver task, forwarded without waiting
//! - `supervisor` — our one task per peer: events out, caller audio out, watchdog timer
//! - `watchdog`   — pure dead-peer state machine (`Watchdog`) and [`LostReason`]
//! - `port_pool`  — the UDP port range, one port per live peer
//! - `candidate`  — [`IceCandidate`] (browser JSON) and the NAT 1:1 address rewrite
//! - `sdp`        — Opus as browsers describe it, `telephone-event`, reading attributes back
//! - `dtmf`       — pure RFC 4733 key-press detection (`DtmfDetector`)
//! - `error`      — [`PeerError`]

mod answer;
mod candidate;
mod config;
mod dtmf;
mod error;
mod factory;
mod handler;
mod peer;
mod port_pool;
mod sdp;
mod supervisor;
mod watchdog;

pub use answer::{AnswerOptions, DtlsRole, IceRole, PeerRoles};
pub use candidate::IceCandidate;
pub use config::{IceServer, SignalingConfig};
pub use error::PeerError;
pub use factory::PeerFactory;
pub use peer::{Peer, PeerEvent, PeerEvents, RtpAudio, SAMPLES_PER_FRAME};
pub use watchdog::LostReason;
