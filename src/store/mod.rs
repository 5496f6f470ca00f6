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
mod escalations;
mod events;
mod integrations;
mod knowledge;
mod notices;
mod recordings;
mod tickets;
mod users;
mod webhooks;

use std::str::FromStr;
use std::time::Duration;

use sqlx::any::{AnyPoolOptions, install_default_drivers};
use sqlx::error::DatabaseError;
use sqlx::migrate::Migrator;
use sqlx::{AnyConnection, AnyPool, Connection};

pub use ai_models::{AiModel, ModelPatch, ModelSettings, ModelType, NewModel};
// The domain's values, persisted here as TEXT (re-exported for the store's callers).
pub use crate::domain::{CallSource, CallStatus, EndReason, Provider, RealtimeDialect, TranscriptRole};

/// Model settings naming a Realtime dialect (tests of other modules).
#[cfg(test)]
pub(crate) fn ai_models_settings(dialect: Option<RealtimeDialect>) -> ModelSettings {
    ModelSettings { realtime_dialect: dialect, live_api_version: None }
}
pub use calls::{Call, CallFilter, NODE_LOST, NewCall, TranscriptLine};
pub use chatbots::{Chatbot, ChatbotType, NewChatbot};
pub use companies::Company;
pub use escalations::{
    AcceptRefusal, AssignedAgent, CancelReason, CloseOutcome, Escalation, EscalationStatus, NewEscalation, OfferLine,
    PRESENCE_STALE_MS, PresenceStatus,
};
pub use events::{
    ClaimedDelivery, Delivery, DeliveryAttempt, DeliveryStatus, DisabledEndpoint, EventType, MAX_LOGGED_ATTEMPTS,
    MAX_PENDING_PER_COMPANY, RedeliverRefusal, insert_event,
};
pub use integrations::{AccountStatus, AccountType, IntegrationAccount, NewIntegrationAccount};
pub use knowledge::{
    Category, ContentType, Document, DocumentSummary, MAX_SEARCH_RESULTS, NewCategory, NewDocument, Passage,
};
pub use notices::{Notice, NoticeKind, Severity};
pub use recordings::{NewRecording, RECORDING_FORMAT, Recording};
pub use tickets::{NewTicket, Ticket, TicketStatus};
pub use users::{
    ApiToken, DAY_MS, DEFAULT_API_TOKEN_TTL_DAYS, NewSession, Role, Session, TokenCheck, TokenStatus, User,
};
pub use webhooks::{MAX_WEBHOOKS_PER_COMPANY, NewWebhookEndpoint, WebhookEndpoint};

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
/// API answers them with 409 rather than 500, and an unavailable database because the API
/// answers 503 (try again) and the call recorder retries.
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
    /// The database cannot serve the request now: unreachable, locked past the busy
    /// timeout, read-only, out of space, shutting down. Trying again later may work.
    #[error("database unavailable: {0}")]
    Unavailable(sqlx::Error),
    /// The database could not be reached at start-up: where, and why.
    #[error("cannot reach {target}: {cause}")]
    Unreachable {
        /// `host:port/database` or the SQLite file (never a password).
        target: String,
        /// What the connection attempt said, e.g. "Connection refused (os error 111)".
        cause: String,
    },
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
        if is_unavailable(&err) { Self::Unavailable(err) } else { Self::Database(err) }
    }
}

impl StoreError {
    /// Whether trying the same thing again later may succeed.
    pub fn is_unavailable(&self) -> bool {
        matches!(self, Self::Unavailable(_) | Self::Unreachable { .. })
    }
}

/// Whether an error means the database cannot serve requests for now (rather than that
/// the request itself is wrong): the connection, the pool, or the database's state.
fn is_unavailable(err: &sqlx::Error) -> bool {
    match err {
        sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::WorkerCrashed => true,
        sqlx::Error::Database(db) => {
            if let Some(sqlite) = db.try_downcast_ref::<sqlx::sqlite::SqliteError>() {
                let primary = sqlite.code().and_then(|c| c.parse::<i32>().ok()).unwrap_or_default() & 0xff;
                sqlite_code_is_unavailable(primary)
            } else if let Some(postgres) = db.try_downcast_ref::<sqlx::postgres::PgDatabaseError>() {
                sqlstate_is_unavailable(postgres.code())
            } else {
                false
            }
        }
        _ => false,
    }
}

