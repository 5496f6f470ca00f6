//! `call_integration_accounts`: Twilio and WhatsApp Business accounts.

use sqlx::Row;

use super::companies::json;
use super::notices::{raise_notice, resolve_notices};
use super::{NoticeKind, Severity, Store, StoreResult, insert_event, parse_enum, parse_id, parse_json};
use crate::crypto::Sealed;
use crate::events::payload::{EventData, IntegrationFailed, IntegrationKind};
use crate::ids::{ChatbotId, CompanyId, IntegrationAccountId};
use crate::time::{UnixMs, now_ms};

text_enum!(
    /// The kind of account.
    AccountType {
        /// Twilio Voice (phone calls through Media Streams).
        Twilio = "twilio",
        /// WhatsApp Business Cloud API calling.
        WhatsApp = "whatsapp",
    }
);

text_enum!(
    /// Whether calls through the account work: active after a passing connection test.
    AccountStatus {
        /// Verified; calls are accepted.
        Active = "active",
        /// Not verified yet, or the last test failed.
        Inactive = "inactive",
    }
);

/// An integration account as stored. Credentials stay sealed here; only the
/// integrations module opens them, to call the provider.
#[derive(Debug, Clone)]
pub struct IntegrationAccount {
    pub id: IntegrationAccountId,
    pub company_id: CompanyId,
    pub account_type: AccountType,
    pub name: String,
    pub description: String,
    pub phone_number: String,
    pub chatbot_id: Option<ChatbotId>,
    /// Identifiers that are safe to show (account SID, phone number id, verify token).
    pub public_config: serde_json::Map<String, serde_json::Value>,
    pub credentials: Sealed,
    pub status: AccountStatus,
    pub last_verified_at: Option<UnixMs>,
    pub last_error: Option<String>,
    /// Since when the account's credentials have been failing (reported by
    /// [`Store::report_integration_failure`]); cleared when a connection test passes. While
    /// set, chatbots bound to the account show no call button.
    pub failed_at: Option<UnixMs>,
    pub created_at: UnixMs,
    pub updated_at: UnixMs,
}

/// An account to create (the id is chosen by the caller: it is sealed into the credentials).
#[derive(Debug, Clone)]
pub struct NewIntegrationAccount {
    pub id: IntegrationAccountId,
    pub account_type: AccountType,
    pub name: String,
    pub description: String,
    pub phone_number: String,
    pub chatbot_id: Option<ChatbotId>,
    pub public_config: serde_json::Map<String, serde_json::Value>,
    pub credentials: Sealed,
}

const COLUMNS: &str = "id, company_id, account_type, name, description, phone_number, chatbot_id, public_config, \
    sealed_credentials, credentials_key_id, status, last_verified_at, last_error, created_at, updated_at, failed_at";

fn from_row(row: &sqlx::any::AnyRow) -> StoreResult<IntegrationAccount> {
    let chatbot: Option<String> = row.try_get("chatbot_id")?;
    Ok(IntegrationAccount {
        id: parse_id(&row.try_get::<String, _>("id")?)?,
        company_id: parse_id(&row.try_get::<String, _>("company_id")?)?,
        account_type: parse_enum(&row.try_get::<String, _>("account_type")?, "account type")?,
        name: row.try_get("name")?,
        description: row.try_get("description")?,
        phone_number: row.try_get("phone_number")?,
        chatbot_id: chatbot.as_deref().map(parse_id).transpose()?,
        public_config: parse_json(&row.try_get::<String, _>("public_config")?, "public config")?,
        credentials: Sealed { key_id: row.try_get("credentials_key_id")?, blob: row.try_get("sealed_credentials")? },
        status: parse_enum(&row.try_get::<String, _>("status")?, "account status")?,
        last_verified_at: row.try_get("last_verified_at")?,
        last_error: row.try_get("last_error")?,
        failed_at: row.try_get("failed_at")?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
    })
}

