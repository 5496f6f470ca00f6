//! Meta's end of a WhatsApp call's media: the WebRTC peer that speaks for the WhatsApp user
//! (shared/protocols/whatsapp-calling.md §4).
//!
//! Built on webrtc-rs directly (not the gateway's `signaling` crate), configured the way
//! Meta's relay behaves: **ICE-lite** (so ICE-controlled: it only answers the business's
//! checks and follows its nomination), an offer with `a=setup:actpass` that expects an
//! `a=setup:active` answer (Meta is the **DTLS server**), one SHA-256 fingerprint, Opus 111
//! with Meta's fmtp and `telephone-event` 126 at 8 kHz, `ptime` 20, an ice-pwd of 24 base64
//! characters ending in `==`, host candidates (IPv4, and IPv6 on the same port when the
//! host has it) in the offer, no trickle and no end-of-candidates.
//!
//! It sends nothing before the business's `accept` succeeded ([`MetaPeer::start_media`]),
//! nor before ICE and DTLS are up (there are no SRTP keys before that; a WebRTC sender's
//! media starts with its transport); from then on one 20 ms Opus frame every 20 ms (speech
//! when queued, silence otherwise) and RFC 4733 key presses on payload type 126. Speech and
//! key presses queued earlier go out once it sends. It decodes and times what it hears, and
//! reports any RTP that arrives before `accept` was answered as a protocol error.

use std::collections::VecDeque;
use std::net::{IpAddr, Ipv6Addr, SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow, bail};
use base64::Engine;
use bytes::Bytes;
use media::{OpusDecoder, OpusEncoder, OpusEncoderConfig, SampleRate};
use rand::Rng;
use rtc::ice::mdns::MulticastDnsMode;
use rtc::ice::network_type::NetworkType;
use rtc::peer_connection::configuration::interceptor_registry::register_default_interceptors;
use rtc::peer_connection::configuration::media_engine::{MIME_TYPE_OPUS, MIME_TYPE_TELEPHONE_EVENT};
use rtc::peer_connection::transport::{RTCDtlsRole, RTCIceRole};
use rtc::rtp::header::Header;
use rtc::rtp::packet::Packet;
use rtc::rtp_transceiver::rtp_sender::{
    RTCPFeedback, RTCRtpCodec, RTCRtpCodecParameters, RTCRtpCodingParameters, RTCRtpEncodingParameters, RtpCodecKind,
};
use tokio::sync::{Notify, mpsc};
use tokio_util::sync::CancellationToken;
use webrtc::media_stream::MediaStreamTrack;
use webrtc::media_stream::track_local::TrackLocal;
use webrtc::media_stream::track_local::static_rtp::TrackLocalStaticRTP;
use webrtc::media_stream::track_remote::{TrackRemote, TrackRemoteEvent};
use webrtc::peer_connection::{
    MediaEngine, PeerConnection, PeerConnectionBuilder, PeerConnectionEventHandler, RTCConfigurationBuilder,
    RTCIceGatheringState, RTCPeerConnectionState, RTCSessionDescription, Registry, SettingEngineBuilder, StatsSelector,
};
use webrtc::rtp_transceiver::{RTCRtpTransceiverDirection, RTCRtpTransceiverInit};

use crate::caller::{Heard, LOUD_DBFS};
use crate::mock_graph::GraphCallHandle;

const RATE: SampleRate = SampleRate::Hz48000;
const FRAME: usize = 960;
/// Meta's Opus: PT 111 with the fmtp of the captured offers.
pub const OPUS_PAYLOAD_TYPE: u8 = 111;
const META_OPUS_FMTP: &str =
    "maxaveragebitrate=20000;maxplaybackrate=16000;minptime=20;sprop-maxcapturerate=16000;useinbandfec=1";
/// Meta's DTMF: RFC 4733 events on PT 126, 8 kHz clock.
pub const TELEPHONE_EVENT_PAYLOAD_TYPE: u8 = 126;
/// How long a simulated key press lasts, and the pause after it.
const KEY_DOWN_FRAMES: u16 = 5;
const KEY_GAP_FRAMES: u16 = 3;

