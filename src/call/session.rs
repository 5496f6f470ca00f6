//! `CallSession`: one task per call, owning all of its state.
//!
//! The loop waits for the next input — the caller's leg (media, connection state,
//! signaling it handles itself), the call's control channel (mute, hang-up, the client
//! going away), the provider (agent audio, transcripts, VAD, tool calls), tool results, or
//! the 20 ms frame clock — handles it, and decides whether to go on. The session does not
//! know which channel the caller came in on: a [`CallerLeg`] turns its wire into caller
//! frames and agent frames into its wire. What the caller heard is one pure record, the
//! [`HeardLedger`], fed by the leg's own truth. Nothing here is shared with other calls;
//! legs and the provider reach the session through bounded channels, the database through
//! the call's [`Recorder`].

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use media::{EnergyVad, ItemKey, PacedFrame, VadConfig, VadEvent};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::MissedTickBehavior;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use super::barge_in::{BargeIn, BargeInAction};
use super::client::{ClientLink, Outbox};
use super::handover::{self, Handover, HandoverAction};
use super::heard::{HeardEvent, HeardLedger};
use super::legs::agent::AgentInput;
use super::legs::{AgentAttach, AgentLeg, CallerLeg, LegEvent};
use super::messages::{Control, ServerMessage, Who, WidgetState};
use super::playout::Playout;
use super::policy::{CallPolicies, PolicyAction, PolicyConfig};
use super::recorder::{Record, Recorder};
use super::recording::CallRecording;
use super::transcript::{FinalLine, Heard, Transcript};
use crate::domain::{CallSource, EndReason, TranscriptRole};
use crate::escalation::{CloseOutcome, EscalationRequest, Escalations, OfferLine, PendingEscalation};
use crate::ids::{CallId, ChatbotId, CompanyId};
use crate::knowledge::KnowledgeSearch;
use crate::providers::{
    Capabilities, InputFrame, ProviderCommand, ProviderError, ProviderEvent, ProviderSession, ProviderSettings,
    SessionSpec,
};
use crate::recording::Recordings;
use crate::store::{AiModel, Store};
use crate::time::{UnixMs, now_ms};

/// The 20 ms frame clock.
const FRAME: Duration = Duration::from_millis(20);
/// Speech the local VAD needs before it pauses the agent: short, because the pause is
/// only a hint (the provider confirms or playout resumes) and every frame of it is heard.
const BARGE_IN_MIN_SPEECH_MS: u32 = 40;
/// Longest wait for a goodbye to be spoken and played before hanging up anyway.
const CLOSING_LIMIT: Duration = Duration::from_secs(20);
/// Passages a knowledge-base search returns to the agent.
const SEARCH_RESULTS: usize = 3;
/// Longest text of a tool call or result kept as a system transcript line.
const SYSTEM_LINE_CHARS: usize = 600;
/// Longest a knowledge-base search may take before the agent is told it is unavailable.
const SEARCH_LIMIT: Duration = Duration::from_secs(5);
/// Longest wait to tell the client the call ended.
const FAREWELL_SEND_LIMIT: Duration = Duration::from_secs(2);
/// Longest wait to withdraw a waiting escalation when the call ends.
const ESCALATION_CLOSE_LIMIT: Duration = Duration::from_secs(2);
/// VAD events of one batch of caller frames (a batch is at most a few frames).
const VAD_EVENTS: usize = 8;

/// The tools offered to the agent (`SessionSpec::tools` carries their schemas).
pub mod tools {
    /// Searches the chatbot's knowledge-base categories.
    pub const SEARCH_KNOWLEDGE_BASE: &str = "search_knowledge_base";
    /// Ends the call after the agent's goodbye.
    pub const END_CALL: &str = "end_call";
    /// Hands the caller to a human agent (when the chatbot's escalation is on).
    pub const ESCALATE_TO_HUMAN: &str = "escalate_to_human";
    /// Takes a message when no agent came (a ticket).
    pub const TAKE_MESSAGE: &str = "take_message";
}

/// Everything a session needs to know about its call.
#[derive(Debug, Clone)]
pub struct CallSetup {
    pub call_id: CallId,
    pub company_id: CompanyId,
    pub chatbot_id: ChatbotId,
    pub source: CallSource,
    /// Silence, duration and end-phrase rules.
    pub policy: PolicyConfig,
    pub model: AiModel,
    pub spec: SessionSpec,
    /// Spoken when the call becomes active (empty: none).
    pub greeting: String,
    /// Record the call (the chatbot's `callRecording`).
    pub record: bool,
    /// Spoken before the greeting when the call is recorded (None: not spoken).
    pub recording_notice: Option<String>,
    /// Escalation to a human, when the chatbot offers it.
    pub escalation: Option<EscalationSetup>,
}

/// A chatbot's escalation settings, as a call uses them.
#[derive(Debug, Clone)]
pub struct EscalationSetup {
    /// How long agents have to accept.
    pub timeout: Duration,
    /// What the AI says before the caller waits.
    pub hold_message: String,
}

/// Shared services a session uses.
#[derive(Clone)]
pub struct SessionDeps {
    pub store: Store,
    /// What `search_knowledge_base` searches.
    pub knowledge: Arc<dyn KnowledgeSearch>,
    pub signaling: signaling::PeerFactory,
    pub providers: Arc<ProviderSettings>,
    /// Longest a call may take to become active (media connected and the provider ready):
    /// beyond it, a caller who never sent an offer, or a provider that never answered,
    /// does not hold a session open.
    pub connect_limit: Duration,
    /// Where recorded calls' frames go.
    pub recordings: Arc<Recordings>,
    /// Offers to human agents, and tickets.
    pub escalations: Arc<Escalations>,
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
    /// Waiting for the provider to speak the goodbye (the ledger knows its item).
    awaiting_goodbye: bool,
    /// The provider finished the goodbye's response.
    goodbye_generated: bool,
    /// Hang up by then whatever happens.
    deadline: Instant,
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
    caps: Capabilities,
    recorder: Recorder,
    /// The client watching the call (the caller's widget), if there is one.
    client: Option<ClientLink>,
    caller: CallerLeg,
    leg_connected: bool,
    provider: Option<ProviderSession>,
    connecting: Option<JoinHandle<Result<ProviderSession, ProviderError>>>,
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
    playout: Playout,
    ledger: HeardLedger,
    vad: EnergyVad,
    /// VAD events of the caller frames just taken, handled after the batch.
    vad_events: Vec<(VadEvent, Instant)>,
    /// When the gateway's VAD last heard the caller start talking (None while silent).
    caller_speaking_since: Option<Instant>,
    barge_in: BargeIn,
    transcript: Transcript,
    muted: bool,
    answered: Option<(Instant, UnixMs)>,
    /// When the session started (for the connect limit).
    started: Instant,
    /// What the speaking indicator shows.
    speaking: Who,
    /// The provider hears the caller talking.
    caller_talking: bool,
    /// Agent audio is reaching the caller (sent, or sent and not yet confirmed played).
    agent_audible: bool,
    /// The last frame sent carried agent audio: the next one is due at the next tick. (A
    /// phone line may still be playing it, `agent_audible`, while new audio could go now.)
    frame_playing: bool,
    /// When agent audio arrived to an idle playout (for the outbound latency metric).
    outbound_pending: Option<Instant>,
    /// The call's recording, from its answer on, when the chatbot records calls.
    recording: Option<CallRecording>,
    /// No agent audio has reached the caller since the answer yet (for its metric).
    awaiting_first_audio: bool,
    /// Where the call is in a hand-over to a human.
    handover: Handover,
    /// The escalation offered to agents, once stored.
    escalation: Option<PendingEscalation>,
    /// Results of the escalation's database work, done off the session's task.
    escalation_results: mpsc::Sender<EscalationResult>,
    /// The human agent who accepted the call, once their console opened its media leg.
    agent: Option<Box<AgentLeg>>,
}

