//! Writes a call's progress to the database from its own task, so the call's media loop
//! never waits on the database. Records are applied one at a time, in order; a record the
//! database cannot take now (locked, read-only, unreachable) is retried with back-off
//! until it is stored or the store closes, before the next one is touched. The queue is
//! bounded: a session that fills it waits rather than drops. The session awaits the
//! recorder at the end, for a while, so the row is normally final before the caller is
//! told the call ended; a database still unavailable then is waited for in the background.

use std::time::Duration;

use backon::{ExponentialBuilder, Retryable};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::ids::{CallId, UserId};
use crate::store::{EndReason, Store, StoreError, TranscriptLine};
use crate::time::UnixMs;

/// One change to a call's stored state.
#[derive(Debug)]
pub enum Record {
    /// Audio flows both ways since `answered_at`.
    Active { answered_at: UnixMs },
    /// A final transcript line.
    Line(TranscriptLine),
    /// A human agent's media joined the call.
    HumanJoined { agent: UserId, at: UnixMs },
    /// The human agent left (handed the caller back).
    HumanLeft { at: UnixMs },
    /// The call ended.
    End { reason: EndReason, ended_at: UnixMs, error: Option<String> },
}

impl Record {
    /// What the record is, for logs (never the words of a line).
    fn kind(&self) -> &'static str {
        match self {
            Self::Active { .. } => "active",
            Self::Line(_) => "transcript line",
            Self::HumanJoined { .. } => "human joined",
            Self::HumanLeft { .. } => "human left",
            Self::End { .. } => "end",
        }
    }
}

/// The sending half, owned by the call session.
pub struct Recorder {
    tx: mpsc::Sender<Record>,
    task: JoinHandle<()>,
}

/// Records queued before the recorder applies back-pressure (lines are small; a stalled
/// database for this long is an outage, and the session then waits rather than drops).
const QUEUE: usize = 1024;

/// How long [`Recorder::finish`] waits for the queue to drain before leaving the rest to
/// the background task (the caller is then told the call ended without waiting further).
pub const FINISH_WAIT: Duration = Duration::from_secs(3);

/// Back-off between attempts at a record the database could not take: from 100 ms,
/// doubling, at most 5 s apart, with jitter, for as long as it takes.
fn backoff() -> ExponentialBuilder {
    ExponentialBuilder::default()
        .with_min_delay(Duration::from_millis(100))
        .with_max_delay(Duration::from_secs(5))
        .with_factor(2.0)
        .with_jitter()
        .without_max_times()
}