/// Where Meta's peer binds (loopback in tests).
#[derive(Debug, Clone)]
pub struct MetaPeerConfig {
    pub bind_ip: IpAddr,
    /// Also bind `::1` on the same port and offer it, as Meta offers an IPv4 and an IPv6
    /// host candidate on one port (skipped when the host has no IPv6 loopback).
    pub ipv6_candidate: bool,
    /// How long to wait for ICE gathering before the offer is written.
    pub gathering_timeout: Duration,
}

impl Default for MetaPeerConfig {
    fn default() -> Self {
        Self { bind_ip: [127, 0, 0, 1].into(), ipv6_candidate: true, gathering_timeout: Duration::from_secs(3) }
    }
}

/// The roles Meta's peer ended up with, as webrtc-rs reports them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MetaRoles {
    pub ice_controlled: bool,
    pub dtls_server: bool,
}

#[derive(Default)]
struct Shared {
    heard: Mutex<Vec<Heard>>,
    rtp_received: AtomicU64,
    first_rtp_at: Mutex<Option<Instant>>,
    early_rtp_reported: AtomicBool,
    connected_at: Mutex<Option<Instant>>,
    failed: AtomicBool,
    speech_started: Mutex<Vec<Instant>>,
    dtmf_sent: Mutex<Vec<char>>,
    /// Frames and key presses actually sent.
    frames_sent: AtomicU64,
    /// When the first of them went out.
    first_sent_at: Mutex<Option<Instant>>,
    changed: Notify,
    gathered: Notify,
}

impl Shared {
    fn touch(&self) {
        self.changed.notify_waiters();
    }
}

/// The WhatsApp user's WebRTC peer, on Meta's side.
pub struct MetaPeer {
    pc: Arc<dyn PeerConnection>,
    track: Arc<TrackLocalStaticRTP>,
    ssrc: u32,
    offer: String,
    shared: Arc<Shared>,
    graph: GraphCallHandle,
    answer_applied: AtomicBool,
    media_started: AtomicBool,
    speech: Mutex<Option<mpsc::Receiver<Vec<i16>>>>,
    speech_tx: mpsc::Sender<Vec<i16>>,
    dtmf: Mutex<Option<mpsc::Receiver<char>>>,
    dtmf_tx: mpsc::Sender<char>,
    stop: CancellationToken,
}

impl std::fmt::Debug for MetaPeer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MetaPeer")
            .field("call", &self.graph.call_id())
            .field("ssrc", &self.ssrc)
            .finish_non_exhaustive()
    }
}

struct Handler {
    shared: Arc<Shared>,
    graph: GraphCallHandle,
    stop: CancellationToken,
}

#[async_trait::async_trait]
impl PeerConnectionEventHandler for Handler {
    async fn on_ice_gathering_state_change(&self, state: RTCIceGatheringState) {
        if state == RTCIceGatheringState::Complete {
            self.shared.gathered.notify_one();
        }
    }

    async fn on_connection_state_change(&self, state: RTCPeerConnectionState) {
        match state {
            RTCPeerConnectionState::Connected => {
                self.shared.connected_at.lock().unwrap_or_else(PoisonError::into_inner).get_or_insert(Instant::now());
            }
            RTCPeerConnectionState::Failed => self.shared.failed.store(true, Ordering::Release),
            _ => {}
        }
        self.shared.touch();
    }

    async fn on_track(&self, track: Arc<dyn TrackRemote>) {
        // Callbacks run on the driver task: read the track from a task of our own.
        tokio::spawn(listen(track, self.shared.clone(), self.graph.clone(), self.stop.clone()));
    }
}

/// Decodes and records what the user hears; RTP before `accept` is a protocol error.
async fn listen(track: Arc<dyn TrackRemote>, shared: Arc<Shared>, graph: GraphCallHandle, stop: CancellationToken) {
    let Ok(mut decoder) = OpusDecoder::new(RATE) else { return };
    let mut pcm = vec![0i16; FRAME * 6];
    loop {
        let event = tokio::select! {
            () = stop.cancelled() => break,
            event = track.poll() => event,
        };
        let packet = match event {
            Some(TrackRemoteEvent::OnRtpPacket(packet)) => packet,
            Some(TrackRemoteEvent::OnEnded) | None => break,
            Some(_) => continue,
        };
        let now = Instant::now();
        shared.rtp_received.fetch_add(1, Ordering::Relaxed);
        shared.first_rtp_at.lock().unwrap_or_else(PoisonError::into_inner).get_or_insert(now);
        let accepted = graph.accepted_at();
        if accepted.is_none_or(|accepted| now < accepted) && !shared.early_rtp_reported.swap(true, Ordering::AcqRel) {
            graph.record_protocol_error("RTP from the business before its accept was answered".into());
        }
        if packet.header.payload_type != OPUS_PAYLOAD_TYPE {
            continue;
        }
        if let Ok(n) = decoder.decode(&packet.payload, &mut pcm) {
            let dbfs = media::dbfs(&pcm[..n]);
            let loud_ms =
                pcm[..n].chunks(RATE.samples_per_ms()).filter(|ms| media::dbfs(ms) > LOUD_DBFS).count() as u32;
            shared.heard.lock().unwrap_or_else(PoisonError::into_inner).push(Heard { at: now, dbfs, loud_ms });
        }
        shared.touch();
    }
}

