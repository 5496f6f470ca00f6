//! Calls: one [`session`] task per call, the [`CallManager`] that starts and tracks them,
//! and the pure pieces a session is made of.
//!
//! - `admission`: may a call be taken (one decision for the widget, test calls, webhooks)
//! - `session`: the per-call task (media loop, provider events, state, persistence)
//! - `legs`: the caller's channel — WebRTC (browser, WhatsApp), Twilio Media Streams
//! - `heard`: the one record of what the caller heard (pure)
//! - `barge_in`, `transcript`, `policy`: pure state machines, unit-tested without sockets
//! - `playout`: agent audio queued in the provider's output format
//! - `setup`: from a chatbot's settings to the session's spec, tools and policies
//! - `recorder`: writes the call's progress to the database off the media path
//! - `client`, `messages`: what a watching client (the widget) and the session tell each other

pub mod admission;
pub mod barge_in;
pub mod client;
pub mod handover;
pub mod heard;
pub mod legs;
pub mod messages;
pub mod playout;
pub mod policy;
pub mod recorder;
pub mod recording;
pub mod session;
pub mod setup;
pub mod transcript;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::escalation::AgentJoin;
use crate::ids::CallId;
use client::ClientLink;
use legs::{AgentAttach, CallerLeg};
use messages::{Control, ServerMessage, Signal};
use session::{CallSetup, SessionDeps};

/// Removes a call from the registry when its task ends.
struct Registration {
    manager: Arc<CallManager>,
    id: CallId,
}

impl Drop for Registration {
    fn drop(&mut self) {
        self.manager.live.lock().unwrap_or_else(std::sync::PoisonError::into_inner).remove(&self.id);
    }
}

/// Messages buffered between a client's WebSocket and a call, each way.
const LINK_CAPACITY: usize = 64;

/// The ends of a browser's signaling WebSocket (a caller's widget, or a human agent's
/// console on the call): what its pump forwards and reads.
pub struct BrowserLink {
    /// Mute, hang-up, the socket closing.
    pub control: mpsc::Sender<Control>,
    /// Offer and candidates, for the WebRTC leg.
    pub signals: mpsc::Sender<Signal>,
    /// What the browser should be told.
    pub server: mpsc::Receiver<ServerMessage>,
}

/// Why an agent could not join a call.
#[derive(Debug, thiserror::Error)]
pub enum JoinError {
    #[error("the call is not live on this node")]
    NotLive,
    #[error("the call is already being joined")]
    Busy,
}

/// How to reach a live call.
struct LiveCall {
    control: mpsc::Sender<Control>,
    /// Human agents joining it.
    agents: mpsc::Sender<AgentAttach>,
}

/// Why a call could not be started.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("could not set up the caller's media: {0}")]
    Media(#[from] media::MediaError),
}

/// Starts call sessions and keeps track of the live ones on this node.
pub struct CallManager {
    deps: SessionDeps,
    /// Live calls and how to reach them. A std mutex: held only to insert, remove or
    /// clone a sender, never across an await, and never touched by the media path.
    live: Mutex<HashMap<CallId, LiveCall>>,
    tracker: TaskTracker,
    shutdown: CancellationToken,
}

impl CallManager {
    /// A manager whose calls end (reason `shutdown`) when `shutdown` is cancelled.
    pub fn new(deps: SessionDeps, shutdown: CancellationToken) -> Self {
        Self { deps, live: Mutex::new(HashMap::new()), tracker: TaskTracker::new(), shutdown }
    }

