//! The human agent's leg: a support agent who accepted the call's escalation joins its
//! media from the agent console (docs/agent-protocol.md, "On the call").
//!
//! The agent's browser is a WebRTC peer signalled exactly like the widget (its socket is
//! `GET /api/agent/call/{callId}/ws`), so the leg is a [`WebRtcLeg`] plus what only an
//! agent has: their own control channel (mute, hang up, hand back), the client their
//! console watches the call through, and a transcription-only provider session that turns
//! their voice into `human_agent` lines.
//!
//! Media is forwarded, not mixed: a WebRTC caller's Opus packets go to the agent's peer as
//! they are and the agent's back to the caller (each peer gives them its own stream's
//! sequence numbers and timestamps). The agent's audio is also decoded, at the call's
//! output rate, for the recording, the transcription, and a phone caller, whose leg
//! converts it like agent audio; a phone caller's frames are Opus-encoded for the agent.

use std::time::Instant;

use media::{MediaError, g711, pcm16};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::webrtc::{self, WebRtcLeg};
use super::{AgentFrame, CallerFrame, CallerSamples, LegEvent};
use crate::call::client::ClientLink;
use crate::call::messages::{Control, ServerMessage, Signal};
use crate::escalation::AgentJoin;
use crate::providers::{
    AudioFormat, InputFrame, ProviderCommand, ProviderError, ProviderEvent, ProviderSession, ProviderSettings,
    SessionSpec,
};
use crate::store::AiModel;

/// Level above which an agent frame counts as speech for the transcriber.
const LOUD_DBFS: f32 = -40.0;

/// What the agent's socket hands the call when the agent opens `join.wsUrl`.
pub struct AgentAttach {
    /// The agent, as their join token says.
    pub join: AgentJoin,
    /// Offer and candidates from the agent's browser.
    pub signals: mpsc::Receiver<Signal>,
    /// Mute, hang-up, hand-back, and the socket going away.
    pub control: mpsc::Receiver<Control>,
    /// What the agent's console is told.
    pub client: ClientLink,
}

/// What the agent's leg got (opaque to the session but for its kind).
pub enum AgentInput {
    /// Signaling or media of the agent's peer.
    Leg(webrtc::Input),
    /// A request from the agent's console; `None` once the socket is gone.
    Control(Option<Control>),
    /// The transcription of the agent's voice.
    Transcriber(Option<ProviderEvent>),
    /// The transcription session opened (or could not).
    TranscriberReady(Result<ProviderSession, ProviderError>),
}

/// A human agent on the call.
pub struct AgentLeg {
    pub join: AgentJoin,
    leg: WebRtcLeg,
    control: Option<mpsc::Receiver<Control>>,
    client: ClientLink,
    /// The agent muted themselves: the caller does not hear them.
    pub muted: bool,
    /// The call's formats: agent audio is decoded to `output` (like the AI's audio) and
    /// transcribed in `input`.
    input: AudioFormat,
    output: AudioFormat,
    /// Decoded agent audio waiting to go on: PCM at the output rate, read from `read` on.
    pcm: Vec<i16>,
    read: usize,
    arrival: Option<Instant>,
    /// One frame as G.711 (a G.711 output), and as PCM16 bytes (for the transcriber).
    codes: Vec<u8>,
    wire: Vec<u8>,
    /// One frame of a phone caller's μ-law, expanded for the Opus encoder.
    expanded: Vec<i16>,
    /// A phone caller's frames waiting to be encoded and sent to the agent.
    caller_pcm: Vec<i16>,
    transcriber: Option<ProviderSession>,
    connecting: Option<JoinHandle<Result<ProviderSession, ProviderError>>>,
    /// The sequence number of the first line stored after the agent joined.
    pub first_line: Option<i64>,
}

