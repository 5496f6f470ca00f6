//! `calls` and `call_transcripts`.

use sqlx::Row;

use super::{Store, StoreResult, parse_enum, parse_id};
use crate::ids::{CallId, ChatbotId, CompanyId, ConversationId, TranscriptLineId};
use crate::time::{UnixMs, now_ms};

text_enum!(
    /// Where the caller came from.
    CallSource {
        /// The website widget (WebRTC).
        Web = "web",
        /// WhatsApp Business calling.
        WhatsApp = "whatsapp",
        /// A phone call through Twilio.
        Twilio = "twilio",
    }
);

text_enum!(
    /// Lifecycle of a call: pending → connecting → active → completed | failed.
    CallStatus {
        /// Session created; the caller has not connected yet.
        Pending = "pending",
        /// The caller is connecting (signaling, ICE, DTLS; the provider session opening).
        Connecting = "connecting",
        /// Audio flows both ways.
        Active = "active",
        /// Ended normally.
        Completed = "completed",
        /// Ended by a failure (network, provider, ...).
        Failed = "failed",
    }
);

/// The error message of a call whose node stopped before the call ended (its end reason
/// is `error`): found open when that node started again.
pub const NODE_LOST: &str = "node_lost: the gateway node holding this call stopped before the call ended";

impl CallStatus {
    /// Whether the call is over.
    pub fn is_final(self) -> bool {
        matches!(self, Self::Completed | Self::Failed)
    }
}

text_enum!(
    /// Why a call ended.
    EndReason {
        /// The caller hung up.
        CallerHangup = "caller_hangup",
        /// A human agent or admin ended it.
        AgentHangup = "agent_hangup",
        /// The caller's network went away (ICE failed or stayed disconnected).
        NetworkLost = "network_lost",
        /// The AI provider could not be reached or failed mid-call.
        ProviderError = "provider_error",
        /// The caller stayed silent past the silence timeout.
        SilenceTimeout = "silence_timeout",
        /// The call reached its maximum duration.
        MaxDuration = "max_duration",
        /// The caller said the end-call phrase (or the agent ended the call).
        EndPhrase = "end_phrase",
        /// The caller never connected before the session expired.
        Expired = "expired",
        /// The gateway shut down cleanly and ended the call.
        Shutdown = "shutdown",
        /// Handed over to a human agent.
        Transferred = "transferred",
        /// An internal error, or the node holding the call was lost (error message
        /// [`NODE_LOST`]).
        Error = "error",
    }
);

impl EndReason {
    /// The final status a call ending for this reason gets.
    pub fn final_status(self) -> CallStatus {
        match self {
            Self::NetworkLost | Self::ProviderError | Self::Error | Self::Shutdown => CallStatus::Failed,
            _ => CallStatus::Completed,
        }
    }
}

text_enum!(
    /// Who said a transcript line.
    TranscriptRole {
        /// The caller.
        User = "user",
        /// The AI agent (or the human agent who took over).
        Agent = "agent",
        /// The system: tool calls, their results, notices.
        System = "system",
    }
);

/// A call.
#[derive(Debug, Clone)]
pub struct Call {
    pub id: CallId,
    pub company_id: CompanyId,
    pub chatbot_id: ChatbotId,
    pub source: CallSource,
    pub status: CallStatus,
    pub end_reason: Option<EndReason>,
    pub is_test: bool,
    pub caller: Option<String>,
    pub provider: Option<String>,
    pub model_id: Option<String>,
    pub node_id: Option<String>,
    pub token_hash: Option<String>,
    pub token_expires_at: Option<UnixMs>,
    pub created_at: UnixMs,
    pub connected_at: Option<UnixMs>,
    pub answered_at: Option<UnixMs>,
    pub ended_at: Option<UnixMs>,
    pub duration_ms: Option<i64>,
    pub rating: Option<i64>,
    pub rating_comment: Option<String>,
    pub error_message: Option<String>,
}

/// A call to create, in status `pending`.
#[derive(Debug, Clone)]
pub struct NewCall {
    pub company_id: CompanyId,
    pub chatbot_id: ChatbotId,
    pub source: CallSource,
    pub is_test: bool,
    pub caller: Option<String>,
    pub provider: String,
    pub model_id: String,
    pub node_id: String,
    pub token_hash: Option<String>,
    pub token_expires_at: Option<UnixMs>,
}

