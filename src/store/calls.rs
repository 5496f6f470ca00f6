//! `calls` and `call_transcripts`.
//!
//! The writes that move a call to `active` or to its final status also write its event
//! for the company's systems (`call.started`, `call.ended` / `call.failed`) in the same
//! transaction (see `store::events`), and count it in the metrics once committed.

use sqlx::{AnyConnection, Row};

use super::{
    MAX_PENDING_PER_COMPANY, NoticeKind, Store, StoreResult, events, insert_event, notices, parse_enum, parse_id,
};
use crate::domain::{CallSource, CallStatus, EndReason, TranscriptRole};
use crate::events::payload::{CallEnded, CallStarted, EventData, end_event_type};
use crate::ids::{CallId, ChatbotId, CompanyId, ConversationId, IntegrationAccountId, TranscriptLineId, UserId};
use crate::metrics::timed;
use crate::time::{UnixMs, now_ms};

/// The error message of a call whose node stopped before the call ended (its end reason
/// is `error`): found open when that node started again.
pub const NODE_LOST: &str = "node_lost: the gateway node holding this call stopped before the call ended";

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
    /// The integration account a phone or WhatsApp call came in through.
    pub integration_account_id: Option<IntegrationAccountId>,
    /// The carrier's id of the call (Twilio CallSid, Meta call id).
    pub external_id: Option<String>,
    /// The support agent who took the call over, when their media joined and when they
    /// left it (handed back, or the call ended).
    pub human_agent_id: Option<UserId>,
    pub human_joined_at: Option<UnixMs>,
    pub human_left_at: Option<UnixMs>,
}

impl Call {
    /// Whether a human agent is on the call now.
    pub fn with_human(&self) -> bool {
        self.human_joined_at.is_some() && self.human_left_at.is_none() && !self.status.is_final()
    }
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
    /// The integration account a phone or WhatsApp call came in through.
    pub integration_account_id: Option<IntegrationAccountId>,
    /// The carrier's id of the call, unique per source.
    pub external_id: Option<String>,
}

/// Which of a company's calls a history lists: every condition that is set must hold.
#[derive(Debug, Clone)]
pub struct CallFilter {
    pub chatbot: Option<ChatbotId>,
    pub source: Option<CallSource>,
    pub status: Option<CallStatus>,
    /// Created at or after this instant.
    pub created_from: Option<UnixMs>,
    /// Created before this instant.
    pub created_before: Option<UnixMs>,
    /// At most this many calls, the most recent.
    pub limit: i64,
}

impl CallFilter {
    /// The most recent `limit` calls, whatever they are.
    pub fn latest(limit: i64) -> Self {
        Self { chatbot: None, source: None, status: None, created_from: None, created_before: None, limit }
    }
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
    token_hash, token_expires_at, created_at, connected_at, answered_at, ended_at, duration_ms, rating, rating_comment, error_message, \
    integration_account_id, external_id, human_agent_id, human_joined_at, human_left_at";

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
        integration_account_id: row
            .try_get::<Option<String>, _>("integration_account_id")?
            .as_deref()
            .map(parse_id)
            .transpose()?,
        external_id: row.try_get("external_id")?,
        human_agent_id: row.try_get::<Option<String>, _>("human_agent_id")?.as_deref().map(parse_id).transpose()?,
        human_joined_at: row.try_get("human_joined_at")?,
        human_left_at: row.try_get("human_left_at")?,
    })
}

impl Store {
    /// Creates a call in status `pending`.
    /// The call opens a `voice_call` conversation, so the inbox and escalations see calls
    /// next to chats; it is resolved when the call ends.
    pub async fn create_call(&self, new: NewCall) -> StoreResult<Call> {
        timed("create_call", self.insert_call(new)).await
    }

    async fn insert_call(&self, new: NewCall) -> StoreResult<Call> {
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
             model_id, node_id, token_hash, token_expires_at, created_at, updated_at, integration_account_id, external_id) \
             VALUES ($1, $2, $3, $14, $4, 'pending', $5, $6, $7, $8, $9, $10, $11, $12, $13, $15, $16)",
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
        .bind(new.integration_account_id.map(|id| id.as_string()))
        .bind(&new.external_id)
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

