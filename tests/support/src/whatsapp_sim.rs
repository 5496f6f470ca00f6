//! A WhatsApp Calling simulator: Meta's side of user-initiated calls, faithful to
//! shared/protocols/whatsapp-calling.md.
//!
//! [`WhatsAppSim`] owns a [`MockGraph`] (the gateway's `META_GRAPH_BASE_URL`) and posts
//! signed webhooks to the gateway's callback URL ([`WebhookTarget`]). [`WhatsAppSim::place_call`]
//! is a WhatsApp user calling the business: a [`MetaPeer`] makes the ICE-lite offer, the
//! `connect` webhook carries it, and a task per call plays Meta from then on:
//!
//! - `pre_accept` → the answer is applied (ICE and DTLS may start; nothing is sent);
//! - `accept` → the user's media starts, as soon as ICE and DTLS are up (speech queued with
//!   [`WhatsAppCall::say`], key presses with [`WhatsAppCall::press_keys`], silence otherwise);
//! - no RTP from the business within `no_media_timeout` (20 s) of accept → `terminate`
//!   webhook FAILED with error 138021 (the captured shape);
//! - no accept within `no_answer_timeout` → `terminate` FAILED (no times);
//! - `reject` → `terminate` FAILED; business `terminate` → `terminate` COMPLETED (with start,
//!   end and duration when it had been accepted);
//! - [`WhatsAppCall::hang_up`] → the user hangs up: `terminate` COMPLETED.
//!
//! Webhook deliveries that do not get a 200 are retried (Meta delivers at least once). Tests
//! can also deliver duplicates, stale or out-of-order events, badly signed or oversized
//! bodies through [`WhatsAppCall`] and [`WebhookSender`].
//!
//! Statuses not documented by Meta and chosen here: a rejected or unanswered call ends
//! `FAILED` without times (Meta's docs list only `COMPLETED` and `FAILED`).

use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use base64::Engine;
use serde::Serialize;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::caller::Heard;
use crate::graph_calls::{AppliedAction, CallAction};
use crate::meta_peer::{MetaPeer, MetaPeerConfig, MetaRoles};
use crate::mock_graph::{GraphCallHandle, GraphConfig, GraphPhoneNumber, MockGraph};
use crate::recorder::{Recorder, WaitTimeout};
use crate::whatsapp_webhook::{
    CallError, CallParties, WebhookEnvelope, WebhookResponse, WebhookSender, WebhookTarget, meta_json, unix_now,
};

/// How the simulated Meta behaves.
#[derive(Debug, Clone)]
pub struct WhatsAppSimConfig {
    /// The business number and the caller every call uses unless told otherwise.
    pub parties: CallParties,
    /// The access token the Graph mock accepts for `parties.phone_number_id`.
    pub access_token: String,
    /// After accept, how long the user's client waits for the business's first RTP (Meta: 20 s).
    pub no_media_timeout: Duration,
    /// How long a call rings without accept before Meta gives up (Meta: about 30–60 s).
    pub no_answer_timeout: Duration,
    /// Deliveries of one webhook, the first included, while the gateway does not answer 200.
    pub delivery_attempts: u32,
    /// Pause between two deliveries of one webhook.
    pub delivery_backoff: Duration,
    /// Where Meta's WebRTC peers bind.
    pub peer: MetaPeerConfig,
}

/// The access token the simulator's Graph mock accepts by default.
pub const SIM_ACCESS_TOKEN: &str = "test-whatsapp-token";

impl Default for WhatsAppSimConfig {
    fn default() -> Self {
        Self {
            parties: CallParties::doc_sample(),
            access_token: SIM_ACCESS_TOKEN.into(),
            no_media_timeout: Duration::from_secs(20),
            no_answer_timeout: Duration::from_secs(45),
            delivery_attempts: 3,
            delivery_backoff: Duration::from_secs(1),
            peer: MetaPeerConfig::default(),
        }
    }
}