impl Store {
    /// Adds an account (inactive until a connection test passes).
    pub async fn create_integration_account(
        &self,
        company: CompanyId,
        new: NewIntegrationAccount,
    ) -> StoreResult<IntegrationAccount> {
        let now = now_ms();
        sqlx::query(&format!(
            "INSERT INTO call_integration_accounts ({COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, NULL, NULL, $12, $13, NULL)"
        ))
        .bind(new.id.as_string())
        .bind(company.as_string())
        .bind(new.account_type.as_str())
        .bind(&new.name)
        .bind(&new.description)
        .bind(&new.phone_number)
        .bind(new.chatbot_id.map(|c| c.as_string()))
        .bind(json(&new.public_config))
        .bind(&new.credentials.blob)
        .bind(&new.credentials.key_id)
        .bind(AccountStatus::Inactive.as_str())
        .bind(now)
        .bind(now)
        .execute(self.pool())
        .await?;
        Ok(IntegrationAccount {
            id: new.id,
            company_id: company,
            account_type: new.account_type,
            name: new.name,
            description: new.description,
            phone_number: new.phone_number,
            chatbot_id: new.chatbot_id,
            public_config: new.public_config,
            credentials: new.credentials,
            status: AccountStatus::Inactive,
            last_verified_at: None,
            last_error: None,
            failed_at: None,
            created_at: now,
            updated_at: now,
        })
    }