    /// The call a carrier knows as `external_id` (its CallSid or call id).
    pub async fn call_by_external_id(&self, source: CallSource, external_id: &str) -> StoreResult<Option<Call>> {
        let row = sqlx::query(&format!("SELECT {COLUMNS} FROM calls WHERE source = $1 AND external_id = $2"))
            .bind(source.as_str())
            .bind(external_id)
            .fetch_optional(self.pool())
            .await?;
        row.as_ref().map(from_row).transpose()
    }

    /// Gives a call that is still pending a new session token (a carrier repeated its
    /// webhook: only the latest answer's token opens the call). False if it is not pending.
    pub async fn renew_call_token(&self, id: CallId, token_hash: &str, expires_at: UnixMs) -> StoreResult<bool> {
        let done = sqlx::query(
            "UPDATE calls SET token_hash = $1, token_expires_at = $2, updated_at = $3 WHERE id = $4 AND status = 'pending'",
        )
        .bind(token_hash)
        .bind(expires_at)
        .bind(now_ms())
        .bind(id.as_string())
        .execute(self.pool())
        .await?;
        Ok(done.rows_affected() > 0)
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

    /// A company's most recent calls that pass `filter`, newest first.
    pub async fn list_calls(&self, company: CompanyId, filter: &CallFilter) -> StoreResult<Vec<Call>> {
        let mut conditions = vec!["company_id = $1".to_owned()];
        let mut next = 2;
        let mut condition = |sql: &str| {
            conditions.push(sql.replace('?', &format!("${next}")));
            next += 1;
        };
        if filter.chatbot.is_some() {
            condition("chatbot_id = ?");
        }
        if filter.source.is_some() {
            condition("source = ?");
        }
        if filter.status.is_some() {
            condition("status = ?");
        }
        if filter.created_from.is_some() {
            condition("created_at >= ?");
        }
        if filter.created_before.is_some() {
            condition("created_at < ?");
        }
        let sql = format!(
            "SELECT {COLUMNS} FROM calls WHERE {} ORDER BY created_at DESC, id LIMIT ${next}",
            conditions.join(" AND ")
        );
        // Binds follow the order the conditions were added in.
        let mut query = sqlx::query(&sql).bind(company.as_string());
        if let Some(chatbot) = filter.chatbot {
            query = query.bind(chatbot.as_string());
        }
        if let Some(source) = filter.source {
            query = query.bind(source.as_str());
        }
        if let Some(status) = filter.status {
            query = query.bind(status.as_str());
        }
        if let Some(from) = filter.created_from {
            query = query.bind(from);
        }
        if let Some(before) = filter.created_before {
            query = query.bind(before);
        }
        let rows = query.bind(filter.limit).fetch_all(self.pool()).await?;
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

    /// A human agent's media joined the call at `at` (the call stays `active`).
    pub async fn mark_human_joined(&self, id: CallId, agent: UserId, at: UnixMs) -> StoreResult<bool> {
        timed("mark_human_joined", async {
            let done = sqlx::query(
                "UPDATE calls SET human_agent_id = $1, human_joined_at = $2, human_left_at = NULL, updated_at = $3 \
                 WHERE id = $4 AND status = 'active'",
            )
            .bind(agent.as_string())
            .bind(at)
            .bind(now_ms())
            .bind(id.as_string())
            .execute(self.pool())
            .await?;
            Ok(done.rows_affected() > 0)
        })
        .await
    }

    /// The human agent left the call at `at` (handed the caller back to the AI).
    pub async fn mark_human_left(&self, id: CallId, at: UnixMs) -> StoreResult<bool> {
        timed("mark_human_left", async {
            let done = sqlx::query(
                "UPDATE calls SET human_left_at = $1, updated_at = $2 \
                 WHERE id = $3 AND human_joined_at IS NOT NULL AND human_left_at IS NULL",
            )
            .bind(at)
            .bind(now_ms())
            .bind(id.as_string())
            .execute(self.pool())
            .await?;
            Ok(done.rows_affected() > 0)
        })
        .await
    }

    /// connecting → active, at `answered_at`, with its `call.started` event.
    pub async fn mark_call_active(&self, id: CallId, answered_at: UnixMs) -> StoreResult<bool> {
        timed("mark_call_active", async {
            let mut tx = self.begin_write().await?;
            let done = sqlx::query(
                "UPDATE calls SET status = 'active', answered_at = $1, updated_at = $2 WHERE id = $3 AND status = 'connecting'",
            )
            .bind(answered_at)
            .bind(now_ms())
            .bind(id.as_string())
            .execute(&mut *tx)
            .await?;
            if done.rows_affected() == 0 {
                return Ok(false);
            }
            let call = call_on(&mut tx, id).await?;
            insert_event(&mut tx, call.company_id, &EventData::CallStarted(CallStarted::new(&call)), answered_at).await?;
            tx.commit().await?;
            let setup = call.connected_at.map(|at| std::time::Duration::from_millis((answered_at - at).max(0) as u64));
            crate::metrics::call_answered(call.source, setup);
            Ok(true)
        })
        .await
    }

    /// Ends a call that is not over yet: status from the reason, end time, and the
    /// duration (from answer to end; 0 if it was never answered), with its `call.ended` or
    /// `call.failed` event. A `provider_error` ending counts towards the company's provider
    /// failures (a notice and `integration.failed` when persistent); a completed call
    /// resolves an open provider-failure notice. False if it had ended.
    pub async fn end_call(
        &self,
        id: CallId,
        reason: EndReason,
        ended_at: UnixMs,
        error_message: Option<&str>,
    ) -> StoreResult<bool> {
        timed("end_call", async {
            let mut tx = self.begin_write().await?;
            // A call that never became active did not complete, whatever the reason, unless
            // the caller hung up before it started.
            let done = sqlx::query(
                "UPDATE calls SET status = CASE WHEN $1 = 'completed' AND answered_at IS NULL AND $2 <> 'caller_hangup' \
                 THEN 'failed' ELSE $3 END, end_reason = $4, ended_at = $5, \
                 duration_ms = CASE WHEN answered_at IS NULL THEN 0 ELSE $6 - answered_at END, \
                 error_message = $7, updated_at = $8, \
                 human_left_at = CASE WHEN human_joined_at IS NOT NULL AND human_left_at IS NULL THEN $9 ELSE human_left_at END \
                 WHERE id = $10 AND status NOT IN ('completed', 'failed')",
            )
            .bind(reason.final_status().as_str())
            .bind(reason.as_str())
            .bind(reason.final_status().as_str())
            .bind(reason.as_str())
            .bind(ended_at)
            .bind(ended_at)
            .bind(error_message)
            .bind(now_ms())
            .bind(ended_at)
            .bind(id.as_string())
            .execute(&mut *tx)
            .await?;
            if done.rows_affected() == 0 {
                return Ok(false);
            }
            sqlx::query(
                "UPDATE conversations SET status = 'resolved', updated_at = $1 \
                 WHERE id = (SELECT conversation_id FROM calls WHERE id = $2) \
                 AND status IN ('active', 'waiting_human', 'with_human')",
            )
            .bind(now_ms())
            .bind(id.as_string())
            .execute(&mut *tx)
            .await?;
            let call = call_ended_on(&mut tx, id, ended_at).await?;
            if reason == EndReason::ProviderError {
                notices::note_provider_failure(&mut tx, &call, ended_at).await?;
            } else if call.status == CallStatus::Completed && call.answered_at.is_some() {
                let provider = call.provider.as_deref().unwrap_or("unknown");
                notices::resolve_notices(&mut tx, call.company_id, NoticeKind::ProviderFailures, provider, ended_at)
                    .await?;
            }
            tx.commit().await?;
            crate::metrics::call_finished(call.source, call.status, reason);
            Ok(true)
        })
        .await
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
        let mut tx = self.begin_write().await?;
        let ended: Vec<String> = sqlx::query_scalar(
            "UPDATE calls SET status = 'failed', end_reason = 'error', error_message = $1, ended_at = $2, \
             duration_ms = CASE WHEN answered_at IS NULL THEN 0 ELSE $3 - answered_at END, updated_at = $4 \
             WHERE node_id = $5 AND status IN ('connecting', 'active') RETURNING id",
        )
        .bind(NODE_LOST)
        .bind(now)
        .bind(now)
        .bind(now)
        .bind(node_id)
        .fetch_all(&mut *tx)
        .await?;
        let calls = record_endings(&mut tx, &ended, now).await?;
        tx.commit().await?;
        count_endings(&calls);
        self.resolve_conversations_of_ended_calls().await?;
        Ok(calls.len() as u64)
    }

    /// Ends sessions whose token expired before their caller ever connected (`expired`),
    /// so no `pending` row lingers. Returns how many.
    pub async fn expire_pending_calls(&self) -> StoreResult<u64> {
        let now = now_ms();
        let mut tx = self.begin_write().await?;
        let ended: Vec<String> = sqlx::query_scalar(
            "UPDATE calls SET status = 'failed', end_reason = 'expired', ended_at = $1, duration_ms = 0, updated_at = $2 \
             WHERE status = 'pending' AND token_expires_at IS NOT NULL AND token_expires_at < $3 RETURNING id",
        )
        .bind(now)
        .bind(now)
        .bind(now)
        .fetch_all(&mut *tx)
        .await?;
        let calls = record_endings(&mut tx, &ended, now).await?;
        tx.commit().await?;
        count_endings(&calls);
        self.resolve_conversations_of_ended_calls().await?;
        Ok(calls.len() as u64)
    }

    /// Resolves the `voice_call` conversations of calls that have ended.
    async fn resolve_conversations_of_ended_calls(&self) -> StoreResult<()> {
        sqlx::query(
            "UPDATE conversations SET status = 'resolved', updated_at = $1 \
             WHERE status IN ('active', 'waiting_human', 'with_human') AND channel = 'voice_call' \
             AND id IN (SELECT conversation_id FROM calls WHERE status IN ('completed', 'failed') AND conversation_id IS NOT NULL)",
        )
        .bind(now_ms())
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// Deletes a company's ended call with its transcript and recording row (the recording's
    /// file is the caller's to delete first). False if there is no such call, or it has not
    /// ended: a live call is never deleted under its session.
    pub async fn delete_call(&self, company: CompanyId, id: CallId) -> StoreResult<bool> {
        let mut tx = self.pool().begin().await?;
        let ended =
            sqlx::query("SELECT id FROM calls WHERE id = $1 AND company_id = $2 AND status IN ('completed', 'failed')")
                .bind(id.as_string())
                .bind(company.as_string())
                .fetch_optional(&mut *tx)
                .await?;
        if ended.is_none() {
            return Ok(false);
        }
        for table in ["call_transcripts", "call_recordings"] {
            sqlx::query(&format!("DELETE FROM {table} WHERE call_id = $1"))
                .bind(id.as_string())
                .execute(&mut *tx)
                .await?;
        }
        let done =
            sqlx::query("DELETE FROM calls WHERE id = $1 AND company_id = $2 AND status IN ('completed', 'failed')")
                .bind(id.as_string())
                .bind(company.as_string())
                .execute(&mut *tx)
                .await?;
        tx.commit().await?;
        Ok(done.rows_affected() > 0)
    }

    /// Appends a final transcript line.
    pub async fn append_transcript(&self, call: CallId, line: &TranscriptLine) -> StoreResult<()> {
        let insert = sqlx::query(
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
        .execute(self.pool());
        timed("append_transcript", insert).await?;
        Ok(())
    }

    /// A call's transcript in order.
    pub async fn transcript(&self, call: CallId) -> StoreResult<Vec<TranscriptLine>> {
        let mut conn = self.pool().acquire().await?;
        transcript_on(&mut conn, call).await
    }
}

async fn call_on(conn: &mut AnyConnection, id: CallId) -> StoreResult<Call> {
    let row = sqlx::query(&format!("SELECT {COLUMNS} FROM calls WHERE id = $1"))
        .bind(id.as_string())
        .fetch_one(&mut *conn)
        .await?;
    from_row(&row)
}

async fn transcript_on(conn: &mut AnyConnection, call: CallId) -> StoreResult<Vec<TranscriptLine>> {
    let rows = sqlx::query(
        "SELECT seq, role, content, item_id, offset_ms FROM call_transcripts WHERE call_id = $1 ORDER BY seq",
    )
    .bind(call.as_string())
    .fetch_all(&mut *conn)
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

/// Loads a call that was just ended on `conn` and writes its `call.ended` / `call.failed`
/// event, with the transcript stored so far (read only when an endpoint wants the event).
async fn call_ended_on(conn: &mut AnyConnection, id: CallId, now: UnixMs) -> StoreResult<Call> {
    let call = call_on(conn, id).await?;
    let endpoints = events::subscribers(conn, call.company_id, end_event_type(call.status)).await?;
    if !endpoints.is_empty() {
        let lines = transcript_on(conn, id).await?;
        let data = EventData::CallEnded(CallEnded::new(&call, lines));
        events::write_event(conn, call.company_id, &endpoints, &data, now, MAX_PENDING_PER_COMPANY).await?;
    }
    Ok(call)
}

/// The events of calls just ended together.
async fn record_endings(conn: &mut AnyConnection, ids: &[String], now: UnixMs) -> StoreResult<Vec<Call>> {
    let mut calls = Vec::with_capacity(ids.len());
    for id in ids {
        calls.push(call_ended_on(conn, parse_id(id)?, now).await?);
    }
    Ok(calls)
}

fn count_endings(calls: &[Call]) {
    for call in calls {
        if let Some(reason) = call.end_reason {
            crate::metrics::call_finished(call.source, call.status, reason);
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::store::testing::store_test;

    store_test!(a_call_moves_through_its_lifecycle_and_keeps_its_transcript, |store| {
        use crate::settings::CompanySettings;
        use crate::store::{CallSource, CallStatus, EndReason, NewCall, TranscriptLine, TranscriptRole};
        let acme = store.create_company("Acme", &CompanySettings::default()).await.unwrap();
        let bot = crate::store::testing::call_chatbot(&store, acme.id).await;
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
            integration_account_id: None,
            external_id: None,
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

        // Deleting: only an ended call, only by its company, with its transcript.
        let live = store.create_call(new_call("h3")).await.unwrap();
        assert!(!store.delete_call(acme.id, live.id).await.unwrap(), "a call that has not ended stays");
        assert!(!store.delete_call(crate::ids::CompanyId::new(), call.id).await.unwrap(), "another company's call");
        assert!(store.delete_call(acme.id, call.id).await.unwrap());
        assert!(store.call(call.id).await.unwrap().is_none());
        assert!(store.transcript(call.id).await.unwrap().is_empty());
        assert!(!store.delete_call(acme.id, call.id).await.unwrap(), "once");
        assert!(store.call(live.id).await.unwrap().is_some());
    });

    store_test!(call_state_changes_write_their_events_in_the_same_transaction, |store| {
        use crate::settings::CompanySettings;
        use crate::store::{CallSource, EndReason, EventType, NewCall, NoticeKind, TranscriptLine, TranscriptRole};
        let acme = store.create_company("Acme", &CompanySettings::default()).await.unwrap();
        let bot = crate::store::testing::call_chatbot(&store, acme.id).await;
        crate::store::testing::webhook(&store, acme.id, EventType::ALL).await;
        let new_call = || NewCall {
            company_id: acme.id,
            chatbot_id: bot.id,
            source: CallSource::Web,
            is_test: false,
            caller: None,
            provider: "openai".into(),
            model_id: "gpt-realtime".into(),
            node_id: "node-a".into(),
            token_hash: None,
            token_expires_at: Some(1),
            integration_account_id: None,
            external_id: None,
        };
        let payloads = || async {
            sqlx::query_as::<_, (String, String)>("SELECT event_type, payload FROM webhook_events ORDER BY seq")
                .fetch_all(store.pool())
                .await
                .unwrap()
        };

        let call = store.create_call(new_call()).await.unwrap();
        assert!(payloads().await.is_empty(), "a pending call is no event");
        store.mark_call_connecting(call.id, "node-a").await.unwrap();
        assert!(store.mark_call_active(call.id, 10_000).await.unwrap());
        assert!(!store.mark_call_active(call.id, 10_000).await.unwrap(), "once");
        let line =
            TranscriptLine { seq: 0, role: TranscriptRole::User, content: "Hi".into(), item_id: None, offset_ms: 0 };
        store.append_transcript(call.id, &line).await.unwrap();
        assert!(store.end_call(call.id, EndReason::CallerHangup, 25_000, None).await.unwrap());
        let events = payloads().await;
        assert_eq!(events.iter().map(|e| e.0.as_str()).collect::<Vec<_>>(), vec!["call.started", "call.ended"]);
        let ended: serde_json::Value = serde_json::from_str(&events[1].1).unwrap();
        assert_eq!(ended["data"]["callId"], call.id.to_string());
        assert_eq!(
            (ended["data"]["durationMs"].as_i64(), ended["data"]["endReason"].as_str()),
            (Some(15_000), Some("caller_hangup"))
        );
        assert_eq!(ended["data"]["transcript"][0]["content"], "Hi");

        // Three provider failures within ten minutes: one notice, one integration.failed.
        let now = crate::time::now_ms();
        for n in 0..4 {
            let failed = store.create_call(new_call()).await.unwrap();
            store.mark_call_connecting(failed.id, "node-a").await.unwrap();
            let error = format!("could not reach the provider ({n})");
            assert!(store.end_call(failed.id, EndReason::ProviderError, now + n, Some(&error)).await.unwrap());
        }
        let types: Vec<String> = payloads().await.into_iter().map(|e| e.0).collect();
        assert_eq!(types[2..], ["call.failed", "call.failed", "call.failed", "integration.failed", "call.failed"]);
        let notices = store.list_notices(acme.id, true, 10).await.unwrap();
        assert_eq!(notices.len(), 1);
        assert_eq!(
            (notices[0].kind, notices[0].occurrences, notices[0].subject.as_str()),
            (NoticeKind::ProviderFailures, 2, "openai")
        );
        assert!(notices[0].message.contains("(3)"), "{}", notices[0].message);

        // A completed call resolves it; an expired session fails with its event.
        let good = store.create_call(new_call()).await.unwrap();
        store.mark_call_connecting(good.id, "node-a").await.unwrap();
        store.mark_call_active(good.id, now + 10).await.unwrap();
        store.end_call(good.id, EndReason::EndPhrase, now + 20, None).await.unwrap();
        assert!(store.list_notices(acme.id, true, 10).await.unwrap().is_empty());
        store.create_call(new_call()).await.unwrap();
        assert_eq!(store.expire_pending_calls().await.unwrap(), 1);
        let last = payloads().await.pop().unwrap();
        assert_eq!(last.0, "call.failed");
        assert!(last.1.contains("\"endReason\":\"expired\""), "{}", last.1);
        let orphan = store.create_call(new_call()).await.unwrap();
        store.mark_call_connecting(orphan.id, "node-b").await.unwrap();
        assert_eq!(store.fail_orphaned_calls("node-b").await.unwrap(), 1);
        assert!(
            payloads().await.pop().unwrap().1.contains("\"endReason\":\"error\""),
            "a lost node's calls end with error"
        );
    });
    store_test!(the_call_history_filters_by_chatbot_source_status_and_time, |store| {
        use crate::settings::{ChatbotSettings, CompanySettings};
        use crate::store::{CallFilter, CallSource, CallStatus, ChatbotType, EndReason, NewCall, NewChatbot};
        let acme = store.create_company("Acme", &CompanySettings::default()).await.unwrap();
        let other = store.create_company("Other", &CompanySettings::default()).await.unwrap();
        let chatbot = || NewChatbot {
            name: "Voice".into(),
            description: String::new(),
            chatbot_type: ChatbotType::Call,
            call_model_id: None,
            instructions: String::new(),
            settings: ChatbotSettings::default(),
        };
        let sales = store.create_chatbot(acme.id, chatbot()).await.unwrap();
        let support = store.create_chatbot(acme.id, chatbot()).await.unwrap();
        let elsewhere = store.create_chatbot(other.id, chatbot()).await.unwrap();
        // (chatbot, company, source, created at, ended with)
        let day = 86_400_000;
        let t0 = 1_764_028_800_000; // 2025-11-25T00:00:00Z
        let mut ids = Vec::new();
        for (bot, company, source, at, end) in [
            (sales.id, acme.id, CallSource::Web, t0, Some(EndReason::CallerHangup)),
            (sales.id, acme.id, CallSource::Twilio, t0 + day, Some(EndReason::NetworkLost)),
            (support.id, acme.id, CallSource::WhatsApp, t0 + 2 * day, None),
            (support.id, acme.id, CallSource::Web, t0 + 3 * day, Some(EndReason::CallerHangup)),
            (elsewhere.id, other.id, CallSource::Web, t0 + day, Some(EndReason::CallerHangup)),
        ] {
            let call = store
                .create_call(NewCall {
                    company_id: company,
                    chatbot_id: bot,
                    source,
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
            sqlx::query("UPDATE calls SET created_at = $1 WHERE id = $2")
                .bind(at)
                .bind(call.id.as_string())
                .execute(store.pool())
                .await
                .unwrap();
            if let Some(reason) = end {
                assert!(store.end_call(call.id, reason, at + 60_000, None).await.unwrap());
            }
            ids.push(call.id);
        }
        let listed = |filter: CallFilter| {
            let store = store.clone();
            async move { store.list_calls(acme.id, &filter).await.unwrap().into_iter().map(|c| c.id).collect::<Vec<_>>() }
        };
        assert_eq!(
            listed(CallFilter::latest(50)).await,
            vec![ids[3], ids[2], ids[1], ids[0]],
            "newest first, one company"
        );
        assert_eq!(listed(CallFilter::latest(2)).await, vec![ids[3], ids[2]]);
        let only = |f: fn(&mut CallFilter)| {
            let mut filter = CallFilter::latest(50);
            f(&mut filter);
            filter
        };
        let mut by_bot = CallFilter::latest(50);
        by_bot.chatbot = Some(sales.id);
        assert_eq!(listed(by_bot).await, vec![ids[1], ids[0]]);
        let mut foreign_bot = CallFilter::latest(50);
        foreign_bot.chatbot = Some(elsewhere.id);
        assert!(listed(foreign_bot).await.is_empty(), "another company's chatbot finds nothing here");
        assert_eq!(listed(only(|f| f.source = Some(CallSource::Web))).await, vec![ids[3], ids[0]]);
        assert_eq!(listed(only(|f| f.source = Some(CallSource::WhatsApp))).await, vec![ids[2]]);
        assert_eq!(listed(only(|f| f.status = Some(CallStatus::Failed))).await, vec![ids[1]]);
        assert_eq!(listed(only(|f| f.status = Some(CallStatus::Pending))).await, vec![ids[2]]);
        let mut window = CallFilter::latest(50);
        window.created_from = Some(t0 + day);
        window.created_before = Some(t0 + 3 * day);
        assert_eq!(listed(window.clone()).await, vec![ids[2], ids[1]], "from is inclusive, before exclusive");
        window.source = Some(CallSource::Twilio);
        window.status = Some(CallStatus::Failed);
        window.chatbot = Some(sales.id);
        assert_eq!(listed(window).await, vec![ids[1]], "every condition holds at once");
    });
}