/// What the escalation's database work came back with.
enum EscalationResult {
    /// The escalation was stored and offered.
    Opened(Result<PendingEscalation, String>),
    /// Closing it without an agent found an agent had won after all.
    AssignedLate,
}

/// Runs a call to its end. `caller` is the caller's leg; `client` the client watching the
/// call, if any; `control` carries mute and hang-up requests and the client going away.
pub async fn run(
    setup: CallSetup,
    deps: SessionDeps,
    caller: CallerLeg,
    client: Option<ClientLink>,
    mut control: mpsc::Receiver<Control>,
    mut agents: mpsc::Receiver<AgentAttach>,
    cancel: CancellationToken,
) {
    let span = tracing::info_span!("call", call_id = %setup.call_id, company_id = %setup.company_id);
    async move {
        let caps = crate::providers::capabilities(setup.model.provider);
        let (tool_tx, mut tool_rx) = mpsc::channel::<ToolOutcome>(8);
        let (escalation_tx, mut escalation_rx) = mpsc::channel::<EscalationResult>(4);
        let mut session = CallSession {
            recorder: Recorder::start(deps.store.clone(), setup.call_id),
            barge_in: BargeIn::new(setup.spec.allow_interruption, caps.barge_in_confirm),
            vad: EnergyVad::new(VadConfig {
                min_speech_ms: BARGE_IN_MIN_SPEECH_MS,
                ..VadConfig::from_threshold(setup.spec.vad_threshold as f32)
            }),
            vad_events: Vec::with_capacity(VAD_EVENTS),
            caller_speaking_since: None,
            playout: Playout::new(setup.spec.output),
            ledger: HeardLedger::new(setup.spec.output.rate()),
            policies: CallPolicies::new(setup.policy.clone()),
            caps,
            setup,
            deps,
            client,
            caller,
            leg_connected: false,
            provider: None,
            connecting: None,
            to_provider: Outbox::default(),
            phase: Phase::Connecting,
            ending: None,
            closing: None,
            tool_calls: HashSet::new(),
            tool_results: tool_tx,
            transcript: Transcript::default(),
            muted: false,
            answered: None,
            started: Instant::now(),
            speaking: Who::None,
            caller_talking: false,
            agent_audible: false,
            frame_playing: false,
            outbound_pending: None,
            recording: None,
            awaiting_first_audio: false,
            handover: Handover::default(),
            escalation: None,
            escalation_results: escalation_tx,
            agent: None,
        };
        tracing::info!(model = %session.setup.model.model_id, source = %session.setup.source, "call connecting");
        session.send(ServerMessage::State {
            state: WidgetState::Connecting,
            reason: None,
            duration_ms: None,
            message: None,
        });
        session.leg_connected = session.caller.is_connected();
        if session.caller.is_ringing() {
            session.open_provider();
        }

        let mut ticker = tokio::time::interval(FRAME);
        ticker.set_missed_tick_behavior(MissedTickBehavior::Burst);

        while session.ending.is_none() {
            // `biased`: the sources that wake the session every frame are polled first, so
            // a frame's wake-up stops at its own source instead of polling every channel.
            // The tick comes first (pacing goes on whatever floods in) and looks at the
            // shutdown signal: a shutdown ends the call within a frame.
            tokio::select! {
                biased;
                scheduled = ticker.tick() => {
                    if cancel.is_cancelled() {
                        session.end(EndReason::Shutdown, None);
                    } else {
                        session.handle_tick(scheduled.into_std()).await;
                    }
                }
                input = session.caller.next_input() => {
                    let event = session.caller.handle(input, Instant::now()).await;
                    session.handle_leg(event).await;
                }
                event = next_provider_event(&mut session.provider) => session.handle_provider(event).await,
                input = next_agent_input(&mut session.agent) => session.handle_agent_input(input).await,
                control = recv_control(&mut control) => session.handle_control(control),
                Some(outcome) = tool_rx.recv() => session.handle_tool_outcome(outcome).await,
                Some(result) = escalation_rx.recv() => session.handle_escalation_result(result).await,
                accepted = next_acceptance(&mut session.escalation) => session.handle_agent_accepted(accepted).await,
                Some(attach) = agents.recv() => session.handle_agent_attach(attach).await,
                result = join(&mut session.connecting) => {
                    session.connecting = None;
                    session.handle_provider_connected(result).await;
                }
            }
            if session.take_kick() {
                session.send_frame(Instant::now(), false).await;
                ticker.reset();
            }
        }
        if let Some(task) = session.connecting.take() {
            task.abort();
        }
        session.finish().await;
    }
    .instrument(span)
    .await
}

async fn recv_control(control: &mut mpsc::Receiver<Control>) -> Control {
    match control.recv().await {
        Some(control) => control,
        // Nobody can control the call any more; it goes on until it ends by itself.
        None => std::future::pending().await,
    }
}

async fn next_provider_event(provider: &mut Option<ProviderSession>) -> Option<ProviderEvent> {
    match provider {
        Some(provider) => provider.events.recv().await,
        None => std::future::pending().await,
    }
}

/// Stores and offers an escalation, with the conversation so far for the agents.
async fn open_escalation(
    store: Store,
    escalations: &Escalations,
    mut request: EscalationRequest,
) -> Result<PendingEscalation, String> {
    if let Ok(Some(call)) = store.call(request.call_id).await {
        request.caller = call.caller;
    }
    if let Ok(lines) = store.transcript(request.call_id).await {
        request.transcript = lines
            .into_iter()
            .filter(|l| l.role != TranscriptRole::System)
            .map(|l| OfferLine { role: l.role, text: l.content })
            .collect();
    }
    escalations.open(request).await.map_err(|err| err.to_string())
}

/// Closes an escalation nobody waits for any more (the call ended, or gave up first).
async fn close_unwanted(escalations: &Escalations, id: crate::ids::EscalationId) {
    match escalations.timed_out(id).await {
        Ok(CloseOutcome::Assigned(_)) => {
            let _ = escalations.resolve(id).await;
        }
        Ok(_) => {}
        Err(err) => tracing::warn!(error = %err, "could not withdraw an escalation nobody waits for"),
    }
}

