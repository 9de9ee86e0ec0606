//! SQLite: one file, WAL, one writer at a time (the [`super::writer::Writer`] batches requests).

use std::str::FromStr;

use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};

use super::StoreConfig;
use super::StoreError;

/// Opens the database file, creating it when `create` (else a missing file is an error).
pub(super) async fn connect(
    url: &str,
    config: &StoreConfig,
    create: bool,
) -> Result<sqlx::SqlitePool, StoreError> {
    let open_error = |source| StoreError::Open {
        url: url.to_owned(),
        source,
    };
    let mut options = SqliteConnectOptions::from_str(url)
        .map_err(open_error)?
        .create_if_missing(create)
        .journal_mode(SqliteJournalMode::Wal)
        // With WAL, NORMAL loses no committed transaction on a process crash (only on power loss
        // before the next checkpoint), and saves an fsync per commit.
        .synchronous(SqliteSynchronous::Normal)
        .busy_timeout(config.acquire_timeout)
        // A statement's own journal (for a multi-row insert that may fail half way) in memory,
        // not in a temporary file written at each batch.
        .pragma("temp_store", "memory")
        // 16 MiB of pages per connection (the default is 2 MiB): the indexes a batch touches
        // stay in memory instead of being read back from the WAL.
        .pragma("cache_size", "-16384")
        .foreign_keys(true);
    if let Some(bytes) = config.sqlite_max_bytes {
        // Pages of the default size (4096 bytes); the limit holds for every connection.
        options = options.pragma("max_page_count", (bytes / 4096).max(1).to_string());
    }
    if !create && !options.get_filename().exists() {
        return Err(StoreError::Missing(
            options.get_filename().display().to_string(),
        ));
    }
    SqlitePoolOptions::new()
        .max_connections(config.max_connections)
        .acquire_timeout(config.acquire_timeout)
        .connect_with(options)
        .await
        .map_err(open_error)
}

/// Takes the oldest pending events not leased by a live instance.
pub(super) const CLAIM_PENDING: &str = "
    UPDATE events SET lease_owner = $1, lease_until_ms = $2, attempts = attempts + 1
    WHERE id IN (
        SELECT id FROM events
        WHERE state = 'pending' AND (lease_until_ms IS NULL OR lease_until_ms < $3)
          AND (next_attempt_ms IS NULL OR next_attempt_ms <= $3) AND attempts < $5
        ORDER BY id LIMIT $4
    )
    RETURNING *";

/// Marks the listed events (a JSON array of ids) processed, if `owner` still leases them.
pub(super) const COMPLETE: &str = "
    UPDATE events SET state = 'processed', processed_at = $1, lease_owner = NULL, lease_until_ms = NULL,
        next_attempt_ms = NULL, last_error = NULL, rule_set_id = $4
    WHERE state = 'pending' AND lease_owner = $2 AND id IN (SELECT value FROM json_each($3))
    RETURNING id";

/// Takes the earliest due pending actions of the listed kinds (a JSON array).
pub(super) const CLAIM_DUE_ACTIONS: &str = "
    UPDATE actions SET status = 'in_flight', lease_owner = $1, lease_until_ms = $2
    WHERE id IN (
        SELECT id FROM actions
        WHERE status = 'pending' AND next_attempt_ms <= $3 AND kind IN (SELECT value FROM json_each($4))
        ORDER BY next_attempt_ms LIMIT $5
    )
    RETURNING *";

/// Retakes actions whose instance's lease expired (it died while delivering).
pub(super) const RETAKE_EXPIRED_ACTIONS: &str = "
    UPDATE actions SET lease_owner = $1, lease_until_ms = $2
    WHERE id IN (
        SELECT id FROM actions
        WHERE status = 'in_flight' AND lease_until_ms < $3 AND kind IN (SELECT value FROM json_each($4))
        ORDER BY lease_until_ms LIMIT $5
    )
    RETURNING *";

/// Row locks for a batch a pruner takes: none (one instance owns a SQLite file, and its
/// writes take turns).
pub(super) const SKIP_LOCKED: &str = "";

/// A subject reference's value in an event (`claim`, `account`, `debtor`), written exactly as
/// the history indexes of migration 0009 are, so that queries use them.
pub(super) fn subject_value(key: &str) -> Option<&'static str> {
    match key {
        "claim" => Some("json_extract(subject, '$.claim')"),
        "account" => Some("json_extract(subject, '$.account')"),
        "debtor" => Some("json_extract(subject, '$.debtor')"),
        _ => None,
    }
}

/// Whether the JSON array in column `awaits` holds the text bound between these two parts.
pub(super) const AWAITS_HAS: (&str, &str) = (
    "EXISTS (SELECT 1 FROM json_each(awaits) WHERE value = ",
    ")",
);

/// What an action is addressed to besides its target: a webhook's URL, an email's
/// recipients (`to` and `cc`, as JSON text), for `GET /v1/actions?target=`.
pub(super) const ACTION_ADDRESS: &str = "COALESCE(json_extract(payload, '$.action.url'), '') || ' ' || COALESCE(json_extract(payload, '$.action.to'), '') || ' ' || COALESCE(json_extract(payload, '$.action.cc'), '')";