/// One delivery attempt of a webhook.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Delivery {
    pub call_id: String,
    /// `connect`, `terminate`, …
    pub event: String,
    /// 1 for the first try.
    pub attempt: u32,
    /// The gateway's status; `None` when it could not be reached or took too long.
    pub status: Option<u16>,
    #[serde(skip)]
    pub at: Instant,
}

/// Why Meta ended a call, and what it told the business.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CallOutcome {
    /// The user hung up (terminate COMPLETED).
    UserHungUp,
    /// The business terminated the call (terminate COMPLETED or FAILED if never accepted).
    BusinessTerminated,
    /// The business rejected the call (terminate FAILED).
    BusinessRejected,
    /// Accepted, but no RTP from the business in time (terminate FAILED, 138021).
    NoMedia,
    /// Never accepted in time (terminate FAILED).
    NoAnswer,
}

/// How a call ended.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CallEnd {
    pub outcome: CallOutcome,
    /// `COMPLETED` or `FAILED`, as sent in the terminate webhook.
    pub status: String,
    pub error_code: Option<u32>,
    #[serde(skip)]
    pub at: Instant,
}

#[derive(Debug, Default)]
struct CallState {
    accepted_at: Option<Instant>,
    accepted_unix: Option<u64>,
    ended: Option<CallEnd>,
}

/// A simulated Meta: Graph mock, webhook sender, calls.
pub struct WhatsAppSim {
    config: WhatsAppSimConfig,
    graph: MockGraph,
    target: Mutex<Option<WebhookTarget>>,
    deliveries: Arc<Recorder<Vec<Delivery>>>,
}

/// What a placed call does at first.
#[derive(Debug, Clone, Default)]
pub struct PlaceCall {
    /// The caller (defaults to the configured user).
    pub parties: Option<CallParties>,
    /// The user hangs up at once and Meta's terminate overtakes the connect: the terminate is
    /// delivered first, then the connect (a retried connect arriving late).
    pub terminate_before_connect: bool,
}

impl WhatsAppSim {
    /// Starts the Graph mock (serving `parties.phone_number_id` with `access_token`).
    pub async fn start(config: WhatsAppSimConfig) -> Self {
        let mut number = GraphPhoneNumber::new(config.parties.phone_number_id.clone(), config.access_token.clone());
        number.display_phone_number = format!("+{}", config.parties.business_number);
        let graph = MockGraph::start(GraphConfig { numbers: vec![number] }).await;
        Self { config, graph, target: Mutex::new(None), deliveries: Arc::new(Recorder::new(Vec::new())) }
    }

    pub fn config(&self) -> &WhatsAppSimConfig {
        &self.config
    }

    /// The Graph mock: its `base_url()` is the gateway's `META_GRAPH_BASE_URL`.
    pub fn graph(&self) -> &MockGraph {
        &self.graph
    }

    /// Points Meta at the gateway's callback URL for this number (what an admin pastes in
    /// the Meta app's webhook settings).
    pub fn set_webhook(&self, target: WebhookTarget) {
        *self.target.lock().unwrap_or_else(PoisonError::into_inner) = Some(target);
    }

    /// A sender to the configured callback URL.
    pub fn webhook(&self) -> WebhookSender {
        let target = self.target.lock().unwrap_or_else(PoisonError::into_inner).clone();
        WebhookSender::new(target.expect("set_webhook first"))
    }

    /// Every webhook delivery attempt so far.
    pub fn deliveries(&self) -> Vec<Delivery> {
        self.deliveries.read(Clone::clone)
    }

    /// Waits until the deliveries satisfy `condition`.
    pub async fn wait_for_deliveries(
        &self,
        condition: impl FnMut(&Vec<Delivery>) -> bool,
        timeout: Duration,
    ) -> Result<(), WaitTimeout> {
        self.deliveries.wait_for(condition, timeout).await
    }

    /// The configured user calls the business.
    pub async fn place_call(&self) -> anyhow::Result<WhatsAppCall> {
        self.place_call_with(PlaceCall::default()).await
    }