/// An agent accepting the call's escalation; never without one.
async fn next_acceptance(escalation: &mut Option<PendingEscalation>) -> crate::escalation::Accepted {
    match escalation {
        Some(pending) => pending.accepted().await,
        None => std::future::pending().await,
    }
}

async fn next_agent_input(agent: &mut Option<Box<AgentLeg>>) -> AgentInput {
    match agent {
        Some(agent) => agent.next_input().await,
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
    fn send(&mut self, message: ServerMessage) {
        if let Some(client) = &mut self.client {
            client.send(message);
        }
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
        self.offset_at(Instant::now())
    }

    fn offset_at(&self, at: Instant) -> i64 {
        self.answered.map_or(0, |(answered, _)| at.saturating_duration_since(answered).as_millis() as i64)
    }

    /// Opens the provider session, in parallel with the caller's media setting up.
    fn open_provider(&mut self) {
        if self.connecting.is_some() || self.provider.is_some() {
            return;
        }
        let providers = self.deps.providers.clone();
        let (model, spec) = (self.setup.model.clone(), self.setup.spec.clone());
        self.connecting = Some(tokio::spawn(async move { providers.connect(&model, &spec).await }.in_current_span()));
    }

    // --- control and the caller's leg ---------------------------------------------------

    fn handle_control(&mut self, control: Control) {
        match control {
            Control::Mute(muted) => {
                self.muted = muted;
                tracing::debug!(muted, "caller mute changed");
            }
            Control::End | Control::ClientGone => self.end(EndReason::CallerHangup, None),
            // Only an agent's console may hand back; the widget's socket refuses it.
            Control::Handback => {}
        }
    }

    async fn handle_leg(&mut self, event: LegEvent) {
        match event {
            LegEvent::Nothing => {}
            LegEvent::Ringing => self.open_provider(),
            LegEvent::Connected => {
                self.leg_connected = true;
                self.maybe_activate().await;
            }
            LegEvent::Audio => {
                let now = Instant::now();
                if let Some(packet) = self.caller.take_opus()
                    && let Some(agent) = self.agent.as_mut().filter(|_| !self.muted)
                {
                    agent.forward_opus(&packet, now).await;
                }
                self.forward_caller_audio(now).await;
            }
            LegEvent::Played(mark) => {
                self.ledger.confirmed(mark, Instant::now());
                self.after_heard().await;
            }
            LegEvent::Dtmf(digit) => self.handle_dtmf(digit).await,
            LegEvent::HungUp => self.end(EndReason::CallerHangup, None),
            LegEvent::Lost(why) => self.end(EndReason::NetworkLost, Some(why)),
            LegEvent::Failed { reason, error } => self.end(reason, Some(error)),
        }
    }

    /// A key press: a system line, and a short note to the model.
    async fn handle_dtmf(&mut self, digit: char) {
        // The digit itself stays out of the logs: callers key in PINs and card numbers.
        tracing::info!("caller pressed a key");
        let offset_ms = self.offset_ms();
        self.system_line(format!("The caller pressed {digit}"), offset_ms).await;
        // The AI hears of it only while it is the one talking with the caller.
        if self.phase == Phase::Active && self.closing.is_none() && self.handover.ai_on_call() {
            self.command(ProviderCommand::UserText { text: format!("The caller pressed {digit}") });
        }
    }

    /// Runs the caller's frames through the local VAD and on to the provider.
    async fn forward_caller_audio(&mut self, now: Instant) {
        let Self { caller, vad, vad_events, provider, muted, phase, closing, recording, handover, agent, caps, .. } =
            self;
        // Nor is a caller on hold for a person heard by the AI; with a person on the call,
        // the AI only transcribes them, where it can.
        let ai_listens = handover.ai_on_call() || (handover.with_human() && caps.transcribes_only);
        let forward = *phase == Phase::Active && !*muted && closing.is_none() && ai_listens;
        let commands = provider.as_ref().map(|p| &p.commands);
        // A phone caller's frames are encoded for the agent (a WebRTC caller's packets
        // were forwarded as they came).
        let mut to_agent = agent.as_mut().filter(|a| !*muted && !caller.carries_opus() && a.can_send());
        caller.take_caller_audio(now, |frame| {
            if let Some(recording) = recording.as_mut() {
                recording.caller(&frame);
            }
            if let Some(agent) = to_agent.as_mut() {
                agent.queue_caller_frame(&frame);
            }
            let event = vad.process_level(frame.dbfs());
            if let Some(event) = event
                && vad_events.len() < VAD_EVENTS
            {
                vad_events.push((event, now));
            }
            // Muted callers are not heard; nor are callers being said goodbye to.
            let Some(commands) = commands.filter(|_| forward) else { return };
            let audio = ProviderCommand::Audio(InputFrame::new(frame.wire, vad.is_speaking(), frame.arrival));
            if commands.try_send(audio).is_err() {
                tracing::warn!("provider is not keeping up: dropped a caller frame");
            }
        });
        if let Some(agent) = &mut self.agent {
            agent.send_caller_audio(now).await;
        }
        let mut events = std::mem::take(&mut self.vad_events);
        for &(event, at) in &events {
            self.handle_local_vad(event, at).await;
        }
        events.clear();
        self.vad_events = events;
    }

    async fn handle_local_vad(&mut self, event: VadEvent, at: Instant) {
        match event {
            VadEvent::SpeechStarted => {
                self.caller_speaking_since = Some(at);
                if self.muted {
                    return;
                }
                self.policies.handle_caller_speaking(true, at);
                if self.closing.is_none() {
                    let action = self.barge_in.handle_local_speech(self.agent_audible, at);
                    if self.agent_audible && matches!(action, BargeInAction::Pause | BargeInAction::Interrupt) {
                        // The next frame the caller gets is silence: the agent stopped.
                        crate::metrics::barge_in_stopped(Instant::now().saturating_duration_since(at));
                    }
                    self.apply_barge_in(action).await;
                }
            }
            VadEvent::SpeechStopped => {
                self.caller_speaking_since = None;
                self.policies.handle_caller_speaking(false, at);
            }
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
                self.caller.call_ready();
                self.maybe_activate().await;
            }
            Ok(Err(err)) => {
                tracing::warn!(error = %err, "provider unavailable");
                self.send(ServerMessage::Error {
                    code: "provider_unavailable",
                    message: "The voice service is not reachable right now. Please try again in a moment.".into(),
                    retryable: true,
                });
                self.end(EndReason::ProviderError, Some(err.to_string()));
            }
            Err(err) => self.end(EndReason::Error, Some(format!("provider task failed: {err}"))),
        }
    }

    async fn maybe_activate(&mut self) {
        if self.phase != Phase::Connecting || !self.leg_connected || self.provider.is_none() {
            return;
        }
        self.phase = Phase::Active;
        let answered_at = now_ms();
        let answered = Instant::now();
        self.answered = Some((answered, answered_at));
        self.awaiting_first_audio = true;
        if self.setup.record {
            let tap = self.deps.recordings.start(self.setup.call_id, self.setup.company_id, answered_at);
            self.recording = Some(CallRecording::new(tap, answered, self.setup.spec.input, self.setup.spec.output));
        }
        self.recorder.record(Record::Active { answered_at }).await;
        self.policies.handle_active(answered);
        tracing::info!(recorded = self.setup.record, "call active");
        self.send(ServerMessage::State { state: WidgetState::Active, reason: None, duration_ms: None, message: None });
        if let Some(text) = opening_words(self.recording_notice(), &self.setup.greeting) {
            self.command(ProviderCommand::Say { text });
        }
    }

    /// The recording notice, when this call is being recorded.
    fn recording_notice(&self) -> Option<&str> {
        self.recording.as_ref().and(self.setup.recording_notice.as_deref())
    }

    fn command(&mut self, command: ProviderCommand) {
        if let Some(provider) = &self.provider {
            self.to_provider.push(&provider.commands, command);
        }
    }

    /// Hands over what the client and the provider could not take before.
    fn flush_outboxes(&mut self) {
        if let Some(client) = &mut self.client {
            client.flush();
        }
        if let Some(agent) = &mut self.agent {
            agent.flush();
        }
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
            ProviderEvent::Audio { item_id, audio, received } => {
                let item = ItemKey::from(item_id);
                // With a person on the call no AI audio reaches the caller.
                if self.ledger.is_cut(&item) || self.handover.with_human() {
                    return;
                }
                let was_idle = self.playout.is_idle();
                if !self.playout.push(item.clone(), &audio) {
                    tracing::error!("the provider sent agent audio in a format other than the one negotiated");
                    return;
                }
                self.ledger.received(&item, audio.len());
                if was_idle && self.outbound_pending.is_none() {
                    self.outbound_pending = Some(received);
                }
            }
            ProviderEvent::AudioDone { item_id } => {
                self.ledger.audio_done(&ItemKey::from(item_id));
                self.after_heard().await;
            }
            ProviderEvent::SpeechStarted => {
                self.caller_talking = true;
                if self.closing.is_none() {
                    self.policies.handle_caller_speaking(true, Instant::now());
                    let action = self.barge_in.handle_provider_speech(self.agent_audible);
                    self.apply_barge_in(action).await;
                }
                self.update_speaking();
            }
            ProviderEvent::SpeechStopped => {
                self.caller_talking = false;
                self.policies.handle_caller_speaking(false, Instant::now());
                self.update_speaking();
            }
            ProviderEvent::UserTranscript { item_id, text, is_final } => {
                if text.is_empty() && is_final {
                    return;
                }
                let line = ServerMessage::Transcript {
                    role: TranscriptRole::User,
                    text: text.clone(),
                    is_final,
                    item_id: item_id.to_string(),
                };
                if let Some(agent) = &mut self.agent {
                    agent.send(line.clone());
                }
                self.send(line);
                if is_final {
                    // The end phrase is the AI's to act on: not while a person has the call.
                    let action =
                        if self.handover.with_human() { None } else { self.policies.handle_caller_line(&text) };
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
                if self.ledger.is_cut(&ItemKey::from(item_id.clone())) || self.handover.with_human() {
                    return;
                }
                if !is_final {
                    self.send(ServerMessage::Transcript {
                        role: TranscriptRole::Agent,
                        text: text.clone(),
                        is_final: false,
                        item_id: item_id.to_string(),
                    });
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
                let Some(closing) = &mut self.closing else { return };
                if !closing.awaiting_goodbye || !self.ledger.goodbye_started() {
                    return;
                }
                if status == "cancelled" {
                    // The item taken for the goodbye belonged to the answer the goodbye
                    // replaced (its audio was still on the way): cut it, wait for the next.
                    self.interrupt_agent().await;
                    self.ledger.expect_goodbye();
                } else {
                    closing.goodbye_generated = true;
                }
            }
            ProviderEvent::ToolCall { .. } if self.handover.with_human() => {
                tracing::warn!("the AI called a tool while a person is on the call; ignored");
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
        });
        self.end(EndReason::ProviderError, Some(reason.to_owned()));
    }

    async fn store_line(&mut self, line: Option<FinalLine>) {
        let Some(line) = line else { return };
        let message = |role| ServerMessage::Transcript {
            role,
            text: line.text.clone(),
            is_final: true,
            item_id: line.item_id.clone().unwrap_or_default(),
        };
        if let Some(agent) = &mut self.agent {
            agent.send(message(line.role));
        }
        // The widget shows the person who took the call as the agent.
        self.send(message(if line.role == TranscriptRole::HumanAgent { TranscriptRole::Agent } else { line.role }));
        let line = self.transcript.line(line);
        self.recorder.record(Record::Line(line)).await;
    }

    /// Takes what the ledger learned: lines heard in full or cut are stored, items that
    /// started get their offset.
    async fn after_heard(&mut self) {
        while let Some(event) = self.ledger.next_event() {
            match event {
                HeardEvent::Started { item, at } => {
                    let offset = self.offset_at(at);
                    self.transcript.agent_started(item.as_arc(), offset);
                }
                HeardEvent::Finished { item } => {
                    let line = self.transcript.agent_heard(item.as_arc(), Heard::Whole);
                    self.store_line(line).await;
                }
                HeardEvent::Cut { item, heard_ms, total_ms } => {
                    let line = self.transcript.agent_heard(item.as_arc(), Heard::Cut { heard_ms, total_ms });
                    self.store_line(line).await;
                }
            }
        }
        self.update_speaking();
    }

    /// Cuts the agent off where the caller is: queued audio dropped here and at the far end.
    async fn interrupt_agent(&mut self) -> Option<super::heard::Interruption> {
        let cleared = self.playout.clear();
        let interruption = self.ledger.interrupt(cleared.as_ref());
        self.caller.clear_agent_audio().await;
        self.outbound_pending = None;
        self.agent_audible = false;
        self.frame_playing = false;
        self.after_heard().await;
        interruption
    }

    async fn apply_barge_in(&mut self, action: BargeInAction) {
        if action != BargeInAction::Interrupt {
            return;
        }
        let Some(cut) = self.interrupt_agent().await else { return };
        tracing::info!(item = %cut.item, heard_ms = cut.heard_ms, "caller barged in");
        // Tell the provider what the caller heard, where its API allows.
        if cut.truncate && self.caps.truncates {
            self.command(ProviderCommand::Truncate { item_id: cut.item.as_arc().clone(), audio_end_ms: cut.heard_ms });
        }
    }

    /// The indicator follows what the caller hears: the agent while its audio reaches them
    /// (even if they talk over it and interruption is off), else the caller while talking.
    fn update_speaking(&mut self) {
        let who = if self.agent_audible {
            Who::Agent
        } else if self.caller_talking {
            Who::User
        } else {
            Who::None
        };
        if self.speaking != who {
            let now = Instant::now();
            if who == Who::Agent || self.speaking == Who::Agent {
                self.policies.handle_agent_speaking(who == Who::Agent, now);
            }
            self.speaking = who;
            self.send(ServerMessage::Speaking { who });
        }
    }

    // --- the frame clock ---------------------------------------------------------------

    /// One 20 ms tick: conceal late caller packets, confirm or end a barge-in hold, send
    /// the next agent frame, run the policies.
    async fn handle_tick(&mut self, scheduled: Instant) {
        let now = Instant::now();
        if self.phase == Phase::Connecting && now.duration_since(self.started) >= self.deps.connect_limit {
            let (reason, why) = if self.leg_connected {
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
                });
            }
            return self.end(reason, Some(why.to_owned()));
        }
        self.forward_caller_audio(now).await;
        self.forward_agent_audio(now).await;
        self.flush_outboxes();
        let action = self.barge_in.poll(now, self.caller_speaking_since, self.ledger.provider_generating());
        self.apply_barge_in(action).await;
        let late = now.duration_since(scheduled) >= FRAME;
        self.send_frame(now, late).await;
        if self.phase == Phase::Active {
            if self.handover.ai_on_call() {
                let action = self.policies.poll(now);
                self.apply_policy(action).await;
            } else if self.closing.is_none() {
                // On hold: no silence check-ins; the hand-over's own timers run.
                let action = self.handover.poll(now);
                self.apply_handover(action).await;
            }
            self.poll_closing(now);
        }
    }

    /// Agent audio arrived while nothing was playing: send its first frame now rather
    /// than at the next tick.
    fn take_kick(&mut self) -> bool {
        self.outbound_pending.is_some()
            && !self.frame_playing
            && !self.barge_in.is_paused()
            && self.caller.can_send()
            && self.ending.is_none()
    }

    async fn send_frame(&mut self, now: Instant, late: bool) {
        // With a person on the call, the caller hears them (forwarded as it comes), not the playout.
        if !self.caller.can_send() || self.handover.with_human() {
            return;
        }
        let paused = self.barge_in.is_paused();
        let paced = if paused {
            self.playout.hold();
            PacedFrame::Silence
        } else {
            self.playout.next_frame()
        };
        let silent = paced.is_silence();
        self.frame_playing = !silent;
        let delivery = self.caller.send_agent_frame(self.playout.frame(), silent, now).await;
        if let Some(recording) = &mut self.recording {
            // Each tick takes its slot of the recording's right channel, sounding or not; a
            // WebRTC caller's packet is recorded as it was sent (no second encode).
            match (silent || delivery.is_none(), self.caller.sent_opus()) {
                (true, _) => recording.other_silence(now),
                (false, Some(packet)) => recording.other_opus(packet, now),
                (false, None) => recording.other(self.playout.frame(), now),
            }
        }
        let Some(delivery) = delivery else {
            // A silent frame the leg left out: nothing reached the caller.
            if !paused {
                self.agent_audible = self.ledger.awaiting_confirmation();
                self.update_speaking();
            }
            return;
        };
        crate::metrics::frame_sent(late);
        if !silent && self.awaiting_first_audio {
            self.awaiting_first_audio = false;
            if let Some((answered, _)) = self.answered {
                crate::metrics::first_agent_audio(now.saturating_duration_since(answered));
            }
        }
        if let PacedFrame::Audio { item, samples } = &paced {
            if let Some(received) = self.outbound_pending.take() {
                crate::metrics::outbound_latency(received.elapsed());
            }
            self.ledger.sent(item, *samples, delivery, now);
        }
        // A held item is still the one playing: the caller has not heard its end.
        if !paused {
            self.agent_audible = !silent || self.ledger.awaiting_confirmation();
        }
        self.after_heard().await;
    }

    // --- policies and tools ------------------------------------------------------------

    async fn apply_policy(&mut self, action: Option<PolicyAction>) {
        match action {
            None => {}
            Some(PolicyAction::CheckIn { text }) => {
                tracing::info!("caller silent: checking in");
                self.command(ProviderCommand::Say { text });
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
            self.interrupt_agent().await;
            self.ledger.expect_goodbye();
            self.command(ProviderCommand::Say { text });
        }
        self.closing = Some(Closing {
            reason,
            notice,
            awaiting_goodbye,
            goodbye_generated: false,
            deadline: Instant::now() + CLOSING_LIMIT,
        });
    }

    /// Hangs up a closing call once the goodbye was spoken and heard.
    fn poll_closing(&mut self, now: Instant) {
        let Some(closing) = &self.closing else { return };
        let played_out = self.playout.is_idle() && !self.ledger.awaiting_confirmation();
        let done = if closing.awaiting_goodbye {
            self.ledger.goodbye_heard() || (closing.goodbye_generated && played_out)
        } else {
            played_out
        };
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
                let speaking = !self.playout.is_idle();
                if let Some(PolicyAction::End { reason, notice, .. }) = self.policies.handle_end_call_tool() {
                    if !speaking {
                        let output =
                            serde_json::json!({"ok": true, "next": "Say a brief goodbye now; the call ends after it."});
                        self.command(ProviderCommand::ToolResult { call_id, name, output: output.to_string() });
                        self.ledger.expect_goodbye();
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
            tools::ESCALATE_TO_HUMAN if self.setup.escalation.is_some() => {
                self.escalate(call_id, name, &arguments).await
            }
            tools::TAKE_MESSAGE if self.setup.escalation.is_some() => self.take_message(call_id, name, &arguments),
            _ => {
                tracing::warn!(tool = %name, "the agent called a tool this call does not offer");
                let output = serde_json::json!({"error": format!("no tool named {name} is available")}).to_string();
                self.command(ProviderCommand::ToolResult { call_id, name, output });
            }
        }
    }

    // --- escalation to a human ---------------------------------------------------------

    /// `escalate_to_human`: the AI says the hold message (as the tool's answer), the caller
    /// is put on hold, and the escalation is stored and offered to the agents off this task.
    async fn escalate(&mut self, call_id: String, name: String, arguments: &str) {
        let Some(setup) = self.setup.escalation.clone() else { return };
        let reason = serde_json::from_str::<serde_json::Value>(arguments)
            .ok()
            .and_then(|v| v["reason"].as_str().map(|r| r.trim().chars().take(500).collect::<String>()))
            .unwrap_or_default();
        let output = match self.handover.request(Instant::now(), setup.timeout) {
            Err(handover::Refusal::AlreadyWaiting) => {
                serde_json::json!({"error": "the caller is already waiting for a team member"})
            }
            Err(handover::Refusal::NobodyCame) => serde_json::json!({
                "error": "no team member is available on this call; offer to take a message with take_message"
            }),
            Ok(()) => {
                tracing::info!(reason = %reason, "escalating to a human agent");
                let offset_ms = self.offset_ms();
                self.system_line(format!("Escalation to a human agent requested: {reason}"), offset_ms).await;
                let request = EscalationRequest {
                    company_id: self.setup.company_id,
                    call_id: self.setup.call_id,
                    reason,
                    source: self.setup.source,
                    caller: None,
                    transcript: Vec::new(),
                    timeout: setup.timeout,
                };
                let (store, escalations, results) =
                    (self.deps.store.clone(), self.deps.escalations.clone(), self.escalation_results.clone());
                tokio::spawn(
                    async move {
                        let opened = open_escalation(store, &escalations, request).await;
                        let id = opened.as_ref().ok().map(|pending| pending.id);
                        if results.send(EscalationResult::Opened(opened)).await.is_err()
                            && let Some(id) = id
                        {
                            // The call ended meanwhile: nobody is waiting any more.
                            close_unwanted(&escalations, id).await;
                        }
                    }
                    .in_current_span(),
                );
                serde_json::json!({
                    "ok": true,
                    "next": format!("Say exactly this and nothing else: \"{}\" Then stay silent: the caller is on hold for a team member.", setup.hold_message),
                })
            }
        };
        self.command(ProviderCommand::ToolResult { call_id, name, output: output.to_string() });
    }

    async fn handle_escalation_result(&mut self, result: EscalationResult) {
        match result {
            EscalationResult::Opened(Ok(pending)) => {
                if !matches!(self.handover.stage(), handover::Stage::Waiting { .. }) {
                    // The wait ended before the offer was stored: withdraw it.
                    let escalations = self.deps.escalations.clone();
                    let id = pending.id;
                    drop(pending);
                    tokio::spawn(async move { close_unwanted(&escalations, id).await }.in_current_span());
                    return;
                }
                tracing::info!(escalation_id = %pending.id, agents = pending.available_agents, "offered to the agents");
                // Agents may accept until the stored deadline: the wait ends there, not earlier.
                let left = Duration::from_millis(u64::try_from(pending.expires_at - now_ms()).unwrap_or(0));
                self.handover.extend_wait(Instant::now() + left);
                let nobody = pending.available_agents == 0;
                self.escalation = Some(pending);
                if nobody {
                    self.apply_handover(Some(HandoverAction::GiveUp)).await;
                }
            }
            EscalationResult::Opened(Err(err)) => {
                tracing::warn!(error = %err, "could not offer the call to the agents");
                if matches!(self.handover.stage(), handover::Stage::Waiting { .. }) {
                    self.apply_handover(Some(HandoverAction::GiveUp)).await;
                }
            }
            EscalationResult::AssignedLate => {
                // The caller was already told nobody is free; the agent's offer is withdrawn.
                tracing::info!("an agent accepted as the wait ran out; the call stays with the AI");
            }
        }
    }

    /// An agent accepted. Their media joins through the agent leg; until it does, the
    /// caller stays on hold, and an agent who never joins ends the wait like a timeout.
    async fn handle_agent_accepted(&mut self, accepted: crate::escalation::Accepted) {
        if !self.handover.accepted(Instant::now(), crate::escalation::JOIN_TOKEN_TTL) {
            return;
        }
        tracing::info!(escalation_id = %accepted.escalation_id, agent_id = %accepted.agent.id, "an agent accepted the call");
        let offset_ms = self.offset_ms();
        self.system_line(format!("{} accepted the call", accepted.agent.name), offset_ms).await;
    }

    async fn apply_handover(&mut self, action: Option<HandoverAction>) {
        match action {
            None => {}
            Some(HandoverAction::Remind(text)) => self.command(ProviderCommand::Say { text: text.to_owned() }),
            Some(HandoverAction::GiveUp) => {
                let joining = matches!(self.handover.stage(), handover::Stage::Joining { .. });
                self.handover.gave_up();
                if let Some(agent) = self.agent.take() {
                    // Their media never came up in time: the caller is not kept waiting.
                    close_agent(agent, agent_ended(None, "The call could not be joined in time."));
                }
                if let Some(pending) = self.escalation.take() {
                    let (escalations, results, id) =
                        (self.deps.escalations.clone(), self.escalation_results.clone(), pending.id);
                    drop(pending);
                    tokio::spawn(
                        async move {
                            let outcome = if joining {
                                escalations.resolve(id).await.map(|_| None)
                            } else {
                                escalations.timed_out(id).await.map(Some)
                            };
                            match outcome {
                                Ok(Some(CloseOutcome::Assigned(_))) => {
                                    let _ = escalations.resolve(id).await;
                                    let _ = results.send(EscalationResult::AssignedLate).await;
                                }
                                Ok(_) => {}
                                Err(err) => tracing::warn!(error = %err, "could not close the escalation"),
                            }
                        }
                        .in_current_span(),
                    );
                }
                tracing::info!("no agent took the call; the AI takes a message");
                let offset_ms = self.offset_ms();
                self.system_line("No agent was available".to_owned(), offset_ms).await;
                self.interrupt_agent().await;
                self.command(ProviderCommand::Say { text: handover::BUSY.to_owned() });
            }
        }
    }

    // --- a human agent on the call ------------------------------------------------------

    /// The accepted agent's console opened the call's media leg: it gets the conversation
    /// so far and signals its peer. Anyone else (no agent expected, another escalation,
    /// a second socket) is turned away.
    async fn handle_agent_attach(&mut self, attach: AgentAttach) {
        let expected = matches!(self.handover.stage(), handover::Stage::Joining { .. })
            && self.escalation.as_ref().is_some_and(|pending| pending.id == attach.join.escalation_id)
            && self.agent.is_none()
            && self.closing.is_none();
        if !expected {
            tracing::info!(agent_id = %attach.join.agent_id, "refused an agent's media leg the call does not wait for");
            let mut client = attach.client;
            client.send(ServerMessage::Error {
                code: "session_ended",
                message: "This call can no longer be joined.".into(),
                retryable: false,
            });
            client.send_last(agent_ended(None, "This call can no longer be joined."), FAREWELL_SEND_LIMIT).await;
            return;
        }
        let (input, output) = (self.setup.spec.input, self.setup.spec.output);
        let mut agent = match AgentLeg::new(self.deps.signaling.clone(), attach, input, output) {
            Ok(agent) => agent,
            Err(err) => {
                tracing::error!(error = %err, "could not set up the agent's media");
                return;
            }
        };
        tracing::info!(agent_id = %agent.join.agent_id, "the agent's console opened the call's media leg");
        // The conversation so far, as final lines, before anything new.
        for line in self.transcript.spoken() {
            agent.send(ServerMessage::Transcript {
                role: line.role,
                text: line.content.clone(),
                is_final: true,
                item_id: line.item_id.clone().unwrap_or_default(),
            });
        }
        agent.send(ServerMessage::State {
            state: WidgetState::Connecting,
            reason: None,
            duration_ms: None,
            message: None,
        });
        self.agent = Some(Box::new(agent));
    }

    async fn handle_agent_input(&mut self, input: AgentInput) {
        let now = Instant::now();
        match input {
            AgentInput::Leg(input) => {
                let Some(agent) = &mut self.agent else { return };
                match agent.handle(input, now).await {
                    LegEvent::Connected => self.agent_joined().await,
                    LegEvent::Audio => self.forward_agent_audio(now).await,
                    LegEvent::HungUp | LegEvent::Lost(_) | LegEvent::Failed { .. } => {
                        self.agent_left("The agent's connection was lost.").await
                    }
                    LegEvent::Nothing | LegEvent::Ringing | LegEvent::Played(_) | LegEvent::Dtmf(_) => {}
                }
            }
            AgentInput::Control(Some(Control::Mute(muted))) => {
                if let Some(agent) = &mut self.agent {
                    agent.muted = muted;
                }
            }
            AgentInput::Control(Some(Control::End | Control::Handback)) if !self.handover.with_human() => {
                // Before their media joined: the agent lets the call go; the AI takes a message.
                if let Some(agent) = self.agent.take() {
                    close_agent(agent, agent_ended(None, "You left the call before joining it."));
                }
                tracing::info!("the agent let the call go before joining it");
                self.apply_handover(Some(HandoverAction::GiveUp)).await;
            }
            AgentInput::Control(Some(Control::End)) => {
                tracing::info!("the agent hung up");
                self.end(EndReason::AgentHangup, None);
            }
            AgentInput::Control(Some(Control::Handback)) => self.hand_back().await,
            AgentInput::Control(Some(Control::ClientGone) | None) => {
                self.agent_left("The agent's console went away.").await
            }
            AgentInput::Transcriber(Some(ProviderEvent::UserTranscript { item_id, text, is_final })) => {
                self.human_line(&item_id, text, is_final).await
            }
            AgentInput::Transcriber(Some(ProviderEvent::Closed { .. }) | None) => {
                if let Some(agent) = &mut self.agent {
                    agent.transcriber_gone();
                }
            }
            AgentInput::Transcriber(Some(_)) => {}
            AgentInput::TranscriberReady(Ok(session)) => match &mut self.agent {
                Some(agent) => agent.transcriber_ready(session),
                None => {
                    let _ = session.commands.try_send(ProviderCommand::Close);
                }
            },
            AgentInput::TranscriberReady(Err(err)) => {
                tracing::warn!(error = %err, "the agent's voice cannot be transcribed: no transcription session");
            }
        }
    }

    /// The agent's media is up: caller and agent hear each other, the AI goes quiet (and
    /// only transcribes, where it can), whatever it was playing is cut at once.
    async fn agent_joined(&mut self) {
        if !self.handover.joined() {
            return;
        }
        self.interrupt_agent().await;
        if self.caps.transcribes_only {
            self.command(ProviderCommand::Respond(false));
        } else {
            self.command(ProviderCommand::CancelResponse);
        }
        self.caller.keep_opus(true);
        let Some((name, agent_id)) = self.agent.as_ref().map(|a| (a.join.agent_name.clone(), a.join.agent_id)) else {
            return;
        };
        tracing::info!("the agent joined the call");
        self.recorder.record(Record::HumanJoined { agent: agent_id, at: now_ms() }).await;
        let offset_ms = self.offset_ms();
        self.system_line(format!("{name} joined the call"), offset_ms).await;
        self.speaking = Who::None;
        self.send(ServerMessage::Speaking { who: Who::None });
        let transcribe = self.caps.transcribes_only && self.setup.spec.transcription;
        let Some(agent) = &mut self.agent else { return };
        agent.first_line = Some(self.transcript.next_seq());
        agent.send(ServerMessage::State { state: WidgetState::Active, reason: None, duration_ms: None, message: None });
        if transcribe {
            agent.open_transcriber(self.deps.providers.clone(), self.setup.model.clone(), &self.setup.spec);
        }
    }

    /// The agent's audio that arrived: forwarded to a WebRTC caller as it is, converted
    /// for a phone caller, recorded, and transcribed.
    async fn forward_agent_audio(&mut self, now: Instant) {
        let with_human = self.handover.with_human();
        let rate = self.setup.spec.output.rate();
        let Self { agent, caller, recording, .. } = self;
        let Some(agent) = agent.as_mut() else { return };
        let packet = agent.take_opus();
        agent.take_audio(now);
        let audible = with_human && !agent.muted;
        if let Some(packet) = packet.filter(|_| audible && caller.carries_opus()) {
            caller.forward_opus(&packet, now).await;
        }
        while let Some((frame, pcm)) = agent.next_frame(audible) {
            if !audible {
                continue;
            }
            if let Some(recording) = recording.as_mut() {
                recording.human(pcm, rate, now);
            }
            if !caller.carries_opus() {
                // A phone caller's leg converts it like the AI's audio.
                caller.send_agent_frame(frame, false, now).await;
            }
        }
    }

    /// A line of the agent's transcribed voice.
    async fn human_line(&mut self, item_id: &str, text: String, is_final: bool) {
        if text.is_empty() {
            return;
        }
        if !is_final {
            if let Some(agent) = &mut self.agent {
                agent.send(ServerMessage::Transcript {
                    role: TranscriptRole::HumanAgent,
                    text,
                    is_final,
                    item_id: item_id.to_owned(),
                });
            }
            return;
        }
        let offset_ms = self.offset_ms();
        let line = FinalLine { role: TranscriptRole::HumanAgent, text, item_id: Some(item_id.to_owned()), offset_ms };
        self.store_line(Some(line)).await;
    }

    /// The agent hands the caller back to the AI, which resumes with what was said
    /// meanwhile as context.
    async fn hand_back(&mut self) {
        let Some(agent) = self.agent.take() else { return };
        let name = agent.join.agent_name.clone();
        let first_line = agent.first_line;
        close_agent(agent, agent_ended(Some(EndReason::Transferred), "You handed the call back to the AI."));
        tracing::info!("the agent handed the call back to the AI");
        self.ai_back(first_line).await;
        let offset_ms = self.offset_ms();
        self.system_line(format!("{name} handed the call back to the AI"), offset_ms).await;
    }

    /// The agent's leg went away (network, the console closed) without hanging up: a
    /// caller already talking with them goes back to the AI; one still waiting keeps
    /// waiting until the join deadline.
    async fn agent_left(&mut self, why: &str) {
        let Some(agent) = self.agent.take() else { return };
        let (name, first_line) = (agent.join.agent_name.clone(), agent.first_line);
        tracing::info!(why, "the agent's leg ended");
        close_agent(agent, agent_ended(None, why));
        if self.handover.with_human() {
            self.ai_back(first_line).await;
            let offset_ms = self.offset_ms();
            self.system_line(format!("{name} left the call"), offset_ms).await;
        }
    }

    /// The AI takes the caller back from a human agent: it answers again, and is told
    /// what was said since the agent joined (lines from `first_line` on).
    async fn ai_back(&mut self, first_line: Option<i64>) {
        self.handover.handed_back();
        self.recorder.record(Record::HumanLeft { at: now_ms() }).await;
        self.caller.keep_opus(false);
        if let Some(pending) = self.escalation.take() {
            let (escalations, id) = (self.deps.escalations.clone(), pending.id);
            drop(pending);
            tokio::spawn(
                async move {
                    if let Err(err) = escalations.resolve(id).await {
                        tracing::warn!(error = %err, "could not resolve the escalation");
                    }
                }
                .in_current_span(),
            );
        }
        if self.caps.transcribes_only {
            self.command(ProviderCommand::Respond(true));
        }
        let said: Vec<String> = self
            .transcript
            .spoken()
            .filter(|line| first_line.is_some_and(|first| line.seq >= first))
            .map(|line| {
                let who = if line.role == TranscriptRole::User { "Caller" } else { "Team member" };
                format!("{who}: {}", line.content)
            })
            .collect();
        let said = if said.is_empty() { "(nothing was transcribed)".to_owned() } else { said.join("\n") };
        self.command(ProviderCommand::UserText {
            text: format!(
                "A team member talked with the caller and has handed the call back to you. What was said meanwhile:\n{said}\nContinue helping the caller from here."
            ),
        });
    }

    /// `take_message`: a ticket for the company's inbox, once no agent came.
    fn take_message(&mut self, call_id: String, name: String, arguments: &str) {
        if !self.handover.may_take_message() {
            let output = serde_json::json!({"error": "take_message is only for when no team member is available"});
            self.command(ProviderCommand::ToolResult { call_id, name, output: output.to_string() });
            return;
        }
        let args = serde_json::from_str::<serde_json::Value>(arguments).unwrap_or_default();
        let field = |key: &str| args[key].as_str().unwrap_or_default().trim().to_owned();
        let (caller_name, callback, message) = (field("name"), field("callbackNumber"), field("message"));
        self.tool_calls.insert(call_id.clone());
        let (escalations, results) = (self.deps.escalations.clone(), self.tool_results.clone());
        let (company, call) = (self.setup.company_id, self.setup.call_id);
        tokio::spawn(
            async move {
                let output = match escalations.take_message(company, Some(call), &caller_name, &callback, &message).await {
                    Ok(ticket) => serde_json::json!({
                        "ok": true,
                        "ticketId": ticket.id.to_string(),
                        "next": "Tell the caller their message was taken and a team member will call them back.",
                    }),
                    Err(crate::escalation::EscalationError::Invalid(err)) => {
                        serde_json::json!({"error": format!("{}: {}", err.field, err.message)})
                    }
                    Err(err) => {
                        tracing::warn!(error = %err, "could not store the caller's message");
                        serde_json::json!({"error": "the message could not be saved right now; apologise and ask the caller to call again later"})
                    }
                };
                let _ = results.send(ToolOutcome { call_id, name, output: output.to_string() }).await;
            }
            .in_current_span(),
        );
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
        });
    }

    /// Stores a system line (tool calls and results, key presses); the widget does not show these.
    async fn system_line(&mut self, text: String, offset_ms: i64) {
        let line = self.transcript.line(FinalLine { role: TranscriptRole::System, text, item_id: None, offset_ms });
        self.recorder.record(Record::Line(line)).await;
    }

    // --- the end ------------------------------------------------------------------------

    async fn finish(mut self) {
        let Ending { reason, error, notice } =
            self.ending.take().unwrap_or(Ending { reason: EndReason::Error, error: None, notice: None });
        // Agent lines not stored yet are stored as far as the caller heard them.
        self.ledger.finish();
        self.after_heard().await;
        for line in self.transcript.flush() {
            self.store_line(Some(line)).await;
        }
        if let Some(provider) = self.provider.take() {
            self.to_provider.flush(&provider.commands);
            let _ = provider.commands.try_send(ProviderCommand::Close);
        }
        let ended_at = now_ms();
        let duration_ms = self.answered.map_or(0, |(_, at)| ended_at - at);
        if let Some(recording) = self.recording.take() {
            recording.finish(Instant::now());
        }
        if let Some(pending) = self.escalation.take() {
            // A call that ends while waiting withdraws its offer from the agents.
            let joining = matches!(self.handover.stage(), handover::Stage::Joining { .. } | handover::Stage::WithHuman);
            let id = pending.id;
            drop(pending);
            let escalations = &self.deps.escalations;
            let close = async {
                if joining {
                    return escalations.resolve(id).await.map(|_| ());
                }
                match escalations.cancel(id).await? {
                    // An agent won as the caller left: their part is over before it began.
                    CloseOutcome::Assigned(_) => escalations.resolve(id).await.map(|_| ()),
                    _ => Ok(()),
                }
            };
            match tokio::time::timeout(ESCALATION_CLOSE_LIMIT, close).await {
                Ok(Ok(())) => {}
                Ok(Err(err)) => tracing::warn!(error = %err, "could not withdraw the escalation"),
                Err(_) => tracing::warn!("withdrawing the escalation timed out; the sweep closes it"),
            }
        }
        if let Some(agent) = self.agent.take() {
            // The caller hung up (or the call ended otherwise): the agent's part ends too.
            close_agent(agent, agent_ended(Some(reason), "The call ended."));
        }
        let CallSession { recorder, client, mut caller, .. } = self;
        recorder.record(Record::End { reason, ended_at, error: error.clone() }).await;
        recorder.finish().await;
        tracing::info!(reason = %reason, duration_ms, error = error.as_deref().unwrap_or(""), "call ended");
        crate::metrics::call_ended(reason.as_str());
        if let Some(client) = client {
            let ended = ServerMessage::State {
                state: WidgetState::Ended,
                reason: Some(reason),
                duration_ms: Some(duration_ms),
                message: notice,
            };
            // The last word may wait a little for room behind earlier messages, not forever.
            client.send_last(ended, FAREWELL_SEND_LIMIT).await;
        }
        // The row is final and the client told; now the caller's channel is hung up (on a
        // phone line the gateway ends the call through the carrier when it ends it).
        let by_gateway = !matches!(reason, EndReason::CallerHangup | EndReason::NetworkLost);
        caller.close(reason, by_gateway).await;
    }
}