/// SQLite primary result codes that describe the database's state, not the statement:
/// BUSY, LOCKED, READONLY, IOERR, FULL, CANTOPEN.
fn sqlite_code_is_unavailable(primary: i32) -> bool {
    matches!(primary, 5 | 6 | 8 | 10 | 13 | 14)
}

/// Postgres SQLSTATEs that describe the server's state, not the statement: connection
/// exceptions (08), insufficient resources (53), operator intervention (57P01–57P05,
/// 57014 statement timeout), read-only transaction (25006), lock not available (55P03),
/// serialization failure and deadlock (40001, 40P01).
fn sqlstate_is_unavailable(code: &str) -> bool {
    code.starts_with("08")
        || code.starts_with("53")
        || code.starts_with("57P")
        || matches!(code, "57014" | "25006" | "55P03" | "40001" | "40P01")
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
    /// Connects (creating the SQLite file and its directory if needed) and migrates. An
    /// unreachable database fails within [`CONNECT_TIMEOUT`] with where and why.
    pub async fn connect(url: &str, max_connections: u32) -> StoreResult<Self> {
        install_default_drivers();
        let (backend, url) = prepare_url(url)?;
        let target = describe_target(&url);
        // One connection first: its error says why (the pool would only say it timed out).
        let unreachable = |cause: String| StoreError::Unreachable { target: target.clone(), cause };
        let probe = tokio::time::timeout(CONNECT_TIMEOUT, AnyConnection::connect(&url))
            .await
            .map_err(|_| unreachable(format!("no answer within {} s", CONNECT_TIMEOUT.as_secs())))?
            .map_err(|err| unreachable(connect_cause(&err)))?;
        let _ = probe.close().await;
        let pool = AnyPoolOptions::new()
            .max_connections(max_connections.max(1))
            .acquire_timeout(ACQUIRE_TIMEOUT)
            .after_connect(move |conn, _| {
                Box::pin(async move {
                    if backend == Backend::Sqlite {
                        // Foreign keys are per connection in SQLite; WAL lets readers run
                        // beside the single writer; the busy timeout queues writers.
                        sqlx::query("PRAGMA foreign_keys = ON").execute(&mut *conn).await?;
                        sqlx::query(&format!("PRAGMA busy_timeout = {}", SQLITE_BUSY_TIMEOUT.as_millis()))
                            .execute(&mut *conn)
                            .await?;
                    }
                    Ok(())
                })
            })
            .connect(&url)
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

    /// Begins a transaction that writes. On SQLite it takes the write lock up front
    /// (`BEGIN IMMEDIATE`, waiting up to the busy timeout): a deferred transaction that read
    /// first could not upgrade to a writer once another connection had written, and would
    /// fail at once instead of waiting its turn.
    pub(crate) async fn begin_write(&self) -> StoreResult<sqlx::Transaction<'static, sqlx::Any>> {
        Ok(match self.backend {
            Backend::Sqlite => self.pool.begin_with("BEGIN IMMEDIATE").await?,
            Backend::Postgres => self.pool.begin().await?,
        })
    }

    /// Checks the database answers.
    pub async fn ping(&self) -> StoreResult<()> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    /// Checks the database takes writes (for `/readyz`): a write that changes nothing
    /// still needs the write lock, so a locked, read-only or unreachable database fails it.
    pub async fn check_writable(&self) -> StoreResult<()> {
        sqlx::query("UPDATE companies SET name = name WHERE 1 = 0").execute(&self.pool).await?;
        Ok(())
    }

    /// Sends a Postgres notification (`pg_notify`) on `channel`: the cross-node bus of
    /// `escalation::bus`. Payloads must stay under Postgres' 8000-byte limit. SQLite has
    /// no notifications (single-node deployments use an in-process bus): an error there.
    pub async fn notify(&self, channel: &str, payload: &str) -> StoreResult<()> {
        if self.backend != Backend::Postgres {
            return Err(StoreError::Database(sqlx::Error::Configuration("notifications need Postgres".into())));
        }
        sqlx::query("SELECT pg_notify($1, $2)").bind(channel).bind(payload).execute(&self.pool).await?;
        Ok(())
    }

    /// Closes the pool, waiting for connections to return.
    pub async fn close(&self) {
        self.pool.close().await;
    }

    /// Whether [`Store::close`] was called: nothing more will be written.
    pub fn is_closed(&self) -> bool {
        self.pool.is_closed()
    }
}