    /// A user calls the business: Meta's peer offers, the connect webhook goes out (delivered
    /// in the background, retried while the gateway does not answer 200).
    pub async fn place_call_with(&self, options: PlaceCall) -> anyhow::Result<WhatsAppCall> {
        let parties = options.parties.unwrap_or_else(|| self.config.parties.clone());
        let call_id = new_call_id();
        let actions = self.graph.register_call(&parties.phone_number_id, &call_id);
        let graph = self.graph.call_handle(&call_id);
        let peer = Arc::new(MetaPeer::offer(self.config.peer.clone(), graph.clone()).await?);
        let connect_timestamp = unix_now();
        let connect = meta_json(&parties.connect(&call_id, connect_timestamp, peer.offer_sdp()));
        let deliverer = Deliverer {
            sender: self.webhook(),
            call_id: call_id.clone(),
            attempts: self.config.delivery_attempts.max(1),
            backoff: self.config.delivery_backoff,
            deliveries: self.deliveries.clone(),
        };
        let state = Arc::new(Recorder::new(CallState::default()));
        let (user_tx, user_rx) = mpsc::unbounded_channel();
        let stop = CancellationToken::new();
        let call = WhatsAppCall {
            call_id: call_id.clone(),
            parties: parties.clone(),
            connect_timestamp,
            connect_body: connect.clone(),
            peer: peer.clone(),
            deliverer: deliverer.clone(),
            state: state.clone(),
            user: user_tx,
            stop: stop.clone(),
        };
        let meta = MetaCall {
            call_id,
            parties,
            peer,
            graph,
            deliverer,
            state,
            actions,
            user: user_rx,
            no_media_timeout: self.config.no_media_timeout,
            no_answer_timeout: self.config.no_answer_timeout,
            stop,
        };
        tokio::spawn(meta.run(connect, options.terminate_before_connect));
        Ok(call)
    }
}

/// `wacid.` and 28 URL-safe base64 characters, like Meta's call ids.
fn new_call_id() -> String {
    let bytes: [u8; 21] = rand::random();
    format!("wacid.{}", base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes))
}

/// Posts one call's webhooks, retrying like Meta.
#[derive(Clone)]
struct Deliverer {
    sender: WebhookSender,
    call_id: String,
    attempts: u32,
    backoff: Duration,
    deliveries: Arc<Recorder<Vec<Delivery>>>,
}

impl Deliverer {
    /// Delivers until the gateway answers 200 or the attempts run out.
    async fn deliver(&self, event: &str, body: &str) -> Option<WebhookResponse> {
        let mut last = None;
        for attempt in 1..=self.attempts {
            let response = self.sender.post_raw(body.as_bytes()).await.ok();
            let status = response.as_ref().map(|r| r.status);
            self.deliveries.update(|d| {
                d.push(Delivery {
                    call_id: self.call_id.clone(),
                    event: event.to_owned(),
                    attempt,
                    status,
                    at: Instant::now(),
                })
            });
            if status == Some(200) {
                return response;
            }
            last = response;
            if attempt < self.attempts {
                tokio::time::sleep(self.backoff).await;
            }
        }
        last
    }
}

enum UserAction {
    HangUp,
}

/// Meta's side of one call: its timers and its reactions to business actions.
struct MetaCall {
    call_id: String,
    parties: CallParties,
    peer: Arc<MetaPeer>,
    graph: GraphCallHandle,
    deliverer: Deliverer,
    state: Arc<Recorder<CallState>>,
    actions: mpsc::UnboundedReceiver<AppliedAction>,
    user: mpsc::UnboundedReceiver<UserAction>,
    no_media_timeout: Duration,
    no_answer_timeout: Duration,
    stop: CancellationToken,
}

