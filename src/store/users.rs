//! `users`, `company_members` and `api_tokens`.

use sqlx::Row;

use super::{Store, StoreResult, parse_enum, parse_id};
use crate::crypto;
use crate::ids::{CompanyId, TokenId, UserId};
use crate::time::{UnixMs, now_ms};

text_enum!(
    /// What a user may do.
    Role {
        /// Runs the platform: every company, the AI model catalogue.
        MasterAdmin = "master_admin",
        /// Configures the companies they belong to.
        CompanyAdmin = "company_admin",
        /// Takes over escalated chats and calls.
        SupportAgent = "support_agent",
    }
);

/// A user.
#[derive(Debug, Clone)]
pub struct User {
    pub id: UserId,
    pub email: String,
    pub name: Option<String>,
    pub avatar_url: Option<String>,
    pub role: Role,
    pub created_at: UnixMs,
}

const COLUMNS: &str = "u.id, u.email, u.name, u.avatar_url, u.role, u.created_at";

fn from_row(row: &sqlx::any::AnyRow) -> StoreResult<User> {
    Ok(User {
        id: parse_id(&row.try_get::<String, _>("id")?)?,
        email: row.try_get("email")?,
        name: row.try_get("name")?,
        avatar_url: row.try_get("avatar_url")?,
        role: parse_enum(&row.try_get::<String, _>("role")?, "role")?,
        created_at: row.try_get("created_at")?,
    })
}

/// Seconds between updates of a token's `last_used_at`, so API calls rarely write.
const LAST_USED_GRANULARITY_MS: UnixMs = 60_000;

impl Store {
    /// Creates a user and makes them a member of `companies`.
    pub async fn create_user(
        &self,
        email: &str,
        name: Option<&str>,
        role: Role,
        companies: &[CompanyId],
    ) -> StoreResult<User> {
        let now = now_ms();
        let user = User {
            id: UserId::new(),
            email: email.trim().to_lowercase(),
            name: name.map(str::to_owned),
            avatar_url: None,
            role,
            created_at: now,
        };
        let mut tx = self.pool().begin().await?;
        sqlx::query("INSERT INTO users (id, email, name, role, created_at) VALUES ($1, $2, $3, $4, $5)")
            .bind(user.id.as_string())
            .bind(&user.email)
            .bind(&user.name)
            .bind(role.as_str())
            .bind(now)
            .execute(&mut *tx)
            .await?;
        for company in companies {
            sqlx::query("INSERT INTO company_members (company_id, user_id, created_at) VALUES ($1, $2, $3)")
                .bind(company.as_string())
                .bind(user.id.as_string())
                .bind(now)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(user)
    }

    /// The user with this e-mail address.
    pub async fn user_by_email(&self, email: &str) -> StoreResult<Option<User>> {
        let row = sqlx::query(&format!("SELECT {COLUMNS} FROM users u WHERE u.email = $1"))
            .bind(email.trim().to_lowercase())
            .fetch_optional(self.pool())
            .await?;
        row.as_ref().map(from_row).transpose()
    }

    /// The companies a user is a member of.
    pub async fn user_companies(&self, user: UserId) -> StoreResult<Vec<CompanyId>> {
        let rows =
            sqlx::query("SELECT company_id FROM company_members WHERE user_id = $1 ORDER BY created_at, company_id")
                .bind(user.as_string())
                .fetch_all(self.pool())
                .await?;
        rows.iter().map(|r| parse_id(&r.try_get::<String, _>("company_id")?)).collect()
    }

    /// Whether a user is a member of a company.
    pub async fn is_member(&self, user: UserId, company: CompanyId) -> StoreResult<bool> {
        let row = sqlx::query("SELECT 1 AS one FROM company_members WHERE user_id = $1 AND company_id = $2")
            .bind(user.as_string())
            .bind(company.as_string())
            .fetch_optional(self.pool())
            .await?;
        Ok(row.is_some())
    }

    /// Issues a new API token for a user and returns it; only its hash is stored.
    pub async fn create_api_token(&self, user: UserId, name: &str) -> StoreResult<String> {
        let token = crypto::new_token("gw_");
        sqlx::query("INSERT INTO api_tokens (id, user_id, token_hash, name, created_at) VALUES ($1, $2, $3, $4, $5)")
            .bind(TokenId::new().as_string())
            .bind(user.as_string())
            .bind(crypto::token_hash(&token))
            .bind(name)
            .bind(now_ms())
            .execute(self.pool())
            .await?;
        Ok(token)
    }

    /// The user a (non-revoked) bearer token belongs to.
    pub async fn user_by_token(&self, token: &str) -> StoreResult<Option<User>> {
        let hash = crypto::token_hash(token);
        let row = sqlx::query(&format!(
            "SELECT {COLUMNS}, t.id AS token_id, t.last_used_at FROM api_tokens t JOIN users u ON u.id = t.user_id \
             WHERE t.token_hash = $1 AND t.revoked_at IS NULL"
        ))
        .bind(&hash)
        .fetch_optional(self.pool())
        .await?;
        let Some(row) = row else { return Ok(None) };
        let now = now_ms();
        let last_used: Option<UnixMs> = row.try_get("last_used_at")?;
        if last_used.is_none_or(|t| now - t > LAST_USED_GRANULARITY_MS) {
            sqlx::query("UPDATE api_tokens SET last_used_at = $1 WHERE id = $2")
                .bind(now)
                .bind(row.try_get::<String, _>("token_id")?)
                .execute(self.pool())
                .await?;
        }
        from_row(&row).map(Some)
    }

    /// Revokes every token of a user.
    pub async fn revoke_tokens(&self, user: UserId) -> StoreResult<u64> {
        let done = sqlx::query("UPDATE api_tokens SET revoked_at = $1 WHERE user_id = $2 AND revoked_at IS NULL")
            .bind(now_ms())
            .bind(user.as_string())
            .execute(self.pool())
            .await?;
        Ok(done.rows_affected())
    }
}

#[cfg(test)]
mod tests {
    use crate::store::testing::store_test;

