//! `escalations` and `agent_presence`: hand-offs of calls to human agents, and which
//! agents can take one now.
//!
//! An escalation moves `pending → assigned → resolved`, or `pending → cancelled` (the
//! call ended while waiting, or nobody accepted before `expires_at`). Every move is one
//! conditional `UPDATE … WHERE status = …`, so of two agents accepting at once exactly one
//! wins, the same on SQLite and Postgres, and a timeout racing an accept has one outcome.
//! The acceptance writes `call.escalated` to the outbox in its transaction. The call's
//! conversation follows: `waiting_human` while offered, `with_human` once accepted, back to
//! `active` when the escalation closes without an agent or the agent hands back.

use sqlx::{AnyConnection, Row};

use super::{Store, StoreResult, insert_event, parse_enum, parse_id, parse_json};
use crate::domain::{CallSource, TranscriptRole};
use crate::events::payload::{CallEscalated, EventData};
use crate::ids::{CallId, CompanyId, ConversationId, EscalationId, PresenceId, UserId};
use crate::time::UnixMs;

text_enum!(
    /// Where an escalation stands.
    EscalationStatus {
        /// Offered to the company's available agents; nobody accepted yet.
        Pending = "pending",
        /// An agent accepted it.
        Assigned = "assigned",
        /// The agent's part is over (hand-back, or the call ended with the agent on it).
        Resolved = "resolved",
        /// Closed without an agent: see [`CancelReason`].
        Cancelled = "cancelled",
    }
);

text_enum!(
    /// Why an escalation closed without an agent.
    CancelReason {
        /// The call ended while it waited.
        CallEnded = "call_ended",
        /// Nobody accepted before its deadline.
        TimedOut = "timed_out",
    }
);

text_enum!(
    /// Whether an agent console takes escalations.
    PresenceStatus {
        /// Offers are sent to it.
        Available = "available",
        /// Connected, taking nothing.
        Away = "away",
    }
);

/// A presence row not refreshed for this long no longer counts (its node may have died).
pub const PRESENCE_STALE_MS: i64 = 90_000;

/// A line of the conversation so far, as agents see it with an offer.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct OfferLine {
    pub role: TranscriptRole,
    pub text: String,
}

/// An escalation.
#[derive(Debug, Clone, PartialEq)]
pub struct Escalation {
    pub id: EscalationId,
    pub company_id: CompanyId,
    pub call_id: Option<CallId>,
    pub conversation_id: Option<ConversationId>,
    pub status: EscalationStatus,
    /// Why the AI escalated.
    pub reason: String,
    /// The call's channel.
    pub source: Option<CallSource>,
    /// The caller's number or page.
    pub caller: Option<String>,
    /// The conversation up to the offer.
    pub transcript: Vec<OfferLine>,
    /// The node holding the call, and its public URL (where the agent's media goes).
    pub node_id: Option<String>,
    pub node_url: Option<String>,
    /// The agent who accepted.
    pub assigned_user_id: Option<UserId>,
    /// When it was offered.
    pub created_at: UnixMs,
    /// Until when it may be accepted.
    pub expires_at: Option<UnixMs>,
    pub accepted_at: Option<UnixMs>,
    /// When it was resolved or cancelled.
    pub resolved_at: Option<UnixMs>,
    pub cancel_reason: Option<CancelReason>,
}

/// An escalation to offer. Its conversation is the call's.
#[derive(Debug, Clone)]
pub struct NewEscalation {
    /// Chosen by the caller, so it can wait for the acceptance before the offer exists.
    pub id: EscalationId,
    pub company_id: CompanyId,
    pub call_id: CallId,
    pub reason: String,
    pub source: CallSource,
    pub caller: Option<String>,
    pub transcript: Vec<OfferLine>,
    pub node_id: String,
    pub node_url: String,
    pub expires_at: UnixMs,
}

/// Why an accept did not win.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AcceptRefusal {
    /// No such escalation in this company.
    NotFound,
    /// Another agent accepted it first.
    AlreadyTaken,
    /// It was cancelled, timed out or resolved.
    Closed,
}

