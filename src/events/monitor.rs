//! What the metrics cannot see where the work happens: the database's round-trip time and
//! the outbox backlog across all nodes, sampled every 15 s; and, hourly, the pruning of
//! events older than 30 days and of notices closed more than 90 days ago.

use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::store::Store;
use crate::time::now_ms;

const SAMPLE_EVERY: Duration = Duration::from_secs(15);
const PRUNE_EVERY: u32 = 240;
const DAY_MS: i64 = 24 * 3600 * 1000;
/// Events (and their delivery logs) are kept this long.
pub const EVENT_RETENTION_DAYS: i64 = 30;
/// Resolved or dismissed notices are kept this long.
pub const NOTICE_RETENTION_DAYS: i64 = 90;

/// Runs until `shutdown`.
pub async fn run(store: Store, shutdown: CancellationToken) {
    let mut every = tokio::time::interval(SAMPLE_EVERY);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut ticks: u32 = 0;
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = every.tick() => {}
        }
        if let Err(err) = crate::metrics::timed("ping", store.ping()).await {
            tracing::warn!(error = %err, "database ping failed");
        }
        match store.outbox_backlog().await {
            Ok((pending, oldest)) => {
                let age = oldest.map_or(0, |at| (now_ms() - at).max(0));
                crate::metrics::webhook_backlog(pending.max(0) as u64, Duration::from_millis(age as u64));
            }
            Err(err) => tracing::warn!(error = %err, "could not measure the webhook outbox"),
        }
        if ticks.is_multiple_of(PRUNE_EVERY) {
            let now = now_ms();
            match store.prune_events(now - EVENT_RETENTION_DAYS * DAY_MS, now - NOTICE_RETENTION_DAYS * DAY_MS).await {
                Ok(0) => {}
                Ok(n) => tracing::info!(events = n, "pruned old webhook events"),
                Err(err) => tracing::warn!(error = %err, "could not prune old webhook events"),
            }
        }
        ticks = ticks.wrapping_add(1);
    }
}
