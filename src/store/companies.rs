//! `companies`: tenants and their settings.

use sqlx::Row;

use super::{Store, StoreResult, parse_id, parse_json};
use crate::ids::CompanyId;
use crate::settings::CompanySettings;
use crate::time::{UnixMs, now_ms};

/// A tenant.
#[derive(Debug, Clone)]
pub struct Company {
    pub id: CompanyId,
    pub name: String,
    pub settings: CompanySettings,
    pub created_at: UnixMs,
    pub updated_at: UnixMs,
}

const COLUMNS: &str = "id, name, settings, created_at, updated_at";

fn from_row(row: &sqlx::any::AnyRow) -> StoreResult<Company> {
    Ok(Company {
        id: parse_id(&row.try_get::<String, _>("id")?)?,
        name: row.try_get("name")?,
        settings: parse_json(&row.try_get::<String, _>("settings")?, "company settings")?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
    })
}

impl Store {
    /// Creates a company.
    pub async fn create_company(&self, name: &str, settings: &CompanySettings) -> StoreResult<Company> {
        let now = now_ms();
        let company = Company {
            id: CompanyId::new(),
            name: name.to_owned(),
            settings: settings.clone(),
            created_at: now,
            updated_at: now,
        };
        sqlx::query("INSERT INTO companies (id, name, settings, created_at, updated_at) VALUES ($1, $2, $3, $4, $5)")
            .bind(company.id.as_string())
            .bind(&company.name)
            .bind(json(&company.settings))
            .bind(now)
            .bind(now)
            .execute(self.pool())
            .await?;
        Ok(company)
    }

    /// Every company, oldest first.
    pub async fn list_companies(&self) -> StoreResult<Vec<Company>> {
        let rows = sqlx::query(&format!("SELECT {COLUMNS} FROM companies ORDER BY created_at, id"))
            .fetch_all(self.pool())
            .await?;
        rows.iter().map(from_row).collect()
    }

    /// One company.
    pub async fn company(&self, id: CompanyId) -> StoreResult<Option<Company>> {
        let row = sqlx::query(&format!("SELECT {COLUMNS} FROM companies WHERE id = $1"))
            .bind(id.as_string())
            .fetch_optional(self.pool())
            .await?;
        row.as_ref().map(from_row).transpose()
    }

    /// The company with this name, if any (the demo company is found this way).
    pub async fn company_by_name(&self, name: &str) -> StoreResult<Option<Company>> {
        let row = sqlx::query(&format!("SELECT {COLUMNS} FROM companies WHERE name = $1 ORDER BY created_at LIMIT 1"))
            .bind(name)
            .fetch_optional(self.pool())
            .await?;
        row.as_ref().map(from_row).transpose()
    }

    /// Replaces a company's settings; None if there is no such company.
    pub async fn update_company_settings(
        &self,
        id: CompanyId,
        settings: &CompanySettings,
    ) -> StoreResult<Option<Company>> {
        let done = sqlx::query("UPDATE companies SET settings = $1, updated_at = $2 WHERE id = $3")
            .bind(json(settings))
            .bind(now_ms())
            .bind(id.as_string())
            .execute(self.pool())
            .await?;
        if done.rows_affected() == 0 {
            return Ok(None);
        }
        self.company(id).await
    }
}

/// Serialises a settings document for storage.
pub(crate) fn json<T: serde::Serialize>(value: &T) -> String {
    serde_json::to_string(value).expect("settings documents always serialise")
}

#[cfg(test)]
mod tests {
    use crate::store::testing::store_test;

    store_test!(companies_are_created_listed_and_updated, |store| {
        use crate::settings::CompanySettings;
        let a = store.create_company("Acme", &CompanySettings::default()).await.unwrap();
        let b = store.create_company("Globex", &CompanySettings::default()).await.unwrap();
        let all = store.list_companies().await.unwrap();
        assert_eq!(all.iter().map(|c| c.id).collect::<Vec<_>>(), vec![a.id, b.id]);
        assert!(!a.settings.features.call_enabled);

        let mut settings = a.settings.clone();
        settings.features.call_enabled = true;
        let updated = store.update_company_settings(a.id, &settings).await.unwrap().unwrap();
        assert!(updated.settings.features.call_enabled);
        assert!(store.company(b.id).await.unwrap().is_some_and(|c| !c.settings.features.call_enabled));
        assert!(store.update_company_settings(crate::ids::CompanyId::new(), &settings).await.unwrap().is_none());
    });
}