/// How closing a pending escalation (cancel, time-out) turned out.
#[derive(Debug, Clone, PartialEq)]
pub enum CloseOutcome {
    /// This call closed it.
    Closed(Escalation),
    /// An agent had accepted it first: the caller should be handed over, not told "busy".
    Assigned(Escalation),
    /// It was closed already (or does not exist).
    AlreadyClosed,
}

/// The agent an escalation was handed to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AssignedAgent {
    pub id: UserId,
    /// The user's name, or their e-mail when they have none.
    pub name: String,
}

const COLUMNS: &str = "id, company_id, call_id, conversation_id, status, reason, source, caller, transcript, node_id, \
    node_url, assigned_user_id, created_at, expires_at, accepted_at, resolved_at, cancel_reason";

fn from_row(row: &sqlx::any::AnyRow) -> StoreResult<Escalation> {
    let opt_id = |column: &str| -> StoreResult<Option<String>> { Ok(row.try_get::<Option<String>, _>(column)?) };
    Ok(Escalation {
        id: parse_id(&row.try_get::<String, _>("id")?)?,
        company_id: parse_id(&row.try_get::<String, _>("company_id")?)?,
        call_id: opt_id("call_id")?.as_deref().map(parse_id).transpose()?,
        conversation_id: opt_id("conversation_id")?.as_deref().map(parse_id).transpose()?,
        status: parse_enum(&row.try_get::<String, _>("status")?, "escalation status")?,
        reason: row.try_get("reason")?,
        source: opt_id("source")?.as_deref().map(|s| parse_enum(s, "call source")).transpose()?,
        caller: row.try_get("caller")?,
        transcript: parse_json(&row.try_get::<String, _>("transcript")?, "escalation transcript")?,
        node_id: row.try_get("node_id")?,
        node_url: row.try_get("node_url")?,
        assigned_user_id: opt_id("assigned_user_id")?.as_deref().map(parse_id).transpose()?,
        created_at: row.try_get("created_at")?,
        expires_at: row.try_get("expires_at")?,
        accepted_at: row.try_get("accepted_at")?,
        resolved_at: row.try_get("resolved_at")?,
        cancel_reason: opt_id("cancel_reason")?.as_deref().map(|s| parse_enum(s, "cancel reason")).transpose()?,
    })
}

async fn escalation_on(conn: &mut AnyConnection, id: EscalationId) -> StoreResult<Option<Escalation>> {
    let row = sqlx::query(&format!("SELECT {COLUMNS} FROM escalations WHERE id = $1"))
        .bind(id.as_string())
        .fetch_optional(&mut *conn)
        .await?;
    row.as_ref().map(from_row).transpose()
}

/// Moves the escalation's conversation from one of `from` to `to`.
async fn move_conversation(
    conn: &mut AnyConnection,
    id: EscalationId,
    from: &[&str],
    to: &str,
    now: UnixMs,
) -> StoreResult<()> {
    let statuses = from.iter().map(|s| format!("'{s}'")).collect::<Vec<_>>().join(", ");
    sqlx::query(&format!(
        "UPDATE conversations SET status = $1, updated_at = $2 \
         WHERE id = (SELECT conversation_id FROM escalations WHERE id = $3) AND status IN ({statuses})"
    ))
    .bind(to)
    .bind(now)
    .bind(id.as_string())
    .execute(&mut *conn)
    .await?;
    Ok(())
}

impl Store {
    /// Offers a call to the company's agents: a `pending` escalation of the call's
    /// conversation, which becomes `waiting_human`. None if the company has no such call.
    pub async fn open_escalation(&self, new: NewEscalation, now: UnixMs) -> StoreResult<Option<Escalation>> {
        let id = new.id;
        let transcript =
            serde_json::to_string(&new.transcript).map_err(|e| super::StoreError::Corrupt(e.to_string()))?;
        let mut tx = self.begin_write().await?;
        let inserted = sqlx::query(
            "INSERT INTO escalations (id, company_id, call_id, conversation_id, status, reason, source, caller, transcript, \
             node_id, node_url, created_at, expires_at) \
             SELECT $1, company_id, id, conversation_id, 'pending', $2, $3, $4, $5, $6, $7, $8, $9 FROM calls \
             WHERE id = $10 AND company_id = $11",
        )
        .bind(id.as_string())
        .bind(&new.reason)
        .bind(new.source.as_str())
        .bind(&new.caller)
        .bind(transcript)
        .bind(&new.node_id)
        .bind(&new.node_url)
        .bind(now)
        .bind(new.expires_at)
        .bind(new.call_id.as_string())
        .bind(new.company_id.as_string())
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if inserted == 0 {
            return Ok(None);
        }
        move_conversation(&mut tx, id, &["active"], "waiting_human", now).await?;
        let escalation = escalation_on(&mut tx, id).await?;
        tx.commit().await?;
        Ok(escalation)
    }

