//! Escalation to a human agent: offering a waiting call to the company's available agents,
//! the one agent who accepts, and the ticket taken when nobody does.
//!
//! - [`bus`]: the [`AgentBus`] trait and its engines (Postgres `LISTEN/NOTIFY`, in-process)
//! - [`console`]: what one agent console socket is told (pure), and its wire messages
//! - [`Escalations`] (this file, in `AppState`): the seam between the call session, the
//!   agent API and the database
//!
//! # The seam the call session uses
//!
//! A session whose model called `escalate_to_human`:
//!
//! 1. [`Escalations::open`] with the call, the reason, what the agents should see (source,
//!    caller, transcript so far) and the chatbot's timeout. It stores a `pending`
//!    escalation recording *this* node and its public URL, publishes the offer, and returns
//!    a [`PendingEscalation`]: its id, how many agents are available right now (0: say
//!    "All our agents are busy" at once), the deadline, and
//!    [`PendingEscalation::accepted`], which resolves when an agent accepts.
//! 2. The session `select!`s on `accepted()`, its own timer (the deadline) and its edges:
//!    - accepted → hand the call over; the agent's media leg arrives at
//!      `/api/agent/call/{callId}/ws?token=…` on this node, and the leg checks the token
//!      with [`Escalations::verify_join`];
//!    - the timer fires → [`Escalations::timed_out`]. Its [`CloseOutcome`] settles a race
//!      with an accept at the last moment: `Closed` / `AlreadyClosed` → take a message
//!      ([`Escalations::take_message`]); `Assigned` → an agent won after all: hand over;
//!    - the caller hangs up → [`Escalations::cancel`] (same outcomes; `Assigned` means the
//!      agent's leg must be told the call ended).
//! 3. When the agent's part is over (hand-back, or the call ends with the agent on it) →
//!    [`Escalations::resolve`].
//!
//! Dropping the `PendingEscalation` stops listening for its acceptance; nothing else.
//!
//! # Across nodes
//!
//! The agent who accepts may be connected to any node. The accepting node wins the row
//! (`UPDATE … WHERE status = 'pending'`, see `store::escalations`), then publishes
//! [`AgentEvent::Taken`] on the bus. Every node's listener task turns bus events into
//! [`AgentNotice`]s for its agent sockets, and the node holding the call (the one whose
//! session registered a `PendingEscalation`) delivers the acceptance to that session. The
//! database stays the truth: a lost notification costs at most the wait until the
//! session's own deadline, where `timed_out` answers `Assigned`.
//!
//! Agent presence is stored (`agent_presence`, one row per console socket, refreshed by
//! the socket), so "is anyone available" is one query for the whole cluster.

pub mod bus;
pub mod console;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{broadcast, oneshot};
use tokio_util::sync::CancellationToken;

pub use bus::{AgentBus, AgentEvent, BusError, InProcessBus, PgBus};

use crate::crypto;
use crate::domain::CallSource;
use crate::ids::{CallId, CompanyId, EscalationId, UserId};
use crate::settings::FieldError;
pub use crate::store::{AcceptRefusal, AssignedAgent, CloseOutcome, Escalation, OfferLine};
use crate::store::{CancelReason, EscalationStatus, NewEscalation, NewTicket, Store, StoreError, Ticket};
use crate::time::{UnixMs, now_ms};

/// How long an accepting agent's join token opens the call's media WebSocket.
pub const JOIN_TOKEN_TTL: Duration = Duration::from_secs(120);
/// How often each node closes the escalations nobody accepted in time.
const SWEEP_EVERY: Duration = Duration::from_secs(5);
/// Most transcript text carried with an offer (the latest lines are kept).
pub const MAX_OFFER_TRANSCRIPT_BYTES: usize = 64 * 1024;

/// Errors of the escalation service.
#[derive(Debug, thiserror::Error)]
pub enum EscalationError {
    /// The database failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The company has no such call.
    #[error("the company has no such call")]
    NoSuchCall,
    /// The escalation belongs to no call (a chat's): there is no media to join.
    #[error("the escalation has no call")]
    NotACall,
    /// A message to take is malformed (the `take_message` tool's arguments).
    #[error("{}: {}", .0.field, .0.message)]
    Invalid(FieldError),
}

