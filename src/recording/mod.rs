//! Call recordings: stereo Ogg Opus (the caller left, the other side right, on the call's
//! clock), encoded off the call's task, kept in object storage, reached through
//! short-lived links, deleted with their call or when their company's retention runs out.
//!
//! - [`Recordings`]: the service (in `AppState`): starts recordings, hands out links,
//!   deletes files, runs the retention sweep, stores what an earlier run left behind
//! - `tap`: [`RecordingTap`], what the call session feeds every 20 ms
//! - `writer`: one task per recording: queue → `media::RecordingEncoder` → spool file →
//!   storage and the `call_recordings` row
//! - `storage`: [`RecordingStorage`], a local directory or S3 through `object_store`
//! - `link`: HMAC-signed download links for local storage
//! - `retention`: which recordings are due (pure)
//!
//! docs/recording.md describes the format, the clock and the configuration.

pub mod link;
pub mod retention;
pub mod storage;
pub mod tap;
mod writer;

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use media::RecordingConfig;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

pub use link::{LINK_TTL, LinkRefusal, LinkSigner};
pub use storage::{RecordingStorage, StorageConfig, StorageError};
pub use tap::{EndInfo, RecordingTap, slot_at};

use crate::ids::{CallId, CompanyId, RecordingId};
use crate::store::{Recording, Store, StoreError};
use crate::time::UnixMs;

/// Deletions attempted before a storage failure is reported.
const DELETE_ATTEMPTS: u32 = 3;
/// Recordings deleted per query of the retention sweep.
const SWEEP_BATCH: i64 = 200;

/// A link to a recording, valid until `expires_at`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordingLink {
    pub url: String,
    pub expires_at: UnixMs,
}

/// What a retention sweep did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SweepReport {
    /// Recordings deleted (file and row).
    pub deleted: u64,
    /// Recordings whose file could not be deleted (kept, tried again next sweep).
    pub failed: u64,
}

/// Why a sweep could not run.
#[derive(Debug, thiserror::Error)]
pub enum SweepError {
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Marks a call as being recorded while its writer runs.
struct Active {
    recordings: Arc<Recordings>,
    call_id: CallId,
}

impl Drop for Active {
    fn drop(&mut self) {
        self.recordings.active.lock().unwrap_or_else(std::sync::PoisonError::into_inner).remove(&self.call_id);
    }
}

/// The recordings service; see the module documentation.
pub struct Recordings {
    store: Store,
    storage: RecordingStorage,
    signer: LinkSigner,
    /// `GATEWAY_PUBLIC_URL`, for local download links.
    public_base: Arc<str>,
    /// Where recordings are encoded before they are stored.
    spool_dir: PathBuf,
    config: RecordingConfig,
    /// Writer tasks (and the start-up recovery), waited for at shutdown.
    tracker: TaskTracker,
    /// Calls being recorded on this node: a second recording of the same call would write
    /// the same spool file. A std mutex: touched when a recording starts and ends, never
    /// per frame.
    active: Mutex<HashSet<CallId>>,
    /// Cancelled at shutdown: stops retries and the sweep, never a writer mid-file.
    shutdown: CancellationToken,
}

impl std::fmt::Debug for Recordings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Recordings")
            .field("storage", &self.storage)
            .field("spool_dir", &self.spool_dir)
            .field("writers", &self.tracker.len())
            .finish_non_exhaustive()
    }
}

impl Recordings {
    /// The service over `storage`, encoding into `spool_dir` (created if needed).
    pub fn new(
        store: Store,
        storage: RecordingStorage,
        signer: LinkSigner,
        public_base: Arc<str>,
        spool_dir: PathBuf,
        shutdown: CancellationToken,
    ) -> anyhow::Result<Self> {
        std::fs::create_dir_all(&spool_dir)
            .map_err(|e| anyhow::anyhow!("creating the recordings spool directory {}: {e}", spool_dir.display()))?;
        Ok(Self {
            store,
            storage,
            signer,
            public_base,
            spool_dir,
            config: RecordingConfig::default(),
            tracker: TaskTracker::new(),
            active: Mutex::new(HashSet::new()),
            shutdown,
        })
    }

    /// Starts recording a call answered at `answered_at` (slot 0 of its clock). The writer
    /// runs on its own task; the returned tap is what the session feeds.
    ///
    /// A call is recorded once: starting again while its recording is being written
    /// returns a tap that records nothing (and says so in the log).
    pub fn start(self: &Arc<Self>, call_id: CallId, company_id: CompanyId, answered_at: UnixMs) -> RecordingTap {
        let shared = Arc::new(tap::TapShared::new());
        let (end_tx, end_rx) = tokio::sync::oneshot::channel();
        let first = self.active.lock().unwrap_or_else(std::sync::PoisonError::into_inner).insert(call_id);
        if first {
            let job = writer::WriterJob { call_id, company_id, answered_at, shared: shared.clone(), end: end_rx };
            let recordings = self.clone();
            self.tracker.spawn(async move {
                // Forgotten however the writer ends, a panic included.
                let _active = Active { recordings: recordings.clone(), call_id };
                writer::run(recordings, job).await;
            });
        } else {
            tracing::warn!(call_id = %call_id, "this call is already being recorded; the second recording is ignored");
        }
        RecordingTap::new(call_id, shared, end_tx)
    }

