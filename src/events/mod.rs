//! Call events for the companies' own systems, and what the gateway tells company admins
//! when something keeps failing.
//!
//! - [`payload`]: the event envelope and the data of each event type
//! - [`policy`]: pure decisions — back-off with jitter, which deliveries to claim, when to
//!   give up, when an endpoint is disabled, when provider failures are persistent
//! - [`address`]: public destinations only (after DNS resolution, on every delivery)
//! - [`signature`]: `X-Gateway-Signature`, HMAC-SHA256 over `t.body`
//! - [`worker`]: the delivery worker, one per node, sending from the outbox
//! - [`monitor`]: samples the outbox backlog and the database for the metrics; prunes
//!
//! Events are written by the store, in the transaction of the change that caused them
//! (`store::insert_event`): the outbox. Notices and integration failures live in the
//! store too (`Store::report_integration_failure`, the provider-failure rule in
//! `Store::end_call`), so a failure and what it raises commit together.

pub mod address;
pub mod monitor;
pub mod payload;
pub mod policy;
pub mod signature;
pub mod worker;

use tokio::task::JoinHandle;

/// The background tasks of this module, to wait for at shutdown.
pub struct Background {
    tasks: Vec<JoinHandle<()>>,
}

impl Background {
    /// Starts the delivery worker and the monitor; they stop when `shutdown` is cancelled.
    pub fn start(
        store: crate::store::Store,
        sealer: std::sync::Arc<crate::crypto::Sealer>,
        settings: &crate::config::WebhookArgs,
        shutdown: tokio_util::sync::CancellationToken,
    ) -> anyhow::Result<Self> {
        let worker = worker::Worker::new(store.clone(), sealer, settings)?;
        Ok(Self {
            tasks: vec![tokio::spawn(worker.run(shutdown.clone())), tokio::spawn(monitor::run(store, shutdown))],
        })
    }

    /// Waits for the tasks to stop (in-flight deliveries finish, bounded by their timeout).
    pub async fn finish(self) {
        for task in self.tasks {
            let _ = task.await;
        }
    }
}