/// What the session asks for when its model called `escalate_to_human`.
#[derive(Debug, Clone)]
pub struct EscalationRequest {
    pub company_id: CompanyId,
    pub call_id: CallId,
    /// The model's `reason`.
    pub reason: String,
    pub source: CallSource,
    /// The caller's number or page.
    pub caller: Option<String>,
    /// The conversation so far (cut to its last [`MAX_OFFER_TRANSCRIPT_BYTES`]).
    pub transcript: Vec<OfferLine>,
    /// The chatbot's `escalationTimeoutSeconds`.
    pub timeout: Duration,
}

/// An agent accepted: delivered to the session holding the call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Accepted {
    pub escalation_id: EscalationId,
    pub call_id: CallId,
    pub agent: AssignedAgent,
}

/// The agent an accepted escalation's join token belongs to (the media leg's check).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentJoin {
    pub escalation_id: EscalationId,
    pub agent_id: UserId,
    pub agent_name: String,
}

/// What an accepting agent gets: the escalation, and how to join the call's media.
#[derive(Debug, Clone)]
pub struct Acceptance {
    pub escalation: Escalation,
    pub call_id: CallId,
    /// `ws(s)://<holding node>/api/agent/call/{callId}/ws?token=…`
    pub ws_url: String,
    pub token: String,
    pub expires_at: UnixMs,
}

/// What this node's agent sockets are told.
#[derive(Debug, Clone)]
pub enum AgentNotice {
    /// A new offer, read from the database once per node.
    Offered(Arc<Escalation>),
    /// Someone accepted it.
    Taken { company_id: CompanyId, escalation_id: EscalationId, agent_id: UserId },
    /// It closed without an agent.
    Cancelled { company_id: CompanyId, escalation_id: EscalationId },
}

impl AgentNotice {
    /// The company whose agents it concerns.
    pub fn company_id(&self) -> CompanyId {
        match self {
            Self::Offered(escalation) => escalation.company_id,
            Self::Taken { company_id, .. } | Self::Cancelled { company_id, .. } => *company_id,
        }
    }
}

/// Sessions of this node waiting for an agent. A std mutex: held only to insert or remove
/// one entry, never across an await.
type Waiters = Mutex<HashMap<EscalationId, oneshot::Sender<Accepted>>>;

/// A waiting escalation, held by the session of its call.
#[derive(Debug)]
pub struct PendingEscalation {
    pub id: EscalationId,
    /// Agents of the company available (on any node) when it was offered.
    pub available_agents: i64,
    /// Until when an agent may accept.
    pub expires_at: UnixMs,
    /// Taken once it has resolved (a oneshot must not be polled again after that).
    accepted: Option<oneshot::Receiver<Accepted>>,
    waiters: Arc<Waiters>,
}

impl PendingEscalation {
    /// Resolves when an agent accepts; never if none does, so select it against the
    /// deadline. Cancel-safe.
    /// Resolves at most once: after an acceptance it waits forever.
    pub async fn accepted(&mut self) -> Accepted {
        let Some(receiver) = self.accepted.as_mut() else { return std::future::pending().await };
        let result = receiver.await;
        self.accepted = None;
        match result {
            Ok(accepted) => accepted,
            // The service is gone (shutting down): nobody will accept any more.
            Err(_) => std::future::pending().await,
        }
    }
}

impl Drop for PendingEscalation {
    fn drop(&mut self) {
        lock(&self.waiters).remove(&self.id);
    }
}

fn lock(waiters: &Waiters) -> std::sync::MutexGuard<'_, HashMap<EscalationId, oneshot::Sender<Accepted>>> {
    waiters.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// The escalation service of this node (in `AppState`).
pub struct Escalations {
    store: Store,
    bus: Arc<dyn AgentBus>,
    /// This node's public URL (`GATEWAY_PUBLIC_URL`), where agents of calls held here join.
    public_base: Arc<str>,
    node_id: Arc<str>,
    waiters: Arc<Waiters>,
    notices: broadcast::Sender<AgentNotice>,
}

impl Escalations {
    /// Starts the service: its task turns bus events into notices for this node's agent
    /// sockets and acceptances for this node's waiting sessions, and closes escalations
    /// nobody accepted in time, until `shutdown`.
    pub fn start(
        store: Store,
        bus: Arc<dyn AgentBus>,
        node_id: Arc<str>,
        public_base: Arc<str>,
        shutdown: CancellationToken,
    ) -> Arc<Self> {
        let service = Arc::new(Self {
            store,
            bus,
            public_base,
            node_id,
            waiters: Arc::default(),
            notices: broadcast::channel(1024).0,
        });
        let events = service.bus.subscribe();
        tokio::spawn(service.clone().run(events, shutdown));
        service
    }