impl Recorder {
    /// Starts the recorder of one call.
    pub fn start(store: Store, call: CallId) -> Self {
        let (tx, mut rx) = mpsc::channel::<Record>(QUEUE);
        let task = tokio::spawn(async move {
            while let Some(record) = rx.recv().await {
                if let Err(err) = store_with_retry(&store, call, &record).await {
                    tracing::error!(call_id = %call, error = %err, record = record.kind(), "could not store call progress");
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

    /// Waits until everything queued is stored, or [`FINISH_WAIT`] at most: past that
    /// the remaining records are still retried in the background.
    pub async fn finish(self) {
        drop(self.tx);
        if tokio::time::timeout(FINISH_WAIT, self.task).await.is_err() {
            tracing::warn!("the database is unavailable; the call's last records are stored when it is back");
        }
    }
}

/// Applies a record, retrying while the database is unavailable and the store open.
async fn store_with_retry(store: &Store, call: CallId, record: &Record) -> Result<(), StoreError> {
    let mut attempts = 0u32;
    let attempt = || {
        attempts += 1;
        let retried = attempts > 1;
        async move {
            match apply(store, call, record).await {
                // An earlier attempt was stored but its answer lost: the line is there.
                Err(StoreError::Conflict) if retried => Ok(()),
                other => other,
            }
        }
    };
    attempt
        .retry(backoff())
        .sleep(tokio::time::sleep)
        .when(|err: &StoreError| err.is_unavailable() && !store.is_closed())
        .notify(|err, wait| {
            tracing::warn!(call_id = %call, error = %err, record = record.kind(), retry_in = ?wait,
                "the database is unavailable; the call's progress will be stored when it is back");
        })
        .await
}

async fn apply(store: &Store, call: CallId, record: &Record) -> Result<(), StoreError> {
    match record {
        Record::Active { answered_at } => store.mark_call_active(call, *answered_at).await.map(drop),
        Record::Line(line) => store.append_transcript(call, line).await,
        Record::HumanJoined { agent, at } => store.mark_human_joined(call, *agent, *at).await.map(drop),
        Record::HumanLeft { at } => store.mark_human_left(call, *at).await.map(drop),
        Record::End { reason, ended_at, error } => {
            store.end_call(call, *reason, *ended_at, error.as_deref()).await.map(drop)
        }
    }
}

#[cfg(test)]
mod tests {
    use sqlx::Connection;

    use super::*;
    use crate::settings::{ChatbotSettings, CompanySettings};
    use crate::store::{CallSource, CallStatus, ChatbotType, NewCall, NewChatbot, TranscriptRole};

    #[tokio::test]
    async fn a_call_ending_while_the_database_is_locked_is_stored_once_it_is_free() {
        let (store, dir) = crate::store::testing::sqlite_store().await;
        let company = store.create_company("Acme", &CompanySettings::default()).await.unwrap();
        let bot = store
            .create_chatbot(
                company.id,
                NewChatbot {
                    name: "Voice".into(),
                    description: String::new(),
                    chatbot_type: ChatbotType::Call,
                    call_model_id: None,
                    instructions: String::new(),
                    settings: ChatbotSettings::default(),
                },
            )
            .await
            .unwrap();
        let call = store
            .create_call(NewCall {
                company_id: company.id,
                chatbot_id: bot.id,
                source: CallSource::Web,
                is_test: false,
                caller: None,
                provider: "openai".into(),
                model_id: "gpt-realtime".into(),
                node_id: "node-a".into(),
                token_hash: None,
                token_expires_at: None,
                integration_account_id: None,
                external_id: None,
            })
            .await
            .unwrap();
        assert!(store.mark_call_connecting(call.id, "node-a").await.unwrap());
        let answered_at = crate::time::now_ms();
        let recorder = Recorder::start(store.clone(), call.id);
        recorder.record(Record::Active { answered_at }).await;

        // Another process holds the write lock for longer than the busy timeout.
        let url = format!("sqlite://{}", dir.path().join("test.db").display());
        let mut holder = sqlx::AnyConnection::connect(&url).await.unwrap();
        sqlx::query("BEGIN EXCLUSIVE").execute(&mut holder).await.unwrap();
        for seq in 0..3 {
            let line = TranscriptLine {
                seq,
                role: TranscriptRole::Agent,
                content: format!("line {seq}"),
                item_id: None,
                offset_ms: seq * 1000,
            };
            recorder.record(Record::Line(line)).await;
        }
        recorder
            .record(Record::End { reason: EndReason::CallerHangup, ended_at: answered_at + 4000, error: None })
            .await;
        let finishing = std::time::Instant::now();
        recorder.finish().await;
        assert!(finishing.elapsed() < FINISH_WAIT + Duration::from_secs(1), "finish does not wait for the outage");
        tokio::time::sleep(Duration::from_secs(6)).await;
        sqlx::query("ROLLBACK").execute(&mut holder).await.unwrap();

        let stored = async {
            loop {
                let row = store.call(call.id).await.unwrap().unwrap();
                if row.status.is_final() {
                    return row;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        };
        let row =
            tokio::time::timeout(Duration::from_secs(15), stored).await.expect("the end is stored after the outage");
        assert_eq!((row.status, row.end_reason), (CallStatus::Completed, Some(EndReason::CallerHangup)));
        assert_eq!((row.answered_at, row.duration_ms), (Some(answered_at), Some(4000)), "in order: active, then end");
        let lines = store.transcript(call.id).await.unwrap();
        assert_eq!(lines.iter().map(|l| l.content.as_str()).collect::<Vec<_>>(), ["line 0", "line 1", "line 2"]);
    }
}