/// ICE credentials shaped like Meta's: a 16-character ufrag, and a password of 16 random
/// bytes in padded base64 (24 characters ending in `==`, outside RFC 8839's ice-char set).
fn meta_ice_credentials() -> (String, String) {
    let mut rng = rand::rng();
    let ufrag: String = (0..16).map(|_| char::from(rng.sample(rand::distr::Alphanumeric))).collect();
    let pwd_bytes: [u8; 16] = rng.random();
    (ufrag, base64::engine::general_purpose::STANDARD.encode(pwd_bytes))
}

/// A UDP port free on `ip` (and on `::1` too when `v6` is asked for and available).
fn pick_port(ip: IpAddr, v6: bool) -> anyhow::Result<(u16, bool)> {
    for _ in 0..16 {
        let port = UdpSocket::bind((ip, 0)).and_then(|s| s.local_addr()).context("binding a UDP port")?.port();
        if !v6 {
            return Ok((port, false));
        }
        if UdpSocket::bind((Ipv6Addr::LOCALHOST, port)).is_ok() {
            return Ok((port, true));
        }
    }
    // No IPv6 loopback here: offer IPv4 only.
    let port = UdpSocket::bind((ip, 0)).and_then(|s| s.local_addr())?.port();
    Ok((port, false))
}

