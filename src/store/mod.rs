//! Durable storage on SQLite (embedded default) or PostgreSQL (production, shared by several
//! instances), through sqlx with one migrations folder per backend.
//!
//! Receives deliveries and their events from ingestion (through [`writer::Writer`], which groups
//! concurrent requests into one transaction), hands pending events to the processor, and answers
//! reads for the API. Callers see methods; dialect SQL stays in `sqlite.rs` and `postgres.rs`.
//! Query code is written once and expanded for each backend by `on_pool!`.

mod action_ops;
mod checks;
mod deliveries;
mod evaluations;
mod events;
mod gauges;
mod history;
mod outbox;
mod page;
mod postgres;
mod replay;
pub mod retention;
mod rule_sets;
mod schedules;
mod sqlite;
mod stats;
mod status;
mod strategies;
mod subject_state;
mod tokens;
pub mod writer;

use std::fmt;
use std::sync::Arc;

use crate::normalize::{Event, EventId};
use std::time::Duration;

pub use action_ops::{ActionDetail, ActionFilter, CancelRecord, MAX_RETRY, Retried, RetryFilter};
pub use checks::{CheckRecord, NewCheck};
pub use deliveries::{DeliverySummary, NewDelivery, StoredDelivery};
pub use evaluations::{
    ActionHandoff, Completion, Effects, EvaluationFilter, EvaluationRecord, NewEvaluation,
    RuleFailures, RuleStat, ThrottleGate, Verdict,
};
pub use events::{
    ClaimedEvent, EventFailure, EventFilter, Lease, ListedEvent, ProcessingFailure, SUBJECT_KEYS,
    StoredEvent, UnknownType,
};
pub use history::{HISTORY_KEYS, HistoryQuery, MAX_HISTORY, subject_ref, subject_refs};
pub use outbox::{
    ActionRow, ActionSummary, AttemptRecord, CancelOn, MAX_ATTEMPTS_LISTED, NewAction, NewAttempt,
    NextStep,
};
pub use page::Page;
pub use replay::{ReplayRange, ReplayWrite};
pub use retention::{RejectedConfig, RetentionConfig};
pub use rule_sets::StoredRuleSet;
pub use stats::{HourCounts, MAX_HOURS, QueueCounts};
pub use status::{ActionStatus, AttemptOutcome, CheckStatus, EvaluationOutcome, EventState};
pub use subject_state::{MAX_STATE_PER_SUBJECT, StateEntry, StateWrite};
pub use tokens::TokenUse;

/// Runs `$body` with `$pool` bound to the backend's pool; the body is compiled once per backend.
macro_rules! on_pool {
    ($store:expr, $pool:ident => $body:expr) => {
        match &$store.backend {
            $crate::store::Backend::Sqlite($pool) => $body,
            $crate::store::Backend::Postgres($pool) => $body,
        }
    };
}
pub(crate) use on_pool;

#[derive(Clone)]
pub(crate) enum Backend {
    Sqlite(sqlx::SqlitePool),
    Postgres(sqlx::PgPool),
}

/// The database pool (`store:` in the config file).
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(try_from = "StoreFile")]
pub struct StoreConfig {
    /// Connections in the pool. Default 8 (SQLite uses 1 writer and up to this many readers).
    pub max_connections: u32,
    /// How long a request waits for a database connection before it is answered 503.
    /// Default 5s.
    pub acquire_timeout: Duration,
    /// SQLite only: the most bytes the database file may grow to; past it, writes are refused
    /// (ingestion answers 503) until space is freed, instead of filling the disk. Default none.
    pub sqlite_max_bytes: Option<u64>,
}

impl Default for StoreConfig {
    fn default() -> Self {
        Self {
            max_connections: 8,
            acquire_timeout: Duration::from_secs(5),
            sqlite_max_bytes: None,
        }
    }
}

/// `store:` as written, with the numeric key `acquire_timeout` replaces.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct StoreFile {
    max_connections: Option<u32>,
    #[serde(default, with = "humantime_serde")]
    acquire_timeout: Option<Duration>,
    acquire_timeout_ms: Option<u64>,
    sqlite_max_bytes: Option<u64>,
}

impl TryFrom<StoreFile> for StoreConfig {
    type Error = String;

    fn try_from(file: StoreFile) -> Result<Self, String> {
        use crate::config::duration::{Unit, either};
        let default = Self::default();
        Ok(Self {
            max_connections: file.max_connections.unwrap_or(default.max_connections),
            acquire_timeout: either(
                "acquire_timeout",
                file.acquire_timeout,
                "acquire_timeout_ms",
                file.acquire_timeout_ms,
                Unit::Millis,
            )?
            .unwrap_or(default.acquire_timeout),
            sqlite_max_bytes: file.sqlite_max_bytes,
        })
    }
}