/// A final line of a call's transcript.
#[derive(Debug, Clone, PartialEq)]
pub struct TranscriptLine {
    pub seq: i64,
    pub role: TranscriptRole,
    pub content: String,
    pub item_id: Option<String>,
    /// Milliseconds since the call was answered.
    pub offset_ms: i64,
}

const COLUMNS: &str = "id, company_id, chatbot_id, source, status, end_reason, is_test, caller, provider, model_id, node_id, \
    token_hash, token_expires_at, created_at, connected_at, answered_at, ended_at, duration_ms, rating, rating_comment, error_message";

fn from_row(row: &sqlx::any::AnyRow) -> StoreResult<Call> {
    let reason: Option<String> = row.try_get("end_reason")?;
    Ok(Call {
        id: parse_id(&row.try_get::<String, _>("id")?)?,
        company_id: parse_id(&row.try_get::<String, _>("company_id")?)?,
        chatbot_id: parse_id(&row.try_get::<String, _>("chatbot_id")?)?,
        source: parse_enum(&row.try_get::<String, _>("source")?, "call source")?,
        status: parse_enum(&row.try_get::<String, _>("status")?, "call status")?,
        end_reason: reason.as_deref().map(|r| parse_enum(r, "end reason")).transpose()?,
        is_test: row.try_get::<i64, _>("is_test")? != 0,
        caller: row.try_get("caller")?,
        provider: row.try_get("provider")?,
        model_id: row.try_get("model_id")?,
        node_id: row.try_get("node_id")?,
        token_hash: row.try_get("token_hash")?,
        token_expires_at: row.try_get("token_expires_at")?,
        created_at: row.try_get("created_at")?,
        connected_at: row.try_get("connected_at")?,
        answered_at: row.try_get("answered_at")?,
        ended_at: row.try_get("ended_at")?,
        duration_ms: row.try_get("duration_ms")?,
        rating: row.try_get("rating")?,
        rating_comment: row.try_get("rating_comment")?,
        error_message: row.try_get("error_message")?,
    })
}