    /// An escalation of a company.
    pub async fn escalation(&self, company: CompanyId, id: EscalationId) -> StoreResult<Option<Escalation>> {
        let row = sqlx::query(&format!("SELECT {COLUMNS} FROM escalations WHERE id = $1 AND company_id = $2"))
            .bind(id.as_string())
            .bind(company.as_string())
            .fetch_optional(self.pool())
            .await?;
        row.as_ref().map(from_row).transpose()
    }

    /// A company's escalations waiting for an agent (not past their deadline), oldest first.
    pub async fn pending_escalations(&self, company: CompanyId, now: UnixMs) -> StoreResult<Vec<Escalation>> {
        let rows = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM escalations WHERE company_id = $1 AND status = 'pending' \
             AND (expires_at IS NULL OR expires_at > $2) ORDER BY created_at, id LIMIT 500"
        ))
        .bind(company.as_string())
        .bind(now)
        .fetch_all(self.pool())
        .await?;
        rows.iter().map(from_row).collect()
    }

    /// An agent accepts: pending → assigned, if it is still pending and before its deadline.
    /// Exactly one of concurrent accepts wins. The winner's join token (hashed) is stored
    /// with its expiry, `call.escalated` is written, and the conversation is `with_human`.
    pub async fn accept_escalation(
        &self,
        company: CompanyId,
        id: EscalationId,
        agent: UserId,
        join_token_hash: &str,
        join_expires_at: UnixMs,
        now: UnixMs,
    ) -> StoreResult<Result<Escalation, AcceptRefusal>> {
        let mut tx = self.begin_write().await?;
        let won = sqlx::query(
            "UPDATE escalations SET status = 'assigned', assigned_user_id = $1, accepted_at = $2, join_token_hash = $3, \
             join_expires_at = $4 WHERE id = $5 AND company_id = $6 AND status = 'pending' \
             AND (expires_at IS NULL OR expires_at > $7)",
        )
        .bind(agent.as_string())
        .bind(now)
        .bind(join_token_hash)
        .bind(join_expires_at)
        .bind(id.as_string())
        .bind(company.as_string())
        .bind(now)
        .execute(&mut *tx)
        .await?
        .rows_affected()
            == 1;
        let Some(escalation) = escalation_on(&mut tx, id).await?.filter(|e| e.company_id == company) else {
            return Ok(Err(AcceptRefusal::NotFound));
        };
        if !won {
            return Ok(Err(match escalation.status {
                EscalationStatus::Assigned => AcceptRefusal::AlreadyTaken,
                _ => AcceptRefusal::Closed,
            }));
        }
        move_conversation(&mut tx, id, &["active", "waiting_human"], "with_human", now).await?;
        if let Some(call_id) = escalation.call_id {
            let event = EventData::CallEscalated(CallEscalated {
                call_id,
                escalation_id: id,
                conversation_id: escalation.conversation_id,
                reason: escalation.reason.clone(),
                agent_id: agent,
            });
            insert_event(&mut tx, company, &event, now).await?;
        }
        tx.commit().await?;
        Ok(Ok(escalation))
    }

    /// Closes a pending escalation without an agent (the call ended while waiting, or its
    /// time ran out); the conversation goes back to `active`.
    pub async fn cancel_escalation(
        &self,
        id: EscalationId,
        reason: CancelReason,
        now: UnixMs,
    ) -> StoreResult<CloseOutcome> {
        let mut tx = self.begin_write().await?;
        let closed = sqlx::query(
            "UPDATE escalations SET status = 'cancelled', cancel_reason = $1, resolved_at = $2 \
             WHERE id = $3 AND status = 'pending'",
        )
        .bind(reason.as_str())
        .bind(now)
        .bind(id.as_string())
        .execute(&mut *tx)
        .await?
        .rows_affected()
            == 1;
        let Some(escalation) = escalation_on(&mut tx, id).await? else { return Ok(CloseOutcome::AlreadyClosed) };
        let outcome = if closed {
            move_conversation(&mut tx, id, &["waiting_human"], "active", now).await?;
            CloseOutcome::Closed(escalation)
        } else if escalation.status == EscalationStatus::Assigned {
            CloseOutcome::Assigned(escalation)
        } else {
            CloseOutcome::AlreadyClosed
        };
        tx.commit().await?;
        Ok(outcome)
    }

    /// The agent's part is over (hand-back, or the call ended): assigned → resolved; the
    /// conversation goes back to `active` (the call's end then resolves it). False if it
    /// was not assigned.
    pub async fn resolve_escalation(&self, id: EscalationId, now: UnixMs) -> StoreResult<bool> {
        let mut tx = self.begin_write().await?;
        let done = sqlx::query(
            "UPDATE escalations SET status = 'resolved', resolved_at = $1, join_expires_at = $2 \
             WHERE id = $3 AND status = 'assigned'",
        )
        .bind(now)
        .bind(now)
        .bind(id.as_string())
        .execute(&mut *tx)
        .await?
        .rows_affected()
            == 1;
        if done {
            move_conversation(&mut tx, id, &["with_human"], "active", now).await?;
        }
        tx.commit().await?;
        Ok(done)
    }

    /// Cancels (`timed_out`) every pending escalation past its deadline, whichever node
    /// holds its call. Returns them, each once even with several nodes sweeping.
    pub async fn expire_escalations(&self, now: UnixMs) -> StoreResult<Vec<Escalation>> {
        let mut tx = self.begin_write().await?;
        let ids: Vec<String> = sqlx::query_scalar(
            "UPDATE escalations SET status = 'cancelled', cancel_reason = 'timed_out', resolved_at = $1 \
             WHERE status = 'pending' AND expires_at <= $2 RETURNING id",
        )
        .bind(now)
        .bind(now)
        .fetch_all(&mut *tx)
        .await?;
        let mut expired = Vec::with_capacity(ids.len());
        for id in ids {
            let id: EscalationId = parse_id(&id)?;
            move_conversation(&mut tx, id, &["waiting_human"], "active", now).await?;
            if let Some(escalation) = escalation_on(&mut tx, id).await? {
                expired.push(escalation);
            }
        }
        tx.commit().await?;
        Ok(expired)
    }

    /// The assigned escalation of `call` whose join token hashes to `token_hash`, still
    /// valid at `now`, with the agent who accepted it.
    pub async fn joinable_escalation(
        &self,
        call: CallId,
        token_hash: &str,
        now: UnixMs,
    ) -> StoreResult<Option<(Escalation, AssignedAgent)>> {
        let row = sqlx::query(&format!(
            "SELECT {COLUMNS}, join_token_hash FROM escalations WHERE call_id = $1 AND status = 'assigned' \
             AND join_expires_at > $2 ORDER BY accepted_at DESC LIMIT 1"
        ))
        .bind(call.as_string())
        .bind(now)
        .fetch_optional(self.pool())
        .await?;
        let Some(row) = row else { return Ok(None) };
        let stored: Option<String> = row.try_get("join_token_hash")?;
        if !stored.is_some_and(|h| crate::crypto::constant_time_eq(h.as_bytes(), token_hash.as_bytes())) {
            return Ok(None);
        }
        let escalation = from_row(&row)?;
        let Some(agent_id) = escalation.assigned_user_id else { return Ok(None) };
        let Some(agent) = self.assigned_agent(agent_id).await? else { return Ok(None) };
        Ok(Some((escalation, agent)))
    }

    /// A user as an assigned agent: id and display name.
    pub async fn assigned_agent(&self, id: UserId) -> StoreResult<Option<AssignedAgent>> {
        let row = sqlx::query("SELECT email, name FROM users WHERE id = $1")
            .bind(id.as_string())
            .fetch_optional(self.pool())
            .await?;
        let Some(row) = row else { return Ok(None) };
        let name: Option<String> = row.try_get("name")?;
        let email: String = row.try_get("email")?;
        Ok(Some(AssignedAgent { id, name: name.filter(|n| !n.trim().is_empty()).unwrap_or(email) }))
    }

    /// Records (or changes) the presence of one agent console socket on `node`.
    pub async fn set_presence(
        &self,
        connection: PresenceId,
        user: UserId,
        company: CompanyId,
        node: &str,
        status: PresenceStatus,
        now: UnixMs,
    ) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO agent_presence (connection_id, user_id, company_id, node_id, status, seen_at) \
             VALUES ($1, $2, $3, $4, $5, $6) \
             ON CONFLICT (connection_id) DO UPDATE SET status = excluded.status, seen_at = excluded.seen_at",
        )
        .bind(connection.as_string())
        .bind(user.as_string())
        .bind(company.as_string())
        .bind(node)
        .bind(status.as_str())
        .bind(now)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// Says a socket is still there.
    pub async fn touch_presence(&self, connection: PresenceId, now: UnixMs) -> StoreResult<()> {
        sqlx::query("UPDATE agent_presence SET seen_at = $1 WHERE connection_id = $2")
            .bind(now)
            .bind(connection.as_string())
            .execute(self.pool())
            .await?;
        Ok(())
    }

    /// Forgets a socket that closed.
    pub async fn remove_presence(&self, connection: PresenceId) -> StoreResult<()> {
        sqlx::query("DELETE FROM agent_presence WHERE connection_id = $1")
            .bind(connection.as_string())
            .execute(self.pool())
            .await?;
        Ok(())
    }

    /// Forgets every socket of `node` (it is starting: the sockets of its last run are gone).
    pub async fn clear_node_presence(&self, node: &str) -> StoreResult<u64> {
        let done = sqlx::query("DELETE FROM agent_presence WHERE node_id = $1").bind(node).execute(self.pool()).await?;
        Ok(done.rows_affected())
    }

    /// How many agents of `company` are available now, on any node (each counted once
    /// whatever their number of consoles).
    pub async fn available_agents(&self, company: CompanyId, now: UnixMs) -> StoreResult<i64> {
        Ok(sqlx::query_scalar(
            "SELECT COUNT(DISTINCT user_id) FROM agent_presence WHERE company_id = $1 AND status = 'available' \
             AND seen_at > $2",
        )
        .bind(company.as_string())
        .bind(now - PRESENCE_STALE_MS)
        .fetch_one(self.pool())
        .await?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::settings::CompanySettings;
    use crate::store::testing::{call_chatbot, store_test, webhook};
    use crate::store::{CallSource, EventType, NewCall, Role};

    struct Fixture {
        company: CompanyId,
        call: crate::store::Call,
        agents: Vec<UserId>,
    }

    async fn fixture(store: &Store, name: &str) -> Fixture {
        let company = store.create_company(name, &CompanySettings::default()).await.unwrap().id;
        let bot = call_chatbot(store, company).await;
        let call = store
            .create_call(NewCall {
                company_id: company,
                chatbot_id: bot.id,
                source: CallSource::Twilio,
                is_test: false,
                caller: Some("+15551234567".into()),
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
        let mut agents = Vec::new();
        for n in 0..2 {
            let email = format!("agent{n}@{}.test", name.to_lowercase());
            agents.push(store.create_user(&email, None, Role::SupportAgent, &[company]).await.unwrap().id);
        }
        Fixture { company, call, agents }
    }

    fn offer(f: &Fixture, expires_at: UnixMs) -> NewEscalation {
        NewEscalation {
            id: EscalationId::new(),
            company_id: f.company,
            call_id: f.call.id,
            reason: "wants a refund".into(),
            source: CallSource::Twilio,
            caller: Some("+15551234567".into()),
            transcript: vec![OfferLine { role: TranscriptRole::User, text: "A person, please.".into() }],
            node_id: "node-a".into(),
            node_url: "https://a.voice.example.com".into(),
            expires_at,
        }
    }

    async fn conversation_status(store: &Store, f: &Fixture) -> String {
        sqlx::query_scalar(
            "SELECT status FROM conversations WHERE id = (SELECT conversation_id FROM calls WHERE id = $1)",
        )
        .bind(f.call.id.as_string())
        .fetch_one(store.pool())
        .await
        .unwrap()
    }

    store_test!(one_of_two_accepts_wins_and_the_other_is_told_it_was_taken, |store| {
        let f = fixture(&store, "Acme").await;
        let hook = webhook(&store, f.company, &[EventType::CallEscalated]).await;
        let opened = store.open_escalation(offer(&f, 60_000), 1_000).await.unwrap().unwrap();
        assert!(opened.conversation_id.is_some(), "the call's conversation");
        assert_eq!(opened.status, EscalationStatus::Pending);
        assert_eq!(opened.transcript[0].text, "A person, please.");
        assert_eq!(conversation_status(&store, &f).await, "waiting_human");
        assert_eq!(store.pending_escalations(f.company, 2_000).await.unwrap(), vec![opened.clone()]);

        let (a, b) = tokio::join!(
            store.accept_escalation(f.company, opened.id, f.agents[0], "hash-a", 100_000, 2_000),
            store.accept_escalation(f.company, opened.id, f.agents[1], "hash-b", 100_000, 2_000),
        );
        let outcomes = [a.unwrap(), b.unwrap()];
        let winners: Vec<_> = outcomes.iter().filter_map(|o| o.as_ref().ok()).collect();
        assert_eq!(winners.len(), 1, "{outcomes:?}");
        assert!(outcomes.iter().any(|o| o == &Err(AcceptRefusal::AlreadyTaken)));
        let winner = winners[0].assigned_user_id.unwrap();
        assert_eq!(conversation_status(&store, &f).await, "with_human");
        assert!(store.pending_escalations(f.company, 2_000).await.unwrap().is_empty());

        // Only the winner's token joins, only for this call, only until it expires.
        let hash = if winner == f.agents[0] { "hash-a" } else { "hash-b" };
        let (joined, agent) = store.joinable_escalation(f.call.id, hash, 3_000).await.unwrap().unwrap();
        assert_eq!((joined.id, agent.id), (opened.id, winner));
        assert!(agent.name.ends_with("@acme.test"), "no name: the e-mail");
        let other = if winner == f.agents[0] { "hash-b" } else { "hash-a" };
        assert!(store.joinable_escalation(f.call.id, other, 3_000).await.unwrap().is_none());
        assert!(store.joinable_escalation(CallId::new(), hash, 3_000).await.unwrap().is_none());
        assert!(store.joinable_escalation(f.call.id, hash, 100_000).await.unwrap().is_none(), "expired");

        // A time-out after the accept hands the call over instead of closing it.
        let late = store.cancel_escalation(opened.id, CancelReason::TimedOut, 4_000).await.unwrap();
        assert!(matches!(late, CloseOutcome::Assigned(e) if e.assigned_user_id == Some(winner)));

        // call.escalated was written with the acceptance, once.
        let deliveries = store.list_deliveries(f.company, hook, None, 10).await.unwrap();
        assert_eq!(deliveries.len(), 1);
        let claim = store.claim_deliveries(5_000, 60_000, 10).await.unwrap().remove(0);
        let body: serde_json::Value = serde_json::from_str(&claim.payload).unwrap();
        assert_eq!(body["type"], "call.escalated");
        assert_eq!(body["data"]["escalationId"], opened.id.to_string());
        assert_eq!(body["data"]["agentId"], winner.to_string());
        assert_eq!(body["data"]["reason"], "wants a refund");

        assert!(store.resolve_escalation(opened.id, 6_000).await.unwrap());
        assert!(!store.resolve_escalation(opened.id, 6_000).await.unwrap(), "once");
        assert_eq!(conversation_status(&store, &f).await, "active");
        assert!(store.joinable_escalation(f.call.id, hash, 6_500).await.unwrap().is_none(), "resolved");
    });

    store_test!(closed_escalations_cannot_be_accepted_and_other_companies_cannot_see_them, |store| {
        let f = fixture(&store, "Acme").await;
        let g = fixture(&store, "Globex").await;
        let foreign_call = NewEscalation { company_id: g.company, ..offer(&f, 60_000) };
        assert!(store.open_escalation(foreign_call, 1_000).await.unwrap().is_none(), "not Globex's call");
        let cancelled = store.open_escalation(offer(&f, 60_000), 1_000).await.unwrap().unwrap();
        let outcome = store.cancel_escalation(cancelled.id, CancelReason::CallEnded, 2_000).await.unwrap();
        assert!(matches!(&outcome, CloseOutcome::Closed(e) if e.cancel_reason == Some(CancelReason::CallEnded)));
        assert_eq!(conversation_status(&store, &f).await, "active");
        assert_eq!(
            store.cancel_escalation(cancelled.id, CancelReason::TimedOut, 2_500).await.unwrap(),
            CloseOutcome::AlreadyClosed
        );
        let accept = store.accept_escalation(f.company, cancelled.id, f.agents[0], "h", 9_000, 3_000).await.unwrap();
        assert_eq!(accept, Err(AcceptRefusal::Closed));

        let pending = store.open_escalation(offer(&f, 60_000), 1_000).await.unwrap().unwrap();
        let foreign = store.accept_escalation(g.company, pending.id, g.agents[0], "h", 9_000, 3_000).await.unwrap();
        assert_eq!(foreign, Err(AcceptRefusal::NotFound));
        assert!(store.escalation(g.company, pending.id).await.unwrap().is_none());
        assert!(store.pending_escalations(g.company, 3_000).await.unwrap().is_empty());
        assert_eq!(store.pending_escalations(f.company, 3_000).await.unwrap().len(), 1);

        // Past its deadline it cannot be accepted even before the sweep runs; the sweep
        // closes it once.
        let late = store.accept_escalation(f.company, pending.id, f.agents[0], "h", 90_000, 60_000).await.unwrap();
        assert_eq!(late, Err(AcceptRefusal::Closed));
        assert!(store.pending_escalations(f.company, 60_000).await.unwrap().is_empty());
        let expired = store.expire_escalations(60_000).await.unwrap();
        assert_eq!(expired.iter().map(|e| e.id).collect::<Vec<_>>(), vec![pending.id]);
        assert_eq!(expired[0].cancel_reason, Some(CancelReason::TimedOut));
        assert!(store.expire_escalations(61_000).await.unwrap().is_empty());
    });

    store_test!(available_agents_are_counted_per_company_once_each_while_fresh, |store| {
        let f = fixture(&store, "Acme").await;
        let g = fixture(&store, "Globex").await;
        let (tab1, tab2, other) = (PresenceId::new(), PresenceId::new(), PresenceId::new());
        assert_eq!(store.available_agents(f.company, 1_000).await.unwrap(), 0);
        store.set_presence(tab1, f.agents[0], f.company, "node-a", PresenceStatus::Available, 1_000).await.unwrap();
        store.set_presence(tab2, f.agents[0], f.company, "node-b", PresenceStatus::Available, 1_000).await.unwrap();
        store.set_presence(other, f.agents[1], f.company, "node-b", PresenceStatus::Away, 1_000).await.unwrap();
        store
            .set_presence(PresenceId::new(), g.agents[0], g.company, "node-a", PresenceStatus::Available, 1_000)
            .await
            .unwrap();
        assert_eq!(store.available_agents(f.company, 2_000).await.unwrap(), 1, "two tabs, one agent");
        store.set_presence(other, f.agents[1], f.company, "node-b", PresenceStatus::Available, 2_000).await.unwrap();
        assert_eq!(store.available_agents(f.company, 2_000).await.unwrap(), 2);
        store.remove_presence(other).await.unwrap();
        assert_eq!(store.clear_node_presence("node-a").await.unwrap(), 2);
        assert_eq!(store.available_agents(f.company, 2_000).await.unwrap(), 1, "tab2 on node-b remains");
        assert_eq!(store.available_agents(f.company, 1_000 + PRESENCE_STALE_MS).await.unwrap(), 0, "stale");
        store.touch_presence(tab2, 1_000 + PRESENCE_STALE_MS).await.unwrap();
        assert_eq!(store.available_agents(f.company, 1_000 + PRESENCE_STALE_MS).await.unwrap(), 1);
    });
}
