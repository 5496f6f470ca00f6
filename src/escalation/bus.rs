//! The agent bus: what every node must hear about escalations — one was offered, an agent
//! took one, one was cancelled — whichever node caused it.
//!
//! One small trait, [`AgentBus`], so the engine can change (NATS, Redis) without touching
//! its users: publish an [`AgentEvent`], subscribe to every event (this node's included)
//! as a local broadcast. Two engines:
//!
//! - [`PgBus`]: Postgres `LISTEN/NOTIFY` on the channel [`CHANNEL`], for deployments of
//!   several nodes on one database (no new service to run). One listening connection per
//!   node receives every notification, its own included, and fans it out in-process.
//!   Notifications are transient: those sent while the listener reconnects are lost, which
//!   the design tolerates (agents' consoles list pending escalations again when they
//!   reconnect; a waiting call learns of an accept from its own time-out at the latest).
//! - [`InProcessBus`]: a tokio broadcast channel, for SQLite (single-node) deployments.
//!
//! Events carry ids, not documents: receivers read what they need from the database (an
//! offer's transcript would not fit Postgres' 8000-byte payload limit).

use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use sqlx::postgres::PgListener;
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;

use crate::ids::{CallId, CompanyId, EscalationId, UserId};
use crate::store::{Store, StoreError};

/// The Postgres notification channel of the agent bus.
pub const CHANNEL: &str = "gateway_agents";
/// Events a slow subscriber may fall behind by before it misses some.
const CAPACITY: usize = 1024;

/// Something every node must hear about an escalation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum AgentEvent {
    /// A new escalation waits for an agent.
    Offered { company_id: CompanyId, escalation_id: EscalationId },
    /// An agent accepted: other agents' consoles drop the offer, and the node holding the
    /// call hands it over.
    Taken {
        company_id: CompanyId,
        escalation_id: EscalationId,
        call_id: CallId,
        agent_id: UserId,
        /// At most [`MAX_AGENT_NAME_CHARS`] characters (the payload limit).
        agent_name: String,
    },
    /// It closed without an agent (the call ended, or nobody accepted in time).
    Cancelled { company_id: CompanyId, escalation_id: EscalationId },
}

/// Longest agent name carried by [`AgentEvent::Taken`].
pub const MAX_AGENT_NAME_CHARS: usize = 200;

/// Why an event could not be published or the bus could not start.
#[derive(Debug, thiserror::Error)]
pub enum BusError {
    /// The database refused the notification.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The listening connection could not be opened.
    #[error("cannot listen for agent events: {0}")]
    Listen(#[from] sqlx::Error),
}

/// Publishes agent events to every node and hands this node's subscribers every event.
#[async_trait::async_trait]
pub trait AgentBus: Send + Sync + 'static {
    /// Sends `event` to every node, this one included.
    async fn publish(&self, event: &AgentEvent) -> Result<(), BusError>;
    /// Every event published from now on, on any node.
    fn subscribe(&self) -> broadcast::Receiver<AgentEvent>;
}

/// The single-node bus: a broadcast channel.
pub struct InProcessBus {
    events: broadcast::Sender<AgentEvent>,
}

impl InProcessBus {
    /// A bus with no subscribers yet.
    pub fn new() -> Self {
        Self { events: broadcast::channel(CAPACITY).0 }
    }
}

impl Default for InProcessBus {
    fn default() -> Self {
        Self::new()
    }
}

#[async_trait::async_trait]
impl AgentBus for InProcessBus {
    async fn publish(&self, event: &AgentEvent) -> Result<(), BusError> {
        // No subscriber is not an error: nobody on this node needed it.
        let _ = self.events.send(event.clone());
        Ok(())
    }

    fn subscribe(&self) -> broadcast::Receiver<AgentEvent> {
        self.events.subscribe()
    }
}

/// The bus of nodes sharing Postgres: `pg_notify` out, one `LISTEN` connection in.
pub struct PgBus {
    store: Store,
    events: broadcast::Sender<AgentEvent>,
}