    /// Where recordings are stored.
    pub fn storage(&self) -> &RecordingStorage {
        &self.storage
    }

    /// Recordings being encoded or stored right now.
    pub fn writers(&self) -> usize {
        self.tracker.len()
    }

    /// A link to `recording`, handed out at `now` and valid for [`LINK_TTL`]: presigned for
    /// S3, the gateway's signed download URL for local storage.
    pub async fn link(&self, recording: &Recording, now: UnixMs) -> Result<RecordingLink, StorageError> {
        let expires = link::expiry(now);
        let expires_at = expires * 1000;
        if let Some(url) = self.storage.presigned_get(&recording.object_key, LINK_TTL).await? {
            return Ok(RecordingLink { url: url.to_string(), expires_at });
        }
        Ok(RecordingLink { url: self.signer.url(&self.public_base, recording.id, expires), expires_at })
    }

    /// Checks a download link at `now`.
    pub fn check_link(&self, id: RecordingId, expires: i64, signature: &str, now: UnixMs) -> Result<(), LinkRefusal> {
        self.signer.check(id, expires, signature, now)
    }

    /// Deletes a recording's file, trying a few times; a file already gone counts as
    /// deleted. The row is the caller's to delete (after this succeeded).
    pub async fn delete_file(&self, recording: &Recording) -> Result<(), StorageError> {
        let mut attempt = 1;
        loop {
            match self.storage.delete(&recording.object_key).await {
                Ok(()) => return Ok(()),
                Err(err) if attempt < DELETE_ATTEMPTS => {
                    tracing::warn!(error = %err, recording_id = %recording.id, attempt, "could not delete a recording; retrying");
                    tokio::time::sleep(Duration::from_millis(200 * u64::from(attempt))).await;
                    attempt += 1;
                }
                Err(err) => return Err(err),
            }
        }
    }

    /// Deletes every recording due at `now` under its company's retention (file first,
    /// then row; a file that cannot be deleted keeps its row for the next sweep).
    pub async fn sweep_retention(&self, now: UnixMs) -> Result<SweepReport, SweepError> {
        let companies = self.store.list_companies().await?;
        let plan = retention::plan(now, companies.iter().map(|c| (c.id, c.settings.recordings)));
        let mut report = SweepReport::default();
        for sweep in plan {
            loop {
                let batch = self.store.recordings_created_before(sweep.company, sweep.cutoff, SWEEP_BATCH).await?;
                let mut progressed = false;
                for recording in batch.iter().filter(|r| retention::is_due(r.created_at, sweep.policy, now)) {
                    if self.shutdown.is_cancelled() {
                        return Ok(report);
                    }
                    match self.storage.delete(&recording.object_key).await {
                        Ok(()) => {
                            self.store.delete_recording(sweep.company, recording.id).await?;
                            report.deleted += 1;
                            progressed = true;
                        }
                        Err(err) => {
                            tracing::warn!(error = %err, recording_id = %recording.id, "retention: could not delete a recording; keeping it for the next sweep");
                            report.failed += 1;
                        }
                    }
                }
                if (batch.len() as i64) < SWEEP_BATCH || !progressed {
                    break;
                }
            }
        }
        Ok(report)
    }

    /// Runs the retention sweep every `every` until shutdown (the first run right away).
    pub fn spawn_retention_sweep(self: &Arc<Self>, every: Duration) {
        let recordings = self.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every.max(Duration::from_secs(1)));
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = recordings.shutdown.cancelled() => break,
                    _ = tick.tick() => {}
                }
                match recordings.sweep_retention(crate::time::now_ms()).await {
                    Ok(SweepReport { deleted: 0, failed: 0 }) => {}
                    Ok(report) => {
                        tracing::info!(deleted = report.deleted, failed = report.failed, "recording retention sweep")
                    }
                    Err(err) => tracing::warn!(error = %err, "recording retention sweep failed; trying again later"),
                }
            }
        });
    }

    /// Stores, on a task of its own, what an earlier run left in the spool directory (a
    /// recording storage refused, or one a crash cut short).
    pub fn spawn_recovery(self: &Arc<Self>) {
        self.tracker.spawn(writer::recover(self.clone()));
    }

    /// Waits up to `grace` for recordings being written to be finished and stored (after
    /// the calls have ended). What is not stored by then stays on local disk for the next
    /// start.
    pub async fn shut_down(&self, grace: Duration) {
        self.shutdown.cancel();
        self.tracker.close();
        if tokio::time::timeout(grace, self.tracker.wait()).await.is_err() {
            tracing::warn!(
                writers = self.tracker.len(),
                "recordings still being stored after the shutdown grace period; they are stored at the next start"
            );
        }
    }

    /// Waits until no recording is being written or stored (tests).
    pub async fn idle(&self) {
        while !self.tracker.is_empty() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}
