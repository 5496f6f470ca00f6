//! The WebRTC leg: a [`signaling::Peer`] plus the codec chain between RTP and the
//! provider's PCM, and the signaling that sets the peer up.
//!
//! Inbound: RTP → [`media::InboundChain`] (jitter buffer, Opus decoded straight to the
//! provider's input rate, released the moment a packet is in order). Outbound: a 20 ms
//! frame at the provider's output rate → Opus encoded straight from that rate → RTP. No
//! resampler on either path. A frame is heard when it is sent: the session paces agent
//! audio in real time and the browser plays what it gets.
//!
//! Signaling: a browser offers through the widget's WebSocket (`offer`, trickled
//! `candidate`s), and is answered and trickled to through the same socket. A WhatsApp
//! caller's offer came with Meta's `connect` webhook and was answered (complete, no
//! trickle) before the leg existed; the leg then talks to Meta through its
//! [`WhatsAppLine`]: media flows only once Meta took the `accept`.

use std::time::{Duration, Instant};

use media::{InboundChain, InboundFrame, JitterConfig, MediaError, OpusEncoder, OpusEncoderConfig, pcm16};
use signaling::{IceCandidate, Peer, PeerEvent, PeerEvents, PeerFactory};
use tokio::sync::mpsc;

use super::whatsapp::{self, WhatsAppLine};
use super::{AgentFrame, CallerFrame, CallerSamples, LegEvent};
use crate::call::client::ClientLink;
use crate::call::heard::Delivery;
use crate::call::messages::{ServerMessage, Signal};
use crate::domain::EndReason;
use crate::providers::AudioFormat;

/// Largest Opus packet we produce (libopus never needs more for 20 ms mono).
const MAX_PACKET: usize = 1500;
/// Candidates kept when a client trickles them before its offer.
const MAX_EARLY_CANDIDATES: usize = 32;
/// One frame of the RTP timeline.
const FRAME: Duration = Duration::from_millis(20);

/// What the leg got (opaque to the session).
pub enum Input {
    Signal(Option<Signal>),
    Peer(Option<PeerEvent>),
    WhatsApp(whatsapp::Input),
}

/// How this leg is signalled.
enum Signaling {
    /// A browser: offers and candidates from the widget's WebSocket, answers and
    /// candidates back over it.
    Widget { signals: Option<mpsc::Receiver<Signal>>, client: ClientLink },
    /// A WhatsApp user: answered already; accepted and ended through the Graph API.
    WhatsApp(Box<WhatsAppLine>),
}

/// A WebRTC caller.
pub struct WebRtcLeg {
    factory: PeerFactory,
    signaling: Signaling,
    peer: Option<(Peer, PeerEvents)>,
    /// Candidates that arrived before the offer, applied once the peer exists.
    early_candidates: Vec<IceCandidate>,
    connected: bool,
    inbound: InboundChain,
    encoder: OpusEncoder,
    /// One caller frame at the input rate, and the same as PCM16 bytes for the provider.
    frame: Vec<i16>,
    wire: Vec<u8>,
    packet: Vec<u8>,
    /// Length of the packet the last agent frame was encoded into (0: none).
    sent_len: usize,
    /// Arrival of the packet behind the frames waiting to be taken.
    arrival: Option<Instant>,
    /// When the first frame was sent, and frames sent since: the RTP timeline (960 ticks
    /// of the 48 kHz clock per frame) is `rtp_origin + rtp_frames × 20 ms`.
    rtp_origin: Option<Instant>,
    rtp_frames: u32,
    /// Keep each received packet's Opus payload for [`take_opus`](Self::take_opus): its
    /// audio is forwarded as it is to another peer of the call (a human agent's, or the
    /// caller's).
    keep_opus: bool,
    last_opus: Option<bytes::Bytes>,
}