    /// Starts a browser call: a WebRTC leg signalled through the widget's WebSocket.
    /// Returns the ends the socket's pump uses.
    pub fn start_browser(self: &Arc<Self>, setup: CallSetup) -> Result<BrowserLink, StartError> {
        let (server_tx, server_rx) = mpsc::channel(LINK_CAPACITY);
        let (signal_tx, signal_rx) = mpsc::channel(LINK_CAPACITY);
        let client = ClientLink::new(server_tx);
        let (input, output) = (setup.spec.input, setup.spec.output);
        let leg =
            legs::WebRtcLeg::for_browser(self.deps.signaling.clone(), signal_rx, client.another(), input, output)?;
        let control = self.start(setup, CallerLeg::WebRtc(Box::new(leg)), Some(client));
        Ok(BrowserLink { control, signals: signal_tx, server: server_rx })
    }

    /// Starts the session of a call on `caller`'s leg, watched by `client` if there is one;
    /// returns the call's control channel. The provider formats in `setup.spec` must suit
    /// the leg (see [`crate::providers::negotiate`]).
    pub fn start(
        self: &Arc<Self>,
        setup: CallSetup,
        caller: CallerLeg,
        client: Option<ClientLink>,
    ) -> mpsc::Sender<Control> {
        let (control_tx, control_rx) = mpsc::channel(LINK_CAPACITY);
        let (agents_tx, agents_rx) = mpsc::channel(1);
        let id = setup.call_id;
        let live = LiveCall { control: control_tx.clone(), agents: agents_tx };
        self.live.lock().expect("call registry lock").insert(id, live);
        crate::metrics::call_started(setup.source.as_str());
        let manager = self.clone();
        let cancel = self.shutdown.child_token();
        let deps = self.deps.clone();
        self.tracker.spawn(async move {
            // Removed from the registry however the session ends, a panic included.
            let _registered = Registration { manager, id };
            session::run(setup, deps, caller, client, control_rx, agents_rx, cancel).await;
        });
        control_tx
    }

    /// Asks a live call to hang up; false if it is not live on this node.
    pub async fn hang_up(&self, id: CallId) -> bool {
        let sender = self.live.lock().expect("call registry lock").get(&id).map(|live| live.control.clone());
        match sender {
            Some(sender) => sender.send(Control::End).await.is_ok(),
            None => false,
        }
    }

    /// A human agent whose join token was verified joins a live call's media. Returns the
    /// ends their socket's pump uses; the call tells them whether it takes them.
    pub fn join_agent(&self, id: CallId, join: AgentJoin) -> Result<BrowserLink, JoinError> {
        let agents = self.live.lock().expect("call registry lock").get(&id).map(|live| live.agents.clone());
        let agents = agents.ok_or(JoinError::NotLive)?;
        let (server_tx, server_rx) = mpsc::channel(LINK_CAPACITY);
        let (signal_tx, signal_rx) = mpsc::channel(LINK_CAPACITY);
        let (control_tx, control_rx) = mpsc::channel(LINK_CAPACITY);
        let attach = AgentAttach { join, signals: signal_rx, control: control_rx, client: ClientLink::new(server_tx) };
        agents.try_send(attach).map_err(|err| match err {
            mpsc::error::TrySendError::Full(_) => JoinError::Busy,
            mpsc::error::TrySendError::Closed(_) => JoinError::NotLive,
        })?;
        Ok(BrowserLink { control: control_tx, signals: signal_tx, server: server_rx })
    }

    /// Whether a call is live on this node.
    pub fn is_live(&self, id: CallId) -> bool {
        self.live.lock().expect("call registry lock").contains_key(&id)
    }

    /// Calls live on this node.
    pub fn live_calls(&self) -> usize {
        self.live.lock().expect("call registry lock").len()
    }

    /// The services sessions use.
    pub fn deps(&self) -> &SessionDeps {
        &self.deps
    }

    /// Ends every live call (reason `shutdown`, transcripts saved) and waits up to `grace`.
    pub async fn shut_down(&self, grace: Duration) {
        self.shutdown.cancel();
        self.tracker.close();
        if tokio::time::timeout(grace, self.tracker.wait()).await.is_err() {
            tracing::warn!(calls = self.live_calls(), "calls still ending after the shutdown grace period");
        }
    }
}