/// Ends an agent's leg off the session's task: closing a peer and waiting for room for the
/// console's last message must not hold up the caller's media.
fn close_agent(agent: Box<AgentLeg>, last: ServerMessage) {
    tokio::spawn(agent.close(last).in_current_span());
}

/// The last message of an agent's leg: `state: ended`, with `reason` where there is one
/// (`agent_hangup`, `transferred` after a hand-back, or how the call ended).
fn agent_ended(reason: Option<EndReason>, message: &str) -> ServerMessage {
    ServerMessage::State { state: WidgetState::Ended, reason, duration_ms: None, message: Some(message.to_owned()) }
}

/// What the agent says first when the call is answered: the recording notice, then the
/// greeting, as one utterance (None when there is neither).
fn opening_words(notice: Option<&str>, greeting: &str) -> Option<String> {
    match (notice.map(str::trim).filter(|n| !n.is_empty()), greeting.trim()) {
        (None, "") => None,
        (None, greeting) => Some(greeting.to_owned()),
        (Some(notice), "") => Some(notice.to_owned()),
        (Some(notice), greeting) => Some(format!("{notice} {greeting}")),
    }
}

#[cfg(test)]
mod tests {
    use super::opening_words;

    #[test]
    fn the_recording_notice_comes_before_the_greeting_in_one_utterance() {
        assert_eq!(
            opening_words(Some("This call may be recorded."), "Hi, how can I help?").as_deref(),
            Some("This call may be recorded. Hi, how can I help?")
        );
        assert_eq!(
            opening_words(Some("This call may be recorded."), " ").as_deref(),
            Some("This call may be recorded.")
        );
        assert_eq!(opening_words(None, "Hi!").as_deref(), Some("Hi!"));
        assert_eq!(opening_words(None, "  "), None);
    }
}
