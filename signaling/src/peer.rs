//! [`Peer`]: one WebRTC connection carrying one Opus audio stream each way.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

use bytes::Bytes;
use rtc::rtp::header::Header;
use rtc::rtp::packet::Packet;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, trace};
use webrtc::media_stream::track_local::TrackLocal;
use webrtc::media_stream::track_local::static_rtp::TrackLocalStaticRTP;
use webrtc::peer_connection::{PeerConnection, RTCIceCandidateInit, RTCSessionDescription, StatsSelector};
use webrtc::rtp_transceiver::RtpSender;

use crate::PeerError;
use crate::answer::{DtlsRole, IceRole, PeerRoles};
use crate::candidate::IceCandidate;
use crate::handler::Shared;
use crate::port_pool::PortLease;
use crate::sdp::{has_opus_audio, opus_payload_type, telephone_event_payload_type};
use crate::watchdog::LostReason;

/// RTP clock ticks per 20 ms Opus frame (Opus always uses a 48 kHz RTP clock).
pub const SAMPLES_PER_FRAME: u32 = 960;

/// What happened on a peer, in order. Read it with [`PeerEvents::recv`].
#[derive(Debug)]
pub enum PeerEvent {
    /// A local ICE candidate to trickle to the remote side. The last one of a gathering round
    /// is the end-of-candidates marker ([`IceCandidate::is_end_of_candidates`]).
    LocalCandidate(IceCandidate),
    /// ICE and DTLS are up: audio flows from now on. Reported once.
    Connected,
    /// One Opus packet of the caller's audio.
    Rtp(RtpAudio),
    /// The caller pressed a key (RFC 4733 `telephone-event`, negotiated with
    /// [`AnswerOptions::dtmf`](crate::AnswerOptions::dtmf)): `0`–`9`, `*`, `#` or `A`–`D`.
    /// Reported once per press, whatever the number of packets that carried it.
    Dtmf {
        /// The key.
        digit: char,
    },
    /// The remote side is gone (ICE failed, disconnected too long, or never connected).
    /// Reported at most once; end the call with [`LostReason::END_REASON`] and close the peer.
    Lost {
        /// Which deadline or failure decided it.
        reason: LostReason,
    },
    /// The peer was closed locally; no event follows.
    Closed,
}

/// One received RTP packet of the caller's audio, header fields the jitter buffer needs.
#[derive(Debug, Clone)]
pub struct RtpAudio {
    /// RTP sequence number.
    pub sequence: u16,
    /// RTP timestamp (48 kHz clock).
    pub timestamp: u32,
    /// Marker bit: start of a talkspurt.
    pub marker: bool,
    /// The Opus packet, sharing the buffer it was decrypted into (no copy).
    pub payload: Bytes,
    /// When the packet reached us (tokio's clock).
    pub arrival: Instant,
}

/// The receiving end of a peer's events. Bounded: caller audio that finds it full is dropped
/// and counted ([`Peer::rtp_dropped`]); control events wait for room.
#[derive(Debug)]
pub struct PeerEvents(pub(crate) mpsc::Receiver<PeerEvent>);

impl PeerEvents {
    /// The next event; `None` once the peer is closed and every event has been read.
    pub async fn recv(&mut self) -> Option<PeerEvent> {
        self.0.recv().await
    }

    /// The next event if one is waiting.
    pub fn try_recv(&mut self) -> Option<PeerEvent> {
        self.0.try_recv().ok()
    }

    /// The channel itself, for callers that want to `select!` on it directly.
    pub fn into_inner(self) -> mpsc::Receiver<PeerEvent> {
        self.0
    }
}

/// One WebRTC peer connection with one sendrecv Opus audio transceiver.
///
/// Cheap to clone; all clones drive the same connection. Closing is explicit
/// ([`Peer::close`]); dropping the last clone closes it too, from a spawned task.
#[derive(Clone)]
pub struct Peer {
    inner: Arc<PeerInner>,
}