    async fn run(self: Arc<Self>, mut events: broadcast::Receiver<AgentEvent>, shutdown: CancellationToken) {
        let mut sweep = tokio::time::interval(SWEEP_EVERY);
        sweep.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => break,
                event = events.recv() => match event {
                    Ok(event) => self.handle_event(event).await,
                    Err(broadcast::error::RecvError::Lagged(missed)) => {
                        tracing::warn!(missed, "agent bus: events missed by a slow node task");
                    }
                    Err(broadcast::error::RecvError::Closed) => break,
                },
                _ = sweep.tick() => self.sweep().await,
            }
        }
    }

    async fn handle_event(&self, event: AgentEvent) {
        match event {
            AgentEvent::Offered { company_id, escalation_id } => {
                match self.store.escalation(company_id, escalation_id).await {
                    Ok(Some(escalation)) if escalation.status == EscalationStatus::Pending => {
                        let _ = self.notices.send(AgentNotice::Offered(Arc::new(escalation)));
                    }
                    Ok(_) => {}
                    Err(err) => tracing::warn!(error = %err, %escalation_id, "could not read an offered escalation"),
                }
            }
            AgentEvent::Taken { company_id, escalation_id, call_id, agent_id, agent_name } => {
                let _ = self.notices.send(AgentNotice::Taken { company_id, escalation_id, agent_id });
                if let Some(waiter) = lock(&self.waiters).remove(&escalation_id) {
                    let agent = AssignedAgent { id: agent_id, name: agent_name };
                    let _ = waiter.send(Accepted { escalation_id, call_id, agent });
                }
            }
            AgentEvent::Cancelled { company_id, escalation_id } => {
                let _ = self.notices.send(AgentNotice::Cancelled { company_id, escalation_id });
            }
        }
    }

    async fn sweep(&self) {
        match self.store.expire_escalations(now_ms()).await {
            Ok(expired) => {
                for escalation in expired {
                    tracing::info!(escalation_id = %escalation.id, company_id = %escalation.company_id, "escalation timed out");
                    self.publish(AgentEvent::Cancelled {
                        company_id: escalation.company_id,
                        escalation_id: escalation.id,
                    })
                    .await;
                }
            }
            Err(err) => tracing::warn!(error = %err, "could not close expired escalations"),
        }
    }

    /// Publishes on the bus; a failure is logged (the database holds the truth).
    async fn publish(&self, event: AgentEvent) {
        if let Err(err) = self.bus.publish(&event).await {
            tracing::warn!(error = %err, "could not publish an agent event");
        }
    }

    /// What this node's agent sockets must hear, from now on.
    pub fn notices(&self) -> broadcast::Receiver<AgentNotice> {
        self.notices.subscribe()
    }

    /// Offers the call to the company's agents (see the module doc).
    pub async fn open(&self, request: EscalationRequest) -> Result<PendingEscalation, EscalationError> {
        let now = now_ms();
        let expires_at = now + i64::try_from(request.timeout.as_millis()).unwrap_or(i64::MAX / 2);
        let id = EscalationId::new();
        // Listen for the acceptance before anyone can see the offer.
        let (tx, accepted) = oneshot::channel();
        lock(&self.waiters).insert(id, tx);
        let mut pending = PendingEscalation {
            id,
            available_agents: 0,
            expires_at,
            accepted: Some(accepted),
            waiters: self.waiters.clone(),
        };
        let new = NewEscalation {
            id,
            company_id: request.company_id,
            call_id: request.call_id,
            reason: request.reason,
            source: request.source,
            caller: request.caller,
            transcript: latest_lines(request.transcript, MAX_OFFER_TRANSCRIPT_BYTES),
            node_id: self.node_id.to_string(),
            node_url: self.public_base.to_string(),
            expires_at,
        };
        self.store.open_escalation(new, now).await?.ok_or(EscalationError::NoSuchCall)?;
        pending.available_agents = self.store.available_agents(request.company_id, now).await?;
        tracing::info!(escalation_id = %id, call_id = %request.call_id, company_id = %request.company_id,
            available_agents = pending.available_agents, "escalation offered");
        self.publish(AgentEvent::Offered { company_id: request.company_id, escalation_id: id }).await;
        Ok(pending)
    }

    /// The call ended while its escalation waited.
    pub async fn cancel(&self, id: EscalationId) -> Result<CloseOutcome, EscalationError> {
        self.close(id, CancelReason::CallEnded).await
    }

    /// Nobody accepted before the deadline (the session's timer fired).
    pub async fn timed_out(&self, id: EscalationId) -> Result<CloseOutcome, EscalationError> {
        self.close(id, CancelReason::TimedOut).await
    }

    async fn close(&self, id: EscalationId, reason: CancelReason) -> Result<CloseOutcome, EscalationError> {
        lock(&self.waiters).remove(&id);
        let outcome = self.store.cancel_escalation(id, reason, now_ms()).await?;
        if let CloseOutcome::Closed(escalation) = &outcome {
            tracing::info!(escalation_id = %id, reason = %reason, "escalation closed without an agent");
            self.publish(AgentEvent::Cancelled { company_id: escalation.company_id, escalation_id: id }).await;
        }
        Ok(outcome)
    }

    /// The agent's part is over (hand-back, or the call ended). False if it was not assigned.
    pub async fn resolve(&self, id: EscalationId) -> Result<bool, EscalationError> {
        Ok(self.store.resolve_escalation(id, now_ms()).await?)
    }

    /// The agent whose join token for `call_id` this is, while it is valid.
    pub async fn verify_join(&self, call_id: CallId, token: &str) -> Result<Option<AgentJoin>, EscalationError> {
        let found = self.store.joinable_escalation(call_id, &crypto::token_hash(token), now_ms()).await?;
        Ok(found.map(|(escalation, agent)| AgentJoin {
            escalation_id: escalation.id,
            agent_id: agent.id,
            agent_name: agent.name,
        }))
    }

    /// An agent of `company` accepts (the agent API). The winner gets a join token for the
    /// media WebSocket of the node holding the call; every node hears it was taken.
    pub async fn accept(
        &self,
        company: CompanyId,
        id: EscalationId,
        agent: UserId,
    ) -> Result<Result<Acceptance, AcceptRefusal>, EscalationError> {
        let token = crypto::new_token("aj_");
        let now = now_ms();
        let expires_at = now + JOIN_TOKEN_TTL.as_millis() as i64;
        let escalation =
            match self.store.accept_escalation(company, id, agent, &crypto::token_hash(&token), expires_at, now).await?
            {
                Ok(escalation) => escalation,
                Err(refusal) => return Ok(Err(refusal)),
            };
        let call_id = escalation.call_id.ok_or(EscalationError::NotACall)?;
        let name = match self.store.assigned_agent(agent).await? {
            Some(assigned) => assigned.name,
            None => String::new(),
        };
        tracing::info!(escalation_id = %id, call_id = %call_id, company_id = %company, agent_id = %agent, "escalation accepted");
        let agent_name = name.chars().take(bus::MAX_AGENT_NAME_CHARS).collect();
        self.publish(AgentEvent::Taken {
            company_id: company,
            escalation_id: id,
            call_id,
            agent_id: agent,
            agent_name,
        })
        .await;
        let node_url = escalation.node_url.clone().unwrap_or_else(|| self.public_base.to_string());
        Ok(Ok(Acceptance { ws_url: join_url(&node_url, call_id, &token), call_id, escalation, token, expires_at }))
    }

    /// The caller left a message (the `take_message` tool): an open ticket, with its
    /// `ticket.created` event. Malformed arguments are `Invalid` with the field at fault.
    pub async fn take_message(
        &self,
        company: CompanyId,
        call_id: Option<CallId>,
        name: &str,
        callback_number: &str,
        message: &str,
    ) -> Result<Ticket, EscalationError> {
        let new = new_ticket(call_id, name, callback_number, message).map_err(EscalationError::Invalid)?;
        let ticket = self.store.create_ticket(company, new, now_ms()).await?;
        tracing::info!(ticket_id = %ticket.id, company_id = %company, "message taken");
        Ok(ticket)
    }
}

