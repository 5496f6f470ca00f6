//! `users`, `company_members` and `api_tokens`.

use sqlx::Row;

use super::{Store, StoreResult, parse_enum, parse_id};
use crate::crypto;
use crate::ids::{CompanyId, SessionId, TokenId, UserId};
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

/// Milliseconds between updates of a token's `last_used_at`, so API calls rarely write.
const LAST_USED_GRANULARITY_MS: UnixMs = 60_000;

/// How long an API token works unless its issuer says otherwise (`GATEWAY_API_TOKEN_TTL_DAYS`).
pub const DEFAULT_API_TOKEN_TTL_DAYS: u32 = 90;

/// One day in milliseconds.
pub const DAY_MS: UnixMs = 86_400_000;

/// Whether a token used at `now` should have its `last_used_at` written: at most once per
/// [`LAST_USED_GRANULARITY_MS`].
fn last_used_is_stale(last_used: Option<UnixMs>, now: UnixMs) -> bool {
    last_used.is_none_or(|t| now - t >= LAST_USED_GRANULARITY_MS)
}

/// An API token as listed: never its secret or hash.
#[derive(Debug, Clone)]
pub struct ApiToken {
    pub id: TokenId,
    pub name: String,
    pub created_at: UnixMs,
    /// `None` only for tokens no gateway issues any more (see migration 0004).
    pub expires_at: Option<UnixMs>,
    /// Updated at most once a minute.
    pub last_used_at: Option<UnixMs>,
    pub revoked_at: Option<UnixMs>,
}

/// Whether a token works at a given time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum TokenStatus {
    Active,
    Expired,
    Revoked,
}

impl ApiToken {
    /// The token's status at `now`; revocation wins over expiry.
    pub fn status(&self, now: UnixMs) -> TokenStatus {
        if self.revoked_at.is_some() {
            TokenStatus::Revoked
        } else if self.expires_at.is_some_and(|at| at <= now) {
            TokenStatus::Expired
        } else {
            TokenStatus::Active
        }
    }
}

fn token_from_row(row: &sqlx::any::AnyRow) -> StoreResult<ApiToken> {
    Ok(ApiToken {
        id: parse_id(&row.try_get::<String, _>("token_id")?)?,
        name: row.try_get("token_name")?,
        created_at: row.try_get("token_created_at")?,
        expires_at: row.try_get("expires_at")?,
        last_used_at: row.try_get("last_used_at")?,
        revoked_at: row.try_get("revoked_at")?,
    })
}

/// Columns of `api_tokens t` as [`token_from_row`] reads them.
const TOKEN_COLUMNS: &str = "t.id AS token_id, t.name AS token_name, t.created_at AS token_created_at, \
    t.expires_at, t.last_used_at, t.revoked_at";

/// What a presented bearer token turned out to be.
#[derive(Debug)]
pub enum TokenCheck {
    /// A live token of this user.
    Valid(User),
    /// A real token past its `expires_at`.
    Expired,
    /// Unknown or revoked.
    Refused,
}

/// A sign-in session, found by its cookie token.
#[derive(Debug, Clone)]
pub struct Session {
    pub id: SessionId,
    pub user: User,
    /// What state-changing requests must send in `X-CSRF-Token`.
    pub csrf_token: String,
    pub expires_at: UnixMs,
}