impl MetaCall {
    async fn run(mut self, connect: String, terminate_first: bool) {
        let placed = tokio::time::Instant::now();
        if terminate_first {
            self.end(CallOutcome::UserHungUp).await;
            self.deliverer.deliver("connect", &connect).await;
            return;
        }
        // The connect goes out while the call task already listens: the gateway may act
        // before it has answered the webhook.
        let deliverer = self.deliverer.clone();
        tokio::spawn(async move { deliverer.deliver("connect", &connect).await });
        let mut answer_deadline = Some(placed + self.no_answer_timeout);
        let mut media_deadline: Option<tokio::time::Instant> = None;
        loop {
            tokio::select! {
                () = self.stop.cancelled() => break,
                action = self.actions.recv() => {
                    let Some(action) = action else { break };
                    match action.action {
                        CallAction::PreAccept | CallAction::Accept => {
                            if let Some(sdp) = &action.sdp
                                && let Err(err) = self.peer.apply_answer(sdp).await
                            {
                                self.graph.record_protocol_error(format!("answer not applied: {err:#}"));
                            }
                            if action.action == CallAction::Accept {
                                self.peer.start_media();
                                self.state.update(|s| {
                                    s.accepted_at = Some(action.at);
                                    s.accepted_unix = Some(unix_now());
                                });
                                answer_deadline = None;
                                media_deadline = Some(tokio::time::Instant::from_std(action.at) + self.no_media_timeout);
                            }
                        }
                        CallAction::Reject => {
                            self.end(CallOutcome::BusinessRejected).await;
                            break;
                        }
                        CallAction::Terminate => {
                            self.end(CallOutcome::BusinessTerminated).await;
                            break;
                        }
                    }
                }
                user = self.user.recv() => {
                    if let Some(UserAction::HangUp) = user {
                        self.end(CallOutcome::UserHungUp).await;
                    }
                    break;
                }
                () = sleep_until_some(answer_deadline) => {
                    self.end(CallOutcome::NoAnswer).await;
                    break;
                }
                () = sleep_until_some(media_deadline) => {
                    if self.peer.rtp_received() == 0 {
                        self.end(CallOutcome::NoMedia).await;
                        break;
                    }
                    media_deadline = None;
                }
            }
        }
    }

    /// Meta ends the call: Graph refuses further actions (unless the business ended it),
    /// the media stops, the terminate webhook goes out.
    async fn end(&mut self, outcome: CallOutcome) {
        let business = matches!(outcome, CallOutcome::BusinessRejected | CallOutcome::BusinessTerminated);
        if !business {
            self.graph.end_by_user();
        }
        self.peer.close().await;
        let now = unix_now();
        let accepted = self.state.read(|s| s.accepted_unix);
        let (answered, error) = match outcome {
            CallOutcome::NoMedia => (accepted.map(|start| (start, now)), Some(CallError::media_receive_timeout())),
            CallOutcome::BusinessRejected | CallOutcome::NoAnswer => (None, None),
            CallOutcome::UserHungUp | CallOutcome::BusinessTerminated => (accepted.map(|start| (start, now)), None),
        };
        let error_code = error.as_ref().map(|e| e.code);
        let status = if answered.is_some() && error.is_none() { "COMPLETED" } else { "FAILED" };
        self.state.update(|s| {
            s.ended = Some(CallEnd { outcome, status: status.to_owned(), error_code, at: Instant::now() });
        });
        let body = meta_json(&self.parties.terminate(&self.call_id, now, answered, error, None));
        self.deliverer.deliver("terminate", &body).await;
    }
}

async fn sleep_until_some(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}

/// A WhatsApp user on a call with the business, as seen from Meta's side.
pub struct WhatsAppCall {
    call_id: String,
    parties: CallParties,
    connect_timestamp: u64,
    connect_body: String,
    peer: Arc<MetaPeer>,
    deliverer: Deliverer,
    state: Arc<Recorder<CallState>>,
    user: mpsc::UnboundedSender<UserAction>,
    stop: CancellationToken,
}

impl std::fmt::Debug for WhatsAppCall {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WhatsAppCall").field("call_id", &self.call_id).finish_non_exhaustive()
    }
}

impl WhatsAppCall {
    /// Meta's call id (`wacid.…`).
    pub fn call_id(&self) -> &str {
        &self.call_id
    }

    pub fn parties(&self) -> &CallParties {
        &self.parties
    }