    /// A company's accounts, oldest first.
    pub async fn list_integration_accounts(&self, company: CompanyId) -> StoreResult<Vec<IntegrationAccount>> {
        let rows = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM call_integration_accounts WHERE company_id = $1 ORDER BY created_at, id"
        ))
        .bind(company.as_string())
        .fetch_all(self.pool())
        .await?;
        rows.iter().map(from_row).collect()
    }

    /// An account by id alone, for a carrier's webhook (the URL names the account; the
    /// webhook's signature proves the caller is the carrier, not a tenant).
    pub async fn integration_account_by_id(&self, id: IntegrationAccountId) -> StoreResult<Option<IntegrationAccount>> {
        let row = sqlx::query(&format!("SELECT {COLUMNS} FROM call_integration_accounts WHERE id = $1"))
            .bind(id.as_string())
            .fetch_optional(self.pool())
            .await?;
        row.as_ref().map(from_row).transpose()
    }

    /// One account of a company.
    pub async fn integration_account(
        &self,
        company: CompanyId,
        id: IntegrationAccountId,
    ) -> StoreResult<Option<IntegrationAccount>> {
        let row =
            sqlx::query(&format!("SELECT {COLUMNS} FROM call_integration_accounts WHERE id = $1 AND company_id = $2"))
                .bind(id.as_string())
                .bind(company.as_string())
                .fetch_optional(self.pool())
                .await?;
        row.as_ref().map(from_row).transpose()
    }

    /// Saves the editable fields (name, description, number, chatbot, config, credentials,
    /// status, verification) of an account, scoped to its company. An account saved as
    /// active (its connection test passed) is no longer failing: its notice is resolved.
    pub async fn update_integration_account(&self, account: &IntegrationAccount) -> StoreResult<bool> {
        let now = now_ms();
        let mut tx = self.begin_write().await?;
        let done = sqlx::query(
            "UPDATE call_integration_accounts SET name = $1, description = $2, phone_number = $3, chatbot_id = $4, \
             public_config = $5, sealed_credentials = $6, credentials_key_id = $7, status = $8, last_verified_at = $9, \
             last_error = $10, updated_at = $11, failed_at = CASE WHEN $12 = 'active' THEN NULL ELSE failed_at END \
             WHERE id = $13 AND company_id = $14",
        )
        .bind(&account.name)
        .bind(&account.description)
        .bind(&account.phone_number)
        .bind(account.chatbot_id.map(|c| c.as_string()))
        .bind(json(&account.public_config))
        .bind(&account.credentials.blob)
        .bind(&account.credentials.key_id)
        .bind(account.status.as_str())
        .bind(account.last_verified_at)
        .bind(&account.last_error)
        .bind(now)
        .bind(account.status.as_str())
        .bind(account.id.as_string())
        .bind(account.company_id.as_string())
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() > 0 && account.status == AccountStatus::Active {
            resolve_notices(&mut tx, account.company_id, NoticeKind::IntegrationFailed, &account.id.as_string(), now)
                .await?;
        }
        tx.commit().await?;
        Ok(done.rows_affected() > 0)
    }

    /// Every account of every company, for maintenance across tenants only (the startup
    /// check of the encryption keys, `gateway keys rotate`); never for serving a request.
    pub async fn all_integration_accounts(&self) -> StoreResult<Vec<IntegrationAccount>> {
        let rows = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM call_integration_accounts ORDER BY company_id, created_at, id"
        ))
        .fetch_all(self.pool())
        .await?;
        rows.iter().map(from_row).collect()
    }

    /// Replaces an account's sealed credentials with the same secrets sealed under another
    /// key, if the row still holds `old` (a concurrent edit wins); returns whether it did.
    pub async fn reseal_integration_credentials(
        &self,
        id: IntegrationAccountId,
        old: &Sealed,
        new: &Sealed,
    ) -> StoreResult<bool> {
        let done = sqlx::query(
            "UPDATE call_integration_accounts SET sealed_credentials = $1, credentials_key_id = $2 \
             WHERE id = $3 AND sealed_credentials = $4 AND credentials_key_id = $5",
        )
        .bind(&new.blob)
        .bind(&new.key_id)
        .bind(id.as_string())
        .bind(&old.blob)
        .bind(&old.key_id)
        .execute(self.pool())
        .await?;
        Ok(done.rows_affected() > 0)
    }

    /// Deletes an account of a company (resolving its notice).
    pub async fn delete_integration_account(&self, company: CompanyId, id: IntegrationAccountId) -> StoreResult<bool> {
        let mut tx = self.begin_write().await?;
        let done = sqlx::query("DELETE FROM call_integration_accounts WHERE id = $1 AND company_id = $2")
            .bind(id.as_string())
            .bind(company.as_string())
            .execute(&mut *tx)
            .await?;
        if done.rows_affected() > 0 {
            resolve_notices(&mut tx, company, NoticeKind::IntegrationFailed, &id.as_string(), now_ms()).await?;
        }
        tx.commit().await?;
        Ok(done.rows_affected() > 0)
    }

    /// An account's credentials started failing (the provider refused them on a call, a
    /// webhook, or a connection test of an account that had passed before): marks it
    /// inactive with the error, and — in the same transaction — opens a notice for the
    /// company's admins and, once per incident, writes an `integration.failed` event.
    /// Chatbots bound to the account stop offering calls until a connection test passes.
    /// False if the company has no such account.
    pub async fn report_integration_failure(
        &self,
        company: CompanyId,
        id: IntegrationAccountId,
        error: &str,
        now: UnixMs,
    ) -> StoreResult<bool> {
        let mut tx = self.begin_write().await?;
        let done = sqlx::query(
            "UPDATE call_integration_accounts SET status = 'inactive', last_error = $1, failed_at = COALESCE(failed_at, $2), \
             updated_at = $3 WHERE id = $4 AND company_id = $5",
        )
        .bind(error)
        .bind(now)
        .bind(now)
        .bind(id.as_string())
        .bind(company.as_string())
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() == 0 {
            return Ok(false);
        }
        let row = sqlx::query("SELECT account_type, name FROM call_integration_accounts WHERE id = $1")
            .bind(id.as_string())
            .fetch_one(&mut *tx)
            .await?;
        let kind: AccountType = parse_enum(&row.try_get::<String, _>("account_type")?, "account type")?;
        let name: String = row.try_get("name")?;
        let (label, integration) = match kind {
            AccountType::Twilio => ("Twilio", IntegrationKind::Twilio),
            AccountType::WhatsApp => ("WhatsApp", IntegrationKind::WhatsApp),
        };
        let message = format!(
            "Your {label} integration \"{name}\" has failed verification. Error: {error}. Calls through this \
             integration are currently unavailable: fix its credentials and run the connection test."
        );
        let subject = id.as_string();
        let opened =
            raise_notice(&mut tx, company, NoticeKind::IntegrationFailed, Severity::Critical, &subject, &message, now)
                .await?;
        if opened {
            let data = EventData::IntegrationFailed(IntegrationFailed {
                integration,
                account_id: Some(id),
                account_name: Some(name),
                provider: None,
                failed_calls: None,
                window_minutes: None,
                error: error.to_owned(),
            });
            insert_event(&mut tx, company, &data, now).await?;
        }
        tx.commit().await?;
        tracing::warn!(company_id = %company, account_id = %id, error, "integration account failing: marked inactive");
        Ok(true)
    }

    /// The failing integration account a chatbot depends on (one bound to it whose
    /// credentials are failing), if any: its calls are unavailable until it is fixed.
    pub async fn failing_integration_of_chatbot(
        &self,
        company: CompanyId,
        chatbot: ChatbotId,
    ) -> StoreResult<Option<IntegrationAccount>> {
        let row = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM call_integration_accounts WHERE company_id = $1 AND chatbot_id = $2 \
             AND failed_at IS NOT NULL ORDER BY failed_at, id LIMIT 1"
        ))
        .bind(company.as_string())
        .bind(chatbot.as_string())
        .fetch_optional(self.pool())
        .await?;
        row.as_ref().map(from_row).transpose()
    }
}

