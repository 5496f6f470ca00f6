//! Calls: one [`session`] task per call, the [`CallManager`] that starts and tracks them,
//! and the pure pieces a session is made of.
//!
//! - `session`: the per-call task (media loop, provider events, state, persistence)
//! - `webrtc_edge`: the caller side over WebRTC (peer + jitter buffer + Opus)
//! - `barge_in`, `transcript`, `policy`: pure state machines, unit-tested without sockets
//! - `setup`: from a chatbot's settings to the session's spec, tools and policies
//! - `recorder`: writes the call's progress to the database off the media path
//! - `messages`: what the widget's WebSocket and the session tell each other

pub mod barge_in;
pub mod messages;
pub mod policy;
pub mod recorder;
pub mod session;
pub mod setup;
pub mod transcript;
pub mod webrtc_edge;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::ids::CallId;
use messages::{ClientInput, ClientMessage, ServerMessage};
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

/// Messages buffered between the WebSocket and a session, each way.
const LINK_CAPACITY: usize = 64;

/// Starts call sessions and keeps track of the live ones on this node.
pub struct CallManager {
    deps: SessionDeps,
    /// Live calls and how to reach them. A std mutex: held only to insert, remove or
    /// clone a sender, never across an await, and never touched by the media path.
    live: Mutex<HashMap<CallId, mpsc::Sender<ClientInput>>>,
    tracker: TaskTracker,
    shutdown: CancellationToken,
}

impl CallManager {
    /// A manager whose calls end (reason `shutdown`) when `shutdown` is cancelled.
    pub fn new(deps: SessionDeps, shutdown: CancellationToken) -> Self {
        Self { deps, live: Mutex::new(HashMap::new()), tracker: TaskTracker::new(), shutdown }
    }

    /// Starts the session of a call; returns the link to its client.
    pub fn start(self: &Arc<Self>, setup: CallSetup) -> (mpsc::Sender<ClientInput>, mpsc::Receiver<ServerMessage>) {
        let (client_tx, client_rx) = mpsc::channel(LINK_CAPACITY);
        let (server_tx, server_rx) = mpsc::channel(LINK_CAPACITY);
        let id = setup.call_id;
        self.live.lock().expect("call registry lock").insert(id, client_tx.clone());
        crate::metrics::call_started("web");
        let manager = self.clone();
        let cancel = self.shutdown.child_token();
        let deps = self.deps.clone();
        self.tracker.spawn(async move {
            // Removed from the registry however the session ends, a panic included.
            let _registered = Registration { manager, id };
            session::run(setup, deps, client_rx, server_tx, cancel).await;
        });
        (client_tx, server_rx)
    }

    /// Asks a live call to hang up; false if it is not live on this node.
    pub async fn hang_up(&self, id: CallId) -> bool {
        let sender = self.live.lock().expect("call registry lock").get(&id).cloned();
        match sender {
            Some(sender) => sender.send(ClientInput::Message(ClientMessage::End)).await.is_ok(),
            None => false,
        }
    }

    /// Calls live on this node.
    pub fn live_calls(&self) -> usize {
        self.live.lock().expect("call registry lock").len()
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
