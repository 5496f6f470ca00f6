//! `notices`: what the admin console shows a company's admins — an integration failing,
//! calls failing because the voice provider cannot be reached, a webhook endpoint
//! disabled. A condition has at most one open notice (per kind and subject); while it
//! lasts, repeats count `occurrences` on it. It is resolved when the condition clears (the
//! account passes its test, a call completes, the endpoint is enabled again), or dismissed
//! by an admin.

use sqlx::{AnyConnection, Row};

use super::{Call, Store, StoreResult, parse_enum, parse_id};
use crate::events::payload::{EventData, IntegrationFailed, IntegrationKind};
use crate::events::policy::FailureWindow;
use crate::ids::{CompanyId, NoticeId};
use crate::time::UnixMs;

text_enum!(
    /// What a notice is about.
    NoticeKind {
        /// An integration account's credentials are failing; it was made inactive.
        IntegrationFailed = "integration_failed",
        /// Calls keep failing because the voice provider cannot be reached.
        ProviderFailures = "provider_failures",
        /// A webhook endpoint was disabled after persistent failure.
        WebhookDisabled = "webhook_disabled",
    }
);

text_enum!(
    /// How urgent a notice is.
    Severity {
        /// For information.
        Info = "info",
        /// Something does not work; callers are not affected.
        Warning = "warning",
        /// Callers are affected.
        Critical = "critical",
    }
);

/// A notice to a company's admins.
#[derive(Debug, Clone, PartialEq)]
pub struct Notice {
    pub id: NoticeId,
    pub company_id: CompanyId,
    pub kind: NoticeKind,
    pub severity: Severity,
    /// What it is about: an integration account id, a provider, a webhook id.
    pub subject: String,
    pub message: String,
    /// How many times the condition was reported while the notice was open.
    pub occurrences: i64,
    pub created_at: UnixMs,
    pub updated_at: UnixMs,
    pub resolved_at: Option<UnixMs>,
    pub dismissed_at: Option<UnixMs>,
}

const COLUMNS: &str =
    "id, company_id, kind, severity, subject, message, occurrences, created_at, updated_at, resolved_at, dismissed_at";

fn from_row(row: &sqlx::any::AnyRow) -> StoreResult<Notice> {
    Ok(Notice {
        id: parse_id(&row.try_get::<String, _>("id")?)?,
        company_id: parse_id(&row.try_get::<String, _>("company_id")?)?,
        kind: parse_enum(&row.try_get::<String, _>("kind")?, "notice kind")?,
        severity: parse_enum(&row.try_get::<String, _>("severity")?, "notice severity")?,
        subject: row.try_get("subject")?,
        message: row.try_get("message")?,
        occurrences: row.try_get("occurrences")?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
        resolved_at: row.try_get("resolved_at")?,
        dismissed_at: row.try_get("dismissed_at")?,
    })
}

/// Opens a notice, or counts one more occurrence on the open notice of the same kind and
/// subject (with the new message). Returns true when a new notice was opened: the caller
/// then raises its event, once per incident.
pub(crate) async fn raise_notice(
    conn: &mut AnyConnection,
    company: CompanyId,
    kind: NoticeKind,
    severity: Severity,
    subject: &str,
    message: &str,
    now: UnixMs,
) -> StoreResult<bool> {
    let inserted = sqlx::query(
        "INSERT INTO notices (id, company_id, kind, severity, subject, message, occurrences, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, 1, $7, $8) \
         ON CONFLICT (company_id, kind, subject) WHERE resolved_at IS NULL AND dismissed_at IS NULL DO NOTHING",
    )
    .bind(NoticeId::new().as_string())
    .bind(company.as_string())
    .bind(kind.as_str())
    .bind(severity.as_str())
    .bind(subject)
    .bind(message)
    .bind(now)
    .bind(now)
    .execute(&mut *conn)
    .await?
    .rows_affected()
        == 1;
    if inserted {
        crate::metrics::notice_raised(kind);
        return Ok(true);
    }
    sqlx::query(
        "UPDATE notices SET occurrences = occurrences + 1, message = $1, severity = $2, updated_at = $3 \
         WHERE company_id = $4 AND kind = $5 AND subject = $6 AND resolved_at IS NULL AND dismissed_at IS NULL",
    )
    .bind(message)
    .bind(severity.as_str())
    .bind(now)
    .bind(company.as_string())
    .bind(kind.as_str())
    .bind(subject)
    .execute(&mut *conn)
    .await?;
    Ok(false)
}

/// Resolves the open notices of a kind and subject (the condition cleared).
pub(crate) async fn resolve_notices(
    conn: &mut AnyConnection,
    company: CompanyId,
    kind: NoticeKind,
    subject: &str,
    now: UnixMs,
) -> StoreResult<u64> {
    let done = sqlx::query(
        "UPDATE notices SET resolved_at = $1, updated_at = $2 \
         WHERE company_id = $3 AND kind = $4 AND subject = $5 AND resolved_at IS NULL AND dismissed_at IS NULL",
    )
    .bind(now)
    .bind(now)
    .bind(company.as_string())
    .bind(kind.as_str())
    .bind(subject)
    .execute(&mut *conn)
    .await?;
    Ok(done.rows_affected())
}