impl std::fmt::Debug for Peer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Peer")
            .field("id", &self.inner.id)
            .field("port", &self.inner.port)
            .field("connected", &self.is_connected())
            .finish_non_exhaustive()
    }
}

pub(crate) struct PeerInner {
    pub id: u64,
    pub shared: Arc<Shared>,
    pub pc: Arc<dyn PeerConnection>,
    pub track: Arc<TrackLocalStaticRTP>,
    pub sender: Arc<dyn RtpSender>,
    pub ssrc: u32,
    /// The port this peer's sockets are bound to (UDP, and TCP when ICE-TCP is on).
    pub port: u16,
    /// Whether remote TCP candidates can be used (ICE-TCP on): without it they are dropped,
    /// because webrtc-rs would otherwise dial every remote passive TCP candidate.
    pub accepts_tcp: bool,
    /// Held while the sockets are open; released after they close.
    pub lease: Mutex<Option<PortLease>>,
    /// Outgoing sequence number and timestamp. A std mutex: locked for two additions per
    /// packet by the one call task that sends, never across an await.
    pub clock: Mutex<RtpClock>,
    /// Remote candidates that arrived before the remote description (offer role).
    pub remote: Mutex<RemoteCandidates>,
    /// Stops the supervisor task.
    pub cancel: CancellationToken,
    pub span: tracing::Span,
}

#[derive(Debug, Default)]
pub(crate) struct RemoteCandidates {
    pub described: bool,
    pub pending: Vec<IceCandidate>,
}

/// Sequence number and timestamp of the outgoing stream (RFC 3550: both start random).
#[derive(Debug, Clone)]
pub(crate) struct RtpClock {
    sequence: u16,
    timestamp: u32,
    started: bool,
}

impl RtpClock {
    pub(crate) fn new(sequence: u16, timestamp: u32) -> Self {
        Self { sequence, timestamp, started: false }
    }

    /// Header fields of the next 20 ms frame; the first one carries the marker bit.
    pub(crate) fn next_frame(&mut self) -> (u16, u32, bool) {
        let first = !self.started;
        if self.started {
            self.sequence = self.sequence.wrapping_add(1);
            self.timestamp = self.timestamp.wrapping_add(SAMPLES_PER_FRAME);
        }
        self.started = true;
        (self.sequence, self.timestamp, first)
    }
}

impl Peer {
    pub(crate) fn new(inner: PeerInner) -> Self {
        Self { inner: Arc::new(inner) }
    }

    pub(crate) fn inner(&self) -> &PeerInner {
        &self.inner
    }

    fn ensure_open(&self) -> Result<(), PeerError> {
        if self.inner.shared.closed.load(Ordering::Acquire) { Err(PeerError::Closed) } else { Ok(()) }
    }

    /// Finishes the offer role: applies the remote answer, then any candidates that
    /// arrived before it.
    pub async fn apply_answer(&self, answer_sdp: &str) -> Result<(), PeerError> {
        self.ensure_open()?;
        let answer = RTCSessionDescription::answer(answer_sdp.to_owned())
            .map_err(|err| PeerError::InvalidSdp(err.to_string()))?;
        if !has_opus_audio(&answer)? {
            return Err(PeerError::NoOpus);
        }
        self.inner.pc.set_remote_description(answer).await.map_err(|err| PeerError::InvalidSdp(err.to_string()))?;
        self.negotiate_payload_type().await?;
        self.mark_described().await
    }

    /// Reads the Opus payload type both sides agreed on (the offer's, mirrored by the answer).
    pub(crate) async fn negotiate_payload_type(&self) -> Result<(), PeerError> {
        let parameters = self.inner.sender.get_parameters().await?;
        let payload_type = opus_payload_type(&parameters.rtp_parameters.codecs).ok_or(PeerError::NoOpus)?;
        let _ = self.inner.shared.payload_type.set(payload_type);
        debug!(payload_type, "Opus negotiated");
        // Only present when the factory registered it (DTMF asked for) and the offer had it.
        if let Some(dtmf) = telephone_event_payload_type(&parameters.rtp_parameters.codecs) {
            let _ = self.inner.shared.dtmf_payload_type.set(dtmf);
            debug!(payload_type = dtmf, "telephone-event negotiated");
        }
        Ok(())
    }