impl Store {
    /// Creates a call in status `pending`.
    /// The call opens a `voice_call` conversation, so the inbox and escalations see calls
    /// next to chats; it is resolved when the call ends.
    pub async fn create_call(&self, new: NewCall) -> StoreResult<Call> {
        let now = now_ms();
        let id = CallId::new();
        let conversation = ConversationId::new();
        let mut tx = self.pool().begin().await?;
        sqlx::query(
            "INSERT INTO conversations (id, company_id, chatbot_id, channel, status, created_at, updated_at) \
             VALUES ($1, $2, $3, 'voice_call', 'active', $4, $5)",
        )
        .bind(conversation.as_string())
        .bind(new.company_id.as_string())
        .bind(new.chatbot_id.as_string())
        .bind(now)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "INSERT INTO calls (id, company_id, chatbot_id, conversation_id, source, status, is_test, caller, provider, \
             model_id, node_id, token_hash, token_expires_at, created_at, updated_at) \
             VALUES ($1, $2, $3, $14, $4, 'pending', $5, $6, $7, $8, $9, $10, $11, $12, $13)",
        )
        .bind(id.as_string())
        .bind(new.company_id.as_string())
        .bind(new.chatbot_id.as_string())
        .bind(new.source.as_str())
        .bind(i64::from(new.is_test))
        .bind(&new.caller)
        .bind(&new.provider)
        .bind(&new.model_id)
        .bind(&new.node_id)
        .bind(&new.token_hash)
        .bind(new.token_expires_at)
        .bind(now)
        .bind(now)
        .bind(conversation.as_string())
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(self.call(id).await?.expect("the call was just inserted"))
    }

    /// A call by id (the widget API checks its session token separately).
    pub async fn call(&self, id: CallId) -> StoreResult<Option<Call>> {
        let row = sqlx::query(&format!("SELECT {COLUMNS} FROM calls WHERE id = $1"))
            .bind(id.as_string())
            .fetch_optional(self.pool())
            .await?;
        row.as_ref().map(from_row).transpose()
    }

    /// A call of a company.
    pub async fn call_for_company(&self, company: CompanyId, id: CallId) -> StoreResult<Option<Call>> {
        let row = sqlx::query(&format!("SELECT {COLUMNS} FROM calls WHERE id = $1 AND company_id = $2"))
            .bind(id.as_string())
            .bind(company.as_string())
            .fetch_optional(self.pool())
            .await?;
        row.as_ref().map(from_row).transpose()
    }

    /// A company's most recent calls.
    pub async fn list_calls(&self, company: CompanyId, limit: i64) -> StoreResult<Vec<Call>> {
        let rows = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM calls WHERE company_id = $1 ORDER BY created_at DESC, id LIMIT $2"
        ))
        .bind(company.as_string())
        .bind(limit)
        .fetch_all(self.pool())
        .await?;
        rows.iter().map(from_row).collect()
    }

    /// pending → connecting. False if the call is not pending (already used or ended).
    pub async fn mark_call_connecting(&self, id: CallId, node_id: &str) -> StoreResult<bool> {
        let now = now_ms();
        let done = sqlx::query(
            "UPDATE calls SET status = 'connecting', connected_at = $1, node_id = $2, updated_at = $3 \
             WHERE id = $4 AND status = 'pending'",
        )
        .bind(now)
        .bind(node_id)
        .bind(now)
        .bind(id.as_string())
        .execute(self.pool())
        .await?;
        Ok(done.rows_affected() > 0)
    }

    /// connecting → active, at `answered_at`.
    pub async fn mark_call_active(&self, id: CallId, answered_at: UnixMs) -> StoreResult<bool> {
        let done = sqlx::query(
            "UPDATE calls SET status = 'active', answered_at = $1, updated_at = $2 WHERE id = $3 AND status = 'connecting'",
        )
        .bind(answered_at)
        .bind(now_ms())
        .bind(id.as_string())
        .execute(self.pool())
        .await?;
        Ok(done.rows_affected() > 0)
    }

    /// Ends a call that is not over yet: status from the reason, end time, and the
    /// duration (from answer to end; 0 if it was never answered). False if it had ended.
    pub async fn end_call(
        &self,
        id: CallId,
        reason: EndReason,
        ended_at: UnixMs,
        error_message: Option<&str>,
    ) -> StoreResult<bool> {
        let status = match (reason.final_status(), self.call(id).await?) {
            (_, None) => return Ok(false),
            (_, Some(call)) if call.status.is_final() => return Ok(false),
            // A call that never became active did not complete, whatever the reason.
            (CallStatus::Completed, Some(call)) if call.answered_at.is_none() && reason != EndReason::CallerHangup => {
                CallStatus::Failed
            }
            (status, Some(_)) => status,
        };
        let done = sqlx::query(
            "UPDATE calls SET status = $1, end_reason = $2, ended_at = $3, \
             duration_ms = CASE WHEN answered_at IS NULL THEN 0 ELSE $4 - answered_at END, \
             error_message = $5, updated_at = $6 \
             WHERE id = $7 AND status NOT IN ('completed', 'failed')",
        )
        .bind(status.as_str())
        .bind(reason.as_str())
        .bind(ended_at)
        .bind(ended_at)
        .bind(error_message)
        .bind(now_ms())
        .bind(id.as_string())
        .execute(self.pool())
        .await?;
        if done.rows_affected() == 0 {
            return Ok(false);
        }
        sqlx::query(
            "UPDATE conversations SET status = 'resolved', updated_at = $1 \
             WHERE id = (SELECT conversation_id FROM calls WHERE id = $2) AND status = 'active'",
        )
        .bind(now_ms())
        .bind(id.as_string())
        .execute(self.pool())
        .await?;
        Ok(true)
    }

    /// Stores the caller's rating of a call. The first rating stands: false if the call
    /// was rated already (or does not exist).
    pub async fn rate_call(&self, id: CallId, rating: i64, comment: Option<&str>) -> StoreResult<bool> {
        let done = sqlx::query(
            "UPDATE calls SET rating = $1, rating_comment = $2, updated_at = $3 WHERE id = $4 AND rating IS NULL",
        )
        .bind(rating)
        .bind(comment)
        .bind(now_ms())
        .bind(id.as_string())
        .execute(self.pool())
        .await?;
        Ok(done.rows_affected() > 0)
    }

    /// Ends every call this node left open: it stopped without ending them (crash, kill,
    /// or a database that stayed unavailable), so they cannot be resumed, and leaving
    /// them 'active' would mislead the dashboards. A clean shutdown ends its calls with
    /// `shutdown` itself; these end `error` with [`NODE_LOST`] as the error message.
    pub async fn fail_orphaned_calls(&self, node_id: &str) -> StoreResult<u64> {
        let now = now_ms();
        let done = sqlx::query(
            "UPDATE calls SET status = 'failed', end_reason = 'error', error_message = $1, ended_at = $2, \
             duration_ms = CASE WHEN answered_at IS NULL THEN 0 ELSE $3 - answered_at END, updated_at = $4 \
             WHERE node_id = $5 AND status IN ('connecting', 'active')",
        )
        .bind(NODE_LOST)
        .bind(now)
        .bind(now)
        .bind(now)
        .bind(node_id)
        .execute(self.pool())
        .await?;
        self.resolve_conversations_of_ended_calls().await?;
        Ok(done.rows_affected())
    }

    /// Ends sessions whose token expired before their caller ever connected (`expired`),
    /// so no `pending` row lingers. Returns how many.
    pub async fn expire_pending_calls(&self) -> StoreResult<u64> {
        let now = now_ms();
        let done = sqlx::query(
            "UPDATE calls SET status = 'failed', end_reason = 'expired', ended_at = $1, duration_ms = 0, updated_at = $2 \
             WHERE status = 'pending' AND token_expires_at IS NOT NULL AND token_expires_at < $3",
        )
        .bind(now)
        .bind(now)
        .bind(now)
        .execute(self.pool())
        .await?;
        self.resolve_conversations_of_ended_calls().await?;
        Ok(done.rows_affected())
    }

    /// Resolves the `voice_call` conversations of calls that have ended.
    async fn resolve_conversations_of_ended_calls(&self) -> StoreResult<()> {
        sqlx::query(
            "UPDATE conversations SET status = 'resolved', updated_at = $1 WHERE status = 'active' AND channel = 'voice_call' \
             AND id IN (SELECT conversation_id FROM calls WHERE status IN ('completed', 'failed') AND conversation_id IS NOT NULL)",
        )
        .bind(now_ms())
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// Appends a final transcript line.
    pub async fn append_transcript(&self, call: CallId, line: &TranscriptLine) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO call_transcripts (id, call_id, seq, role, content, item_id, offset_ms, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(TranscriptLineId::new().as_string())
        .bind(call.as_string())
        .bind(line.seq)
        .bind(line.role.as_str())
        .bind(&line.content)
        .bind(&line.item_id)
        .bind(line.offset_ms)
        .bind(now_ms())
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// A call's transcript in order.
    pub async fn transcript(&self, call: CallId) -> StoreResult<Vec<TranscriptLine>> {
        let rows = sqlx::query(
            "SELECT seq, role, content, item_id, offset_ms FROM call_transcripts WHERE call_id = $1 ORDER BY seq",
        )
        .bind(call.as_string())
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|row| {
                Ok(TranscriptLine {
                    seq: row.try_get("seq")?,
                    role: parse_enum(&row.try_get::<String, _>("role")?, "transcript role")?,
                    content: row.try_get("content")?,
                    item_id: row.try_get("item_id")?,
                    offset_ms: row.try_get("offset_ms")?,
                })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use crate::store::testing::store_test;

    store_test!(a_call_moves_through_its_lifecycle_and_keeps_its_transcript, |store| {
        use crate::settings::{ChatbotSettings, CompanySettings};
        use crate::store::{
            CallSource, CallStatus, ChatbotType, EndReason, NewCall, NewChatbot, TranscriptLine, TranscriptRole,
        };
        let acme = store.create_company("Acme", &CompanySettings::default()).await.unwrap();
        let bot = store
            .create_chatbot(
                acme.id,
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
        let new_call = |token: &str| NewCall {
            company_id: acme.id,
            chatbot_id: bot.id,
            source: CallSource::Web,
            is_test: false,
            caller: None,
            provider: "openai".into(),
            model_id: "gpt-realtime".into(),
            node_id: "node-a".into(),
            token_hash: Some(token.into()),
            token_expires_at: Some(1),
        };
        let call = store.create_call(new_call("h")).await.unwrap();
        assert_eq!(call.status, CallStatus::Pending);
        assert!(store.mark_call_connecting(call.id, "node-a").await.unwrap());
        assert!(!store.mark_call_connecting(call.id, "node-a").await.unwrap(), "only once");
        let answered = crate::time::now_ms();
        assert!(store.mark_call_active(call.id, answered).await.unwrap());
        for (seq, role, text) in [(0, TranscriptRole::Agent, "Hi!"), (1, TranscriptRole::User, "Hello")] {
            let line = TranscriptLine { seq, role, content: text.into(), item_id: None, offset_ms: seq * 1000 };
            store.append_transcript(call.id, &line).await.unwrap();
        }
        assert!(store.end_call(call.id, EndReason::CallerHangup, answered + 2500, None).await.unwrap());
        assert!(!store.end_call(call.id, EndReason::NetworkLost, answered + 9000, None).await.unwrap(), "ends once");
        let ended = store.call(call.id).await.unwrap().unwrap();
        assert_eq!((ended.status, ended.end_reason), (CallStatus::Completed, Some(EndReason::CallerHangup)));
        assert_eq!(ended.duration_ms, Some(2500));
        assert!(ended.token_hash.is_some(), "the token still proves the caller, for the rating");
        let conversation: (String, String) = sqlx::query_as(
            "SELECT channel, status FROM conversations WHERE id = (SELECT conversation_id FROM calls WHERE id = $1)",
        )
        .bind(call.id.as_string())
        .fetch_one(store.pool())
        .await
        .unwrap();
        assert_eq!(conversation, ("voice_call".to_owned(), "resolved".to_owned()));
        let lines = store.transcript(call.id).await.unwrap();
        assert_eq!(lines.iter().map(|l| l.content.as_str()).collect::<Vec<_>>(), vec!["Hi!", "Hello"]);
        assert!(store.rate_call(call.id, 5, Some("great")).await.unwrap());
        assert!(!store.rate_call(call.id, 1, Some("changed my mind")).await.unwrap(), "the first rating stands");
        let rated = store.call(call.id).await.unwrap().unwrap();
        assert_eq!((rated.rating, rated.rating_comment.as_deref()), (Some(5), Some("great")));

        // A session nobody connected to expires.
        let stale = store.create_call(new_call("h2")).await.unwrap();
        assert_eq!(store.expire_pending_calls().await.unwrap(), 1);
        let stale = store.call(stale.id).await.unwrap().unwrap();
        assert_eq!((stale.status, stale.end_reason), (CallStatus::Failed, Some(EndReason::Expired)));
        assert_eq!(store.expire_pending_calls().await.unwrap(), 0);

        // A call its node left open (a crash) is found when that node starts again: it
        // did not end by a clean shutdown.
        let orphan = store.create_call(new_call("h3")).await.unwrap();
        assert!(store.mark_call_connecting(orphan.id, "node-a").await.unwrap());
        assert!(store.mark_call_active(orphan.id, crate::time::now_ms()).await.unwrap());
        assert_eq!(store.fail_orphaned_calls("node-b").await.unwrap(), 0, "only the node's own calls");
        assert_eq!(store.fail_orphaned_calls("node-a").await.unwrap(), 1);
        let orphan = store.call(orphan.id).await.unwrap().unwrap();
        assert_eq!((orphan.status, orphan.end_reason), (CallStatus::Failed, Some(EndReason::Error)));
        assert_eq!(orphan.error_message.as_deref(), Some(crate::store::NODE_LOST));
        assert!(store.call_for_company(crate::ids::CompanyId::new(), call.id).await.unwrap().is_none());
    });
}
