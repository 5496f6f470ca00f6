//! [`PeerFactory`]: builds peers with the gateway's network settings, in either SDP role.

use std::net::{IpAddr, SocketAddr, TcpListener, UdpSocket};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rtc::ice::mdns::MulticastDnsMode;
use rtc::ice::network_type::NetworkType;
use rtc::peer_connection::configuration::interceptor_registry::register_default_interceptors;
use rtc::peer_connection::transport::RTCDtlsRole;
use rtc::rtp_transceiver::rtp_sender::{RTCRtpCodingParameters, RTCRtpEncodingParameters, RtpCodecKind};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::{Instrument, debug, warn};
use webrtc::media_stream::MediaStreamTrack;
use webrtc::media_stream::track_local::TrackLocal;
use webrtc::media_stream::track_local::static_rtp::TrackLocalStaticRTP;
use webrtc::peer_connection::{
    MediaEngine, PeerConnection, PeerConnectionBuilder, RTCConfigurationBuilder, RTCIceServer, RTCSessionDescription,
    Registry, SettingEngineBuilder,
};
use webrtc::rtp_transceiver::{RTCRtpTransceiverDirection, RTCRtpTransceiverInit};

use crate::PeerError;
use crate::answer::{AnswerOptions, DtlsRole, finish_answer};
use crate::candidate::advertise_public_ip_in_sdp;
use crate::config::{IceServer, IceTimers, SignalingConfig};
use crate::dtmf::DtmfDetector;
use crate::handler::{Handler, LocalDescription, Shared};
use crate::peer::{Peer, PeerEvents, PeerInner, RemoteCandidates, RtpClock};
use crate::port_pool::{PortLease, PortPool};
use crate::sdp::{
    has_opus_audio, opus_codec, opus_codec_parameters, opus_codec_parameters_for_any_offer, sdp_attribute,
    telephone_event_codec_parameters,
};
use crate::supervisor::{EVENTS_CAPACITY, Supervisor};
use crate::watchdog::Watchdog;

/// How many ports to try when webrtc-rs fails to bind one the probe found free (another
/// process took it in between).
const BIND_ATTEMPTS: usize = 3;

/// Builds [`Peer`]s. Cheap to clone; clones share the port pool.
#[derive(Debug, Clone)]
pub struct PeerFactory {
    inner: Arc<FactoryInner>,
}

#[derive(Debug)]
struct FactoryInner {
    config: SignalingConfig,
    timers: IceTimers,
    pool: Option<PortPool>,
    public_ips: Arc<[IpAddr]>,
    own_ice_servers: Vec<RTCIceServer>,
}

/// Peer ids for logs, unique in the process (several factories may coexist, e.g. in tests).
static NEXT_PEER_ID: AtomicU64 = AtomicU64::new(1);

impl PeerFactory {
    /// Validates the configuration and sets up the port pool. Binds nothing yet.
    pub fn new(config: SignalingConfig) -> Result<Self, PeerError> {
        config.validate()?;
        let pool = config.udp_port_range.map(|(first, last)| PortPool::new(first, last));
        let own_ice_servers = config
            .own_stun_servers()
            .into_iter()
            .map(|url| RTCIceServer { urls: vec![url], ..RTCIceServer::default() })
            .collect();
        Ok(Self {
            inner: Arc::new(FactoryInner {
                timers: IceTimers::from_config(&config),
                public_ips: config.public_ips.clone().into(),
                pool,
                own_ice_servers,
                config,
            }),
        })
    }

    /// The STUN/TURN servers to hand to the browser with the call session.
    pub fn ice_servers(&self) -> &[IceServer] {
        &self.inner.config.ice_servers
    }

    /// Ports of the range held by live peers; `None` without a configured range.
    pub fn ports_in_use(&self) -> Option<usize> {
        self.inner.pool.as_ref().map(PortPool::in_use)
    }

    /// Answers a browser's offer: builds a peer with one sendrecv Opus transceiver, applies
    /// the offer, creates and applies the answer and returns it at once. Candidates follow as
    /// [`PeerEvent::LocalCandidate`](crate::PeerEvent) (trickle ICE); the answer itself
    /// carries none. Same as [`answer_with`](Self::answer_with) and the default options.
    ///
    /// The offer is checked for an Opus audio section before any port is taken.
    pub async fn answer(&self, offer_sdp: &str) -> Result<(Peer, PeerEvents, String), PeerError> {
        self.answer_with(offer_sdp, &AnswerOptions::default()).await
    }