impl MetaPeer {
    /// Builds the peer and its offer (after gathering, candidates inside).
    pub async fn offer(config: MetaPeerConfig, graph: GraphCallHandle) -> anyhow::Result<Self> {
        let opus = RTCRtpCodecParameters {
            rtp_codec: RTCRtpCodec {
                mime_type: MIME_TYPE_OPUS.to_owned(),
                clock_rate: 48_000,
                channels: 2,
                sdp_fmtp_line: META_OPUS_FMTP.to_owned(),
                rtcp_feedback: vec![RTCPFeedback { typ: "transport-cc".into(), parameter: String::new() }],
            },
            payload_type: OPUS_PAYLOAD_TYPE,
        };
        let telephone_event = RTCRtpCodecParameters {
            rtp_codec: RTCRtpCodec {
                mime_type: MIME_TYPE_TELEPHONE_EVENT.to_owned(),
                clock_rate: 8000,
                channels: 0,
                sdp_fmtp_line: String::new(),
                rtcp_feedback: Vec::new(),
            },
            payload_type: TELEPHONE_EVENT_PAYLOAD_TYPE,
        };
        let mut media_engine = MediaEngine::default();
        media_engine.register_codec(opus.clone(), RtpCodecKind::Audio)?;
        media_engine.register_codec(telephone_event.clone(), RtpCodecKind::Audio)?;
        let registry = register_default_interceptors(Registry::new(), &mut media_engine)?;
        let (ufrag, pwd) = meta_ice_credentials();
        let setting_engine = SettingEngineBuilder::new()
            .with_lite(true)
            .with_ice_credentials(ufrag, pwd)
            .with_sdp_media_level_fingerprints(true)
            .with_multicast_dns_mode(MulticastDnsMode::Disabled)
            .with_network_types(vec![NetworkType::Udp4, NetworkType::Udp6])
            .build();
        let (port, v6) = pick_port(config.bind_ip, config.ipv6_candidate && config.bind_ip.is_ipv4())?;
        let mut addrs = vec![SocketAddr::new(config.bind_ip, port)];
        if v6 {
            addrs.push(SocketAddr::new(IpAddr::V6(Ipv6Addr::LOCALHOST), port));
        }
        let shared = Arc::new(Shared::default());
        let stop = CancellationToken::new();
        let handler = Handler { shared: shared.clone(), graph: graph.clone(), stop: stop.clone() };
        let pc = PeerConnectionBuilder::new()
            .with_configuration(RTCConfigurationBuilder::new().build())
            .with_media_engine(media_engine)
            .with_setting_engine(setting_engine)
            .with_interceptor_registry(registry)
            .with_handler(Arc::new(handler))
            .with_udp_addrs(addrs)
            .build()
            .await?;
        let pc: Arc<dyn PeerConnection> = Arc::new(pc);

        let ssrc: u32 = rand::random();
        let track = Arc::new(TrackLocalStaticRTP::new(MediaStreamTrack::new(
            "c3867497-e6f7-4408-82b7-80dbd11b94cf".to_owned(),
            "WhatsAppTrack1".to_owned(),
            "audio".to_owned(),
            RtpCodecKind::Audio,
            vec![RTCRtpEncodingParameters {
                rtp_coding_parameters: RTCRtpCodingParameters { ssrc: Some(ssrc), ..Default::default() },
                active: true,
                codec: RTCRtpCodec {
                    mime_type: MIME_TYPE_OPUS.to_owned(),
                    clock_rate: 48_000,
                    channels: 2,
                    sdp_fmtp_line: META_OPUS_FMTP.to_owned(),
                    rtcp_feedback: Vec::new(),
                },
                ..Default::default()
            }],
        )));
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
        // webrtc-rs narrows a track's transceiver to the track's own codec; Meta offers
        // telephone-event beside Opus.
        transceiver.set_codec_preferences(vec![opus.clone(), telephone_event.clone()]).await?;
        let offer = pc.create_offer(None).await?;
        pc.set_local_description(offer).await?;
        if tokio::time::timeout(config.gathering_timeout, shared.gathered.notified()).await.is_err() {
            tracing::warn!("Meta peer: ICE gathering incomplete");
        }
        let local = pc.local_description().await.ok_or_else(|| anyhow!("no local description"))?;
        let offer = meta_offer(&local.sdp, config.bind_ip, port, v6)?;

        let (speech_tx, speech) = mpsc::channel(16);
        let (dtmf_tx, dtmf) = mpsc::channel(64);
        Ok(Self {
            pc,
            track,
            ssrc,
            offer,
            shared,
            graph,
            answer_applied: AtomicBool::new(false),
            media_started: AtomicBool::new(false),
            speech: Mutex::new(Some(speech)),
            speech_tx,
            dtmf: Mutex::new(Some(dtmf)),
            dtmf_tx,
            stop,
        })
    }

    /// The SDP offer, as it goes into the connect webhook.
    pub fn offer_sdp(&self) -> &str {
        &self.offer
    }

    /// Applies the business's answer (from pre_accept, or accept without pre_accept); later
    /// calls do nothing. An answer that would not make Meta the DTLS server is refused, as
    /// Meta's relay would.
    pub async fn apply_answer(&self, answer_sdp: &str) -> anyhow::Result<()> {
        if !answer_sdp.lines().any(|line| line.trim_end() == "a=setup:active") {
            bail!("the answer does not make the business the DTLS client (a=setup:active)");
        }
        if self.answer_applied.swap(true, Ordering::AcqRel) {
            return Ok(());
        }
        let answer = RTCSessionDescription::answer(answer_sdp.to_owned())?;
        self.pc.set_remote_description(answer).await?;
        Ok(())
    }

    /// The business's accept succeeded: start sending, one frame every 20 ms from the moment
    /// ICE and DTLS are up (at once if they already are). Idempotent.
    pub fn start_media(&self) {
        if self.media_started.swap(true, Ordering::AcqRel) {
            return;
        }
        let speech = self.speech.lock().unwrap_or_else(PoisonError::into_inner).take();
        let dtmf = self.dtmf.lock().unwrap_or_else(PoisonError::into_inner).take();
        let (Some(speech), Some(dtmf)) = (speech, dtmf) else { return };
        let sender = MediaSender {
            track: self.track.clone(),
            ssrc: self.ssrc,
            shared: self.shared.clone(),
            speech,
            dtmf,
            stop: self.stop.clone(),
        };
        tokio::spawn(sender.run());
    }