impl WebRtcLeg {
    /// A browser caller's leg, signalled through its widget: `signals` are the offer and
    /// candidates it sends, `client` where answers and candidates go. `input` and `output`
    /// are the provider's formats (linear PCM: a WebRTC leg decodes and encodes Opus).
    pub fn for_browser(
        factory: PeerFactory,
        signals: mpsc::Receiver<Signal>,
        client: ClientLink,
        input: AudioFormat,
        output: AudioFormat,
    ) -> Result<Self, MediaError> {
        Self::new(factory, Signaling::Widget { signals: Some(signals), client }, input, output)
    }

    /// A WhatsApp caller's leg: `peer` answered Meta's offer, and `line` sent that answer
    /// with `pre_accept`. Media flows once the line's `accept` went through.
    pub fn for_whatsapp(
        factory: PeerFactory,
        peer: (Peer, PeerEvents),
        line: WhatsAppLine,
        input: AudioFormat,
        output: AudioFormat,
    ) -> Result<Self, MediaError> {
        let mut leg = Self::new(factory, Signaling::WhatsApp(Box::new(line)), input, output)?;
        leg.peer = Some(peer);
        Ok(leg)
    }

    fn new(
        factory: PeerFactory,
        signaling: Signaling,
        input: AudioFormat,
        output: AudioFormat,
    ) -> Result<Self, MediaError> {
        let (input_rate, output_rate) = (input.rate(), output.rate());
        Ok(Self {
            factory,
            signaling,
            peer: None,
            early_candidates: Vec::new(),
            connected: false,
            inbound: InboundChain::new(JitterConfig::default(), input_rate)?,
            encoder: OpusEncoder::new(output_rate, OpusEncoderConfig::default())?,
            frame: vec![0; input_rate.samples_per_frame()],
            wire: Vec::with_capacity(input_rate.samples_per_frame() * 2),
            packet: vec![0; MAX_PACKET],
            sent_len: 0,
            arrival: None,
            rtp_origin: None,
            rtp_frames: 0,
            keep_opus: false,
            last_opus: None,
        })
    }

    /// Whether the offer was answered.
    pub fn is_ringing(&self) -> bool {
        self.peer.is_some()
    }

    /// The next signal or peer event (cancel-safe).
    pub async fn next_input(&mut self) -> Input {
        let peer = self.peer.as_mut().map(|(_, events)| events);
        match &mut self.signaling {
            Signaling::Widget { signals, .. } => tokio::select! {
                signal = recv_signal(signals.as_mut()) => Input::Signal(signal),
                event = recv_peer(peer) => Input::Peer(event),
            },
            Signaling::WhatsApp(line) => tokio::select! {
                input = line.next_input() => Input::WhatsApp(input),
                event = recv_peer(peer) => Input::Peer(event),
            },
        }
    }

    /// The call is ready for the caller (the provider connected): a WhatsApp call is
    /// accepted now.
    pub fn call_ready(&mut self) {
        if let Signaling::WhatsApp(line) = &mut self.signaling {
            line.accept();
        }
    }