/// A session just created: the cookie token (only its hash is stored) and the CSRF token.
#[derive(Debug, Clone)]
pub struct NewSession {
    pub id: SessionId,
    pub token: String,
    pub csrf_token: String,
    pub expires_at: UnixMs,
}

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

    /// Makes a user a member of `companies` they are not a member of yet; returns how many were added.
    pub async fn add_memberships(&self, user: UserId, companies: &[CompanyId]) -> StoreResult<u64> {
        let mut added = 0;
        for company in companies {
            let done = sqlx::query(
                "INSERT INTO company_members (company_id, user_id, created_at) VALUES ($1, $2, $3) \
                 ON CONFLICT (company_id, user_id) DO NOTHING",
            )
            .bind(company.as_string())
            .bind(user.as_string())
            .bind(now_ms())
            .execute(self.pool())
            .await?;
            added += done.rows_affected();
        }
        Ok(added)
    }

    /// The user with this e-mail address.
    pub async fn user_by_email(&self, email: &str) -> StoreResult<Option<User>> {
        Ok(self.login_candidate(email).await?.map(|(user, _)| user))
    }

    /// The user with this e-mail address and their password hash (if they have a password).
    pub async fn login_candidate(&self, email: &str) -> StoreResult<Option<(User, Option<String>)>> {
        let row = sqlx::query(&format!("SELECT {COLUMNS}, u.password_hash FROM users u WHERE u.email = $1"))
            .bind(email.trim().to_lowercase())
            .fetch_optional(self.pool())
            .await?;
        row.map(|row| Ok((from_row(&row)?, row.try_get("password_hash")?))).transpose()
    }

    /// One user.
    pub async fn user(&self, id: UserId) -> StoreResult<Option<User>> {
        let row = sqlx::query(&format!("SELECT {COLUMNS} FROM users u WHERE u.id = $1"))
            .bind(id.as_string())
            .fetch_optional(self.pool())
            .await?;
        row.as_ref().map(from_row).transpose()
    }

    /// Users by e-mail (all, or the one with `email`), at most `limit`, each with whether
    /// they have a password.
    pub async fn list_users(&self, email: Option<&str>, limit: u32) -> StoreResult<Vec<(User, bool)>> {
        let rows = match email {
            Some(email) => {
                sqlx::query(&format!(
                    "SELECT {COLUMNS}, u.password_hash FROM users u WHERE u.email = $1 ORDER BY u.email LIMIT $2"
                ))
                .bind(email.trim().to_lowercase())
                .bind(i64::from(limit))
                .fetch_all(self.pool())
                .await?
            }
            None => {
                sqlx::query(&format!("SELECT {COLUMNS}, u.password_hash FROM users u ORDER BY u.email LIMIT $1"))
                    .bind(i64::from(limit))
                    .fetch_all(self.pool())
                    .await?
            }
        };
        rows.iter()
            .map(|row| Ok((from_row(row)?, row.try_get::<Option<String>, _>("password_hash")?.is_some())))
            .collect()
    }

    /// Sets a user's password hash (Argon2id PHC string) and ends all their sessions;
    /// returns how many sessions ended.
    pub async fn set_password(&self, user: UserId, password_hash: &str) -> StoreResult<u64> {
        let mut tx = self.pool().begin().await?;
        sqlx::query("UPDATE users SET password_hash = $1 WHERE id = $2")
            .bind(password_hash)
            .bind(user.as_string())
            .execute(&mut *tx)
            .await?;
        let ended = sqlx::query("DELETE FROM user_sessions WHERE user_id = $1")
            .bind(user.as_string())
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(ended.rows_affected())
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

    /// Issues a new API token for a user, valid for [`DEFAULT_API_TOKEN_TTL_DAYS`], and
    /// returns it; only its hash is stored.
    pub async fn create_api_token(&self, user: UserId, name: &str) -> StoreResult<String> {
        let expires_at = now_ms() + i64::from(DEFAULT_API_TOKEN_TTL_DAYS) * DAY_MS;
        self.create_api_token_until(user, name, expires_at).await
    }

    /// Issues a new API token for a user that stops working at `expires_at`.
    pub async fn create_api_token_until(&self, user: UserId, name: &str, expires_at: UnixMs) -> StoreResult<String> {
        let token = crypto::new_token("gw_");
        sqlx::query(
            "INSERT INTO api_tokens (id, user_id, token_hash, name, created_at, expires_at) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(TokenId::new().as_string())
        .bind(user.as_string())
        .bind(crypto::token_hash(&token))
        .bind(name)
        .bind(now_ms())
        .bind(expires_at)
        .execute(self.pool())
        .await?;
        Ok(token)
    }

    /// What a bearer token presented at `now` is. Records the use (at most once a minute).
    pub async fn check_api_token(&self, token: &str, now: UnixMs) -> StoreResult<TokenCheck> {
        let row = sqlx::query(&format!(
            "SELECT {COLUMNS}, {TOKEN_COLUMNS} FROM api_tokens t JOIN users u ON u.id = t.user_id \
             WHERE t.token_hash = $1"
        ))
        .bind(crypto::token_hash(token))
        .fetch_optional(self.pool())
        .await?;
        let Some(row) = row else { return Ok(TokenCheck::Refused) };
        let found = token_from_row(&row)?;
        match found.status(now) {
            TokenStatus::Revoked => return Ok(TokenCheck::Refused),
            TokenStatus::Expired => return Ok(TokenCheck::Expired),
            TokenStatus::Active => {}
        }
        if last_used_is_stale(found.last_used_at, now) {
            sqlx::query("UPDATE api_tokens SET last_used_at = $1 WHERE id = $2")
                .bind(now)
                .bind(found.id.as_string())
                .execute(self.pool())
                .await?;
        }
        Ok(TokenCheck::Valid(from_row(&row)?))
    }

    /// A user's API tokens, newest first (revoked and expired ones included).
    pub async fn api_tokens(&self, user: UserId) -> StoreResult<Vec<ApiToken>> {
        let rows = sqlx::query(&format!(
            "SELECT {TOKEN_COLUMNS} FROM api_tokens t WHERE t.user_id = $1 ORDER BY t.created_at DESC, t.id"
        ))
        .bind(user.as_string())
        .fetch_all(self.pool())
        .await?;
        rows.iter().map(token_from_row).collect()
    }

    /// Revokes one token of a user (idempotent); false when the user has no such token.
    pub async fn revoke_api_token(&self, user: UserId, token: TokenId) -> StoreResult<bool> {
        let done =
            sqlx::query("UPDATE api_tokens SET revoked_at = COALESCE(revoked_at, $1) WHERE id = $2 AND user_id = $3")
                .bind(now_ms())
                .bind(token.as_string())
                .bind(user.as_string())
                .execute(self.pool())
                .await?;
        Ok(done.rows_affected() > 0)
    }

    /// Revokes every token of a user; returns how many were live.
    pub async fn revoke_tokens(&self, user: UserId) -> StoreResult<u64> {
        let done = sqlx::query("UPDATE api_tokens SET revoked_at = $1 WHERE user_id = $2 AND revoked_at IS NULL")
            .bind(now_ms())
            .bind(user.as_string())
            .execute(self.pool())
            .await?;
        Ok(done.rows_affected())
    }

    /// Starts a sign-in session for a user, lasting until `expires_at`.
    pub async fn create_session(&self, user: UserId, now: UnixMs, expires_at: UnixMs) -> StoreResult<NewSession> {
        let session = NewSession {
            id: SessionId::new(),
            token: crypto::new_token("gws_"),
            csrf_token: crypto::new_token(""),
            expires_at,
        };
        sqlx::query(
            "INSERT INTO user_sessions (id, user_id, token_hash, csrf_token, created_at, expires_at) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(session.id.as_string())
        .bind(user.as_string())
        .bind(crypto::token_hash(&session.token))
        .bind(&session.csrf_token)
        .bind(now)
        .bind(expires_at)
        .execute(self.pool())
        .await?;
        Ok(session)
    }

    /// The live session a cookie token belongs to at `now`.
    pub async fn session(&self, token: &str, now: UnixMs) -> StoreResult<Option<Session>> {
        let row = sqlx::query(&format!(
            "SELECT {COLUMNS}, s.id AS session_id, s.csrf_token, s.expires_at FROM user_sessions s \
             JOIN users u ON u.id = s.user_id WHERE s.token_hash = $1 AND s.expires_at > $2"
        ))
        .bind(crypto::token_hash(token))
        .bind(now)
        .fetch_optional(self.pool())
        .await?;
        row.map(|row| {
            Ok(Session {
                id: parse_id(&row.try_get::<String, _>("session_id")?)?,
                user: from_row(&row)?,
                csrf_token: row.try_get("csrf_token")?,
                expires_at: row.try_get("expires_at")?,
            })
        })
        .transpose()
    }

    /// Ends one session (sign-out).
    pub async fn end_session(&self, id: SessionId) -> StoreResult<bool> {
        let done =
            sqlx::query("DELETE FROM user_sessions WHERE id = $1").bind(id.as_string()).execute(self.pool()).await?;
        Ok(done.rows_affected() > 0)
    }

    /// Ends every session of a user; returns how many there were.
    pub async fn end_sessions(&self, user: UserId) -> StoreResult<u64> {
        let done = sqlx::query("DELETE FROM user_sessions WHERE user_id = $1")
            .bind(user.as_string())
            .execute(self.pool())
            .await?;
        Ok(done.rows_affected())
    }

    /// Deletes sessions that expired before `now` (housekeeping).
    pub async fn purge_expired_sessions(&self, now: UnixMs) -> StoreResult<u64> {
        let done =
            sqlx::query("DELETE FROM user_sessions WHERE expires_at <= $1").bind(now).execute(self.pool()).await?;
        Ok(done.rows_affected())
    }
}

#[cfg(test)]
mod tests {
    use super::{DAY_MS, TokenCheck, last_used_is_stale};
    use crate::store::testing::store_test;
    use crate::time::now_ms;

    fn valid(check: TokenCheck) -> crate::store::User {
        match check {
            TokenCheck::Valid(user) => user,
            other => panic!("expected a valid token, got {other:?}"),
        }
    }

    #[test]
    fn last_used_is_written_at_most_once_a_minute() {
        assert!(last_used_is_stale(None, 0));
        assert!(!last_used_is_stale(Some(1_000), 1_000 + 59_999));
        assert!(last_used_is_stale(Some(1_000), 1_000 + 60_000));
    }

    #[test]
    fn a_token_is_revoked_expired_or_active() {
        use super::{ApiToken, TokenStatus};
        let token = ApiToken {
            id: crate::ids::TokenId::new(),
            name: "cli".into(),
            created_at: 0,
            expires_at: Some(1_000),
            last_used_at: None,
            revoked_at: None,
        };
        assert_eq!(token.status(999), TokenStatus::Active);
        assert_eq!(token.status(1_000), TokenStatus::Expired);
        let revoked = ApiToken { revoked_at: Some(5), ..token };
        assert_eq!(revoked.status(999), TokenStatus::Revoked);
    }

    store_test!(tokens_identify_their_user_until_revoked, |store| {
        use crate::settings::CompanySettings;
        use crate::store::{Role, StoreError};
        let company = store.create_company("Acme", &CompanySettings::default()).await.unwrap();
        let user = store.create_user("Admin@Acme.test", None, Role::CompanyAdmin, &[company.id]).await.unwrap();
        assert_eq!(user.email, "admin@acme.test");
        let token = store.create_api_token(user.id, "cli").await.unwrap();
        let found = valid(store.check_api_token(&token, now_ms()).await.unwrap());
        assert_eq!((found.id, found.role), (user.id, Role::CompanyAdmin));
        assert!(matches!(store.check_api_token("gw_wrong", now_ms()).await.unwrap(), TokenCheck::Refused));
        assert_eq!(store.user_companies(user.id).await.unwrap(), vec![company.id]);
        assert!(store.is_member(user.id, company.id).await.unwrap());

        assert!(matches!(
            store.create_user("admin@acme.test", None, Role::SupportAgent, &[]).await,
            Err(StoreError::Conflict)
        ));
        assert_eq!(store.revoke_tokens(user.id).await.unwrap(), 1);
        assert!(matches!(store.check_api_token(&token, now_ms()).await.unwrap(), TokenCheck::Refused));
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

    store_test!(tokens_expire_ninety_days_after_issue_by_default, |store| {
        use crate::store::Role;
        let user = store.create_user("m@x.test", None, Role::MasterAdmin, &[]).await.unwrap();
        let before = now_ms();
        let token = store.create_api_token(user.id, "cli").await.unwrap();
        let expires_at = store.api_tokens(user.id).await.unwrap()[0].expires_at.unwrap();
        assert!(expires_at >= before + 90 * DAY_MS && expires_at <= now_ms() + 90 * DAY_MS);
        valid(store.check_api_token(&token, expires_at - 1).await.unwrap());
        assert!(matches!(store.check_api_token(&token, expires_at).await.unwrap(), TokenCheck::Expired));

        let short = store.create_api_token_until(user.id, "short", before + 1_000).await.unwrap();
        assert!(matches!(store.check_api_token(&short, before + 1_000).await.unwrap(), TokenCheck::Expired));
    });

    store_test!(last_used_at_is_recorded_but_not_on_every_request, |store| {
        use crate::store::Role;
        let user = store.create_user("m@x.test", None, Role::MasterAdmin, &[]).await.unwrap();
        let token = store.create_api_token(user.id, "cli").await.unwrap();
        assert_eq!(store.api_tokens(user.id).await.unwrap()[0].last_used_at, None);
        let t0 = now_ms();
        valid(store.check_api_token(&token, t0).await.unwrap());
        assert_eq!(store.api_tokens(user.id).await.unwrap()[0].last_used_at, Some(t0));
        valid(store.check_api_token(&token, t0 + 30_000).await.unwrap());
        assert_eq!(store.api_tokens(user.id).await.unwrap()[0].last_used_at, Some(t0), "not rewritten within a minute");
        valid(store.check_api_token(&token, t0 + 61_000).await.unwrap());
        assert_eq!(store.api_tokens(user.id).await.unwrap()[0].last_used_at, Some(t0 + 61_000));
    });

    store_test!(one_token_can_be_revoked_and_only_by_its_owner, |store| {
        use crate::store::Role;
        let alice = store.create_user("alice@x.test", None, Role::MasterAdmin, &[]).await.unwrap();
        let bob = store.create_user("bob@x.test", None, Role::MasterAdmin, &[]).await.unwrap();
        let first = store.create_api_token(alice.id, "first").await.unwrap();
        let second = store.create_api_token(alice.id, "second").await.unwrap();
        let listed = store.api_tokens(alice.id).await.unwrap();
        assert_eq!(listed.len(), 2);
        let first_id = listed.iter().find(|t| t.name == "first").unwrap().id;
        assert!(!store.revoke_api_token(bob.id, first_id).await.unwrap(), "not Bob's token");
        assert!(store.revoke_api_token(alice.id, first_id).await.unwrap());
        assert!(store.revoke_api_token(alice.id, first_id).await.unwrap(), "revoking again is harmless");
        assert!(matches!(store.check_api_token(&first, now_ms()).await.unwrap(), TokenCheck::Refused));
        valid(store.check_api_token(&second, now_ms()).await.unwrap());
        let revoked = store.api_tokens(alice.id).await.unwrap();
        assert!(revoked.iter().find(|t| t.id == first_id).unwrap().revoked_at.is_some());
    });

    store_test!(sessions_last_until_expiry_sign_out_or_a_new_password, |store| {
        use crate::store::Role;
        let user = store.create_user("agent@x.test", None, Role::MasterAdmin, &[]).await.unwrap();
        let now = now_ms();
        let session = store.create_session(user.id, now, now + 1_000).await.unwrap();
        let found = store.session(&session.token, now).await.unwrap().unwrap();
        assert_eq!(
            (found.user.id, found.id, found.csrf_token.as_str()),
            (user.id, session.id, session.csrf_token.as_str())
        );
        assert!(store.session(&session.token, now + 1_000).await.unwrap().is_none(), "expired");
        assert!(store.session("gws_other", now).await.unwrap().is_none());
        let stored: Vec<String> =
            sqlx::query_scalar("SELECT token_hash FROM user_sessions").fetch_all(store.pool()).await.unwrap();
        assert_eq!(stored, vec![crate::crypto::token_hash(&session.token)], "only the hash is stored");

        assert!(store.end_session(session.id).await.unwrap());
        assert!(store.session(&session.token, now).await.unwrap().is_none(), "signed out");

        let a = store.create_session(user.id, now, now + 60_000).await.unwrap();
        store.create_session(user.id, now, now + 60_000).await.unwrap();
        assert_eq!(store.set_password(user.id, "$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA").await.unwrap(), 2);
        assert!(store.session(&a.token, now).await.unwrap().is_none(), "a new password ends sessions");
        let (_, hash) = store.login_candidate("AGENT@x.test").await.unwrap().unwrap();
        assert!(hash.unwrap().starts_with("$argon2id$"));

        store.create_session(user.id, now - 10, now - 1).await.unwrap();
        let live = store.create_session(user.id, now, now + 60_000).await.unwrap();
        assert_eq!(store.purge_expired_sessions(now).await.unwrap(), 1);
        assert!(store.session(&live.token, now).await.unwrap().is_some());
        assert_eq!(store.end_sessions(user.id).await.unwrap(), 1);
    });

    store_test!(users_are_listed_by_email_and_memberships_added_once, |store| {
        use crate::settings::CompanySettings;
        use crate::store::Role;
        let acme = store.create_company("Acme", &CompanySettings::default()).await.unwrap();
        let globex = store.create_company("Globex", &CompanySettings::default()).await.unwrap();
        let user = store.create_user("b@x.test", None, Role::CompanyAdmin, &[acme.id]).await.unwrap();
        store.create_user("a@x.test", None, Role::MasterAdmin, &[]).await.unwrap();
        assert_eq!(store.add_memberships(user.id, &[acme.id, globex.id]).await.unwrap(), 1);
        assert_eq!(store.add_memberships(user.id, &[acme.id, globex.id]).await.unwrap(), 0);
        assert_eq!(store.user_companies(user.id).await.unwrap().len(), 2);
        let all = store.list_users(None, 10).await.unwrap();
        assert_eq!(all.iter().map(|(u, _)| u.email.as_str()).collect::<Vec<_>>(), ["a@x.test", "b@x.test"]);
        let one = store.list_users(Some(" B@X.test"), 10).await.unwrap();
        assert_eq!((one.len(), one[0].0.id, one[0].1), (1, user.id, false));
        assert_eq!(store.list_users(None, 1).await.unwrap().len(), 1);
        assert_eq!(store.user(user.id).await.unwrap().unwrap().email, "b@x.test");
    });
}
