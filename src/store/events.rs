//! The webhook outbox: `webhook_events`, `webhook_deliveries`, `webhook_delivery_attempts`.
//!
//! An event is written by [`insert_event`] inside the transaction of the change that
//! caused it (a call becoming active, a call ending, an escalation, ...), together with
//! one delivery per enabled endpoint of the company that subscribed to its type. So an
//! event exists exactly when its cause was committed, and nothing is lost if the gateway
//! stops before sending it: the delivery worker (`crate::events::worker`) finds it in the
//! table, on this node or another.
//!
//! Workers claim deliveries with a lease: a conditional update of `lease_token` and
//! `lease_until` that only one worker can win, the same statement on SQLite and Postgres,
//! and no row lock held while the request is in flight. Only the oldest pending delivery
//! of each endpoint (its *head*) can be claimed, so an endpoint receives its events in
//! order: the next one waits until the previous one is delivered or given up.

use sqlx::{AnyConnection, Row};

use super::{Store, StoreError, StoreResult, parse_enum, parse_id};
use crate::crypto::Sealed;
use crate::events::payload::EventData;
use crate::events::policy::{Decision, DeliveryNext, EndpointNext, Head, pick_due};
use crate::ids::{CompanyId, DeliveryId, EventId, WebhookId};
use crate::time::UnixMs;

text_enum!(
    /// The kinds of events a webhook endpoint can subscribe to.
    EventType {
        /// A call became active.
        CallStarted = "call.started",
        /// A call ended normally (end reason, duration, transcript).
        CallEnded = "call.ended",
        /// A call ended in failure.
        CallFailed = "call.failed",
        /// A call was handed to a human agent.
        CallEscalated = "call.escalated",
        /// A support ticket was created.
        TicketCreated = "ticket.created",
        /// An integration (an account's credentials, or the voice provider) is failing.
        IntegrationFailed = "integration.failed",
    }
);

text_enum!(
    /// Where a delivery stands.
    DeliveryStatus {
        /// Waiting for its first attempt or for a retry.
        Pending = "pending",
        /// The receiver answered 2xx.
        Delivered = "delivered",
        /// Given up (after the retry window, or a failed redelivery), or not queued because
        /// the company's outbox was full. An admin may redeliver it.
        Failed = "failed",
    }
);

/// Deliveries a company may have waiting; beyond this new deliveries are recorded as
/// failed (visible in the delivery log, redeliverable) instead of queued, so one company's
/// dead receiver cannot grow the table without bound.
pub const MAX_PENDING_PER_COMPANY: i64 = 10_000;

/// Writes an event and its deliveries on `conn`, which should be inside the transaction of
/// the change that caused the event. Companies without a subscribed, enabled endpoint store
/// nothing.
pub async fn insert_event(
    conn: &mut AnyConnection,
    company: CompanyId,
    data: &EventData,
    now: UnixMs,
) -> StoreResult<()> {
    let endpoints = subscribers(conn, company, data.event_type()).await?;
    write_event(conn, company, &endpoints, data, now, MAX_PENDING_PER_COMPANY).await
}

/// The enabled endpoints of `company` subscribed to `event_type` (to skip building an
/// event nobody receives).
pub(crate) async fn subscribers(
    conn: &mut AnyConnection,
    company: CompanyId,
    event_type: EventType,
) -> StoreResult<Vec<String>> {
    let rows = sqlx::query(
        "SELECT id, event_types FROM webhook_endpoints WHERE company_id = $1 AND enabled = 1 ORDER BY created_at, id",
    )
    .bind(company.as_string())
    .fetch_all(&mut *conn)
    .await?;
    let mut endpoints = Vec::new();
    for row in &rows {
        let types: Vec<EventType> =
            super::parse_json(&row.try_get::<String, _>("event_types")?, "webhook event types")?;
        if types.contains(&event_type) {
            endpoints.push(row.try_get::<String, _>("id")?);
        }
    }
    Ok(endpoints)
}