    /// Answers an offer the way `options` say — [`AnswerOptions::whatsapp`] for Meta's
    /// WhatsApp Calling offers: DTLS client, candidates inside the answer (it returns once
    /// gathering is complete), one SHA-256 fingerprint, `telephone-event` for DTMF.
    ///
    /// The offer is checked for an Opus audio section before any port is taken.
    pub async fn answer_with(
        &self,
        offer_sdp: &str,
        options: &AnswerOptions,
    ) -> Result<(Peer, PeerEvents, String), PeerError> {
        let offer =
            RTCSessionDescription::offer(offer_sdp.to_owned()).map_err(|err| PeerError::InvalidSdp(err.to_string()))?;
        if !has_opus_audio(&offer)? {
            return Err(PeerError::NoOpus);
        }
        let (peer, events) = self.build(options).await?;
        match self.negotiate_answer(&peer, offer, options).await {
            Ok(answer) => Ok((peer, events, answer)),
            Err(err) => {
                peer.close().await;
                Err(err)
            }
        }
    }

    async fn negotiate_answer(
        &self,
        peer: &Peer,
        offer: RTCSessionDescription,
        options: &AnswerOptions,
    ) -> Result<String, PeerError> {
        let pc = &peer.inner().pc;
        pc.set_remote_description(offer).await.map_err(|err| PeerError::InvalidSdp(err.to_string()))?;
        let answer = pc.create_answer(None).await?;
        let mut sdp = answer.sdp.clone();
        self.apply_local(peer, answer).await?;
        peer.negotiate_payload_type().await?;
        peer.mark_described().await?;
        if options.complete_candidates {
            sdp = self.complete_answer(peer, options.gathering_timeout).await?;
        }
        let sdp = finish_answer(&sdp, options)?;
        Ok(advertise_public_ip_in_sdp(&sdp, &self.inner.public_ips))
    }

    /// Our local description once gathering is complete (or `timeout` passed), with every
    /// candidate gathered written into it: the answer for a peer that does not trickle.
    async fn complete_answer(&self, peer: &Peer, timeout: Duration) -> Result<String, PeerError> {
        let shared = &peer.inner().shared;
        if tokio::time::timeout(timeout, shared.gathered.notified()).await.is_err() {
            warn!(parent: &peer.inner().span, ?timeout, "ICE gathering incomplete; answering with what was found");
        }
        let description = peer
            .inner()
            .pc
            .local_description()
            .await
            .ok_or_else(|| PeerError::Answer("no local description".to_owned()))?;
        if !description.sdp.lines().any(|line| line.starts_with("a=candidate:")) {
            return Err(PeerError::Answer(format!("no ICE candidate gathered within {timeout:?}")));
        }
        Ok(description.sdp)
    }

    /// The offering side, for the WebRTC test client and the load generator: builds a peer
    /// with one sendrecv Opus transceiver and returns its offer; [`Peer::apply_answer`]
    /// finishes the negotiation.
    pub async fn offer(&self) -> Result<(Peer, PeerEvents, String), PeerError> {
        let (peer, events) = self.build(&AnswerOptions::default()).await?;
        let result = async {
            let offer = peer.inner().pc.create_offer(None).await?;
            let sdp = offer.sdp.clone();
            self.apply_local(&peer, offer).await?;
            Ok(advertise_public_ip_in_sdp(&sdp, &self.inner.public_ips))
        }
        .await;
        match result {
            Ok(offer) => Ok((peer, events, offer)),
            Err(err) => {
                peer.close().await;
                Err(err)
            }
        }
    }

    /// Applies our own description, after recording the `mid` and ufrag every trickled
    /// candidate must carry (gathering starts inside `set_local_description`).
    async fn apply_local(&self, peer: &Peer, description: RTCSessionDescription) -> Result<(), PeerError> {
        let local = LocalDescription {
            mid: sdp_attribute(&description.sdp, "mid").map(str::to_owned),
            ufrag: sdp_attribute(&description.sdp, "ice-ufrag").map(str::to_owned),
        };
        let _ = peer.inner().shared.local.set(local);
        peer.inner().pc.set_local_description(description).await?;
        Ok(())
    }