    /// Handles a signal or peer event.
    pub async fn handle(&mut self, input: Input, _now: Instant) -> LegEvent {
        match input {
            Input::WhatsApp(input) => match &mut self.signaling {
                Signaling::WhatsApp(line) => line.handle(input, self.connected),
                Signaling::Widget { .. } => LegEvent::Nothing,
            },
            Input::Signal(Some(Signal::Offer(sdp))) => self.handle_offer(&sdp).await,
            Input::Signal(Some(Signal::Candidate(candidate))) => {
                let candidate = candidate.unwrap_or_else(|| IceCandidate::end_of_candidates(Some("0".into()), None));
                match &self.peer {
                    Some((peer, _)) => {
                        if let Err(err) = peer.add_remote_candidate(candidate).await {
                            tracing::debug!(error = %err, "ignored a remote candidate");
                        }
                    }
                    None if self.early_candidates.len() < MAX_EARLY_CANDIDATES => self.early_candidates.push(candidate),
                    None => {}
                }
                LegEvent::Nothing
            }
            Input::Signal(None) => {
                // The client's socket closed; the session hears of it on its control channel.
                if let Signaling::Widget { signals, .. } = &mut self.signaling {
                    *signals = None;
                }
                LegEvent::Nothing
            }
            Input::Peer(Some(PeerEvent::LocalCandidate(candidate))) => {
                // A WhatsApp answer carries every candidate: nothing is trickled to Meta.
                if let Signaling::Widget { client, .. } = &mut self.signaling {
                    let candidate = (!candidate.is_end_of_candidates()).then_some(candidate);
                    client.send(ServerMessage::Candidate { candidate });
                }
                LegEvent::Nothing
            }
            Input::Peer(Some(PeerEvent::Connected)) => {
                self.connected = true;
                tracing::info!("caller media connected");
                match &self.signaling {
                    Signaling::Widget { .. } => LegEvent::Connected,
                    Signaling::WhatsApp(line) => line.media_connected(),
                }
            }
            Input::Peer(Some(PeerEvent::Rtp(rtp))) => {
                self.inbound.push(rtp.sequence, rtp.timestamp, &rtp.payload, rtp.arrival);
                self.arrival = Some(rtp.arrival);
                if self.keep_opus {
                    self.last_opus = Some(rtp.payload);
                }
                LegEvent::Audio
            }
            Input::Peer(Some(PeerEvent::Dtmf { digit })) => LegEvent::Dtmf(digit),
            Input::Peer(Some(PeerEvent::Lost { reason })) => {
                tracing::info!(?reason, "caller media lost");
                LegEvent::Lost(format!("{reason:?}"))
            }
            Input::Peer(Some(PeerEvent::Closed) | None) => {
                self.peer = None;
                LegEvent::Lost("the peer connection closed".into())
            }
        }
    }

    async fn handle_offer(&mut self, sdp: &str) -> LegEvent {
        let Signaling::Widget { client, .. } = &mut self.signaling else { return LegEvent::Nothing };
        if self.peer.is_some() {
            client.send(ServerMessage::Error {
                code: "invalid_message",
                message: "an offer was already received".into(),
                retryable: false,
            });
            return LegEvent::Nothing;
        }
        match self.factory.answer(sdp).await {
            Ok((peer, events, answer)) => {
                for candidate in std::mem::take(&mut self.early_candidates) {
                    if let Err(err) = peer.add_remote_candidate(candidate).await {
                        tracing::debug!(error = %err, "ignored an early remote candidate");
                    }
                }
                self.peer = Some((peer, events));
                client.send(ServerMessage::Answer { sdp: answer });
                LegEvent::Ringing
            }
            Err(err) => {
                tracing::warn!(error = %err, "could not answer the caller's offer");
                client.send(ServerMessage::Error {
                    code: "invalid_offer",
                    message: "The call could not be set up with this browser's audio settings.".into(),
                    retryable: true,
                });
                LegEvent::Failed { reason: EndReason::Error, error: format!("offer refused: {err}") }
            }
        }
    }

