//! `webhook_endpoints`: where a company wants its events sent.

use sqlx::Row;

use super::events::EventType;
use super::{NoticeKind, Store, StoreResult, parse_id, parse_json};
use crate::crypto::Sealed;
use crate::ids::{CompanyId, WebhookId};
use crate::time::{UnixMs, now_ms};

/// Endpoints a company may register.
pub const MAX_WEBHOOKS_PER_COMPANY: i64 = 20;

/// A webhook endpoint. The signing secret stays sealed here; the delivery worker and the
/// API (to show it once, then masked) open it.
#[derive(Debug, Clone)]
pub struct WebhookEndpoint {
    pub id: WebhookId,
    pub company_id: CompanyId,
    pub url: String,
    pub description: String,
    pub event_types: Vec<EventType>,
    pub enabled: bool,
    pub secret: Sealed,
    /// Why it was disabled (after persistent failure, or by an admin).
    pub disabled_reason: Option<String>,
    pub disabled_at: Option<UnixMs>,
    /// First failed attempt since the last delivered one.
    pub failing_since: Option<UnixMs>,
    pub created_at: UnixMs,
    pub updated_at: UnixMs,
}

/// An endpoint to create (the id is chosen by the caller: it is sealed into the secret).
#[derive(Debug, Clone)]
pub struct NewWebhookEndpoint {
    pub id: WebhookId,
    pub url: String,
    pub description: String,
    pub event_types: Vec<EventType>,
    pub secret: Sealed,
}

const COLUMNS: &str = "id, company_id, url, description, event_types, enabled, sealed_secret, secret_key_id, \
    disabled_reason, disabled_at, failing_since, created_at, updated_at";

fn from_row(row: &sqlx::any::AnyRow) -> StoreResult<WebhookEndpoint> {
    Ok(WebhookEndpoint {
        id: parse_id(&row.try_get::<String, _>("id")?)?,
        company_id: parse_id(&row.try_get::<String, _>("company_id")?)?,
        url: row.try_get("url")?,
        description: row.try_get("description")?,
        event_types: parse_json(&row.try_get::<String, _>("event_types")?, "webhook event types")?,
        enabled: row.try_get::<i64, _>("enabled")? != 0,
        secret: Sealed { key_id: row.try_get("secret_key_id")?, blob: row.try_get("sealed_secret")? },
        disabled_reason: row.try_get("disabled_reason")?,
        disabled_at: row.try_get("disabled_at")?,
        failing_since: row.try_get("failing_since")?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
    })
}

fn types_json(types: &[EventType]) -> String {
    serde_json::to_string(types).expect("event types serialise")
}

impl Store {
    /// Registers an endpoint (enabled).
    pub async fn create_webhook(&self, company: CompanyId, new: NewWebhookEndpoint) -> StoreResult<WebhookEndpoint> {
        let now = now_ms();
        sqlx::query(&format!(
            "INSERT INTO webhook_endpoints ({COLUMNS}) VALUES ($1, $2, $3, $4, $5, 1, $6, $7, NULL, NULL, NULL, $8, $9)"
        ))
        .bind(new.id.as_string())
        .bind(company.as_string())
        .bind(&new.url)
        .bind(&new.description)
        .bind(types_json(&new.event_types))
        .bind(&new.secret.blob)
        .bind(&new.secret.key_id)
        .bind(now)
        .bind(now)
        .execute(self.pool())
        .await?;
        Ok(WebhookEndpoint {
            id: new.id,
            company_id: company,
            url: new.url,
            description: new.description,
            event_types: new.event_types,
            enabled: true,
            secret: new.secret,
            disabled_reason: None,
            disabled_at: None,
            failing_since: None,
            created_at: now,
            updated_at: now,
        })
    }

    /// How many endpoints a company has.
    pub async fn count_webhooks(&self, company: CompanyId) -> StoreResult<i64> {
        Ok(sqlx::query_scalar("SELECT COUNT(*) FROM webhook_endpoints WHERE company_id = $1")
            .bind(company.as_string())
            .fetch_one(self.pool())
            .await?)
    }