    /// A peer bound to a port of its own, with its transceiver and supervisor, not yet
    /// negotiated.
    async fn build(&self, options: &AnswerOptions) -> Result<(Peer, PeerEvents), PeerError> {
        let id = NEXT_PEER_ID.fetch_add(1, Ordering::Relaxed);
        let span = tracing::debug_span!("peer", peer = id);
        let mut attempt = 0;
        loop {
            attempt += 1;
            let (lease, port) = self.reserve_port()?;
            match self.build_on(id, &span, lease, port, options).await {
                Ok(built) => return Ok(built),
                Err(err) if attempt < BIND_ATTEMPTS => {
                    warn!(parent: &span, port, error = %err, "peer setup failed, trying another port");
                }
                Err(err) => return Err(err),
            }
        }
    }

    /// Picks a port whose UDP (and, with ICE-TCP, TCP) socket can be bound right now.
    fn reserve_port(&self) -> Result<(Option<PortLease>, u16), PeerError> {
        let ip = self.inner.config.bind_ip;
        let tcp = self.inner.config.ice_tcp;
        if let Some(pool) = &self.inner.pool {
            let lease = pool.acquire(|port| probe(ip, port, tcp).is_ok())?;
            let port = lease.port();
            return Ok((Some(lease), port));
        }
        // No range: let the OS choose, then make sure TCP can have the same number.
        let mut last_error = None;
        for _ in 0..8 {
            let port = match UdpSocket::bind((ip, 0)).and_then(|socket| socket.local_addr()) {
                Ok(addr) => addr.port(),
                Err(source) => return Err(PeerError::Bind { ip, source }),
            };
            match probe(ip, port, tcp) {
                Ok(()) => return Ok((None, port)),
                Err(err) => last_error = Some(err),
            }
        }
        Err(PeerError::Bind { ip, source: last_error.unwrap_or_else(|| std::io::Error::other("no port")) })
    }

