//! Writes a call's progress to the database from its own task, so the call's media loop
//! never waits on the database. Records are applied in order; the session awaits the
//! recorder at the end, so the row is final before the caller is told the call ended.

use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::ids::CallId;
use crate::store::{EndReason, Store, TranscriptLine};
use crate::time::UnixMs;

/// One change to a call's stored state.
#[derive(Debug)]
pub enum Record {
    /// Audio flows both ways since `answered_at`.
    Active { answered_at: UnixMs },
    /// A final transcript line.
    Line(TranscriptLine),
    /// The call ended.
    End { reason: EndReason, ended_at: UnixMs, error: Option<String> },
}

/// The sending half, owned by the call session.
pub struct Recorder {
    tx: mpsc::Sender<Record>,
    task: JoinHandle<()>,
}

/// Records queued before the recorder applies back-pressure (lines are small; a stalled
/// database for this long is an outage, and the session then waits rather than drops).
const QUEUE: usize = 1024;

impl Recorder {
    /// Starts the recorder of one call.
    pub fn start(store: Store, call: CallId) -> Self {
        let (tx, mut rx) = mpsc::channel::<Record>(QUEUE);
        let task = tokio::spawn(async move {
            while let Some(record) = rx.recv().await {
                let result = match &record {
                    Record::Active { answered_at } => store.mark_call_active(call, *answered_at).await.map(drop),
                    Record::Line(line) => store.append_transcript(call, line).await,
                    Record::End { reason, ended_at, error } => {
                        store.end_call(call, *reason, *ended_at, error.as_deref()).await.map(drop)
                    }
                };
                if let Err(err) = result {
                    tracing::error!(call_id = %call, error = %err, ?record, "could not store call progress");
                }
            }
        });
        Self { tx, task }
    }

    /// Queues a record without waiting, unless the queue is full.
    pub async fn record(&self, record: Record) {
        if let Err(mpsc::error::TrySendError::Full(record)) = self.tx.try_send(record) {
            let _ = self.tx.send(record).await;
        }
    }

    /// Waits until everything queued is stored.
    pub async fn finish(self) {
        drop(self.tx);
        let _ = self.task.await;
    }
}