/// The engine's store. Cheap to clone (it is a pool handle).
#[derive(Clone)]
pub struct Store {
    pub(crate) backend: Backend,
    /// SQLite allows one writer at a time. Writers queue here, in order, rather than in
    /// SQLite's busy handler, which sleeps in growing steps and turns contention into
    /// tens of milliseconds of latency. `None` on PostgreSQL.
    write_lock: Option<Arc<tokio::sync::Mutex<()>>>,
}

impl fmt::Debug for Store {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Store")
            .field("backend", &self.backend_name())
            .finish()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database cannot be reached or is too busy: callers answer 503 so senders retry.
    #[error("store unavailable: {0}")]
    Unavailable(#[source] sqlx::Error),
    #[error("cannot open store {}: {source}", redact_url(.url))]
    Open { url: String, source: sqlx::Error },
    #[error(
        "no database at {0}: run this where `signalbox serve` runs, or give --database-url (or -c with the engine's config)"
    )]
    Missing(String),
    #[error("cannot migrate store: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("store query failed: {0}")]
    Query(#[source] sqlx::Error),
    #[error("stored row is unreadable: {0}")]
    Corrupt(String),
    /// The caller asked for something the store does not answer (a history key other than
    /// claim, account or debtor, say): a bug in the caller, not in the data.
    #[error("invalid store request: {0}")]
    Invalid(String),
}

impl StoreError {
    /// Whether the database is away or busy (trying again later helps), rather than refusing
    /// what it was given.
    pub fn is_unavailable(&self) -> bool {
        matches!(self, Self::Unavailable(_))
    }
}

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        if is_unavailable(&e) {
            Self::Unavailable(e)
        } else {
            Self::Query(e)
        }
    }
}

/// Query parameters of a database URL that carry a secret.
const SECRET_PARAMS: &[&str] = &["password", "sslpassword"];

/// `url` without its password, whether in the user part or as `?password=`
/// (`postgres://app:[redacted]@db/signalbox`, `postgres://app@db/x?password=[redacted]`), for
/// messages and logs. Text that is not a URL is shown only up to its scheme.
pub fn redact_url(url: &str) -> String {
    let Ok(mut parsed) = url::Url::parse(url) else {
        return match url.split_once("://") {
            Some((scheme, _)) => format!("{scheme}://[unparsable URL redacted]"),
            None => "[unparsable URL redacted]".to_owned(),
        };
    };
    if parsed.password().is_some() {
        let _ = parsed.set_password(Some("[redacted]"));
    }
    let secret = |name: &str| SECRET_PARAMS.iter().any(|p| name.eq_ignore_ascii_case(p));
    if parsed.query_pairs().any(|(name, _)| secret(&name)) {
        let pairs: Vec<(String, String)> = parsed
            .query_pairs()
            .map(|(name, value)| {
                let value = if secret(&name) {
                    "[redacted]".into()
                } else {
                    value.into_owned()
                };
                (name.into_owned(), value)
            })
            .collect();
        parsed.query_pairs_mut().clear().extend_pairs(pairs);
    }
    // The URL encodes the brackets; the marker reads better without.
    parsed.to_string().replace("%5Bredacted%5D", "[redacted]")
}

/// Rows any one list returns at most, whatever limit it is given.
const MAX_LIST: u32 = 1000;

/// Ids per statement that lists them as bound parameters.
const IDS_PER_STATEMENT: usize = 500;

/// A time stored as epoch milliseconds, read back.
fn from_millis(ms: i64, what: &str) -> Result<chrono::DateTime<chrono::Utc>, StoreError> {
    chrono::DateTime::from_timestamp_millis(ms)
        .ok_or_else(|| StoreError::Corrupt(format!("{what}: {ms} ms is out of range")))
}

/// A closed word read back from a text column.
fn parse_word<T: std::str::FromStr<Err = String>>(text: String) -> Result<T, StoreError> {
    text.parse().map_err(StoreError::Corrupt)
}

/// Errors that go away when the database is back or less busy.
fn is_unavailable(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed => true,
        sqlx::Error::Database(db) => {
            let code = db.code().unwrap_or_default();
            // SQLite: SQLITE_BUSY (5), SQLITE_LOCKED (6), SQLITE_FULL (13), extended codes
            // included (the primary code is the low byte: 517 is BUSY_SNAPSHOT). PostgreSQL:
            // class 08 (connection exception), 53 (insufficient resources), 57P (operator
            // intervention), 40001 (serialization failure), 40P01 (deadlock).
            let sqlite_primary = code.parse::<i64>().ok().map(|c| c & 0xff);
            matches!(sqlite_primary, Some(5 | 6 | 13))
                || matches!(code.as_ref(), "40001" | "40P01")
                || code.starts_with("08")
                || code.starts_with("53")
                || code.starts_with("57P")
        }
        _ => false,
    }
}

/// One delivery and the events parsed from it, stored together or not at all.
#[derive(Debug, Clone)]
pub struct Ingest {
    pub delivery: NewDelivery,
    pub events: Vec<Event>,
}

/// What storing one event did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Stored {
    New(EventId),
    /// `(source, source_event_id)` was already stored, under this id.
    Duplicate(EventId),
}