impl AgentLeg {
    /// The leg of `attach`'s agent on a call whose provider formats are `input` and
    /// `output`.
    pub fn new(
        factory: signaling::PeerFactory,
        attach: AgentAttach,
        input: AudioFormat,
        output: AudioFormat,
    ) -> Result<Self, MediaError> {
        let AgentAttach { join, signals, control, client } = attach;
        // Decoded at the output rate; a phone caller's frames (μ-law at 8 kHz, or PCM at
        // the input rate) are encoded at the input rate.
        let leg = WebRtcLeg::for_browser(factory, signals, client.another(), output, input)?;
        let frame = output.rate().samples_per_frame();
        Ok(Self {
            join,
            leg,
            control: Some(control),
            client,
            muted: false,
            input,
            output,
            pcm: Vec::with_capacity(frame * 4),
            read: 0,
            arrival: None,
            codes: Vec::with_capacity(frame),
            wire: Vec::with_capacity(frame * 2),
            expanded: vec![0; media::SampleRate::Hz8000.samples_per_frame()],
            caller_pcm: Vec::with_capacity(input.rate().samples_per_frame() * 4),
            transcriber: None,
            connecting: None,
            first_line: None,
        })
    }

    /// Tells the agent's console.
    pub fn send(&mut self, message: ServerMessage) {
        self.client.send(message);
    }

    /// Hands over what the console could not take before.
    pub fn flush(&mut self) {
        self.client.flush();
    }

    /// The next input (cancel-safe: every branch only receives).
    pub async fn next_input(&mut self) -> AgentInput {
        tokio::select! {
            input = self.leg.next_input() => AgentInput::Leg(input),
            control = recv_or_pending(self.control.as_mut()) => {
                if control.is_none() {
                    self.control = None;
                }
                AgentInput::Control(control)
            }
            event = next_event(&mut self.transcriber) => AgentInput::Transcriber(event),
            ready = join(&mut self.connecting) => {
                self.connecting = None;
                AgentInput::TranscriberReady(ready.unwrap_or_else(|err| Err(ProviderError::Connect(err.to_string()))))
            }
        }
    }

    /// Handles signaling or media of the agent's peer.
    pub async fn handle(&mut self, input: webrtc::Input, now: Instant) -> LegEvent {
        let event = self.leg.handle(input, now).await;
        if event == LegEvent::Connected {
            self.leg.keep_opus(true);
        }
        event
    }

    /// Whether audio can go to the agent.
    pub fn can_send(&self) -> bool {
        self.leg.can_send()
    }

    /// The agent's Opus packet just received.
    pub fn take_opus(&mut self) -> Option<bytes::Bytes> {
        self.leg.take_opus()
    }

    /// Sends the caller's Opus packet to the agent as it is.
    pub async fn forward_opus(&mut self, packet: &[u8], now: Instant) {
        self.leg.forward_opus(packet, now).await;
    }

    /// Keeps a phone caller's frame for the agent (encoded and sent by [`send_caller_audio`](Self::send_caller_audio)).
    pub fn queue_caller_frame(&mut self, frame: &CallerFrame<'_>) {
        match frame.samples {
            CallerSamples::Pcm16(pcm) => self.caller_pcm.extend_from_slice(pcm),
            CallerSamples::Mulaw(codes) => {
                let n = codes.len().min(self.expanded.len());
                if g711::ulaw_decode_slice(&codes[..n], &mut self.expanded[..n]).is_ok() {
                    self.caller_pcm.extend_from_slice(&self.expanded[..n]);
                }
            }
        }
    }

    /// Encodes the phone caller's queued frames and sends them to the agent.
    pub async fn send_caller_audio(&mut self, now: Instant) {
        let frame = self.input.rate().samples_per_frame();
        let Self { leg, caller_pcm, .. } = self;
        let mut start = 0;
        while caller_pcm.len() - start >= frame {
            leg.send_agent_frame(AgentFrame::Pcm16(&caller_pcm[start..start + frame]), false, now).await;
            start += frame;
        }
        caller_pcm.drain(..start);
    }