/// Writes an event with one delivery per endpoint of `endpoints` (nothing when empty);
/// beyond `cap` waiting deliveries of the company, deliveries are recorded as failed.
pub(crate) async fn write_event(
    conn: &mut AnyConnection,
    company: CompanyId,
    endpoints: &[String],
    data: &EventData,
    now: UnixMs,
    cap: i64,
) -> StoreResult<()> {
    if endpoints.is_empty() {
        return Ok(());
    }
    let event_type = data.event_type();
    let id = EventId::new();
    sqlx::query(
        "INSERT INTO webhook_events (id, company_id, event_type, payload, created_at) VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(id.as_string())
    .bind(company.as_string())
    .bind(event_type.as_str())
    .bind(data.to_body(id, company, now))
    .bind(now)
    .execute(&mut *conn)
    .await?;
    let seq: i64 = sqlx::query_scalar("SELECT seq FROM webhook_events WHERE id = $1")
        .bind(id.as_string())
        .fetch_one(&mut *conn)
        .await?;
    let pending: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM webhook_deliveries WHERE company_id = $1 AND status = 'pending'")
            .bind(company.as_string())
            .fetch_one(&mut *conn)
            .await?;
    for (queued, endpoint) in (pending..).zip(endpoints) {
        let full = queued >= cap;
        let (status, next, error) = if full {
            let error = format!(
                "not queued: the company's outbox is full ({cap} deliveries waiting); redeliver once the backlog clears"
            );
            (DeliveryStatus::Failed, None, Some(error))
        } else {
            (DeliveryStatus::Pending, Some(now), None)
        };
        sqlx::query(
            "INSERT INTO webhook_deliveries (id, event_seq, endpoint_id, company_id, status, attempts, next_attempt_at, \
             last_error, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, 0, $6, $7, $8, $9)",
        )
        .bind(DeliveryId::new().as_string())
        .bind(seq)
        .bind(endpoint)
        .bind(company.as_string())
        .bind(status.as_str())
        .bind(next)
        .bind(error)
        .bind(now)
        .bind(now)
        .execute(&mut *conn)
        .await?;
        if full {
            tracing::warn!(company_id = %company, webhook_id = %endpoint, event_type = %event_type, "webhook outbox full: delivery not queued");
            crate::metrics::webhook_delivery("outbox_full", None);
        }
    }
    Ok(())
}

/// A delivery claimed by a worker, with what it needs to send it.
#[derive(Debug, Clone)]
pub struct ClaimedDelivery {
    pub id: DeliveryId,
    /// Proves the claim when the outcome is written.
    pub lease_token: String,
    pub endpoint_id: WebhookId,
    pub company_id: CompanyId,
    pub url: String,
    pub secret: Sealed,
    pub event_id: EventId,
    pub event_type: EventType,
    /// The body, as sent on every attempt.
    pub payload: String,
    pub event_created_at: UnixMs,
    /// Attempts before this one.
    pub attempts: u32,
    pub redelivered_at: Option<UnixMs>,
    pub failing_since: Option<UnixMs>,
}

/// One attempt, as the delivery log shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct DeliveryAttempt {
    pub attempted_at: UnixMs,
    /// The receiver's status, when it answered.
    pub status_code: Option<i64>,
    pub latency_ms: i64,
    pub error: Option<String>,
}

/// A delivery with its log.
#[derive(Debug, Clone)]
pub struct Delivery {
    pub id: DeliveryId,
    pub endpoint_id: WebhookId,
    pub event_id: EventId,
    pub event_type: EventType,
    pub status: DeliveryStatus,
    pub attempts: i64,
    pub next_attempt_at: Option<UnixMs>,
    pub last_attempt_at: Option<UnixMs>,
    pub last_status_code: Option<i64>,
    pub last_error: Option<String>,
    pub delivered_at: Option<UnixMs>,
    pub redelivered_at: Option<UnixMs>,
    pub created_at: UnixMs,
    /// Attempts, newest first (at most [`MAX_LOGGED_ATTEMPTS`]).
    pub log: Vec<DeliveryAttempt>,
}

/// Attempts shown per delivery.
pub const MAX_LOGGED_ATTEMPTS: usize = 20;

/// Why a redelivery was not queued.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RedeliverRefusal {
    /// No such delivery for this company and endpoint.
    NotFound,
    /// The endpoint is disabled: enable it first.
    EndpointDisabled,
    /// The company's outbox is full.
    OutboxFull,
}

/// An endpoint that was just disabled after persistent failure.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DisabledEndpoint {
    pub id: WebhookId,
    pub company_id: CompanyId,
    pub reason: String,
}

