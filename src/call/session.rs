//! `CallSession`: one task per call, owning all of its state.
//!
//! The loop waits for the next input — the caller's client (signaling, mute, hang-up),
//! the caller's media (RTP, connection state), the provider (agent audio, transcripts,
//! VAD, tool calls), or the 20 ms frame clock — handles it, and decides whether to go on.
//! Nothing here is shared with other calls; the edges and the provider reach it through
//! bounded channels, and the database through the call's [`Recorder`].

use std::collections::{HashSet, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use media::{EnergyVad, ItemKey, PacedFrame, Pacer, SampleRate, VadConfig, VadEvent};
use signaling::{IceCandidate, PeerEvent, PeerFactory};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::MissedTickBehavior;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use super::barge_in::{BargeIn, BargeInAction};
use super::messages::{ClientInput, ClientMessage, ServerMessage, Who, WidgetState};
use super::policy::{CallPolicies, PolicyAction, PolicyConfig};
use super::recorder::{Record, Recorder};
use super::transcript::{FinalLine, Transcript};
use super::webrtc_edge::WebRtcEdge;
use crate::ids::{CallId, ChatbotId, CompanyId};
use crate::knowledge::KnowledgeSearch;
use crate::providers::{ProviderCommand, ProviderError, ProviderEvent, ProviderSession, ProviderSettings, SessionSpec};
use crate::store::{AiModel, EndReason, Store, TranscriptRole};
use crate::time::{UnixMs, now_ms};

/// The 20 ms frame clock.
const FRAME: Duration = Duration::from_millis(20);
/// How long a local barge-in hint holds playout waiting for the provider to confirm.
const BARGE_IN_CONFIRM: Duration = Duration::from_millis(700);
/// The same for Gemini, which has no speech-start event: its confirmation is the first
/// transcribed words (or `interrupted`), which come later.
const BARGE_IN_CONFIRM_GEMINI: Duration = Duration::from_millis(1500);
/// Speech the local VAD needs before it pauses the agent: short, because the pause is
/// only a hint (the provider confirms or playout resumes) and every frame of it is heard.
const BARGE_IN_MIN_SPEECH_MS: u32 = 40;
/// Candidates kept when a client trickles them before its offer.
const MAX_EARLY_CANDIDATES: usize = 32;
/// Longest wait for a goodbye to be spoken and played before hanging up anyway.
const CLOSING_LIMIT: Duration = Duration::from_secs(20);
/// Passages a knowledge-base search returns to the agent.
const SEARCH_RESULTS: usize = 3;
/// Longest text of a tool call or result kept as a system transcript line.
const SYSTEM_LINE_CHARS: usize = 600;
/// Longest a knowledge-base search may take before the agent is told it is unavailable.
const SEARCH_LIMIT: Duration = Duration::from_secs(5);
/// Messages held for a slow client or provider before the oldest are dropped.
const OUTBOX_LIMIT: usize = 512;
/// Longest wait to tell the client the call ended.
const FAREWELL_SEND_LIMIT: Duration = Duration::from_secs(2);

/// The tools offered to the agent (`SessionSpec::tools` carries their schemas).
pub mod tools {
    /// Searches the chatbot's knowledge-base categories.
    pub const SEARCH_KNOWLEDGE_BASE: &str = "search_knowledge_base";
    /// Ends the call after the agent's goodbye.
    pub const END_CALL: &str = "end_call";
}

/// Everything a session needs to know about its call.
#[derive(Debug, Clone)]
pub struct CallSetup {
    pub call_id: CallId,
    pub company_id: CompanyId,
    pub chatbot_id: ChatbotId,
    /// Silence, duration and end-phrase rules.
    pub policy: PolicyConfig,
    pub model: AiModel,
    pub spec: SessionSpec,
    /// Spoken when the call becomes active (empty: none).
    pub greeting: String,
}

/// Shared services a session uses.
#[derive(Clone)]
pub struct SessionDeps {
    pub store: Store,
    /// What `search_knowledge_base` searches.
    pub knowledge: Arc<dyn KnowledgeSearch>,
    pub signaling: PeerFactory,
    pub providers: Arc<ProviderSettings>,
    /// Longest a call may take to become active (media connected and the provider ready):
    /// beyond it, a caller who never sent an offer, or a provider that never answered,
    /// does not hold a session open.
    pub connect_limit: Duration,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Connecting,
    Active,
}

struct Ending {
    reason: EndReason,
    error: Option<String>,
    /// Shown to the caller with the end (e.g. "Call ended due to inactivity").
    notice: Option<String>,
}

/// A call on its way out: the goodbye is being spoken and played before hanging up.
struct Closing {
    reason: EndReason,
    notice: Option<String>,
    /// Waiting for the provider to finish speaking the goodbye.
    awaiting_goodbye: bool,
    /// The goodbye's item, once its audio started (earlier items were all silenced, so
    /// the first new one is the goodbye; a response finishing before it is not).
    goodbye_item: Option<Arc<str>>,
    /// Hang up by then whatever happens.
    deadline: Instant,
}

/// Messages waiting for room in a bounded channel. The session never waits on a send:
/// a slow browser or a provider busy reconnecting must not stall the call's media.
struct Outbox<T> {
    queue: VecDeque<T>,
    dropped: u64,
}

impl<T> Default for Outbox<T> {
    fn default() -> Self {
        Self { queue: VecDeque::new(), dropped: 0 }
    }
}

impl<T> Outbox<T> {
    /// Sends what fits now, in order, and keeps the rest for the next flush.
    fn push(&mut self, tx: &mpsc::Sender<T>, message: T) {
        self.queue.push_back(message);
        if self.queue.len() > OUTBOX_LIMIT {
            self.queue.pop_front();
            self.dropped += 1;
            if self.dropped.is_power_of_two() {
                tracing::warn!(dropped = self.dropped, "a slow peer of the call: dropping its oldest messages");
            }
        }
        self.flush(tx);
    }

    fn flush(&mut self, tx: &mpsc::Sender<T>) {
        while let Some(message) = self.queue.pop_front() {
            match tx.try_send(message) {
                Ok(()) => {}
                Err(mpsc::error::TrySendError::Full(message)) => {
                    self.queue.push_front(message);
                    return;
                }
                Err(mpsc::error::TrySendError::Closed(_)) => {
                    self.queue.clear();
                    return;
                }
            }
        }
    }
}

/// A tool's result, computed off the session's task.
struct ToolOutcome {
    call_id: String,
    name: String,
    output: String,
}

/// The state of one call.
struct CallSession {
    setup: CallSetup,
    deps: SessionDeps,
    recorder: Recorder,
    server: mpsc::Sender<ServerMessage>,
    /// What the client has not taken yet.
    to_client: Outbox<ServerMessage>,
    /// Control commands the provider has not taken yet (caller audio is never queued: a
    /// frame that does not fit is dropped).
    to_provider: Outbox<ProviderCommand>,
    phase: Phase,
    ending: Option<Ending>,
    closing: Option<Closing>,
    policies: CallPolicies,
    /// Tool calls being worked on, by call id (a cancelled one is dropped from here).
    tool_calls: HashSet<String>,
    tool_results: mpsc::Sender<ToolOutcome>,
    edge: Option<WebRtcEdge>,
    /// Candidates that arrived before the offer, applied once the edge exists.
    early_candidates: Vec<IceCandidate>,
    peer_connected: bool,
    provider: Option<ProviderSession>,
    input_rate: SampleRate,
    pacer: Pacer,
    vad: EnergyVad,
    barge_in: BargeIn,
    transcript: Transcript,
    muted: bool,
    answered: Option<(Instant, UnixMs)>,
    /// When the session started (for the connect limit).
    started: Instant,
    speaking: Who,
    /// Agent items the caller interrupted: their late audio is dropped.
    interrupted: HashSet<Arc<str>>,
    /// Agent items whose audio the provider finished sending.
    audio_done: HashSet<Arc<str>>,
    /// The item of the last frame sent.
    playing: Option<ItemKey>,
    /// When agent audio arrived to an idle pacer (for the outbound latency metric).
    outbound_pending: Option<Instant>,
    /// When the first frame was sent, and frames sent since: the RTP timeline (960 ticks
    /// of the 48 kHz clock per frame) is `rtp_origin + rtp_frames × 20 ms`.
    rtp_origin: Option<Instant>,
    rtp_frames: u32,
    frame: Vec<i16>,
    pcm_bytes: Vec<u8>,
}

/// Runs a call to its end. `client` carries what the caller's client sends, `server`
/// what it should be told.
pub async fn run(
    setup: CallSetup,
    deps: SessionDeps,
    mut client: mpsc::Receiver<ClientInput>,
    server: mpsc::Sender<ServerMessage>,
    cancel: CancellationToken,
) {
    let span = tracing::info_span!("call", call_id = %setup.call_id, company_id = %setup.company_id);
    async move {
        let (input_rate, output_rate) = deps.providers.rates(&setup.model);
        let (tool_tx, mut tool_rx) = mpsc::channel::<ToolOutcome>(8);
        let mut session = CallSession {
            recorder: Recorder::start(deps.store.clone(), setup.call_id),
            barge_in: BargeIn::new(
                setup.spec.allow_interruption,
                if setup.model.provider == crate::store::Provider::Google {
                    BARGE_IN_CONFIRM_GEMINI
                } else {
                    BARGE_IN_CONFIRM
                },
            ),
            vad: EnergyVad::new(VadConfig {
                min_speech_ms: BARGE_IN_MIN_SPEECH_MS,
                ..VadConfig::from_threshold(setup.spec.vad_threshold as f32)
            }),
            early_candidates: Vec::new(),
            pacer: Pacer::new(output_rate),
            frame: vec![0; output_rate.samples_per_frame()],
            pcm_bytes: Vec::with_capacity(input_rate.samples_per_frame() * 2),
            input_rate,
            policies: CallPolicies::new(setup.policy.clone()),
            setup,
            deps,
            server,
            to_client: Outbox::default(),
            to_provider: Outbox::default(),
            phase: Phase::Connecting,
            ending: None,
            closing: None,
            tool_calls: HashSet::new(),
            tool_results: tool_tx,
            edge: None,
            peer_connected: false,
            provider: None,
            transcript: Transcript::default(),
            muted: false,
            answered: None,
            started: Instant::now(),
            speaking: Who::None,
            interrupted: HashSet::new(),
            audio_done: HashSet::new(),
            playing: None,
            outbound_pending: None,
            rtp_origin: None,
            rtp_frames: 0,
        };
        tracing::info!(model = %session.setup.model.model_id, "call connecting");
        session
            .send(ServerMessage::State {
                state: WidgetState::Connecting,
                reason: None,
                duration_ms: None,
                message: None,
            })
            .await;

        let providers = session.deps.providers.clone();
        let (model, spec) = (session.setup.model.clone(), session.setup.spec.clone());
        let mut connecting: Option<JoinHandle<Result<ProviderSession, ProviderError>>> =
            Some(tokio::spawn(async move { providers.connect(&model, &spec).await }.in_current_span()));

        let mut ticker = tokio::time::interval(FRAME);
        ticker.set_missed_tick_behavior(MissedTickBehavior::Burst);

        while session.ending.is_none() {
            tokio::select! {
                _ = cancel.cancelled() => session.end(EndReason::Shutdown, None),
                input = client.recv() => session.handle_client(input).await,
                event = next_peer_event(&mut session.edge) => session.handle_peer(event).await,
                event = next_provider_event(&mut session.provider) => session.handle_provider(event).await,
                Some(outcome) = tool_rx.recv() => session.handle_tool_outcome(outcome).await,
                result = join(&mut connecting) => {
                    connecting = None;
                    session.handle_provider_connected(result).await;
                }
                scheduled = ticker.tick() => {
                    if session.handle_tick(scheduled.into_std()).await {
                        // Agent audio started early: the next frame is due a frame from now.
                        ticker.reset();
                    }
                }
            }
            if session.take_kick() {
                session.send_frame(Instant::now(), false).await;
                ticker.reset();
            }
        }
        if let Some(task) = connecting {
            task.abort();
        }
        session.finish().await;
    }
    .instrument(span)
    .await
}

async fn next_peer_event(edge: &mut Option<WebRtcEdge>) -> Option<PeerEvent> {
    match edge {
        Some(edge) => edge.next_event().await,
        None => std::future::pending().await,
    }
}

async fn next_provider_event(provider: &mut Option<ProviderSession>) -> Option<ProviderEvent> {
    match provider {
        Some(provider) => provider.events.recv().await,
        None => std::future::pending().await,
    }
}

async fn join<T>(task: &mut Option<JoinHandle<T>>) -> Result<T, tokio::task::JoinError> {
    match task {
        Some(task) => task.await,
        None => std::future::pending().await,
    }
}

impl CallSession {
    async fn send(&mut self, message: ServerMessage) {
        // Live text and speaking states are superseded by the next one: when the client
        // is behind, drop them rather than queue them.
        let droppable =
            matches!(message, ServerMessage::Speaking { .. } | ServerMessage::Transcript { is_final: false, .. });
        if droppable && (!self.to_client.queue.is_empty() || self.server.capacity() == 0) {
            return;
        }
        // The client may be gone; the call still ends properly without it.
        self.to_client.push(&self.server, message);
    }

    fn end(&mut self, reason: EndReason, error: Option<String>) {
        self.end_with_notice(reason, error, None);
    }

    fn end_with_notice(&mut self, reason: EndReason, error: Option<String>, notice: Option<String>) {
        if self.ending.is_none() {
            self.ending = Some(Ending { reason, error, notice });
        }
    }

    fn offset_ms(&self) -> i64 {
        self.answered.map_or(0, |(at, _)| at.elapsed().as_millis() as i64)
    }

    // --- the caller's client -----------------------------------------------------------

    async fn handle_client(&mut self, input: Option<ClientInput>) {
        let message = match input {
            Some(ClientInput::Message(message)) => message,
            Some(ClientInput::Gone) | None => return self.end(EndReason::CallerHangup, None),
        };
        match message {
            ClientMessage::Offer { sdp } => self.handle_offer(&sdp).await,
            ClientMessage::Candidate { candidate } => {
                let candidate = candidate.unwrap_or_else(|| IceCandidate::end_of_candidates(Some("0".into()), None));
                let Some(edge) = &mut self.edge else {
                    if self.early_candidates.len() < MAX_EARLY_CANDIDATES {
                        self.early_candidates.push(candidate);
                    }
                    return;
                };
                if let Err(err) = edge.add_candidate(candidate).await {
                    tracing::debug!(error = %err, "ignored a remote candidate");
                }
            }
            ClientMessage::Mute { muted } => {
                self.muted = muted;
                tracing::debug!(muted, "caller mute changed");
            }
            ClientMessage::End => self.end(EndReason::CallerHangup, None),
        }
    }

    async fn client_error(&mut self, code: &'static str, message: &str) {
        self.send(ServerMessage::Error { code, message: message.to_owned(), retryable: false }).await;
    }

    async fn handle_offer(&mut self, sdp: &str) {
        if self.edge.is_some() {
            return self.client_error("invalid_message", "an offer was already received").await;
        }
        let (input, output) = (self.input_rate, self.pacer.rate());
        match WebRtcEdge::answer(&self.deps.signaling, sdp, input, output).await {
            Ok((mut edge, answer)) => {
                for candidate in std::mem::take(&mut self.early_candidates) {
                    if let Err(err) = edge.add_candidate(candidate).await {
                        tracing::debug!(error = %err, "ignored an early remote candidate");
                    }
                }
                self.edge = Some(edge);
                self.send(ServerMessage::Answer { sdp: answer }).await;
            }
            Err(err) => {
                tracing::warn!(error = %err, "could not answer the caller's offer");
                self.send(ServerMessage::Error {
                    code: "invalid_offer",
                    message: "The call could not be set up with this browser's audio settings.".into(),
                    retryable: true,
                })
                .await;
                self.end(EndReason::Error, Some(format!("offer refused: {err}")));
            }
        }
    }

    // --- the caller's media ---------------------------------------------------------

    async fn handle_peer(&mut self, event: Option<PeerEvent>) {
        match event {
            Some(PeerEvent::LocalCandidate(candidate)) => {
                let candidate = (!candidate.is_end_of_candidates()).then_some(candidate);
                self.send(ServerMessage::Candidate { candidate }).await;
            }
            Some(PeerEvent::Connected) => {
                self.peer_connected = true;
                tracing::info!("caller media connected");
                self.maybe_activate().await;
            }
            Some(PeerEvent::Rtp(rtp)) => {
                if let Some(edge) = &mut self.edge {
                    edge.receive(&rtp, Instant::now());
                }
                self.forward_caller_audio().await;
            }
            // Browser answers do not negotiate telephone-event, so no key press comes here.
            Some(PeerEvent::Dtmf { .. }) => {}
            Some(PeerEvent::Lost { reason }) => {
                tracing::info!(?reason, "caller media lost");
                self.end(EndReason::NetworkLost, Some(format!("{reason:?}")));
            }
            Some(PeerEvent::Closed) | None => {
                self.end(EndReason::NetworkLost, Some("the peer connection closed".into()))
            }
        }
    }

    /// Runs the caller's decoded frames through the local VAD and on to the provider.
    async fn forward_caller_audio(&mut self) {
        let Some(edge) = &mut self.edge else { return };
        let frame_len = edge.input_frame();
        let (frames, arrivals) = edge.take_frames();
        for (frame, arrival) in frames.chunks_exact(frame_len).zip(arrivals.iter().copied()) {
            match self.vad.process(frame) {
                Some(VadEvent::SpeechStarted) if !self.muted => {
                    self.policies.handle_caller_speaking(true, Instant::now());
                    if self.closing.is_none() {
                        let audible = !self.pacer.is_idle();
                        let action = self.barge_in.handle_local_speech(audible, Instant::now());
                        self.apply_barge_in(action).await;
                    }
                }
                Some(VadEvent::SpeechStopped) => self.policies.handle_caller_speaking(false, Instant::now()),
                _ => {}
            }
            // Muted callers are not heard; nor are callers being said goodbye to.
            if self.phase != Phase::Active || self.muted || self.closing.is_some() {
                continue;
            }
            let Some(provider) = &self.provider else { continue };
            self.pcm_bytes.clear();
            media::pcm16::samples_to_le_bytes(frame, &mut self.pcm_bytes);
            let command = ProviderCommand::Audio { pcm: self.pcm_bytes.clone(), arrival };
            if provider.commands.try_send(command).is_err() {
                tracing::warn!("provider is not keeping up: dropped a caller frame");
            }
        }
        if let Some(edge) = &mut self.edge {
            edge.restore(frames, arrivals);
        }
    }

    // --- the provider ---------------------------------------------------------------

    async fn handle_provider_connected(
        &mut self,
        result: Result<Result<ProviderSession, ProviderError>, tokio::task::JoinError>,
    ) {
        match result {
            Ok(Ok(provider)) => {
                tracing::info!("provider session ready");
                self.provider = Some(provider);
                self.maybe_activate().await;
            }
            Ok(Err(err)) => {
                tracing::warn!(error = %err, "provider unavailable");
                self.send(ServerMessage::Error {
                    code: "provider_unavailable",
                    message: "The voice service is not reachable right now. Please try again in a moment.".into(),
                    retryable: true,
                })
                .await;
                self.end(EndReason::ProviderError, Some(err.to_string()));
            }
            Err(err) => self.end(EndReason::Error, Some(format!("provider task failed: {err}"))),
        }
    }

    async fn maybe_activate(&mut self) {
        if self.phase != Phase::Connecting || !self.peer_connected || self.provider.is_none() {
            return;
        }
        self.phase = Phase::Active;
        let answered_at = now_ms();
        self.answered = Some((Instant::now(), answered_at));
        self.recorder.record(Record::Active { answered_at }).await;
        self.policies.handle_active(Instant::now());
        tracing::info!("call active");
        self.send(ServerMessage::State { state: WidgetState::Active, reason: None, duration_ms: None, message: None })
            .await;
        if !self.setup.greeting.trim().is_empty() {
            self.command(ProviderCommand::Say { text: self.setup.greeting.clone() }).await;
        }
    }

    async fn command(&mut self, command: ProviderCommand) {
        if let Some(provider) = &self.provider {
            self.to_provider.push(&provider.commands, command);
        }
    }

    /// Hands over what the client and the provider could not take before.
    fn flush_outboxes(&mut self) {
        self.to_client.flush(&self.server);
        if let Some(provider) = &self.provider {
            self.to_provider.flush(&provider.commands);
        }
    }

    async fn handle_provider(&mut self, event: Option<ProviderEvent>) {
        let Some(event) = event else {
            self.provider = None;
            return self.provider_failed("the provider session ended").await;
        };
        match event {
            ProviderEvent::Audio { item_id, pcm, received } => {
                if self.interrupted.contains(&item_id) {
                    return;
                }
                if let Some(closing) = &mut self.closing
                    && closing.awaiting_goodbye
                    && closing.goodbye_item.is_none()
                {
                    closing.goodbye_item = Some(item_id.clone());
                }
                let ms = self.pacer.rate().samples_to_ms(pcm.len() as u64);
                self.transcript.agent_audio(&item_id, ms);
                if self.pacer.is_idle() && self.outbound_pending.is_none() {
                    self.outbound_pending = Some(received);
                }
                self.pacer.push(ItemKey::from(item_id), &pcm);
            }
            ProviderEvent::AudioDone { item_id } => {
                self.audio_done.insert(item_id.clone());
                let line = self.transcript.agent_audio_done(&item_id);
                self.store_line(line).await;
                // Its audio may have played out already: the pacer ran dry before the provider
                // said the item was complete. Then nothing of it is queued any more.
                let current = self.pacer.current_item().is_some_and(|k| k.as_str() == &*item_id)
                    || self.playing.as_ref().is_some_and(|k| k.as_str() == &*item_id);
                let finished = self.pacer.is_idle() || (!current && self.transcript.has_started(&item_id));
                if finished {
                    let line = self.transcript.agent_played_out(&item_id);
                    self.store_line(line).await;
                }
            }
            ProviderEvent::SpeechStarted => {
                if self.closing.is_some() {
                    return;
                }
                self.policies.handle_caller_speaking(true, Instant::now());
                let audible = !self.pacer.is_idle();
                let action = self.barge_in.handle_provider_speech(audible);
                self.apply_barge_in(action).await;
                self.set_speaking(Who::User).await;
            }
            ProviderEvent::SpeechStopped => {
                self.policies.handle_caller_speaking(false, Instant::now());
                if self.speaking == Who::User {
                    self.set_speaking(Who::None).await;
                }
            }
            ProviderEvent::UserTranscript { item_id, text, is_final } => {
                if text.is_empty() && is_final {
                    return;
                }
                self.send(ServerMessage::Transcript {
                    role: TranscriptRole::User,
                    text: text.clone(),
                    is_final,
                    item_id: item_id.to_string(),
                })
                .await;
                if is_final {
                    let action = self.policies.handle_caller_line(&text);
                    let line = FinalLine {
                        role: TranscriptRole::User,
                        text,
                        item_id: Some(item_id.to_string()),
                        offset_ms: self.offset_ms(),
                    };
                    let line = self.transcript.line(line);
                    self.recorder.record(Record::Line(line)).await;
                    self.apply_policy(action).await;
                }
            }
            ProviderEvent::AgentTranscript { item_id, text, is_final } => {
                if self.interrupted.contains(&item_id) {
                    return;
                }
                if !is_final {
                    self.send(ServerMessage::Transcript {
                        role: TranscriptRole::Agent,
                        text: text.clone(),
                        is_final: false,
                        item_id: item_id.to_string(),
                    })
                    .await;
                }
                let line = self.transcript.agent_text(&item_id, &text, is_final);
                self.store_line(line).await;
            }
            ProviderEvent::Interrupted => {
                if self.closing.is_some() {
                    return; // the goodbye already replaced whatever was interrupted
                }
                let action = self.barge_in.handle_provider_interrupted();
                self.apply_barge_in(action).await;
            }
            ProviderEvent::ResponseDone { status } => {
                if let Some(closing) = &mut self.closing
                    && closing.awaiting_goodbye
                    && closing.goodbye_item.is_some()
                    && status != "cancelled"
                {
                    closing.awaiting_goodbye = false;
                }
            }
            ProviderEvent::ToolCall { call_id, name, arguments } => {
                self.handle_tool_call(call_id, name, arguments).await
            }
            ProviderEvent::ToolCallsCancelled { call_ids } => {
                for id in call_ids {
                    self.tool_calls.remove(&id);
                }
            }
            ProviderEvent::Error { code, message } => {
                tracing::warn!(%code, %message, "provider error (the session goes on)");
            }
            ProviderEvent::Closed { reason, expected } => {
                self.provider = None;
                if !expected {
                    self.provider_failed(&reason).await;
                }
            }
        }
    }

    async fn provider_failed(&mut self, reason: &str) {
        if self.ending.is_some() {
            return;
        }
        tracing::warn!(%reason, "provider session lost");
        self.send(ServerMessage::Error {
            code: "provider_unavailable",
            message: "The connection to the voice service was lost.".into(),
            retryable: true,
        })
        .await;
        self.end(EndReason::ProviderError, Some(reason.to_owned()));
    }

    async fn store_line(&mut self, line: Option<FinalLine>) {
        let Some(line) = line else { return };
        self.send(ServerMessage::Transcript {
            role: line.role,
            text: line.text.clone(),
            is_final: true,
            item_id: line.item_id.clone().unwrap_or_default(),
        })
        .await;
        let line = self.transcript.line(line);
        self.recorder.record(Record::Line(line)).await;
    }

    async fn apply_barge_in(&mut self, action: BargeInAction) {
        if action != BargeInAction::Interrupt {
            return;
        }
        let Some(played) = self.pacer.clear() else { return };
        let item: Arc<str> = played.item.as_str().into();
        self.interrupted.insert(item.clone());
        self.outbound_pending = None;
        tracing::info!(item = %item, played_ms = played.played_ms, dropped_ms = played.dropped_ms, "caller barged in");
        // Truncate when the caller did not hear the whole item: audio was dropped, or the
        // provider was still sending it (the pacer may have run dry mid-item).
        let unheard = played.dropped_ms > 0 || !self.audio_done.contains(&item);
        if unheard && played.played_ms > 0 {
            self.command(ProviderCommand::Truncate {
                item_id: item.clone(),
                audio_end_ms: u64::from(played.played_ms),
            })
            .await;
        }
        let line = self.transcript.agent_interrupted(&item, u64::from(played.played_ms));
        self.store_line(line).await;
        self.playing = None;
    }

    async fn set_speaking(&mut self, who: Who) {
        if self.speaking != who {
            let now = Instant::now();
            if who == Who::Agent || self.speaking == Who::Agent {
                self.policies.handle_agent_speaking(who == Who::Agent, now);
            }
            self.speaking = who;
            self.send(ServerMessage::Speaking { who }).await;
        }
    }

    // --- the frame clock ---------------------------------------------------------------

    /// One 20 ms tick: conceal late caller packets, end an unconfirmed barge-in hold, send
    /// the next agent frame. True when the clock should be re-phased.
    async fn handle_tick(&mut self, scheduled: Instant) -> bool {
        let now = Instant::now();
        if self.phase == Phase::Connecting && now.duration_since(self.started) >= self.deps.connect_limit {
            let (reason, why) = if self.peer_connected {
                (EndReason::ProviderError, "the voice service was not ready in time")
            } else {
                (EndReason::NetworkLost, "the caller's media never connected")
            };
            tracing::info!(why, "call never became active");
            if reason == EndReason::ProviderError {
                self.send(ServerMessage::Error {
                    code: "provider_unavailable",
                    message: "The voice service is not reachable right now. Please try again in a moment.".into(),
                    retryable: true,
                })
                .await;
            }
            self.end(reason, Some(why.to_owned()));
            return false;
        }
        if let Some(edge) = &mut self.edge {
            edge.poll(now);
        }
        self.forward_caller_audio().await;
        self.flush_outboxes();
        let action = self.barge_in.poll(now);
        self.apply_barge_in(action).await;
        let late = now.duration_since(scheduled) >= FRAME;
        self.send_frame(now, late).await;
        if self.phase == Phase::Active {
            let action = self.policies.poll(now);
            self.apply_policy(action).await;
            self.poll_closing(now);
        }
        false
    }

    // --- policies and tools ------------------------------------------------------------

    async fn apply_policy(&mut self, action: Option<PolicyAction>) {
        match action {
            None => {}
            Some(PolicyAction::CheckIn { text }) => {
                tracing::info!("caller silent: checking in");
                self.command(ProviderCommand::Say { text }).await;
            }
            Some(PolicyAction::End { reason, farewell, notice }) => self.begin_closing(reason, farewell, notice).await,
        }
    }

    /// Ends the call gracefully: the agent says `farewell` (if any), the last agent audio
    /// plays out, then the call hangs up.
    async fn begin_closing(&mut self, reason: EndReason, farewell: Option<String>, notice: Option<String>) {
        if self.closing.is_some() || self.ending.is_some() {
            return;
        }
        tracing::info!(reason = %reason, "ending the call after the agent's goodbye");
        let awaiting_goodbye = farewell.is_some();
        if let Some(text) = farewell {
            // Whatever the agent was saying gives way to the goodbye.
            if let Some(played) = self.pacer.clear() {
                self.interrupted.insert(played.item.as_str().into());
                let item: Arc<str> = played.item.as_str().into();
                let line = self.transcript.agent_interrupted(&item, u64::from(played.played_ms));
                self.store_line(line).await;
                self.playing = None;
            }
            for item in self.transcript.pending_items() {
                self.interrupted.insert(item);
            }
            self.command(ProviderCommand::Say { text }).await;
        }
        self.closing = Some(Closing {
            reason,
            notice,
            awaiting_goodbye,
            goodbye_item: None,
            deadline: Instant::now() + CLOSING_LIMIT,
        });
    }

    /// Hangs up a closing call once the goodbye was spoken and played.
    fn poll_closing(&mut self, now: Instant) {
        let Some(closing) = &self.closing else { return };
        let done = !closing.awaiting_goodbye && self.pacer.is_idle();
        if done || now >= closing.deadline {
            let (reason, notice) = (closing.reason, closing.notice.clone());
            self.end_with_notice(reason, None, notice);
        }
    }

    async fn handle_tool_call(&mut self, call_id: String, name: String, arguments: String) {
        let offset_ms = self.offset_ms();
        let summary: String = format!("Tool call: {name}({arguments})").chars().take(SYSTEM_LINE_CHARS).collect();
        self.system_line(summary, offset_ms).await;
        match name.as_str() {
            tools::END_CALL => {
                // Already saying goodbye: hang up once it has played. Not yet: the result
                // asks for a goodbye (providers wait for a tool's result), and the call
                // hangs up once that has played.
                let speaking = !self.pacer.is_idle();
                if let Some(PolicyAction::End { reason, notice, .. }) = self.policies.handle_end_call_tool() {
                    if !speaking {
                        let output =
                            serde_json::json!({"ok": true, "next": "Say a brief goodbye now; the call ends after it."});
                        self.command(ProviderCommand::ToolResult { call_id, name, output: output.to_string() }).await;
                    }
                    self.begin_closing(reason, None, notice).await;
                    if let Some(closing) = &mut self.closing {
                        closing.awaiting_goodbye = !speaking;
                    }
                }
            }
            tools::SEARCH_KNOWLEDGE_BASE if self.setup.spec.tools.iter().any(|t| t.name == name) => {
                let query = serde_json::from_str::<serde_json::Value>(&arguments)
                    .ok()
                    .and_then(|v| v["query"].as_str().map(str::to_owned))
                    .unwrap_or_default();
                self.tool_calls.insert(call_id.clone());
                let (knowledge, results) = (self.deps.knowledge.clone(), self.tool_results.clone());
                let (company, chatbot) = (self.setup.company_id, self.setup.chatbot_id);
                tokio::spawn(
                    async move {
                        let search = knowledge.search(company, chatbot, &query, SEARCH_RESULTS);
                        let output = match tokio::time::timeout(SEARCH_LIMIT, search).await {
                            Ok(Ok(passages)) => crate::knowledge::tool_output(&passages),
                            Ok(Err(err)) => {
                                tracing::warn!(error = %err, "knowledge-base search failed");
                                serde_json::json!({"error": "the knowledge base is not available right now"})
                                    .to_string()
                            }
                            Err(_) => {
                                tracing::warn!("knowledge-base search timed out");
                                serde_json::json!({"error": "the knowledge base is not available right now"})
                                    .to_string()
                            }
                        };
                        let _ = results.send(ToolOutcome { call_id, name, output }).await;
                    }
                    .in_current_span(),
                );
            }
            _ => {
                tracing::warn!(tool = %name, "the agent called a tool this call does not offer");
                let output = serde_json::json!({"error": format!("no tool named {name} is available")}).to_string();
                self.command(ProviderCommand::ToolResult { call_id, name, output }).await;
            }
        }
    }

    async fn handle_tool_outcome(&mut self, outcome: ToolOutcome) {
        if !self.tool_calls.remove(&outcome.call_id) || self.closing.is_some() {
            return; // cancelled by the provider, or the call is ending
        }
        let summary: String = format!("Tool result: {}", outcome.output).chars().take(SYSTEM_LINE_CHARS).collect();
        let offset_ms = self.offset_ms();
        self.system_line(summary, offset_ms).await;
        self.command(ProviderCommand::ToolResult {
            call_id: outcome.call_id,
            name: outcome.name,
            output: outcome.output,
        })
        .await;
    }

    /// Stores a system line (tool calls and results); the widget does not show these.
    async fn system_line(&mut self, text: String, offset_ms: i64) {
        let line = self.transcript.line(FinalLine { role: TranscriptRole::System, text, item_id: None, offset_ms });
        self.recorder.record(Record::Line(line)).await;
    }

    /// Agent audio arrived while nothing was playing: send its first frame now rather
    /// than at the next tick.
    fn take_kick(&mut self) -> bool {
        self.outbound_pending.is_some() && !self.barge_in.is_paused() && self.peer_connected && self.ending.is_none()
    }

    async fn send_frame(&mut self, now: Instant, late: bool) {
        if !self.peer_connected {
            return;
        }
        let paused = self.barge_in.is_paused();
        let frame = if paused {
            self.frame.fill(0);
            PacedFrame::Silence
        } else {
            self.pacer.next_frame(&mut self.frame)
        };
        // Starting agent audio early (see `take_kick`) runs the RTP timeline ahead of the
        // wall clock; skipping a silent frame gives that time back, so the caller's jitter
        // buffer never sees the sender's clock drift.
        let timeline = self.rtp_origin.map(|origin| origin + FRAME * self.rtp_frames);
        if frame.is_silence() && timeline.is_some_and(|t| t.saturating_duration_since(now) >= FRAME) {
            return self.after_frame(&frame).await;
        }
        let Some(edge) = &mut self.edge else { return };
        match edge.send(&self.frame).await {
            Ok(true) => {
                crate::metrics::frame_sent(late);
                self.rtp_origin.get_or_insert(now);
                self.rtp_frames += 1;
                if !frame.is_silence()
                    && let Some(received) = self.outbound_pending.take()
                {
                    crate::metrics::outbound_latency(received.elapsed());
                }
            }
            Ok(false) => {}
            Err(err) => tracing::debug!(error = %err, "could not send an agent frame"),
        }
        // A held item is still the one playing: the caller has not heard its end.
        if !paused {
            self.after_frame(&frame).await;
        }
    }

    /// Bookkeeping after a frame: which agent item is audible, whether one finished.
    async fn after_frame(&mut self, frame: &PacedFrame) {
        let current = frame.item().cloned();
        if current.as_ref().map(ItemKey::as_str) == self.playing.as_ref().map(ItemKey::as_str) {
            return;
        }
        if let Some(previous) = self.playing.take() {
            let item: Arc<str> = previous.as_str().into();
            let still_queued =
                !self.pacer.is_idle() && self.pacer.current_item().is_some_and(|k| k.as_str() == previous.as_str());
            if self.audio_done.contains(&item) && !still_queued {
                let line = self.transcript.agent_played_out(&item);
                self.store_line(line).await;
            }
        }
        match &current {
            Some(item) => {
                let offset = self.offset_ms();
                self.transcript.agent_started(&Arc::from(item.as_str()), offset);
                self.set_speaking(Who::Agent).await;
            }
            None => {
                if self.speaking == Who::Agent {
                    self.set_speaking(Who::None).await;
                }
            }
        }
        self.playing = current;
    }

    // --- the end ------------------------------------------------------------------------

    async fn finish(mut self) {
        let Ending { reason, error, notice } =
            self.ending.take().unwrap_or(Ending { reason: EndReason::Error, error: None, notice: None });
        // Agent lines not stored yet are stored as far as the caller heard them.
        for item in self.transcript.pending_items() {
            let played = self.pacer.played_ms(&ItemKey::from(item.clone())).unwrap_or(0);
            let line = self.transcript.agent_interrupted(&item, u64::from(played));
            self.store_line(line).await;
        }
        for line in self.transcript.flush() {
            self.store_line(Some(line)).await;
        }
        if let Some(provider) = self.provider.take() {
            self.to_provider.flush(&provider.commands);
            let _ = provider.commands.try_send(ProviderCommand::Close);
        }
        if let Some(edge) = &mut self.edge {
            let stats = edge.stats();
            tracing::info!(
                received = stats.received,
                lost = stats.lost,
                late = stats.late,
                jitter_ms = stats.jitter_ms,
                "caller media stats"
            );
            edge.close().await;
        }
        let ended_at = now_ms();
        let duration_ms = self.answered.map_or(0, |(_, at)| ended_at - at);
        let CallSession { recorder, server, mut to_client, .. } = self;
        recorder.record(Record::End { reason, ended_at, error: error.clone() }).await;
        recorder.finish().await;
        tracing::info!(reason = %reason, duration_ms, error = error.as_deref().unwrap_or(""), "call ended");
        crate::metrics::call_ended(reason.as_str());
        to_client.flush(&server);
        let ended = ServerMessage::State {
            state: WidgetState::Ended,
            reason: Some(reason),
            duration_ms: Some(duration_ms),
            message: notice,
        };
        // The last word may wait a little for room behind earlier messages, not forever.
        let _ = tokio::time::timeout(FAREWELL_SEND_LIMIT, server.send(ended)).await;
    }
}
