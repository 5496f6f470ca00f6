//! Caller legs: the channel a caller came in on, as the call session sees it.
//!
//! A leg turns its wire into caller frames in the provider's input format, and agent
//! frames in the provider's output format into its wire; it reports connected, lost and
//! hung up, and (on a phone line) when agent audio was actually played. Signaling belongs
//! to the leg that needs it — the widget's WebSocket for a browser, TwiML and the stream
//! for Twilio — so the session never sees an offer, a candidate or a stream message.
//!
//! - `webrtc`: browsers (and, signalled differently, WhatsApp): Opus over WebRTC
//! - `whatsapp`: the Graph side of a WhatsApp caller's WebRTC leg (accept, terminate)
//! - `twilio`: phone callers through Twilio Media Streams: G.711 μ-law over a WebSocket
//! - `agent`: a human support agent who joined the call from the agent console (WebRTC,
//!   signalled like the widget)
//!
//! The session waits on [`CallerLeg::next_input`] (cancel-safe: it only receives) and
//! hands what came to [`CallerLeg::handle`], which runs to completion outside the
//! session's `select!` so an answer being computed is never dropped halfway.

pub mod agent;
pub mod twilio;
pub mod webrtc;
pub mod whatsapp;

use std::time::Instant;

use crate::call::heard::Delivery;
use crate::domain::EndReason;
use crate::providers::AudioFormat;

pub use agent::{AgentAttach, AgentLeg};
pub use twilio::TwilioLeg;
pub use webrtc::WebRtcLeg;

/// What a leg tells the session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LegEvent {
    /// Nothing the session needs to act on (signaling handled inside the leg).
    Nothing,
    /// The caller's media is being set up (an offer answered, a stream started): the
    /// provider session can open now, in parallel with ICE/DTLS.
    Ringing,
    /// Media flows both ways.
    Connected,
    /// Caller audio is waiting: take it with [`CallerLeg::take_caller_audio`].
    Audio,
    /// The far end played agent audio through this mark.
    Played(u64),
    /// The caller pressed a key.
    Dtmf(char),
    /// The caller hung up.
    HungUp,
    /// The caller's media went away (network).
    Lost(String),
    /// The leg cannot go on (a refused offer, a broken stream): end with this reason.
    Failed { reason: EndReason, error: String },
}

/// A caller frame's samples, as they came off the wire or out of the decoder.
#[derive(Debug, Clone, Copy)]
pub enum CallerSamples<'a> {
    Pcm16(&'a [i16]),
    Mulaw(&'a [u8]),
}

/// One 20 ms frame of caller audio.
#[derive(Debug, Clone, Copy)]
pub struct CallerFrame<'a> {
    /// For the gateway's VAD and the recording.
    pub samples: CallerSamples<'a>,
    /// The same audio in the provider's input format.
    pub wire: &'a [u8],
    /// When its packet reached the gateway.
    pub arrival: Instant,
}

impl CallerFrame<'_> {
    /// The frame's RMS level in dBFS.
    pub fn dbfs(&self) -> f32 {
        match self.samples {
            CallerSamples::Pcm16(pcm) => media::dbfs(pcm),
            CallerSamples::Mulaw(codes) => media::ulaw_dbfs(codes),
        }
    }
}

