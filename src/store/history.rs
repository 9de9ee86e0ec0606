//! A subject's history: its stored events by type and time, for rules that look back (“three
//! broken promises in 90 days”), through the expression indexes of migration 0009.

use chrono::{DateTime, Utc};
use sqlx::{QueryBuilder, Row};

use super::events::{StoredEvent, decode_event};
use super::{Backend, MAX_LIST, Store, StoreError, on_pool, postgres, sqlite};
use crate::normalize::{Event, Subject};

/// The subject keys a history can be asked by (each has its index).
pub const HISTORY_KEYS: &[&str] = &["claim", "account", "debtor"];

/// Events one history query returns at most.
pub const MAX_HISTORY: u32 = MAX_LIST;

/// Event types one history query may name at most.
const MAX_TYPES: usize = 100;

/// A subject reference: `("claim", "C-1")` written `claim:C-1`, as checks, subject state and
/// cancellable actions store it.
pub fn subject_ref(key: &str, value: &str) -> String {
    format!("{key}:{value}")
}

/// The references of a subject by the keys in [`HISTORY_KEYS`] it has (claim, account,
/// debtor), in that order.
pub fn subject_refs(subject: &Subject) -> Vec<String> {
    [
        ("claim", &subject.claim),
        ("account", &subject.account),
        ("debtor", &subject.debtor),
    ]
    .into_iter()
    .filter_map(|(key, value)| value.as_deref().map(|v| subject_ref(key, v)))
    .collect()
}

/// Which events [`Store::history`] returns.
#[derive(Debug, Clone)]
pub struct HistoryQuery<'a> {
    /// `claim`, `account` or `debtor` (one of [`HISTORY_KEYS`]).
    pub key: &'a str,
    /// The subject's value for `key` (`C-1`); `None`: any event that has a value for `key`.
    pub value: Option<&'a str>,
    /// Event types (at most 100); empty: any type.
    pub types: &'a [String],
    /// Exclusive lower bound on `occurred_at`.
    pub after: DateTime<Utc>,
    /// Inclusive upper bound on `occurred_at`.
    pub until: DateTime<Utc>,
    /// Events returned at most (capped at [`MAX_HISTORY`]).
    pub limit: u32,
}

/// The columns of a listed event: all but the raw payload, and `data` only up to 16 KiB (a
/// larger one is read as `{}`), so that a thousand large events cannot fill memory (a delivery
/// may be up to 1 MiB).
const COLUMNS_SQLITE: &str =
    "SELECT id, source, source_event_id, type, source_type, occurred_at, received_at,
        subject, amount_value, amount_currency,
        CASE WHEN length(data) <= 16384 THEN data ELSE '{}' END AS data, chain_depth, state,
        processed_at, delivery_id, attempts, last_error, next_attempt_ms
    FROM events WHERE ";
const COLUMNS_POSTGRES: &str =
    "SELECT id, source, source_event_id, type, source_type, occurred_at, received_at,
        subject, amount_value, amount_currency,
        CASE WHEN pg_column_size(data) <= 16384 THEN data ELSE '{}'::jsonb END AS data,
        chain_depth, state, processed_at, delivery_id, attempts, last_error, next_attempt_ms
    FROM events WHERE ";

/// The columns of an event read for a backtest: all but the raw payload, which rules never see.
const RANGE_COLUMNS: &str =
    "id, source, source_event_id, type, source_type, occurred_at, received_at,
    subject, amount_value, amount_currency, data, chain_depth, state, processed_at, delivery_id,
    attempts, last_error, next_attempt_ms";

/// Pushes the conditions, order and limit of history query `$q` onto `$select`, with
/// `$value_of` the key's indexed expression.
macro_rules! push_history {
    ($select:expr, $value_of:expr, $q:expr, $limit:expr) => {{
        $select.push($value_of);
        match $q.value {
            Some(value) => {
                $select.push(" = ").push_bind(value);
            }
            None => {
                $select.push(" IS NOT NULL");
            }
        }
        if !$q.types.is_empty() {
            $select.push(" AND type IN (");
            let mut types = $select.separated(", ");
            for kind in $q.types {
                types.push_bind(kind.as_str());
            }
            $select.push(")");
        }
        $select.push(" AND occurred_at > ").push_bind($q.after);
        $select.push(" AND occurred_at <= ").push_bind($q.until);
        $select
            .push(" ORDER BY occurred_at DESC, id DESC LIMIT ")
            .push_bind(i64::from($limit));
    }};
}