    /// The remote description is in: candidates go straight to the ICE agent from now on.
    pub(crate) async fn mark_described(&self) -> Result<(), PeerError> {
        let pending = {
            let mut remote = self.inner.remote.lock().unwrap_or_else(PoisonError::into_inner);
            remote.described = true;
            std::mem::take(&mut remote.pending)
        };
        for candidate in pending {
            self.apply_remote_candidate(candidate).await?;
        }
        Ok(())
    }

    /// Adds a candidate trickled by the remote side (the browser's `RTCIceCandidateInit`).
    /// The end-of-candidates marker is accepted and ignored; candidates that arrive before
    /// the remote description are kept until it is applied.
    pub async fn add_remote_candidate(&self, candidate: IceCandidate) -> Result<(), PeerError> {
        self.ensure_open()?;
        if candidate.is_end_of_candidates() {
            debug!("remote end of candidates");
            return Ok(());
        }
        if !self.inner.accepts_tcp && candidate.transport().as_deref() == Some("tcp") {
            debug!(candidate = %candidate.candidate, "remote TCP candidate ignored: ICE-TCP is off");
            return Ok(());
        }
        {
            let mut remote = self.inner.remote.lock().unwrap_or_else(PoisonError::into_inner);
            if !remote.described {
                remote.pending.push(candidate);
                return Ok(());
            }
        }
        self.apply_remote_candidate(candidate).await
    }

    async fn apply_remote_candidate(&self, candidate: IceCandidate) -> Result<(), PeerError> {
        debug!(candidate = %candidate.candidate, "remote ICE candidate");
        let init = RTCIceCandidateInit {
            candidate: candidate.candidate,
            sdp_mid: candidate.sdp_mid,
            sdp_mline_index: candidate.sdp_m_line_index,
            username_fragment: candidate.username_fragment,
            url: None,
        };
        self.inner.pc.add_ice_candidate(init).await.map_err(|err| PeerError::InvalidCandidate(err.to_string()))
    }

    /// Sends one 20 ms Opus packet to the remote side.
    ///
    /// Returns `Ok(false)` and sends nothing until the transport is connected (DTLS up):
    /// webrtc-rs would accept such a packet, return `Ok`, and drop it for want of SRTP keys
    /// (with a warning per packet). From
    /// `Connected` on it returns `Ok(true)`; each call advances the sequence number by 1 and
    /// the timestamp by [`SAMPLES_PER_FRAME`], so the caller keeps the clock honest by
    /// sending every 20 ms, comfort silence included. After a loss it is `Ok(false)` again;
    /// after [`close`](Self::close) it is [`PeerError::Closed`]. Any other error means the
    /// connection is unusable (its driver stopped): end the call.
    pub async fn send_opus(&self, packet: &[u8]) -> Result<bool, PeerError> {
        let inner = &self.inner;
        self.ensure_open()?;
        if !inner.shared.media_ready.load(Ordering::Acquire) {
            return Ok(false);
        }
        let Some(&payload_type) = inner.shared.payload_type.get() else {
            return Ok(false);
        };
        let (sequence_number, timestamp, marker) =
            inner.clock.lock().unwrap_or_else(PoisonError::into_inner).next_frame();
        let packet = Packet {
            header: Header {
                version: 2,
                marker,
                payload_type,
                sequence_number,
                timestamp,
                ssrc: inner.ssrc,
                ..Header::default()
            },
            payload: Bytes::copy_from_slice(packet),
        };
        inner.track.write_rtp(packet).await?;
        trace!(sequence = sequence_number, "RTP sent");
        Ok(true)
    }