    /// Hands every decoded caller frame ready at `now` to `sink` (late packets are
    /// concealed once the jitter buffer stops waiting for them).
    pub fn take_caller_audio(&mut self, now: Instant, mut sink: impl FnMut(CallerFrame<'_>)) {
        let arrival = self.arrival.take().unwrap_or(now);
        loop {
            match self.inbound.pop_frame(now, &mut self.frame) {
                Ok(Some(kind)) => {
                    if kind != InboundFrame::Decoded {
                        crate::metrics::packets_lost(1);
                    }
                }
                Ok(None) => return,
                Err(err) => {
                    tracing::debug!(error = %err, "could not decode caller audio");
                    return;
                }
            }
            self.wire.clear();
            pcm16::samples_to_le_bytes(&self.frame, &mut self.wire);
            sink(CallerFrame { samples: CallerSamples::Pcm16(&self.frame), wire: &self.wire, arrival });
        }
    }

    /// Whether media is up (and, on WhatsApp, Meta took the `accept`: no RTP before it).
    pub fn can_send(&self) -> bool {
        let accepted = match &self.signaling {
            Signaling::Widget { .. } => true,
            Signaling::WhatsApp(line) => line.is_accepted(),
        };
        self.connected && accepted && self.peer.is_some()
    }

    /// Encodes and sends one frame. A silent frame is left out when the RTP timeline runs
    /// ahead of the wall clock (agent audio that started early, between ticks, moved it
    /// ahead): skipping one gives that time back, so the caller's jitter buffer never
    /// sees the sender's clock drift.
    pub async fn send_agent_frame(&mut self, frame: AgentFrame<'_>, silent: bool, now: Instant) -> Option<Delivery> {
        self.sent_len = 0;
        let timeline = self.rtp_origin.map(|origin| origin + FRAME * self.rtp_frames);
        if silent && timeline.is_some_and(|t| t.saturating_duration_since(now) >= FRAME) {
            return None;
        }
        let AgentFrame::Pcm16(pcm) = frame else {
            tracing::error!("a WebRTC leg was given G.711 agent audio");
            return Some(Delivery::Heard);
        };
        let (peer, _) = self.peer.as_ref()?;
        // Silence is the encoder's stored packet (no encode): the stream stays continuous.
        let coded = if silent {
            self.encoder.encode_silence(&mut self.packet)
        } else {
            self.encoder.encode(pcm, &mut self.packet)
        };
        let sent = match coded {
            Ok(n) => {
                self.sent_len = n;
                peer.send_opus(&self.packet[..n]).await.map_err(|e| e.to_string())
            }
            Err(err) => Err(err.to_string()),
        };
        self.after_send(sent, now);
        // Sent in real time: what left is what the caller hears (a frame lost on the way
        // is lost to the caller either way).
        Some(Delivery::Heard)
    }

    /// The Opus packet the last agent frame was encoded into and sent.
    pub fn sent_opus(&self) -> Option<&[u8]> {
        (self.sent_len > 0).then(|| &self.packet[..self.sent_len])
    }

    /// Starts or stops keeping received Opus payloads for forwarding.
    pub fn keep_opus(&mut self, keep: bool) {
        self.keep_opus = keep;
        self.last_opus = None;
    }

    /// The Opus payload of the packet just received, when payloads are kept.
    pub fn take_opus(&mut self) -> Option<bytes::Bytes> {
        self.last_opus.take()
    }

    /// Sends an Opus packet another peer of the call sent, as it is. The peer gives it the
    /// next sequence number and timestamp of this leg's own stream, so the receiver hears
    /// one continuous stream whoever spoke.
    pub async fn forward_opus(&mut self, packet: &[u8], now: Instant) {
        let Some((peer, _)) = self.peer.as_ref().filter(|_| self.can_send()) else { return };
        let sent = peer.send_opus(packet).await.map_err(|e| e.to_string());
        self.after_send(sent, now);
    }

    /// A packet that went out moves the RTP timeline on by one frame.
    fn after_send(&mut self, sent: Result<bool, String>, now: Instant) {
        match sent {
            Ok(true) => {
                self.rtp_origin.get_or_insert(now);
                self.rtp_frames += 1;
            }
            Ok(false) => {}
            Err(err) => tracing::debug!(error = %err, "could not send an Opus packet"),
        }
    }

    /// Ends the call on the caller's side (a WhatsApp call through the Graph API unless
    /// Meta ended it), closes the peer and logs what the caller's media was like.
    pub async fn close(&mut self) {
        if let Signaling::WhatsApp(line) = &mut self.signaling {
            line.close().await;
        }
        let stats = self.inbound.jitter().stats();
        tracing::info!(
            received = stats.received,
            lost = stats.lost,
            late = stats.late,
            jitter_ms = stats.jitter_ms,
            "caller media stats"
        );
        if let Some((peer, _)) = &self.peer {
            peer.close().await;
        }
    }
}

async fn recv_signal(signals: Option<&mut mpsc::Receiver<Signal>>) -> Option<Signal> {
    match signals {
        Some(signals) => signals.recv().await,
        None => std::future::pending().await,
    }
}

async fn recv_peer(events: Option<&mut PeerEvents>) -> Option<PeerEvent> {
    match events {
        Some(events) => events.recv().await,
        None => std::future::pending().await,
    }
}