impl Store {
    /// Opens (creating a SQLite file if needed) and migrates the store at `url`.
    pub async fn open(url: &str, config: &StoreConfig) -> Result<Self, StoreError> {
        Self::connect(url, config, true).await
    }

    /// Opens the store at `url` only if it exists (the CLI's commands that read it, so that
    /// one run in the wrong folder does not create an empty database and report nothing).
    pub async fn open_existing(url: &str, config: &StoreConfig) -> Result<Self, StoreError> {
        Self::connect(url, config, false).await
    }

    async fn connect(url: &str, config: &StoreConfig, create: bool) -> Result<Self, StoreError> {
        let backend = if url.starts_with("sqlite:") {
            Backend::Sqlite(sqlite::connect(url, config, create).await?)
        } else {
            Backend::Postgres(postgres::connect(url, config).await?)
        };
        let write_lock =
            matches!(backend, Backend::Sqlite(_)).then(|| Arc::new(tokio::sync::Mutex::new(())));
        let store = Self {
            backend,
            write_lock,
        };
        store.migrate().await?;
        Ok(store)
    }

    async fn migrate(&self) -> Result<(), StoreError> {
        match &self.backend {
            Backend::Sqlite(pool) => sqlx::migrate!("migrations/sqlite").run(pool).await?,
            Backend::Postgres(pool) => sqlx::migrate!("migrations/postgres").run(pool).await?,
        }
        Ok(())
    }

    /// Writes (and removes, in the same committed transaction) a row of 64 KiB, more than most
    /// deliveries: succeeds only if the store takes writes of that size.
    pub async fn probe_write(&self) -> Result<(), StoreError> {
        let filler = vec![0_u8; 64 * 1024];
        let _turn = self.write_turn().await;
        on_pool!(self, pool => {
            let mut tx = pool.begin().await?;
            sqlx::query("INSERT INTO write_probe (filler) VALUES ($1)").bind(&filler).execute(&mut *tx).await?;
            sqlx::query("DELETE FROM write_probe").execute(&mut *tx).await?;
            tx.commit().await?;
            Ok(())
        })
    }

    pub fn backend_name(&self) -> &'static str {
        match self.backend {
            Backend::Sqlite(_) => "sqlite",
            Backend::Postgres(_) => "postgres",
        }
    }

    /// Waits for this instance's turn to write (SQLite); free on PostgreSQL.
    pub(crate) async fn write_turn(&self) -> Option<tokio::sync::MutexGuard<'_, ()>> {
        match &self.write_lock {
            Some(lock) => Some(lock.lock().await),
            None => None,
        }
    }

    /// How many transactions may usefully write at once: one on SQLite, several on PostgreSQL.
    pub fn parallel_writers(&self) -> usize {
        match self.backend {
            Backend::Sqlite(_) => 1,
            Backend::Postgres(_) => 4,
        }
    }

    /// Whether several engine instances may share this store (PostgreSQL) or one owns it (SQLite).
    pub fn is_shared(&self) -> bool {
        matches!(self.backend, Backend::Postgres(_))
    }

    /// Answers when the database answers.
    pub async fn ping(&self) -> Result<(), StoreError> {
        on_pool!(self, pool => sqlx::query("SELECT 1").execute(pool).await.map(|_| ()).map_err(StoreError::from))
    }

    pub async fn close(&self) {
        on_pool!(self, pool => pool.close().await)
    }
}

#[cfg(test)]
mod tests {

    use super::*;

    #[test]
    fn urls_are_shown_without_their_passwords() {
        assert_eq!(
            redact_url("postgres://app:pw@db:5432/x"),
            "postgres://app:[redacted]@db:5432/x"
        );
        let query = redact_url("postgres://app@db/x?sslmode=require&password=s3cr%26t&PassWord=b");
        assert!(!query.contains("s3cr") && !query.contains("=b"), "{query}");
        assert!(
            query.contains("sslmode=require") && query.contains("password="),
            "{query}"
        );
        assert_eq!(redact_url("postgres://app@db/x"), "postgres://app@db/x");
        assert_eq!(
            redact_url("sqlite://signalbox.db"),
            "sqlite://signalbox.db",
            "no password, unchanged"
        );
        assert!(!redact_url("postgres://app:p w@[db/x").contains("p w"));
    }

    /// The error a start fails with when the database cannot be reached names the URL
    /// without the password given as `?password=`.
    #[tokio::test]
    async fn an_unreachable_store_is_named_without_its_password() {
        let config = StoreConfig {
            acquire_timeout: Duration::from_millis(500),
            ..StoreConfig::default()
        };
        // Port 1 on loopback: refused at once, nothing is sent anywhere.
        let url = "postgres://app@127.0.0.1:1/x?password=hunter2-secret";
        let err = Store::open(url, &config).await.unwrap_err().to_string();
        assert!(!err.contains("hunter2"), "{err}");
        assert!(err.contains("127.0.0.1:1"), "{err}");
    }
}