#[cfg(test)]
mod tests {
    use crate::store::testing::store_test;

    store_test!(integration_accounts_keep_credentials_sealed_and_scoped, |store| {
        use crate::crypto::Sealer;
        use crate::ids::IntegrationAccountId;
        use crate::settings::CompanySettings;
        use crate::store::{AccountStatus, AccountType, NewIntegrationAccount};
        use base64::Engine;
        let sealer = Sealer::new(&base64::engine::general_purpose::STANDARD.encode([3u8; 32]), &[]).unwrap();
        let acme = store.create_company("Acme", &CompanySettings::default()).await.unwrap();
        let globex = store.create_company("Globex", &CompanySettings::default()).await.unwrap();
        let id = IntegrationAccountId::new();
        let secret = "auth-token-that-must-not-leak-1a2b";
        let mut config = serde_json::Map::new();
        config.insert("accountSid".into(), "AC0123456789abcdef0123456789abcdef".into());
        let account = store
            .create_integration_account(
                acme.id,
                NewIntegrationAccount {
                    id,
                    account_type: AccountType::Twilio,
                    name: "Main".into(),
                    description: String::new(),
                    phone_number: "+15551234567".into(),
                    chatbot_id: None,
                    public_config: config,
                    credentials: sealer.seal(secret.as_bytes(), id.as_string().as_bytes()),
                },
            )
            .await
            .unwrap();
        assert_eq!(account.status, AccountStatus::Inactive);
        assert!(store.integration_account(globex.id, id).await.unwrap().is_none());
        assert!(!store.delete_integration_account(globex.id, id).await.unwrap());

        let mut verified = store.integration_account(acme.id, id).await.unwrap().unwrap();
        assert_eq!(sealer.open(&verified.credentials, id.as_string().as_bytes()).unwrap(), secret.as_bytes());
        verified.status = AccountStatus::Active;
        verified.last_verified_at = Some(1);
        assert!(store.update_integration_account(&verified).await.unwrap());
        assert_eq!(store.list_integration_accounts(acme.id).await.unwrap()[0].status, AccountStatus::Active);

        let dump: Vec<String> = sqlx::query_scalar("SELECT sealed_credentials FROM call_integration_accounts")
            .fetch_all(store.pool())
            .await
            .unwrap();
        assert!(!dump.iter().any(|d| d.contains(secret)));
        assert!(store.delete_integration_account(acme.id, id).await.unwrap());
    });

    store_test!(credentials_are_resealed_only_if_unchanged_since_read, |store| {
        use crate::crypto::Sealer;
        use crate::ids::IntegrationAccountId;
        use crate::settings::CompanySettings;
        use crate::store::{AccountType, NewIntegrationAccount};
        use base64::Engine;
        let key = |b: u8| base64::engine::general_purpose::STANDARD.encode([b; 32]);
        let old = Sealer::from_key_list(&format!("k1:{}", key(1))).unwrap();
        let new = Sealer::from_key_list(&format!("k1:{},k2:{}", key(1), key(2))).unwrap();
        let acme = store.create_company("Acme", &CompanySettings::default()).await.unwrap();
        let globex = store.create_company("Globex", &CompanySettings::default()).await.unwrap();
        let mut ids = Vec::new();
        for company in [acme.id, globex.id] {
            let id = IntegrationAccountId::new();
            let account = NewIntegrationAccount {
                id,
                account_type: AccountType::Twilio,
                name: "Main".into(),
                description: String::new(),
                phone_number: "+15551234567".into(),
                chatbot_id: None,
                public_config: serde_json::Map::new(),
                credentials: old.seal(b"{}", id.as_string().as_bytes()),
            };
            store.create_integration_account(company, account).await.unwrap();
            ids.push(id);
        }
        let all = store.all_integration_accounts().await.unwrap();
        assert_eq!(all.len(), 2, "across companies");
        let first = &all[0];
        let resealed = new.reseal(&first.credentials, first.id.as_string().as_bytes()).unwrap().unwrap();
        assert!(store.reseal_integration_credentials(first.id, &first.credentials, &resealed).await.unwrap());
        assert!(
            !store.reseal_integration_credentials(first.id, &first.credentials, &resealed).await.unwrap(),
            "the row no longer holds what was read"
        );
        let stored = store.integration_account(first.company_id, first.id).await.unwrap().unwrap();
        assert_eq!(stored.credentials, resealed);
        assert_eq!(stored.credentials.key_id, "k2");
    });