/// The join URL of a call held by the node at `node_url`: the same scheme change and token
/// parameter as the widget's `wsUrl`.
pub fn join_url(node_url: &str, call_id: CallId, token: &str) -> String {
    let base = node_url.trim_end_matches('/').replacen("http", "ws", 1);
    format!("{base}/api/agent/call/{call_id}/ws?token={token}")
}

/// Longest `name` of a message.
pub const MAX_TICKET_NAME_CHARS: usize = 200;
/// Longest `callbackNumber` of a message.
pub const MAX_CALLBACK_CHARS: usize = 64;
/// Longest `message`.
pub const MAX_TICKET_MESSAGE_CHARS: usize = 4000;

/// Checks a message's fields (trimmed): `message` 1–4000 characters, `name` at most 200,
/// `callbackNumber` at most 64, no control characters but line breaks in the message.
pub fn new_ticket(
    call_id: Option<CallId>,
    name: &str,
    callback_number: &str,
    message: &str,
) -> Result<NewTicket, FieldError> {
    let check = |field: &'static str, value: &str, max: usize, lines: bool| {
        let value = value.trim();
        if value.chars().count() > max {
            return Err(FieldError { field, message: format!("must be at most {max} characters") });
        }
        if value.chars().any(|c| c.is_control() && !(lines && matches!(c, '\n' | '\r' | '\t'))) {
            return Err(FieldError { field, message: "must not contain control characters".into() });
        }
        Ok(value.to_owned())
    };
    let message = check("message", message, MAX_TICKET_MESSAGE_CHARS, true)?;
    if message.is_empty() {
        return Err(FieldError { field: "message", message: "must not be empty".into() });
    }
    Ok(NewTicket {
        call_id,
        name: check("name", name, MAX_TICKET_NAME_CHARS, false)?,
        callback_number: check("callbackNumber", callback_number, MAX_CALLBACK_CHARS, false)?,
        message,
    })
}

