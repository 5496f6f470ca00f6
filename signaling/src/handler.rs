//! The bridge from webrtc-rs callbacks to our supervisor task.
//!
//! webrtc-rs 0.21 awaits every [`PeerConnectionEventHandler`] method on the connection's
//! driver task — the same loop that answers ICE consent checks and runs DTLS timers. So a
//! callback must never wait: each one records what happened and hands it on through an
//! unbounded channel. Unbounded is deliberate and safe here: these are control events
//! (candidates, state changes, one remote track), a few dozen per call at most, and losing
//! one would lose a candidate or the `Connected` signal.

use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, AtomicU64};
use std::sync::{Arc, OnceLock};

use tokio::sync::{Notify, mpsc};
use tracing::{debug, warn};
use webrtc::media_stream::track_remote::TrackRemote;
use webrtc::peer_connection::{
    PeerConnectionEventHandler, RTCIceConnectionState, RTCIceGatheringState, RTCPeerConnectionIceEvent,
    RTCPeerConnectionState,
};

use crate::candidate::{IceCandidate, advertise_public_ip};
use crate::watchdog::LinkState;

/// State one peer shares between the caller's [`Peer`](crate::Peer) handle, the webrtc
/// driver (through [`Handler`]) and the supervisor task. Only atomics and write-once cells:
/// nothing here is locked on the media path.
#[derive(Debug, Default)]
pub(crate) struct Shared {
    /// Set by the supervisor at the first `Connected` (DTLS up, SRTP keys in place, and the
    /// driver has said so before we see it), cleared on loss or close and never set again.
    /// Outgoing audio is only written while it is set: webrtc-rs accepts RTP written before
    /// the SRTP context exists, returns `Ok`, and drops it with a warning per packet.
    pub media_ready: AtomicBool,
    /// Set once by `close()` (or drop); everything after that is a no-op.
    pub closed: AtomicBool,
    /// Caller RTP packets seen on the remote audio track.
    pub rtp_received: AtomicU64,
    /// Caller RTP packets dropped because the events channel was full.
    pub rtp_dropped: AtomicU64,
    /// Our `a=mid` and `a=ice-ufrag`, known once the local description is created and set
    /// before it is applied, so every trickled candidate can name them (browsers reject a
    /// candidate whose `sdpMid` matches no media section).
    pub local: OnceLock<LocalDescription>,
    /// The negotiated Opus payload type: what we stamp on outgoing packets and accept on
    /// incoming ones.
    pub payload_type: OnceLock<u8>,
    /// The negotiated 8 kHz `telephone-event` payload type, when DTMF was asked for and
    /// offered: packets of this type are read as key presses, not audio.
    pub dtmf_payload_type: OnceLock<u8>,
    /// Signalled (one stored permit) when ICE gathering completes; a non-trickle answer
    /// waits for it before it is written.
    pub gathered: Notify,
}

#[derive(Debug, Clone)]
pub(crate) struct LocalDescription {
    pub mid: Option<String>,
    pub ufrag: Option<String>,
}

/// What the driver reports to the supervisor.
pub(crate) enum Control {
    LocalCandidate(IceCandidate),
    GatheringComplete,
    Link(LinkState),
    RemoteTrack(Arc<dyn TrackRemote>),
}

pub(crate) struct Handler {
    pub shared: Arc<Shared>,
    pub control: mpsc::UnboundedSender<Control>,
    /// NAT 1:1 addresses to advertise instead of the local ones.
    pub public_ips: Arc<[IpAddr]>,
    /// The peer's span: callbacks run on webrtc's driver task, outside any span of ours.
    pub span: tracing::Span,
}

impl Handler {
    fn send(&self, control: Control) {
        // Fails only once the supervisor is gone, i.e. the peer is closed: nothing to tell.
        let _ = self.control.send(control);
    }

    fn local(&self) -> LocalDescription {
        self.shared.local.get().cloned().unwrap_or(LocalDescription { mid: None, ufrag: None })
    }
}

#[async_trait::async_trait]
impl PeerConnectionEventHandler for Handler {
    async fn on_ice_candidate(&self, event: RTCPeerConnectionIceEvent) {
        let _enter = self.span.enter();
        let init = match event.candidate.to_json() {
            Ok(init) => init,
            Err(err) => {
                warn!(error = %err, "unusable local ICE candidate skipped");
                return;
            }
        };
        let local = self.local();
        let candidate = IceCandidate {
            candidate: advertise_public_ip(&init.candidate, &self.public_ips).into_owned(),
            sdp_mid: local.mid,
            sdp_m_line_index: Some(0),
            username_fragment: local.ufrag,
        };
        debug!(candidate = %candidate.candidate, "local ICE candidate");
        self.send(Control::LocalCandidate(candidate));
    }

    async fn on_ice_gathering_state_change(&self, state: RTCIceGatheringState) {
        if state == RTCIceGatheringState::Complete {
            self.shared.gathered.notify_one();
            self.send(Control::GatheringComplete);
        }
    }

    async fn on_ice_connection_state_change(&self, state: RTCIceConnectionState) {
        let _enter = self.span.enter();
        debug!(state = %state, "ICE connection state");
    }

    async fn on_connection_state_change(&self, state: RTCPeerConnectionState) {
        let _enter = self.span.enter();
        debug!(state = %state, "peer connection state");
        let link = match state {
            RTCPeerConnectionState::New | RTCPeerConnectionState::Connecting => LinkState::Connecting,
            RTCPeerConnectionState::Connected => LinkState::Connected,
            RTCPeerConnectionState::Disconnected => LinkState::Disconnected,
            RTCPeerConnectionState::Failed => LinkState::Failed,
            RTCPeerConnectionState::Closed => LinkState::Closed,
            _ => return,
        };
        self.send(Control::Link(link));
    }

    async fn on_track(&self, track: Arc<dyn TrackRemote>) {
        self.send(Control::RemoteTrack(track));
    }
}