const DELIVERY_COLUMNS: &str = "d.id, d.endpoint_id, e.id AS event_id, e.event_type, d.status, d.attempts, d.next_attempt_at, \
    d.last_attempt_at, d.last_status_code, d.last_error, d.delivered_at, d.redelivered_at, d.created_at";

fn delivery_from_row(row: &sqlx::any::AnyRow) -> StoreResult<Delivery> {
    Ok(Delivery {
        id: parse_id(&row.try_get::<String, _>("id")?)?,
        endpoint_id: parse_id(&row.try_get::<String, _>("endpoint_id")?)?,
        event_id: parse_id(&row.try_get::<String, _>("event_id")?)?,
        event_type: parse_enum(&row.try_get::<String, _>("event_type")?, "event type")?,
        status: parse_enum(&row.try_get::<String, _>("status")?, "delivery status")?,
        attempts: row.try_get("attempts")?,
        next_attempt_at: row.try_get("next_attempt_at")?,
        last_attempt_at: row.try_get("last_attempt_at")?,
        last_status_code: row.try_get("last_status_code")?,
        last_error: row.try_get("last_error")?,
        delivered_at: row.try_get("delivered_at")?,
        redelivered_at: row.try_get("redelivered_at")?,
        created_at: row.try_get("created_at")?,
        log: Vec::new(),
    })
}