/// One 20 ms frame of agent audio in the provider's output format.
#[derive(Debug, Clone, Copy)]
pub enum AgentFrame<'a> {
    Pcm16(&'a [i16]),
    G711(&'a [u8]),
}

/// What a leg got, before it is handled (opaque to the session).
pub enum LegInput {
    WebRtc(webrtc::Input),
    Twilio(twilio::Input),
}

/// The caller's leg of a call.
pub enum CallerLeg {
    WebRtc(Box<WebRtcLeg>),
    Twilio(Box<TwilioLeg>),
}

impl CallerLeg {
    /// The audio format on the caller's wire, if a provider could take it as it is.
    pub fn wire_format(&self) -> Option<AudioFormat> {
        match self {
            Self::WebRtc(_) => None,
            Self::Twilio(_) => Some(AudioFormat::Mulaw),
        }
    }

    /// Whether the caller's media is already being set up when the call starts (a phone
    /// stream that started): the provider opens at once.
    pub fn is_ringing(&self) -> bool {
        match self {
            Self::WebRtc(leg) => leg.is_ringing(),
            Self::Twilio(_) => true,
        }
    }

    /// Whether media already flows both ways when the call starts (a phone stream that
    /// started); otherwise the leg reports [`LegEvent::Connected`] when it does.
    pub fn is_connected(&self) -> bool {
        match self {
            Self::WebRtc(_) => false,
            Self::Twilio(leg) => leg.can_send(),
        }
    }

    /// The next input (cancel-safe).
    pub async fn next_input(&mut self) -> LegInput {
        match self {
            Self::WebRtc(leg) => LegInput::WebRtc(leg.next_input().await),
            Self::Twilio(leg) => LegInput::Twilio(leg.next_input().await),
        }
    }

    /// Handles an input to completion.
    pub async fn handle(&mut self, input: LegInput, now: Instant) -> LegEvent {
        match (self, input) {
            (Self::WebRtc(leg), LegInput::WebRtc(input)) => leg.handle(input, now).await,
            (Self::Twilio(leg), LegInput::Twilio(input)) => leg.handle(input, now).await,
            _ => LegEvent::Nothing,
        }
    }

    /// Hands every caller frame ready at `now` to `sink`, in order.
    pub fn take_caller_audio(&mut self, now: Instant, sink: impl FnMut(CallerFrame<'_>)) {
        match self {
            Self::WebRtc(leg) => leg.take_caller_audio(now, sink),
            Self::Twilio(leg) => leg.take_caller_audio(now, sink),
        }
    }

    /// The call is ready for the caller (the provider connected): a WhatsApp call is
    /// accepted now; other legs need nothing.
    pub fn call_ready(&mut self) {
        if let Self::WebRtc(leg) = self {
            leg.call_ready();
        }
    }

    /// Whether agent audio can go out now (media connected).
    pub fn can_send(&self) -> bool {
        match self {
            Self::WebRtc(leg) => leg.can_send(),
            Self::Twilio(leg) => leg.can_send(),
        }
    }

    /// Sends one frame of agent audio (`silent` when it carries none). `None` when the leg
    /// skipped it (a silent frame a WebRTC leg leaves out to keep its RTP clock on time).
    pub async fn send_agent_frame(&mut self, frame: AgentFrame<'_>, silent: bool, now: Instant) -> Option<Delivery> {
        match self {
            Self::WebRtc(leg) => leg.send_agent_frame(frame, silent, now).await,
            Self::Twilio(leg) => leg.send_agent_frame(frame, silent).await,
        }
    }

    /// The caller talked over the agent: drop agent audio buffered at the far end.
    pub async fn clear_agent_audio(&mut self) {
        match self {
            Self::WebRtc(_) => {}
            Self::Twilio(leg) => leg.clear_agent_audio().await,
        }
    }

    /// Whether the caller's audio is Opus over RTP, which a human agent's peer can take
    /// as it is (forwarded, not transcoded).
    pub fn carries_opus(&self) -> bool {
        matches!(self, Self::WebRtc(_))
    }

    /// The Opus packet the last [`send_agent_frame`](Self::send_agent_frame) sent (a
    /// WebRTC caller), for the recording.
    pub fn sent_opus(&self) -> Option<&[u8]> {
        match self {
            Self::WebRtc(leg) => leg.sent_opus(),
            Self::Twilio(_) => None,
        }
    }

    /// Starts or stops keeping the caller's Opus packets for a human agent.
    pub fn keep_opus(&mut self, keep: bool) {
        if let Self::WebRtc(leg) = self {
            leg.keep_opus(keep);
        }
    }

    /// The caller's Opus packet just received, when kept.
    pub fn take_opus(&mut self) -> Option<bytes::Bytes> {
        match self {
            Self::WebRtc(leg) => leg.take_opus(),
            Self::Twilio(_) => None,
        }
    }

    /// Sends a human agent's Opus packet to the caller as it is.
    pub async fn forward_opus(&mut self, packet: &[u8], now: Instant) {
        if let Self::WebRtc(leg) = self {
            leg.forward_opus(packet, now).await;
        }
    }

    /// Ends the leg. `by_gateway` when the call ends from this side (a policy, the
    /// `end_call` tool, an agent, a shutdown): the leg then hangs up by its channel's means.
    pub async fn close(&mut self, reason: EndReason, by_gateway: bool) {
        match self {
            Self::WebRtc(leg) => leg.close().await,
            Self::Twilio(leg) => leg.close(reason, by_gateway).await,
        }
    }
}