    /// The SDP offer in the connect webhook.
    pub fn offer_sdp(&self) -> &str {
        self.peer.offer_sdp()
    }

    /// The connect webhook's `timestamp` (Unix seconds).
    pub fn connect_timestamp(&self) -> u64 {
        self.connect_timestamp
    }

    /// The exact connect body Meta delivered (signed as is).
    pub fn connect_body(&self) -> &str {
        &self.connect_body
    }

    /// Meta's peer, for roles and low-level checks.
    pub fn peer(&self) -> &MetaPeer {
        &self.peer
    }

    /// Delivers the same connect webhook again (Meta retried it).
    pub async fn redeliver_connect(&self) -> anyhow::Result<WebhookResponse> {
        self.deliverer.sender.post_raw(self.connect_body.as_bytes()).await
    }

    /// Delivers the same connect webhook `n` times at once.
    pub async fn redeliver_connect_concurrently(&self, n: usize) -> Vec<anyhow::Result<WebhookResponse>> {
        let posts = (0..n).map(|_| self.deliverer.sender.post_raw(self.connect_body.as_bytes()));
        futures::future::join_all(posts).await
    }

    /// Delivers any webhook body for this call (built with [`WhatsAppCall::parties`]).
    pub async fn deliver(&self, body: &WebhookEnvelope) -> anyhow::Result<WebhookResponse> {
        self.deliverer.sender.post(body).await
    }

    /// A connect for this call stamped `seconds` before the original one (a stale event).
    pub async fn deliver_stale_connect(&self, seconds: u64) -> anyhow::Result<WebhookResponse> {
        let stale = self.parties.connect(&self.call_id, self.connect_timestamp - seconds, self.peer.offer_sdp());
        self.deliver(&stale).await
    }

    /// Queues speech (48 kHz mono), sent in real time once the call is accepted.
    pub async fn say(&self, pcm: Vec<i16>) {
        self.peer.say(pcm).await;
    }

    /// Queues key presses, sent as RFC 4733 events (PT 126) once the call is accepted.
    pub async fn press_keys(&self, keys: &str) {
        self.peer.press_keys(keys).await;
    }

    /// Every 20 ms frame the user heard, decoded and timed.
    pub fn heard(&self) -> Vec<Heard> {
        self.peer.heard()
    }

    /// Waits until the user heard `ms` of audio louder than `dbfs`.
    pub async fn wait_until_heard(&self, ms: usize, dbfs: f32, timeout: Duration) -> anyhow::Result<()> {
        self.peer.wait_until_heard(ms, dbfs, timeout).await
    }

    /// When the accept action succeeded.
    pub fn accepted_at(&self) -> Option<Instant> {
        self.state.read(|s| s.accepted_at)
    }

    /// Waits for the business's accept.
    pub async fn wait_accepted(&self, timeout: Duration) -> anyhow::Result<Instant> {
        self.state.wait_for(|s| s.accepted_at.is_some() || s.ended.is_some(), timeout).await.context("no accept")?;
        match self.accepted_at() {
            Some(at) => Ok(at),
            None => bail!("the call ended without accept: {:?}", self.ended()),
        }
    }

    /// How the call ended, once it has.
    pub fn ended(&self) -> Option<CallEnd> {
        self.state.read(|s| s.ended.clone())
    }

    /// Waits for the end of the call (terminate webhook sent).
    pub async fn wait_ended(&self, timeout: Duration) -> anyhow::Result<CallEnd> {
        self.state.wait_for(|s| s.ended.is_some(), timeout).await.context("the call did not end")?;
        self.ended().context("ended")
    }

    /// The user hangs up.
    pub fn hang_up(&self) {
        let _ = self.user.send(UserAction::HangUp);
    }

    /// The ICE and DTLS roles Meta's side took.
    pub async fn meta_roles(&self) -> Option<MetaRoles> {
        self.peer.roles().await
    }

    /// Stops the call's simulation without telling anyone (test teardown).
    pub async fn close(self) {
        self.stop.cancel();
        self.peer.close().await;
    }
}

impl Drop for WhatsAppCall {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}