impl Store {
    /// Stored events (any state) matching the query, newest first (`occurred_at` desc, then
    /// id desc), at most `q.limit` (and at most [`MAX_HISTORY`]). Without their raw payloads
    /// (`get_event` has them; rules never see them). A key other than claim, account or
    /// debtor, or more than 100 types, is refused ([`StoreError::Invalid`]).
    pub async fn history(&self, q: &HistoryQuery<'_>) -> Result<Vec<Event>, StoreError> {
        let value_of = self.history_key(q)?;
        let limit = q.limit.min(MAX_HISTORY);
        if limit == 0 || q.after >= q.until {
            return Ok(Vec::new());
        }
        on_pool!(self, pool => {
            let columns = match self.backend {
                super::Backend::Sqlite(_) => COLUMNS_SQLITE,
                super::Backend::Postgres(_) => COLUMNS_POSTGRES,
            };
            let mut select = QueryBuilder::new(columns);
            push_history!(select, value_of, q, limit);
            let rows = select.build().fetch_all(pool).await?;
            rows.iter().map(|row| decode_event(row).map(|stored| stored.event)).collect()
        })
    }

    /// Several subjects' histories in one statement: for each of `values` (of `key`), its
    /// newest `per_value` events (at most [`MAX_HISTORY`]) of `types` (any when empty) with
    /// `occurred_at` in `(after, until]`, newest first per subject. At most 500 values.
    pub async fn history_many(
        &self,
        key: &str,
        values: &[&str],
        types: &[String],
        after: DateTime<Utc>,
        until: DateTime<Utc>,
        per_value: u32,
    ) -> Result<Vec<Event>, StoreError> {
        let q = HistoryQuery {
            key,
            value: None,
            types,
            after,
            until,
            limit: per_value,
        };
        let value_of = self.history_key(&q)?;
        let per_value = per_value.min(MAX_HISTORY);
        if values.is_empty() || per_value == 0 || after >= until {
            return Ok(Vec::new());
        }
        let columns = match self.backend {
            Backend::Sqlite(_) => COLUMNS_SQLITE,
            Backend::Postgres(_) => COLUMNS_POSTGRES,
        };
        // Each subject's newest rows, ranked within the subject.
        let ranked = columns.replace(
            "FROM events WHERE ",
            &format!(
                ", ROW_NUMBER() OVER (PARTITION BY {value_of} ORDER BY occurred_at DESC, id DESC) AS history_rank FROM events WHERE "
            ),
        );
        on_pool!(self, pool => {
            let mut select = QueryBuilder::new(format!("SELECT * FROM ({ranked}"));
            select.push(value_of).push(" IN (");
            let mut list = select.separated(", ");
            for value in values.iter().take(super::IDS_PER_STATEMENT) {
                list.push_bind(*value);
            }
            select.push(")");
            if !types.is_empty() {
                select.push(" AND type IN (");
                let mut list = select.separated(", ");
                for kind in types {
                    list.push_bind(kind.as_str());
                }
                select.push(")");
            }
            select.push(" AND occurred_at > ").push_bind(after);
            select.push(" AND occurred_at <= ").push_bind(until);
            select.push(") ranked WHERE history_rank <= ").push_bind(i64::from(per_value));
            let rows = select.build().fetch_all(pool).await?;
            rows.iter().map(|row| decode_event(row).map(|stored| stored.event)).collect()
        })
    }

    /// Stored events received in `[from, to)`, oldest first (by `received_at`, then id), after
    /// the cursor `after` (the last event of the previous page), at most `limit` (at most
    /// 5000): for backtests, which read a range page by page. Without their raw payloads.
    pub async fn events_received_between(
        &self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        after: Option<(DateTime<Utc>, String)>,
        limit: u32,
    ) -> Result<Vec<Event>, StoreError> {
        let mut events = Vec::new();
        for finished in [true, false] {
            let rows = self
                .received_between(finished, from, to, after.clone(), limit)
                .await?;
            events.extend(rows.into_iter().map(|stored| stored.event));
        }
        events.sort_by(|a, b| (a.received_at, &a.id).cmp(&(b.received_at, &b.id)));
        events.truncate(limit.min(5000) as usize);
        Ok(events)
    }