    /// Queues speech (48 kHz mono) to be sent in real time once media flows.
    pub async fn say(&self, pcm: Vec<i16>) {
        let _ = self.speech_tx.send(pcm).await;
    }

    /// Queues key presses (`0`–`9`, `*`, `#`, `A`–`D`), sent as RFC 4733 events.
    pub async fn press_keys(&self, keys: &str) {
        for key in keys.chars() {
            let _ = self.dtmf_tx.send(key).await;
        }
    }

    /// Key presses sent so far.
    pub fn keys_sent(&self) -> Vec<char> {
        self.shared.dtmf_sent.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }

    /// When each queued utterance started to go out.
    pub fn speech_started(&self) -> Vec<Instant> {
        self.shared.speech_started.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }

    /// Every frame heard so far.
    pub fn heard(&self) -> Vec<Heard> {
        self.shared.heard.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }

    /// RTP packets received from the business.
    pub fn rtp_received(&self) -> u64 {
        self.shared.rtp_received.load(Ordering::Relaxed)
    }

    /// When the first RTP packet from the business arrived.
    pub fn first_rtp_at(&self) -> Option<Instant> {
        *self.shared.first_rtp_at.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// When ICE and DTLS were up.
    pub fn connected_at(&self) -> Option<Instant> {
        *self.shared.connected_at.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Frames (audio and key-press packets) sent so far.
    pub fn frames_sent(&self) -> u64 {
        self.shared.frames_sent.load(Ordering::Relaxed)
    }

    /// When the first frame was sent.
    pub fn first_sent_at(&self) -> Option<Instant> {
        *self.shared.first_sent_at.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Waits until something changes (a frame heard, the connection state), or `until`.
    pub async fn changed(&self, until: tokio::time::Instant) {
        let _ = tokio::time::timeout_at(until, self.shared.changed.notified()).await;
    }

    /// Waits until `ms` of audio louder than `dbfs` has been heard.
    pub async fn wait_until_heard(&self, ms: usize, dbfs: f32, timeout: Duration) -> anyhow::Result<()> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let notified = self.shared.changed.notified();
            let loud = self.heard().iter().filter(|h| h.dbfs > dbfs).count() * 20;
            if loud >= ms {
                return Ok(());
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                bail!("Meta's peer heard only {loud} ms above {dbfs} dBFS");
            }
        }
    }

    /// Waits for ICE + DTLS.
    pub async fn wait_connected(&self, timeout: Duration) -> anyhow::Result<Instant> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let notified = self.shared.changed.notified();
            if let Some(at) = self.connected_at() {
                return Ok(at);
            }
            if self.shared.failed.load(Ordering::Acquire) {
                bail!("Meta's peer connection failed");
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                bail!("Meta's peer did not connect within {timeout:?}");
            }
        }
    }

    /// The ICE and DTLS roles Meta's side took.
    pub async fn roles(&self) -> Option<MetaRoles> {
        let report = self.pc.get_stats(Instant::now(), StatsSelector::None).await;
        let transport = report.transport()?;
        Some(MetaRoles {
            ice_controlled: transport.ice_role == RTCIceRole::Controlled,
            dtls_server: transport.dtls_role == RTCDtlsRole::Server,
        })
    }

    /// Hangs up the media: stops sending and closes the connection.
    pub async fn close(&self) {
        self.stop.cancel();
        let _ = self.pc.close().await;
    }
}

impl Drop for MetaPeer {
    fn drop(&mut self) {
        self.stop.cancel();
        let pc = self.pc.clone();
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move {
                let _ = pc.close().await;
            });
        }
    }
}

