//! The database, behind one type: [`Store`].
//!
//! SQLite (a file, created and migrated at start) is the embedded default and Postgres the
//! production backend. Both run the same SQL through sqlx's `Any` driver: the schema is
//! portable (see `migrations/` and docs/database.md), queries use `$N` placeholders, and
//! every query of a tenant's data filters by `company_id`. SQL lives only in this module,
//! one file per table family.

mod ai_models;
mod calls;
mod chatbots;
mod companies;
mod integrations;
mod knowledge;
mod users;

use std::str::FromStr;

use sqlx::AnyPool;
use sqlx::any::{AnyPoolOptions, install_default_drivers};
use sqlx::migrate::Migrator;

pub use ai_models::{AiModel, ModelPatch, ModelSettings, ModelType, NewModel};
// The domain's values, persisted here as TEXT (re-exported for the store's callers).
pub use crate::domain::{CallSource, CallStatus, EndReason, Provider, RealtimeDialect, TranscriptRole};

/// Model settings naming a Realtime dialect (tests of other modules).
#[cfg(test)]
pub(crate) fn ai_models_settings(dialect: Option<RealtimeDialect>) -> ModelSettings {
    ModelSettings { realtime_dialect: dialect, live_api_version: None }
}
pub use calls::{Call, CallFilter, NewCall, TranscriptLine};
pub use chatbots::{Chatbot, ChatbotType, NewChatbot};
pub use companies::Company;
pub use integrations::{AccountStatus, AccountType, IntegrationAccount, NewIntegrationAccount};
pub use knowledge::{
    Category, ContentType, Document, DocumentSummary, MAX_SEARCH_RESULTS, NewCategory, NewDocument, Passage,
};
pub use users::{
    ApiToken, DAY_MS, DEFAULT_API_TOKEN_TTL_DAYS, NewSession, Role, Session, TokenCheck, TokenStatus, User,
};

static SQLITE_MIGRATIONS: Migrator = sqlx::migrate!("./migrations/sqlite");
static POSTGRES_MIGRATIONS: Migrator = sqlx::migrate!("./migrations/postgres");

/// Which database is behind the pool; a few statements differ (e.g. full-text search).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// The embedded default.
    Sqlite,
    /// Production.
    Postgres,
}

/// Errors from the store. Unique and foreign-key violations are told apart because the
/// API answers them with 409 rather than 500.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A row with the same unique key exists.
    #[error("already exists")]
    Conflict,
    /// The row is still referenced, or references a row that does not exist.
    #[error("still referenced, or references a missing row")]
    ForeignKey,
    /// A stored JSON document or enum did not parse.
    #[error("corrupt stored value: {0}")]
    Corrupt(String),
    /// Anything else the database said.
    #[error(transparent)]
    Database(sqlx::Error),
    /// Migrations failed.
    #[error(transparent)]
    Migrate(#[from] sqlx::migrate::MigrateError),
}

impl From<sqlx::Error> for StoreError {
    fn from(err: sqlx::Error) -> Self {
        if let sqlx::Error::Database(db) = &err {
            match db.kind() {
                sqlx::error::ErrorKind::UniqueViolation => return Self::Conflict,
                sqlx::error::ErrorKind::ForeignKeyViolation => return Self::ForeignKey,
                _ => {}
            }
        }
        Self::Database(err)
    }
}

/// Result of a store call.
pub type StoreResult<T> = Result<T, StoreError>;

/// The database pool and what kind of database it is.
#[derive(Clone, Debug)]
pub struct Store {
    pool: AnyPool,
    backend: Backend,
}

impl Store {
    /// Connects (creating the SQLite file and its directory if needed) and migrates.
    pub async fn connect(url: &str, max_connections: u32) -> StoreResult<Self> {
        install_default_drivers();
        let backend = if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            Backend::Postgres
        } else if url.starts_with("sqlite:") {
            create_sqlite_parent_dir(url);
            Backend::Sqlite
        } else {
            return Err(StoreError::Database(sqlx::Error::Configuration(
                "DATABASE_URL must start with sqlite: or postgres:".into(),
            )));
        };
        let pool = AnyPoolOptions::new()
            .max_connections(max_connections.max(1))
            .after_connect(move |conn, _| {
                Box::pin(async move {
                    if backend == Backend::Sqlite {
                        // Foreign keys are per connection in SQLite; WAL lets readers run
                        // beside the single writer; the busy timeout queues writers.
                        sqlx::query("PRAGMA foreign_keys = ON").execute(&mut *conn).await?;
                        sqlx::query("PRAGMA busy_timeout = 5000").execute(&mut *conn).await?;
                    }
                    Ok(())
                })
            })
            .connect(url)
            .await?;
        if backend == Backend::Sqlite {
            sqlx::query("PRAGMA journal_mode = WAL").execute(&pool).await?;
        }
        let store = Self { pool, backend };
        store.migrate().await?;
        Ok(store)
    }

    async fn migrate(&self) -> StoreResult<()> {
        match self.backend {
            Backend::Sqlite => SQLITE_MIGRATIONS.run(&self.pool).await?,
            Backend::Postgres => POSTGRES_MIGRATIONS.run(&self.pool).await?,
        }
        Ok(())
    }

    /// Which database this is.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// The pool, for the few callers outside this module that need a transaction.
    pub(crate) fn pool(&self) -> &AnyPool {
        &self.pool
    }

    /// Checks the database answers (for `/healthz`).
    pub async fn ping(&self) -> StoreResult<()> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    /// Closes the pool, waiting for connections to return.
    pub async fn close(&self) {
        self.pool.close().await;
    }
}

fn create_sqlite_parent_dir(url: &str) {
    let path = url.trim_start_matches("sqlite://").trim_start_matches("sqlite:").split('?').next().unwrap_or_default();
    if path.is_empty() || path == ":memory:" {
        return;
    }
    if let Some(parent) = std::path::Path::new(path).parent() {
        let _ = std::fs::create_dir_all(parent);
    }
}

/// Parses a stored enum value, reporting corrupt data instead of panicking.
pub(crate) fn parse_enum<T: FromStr>(value: &str, what: &str) -> StoreResult<T> {
    value.parse().map_err(|_| StoreError::Corrupt(format!("{what} {value:?}")))
}

/// Parses a stored id.
pub(crate) fn parse_id<T: FromStr>(value: &str) -> StoreResult<T> {
    value.parse().map_err(|_| StoreError::Corrupt(format!("id {value:?}")))
}

/// Parses a stored JSON document.
pub(crate) fn parse_json<T: serde::de::DeserializeOwned>(value: &str, what: &str) -> StoreResult<T> {
    serde_json::from_str(value).map_err(|e| StoreError::Corrupt(format!("{what}: {e}")))
}

#[cfg(test)]
pub(crate) mod testing;