impl Store {
    /// Writes an event outside any other change (the change and the event are otherwise
    /// written together with [`insert_event`]).
    pub async fn emit_event(&self, company: CompanyId, data: &EventData, now: UnixMs) -> StoreResult<()> {
        let mut tx = self.begin_write().await?;
        insert_event(&mut tx, company, data, now).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Claims up to `capacity` due deliveries, each the head of its endpoint, until
    /// `lease_until`.
    pub async fn claim_deliveries(
        &self,
        now: UnixMs,
        lease_until: UnixMs,
        capacity: usize,
    ) -> StoreResult<Vec<ClaimedDelivery>> {
        if capacity == 0 {
            return Ok(Vec::new());
        }
        let rows = sqlx::query(
            "SELECT d.id, d.next_attempt_at, d.lease_until FROM webhook_deliveries d \
             JOIN webhook_endpoints w ON w.id = d.endpoint_id \
             WHERE d.status = 'pending' AND w.enabled = 1 AND d.next_attempt_at <= $1 \
             AND (d.lease_until IS NULL OR d.lease_until < $2) \
             AND d.event_seq = (SELECT MIN(p.event_seq) FROM webhook_deliveries p WHERE p.endpoint_id = d.endpoint_id AND p.status = 'pending') \
             ORDER BY d.next_attempt_at LIMIT 500",
        )
        .bind(now)
        .bind(now)
        .fetch_all(self.pool())
        .await?;
        let heads = rows
            .iter()
            .map(|row| {
                Ok(Head {
                    delivery: row.try_get::<String, _>("id")?,
                    next_attempt_at: row.try_get("next_attempt_at")?,
                    lease_until: row.try_get("lease_until")?,
                })
            })
            .collect::<StoreResult<Vec<_>>>()?;
        let mut claimed = Vec::new();
        for id in pick_due(&heads, now, capacity) {
            let token = uuid::Uuid::new_v4().simple().to_string();
            let won = sqlx::query(
                "UPDATE webhook_deliveries SET lease_token = $1, lease_until = $2 \
                 WHERE id = $3 AND status = 'pending' AND (lease_until IS NULL OR lease_until < $4)",
            )
            .bind(&token)
            .bind(lease_until)
            .bind(&id)
            .bind(now)
            .execute(self.pool())
            .await?
            .rows_affected()
                == 1;
            if !won {
                continue;
            }
            let row = sqlx::query(
                "SELECT d.id, d.endpoint_id, d.company_id, d.attempts, d.redelivered_at, w.url, w.sealed_secret, \
                 w.secret_key_id, w.failing_since, e.id AS event_id, e.event_type, e.payload, e.created_at AS event_created_at \
                 FROM webhook_deliveries d JOIN webhook_endpoints w ON w.id = d.endpoint_id \
                 JOIN webhook_events e ON e.seq = d.event_seq WHERE d.id = $1 AND d.lease_token = $2",
            )
            .bind(&id)
            .bind(&token)
            .fetch_optional(self.pool())
            .await?;
            let Some(row) = row else { continue };
            claimed.push(ClaimedDelivery {
                id: parse_id(&id)?,
                lease_token: token,
                endpoint_id: parse_id(&row.try_get::<String, _>("endpoint_id")?)?,
                company_id: parse_id(&row.try_get::<String, _>("company_id")?)?,
                url: row.try_get("url")?,
                secret: Sealed { key_id: row.try_get("secret_key_id")?, blob: row.try_get("sealed_secret")? },
                event_id: parse_id(&row.try_get::<String, _>("event_id")?)?,
                event_type: parse_enum(&row.try_get::<String, _>("event_type")?, "event type")?,
                payload: row.try_get("payload")?,
                event_created_at: row.try_get("event_created_at")?,
                attempts: u32::try_from(row.try_get::<i64, _>("attempts")?).unwrap_or(u32::MAX),
                redelivered_at: row.try_get("redelivered_at")?,
                failing_since: row.try_get("failing_since")?,
            });
        }
        Ok(claimed)
    }

    /// Hands back deliveries claimed by a worker that is stopping before sending them.
    pub async fn release_deliveries(&self, claims: &[ClaimedDelivery]) -> StoreResult<()> {
        for claim in claims {
            sqlx::query("UPDATE webhook_deliveries SET lease_token = NULL, lease_until = NULL WHERE id = $1 AND lease_token = $2")
                .bind(claim.id.as_string())
                .bind(&claim.lease_token)
                .execute(self.pool())
                .await?;
        }
        Ok(())
    }

    /// Records an attempt and applies its decision to the delivery and its endpoint, if
    /// the claim still holds. Returns the endpoint if this disabled it.
    pub async fn finish_attempt(
        &self,
        claim: &ClaimedDelivery,
        attempt: &DeliveryAttempt,
        decision: Decision,
        disable_reason: &str,
        now: UnixMs,
    ) -> StoreResult<Option<DisabledEndpoint>> {
        let (status, next, delivered_at) = match decision.delivery {
            DeliveryNext::Delivered => (DeliveryStatus::Delivered, None, Some(attempt.attempted_at)),
            DeliveryNext::Retry { at } => (DeliveryStatus::Pending, Some(at), None),
            DeliveryNext::GiveUp => (DeliveryStatus::Failed, None, None),
        };
        let mut tx = self.begin_write().await?;
        let held = sqlx::query(
            "UPDATE webhook_deliveries SET status = $1, attempts = attempts + 1, next_attempt_at = $2, lease_token = NULL, \
             lease_until = NULL, last_attempt_at = $3, last_status_code = $4, last_error = $5, \
             delivered_at = COALESCE($6, delivered_at), updated_at = $7 WHERE id = $8 AND lease_token = $9",
        )
        .bind(status.as_str())
        .bind(next)
        .bind(attempt.attempted_at)
        .bind(attempt.status_code)
        .bind(&attempt.error)
        .bind(delivered_at)
        .bind(now)
        .bind(claim.id.as_string())
        .bind(&claim.lease_token)
        .execute(&mut *tx)
        .await?
        .rows_affected()
            == 1;
        if !held {
            // The lease ran out and another worker took the delivery over; its outcome wins.
            return Ok(None);
        }
        sqlx::query(
            "INSERT INTO webhook_delivery_attempts (id, delivery_id, attempted_at, status_code, latency_ms, error) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(uuid::Uuid::new_v4().to_string())
        .bind(claim.id.as_string())
        .bind(attempt.attempted_at)
        .bind(attempt.status_code)
        .bind(attempt.latency_ms)
        .bind(&attempt.error)
        .execute(&mut *tx)
        .await?;
        let endpoint = claim.endpoint_id.as_string();
        let mut disabled = None;
        match decision.endpoint {
            EndpointNext::Healthy => {
                sqlx::query(
                    "UPDATE webhook_endpoints SET failing_since = NULL WHERE id = $1 AND failing_since IS NOT NULL",
                )
                .bind(&endpoint)
                .execute(&mut *tx)
                .await?;
            }
            EndpointNext::Failing { since } => {
                sqlx::query("UPDATE webhook_endpoints SET failing_since = COALESCE(failing_since, $1) WHERE id = $2")
                    .bind(since)
                    .bind(&endpoint)
                    .execute(&mut *tx)
                    .await?;
            }
            EndpointNext::Disable { since } => {
                let done = sqlx::query(
                    "UPDATE webhook_endpoints SET enabled = 0, disabled_at = $1, disabled_reason = $2, \
                     failing_since = COALESCE(failing_since, $3), updated_at = $4 WHERE id = $5 AND enabled = 1",
                )
                .bind(now)
                .bind(disable_reason)
                .bind(since)
                .bind(now)
                .bind(&endpoint)
                .execute(&mut *tx)
                .await?;
                if done.rows_affected() == 1 {
                    let url: String = sqlx::query_scalar("SELECT url FROM webhook_endpoints WHERE id = $1")
                        .bind(&endpoint)
                        .fetch_one(&mut *tx)
                        .await?;
                    let message = format!("Webhook endpoint {url} was disabled: {disable_reason}");
                    super::notices::raise_notice(
                        &mut tx,
                        claim.company_id,
                        super::NoticeKind::WebhookDisabled,
                        super::Severity::Warning,
                        &endpoint,
                        &message,
                        now,
                    )
                    .await?;
                    disabled = Some(DisabledEndpoint {
                        id: claim.endpoint_id,
                        company_id: claim.company_id,
                        reason: disable_reason.to_owned(),
                    });
                }
            }
        }
        tx.commit().await?;
        Ok(disabled)
    }

    /// An endpoint's deliveries, newest event first, each with its latest attempts.
    pub async fn list_deliveries(
        &self,
        company: CompanyId,
        endpoint: WebhookId,
        status: Option<DeliveryStatus>,
        limit: i64,
    ) -> StoreResult<Vec<Delivery>> {
        let rows = sqlx::query(&format!(
            "SELECT {DELIVERY_COLUMNS}, d.event_seq FROM webhook_deliveries d JOIN webhook_events e ON e.seq = d.event_seq \
             WHERE d.endpoint_id = $1 AND d.company_id = $2 AND ($3 = '' OR d.status = $4) ORDER BY d.event_seq DESC LIMIT $5"
        ))
        .bind(endpoint.as_string())
        .bind(company.as_string())
        .bind(status.map_or("", DeliveryStatus::as_str))
        .bind(status.map_or("", DeliveryStatus::as_str))
        .bind(limit)
        .fetch_all(self.pool())
        .await?;
        let mut deliveries = rows.iter().map(delivery_from_row).collect::<StoreResult<Vec<_>>>()?;
        let Some(oldest) = rows.last().map(|r| r.try_get::<i64, _>("event_seq")).transpose()? else {
            return Ok(deliveries);
        };
        let attempts = sqlx::query(
            "SELECT a.delivery_id, a.attempted_at, a.status_code, a.latency_ms, a.error FROM webhook_delivery_attempts a \
             JOIN webhook_deliveries d ON d.id = a.delivery_id WHERE d.endpoint_id = $1 AND d.company_id = $2 \
             AND d.event_seq >= $3 ORDER BY a.attempted_at DESC, a.id",
        )
        .bind(endpoint.as_string())
        .bind(company.as_string())
        .bind(oldest)
        .fetch_all(self.pool())
        .await?;
        for row in &attempts {
            let id: DeliveryId = parse_id(&row.try_get::<String, _>("delivery_id")?)?;
            if let Some(delivery) = deliveries.iter_mut().find(|d| d.id == id)
                && delivery.log.len() < MAX_LOGGED_ATTEMPTS
            {
                delivery.log.push(DeliveryAttempt {
                    attempted_at: row.try_get("attempted_at")?,
                    status_code: row.try_get("status_code")?,
                    latency_ms: row.try_get("latency_ms")?,
                    error: row.try_get("error")?,
                });
            }
        }
        Ok(deliveries)
    }

    /// One delivery of an endpoint, with its log.
    pub async fn delivery(
        &self,
        company: CompanyId,
        endpoint: WebhookId,
        id: DeliveryId,
    ) -> StoreResult<Option<Delivery>> {
        let row = sqlx::query(&format!(
            "SELECT {DELIVERY_COLUMNS} FROM webhook_deliveries d JOIN webhook_events e ON e.seq = d.event_seq \
             WHERE d.id = $1 AND d.endpoint_id = $2 AND d.company_id = $3"
        ))
        .bind(id.as_string())
        .bind(endpoint.as_string())
        .bind(company.as_string())
        .fetch_optional(self.pool())
        .await?;
        let Some(mut delivery) = row.as_ref().map(delivery_from_row).transpose()? else { return Ok(None) };
        let attempts = sqlx::query(
            "SELECT attempted_at, status_code, latency_ms, error FROM webhook_delivery_attempts WHERE delivery_id = $1 \
             ORDER BY attempted_at DESC, id LIMIT $2",
        )
        .bind(id.as_string())
        .bind(MAX_LOGGED_ATTEMPTS as i64)
        .fetch_all(self.pool())
        .await?;
        for row in &attempts {
            delivery.log.push(DeliveryAttempt {
                attempted_at: row.try_get("attempted_at")?,
                status_code: row.try_get("status_code")?,
                latency_ms: row.try_get("latency_ms")?,
                error: row.try_get("error")?,
            });
        }
        Ok(Some(delivery))
    }

    /// Queues a delivery again, now. A delivered or failed one is attempted once more (a
    /// manual redelivery: if it fails it is failed again, and never disables its endpoint);
    /// a pending one is just moved to now.
    pub async fn redeliver(
        &self,
        company: CompanyId,
        endpoint: WebhookId,
        id: DeliveryId,
        now: UnixMs,
    ) -> StoreResult<Result<Delivery, RedeliverRefusal>> {
        let mut tx = self.begin_write().await?;
        let row = sqlx::query(
            "SELECT d.status, w.enabled FROM webhook_deliveries d JOIN webhook_endpoints w ON w.id = d.endpoint_id \
             WHERE d.id = $1 AND d.endpoint_id = $2 AND d.company_id = $3",
        )
        .bind(id.as_string())
        .bind(endpoint.as_string())
        .bind(company.as_string())
        .fetch_optional(&mut *tx)
        .await?;
        let Some(row) = row else { return Ok(Err(RedeliverRefusal::NotFound)) };
        let status: DeliveryStatus = parse_enum(&row.try_get::<String, _>("status")?, "delivery status")?;
        if row.try_get::<i64, _>("enabled")? == 0 {
            return Ok(Err(RedeliverRefusal::EndpointDisabled));
        }
        if status != DeliveryStatus::Pending {
            let pending: i64 = sqlx::query_scalar(
                "SELECT COUNT(*) FROM webhook_deliveries WHERE company_id = $1 AND status = 'pending'",
            )
            .bind(company.as_string())
            .fetch_one(&mut *tx)
            .await?;
            if pending >= MAX_PENDING_PER_COMPANY {
                return Ok(Err(RedeliverRefusal::OutboxFull));
            }
        }
        sqlx::query(
            "UPDATE webhook_deliveries SET next_attempt_at = $1, updated_at = $2, \
             redelivered_at = CASE WHEN status = 'pending' THEN redelivered_at ELSE $3 END, status = 'pending' WHERE id = $4",
        )
        .bind(now)
        .bind(now)
        .bind(now)
        .bind(id.as_string())
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        let delivery = self.delivery(company, endpoint, id).await?.ok_or(StoreError::Conflict)?;
        Ok(Ok(delivery))
    }

    /// The outbox's backlog: deliveries waiting (any endpoint), and the creation time of
    /// the oldest one waiting for an enabled endpoint.
    pub async fn outbox_backlog(&self) -> StoreResult<(i64, Option<UnixMs>)> {
        let pending: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM webhook_deliveries WHERE status = 'pending'")
            .fetch_one(self.pool())
            .await?;
        let oldest: Option<i64> = sqlx::query_scalar(
            "SELECT MIN(d.created_at) FROM webhook_deliveries d JOIN webhook_endpoints w ON w.id = d.endpoint_id \
             WHERE d.status = 'pending' AND w.enabled = 1",
        )
        .fetch_one(self.pool())
        .await?;
        Ok((pending, oldest))
    }

    /// Deletes events (with their deliveries and attempts) created before `before`, and
    /// notices resolved or dismissed before `notices_before`. Returns the events deleted.
    pub async fn prune_events(&self, before: UnixMs, notices_before: UnixMs) -> StoreResult<u64> {
        let done =
            sqlx::query("DELETE FROM webhook_events WHERE created_at < $1").bind(before).execute(self.pool()).await?;
        sqlx::query("DELETE FROM notices WHERE COALESCE(resolved_at, dismissed_at) < $1")
            .bind(notices_before)
            .execute(self.pool())
            .await?;
        Ok(done.rows_affected())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::payload::{EventData, IntegrationFailed, IntegrationKind};
    use crate::events::policy::{Decision, DeliveryNext, EndpointNext};
    use crate::store::NoticeKind;
    use crate::store::testing::{store_test, webhook};

    fn failure(error: &str) -> EventData {
        EventData::IntegrationFailed(IntegrationFailed {
            integration: IntegrationKind::Provider,
            account_id: None,
            account_name: None,
            provider: Some("openai".into()),
            failed_calls: Some(3),
            window_minutes: Some(10),
            error: error.into(),
        })
    }

    fn attempt(at: UnixMs, status: Option<i64>) -> DeliveryAttempt {
        DeliveryAttempt { attempted_at: at, status_code: status, latency_ms: 12, error: None }
    }

    store_test!(events_fan_out_to_subscribed_endpoints_and_are_claimed_in_order_per_endpoint, |store| {
        use crate::settings::CompanySettings;
        let acme = store.create_company("Acme", &CompanySettings::default()).await.unwrap();
        let globex = store.create_company("Globex", &CompanySettings::default()).await.unwrap();
        let all = webhook(&store, acme.id, EventType::ALL).await;
        let ended_only = webhook(&store, acme.id, &[EventType::CallEnded]).await;
        webhook(&store, globex.id, EventType::ALL).await;

        for n in 0..3 {
            store.emit_event(acme.id, &failure(&format!("e{n}")), 1000 + n).await.unwrap();
        }
        let (pending, oldest) = store.outbox_backlog().await.unwrap();
        assert_eq!((pending, oldest), (3, Some(1000)), "only the subscribed endpoint of Acme gets deliveries");
        assert!(store.list_deliveries(acme.id, ended_only, None, 50).await.unwrap().is_empty());
        assert!(store.list_deliveries(globex.id, all, None, 50).await.unwrap().is_empty(), "tenant isolation");

        // Only the head of the endpoint can be claimed, and only once.
        let claims = store.claim_deliveries(2000, 60_000, 10).await.unwrap();
        assert_eq!(claims.len(), 1);
        assert!(claims[0].payload.contains("\"e0\""), "{}", claims[0].payload);
        assert!(store.claim_deliveries(2000, 60_000, 10).await.unwrap().is_empty(), "leased, and the rest wait");

        // A failure keeps the head in place; the next event still waits.
        let retry =
            Decision { delivery: DeliveryNext::Retry { at: 3000 }, endpoint: EndpointNext::Failing { since: 2000 } };
        assert_eq!(store.finish_attempt(&claims[0], &attempt(2000, Some(500)), retry, "", 2000).await.unwrap(), None);
        assert!(store.claim_deliveries(2500, 60_000, 10).await.unwrap().is_empty(), "not due yet");
        let again = store.claim_deliveries(3000, 60_000, 10).await.unwrap();
        assert_eq!((again.len(), again[0].id, again[0].attempts), (1, claims[0].id, 1));
        assert_eq!(again[0].failing_since, Some(2000));

        // Delivered: the next event becomes the head.
        let ok = Decision { delivery: DeliveryNext::Delivered, endpoint: EndpointNext::Healthy };
        store.finish_attempt(&again[0], &attempt(3000, Some(200)), ok, "", 3000).await.unwrap();
        let next = store.claim_deliveries(3000, 60_000, 10).await.unwrap();
        assert!(next[0].payload.contains("\"e1\"") && next[0].failing_since.is_none());

        // A stale claim (lease lost) cannot write its outcome.
        let stale = ClaimedDelivery { lease_token: "stolen".into(), ..next[0].clone() };
        store.finish_attempt(&stale, &attempt(3000, Some(200)), ok, "", 3000).await.unwrap();
        let log = store.list_deliveries(acme.id, all, None, 50).await.unwrap();
        let statuses: Vec<DeliveryStatus> = log.iter().map(|d| d.status).collect();
        assert_eq!(statuses, vec![DeliveryStatus::Pending, DeliveryStatus::Pending, DeliveryStatus::Delivered]);
        let first = log.last().unwrap();
        assert_eq!(first.attempts, 2);
        assert_eq!(first.log.iter().map(|a| a.status_code).collect::<Vec<_>>(), vec![Some(200), Some(500)]);

        // After the lease runs out another worker may take the delivery over.
        assert!(store.claim_deliveries(59_000, 200_000, 10).await.unwrap().is_empty());
        assert_eq!(store.claim_deliveries(60_001, 200_000, 10).await.unwrap().len(), 1);
    });

    store_test!(giving_up_disables_the_endpoint_with_a_notice_and_redelivery_requeues, |store| {
        use crate::settings::CompanySettings;
        let acme = store.create_company("Acme", &CompanySettings::default()).await.unwrap();
        let hook = webhook(&store, acme.id, &[EventType::IntegrationFailed]).await;
        store.emit_event(acme.id, &failure("x"), 1000).await.unwrap();
        let claim = store.claim_deliveries(1000, 60_000, 10).await.unwrap().remove(0);
        let give_up = Decision { delivery: DeliveryNext::GiveUp, endpoint: EndpointNext::Disable { since: 1000 } };
        let disabled =
            store.finish_attempt(&claim, &attempt(1000, None), give_up, "no answer for 24 h", 1000).await.unwrap();
        assert_eq!(disabled.map(|d| d.reason), Some("no answer for 24 h".to_owned()));
        let endpoint = store.webhook(acme.id, hook).await.unwrap().unwrap();
        assert!(!endpoint.enabled);
        assert_eq!(endpoint.disabled_reason.as_deref(), Some("no answer for 24 h"));
        let notices = store.list_notices(acme.id, true, 50).await.unwrap();
        assert_eq!(notices.iter().map(|n| n.kind).collect::<Vec<_>>(), vec![NoticeKind::WebhookDisabled]);

        let delivery = store.list_deliveries(acme.id, hook, None, 10).await.unwrap().remove(0);
        assert_eq!(delivery.status, DeliveryStatus::Failed);
        assert_eq!(
            store.redeliver(acme.id, hook, delivery.id, 5000).await.unwrap().unwrap_err(),
            RedeliverRefusal::EndpointDisabled
        );
        let mut enabled = endpoint.clone();
        enabled.enabled = true;
        store.update_webhook(&enabled, 5000).await.unwrap();
        assert!(store.list_notices(acme.id, true, 50).await.unwrap().is_empty(), "re-enabling resolves the notice");
        assert_eq!(
            store.redeliver(CompanyId::new(), hook, delivery.id, 5000).await.unwrap().unwrap_err(),
            RedeliverRefusal::NotFound
        );
        let queued = store.redeliver(acme.id, hook, delivery.id, 5000).await.unwrap().unwrap();
        assert_eq!(
            (queued.status, queued.redelivered_at, queued.next_attempt_at),
            (DeliveryStatus::Pending, Some(5000), Some(5000))
        );
        let claim = store.claim_deliveries(5000, 60_000, 10).await.unwrap().remove(0);
        assert_eq!(claim.redelivered_at, Some(5000));
    });

    store_test!(a_full_outbox_records_deliveries_as_failed_instead_of_queueing_them, |store| {
        use crate::settings::CompanySettings;
        let acme = store.create_company("Acme", &CompanySettings::default()).await.unwrap();
        let hook = webhook(&store, acme.id, &[EventType::IntegrationFailed]).await;
        for n in 0..3 {
            let mut tx = store.begin_write().await.unwrap();
            let endpoints = subscribers(&mut tx, acme.id, EventType::IntegrationFailed).await.unwrap();
            write_event(&mut tx, acme.id, &endpoints, &failure("x"), 1000 + n, 2).await.unwrap();
            tx.commit().await.unwrap();
        }
        let log = store.list_deliveries(acme.id, hook, None, 10).await.unwrap();
        assert_eq!(
            log.iter().map(|d| d.status).collect::<Vec<_>>(),
            vec![DeliveryStatus::Failed, DeliveryStatus::Pending, DeliveryStatus::Pending]
        );
        assert!(log[0].last_error.as_deref().unwrap().contains("outbox is full"));
        assert_eq!(store.list_deliveries(acme.id, hook, Some(DeliveryStatus::Failed), 10).await.unwrap().len(), 1);
        assert_eq!(store.prune_events(1002, 0).await.unwrap(), 2);
        assert_eq!(store.list_deliveries(acme.id, hook, None, 10).await.unwrap().len(), 1);
    });
}