/// Rewrites webrtc-rs's lite offer into the shape of Meta's captured offers: the media
/// port and address of the IPv4 candidate on the m= and c= lines, one component-1 candidate
/// per address with `generation 0 network-cost 50`, `ptime`/`maxptime` 20, no trickle
/// option and no end-of-candidates.
fn meta_offer(sdp: &str, ip: IpAddr, port: u16, v6: bool) -> anyhow::Result<String> {
    let mut out = String::with_capacity(sdp.len() + 256);
    let mut candidates = 0;
    for line in sdp.lines() {
        let line = line.trim_end();
        if line == "a=ice-options:trickle" || line == "a=end-of-candidates" || line.is_empty() {
            continue;
        }
        if let Some(candidate) = line.strip_prefix("a=candidate:") {
            let fields: Vec<&str> = candidate.split_ascii_whitespace().collect();
            if fields.len() < 8 || fields[1] != "1" {
                continue;
            }
            out.push_str(&format!("a=candidate:{} generation 0 network-cost 50\r\n", fields[..8].join(" ")));
            candidates += 1;
            continue;
        }
        if let Some(rest) = line.strip_prefix("m=audio ") {
            let protocol_and_formats = rest.split_once(' ').map(|(_, tail)| tail).unwrap_or(rest);
            out.push_str(&format!("m=audio {port} {protocol_and_formats}\r\n"));
            continue;
        }
        if line.starts_with("c=IN ") {
            out.push_str(&format!("c=IN {} {ip}\r\n", if ip.is_ipv4() { "IP4" } else { "IP6" }));
            continue;
        }
        out.push_str(line);
        out.push_str("\r\n");
        if line == format!("a=rtpmap:{TELEPHONE_EVENT_PAYLOAD_TYPE} telephone-event/8000") {
            out.push_str("a=maxptime:20\r\na=ptime:20\r\n");
        }
    }
    if candidates == 0 {
        bail!("Meta's peer gathered no candidate: {sdp}");
    }
    if !out.contains("\r\na=ice-lite\r\n") {
        bail!("webrtc-rs did not offer ICE-lite: {sdp}");
    }
    if v6 && !out.contains(" ::1 ") {
        tracing::debug!("Meta peer: no IPv6 candidate gathered on ::1");
    }
    Ok(out)
}

/// One 20 ms frame every 20 ms: a key-press packet while a key is down, else audio.
struct MediaSender {
    track: Arc<TrackLocalStaticRTP>,
    ssrc: u32,
    shared: Arc<Shared>,
    speech: mpsc::Receiver<Vec<i16>>,
    dtmf: mpsc::Receiver<char>,
    stop: CancellationToken,
}

/// RFC 4733 event code of a key.
fn event_code(key: char) -> Option<u8> {
    match key {
        '0'..='9' => Some(key as u8 - b'0'),
        '*' => Some(10),
        '#' => Some(11),
        'A'..='D' => Some(key as u8 - b'A' + 12),
        _ => None,
    }
}

/// A key press being sent: its event code, start timestamp (8 kHz) and frames so far.
struct KeyPress {
    event: u8,
    timestamp: u32,
    frame: u16,
}

impl MediaSender {
    /// Waits for ICE and DTLS. webrtc-rs accepts RTP written before the DTLS handshake, says
    /// `Ok`, and drops it for want of SRTP keys: a key press pressed right after `accept`
    /// (Meta answers `accept` before the business's DTLS handshake is done) would vanish.
    /// `false` when the call is hung up first.
    async fn wait_connected(&self) -> bool {
        loop {
            let notified = self.shared.changed.notified();
            if self.shared.connected_at.lock().unwrap_or_else(PoisonError::into_inner).is_some() {
                return true;
            }
            tokio::select! {
                () = self.stop.cancelled() => return false,
                () = notified => {}
            }
        }
    }

