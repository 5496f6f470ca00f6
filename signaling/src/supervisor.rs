//! The one task of ours per peer: turns driver reports into [`PeerEvent`]s, forwards caller
//! audio, and runs the [`Watchdog`] on a timer.
//!
//! It owns the sending half of the bounded events channel. Caller audio only uses the part
//! of the channel above [`CONTROL_RESERVE`]; when a slow consumer lets it fill, packets are
//! dropped and counted, and the slots below stay free for the events that must not be lost
//! (candidates, `Connected`, `Lost`, `Closed`).

use std::sync::Arc;
use std::sync::atomic::Ordering;

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, trace, warn};
use webrtc::media_stream::track_remote::{TrackRemote, TrackRemoteEvent};

use crate::candidate::IceCandidate;
use crate::dtmf::DtmfDetector;
use crate::handler::{Control, Shared};
use crate::peer::{PeerEvent, RtpAudio};
use crate::watchdog::{LinkState, Verdict, Watchdog};

/// Capacity of a peer's events channel: about 2.5 s of 20 ms audio.
pub(crate) const EVENTS_CAPACITY: usize = 128;

/// Slots of the events channel audio never takes, kept for control events.
pub(crate) const CONTROL_RESERVE: usize = 16;

pub(crate) struct Supervisor {
    pub shared: Arc<Shared>,
    pub events: mpsc::Sender<PeerEvent>,
    pub control: mpsc::UnboundedReceiver<Control>,
    pub watchdog: Watchdog,
    pub cancel: CancellationToken,
    /// Key presses out of the caller's `telephone-event` packets (when negotiated).
    pub dtmf: DtmfDetector,
}

fn now() -> std::time::Instant {
    // tokio's clock, so that tests with paused time drive the watchdog too.
    tokio::time::Instant::now().into_std()
}

/// The next event of the remote track, or never if there is none yet.
async fn next_track_event(track: Option<&Arc<dyn TrackRemote>>) -> Option<TrackRemoteEvent> {
    match track {
        Some(track) => track.poll().await,
        None => std::future::pending().await,
    }
}

impl Supervisor {
    pub(crate) async fn run(mut self) {
        let mut track: Option<Arc<dyn TrackRemote>> = None;
        loop {
            let deadline = self.watchdog.poll_timeout();
            let sleep = async {
                match deadline {
                    Some(deadline) => {
                        tokio::time::sleep_until(tokio::time::Instant::from_std(deadline)).await;
                    }
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                biased;
                () = self.cancel.cancelled() => break,
                control = self.control.recv() => match control {
                    Some(control) => self.handle_control(control, &mut track).await,
                    // The driver dropped its handler: the connection is gone.
                    None => break,
                },
                event = next_track_event(track.as_ref()) => match event {
                    Some(TrackRemoteEvent::OnRtpPacket(packet)) => self.handle_rtp(packet).await,
                    Some(TrackRemoteEvent::OnEnded) | None => {
                        track = None;
                        // The 0.21 core never ends a remote track on its own; its stream only
                        // ends when the driver stops. Not closed by us, so the driver died
                        // (socket error): nothing will ever report a state change again.
                        if !self.shared.closed.load(Ordering::Acquire) {
                            warn!("WebRTC driver stopped on its own");
                            if let Some(verdict) = self.watchdog.handle_state(LinkState::Failed, now()) {
                                self.handle_verdict(verdict).await;
                            }
                        }
                    }
                    Some(_) => {}
                },
                () = sleep => {
                    if let Some(verdict) = self.watchdog.handle_timeout(now()) {
                        self.handle_verdict(verdict).await;
                    }
                }
            }
        }
        // The last word. The reserve keeps room for it unless the consumer stopped reading
        // long ago, in which case nobody is waiting for it either.
        let _ = self.events.try_send(PeerEvent::Closed);
        debug!(
            received = self.shared.rtp_received.load(Ordering::Relaxed),
            dropped = self.shared.rtp_dropped.load(Ordering::Relaxed),
            "peer supervisor stopped"
        );
    }

    async fn handle_control(&mut self, control: Control, track: &mut Option<Arc<dyn TrackRemote>>) {
        match control {
            Control::LocalCandidate(candidate) => {
                self.emit(PeerEvent::LocalCandidate(candidate)).await;
            }
            Control::GatheringComplete => {
                let local = self.shared.local.get();
                let end = IceCandidate::end_of_candidates(
                    local.and_then(|local| local.mid.clone()),
                    local.and_then(|local| local.ufrag.clone()),
                );
                self.emit(PeerEvent::LocalCandidate(end)).await;
            }
            Control::Link(state) => {
                if let Some(verdict) = self.watchdog.handle_state(state, now()) {
                    self.handle_verdict(verdict).await;
                }
            }
            Control::RemoteTrack(remote) => {
                debug!("remote audio track started");
                *track = Some(remote);
            }
        }
    }

    async fn handle_verdict(&mut self, verdict: Verdict) {
        match verdict {
            Verdict::Connected => {
                // Before the event: whoever reacts to `Connected` may send at once.
                if !self.shared.closed.load(Ordering::Acquire) {
                    self.shared.media_ready.store(true, Ordering::Release);
                }
                info!("peer connected");
                self.emit(PeerEvent::Connected).await;
            }
            Verdict::Lost(reason) => {
                self.shared.media_ready.store(false, Ordering::Release);
                info!(reason = reason.as_str(), "peer lost");
                self.emit(PeerEvent::Lost { reason }).await;
            }
        }
    }

    /// Control events wait for room (the consumer is behind, not gone), but never past close.
    async fn emit(&self, event: PeerEvent) {
        tokio::select! {
            () = self.cancel.cancelled() => {}
            _ = self.events.send(event) => {}
        }
    }

    /// One packet of the caller's stream: a key press (reported once, like any control
    /// event) or audio (forwarded, or dropped when the consumer lags).
    async fn handle_rtp(&mut self, packet: rtc::rtp::packet::Packet) {
        self.shared.rtp_received.fetch_add(1, Ordering::Relaxed);
        let header = &packet.header;
        if self.shared.dtmf_payload_type.get() == Some(&header.payload_type) {
            if let Some(digit) = self.dtmf.handle_packet(header.timestamp, &packet.payload) {
                // The digit itself is what the caller typed: kept out of the logs.
                debug!("DTMF key press received");
                self.emit(PeerEvent::Dtmf { digit }).await;
            }
            return;
        }
        if let Some(&payload_type) = self.shared.payload_type.get()
            && header.payload_type != payload_type
        {
            trace!(payload_type = header.payload_type, "non-Opus RTP packet ignored");
            return;
        }
        let audio = RtpAudio {
            sequence: header.sequence_number,
            timestamp: header.timestamp,
            marker: header.marker,
            payload: packet.payload,
            arrival: now(),
        };
        let sequence = audio.sequence;
        let delivered = self.events.capacity() > CONTROL_RESERVE && self.events.try_send(PeerEvent::Rtp(audio)).is_ok();
        if delivered {
            trace!(sequence, "caller RTP forwarded");
        } else {
            let dropped = self.shared.rtp_dropped.fetch_add(1, Ordering::Relaxed) + 1;
            // Logarithmic: the first drop and then every doubling, never once per packet.
            if dropped.is_power_of_two() {
                warn!(dropped, "caller audio dropped: peer events are not being read");
            }
        }
    }
}