    /// A company's endpoints, oldest first.
    pub async fn list_webhooks(&self, company: CompanyId) -> StoreResult<Vec<WebhookEndpoint>> {
        let rows = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM webhook_endpoints WHERE company_id = $1 ORDER BY created_at, id"
        ))
        .bind(company.as_string())
        .fetch_all(self.pool())
        .await?;
        rows.iter().map(from_row).collect()
    }

    /// One endpoint of a company.
    pub async fn webhook(&self, company: CompanyId, id: WebhookId) -> StoreResult<Option<WebhookEndpoint>> {
        let row = sqlx::query(&format!("SELECT {COLUMNS} FROM webhook_endpoints WHERE id = $1 AND company_id = $2"))
            .bind(id.as_string())
            .bind(company.as_string())
            .fetch_optional(self.pool())
            .await?;
        row.as_ref().map(from_row).transpose()
    }

    /// Saves an endpoint's editable fields (url, description, events, enabled, disabled
    /// reason, secret), scoped to its company. Enabling a disabled endpoint forgets how
    /// long it had been failing and resolves the notice that said it was disabled; its
    /// waiting deliveries then go out, in order.
    pub async fn update_webhook(&self, endpoint: &WebhookEndpoint, now: UnixMs) -> StoreResult<bool> {
        let mut tx = self.begin_write().await?;
        let enabled = i64::from(endpoint.enabled);
        let done = sqlx::query(
            "UPDATE webhook_endpoints SET url = $1, description = $2, event_types = $3, \
             failing_since = CASE WHEN enabled = 0 AND $4 = 1 THEN NULL ELSE failing_since END, enabled = $5, \
             disabled_reason = $6, disabled_at = $7, sealed_secret = $8, secret_key_id = $9, updated_at = $10 \
             WHERE id = $11 AND company_id = $12",
        )
        .bind(&endpoint.url)
        .bind(&endpoint.description)
        .bind(types_json(&endpoint.event_types))
        .bind(enabled)
        .bind(enabled)
        .bind(if endpoint.enabled { None } else { endpoint.disabled_reason.as_deref() })
        .bind(if endpoint.enabled { None } else { endpoint.disabled_at.or(Some(now)) })
        .bind(&endpoint.secret.blob)
        .bind(&endpoint.secret.key_id)
        .bind(now)
        .bind(endpoint.id.as_string())
        .bind(endpoint.company_id.as_string())
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() > 0 && endpoint.enabled {
            super::notices::resolve_notices(
                &mut tx,
                endpoint.company_id,
                NoticeKind::WebhookDisabled,
                &endpoint.id.as_string(),
                now,
            )
            .await?;
        }
        tx.commit().await?;
        Ok(done.rows_affected() > 0)
    }

    /// Deletes an endpoint with its deliveries.
    pub async fn delete_webhook(&self, company: CompanyId, id: WebhookId) -> StoreResult<bool> {
        let mut tx = self.begin_write().await?;
        let done = sqlx::query("DELETE FROM webhook_endpoints WHERE id = $1 AND company_id = $2")
            .bind(id.as_string())
            .bind(company.as_string())
            .execute(&mut *tx)
            .await?;
        if done.rows_affected() > 0 {
            super::notices::resolve_notices(&mut tx, company, NoticeKind::WebhookDisabled, &id.as_string(), now_ms())
                .await?;
        }
        tx.commit().await?;
        Ok(done.rows_affected() > 0)
    }
}

#[cfg(test)]
mod tests {
    use crate::store::testing::store_test;

    store_test!(webhook_endpoints_are_scoped_to_their_company, |store| {
        use crate::crypto::Sealed;
        use crate::ids::WebhookId;
        use crate::settings::CompanySettings;
        use crate::store::{EventType, NewWebhookEndpoint};
        let acme = store.create_company("Acme", &CompanySettings::default()).await.unwrap();
        let globex = store.create_company("Globex", &CompanySettings::default()).await.unwrap();
        let id = WebhookId::new();
        let created = store
            .create_webhook(
                acme.id,
                NewWebhookEndpoint {
                    id,
                    url: "https://hooks.example.com/a".into(),
                    description: "CRM".into(),
                    event_types: vec![EventType::CallEnded, EventType::CallFailed],
                    secret: Sealed { key_id: "k1".into(), blob: "sealed".into() },
                },
            )
            .await
            .unwrap();
        assert!(created.enabled);
        assert_eq!(store.count_webhooks(acme.id).await.unwrap(), 1);
        assert!(store.webhook(globex.id, id).await.unwrap().is_none());
        assert!(store.list_webhooks(globex.id).await.unwrap().is_empty());
        assert!(!store.delete_webhook(globex.id, id).await.unwrap());

        let mut disabled = store.webhook(acme.id, id).await.unwrap().unwrap();
        assert_eq!(disabled.event_types, vec![EventType::CallEnded, EventType::CallFailed]);
        disabled.enabled = false;
        disabled.disabled_reason = Some("disabled by an admin".into());
        assert!(store.update_webhook(&disabled, 5).await.unwrap());
        let stored = store.webhook(acme.id, id).await.unwrap().unwrap();
        assert_eq!(
            (stored.enabled, stored.disabled_reason.as_deref(), stored.disabled_at),
            (false, Some("disabled by an admin"), Some(5))
        );
        let mut other = stored.clone();
        other.company_id = globex.id;
        assert!(!store.update_webhook(&other, 6).await.unwrap(), "another company cannot change it");

        let mut enabled = stored;
        enabled.enabled = true;
        assert!(store.update_webhook(&enabled, 7).await.unwrap());
        let stored = store.webhook(acme.id, id).await.unwrap().unwrap();
        assert_eq!((stored.enabled, stored.disabled_reason, stored.disabled_at), (true, None, None));
        assert!(store.delete_webhook(acme.id, id).await.unwrap());
        assert_eq!(store.count_webhooks(acme.id).await.unwrap(), 0);
    });
}