    /// Decodes the agent's audio ready at `now` into whole frames at the output rate.
    pub fn take_audio(&mut self, now: Instant) {
        let Self { leg, pcm, arrival, .. } = self;
        leg.take_caller_audio(now, |frame| {
            if let CallerSamples::Pcm16(samples) = frame.samples {
                pcm.extend_from_slice(samples);
                arrival.get_or_insert(frame.arrival);
            }
        });
    }

    /// The next whole frame of the agent's decoded audio, as agent audio in the call's
    /// output format and as PCM at the output rate; `transcribe` also sends it to the
    /// transcriber. None once no whole frame is left.
    pub fn next_frame(&mut self, transcribe: bool) -> Option<(AgentFrame<'_>, &[i16])> {
        let frame = self.output.rate().samples_per_frame();
        if self.pcm.len() - self.read < frame {
            self.pcm.drain(..self.read);
            self.read = 0;
            self.arrival = None;
            return None;
        }
        let start = self.read;
        self.read += frame;
        let Self { pcm, codes, wire, output, input, transcriber, arrival, .. } = self;
        let chunk = &pcm[start..start + frame];
        codes.clear();
        match output {
            AudioFormat::Mulaw => codes.extend(chunk.iter().map(|&s| g711::ulaw_encode(s))),
            AudioFormat::Alaw => codes.extend(chunk.iter().map(|&s| g711::alaw_encode(s))),
            AudioFormat::Pcm16(_) => {}
        }
        // The transcriber takes the call's input format: agent audio fits it as it is when
        // the call's input and output formats are the same (OpenAI's are).
        if let Some(transcriber) = transcriber.as_ref().filter(|_| transcribe && input == output) {
            let bytes: &[u8] = if codes.is_empty() {
                wire.clear();
                pcm16::samples_to_le_bytes(chunk, wire);
                wire
            } else {
                codes
            };
            let loud = media::dbfs(chunk) > LOUD_DBFS;
            let frame = InputFrame::new(bytes, loud, arrival.unwrap_or_else(Instant::now));
            if transcriber.commands.try_send(ProviderCommand::Audio(frame)).is_err() {
                tracing::debug!("the agent's transcriber is not keeping up: dropped a frame");
            }
        }
        let agent_frame = if codes.is_empty() { AgentFrame::Pcm16(chunk) } else { AgentFrame::G711(codes) };
        Some((agent_frame, chunk))
    }

    /// Opens the transcription-only session for the agent's voice.
    pub fn open_transcriber(
        &mut self,
        providers: std::sync::Arc<ProviderSettings>,
        model: AiModel,
        spec: &SessionSpec,
    ) {
        let spec = SessionSpec {
            instructions: "You only transcribe. Never answer.".into(),
            tools: Vec::new(),
            respond: false,
            transcription: true,
            ..spec.clone()
        };
        self.connecting = Some(tokio::spawn(async move { providers.connect(&model, &spec).await }));
    }

    /// The transcription session is ready.
    pub fn transcriber_ready(&mut self, session: ProviderSession) {
        self.transcriber = Some(session);
    }

    /// The transcription session ended.
    pub fn transcriber_gone(&mut self) {
        self.transcriber = None;
    }

    /// Ends the agent's part: `last` is their console's last word; their peer and
    /// transcriber close.
    pub async fn close(mut self, last: ServerMessage) {
        if let Some(task) = self.connecting.take() {
            task.abort();
        }
        if let Some(transcriber) = self.transcriber.take() {
            let _ = transcriber.commands.try_send(ProviderCommand::Close);
        }
        self.leg.close().await;
        self.client.send_last(last, std::time::Duration::from_secs(2)).await;
    }
}

async fn recv_or_pending<T>(rx: Option<&mut mpsc::Receiver<T>>) -> Option<T> {
    match rx {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}

async fn next_event(session: &mut Option<ProviderSession>) -> Option<ProviderEvent> {
    match session {
        Some(session) => session.events.recv().await,
        None => std::future::pending().await,
    }
}

async fn join<T>(task: &mut Option<JoinHandle<T>>) -> Result<T, tokio::task::JoinError> {
    match task {
        Some(task) => task.await,
        None => std::future::pending().await,
    }
}