    async fn build_on(
        &self,
        id: u64,
        span: &tracing::Span,
        lease: Option<PortLease>,
        port: u16,
        options: &AnswerOptions,
    ) -> Result<(Peer, PeerEvents), PeerError> {
        let config = &self.inner.config;
        let timers = self.inner.timers;
        let shared = Arc::new(Shared::default());
        let (control_tx, control_rx) = mpsc::unbounded_channel();
        let handler = Handler {
            shared: Arc::clone(&shared),
            control: control_tx,
            public_ips: Arc::clone(&self.inner.public_ips),
            span: span.clone(),
        };

        let mut media_engine = MediaEngine::default();
        if options.dtmf {
            // webrtc-rs keeps only the exact (fmtp-consistent) codec matches of an offer when
            // there are any: telephone-event always matches exactly, so Opus must too, or it
            // is dropped. Opus without fmtp constraints matches any Opus offer exactly; the
            // answer repeats the offer's fmtp either way. Telephone-event is negotiated only
            // when offered, on the offer's payload type.
            media_engine.register_codec(opus_codec_parameters_for_any_offer(), RtpCodecKind::Audio)?;
            media_engine.register_codec(telephone_event_codec_parameters(), RtpCodecKind::Audio)?;
        } else {
            media_engine.register_codec(opus_codec_parameters(), RtpCodecKind::Audio)?;
        }
        // NACK, sender/receiver reports and transport-wide CC feedback: browsers expect RTCP
        // receiver reports for the audio they send, and read our sender reports for sync.
        let registry = register_default_interceptors(Registry::new(), &mut media_engine)?;

        let network_types = if config.ice_tcp {
            vec![NetworkType::Udp4, NetworkType::Udp6, NetworkType::Tcp4, NetworkType::Tcp6]
        } else {
            vec![NetworkType::Udp4, NetworkType::Udp6]
        };
        let mut setting_engine = SettingEngineBuilder::new()
            // A server has nothing to resolve: browsers hiding behind mDNS names reach us
            // first, and we learn their address as peer-reflexive. Enabled, every peer would
            // also bind a socket on 5353.
            .with_multicast_dns_mode(MulticastDnsMode::Disabled)
            .with_ice_timeouts(Some(timers.ice_disconnected), Some(timers.ice_failed), Some(timers.keepalive))
            .with_network_types(network_types);
        if let Some(role) = options.dtls_role {
            // Without it the 0.21 core answers an ICE-lite offer with `setup:passive`.
            setting_engine = setting_engine.with_answering_dtls_role(match role {
                DtlsRole::Client => RTCDtlsRole::Client,
                DtlsRole::Server => RTCDtlsRole::Server,
            });
        }
        let setting_engine = setting_engine.build();
        let configuration = RTCConfigurationBuilder::new().with_ice_servers(self.inner.own_ice_servers.clone()).build();

        let bind = SocketAddr::new(config.bind_ip, port);
        let tcp_addrs = if config.ice_tcp { vec![bind] } else { Vec::new() };
        let pc = PeerConnectionBuilder::new()
            .with_configuration(configuration)
            .with_media_engine(media_engine)
            .with_setting_engine(setting_engine)
            .with_interceptor_registry(registry)
            .with_handler(Arc::new(handler))
            .with_udp_addrs(vec![bind])
            .with_tcp_addrs(tcp_addrs)
            .build()
            .await?;
        let pc: Arc<dyn PeerConnection> = Arc::new(pc);

        let ssrc: u32 = rand::random();
        let track = Arc::new(TrackLocalStaticRTP::new(MediaStreamTrack::new(
            format!("gateway-{id}"),
            format!("gateway-audio-{id}"),
            "audio".to_owned(),
            RtpCodecKind::Audio,
            vec![RTCRtpEncodingParameters {
                rtp_coding_parameters: RTCRtpCodingParameters { ssrc: Some(ssrc), ..RTCRtpCodingParameters::default() },
                active: true,
                codec: opus_codec(),
                ..RTCRtpEncodingParameters::default()
            }],
        )));
        let transceiver = async {
            let transceiver = pc
                .add_transceiver_from_track(
                    Arc::clone(&track) as Arc<dyn TrackLocal>,
                    Some(RTCRtpTransceiverInit {
                        direction: RTCRtpTransceiverDirection::Sendrecv,
                        streams: Vec::new(),
                        send_encodings: Vec::new(),
                    }),
                )
                .await?;
            transceiver.sender().await?.ok_or(PeerError::Config("audio transceiver without a sender".to_owned()))
        }
        .await;
        let sender = match transceiver {
            Ok(sender) => sender,
            Err(err) => {
                let _ = pc.close().await;
                return Err(err);
            }
        };

        let cancel = CancellationToken::new();
        let (events_tx, events_rx) = mpsc::channel(EVENTS_CAPACITY);
        let now = tokio::time::Instant::now().into_std();
        let supervisor = Supervisor {
            shared: Arc::clone(&shared),
            events: events_tx,
            control: control_rx,
            watchdog: Watchdog::new(now, timers.connect, timers.grace),
            cancel: cancel.clone(),
            dtmf: DtmfDetector::default(),
        };
        tokio::spawn(supervisor.run().instrument(span.clone()));
        debug!(parent: span, port, ssrc, "peer created");

        let peer = Peer::new(PeerInner {
            id,
            shared,
            pc,
            track,
            sender,
            ssrc,
            port,
            accepts_tcp: config.ice_tcp,
            lease: Mutex::new(lease),
            clock: Mutex::new(RtpClock::new(rand::random(), rand::random())),
            remote: Mutex::new(RemoteCandidates::default()),
            cancel,
            span: span.clone(),
        });
        Ok((peer, PeerEvents(events_rx)))
    }
}

/// Whether `port` can be bound on `ip` for UDP (and TCP). The sockets close again at once;
/// webrtc-rs binds its own right after.
fn probe(ip: IpAddr, port: u16, tcp: bool) -> std::io::Result<()> {
    let _udp = UdpSocket::bind((ip, port))?;
    if tcp {
        let _tcp = TcpListener::bind((ip, port))?;
    }
    Ok(())
}