/// Called in the transaction that ends `call` with `provider_error`: when the company's
/// recent provider failures (this one included) make the failure persistent
/// ([`FailureWindow::PROVIDER`]: 3 failed calls in 10 minutes), opens a notice and, once
/// per incident, writes an `integration.failed` event. Every node counts from the same
/// table, so the rule holds across nodes and restarts.
pub(crate) async fn note_provider_failure(conn: &mut AnyConnection, call: &Call, now: UnixMs) -> StoreResult<()> {
    let window = FailureWindow::PROVIDER;
    let times: Vec<i64> = sqlx::query_scalar(
        "SELECT ended_at FROM calls WHERE company_id = $1 AND end_reason = 'provider_error' AND ended_at > $2 \
         ORDER BY ended_at DESC LIMIT 100",
    )
    .bind(call.company_id.as_string())
    .bind(window.since(now))
    .fetch_all(&mut *conn)
    .await?;
    if !window.is_persistent(&times, now) {
        return Ok(());
    }
    let provider = call.provider.clone().unwrap_or_else(|| "unknown".to_owned());
    let error = call.error_message.clone().unwrap_or_else(|| "the voice provider could not be reached".to_owned());
    let recent = times.iter().filter(|&&t| now - t < window.window_ms).count();
    let minutes = window.window_ms / 60_000;
    let message = format!(
        "{recent} calls failed in the last {minutes} minutes because the voice provider ({provider}) could not be \
         reached. Last error: {error}. Callers are offered a retry; check the provider's status and the gateway's \
         provider settings."
    );
    let opened =
        raise_notice(conn, call.company_id, NoticeKind::ProviderFailures, Severity::Critical, &provider, &message, now)
            .await?;
    if opened {
        let data = EventData::IntegrationFailed(IntegrationFailed {
            integration: IntegrationKind::Provider,
            account_id: None,
            account_name: None,
            provider: Some(provider),
            failed_calls: Some(recent),
            window_minutes: Some(minutes),
            error,
        });
        super::insert_event(conn, call.company_id, &data, now).await?;
    }
    Ok(())
}

impl Store {
    /// A company's notices, newest first; only open ones (neither resolved nor dismissed)
    /// with `open_only`.
    pub async fn list_notices(&self, company: CompanyId, open_only: bool, limit: i64) -> StoreResult<Vec<Notice>> {
        let rows = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM notices WHERE company_id = $1 \
             AND ($2 = 0 OR (resolved_at IS NULL AND dismissed_at IS NULL)) ORDER BY created_at DESC, id LIMIT $3"
        ))
        .bind(company.as_string())
        .bind(i64::from(open_only))
        .bind(limit)
        .fetch_all(self.pool())
        .await?;
        rows.iter().map(from_row).collect()
    }

    /// Dismisses a notice of a company (once; dismissing again changes nothing).
    pub async fn dismiss_notice(&self, company: CompanyId, id: NoticeId, now: UnixMs) -> StoreResult<Option<Notice>> {
        sqlx::query(
            "UPDATE notices SET dismissed_at = $1, updated_at = $2 WHERE id = $3 AND company_id = $4 AND dismissed_at IS NULL",
        )
        .bind(now)
        .bind(now)
        .bind(id.as_string())
        .bind(company.as_string())
        .execute(self.pool())
        .await?;
        let row = sqlx::query(&format!("SELECT {COLUMNS} FROM notices WHERE id = $1 AND company_id = $2"))
            .bind(id.as_string())
            .bind(company.as_string())
            .fetch_optional(self.pool())
            .await?;
        row.as_ref().map(from_row).transpose()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::testing::store_test;

    store_test!(a_condition_has_one_open_notice_until_it_is_resolved_or_dismissed, |store| {
        use crate::settings::CompanySettings;
        let acme = store.create_company("Acme", &CompanySettings::default()).await.unwrap();
        let globex = store.create_company("Globex", &CompanySettings::default()).await.unwrap();
        let raise = |message: &'static str, now: UnixMs| {
            let store = store.clone();
            async move {
                let mut tx = store.begin_write().await.unwrap();
                let opened = raise_notice(
                    &mut tx,
                    acme.id,
                    NoticeKind::WebhookDisabled,
                    Severity::Warning,
                    "hook-1",
                    message,
                    now,
                )
                .await
                .unwrap();
                tx.commit().await.unwrap();
                opened
            }
        };
        assert!(raise("first", 10).await);
        assert!(!raise("second", 20).await, "the open notice counts the repeat");
        let open = store.list_notices(acme.id, true, 50).await.unwrap();
        assert_eq!(open.len(), 1);
        assert_eq!((open[0].occurrences, open[0].message.as_str(), open[0].updated_at), (2, "second", 20));
        assert!(store.list_notices(globex.id, false, 50).await.unwrap().is_empty());
        assert!(store.dismiss_notice(globex.id, open[0].id, 25).await.unwrap().is_none(), "tenant isolation");

        let dismissed = store.dismiss_notice(acme.id, open[0].id, 30).await.unwrap().unwrap();
        assert_eq!(dismissed.dismissed_at, Some(30));
        assert_eq!(store.dismiss_notice(acme.id, open[0].id, 40).await.unwrap().unwrap().dismissed_at, Some(30));
        assert!(store.list_notices(acme.id, true, 50).await.unwrap().is_empty());

        assert!(raise("third", 50).await, "after a dismissal the condition opens a new notice");
        let mut tx = store.begin_write().await.unwrap();
        assert_eq!(resolve_notices(&mut tx, acme.id, NoticeKind::WebhookDisabled, "hook-1", 60).await.unwrap(), 1);
        tx.commit().await.unwrap();
        let all = store.list_notices(acme.id, false, 50).await.unwrap();
        assert_eq!(
            all.iter().map(|n| (n.resolved_at, n.dismissed_at)).collect::<Vec<_>>(),
            vec![(Some(60), None), (None, Some(30))]
        );
    });
}