    store_test!(tokens_identify_their_user_until_revoked, |store| {
        use crate::settings::CompanySettings;
        use crate::store::{Role, StoreError};
        let company = store.create_company("Acme", &CompanySettings::default()).await.unwrap();
        let user = store.create_user("Admin@Acme.test", None, Role::CompanyAdmin, &[company.id]).await.unwrap();
        assert_eq!(user.email, "admin@acme.test");
        let token = store.create_api_token(user.id, "cli").await.unwrap();
        let found = store.user_by_token(&token).await.unwrap().unwrap();
        assert_eq!((found.id, found.role), (user.id, Role::CompanyAdmin));
        assert!(store.user_by_token("gw_wrong").await.unwrap().is_none());
        assert_eq!(store.user_companies(user.id).await.unwrap(), vec![company.id]);
        assert!(store.is_member(user.id, company.id).await.unwrap());

        assert!(matches!(
            store.create_user("admin@acme.test", None, Role::SupportAgent, &[]).await,
            Err(StoreError::Conflict)
        ));
        assert_eq!(store.revoke_tokens(user.id).await.unwrap(), 1);
        assert!(store.user_by_token(&token).await.unwrap().is_none());
    });

    store_test!(the_database_refuses_unknown_roles, |store| {
        let result = sqlx::query("INSERT INTO users (id, email, role, created_at) VALUES ($1, $2, $3, $4)")
            .bind("x")
            .bind("x@y.z")
            .bind("superuser")
            .bind(0_i64)
            .execute(store.pool())
            .await;
        assert!(result.is_err(), "CHECK constraint must refuse the role");
    });

    store_test!(tokens_are_stored_hashed, |store| {
        use crate::store::Role;
        let user = store.create_user("m@x.test", None, Role::MasterAdmin, &[]).await.unwrap();
        let token = store.create_api_token(user.id, "cli").await.unwrap();
        let stored: Vec<String> =
            sqlx::query_scalar("SELECT token_hash FROM api_tokens").fetch_all(store.pool()).await.unwrap();
        assert_eq!(stored, vec![crate::crypto::token_hash(&token)]);
        assert!(!stored[0].contains(&token));
    });
}