    /// Whether audio can be sent: from the first `Connected` until a failure, a loss or
    /// close. It stays true through a short ICE disconnection, so the RTP clock keeps running.
    pub fn is_connected(&self) -> bool {
        !self.inner.shared.closed.load(Ordering::Acquire) && self.inner.shared.media_ready.load(Ordering::Acquire)
    }

    /// The local port the peer's sockets are bound to; `None` once closed.
    pub fn local_port(&self) -> Option<u16> {
        (!self.inner.shared.closed.load(Ordering::Acquire)).then_some(self.inner.port)
    }

    /// The ICE and DTLS roles this peer's transport took, as webrtc-rs reports them
    /// (its W3C transport stats). `None` fields until that part of the transport started.
    pub async fn roles(&self) -> PeerRoles {
        use rtc::peer_connection::transport::{RTCDtlsRole, RTCIceRole};
        let report = self.inner.pc.get_stats(tokio::time::Instant::now().into_std(), StatsSelector::None).await;
        let Some(transport) = report.transport() else {
            return PeerRoles { ice: None, dtls: None };
        };
        let ice = match transport.ice_role {
            RTCIceRole::Controlling => Some(IceRole::Controlling),
            RTCIceRole::Controlled => Some(IceRole::Controlled),
            _ => None,
        };
        let dtls = match transport.dtls_role {
            RTCDtlsRole::Client => Some(DtlsRole::Client),
            RTCDtlsRole::Server => Some(DtlsRole::Server),
            _ => None,
        };
        PeerRoles { ice, dtls }
    }

    /// Caller RTP packets received so far.
    pub fn rtp_received(&self) -> u64 {
        self.inner.shared.rtp_received.load(Ordering::Relaxed)
    }

    /// Caller RTP packets dropped because [`PeerEvents`] was not read fast enough.
    pub fn rtp_dropped(&self) -> u64 {
        self.inner.shared.rtp_dropped.load(Ordering::Relaxed)
    }

    /// Closes the connection, stops the supervisor (whose last event is
    /// [`PeerEvent::Closed`]) and returns the port to the pool. Idempotent.
    pub async fn close(&self) {
        let inner = &self.inner;
        if inner.shared.closed.swap(true, Ordering::AcqRel) {
            return;
        }
        inner.shared.media_ready.store(false, Ordering::Release);
        inner.cancel.cancel();
        if let Err(err) = inner.pc.close().await {
            debug!(parent: &inner.span, error = %err, "closing the peer connection");
        }
        // After `close` returns the driver has stopped and dropped its sockets, so the port
        // can be handed out again.
        let lease = inner.lease.lock().unwrap_or_else(PoisonError::into_inner).take();
        drop(lease);
        info!(
            parent: &inner.span,
            received = self.rtp_received(),
            dropped = self.rtp_dropped(),
            "peer closed"
        );
    }
}

impl Drop for PeerInner {
    fn drop(&mut self) {
        if self.shared.closed.swap(true, Ordering::AcqRel) {
            return;
        }
        // Forgotten without `close()`: webrtc-rs does not stop a driver on the general tokio
        // runtime when its handle drops, so the sockets would live on. Close from a task.
        self.shared.media_ready.store(false, Ordering::Release);
        self.cancel.cancel();
        let pc = Arc::clone(&self.pc);
        let lease = self.lease.get_mut().unwrap_or_else(PoisonError::into_inner).take();
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move {
                let _ = pc.close().await;
                drop(lease);
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_rtp_clock_advances_one_frame_per_packet_and_wraps() {
        let mut clock = RtpClock::new(u16::MAX - 1, u32::MAX - 959);
        assert_eq!(clock.next_frame(), (u16::MAX - 1, u32::MAX - 959, true));
        assert_eq!(clock.next_frame(), (u16::MAX, 0, false));
        assert_eq!(clock.next_frame(), (0, 960, false));
    }
}