impl PgBus {
    /// Starts listening on [`CHANNEL`] (the listener is live when this returns, so an event
    /// published afterwards is received) until `shutdown`.
    pub async fn start(database_url: &str, store: Store, shutdown: CancellationToken) -> Result<Arc<Self>, BusError> {
        let mut listener = PgListener::connect(database_url).await?;
        listener.listen(CHANNEL).await?;
        let events = broadcast::channel(CAPACITY).0;
        let fan_out = events.clone();
        tokio::spawn(async move {
            loop {
                let received = tokio::select! {
                    _ = shutdown.cancelled() => break,
                    received = listener.recv() => received,
                };
                match received {
                    Ok(notification) => match serde_json::from_str::<AgentEvent>(notification.payload()) {
                        Ok(event) => {
                            let _ = fan_out.send(event);
                        }
                        Err(err) => tracing::warn!(error = %err, "ignoring a malformed agent bus notification"),
                    },
                    Err(err) => {
                        // The next recv reconnects (and listens again); notifications sent
                        // in between are lost.
                        tracing::warn!(error = %err, "agent bus: the listening connection failed; reconnecting");
                        tokio::select! {
                            _ = shutdown.cancelled() => break,
                            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                        }
                    }
                }
            }
        });
        Ok(Arc::new(Self { store, events }))
    }
}

#[async_trait::async_trait]
impl AgentBus for PgBus {
    async fn publish(&self, event: &AgentEvent) -> Result<(), BusError> {
        let payload = serde_json::to_string(event).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        self.store.notify(CHANNEL, &payload).await?;
        Ok(())
    }

    fn subscribe(&self) -> broadcast::Receiver<AgentEvent> {
        self.events.subscribe()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::testing::PostgresTestDb;

    fn offered() -> AgentEvent {
        AgentEvent::Offered { company_id: CompanyId::new(), escalation_id: EscalationId::new() }
    }

    #[test]
    fn events_are_small_tagged_json() {
        let event = AgentEvent::Taken {
            company_id: CompanyId::new(),
            escalation_id: EscalationId::new(),
            call_id: CallId::new(),
            agent_id: UserId::new(),
            agent_name: "é".repeat(MAX_AGENT_NAME_CHARS),
        };
        let json = serde_json::to_string(&event).unwrap();
        assert!(json.starts_with(r#"{"type":"taken","company_id":"#), "{json}");
        assert!(json.len() < 8000, "fits a Postgres notification: {} bytes", json.len());
        assert_eq!(serde_json::from_str::<AgentEvent>(&json).unwrap(), event);
    }

    #[tokio::test]
    async fn the_in_process_bus_hands_every_subscriber_each_event() {
        let bus = InProcessBus::new();
        bus.publish(&offered()).await.unwrap();
        let (mut a, mut b) = (bus.subscribe(), bus.subscribe());
        let event = offered();
        bus.publish(&event).await.unwrap();
        assert_eq!(a.recv().await.unwrap(), event, "only events after subscribing");
        assert_eq!(b.recv().await.unwrap(), event);
    }

    #[tokio::test]
    async fn two_nodes_on_postgres_both_hear_a_publish_from_one() {
        let Some((store, db)) = PostgresTestDb::create().await else {
            eprintln!("skipped: GATEWAY_TEST_POSTGRES_URL is not set");
            return;
        };
        let url = db.url();
        let shutdown = CancellationToken::new();
        let node_a = PgBus::start(&url, store.clone(), shutdown.clone()).await.unwrap();
        let node_b = PgBus::start(&url, store.clone(), shutdown.clone()).await.unwrap();
        let (mut on_a, mut on_b) = (node_a.subscribe(), node_b.subscribe());
        let event = offered();
        node_a.publish(&event).await.unwrap();
        let within = Duration::from_secs(5);
        assert_eq!(tokio::time::timeout(within, on_b.recv()).await.unwrap().unwrap(), event, "the other node");
        assert_eq!(tokio::time::timeout(within, on_a.recv()).await.unwrap().unwrap(), event, "its own node");
        shutdown.cancel();
        db.drop_db(store).await;
    }
}