/// Longest wait for the first connection at start-up.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Longest wait for a pooled connection before a request fails with `Unavailable`.
pub const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a SQLite writer waits for the write lock before failing with `Unavailable`.
pub const SQLITE_BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// The backend of a database URL, and the URL to connect with: a SQLite file is created
/// when missing (`mode=rwc` unless the URL names a mode), and so is its directory.
fn prepare_url(url: &str) -> StoreResult<(Backend, String)> {
    if url.starts_with("postgres:") || url.starts_with("postgresql:") {
        return Ok((Backend::Postgres, url.to_owned()));
    }
    if !url.starts_with("sqlite:") {
        return Err(StoreError::Database(sqlx::Error::Configuration(
            "DATABASE_URL must start with sqlite: or postgres:".into(),
        )));
    }
    let path = sqlite_path(url);
    if !path.is_empty()
        && path != ":memory:"
        && let Some(parent) = std::path::Path::new(path).parent().filter(|p| !p.as_os_str().is_empty())
    {
        std::fs::create_dir_all(parent).map_err(|err| StoreError::Unreachable {
            target: path.to_owned(),
            cause: format!("cannot create the directory {}: {err}", parent.display()),
        })?;
    }
    Ok((Backend::Sqlite, sqlite_url_creating_the_file(url)))
}

/// The file of a `sqlite:` URL.
fn sqlite_path(url: &str) -> &str {
    url.trim_start_matches("sqlite://").trim_start_matches("sqlite:").split('?').next().unwrap_or_default()
}

/// Adds `mode=rwc` to a SQLite URL that names no mode, so a new file is created.
fn sqlite_url_creating_the_file(url: &str) -> String {
    let (base, query) = url.split_once('?').unwrap_or((url, ""));
    if sqlite_path(url) == ":memory:" || query.split('&').any(|pair| pair.starts_with("mode=")) {
        return url.to_owned();
    }
    if query.is_empty() { format!("{base}?mode=rwc") } else { format!("{base}?{query}&mode=rwc") }
}

/// Where a URL points, for error messages: `host:port/database` or the SQLite file;
/// never the user's password.
fn describe_target(url: &str) -> String {
    if url.starts_with("sqlite:") {
        return sqlite_path(url).to_owned();
    }
    match url::Url::parse(url) {
        Ok(parsed) => {
            format!("{}:{}{}", parsed.host_str().unwrap_or("localhost"), parsed.port().unwrap_or(5432), parsed.path())
        }
        Err(_) => "the configured DATABASE_URL".to_owned(),
    }
}