    /// A page of the events received in `[from, to)` that are processed or failed
    /// (`finished`), or else of those still pending, as [`Store::events_received_between`]
    /// orders and pages them, with their state and processing time. Finished events are read
    /// by the retention index (`events_finished`), pending ones by theirs, so that a page
    /// does not read the whole table.
    pub async fn received_between(
        &self,
        finished: bool,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        after: Option<(DateTime<Utc>, String)>,
        limit: u32,
    ) -> Result<Vec<StoredEvent>, StoreError> {
        let (after_at, after_id) = after.unwrap_or((from, String::new()));
        let state = if finished {
            "state IN ('processed', 'failed')"
        } else {
            "state = 'pending'"
        };
        let sql = format!(
            "SELECT {RANGE_COLUMNS} FROM events
             WHERE {state} AND received_at >= $1 AND received_at < $2
               AND (received_at > $1 OR id > $3)
             ORDER BY received_at, id LIMIT $4"
        );
        on_pool!(self, pool => {
            let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
                .bind(after_at.max(from))
                .bind(to)
                .bind(if after_at >= from { after_id } else { String::new() })
                .bind(i64::from(limit.min(5000)))
                .fetch_all(pool)
                .await?;
            rows.iter().map(decode_event).collect()
        })
    }

    /// The events with these ids (at most 500), in no particular order.
    pub async fn events_by_ids(&self, ids: &[&str]) -> Result<Vec<Event>, StoreError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        on_pool!(self, pool => {
            let mut select = QueryBuilder::new("SELECT * FROM events WHERE id IN (");
            let mut list = select.separated(", ");
            for id in ids.iter().take(super::IDS_PER_STATEMENT) {
                list.push_bind(*id);
            }
            select.push(")");
            let rows = select.build().fetch_all(pool).await?;
            rows.iter().map(|row| decode_event(row).map(|stored| stored.event)).collect()
        })
    }

    /// How the database plans the query [`Store::history`] runs for `q`, as its EXPLAIN
    /// (SQLite: EXPLAIN QUERY PLAN) prints it, one line per row: to see that it uses the
    /// subject's index.
    #[doc(hidden)]
    pub async fn explain_history(&self, q: &HistoryQuery<'_>) -> Result<String, StoreError> {
        let value_of = self.history_key(q)?;
        let limit = q.limit.min(MAX_HISTORY);
        let lines: Vec<String> = match &self.backend {
            Backend::Sqlite(pool) => {
                let mut select = QueryBuilder::new(format!("EXPLAIN QUERY PLAN {COLUMNS_SQLITE}"));
                push_history!(select, value_of, q, limit);
                let rows = select.build().fetch_all(pool).await?;
                rows.iter()
                    .map(|row| row.try_get("detail"))
                    .collect::<Result<_, _>>()?
            }
            Backend::Postgres(pool) => {
                let mut select = QueryBuilder::new(format!("EXPLAIN {COLUMNS_POSTGRES}"));
                push_history!(select, value_of, q, limit);
                select.build_query_scalar().fetch_all(pool).await?
            }
        };
        Ok(lines.join("\n"))
    }

    /// The indexed expression of `q.key`, if `q` can be answered.
    fn history_key(&self, q: &HistoryQuery<'_>) -> Result<&'static str, StoreError> {
        let value_of = match self.backend {
            Backend::Sqlite(_) => sqlite::subject_value(q.key),
            Backend::Postgres(_) => postgres::subject_value(q.key),
        };
        let Some(value_of) = value_of else {
            return Err(StoreError::Invalid(format!(
                "history by '{}': the keys are {}",
                q.key,
                HISTORY_KEYS.join(", ")
            )));
        };
        if q.types.len() > MAX_TYPES {
            return Err(StoreError::Invalid(format!(
                "history of {} event types: at most {MAX_TYPES}",
                q.types.len()
            )));
        }
        Ok(value_of)
    }
}