    store_test!(a_failing_account_is_made_inactive_with_a_notice_and_one_event_and_hides_its_chatbots_calls, |store| {
        use crate::crypto::Sealed;
        use crate::ids::IntegrationAccountId;
        use crate::settings::CompanySettings;
        use crate::store::{AccountStatus, AccountType, EventType, NewIntegrationAccount, NoticeKind};
        let acme = store.create_company("Acme", &CompanySettings::default()).await.unwrap();
        let globex = store.create_company("Globex", &CompanySettings::default()).await.unwrap();
        let bot = crate::store::testing::call_chatbot(&store, acme.id).await;
        crate::store::testing::webhook(&store, acme.id, &[EventType::IntegrationFailed]).await;
        let id = IntegrationAccountId::new();
        store
            .create_integration_account(
                acme.id,
                NewIntegrationAccount {
                    id,
                    account_type: AccountType::Twilio,
                    name: "Main Account".into(),
                    description: String::new(),
                    phone_number: "+15551234567".into(),
                    chatbot_id: Some(bot.id),
                    public_config: serde_json::Map::new(),
                    credentials: Sealed { key_id: "k".into(), blob: "b".into() },
                },
            )
            .await
            .unwrap();
        let mut active = store.integration_account(acme.id, id).await.unwrap().unwrap();
        active.status = AccountStatus::Active;
        store.update_integration_account(&active).await.unwrap();
        assert!(store.failing_integration_of_chatbot(acme.id, bot.id).await.unwrap().is_none());

        assert!(!store.report_integration_failure(globex.id, id, "Invalid auth token", 1000).await.unwrap(), "scoped");
        assert!(store.report_integration_failure(acme.id, id, "Invalid auth token", 1000).await.unwrap());
        assert!(store.report_integration_failure(acme.id, id, "Invalid auth token", 2000).await.unwrap());
        let failed = store.integration_account(acme.id, id).await.unwrap().unwrap();
        assert_eq!(
            (failed.status, failed.last_error.as_deref(), failed.failed_at),
            (AccountStatus::Inactive, Some("Invalid auth token"), Some(1000))
        );
        let blocking = store.failing_integration_of_chatbot(acme.id, bot.id).await.unwrap().unwrap();
        assert_eq!(blocking.id, id);
        let notices = store.list_notices(acme.id, true, 10).await.unwrap();
        assert_eq!((notices.len(), notices[0].kind, notices[0].occurrences), (1, NoticeKind::IntegrationFailed, 2));
        assert!(notices[0].message.contains("Twilio integration \"Main Account\" has failed verification"));
        let events: Vec<String> =
            sqlx::query_scalar("SELECT payload FROM webhook_events").fetch_all(store.pool()).await.unwrap();
        assert_eq!(events.len(), 1, "one event per incident");
        let event: serde_json::Value = serde_json::from_str(&events[0]).unwrap();
        assert_eq!(event["type"], "integration.failed");
        assert_eq!(event["data"]["integration"], "twilio");
        assert_eq!(event["data"]["accountId"], id.to_string());

        // The connection test passes again: active, no longer failing, notice resolved.
        let mut fixed = failed;
        fixed.status = AccountStatus::Active;
        fixed.last_error = None;
        store.update_integration_account(&fixed).await.unwrap();
        assert!(store.integration_account(acme.id, id).await.unwrap().unwrap().failed_at.is_none());
        assert!(store.failing_integration_of_chatbot(acme.id, bot.id).await.unwrap().is_none());
        assert!(store.list_notices(acme.id, true, 10).await.unwrap().is_empty());
    });
}