/// The cause of a failed connection in one phrase, without sqlx's wrapping repeated.
fn connect_cause(err: &sqlx::Error) -> String {
    match err {
        sqlx::Error::Io(io) => io.to_string(),
        sqlx::Error::Tls(tls) => format!("TLS: {tls}"),
        sqlx::Error::Database(db) => db.message().to_owned(),
        other => other.to_string(),
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::testing::store_test;

    #[test]
    fn a_new_sqlite_file_is_created_unless_the_url_names_a_mode() {
        assert_eq!(sqlite_url_creating_the_file("sqlite://data/x.db"), "sqlite://data/x.db?mode=rwc");
        assert_eq!(sqlite_url_creating_the_file("sqlite:x.db?cache=shared"), "sqlite:x.db?cache=shared&mode=rwc");
        assert_eq!(sqlite_url_creating_the_file("sqlite://x.db?mode=ro"), "sqlite://x.db?mode=ro");
        assert_eq!(sqlite_url_creating_the_file("sqlite::memory:"), "sqlite::memory:");
    }

    #[test]
    fn targets_name_host_port_and_database_but_never_the_password() {
        assert_eq!(describe_target("postgres://gw:s3cret@db.internal:6432/gateway"), "db.internal:6432/gateway");
        assert_eq!(describe_target("postgres://gw@db.internal/gateway"), "db.internal:5432/gateway");
        assert_eq!(describe_target("sqlite:///var/lib/gw/gateway.db?mode=rwc"), "/var/lib/gw/gateway.db");
    }

    #[tokio::test]
    async fn a_new_sqlite_file_and_its_directory_are_created() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("new").join("dir").join("gateway.db");
        let store = Store::connect(&format!("sqlite://{}", path.display()), 1).await.unwrap();
        store.ping().await.unwrap();
        assert!(path.exists());
    }

    #[tokio::test]
    async fn an_unreachable_postgres_fails_fast_with_host_port_and_cause() {
        // Port 1 on this machine: nothing listens there.
        let started = std::time::Instant::now();
        let err = Store::connect("postgres://gw:s3cret@127.0.0.1:1/gateway", 2).await.unwrap_err();
        assert!(started.elapsed() < Duration::from_secs(5), "took {:?}", started.elapsed());
        let message = err.to_string();
        assert!(message.contains("127.0.0.1:1/gateway"), "{message}");
        assert!(message.to_lowercase().contains("connection refused"), "{message}");
        assert!(!message.contains("s3cret"), "{message}");
        assert!(err.is_unavailable());
    }

    #[test]
    fn database_states_are_unavailable_and_statement_errors_are_not() {
        for code in ["08006", "08001", "53300", "57P01", "57P03", "25006", "55P03", "40001", "40P01", "57014"] {
            assert!(sqlstate_is_unavailable(code), "{code}");
        }
        for code in ["23505", "23503", "42P01", "22P02", "42601"] {
            assert!(!sqlstate_is_unavailable(code), "{code}");
        }
        for primary in [5, 6, 8, 10, 13, 14] {
            assert!(sqlite_code_is_unavailable(primary), "{primary}");
        }
        for primary in [1, 19, 20] {
            assert!(!sqlite_code_is_unavailable(primary), "{primary}");
        }
        assert!(is_unavailable(&sqlx::Error::PoolTimedOut));
        assert!(!is_unavailable(&sqlx::Error::RowNotFound));
    }

    store_test!(a_read_only_database_is_unavailable, |store| {
        let mut conn = store.pool().acquire().await.unwrap();
        let read_only = match store.backend() {
            Backend::Sqlite => "PRAGMA query_only = ON",
            Backend::Postgres => "SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY",
        };
        sqlx::query(read_only).execute(&mut *conn).await.unwrap();
        let err: StoreError =
            sqlx::query("UPDATE companies SET name = name WHERE 1 = 0").execute(&mut *conn).await.unwrap_err().into();
        assert!(err.is_unavailable(), "{err:?}");
        let writable = match store.backend() {
            Backend::Sqlite => "PRAGMA query_only = OFF",
            Backend::Postgres => "SET SESSION CHARACTERISTICS AS TRANSACTION READ WRITE",
        };
        sqlx::query(writable).execute(&mut *conn).await.unwrap();
        drop(conn);
        store.check_writable().await.unwrap();
    });

    #[tokio::test]
    async fn a_locked_sqlite_database_is_unavailable_for_writes_but_readable() {
        let (store, dir) = crate::store::testing::sqlite_store().await;
        let url = format!("sqlite://{}", dir.path().join("test.db").display());
        let mut holder = AnyConnection::connect(&url).await.unwrap();
        sqlx::query("BEGIN EXCLUSIVE").execute(&mut holder).await.unwrap();
        let started = std::time::Instant::now();
        let err = store.check_writable().await.unwrap_err();
        assert!(err.is_unavailable(), "{err:?}");
        assert!(started.elapsed() >= SQLITE_BUSY_TIMEOUT - Duration::from_millis(100));
        store.ping().await.unwrap();
        sqlx::query("ROLLBACK").execute(&mut holder).await.unwrap();
        store.check_writable().await.unwrap();
    }
}