    async fn run(mut self) {
        if !self.wait_connected().await {
            return;
        }
        let Ok(mut encoder) = OpusEncoder::new(RATE, OpusEncoderConfig::default()) else { return };
        let mut queue: VecDeque<i16> = VecDeque::new();
        let mut frame = vec![0i16; FRAME];
        let mut packet = vec![0u8; 1500];
        let mut sequence: u16 = rand::random();
        let mut timestamp: u32 = rand::random();
        let mut press: Option<KeyPress> = None;
        let mut gap: u16 = 0;
        let mut first = true;
        let mut tick = tokio::time::interval(Duration::from_millis(20));
        loop {
            tokio::select! {
                () = self.stop.cancelled() => break,
                _ = tick.tick() => {}
            }
            while let Ok(pcm) = self.speech.try_recv() {
                if queue.is_empty() {
                    self.shared.speech_started.lock().unwrap_or_else(PoisonError::into_inner).push(Instant::now());
                }
                queue.extend(pcm);
            }
            if press.is_none() && gap == 0 {
                while let Ok(key) = self.dtmf.try_recv() {
                    if let Some(event) = event_code(key) {
                        self.shared.dtmf_sent.lock().unwrap_or_else(PoisonError::into_inner).push(key);
                        // The event's timestamp on the 8 kHz telephone-event clock.
                        press = Some(KeyPress { event, timestamp: timestamp / 6, frame: 0 });
                        break;
                    }
                }
            }
            let rtp = if let Some(key) = &mut press {
                key.frame += 1;
                let end = key.frame > KEY_DOWN_FRAMES;
                let duration = 160 * key.frame.min(KEY_DOWN_FRAMES + 1);
                let [high, low] = duration.to_be_bytes();
                let payload = Bytes::from(vec![key.event, if end { 0x80 | 10 } else { 10 }, high, low]);
                let marker = key.frame == 1;
                let event_timestamp = key.timestamp;
                // The end packet goes out three times (RFC 4733 §2.5.1.4).
                if key.frame >= KEY_DOWN_FRAMES + 3 {
                    press = None;
                    gap = KEY_GAP_FRAMES;
                }
                Some(self.packet(TELEPHONE_EVENT_PAYLOAD_TYPE, marker, sequence, event_timestamp, payload))
            } else {
                gap = gap.saturating_sub(1);
                for sample in frame.iter_mut() {
                    *sample = queue.pop_front().unwrap_or(0);
                }
                match encoder.encode(&frame, &mut packet) {
                    Ok(n) => Some(self.packet(
                        OPUS_PAYLOAD_TYPE,
                        first,
                        sequence,
                        timestamp,
                        Bytes::copy_from_slice(&packet[..n]),
                    )),
                    Err(_) => None,
                }
            };
            if let Some(rtp) = rtp {
                first = false;
                if self.track.write_rtp(rtp).await.is_ok() {
                    self.shared
                        .first_sent_at
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .get_or_insert(Instant::now());
                    self.shared.frames_sent.fetch_add(1, Ordering::Relaxed);
                }
                sequence = sequence.wrapping_add(1);
            }
            timestamp = timestamp.wrapping_add(FRAME as u32);
        }
    }

    fn packet(&self, payload_type: u8, marker: bool, sequence_number: u16, timestamp: u32, payload: Bytes) -> Packet {
        Packet {
            header: Header {
                version: 2,
                marker,
                payload_type,
                sequence_number,
                timestamp,
                ssrc: self.ssrc,
                ..Header::default()
            },
            payload,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn whatsapp_meta_ice_passwords_look_like_the_captured_ones() {
        let (ufrag, pwd) = meta_ice_credentials();
        assert_eq!(ufrag.len(), 16);
        assert_eq!(pwd.len(), 24);
        assert!(pwd.ends_with("=="), "{pwd}");
    }

    #[test]
    fn whatsapp_meta_offer_rewrite_matches_the_capture_shape() {
        let webrtc_rs = "v=0\r\no=- 1 2 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\na=ice-lite\r\na=group:BUNDLE 0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111 126\r\nc=IN IP4 0.0.0.0\r\na=ice-options:trickle\r\na=rtpmap:111 opus/48000/2\r\na=rtpmap:126 telephone-event/8000\r\na=candidate:1 1 udp 2130706431 127.0.0.1 4000 typ host\r\na=candidate:1 2 udp 2130706431 127.0.0.1 4000 typ host\r\na=candidate:2 1 udp 2130706431 ::1 4000 typ host\r\na=end-of-candidates\r\n";
        let offer = meta_offer(webrtc_rs, [127, 0, 0, 1].into(), 4000, true).expect("offer");
        assert_eq!(
            offer,
            "v=0\r\no=- 1 2 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\na=ice-lite\r\na=group:BUNDLE 0\r\nm=audio 4000 UDP/TLS/RTP/SAVPF 111 126\r\nc=IN IP4 127.0.0.1\r\na=rtpmap:111 opus/48000/2\r\na=rtpmap:126 telephone-event/8000\r\na=maxptime:20\r\na=ptime:20\r\na=candidate:1 1 udp 2130706431 127.0.0.1 4000 typ host generation 0 network-cost 50\r\na=candidate:2 1 udp 2130706431 ::1 4000 typ host generation 0 network-cost 50\r\n"
        );
    }

    #[test]
    fn whatsapp_key_codes_follow_rfc_4733() {
        let codes: Vec<u8> = "0123456789*#ABCD".chars().filter_map(event_code).collect();
        assert_eq!(codes, (0..16).collect::<Vec<u8>>());
        assert_eq!(event_code('x'), None);
    }
}