/// The latest lines whose text fits in `max_bytes`, in order.
fn latest_lines(lines: Vec<OfferLine>, max_bytes: usize) -> Vec<OfferLine> {
    let mut total = 0;
    let keep = lines
        .iter()
        .rev()
        .take_while(|line| {
            total += line.text.len();
            total <= max_bytes
        })
        .count();
    let skip = lines.len() - keep;
    lines.into_iter().skip(skip).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::TranscriptRole;
    use crate::settings::CompanySettings;
    use crate::store::testing::{call_chatbot, sqlite_store};
    use crate::store::{NewCall, PresenceStatus, Role};

    fn line(text: &str) -> OfferLine {
        OfferLine { role: TranscriptRole::User, text: text.into() }
    }

    #[test]
    fn an_offer_keeps_the_latest_lines_that_fit() {
        let lines = vec![line("aaaa"), line("bb"), line("cc")];
        assert_eq!(latest_lines(lines.clone(), 100), lines);
        assert_eq!(latest_lines(lines.clone(), 5), vec![line("bb"), line("cc")]);
        assert_eq!(latest_lines(lines, 1), vec![]);
    }

    #[test]
    fn join_urls_use_the_holding_nodes_websocket_scheme() {
        let call = CallId::new();
        assert_eq!(
            join_url("https://a.voice.example.com/", call, "aj_x"),
            format!("wss://a.voice.example.com/api/agent/call/{call}/ws?token=aj_x")
        );
        assert!(join_url("http://127.0.0.1:8080", call, "t").starts_with("ws://127.0.0.1:8080/api/agent/call/"));
    }

    #[test]
    fn a_message_needs_text_and_bounded_fields() {
        let ok = new_ticket(None, " Ada ", "+1 555 0100", "Call me back\nplease").unwrap();
        assert_eq!((ok.name.as_str(), ok.message.as_str()), ("Ada", "Call me back\nplease"));
        let field =
            |name: &str, number: &str, message: &str| new_ticket(None, name, number, message).unwrap_err().field;
        assert_eq!(field("Ada", "1", "   "), "message");
        assert_eq!(field("Ada", "1", &"x".repeat(4001)), "message");
        assert_eq!(field(&"x".repeat(201), "1", "hi"), "name");
        assert_eq!(field("Ada", &"1".repeat(65), "hi"), "callbackNumber");
        assert_eq!(field("Ada\u{7}", "1", "hi"), "name");
        assert!(new_ticket(None, "", "", "hi").is_ok(), "name and number may be unknown");
    }

    async fn call_of(store: &Store, company: CompanyId) -> CallId {
        let bot = call_chatbot(store, company).await;
        let call = NewCall {
            company_id: company,
            chatbot_id: bot.id,
            source: CallSource::Web,
            is_test: false,
            caller: Some("https://shop.example.com".into()),
            provider: "openai".into(),
            model_id: "gpt-realtime".into(),
            node_id: "node-a".into(),
            token_hash: None,
            token_expires_at: None,
            integration_account_id: None,
            external_id: None,
        };
        store.create_call(call).await.unwrap().id
    }

    fn request(company: CompanyId, call: CallId, timeout: Duration) -> EscalationRequest {
        EscalationRequest {
            company_id: company,
            call_id: call,
            reason: "asked for a person".into(),
            source: CallSource::Web,
            caller: Some("https://shop.example.com".into()),
            transcript: vec![line("I want a human.")],
            timeout,
        }
    }

    #[tokio::test]
    async fn the_session_hears_the_accept_and_the_agent_gets_a_join_token_for_this_node() {
        let (store, _dir) = sqlite_store().await;
        let company = store.create_company("Acme", &CompanySettings::default()).await.unwrap().id;
        let agent = store.create_user("ann@acme.test", None, Role::SupportAgent, &[company]).await.unwrap().id;
        store
            .set_presence(crate::ids::PresenceId::new(), agent, company, "node-a", PresenceStatus::Available, now_ms())
            .await
            .unwrap();
        let call = call_of(&store, company).await;
        let shutdown = CancellationToken::new();
        let service = Escalations::start(
            store.clone(),
            Arc::new(InProcessBus::new()),
            "node-a".into(),
            "https://a.example.com".into(),
            shutdown.clone(),
        );
        let mut notices = service.notices();
        let mut pending = service.open(request(company, call, Duration::from_secs(30))).await.unwrap();
        assert_eq!(pending.available_agents, 1);
        let offered = tokio::time::timeout(Duration::from_secs(5), notices.recv()).await.unwrap().unwrap();
        assert!(
            matches!(offered, AgentNotice::Offered(e) if e.id == pending.id && e.transcript == vec![line("I want a human.")])
        );

        let acceptance = service.accept(company, pending.id, agent).await.unwrap().unwrap();
        assert!(acceptance.ws_url.starts_with(&format!("wss://a.example.com/api/agent/call/{call}/ws?token=aj_")));
        let accepted = tokio::time::timeout(Duration::from_secs(5), pending.accepted()).await.unwrap();
        assert_eq!(accepted.agent, AssignedAgent { id: agent, name: "ann@acme.test".into() });
        let joined = service.verify_join(call, &acceptance.token).await.unwrap().unwrap();
        assert_eq!((joined.escalation_id, joined.agent_id), (pending.id, agent));
        assert!(service.verify_join(call, "aj_forged").await.unwrap().is_none());
        assert_eq!(service.accept(company, pending.id, agent).await.unwrap().unwrap_err(), AcceptRefusal::AlreadyTaken);
        assert!(matches!(service.timed_out(pending.id).await.unwrap(), CloseOutcome::Assigned(_)));
        assert!(service.resolve(pending.id).await.unwrap());
        shutdown.cancel();
    }

    #[tokio::test]
    async fn a_call_that_ends_while_waiting_withdraws_its_offer() {
        let (store, _dir) = sqlite_store().await;
        let company = store.create_company("Acme", &CompanySettings::default()).await.unwrap().id;
        let call = call_of(&store, company).await;
        let shutdown = CancellationToken::new();
        let service = Escalations::start(
            store.clone(),
            Arc::new(InProcessBus::new()),
            "n".into(),
            "http://n".into(),
            shutdown.clone(),
        );
        let mut notices = service.notices();
        let pending = service.open(request(company, call, Duration::from_secs(30))).await.unwrap();
        assert_eq!(pending.available_agents, 0, "nobody is available: the session says so at once");
        let _ = notices.recv().await.unwrap();
        assert!(matches!(service.cancel(pending.id).await.unwrap(), CloseOutcome::Closed(_)));
        let cancelled = tokio::time::timeout(Duration::from_secs(5), notices.recv()).await.unwrap().unwrap();
        assert!(matches!(cancelled, AgentNotice::Cancelled { escalation_id, .. } if escalation_id == pending.id));
        assert_eq!(service.cancel(pending.id).await.unwrap(), CloseOutcome::AlreadyClosed);
        let other = service.open(request(CompanyId::new(), call, Duration::from_secs(30))).await;
        assert!(matches!(other, Err(EscalationError::NoSuchCall)), "another company's call");
        shutdown.cancel();
    }
}
