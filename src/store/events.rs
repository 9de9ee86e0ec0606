//! Events: inserting each delivery with its events (with dedupe), leasing pending events,
//! reading back.

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;
use std::collections::{HashMap, HashSet};

use sqlx::types::Json;
use sqlx::{QueryBuilder, Row};

use super::page::{Page, PageFill, json_len};
use super::{Backend, EventState, Ingest, Store, StoreError, Stored, on_pool, postgres, sqlite};
use crate::normalize::{Amount, Event, EventId, EventType, EventView, Subject};

const INSERT_DELIVERIES: &str = "INSERT INTO deliveries (id, source, received_at, headers, body, verification, reason, token, body_size) ";

const INSERT_EVENTS: &str =
    "INSERT INTO events (id, source, source_event_id, type, source_type, occurred_at,
    received_at, subject, amount_value, amount_currency, data, payload, delivery_id, chain_depth,
    lease_owner, lease_until_ms, attempts) ";

/// Rows per multi-row statement: 17 columns (8 for deliveries) x 1000 stays under SQLite's 32766 bound
/// parameters (and PostgreSQL's 65535).
const ROWS_PER_STATEMENT: usize = 1000;

/// Keys per duplicate lookup: each is an `OR` term, and SQLite refuses expressions deeper
/// than 1000 ("Expression tree is too large").
const KEYS_PER_LOOKUP: usize = 200;

/// An event as stored, with its processing state.
#[derive(Debug, Clone, Serialize)]
pub struct StoredEvent {
    #[serde(flatten)]
    pub event: Event,
    pub state: EventState,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub processed_at: Option<DateTime<Utc>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub delivery_id: Option<String>,
    /// Why its processing failed, while it is failing (retried later, or parked as failed).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failure: Option<ProcessingFailure>,
}

/// The last failure of an event's processing.
#[derive(Debug, Clone, Serialize)]
pub struct ProcessingFailure {
    /// Processing attempts so far.
    pub attempts: u32,
    pub error: String,
    /// When it is tried again (absent once it is parked as failed).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retry_at: Option<DateTime<Utc>>,
}

/// Who holds new rows, and until when (milliseconds since the epoch).
#[derive(Debug, Clone, Copy)]
pub struct Lease<'a> {
    pub owner: &'a str,
    pub until_ms: i64,
}

/// A leased event and which processing attempt this is (1 the first time).
#[derive(Debug, Clone)]
pub struct ClaimedEvent {
    pub event: Event,
    pub attempt: u32,
}

/// An event whose processing failed: tried again at `retry_at`, or parked as failed if `None`.
#[derive(Debug, Clone)]
pub struct EventFailure<'a> {
    pub id: &'a EventId,
    pub error: &'a str,
    pub retry_at: Option<DateTime<Utc>>,
}

/// An event as lists show it: everything but the raw payload.
#[derive(Debug, Serialize)]
pub struct ListedEvent<'a> {
    #[serde(flatten)]
    pub event: EventView<'a>,
    pub state: EventState,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub processed_at: Option<DateTime<Utc>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub delivery_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failure: Option<&'a ProcessingFailure>,
}

impl StoredEvent {
    pub fn listed(&self) -> ListedEvent<'_> {
        ListedEvent {
            event: self.event.view(),
            state: self.state,
            processed_at: self.processed_at,
            delivery_id: self.delivery_id.as_deref(),
            failure: self.failure.as_ref(),
        }
    }
}

impl Store {
    /// Stores each delivery with its events in one transaction. An event whose
    /// `(source, source_event_id)` is already stored, or appears earlier in the batch, is
    /// reported as a duplicate of the stored one, not stored again.
    ///
    /// A few multi-row statements serve the whole batch: on SQLite every statement is a round
    /// trip to the connection's thread, which costs more than the insert itself.
    pub async fn insert_batch(&self, batch: &[Ingest]) -> Result<Vec<Vec<Stored>>, StoreError> {
        self.insert_leased(batch, None).await
    }

    /// [`Store::insert_batch`], with the new events leased to `lease`'s owner as its first
    /// processing attempt: the processor that owner names takes them from memory, without
    /// claiming them from the store, and another instance (or the next start) takes them
    /// once the lease expires.
    pub async fn insert_leased(
        &self,
        batch: &[Ingest],
        lease: Option<Lease<'_>>,
    ) -> Result<Vec<Vec<Stored>>, StoreError> {
        let (owner, until_ms, attempts) = match lease {
            Some(l) => (Some(l.owner), Some(l.until_ms), 1_i64),
            None => (None, None, 0),
        };
        let events: Vec<(&Event, &str)> = batch
            .iter()
            .flat_map(|i| i.events.iter().map(move |e| (e, i.delivery.id.as_str())))
            .collect();
        let _turn = self.write_turn().await;
        let (inserted, existing) = on_pool!(self, pool => {
            let mut tx = pool.begin().await?;
            for chunk in batch.chunks(ROWS_PER_STATEMENT) {
                let mut insert = QueryBuilder::new(INSERT_DELIVERIES);
                insert.push_values(chunk, |mut row, ingest| {
                    let d = &ingest.delivery;
                    row.push_bind(d.id.as_str())
                        .push_bind(d.source.as_str())
                        .push_bind(d.received_at)
                        .push_bind(Json(&d.headers))
                        .push_bind(d.body.as_ref())
                        .push_bind(d.verification)
                        .push_bind(d.reason.as_deref())
                        .push_bind(d.token.as_deref())
                        .push_bind(i64::try_from(d.received_size()).unwrap_or(i64::MAX));
                });
                insert.build().execute(&mut *tx).await?;
            }
            let mut inserted = HashSet::with_capacity(events.len());
            for chunk in events.chunks(ROWS_PER_STATEMENT) {
                let mut insert = QueryBuilder::new(INSERT_EVENTS);
                insert.push_values(chunk, |mut row, (e, delivery_id)| {
                    row.push_bind(e.id.as_str())
                        .push_bind(e.source.as_str())
                        .push_bind(e.source_event_id.as_str())
                        .push_bind(e.kind.as_str())
                        .push_bind(e.source_type.as_deref())
                        .push_bind(e.occurred_at)
                        .push_bind(e.received_at)
                        .push_bind(Json(&e.subject))
                        .push_bind(e.amount.as_ref().map(|a| a.value.to_string()))
                        .push_bind(e.amount.as_ref().and_then(|a| a.currency.as_deref()))
                        .push_bind(Json(&e.data))
                        .push_bind(Json(&e.payload))
                        .push_bind(*delivery_id)
                        .push_bind(i64::from(e.chain_depth))
                        .push_bind(owner)
                        .push_bind(until_ms)
                        .push_bind(attempts);
                });
                insert.push(" ON CONFLICT (source, source_event_id) DO NOTHING RETURNING id");
                inserted.extend(insert.build_query_scalar::<String>().fetch_all(&mut *tx).await?);
            }
            let duplicates: Vec<&Event> = events.iter().map(|(e, _)| *e).filter(|e| !inserted.contains(e.id.as_str())).collect();
            let mut existing = HashMap::with_capacity(duplicates.len());
            for chunk in duplicates.chunks(KEYS_PER_LOOKUP) {
                let mut select = QueryBuilder::new("SELECT id, source, source_event_id FROM events WHERE ");
                let mut keys = select.separated(" OR ");
                for e in chunk {
                    keys.push("(source = ").push_bind_unseparated(e.source.as_str());
                    keys.push_unseparated(" AND source_event_id = ").push_bind_unseparated(e.source_event_id.as_str());
                    keys.push_unseparated(")");
                }
                for row in select.build().fetch_all(&mut *tx).await? {
                    let key: (String, String) = (row.try_get("source")?, row.try_get("source_event_id")?);
                    existing.insert(key, EventId::from_stored(row.try_get("id")?));
                }
            }
            tx.commit().await?;
            Ok::<_, StoreError>((inserted, existing))
        })?;
        batch
            .iter()
            .map(|ingest| {
                ingest
                    .events
                    .iter()
                    .map(|e| {
                        if inserted.contains(e.id.as_str()) {
                            return Ok(Stored::New(e.id.clone()));
                        }
                        let key = (e.source.clone(), e.source_event_id.clone());
                        let id = existing.get(&key).ok_or_else(|| {
                            StoreError::Corrupt(format!("duplicate of {key:?} not found"))
                        })?;
                        Ok(Stored::Duplicate(id.clone()))
                    })
                    .collect()
            })
            .collect()
    }

    /// Leases up to `limit` of the oldest pending events that are due to `owner` until
    /// `lease_until`, skipping events another live instance holds. Returned in id (= arrival)
    /// order. Each lease counts as an attempt: an event leased `max_attempts` times without
    /// finishing (it stopped the engine each time) is parked as failed first.
    pub async fn claim_pending(
        &self,
        owner: &str,
        limit: u32,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
        max_attempts: u32,
    ) -> Result<Vec<ClaimedEvent>, StoreError> {
        let sql = match self.backend {
            Backend::Sqlite(_) => sqlite::CLAIM_PENDING,
            Backend::Postgres(_) => postgres::CLAIM_PENDING,
        };
        let _turn = self.write_turn().await;
        let mut events = on_pool!(self, pool => {
            let parked = sqlx::query(
                "UPDATE events SET state = 'failed', lease_owner = NULL, lease_until_ms = NULL,
                    next_attempt_ms = NULL,
                    last_error = COALESCE(last_error, 'processing never finished: the engine stopped while processing it')
                 WHERE attempts >= $1 AND state = 'pending' AND (lease_until_ms IS NULL OR lease_until_ms < $2)
                   AND id IN (
                     SELECT id FROM events
                     WHERE state = 'pending' AND (lease_until_ms IS NULL OR lease_until_ms < $2)
                       AND (next_attempt_ms IS NULL OR next_attempt_ms <= $2)
                     ORDER BY id LIMIT $3)",
            )
            .bind(i64::from(max_attempts))
            .bind(now.timestamp_millis())
            // Only the events this claim would take: a backlog is not read twice per round.
            .bind(i64::from(limit))
            .execute(pool)
            .await?
            .rows_affected();
            if parked > 0 {
                tracing::error!(events = parked, "parked events as failed: their processing never finished");
            }
            let rows = sqlx::query(sql)
                .bind(owner)
                .bind(lease_until.timestamp_millis())
                .bind(now.timestamp_millis())
                .bind(i64::from(limit))
                .bind(i64::from(max_attempts))
                .fetch_all(pool)
                .await?;
            rows.iter().map(|row| {
                let attempt: i64 = row.try_get("attempts")?;
                decode_event(row).map(|s| ClaimedEvent { event: s.event, attempt: u32::try_from(attempt).unwrap_or(u32::MAX) })
            }).collect::<Result<Vec<_>, StoreError>>()
        })?;
        events.sort_by(|a, b| a.event.id.cmp(&b.event.id));
        Ok(events)
    }

    /// Records failed processing for events `owner` still leases: each is given back to be
    /// tried at its `retry_at`, or parked as failed. Returns how many were recorded.
    pub async fn fail_events(
        &self,
        owner: &str,
        failures: &[EventFailure<'_>],
    ) -> Result<u64, StoreError> {
        let _turn = self.write_turn().await;
        on_pool!(self, pool => {
            let mut tx = pool.begin().await?;
            let mut recorded = 0;
            for failure in failures {
                let state = if failure.retry_at.is_some() { EventState::Pending } else { EventState::Failed };
                recorded += sqlx::query(
                    "UPDATE events SET state = $1, next_attempt_ms = $2, last_error = $3,
                        lease_owner = NULL, lease_until_ms = NULL
                     WHERE id = $4 AND state = 'pending' AND lease_owner = $5",
                )
                .bind(state.as_str())
                .bind(failure.retry_at.map(|t| t.timestamp_millis()))
                .bind(failure.error)
                .bind(failure.id.as_str())
                .bind(owner)
                .execute(&mut *tx)
                .await?
                .rows_affected();
            }
            tx.commit().await?;
            Ok(recorded)
        })
    }

    /// Puts failed events back to be processed at once, from their first attempt: the listed
    /// ones, or every failed event when `ids` is empty. Returns how many.
    pub async fn retry_events(&self, ids: &[&str]) -> Result<u64, StoreError> {
        let ids = serde_json::to_string(ids).expect("strings serialize");
        let each = match self.backend {
            Backend::Sqlite(_) => "SELECT value FROM json_each($1)",
            Backend::Postgres(_) => "SELECT jsonb_array_elements_text($1::jsonb)",
        };
        let sql = format!(
            "UPDATE events SET state = 'pending', attempts = 0, next_attempt_ms = NULL, last_error = NULL
             WHERE state = 'failed' AND ($1 = '[]' OR id IN ({each}))"
        );
        let _turn = self.write_turn().await;
        on_pool!(self, pool => {
            Ok(sqlx::query(sqlx::AssertSqlSafe(sql)).bind(&ids).execute(pool).await?.rows_affected())
        })
    }

    /// Gives back the events `owner` leased in a round that failed for the store's sake,
    /// without counting the lease as one of their processing attempts.
    pub async fn give_back(&self, owner: &str) -> Result<u64, StoreError> {
        let _turn = self.write_turn().await;
        on_pool!(self, pool => {
            Ok(sqlx::query(
                "UPDATE events SET lease_owner = NULL, lease_until_ms = NULL,
                    attempts = CASE WHEN attempts > 0 THEN attempts - 1 ELSE 0 END
                 WHERE state = 'pending' AND lease_owner = $1",
            )
            .bind(owner)
            .execute(pool)
            .await?
            .rows_affected())
        })
    }

    /// Gives back the leases `owner` holds (on shutdown), or all leases when `owner` is `None`
    /// (SQLite at start: one instance owns the file, so any lease is a dead process's).
    pub async fn release_leases(&self, owner: Option<&str>) -> Result<u64, StoreError> {
        let _turn = self.write_turn().await;
        on_pool!(self, pool => {
            let result = match owner {
                Some(owner) => sqlx::query("UPDATE events SET lease_owner = NULL, lease_until_ms = NULL WHERE state = 'pending' AND lease_owner = $1")
                    .bind(owner).execute(pool).await?,
                None => sqlx::query("UPDATE events SET lease_owner = NULL, lease_until_ms = NULL WHERE state = 'pending' AND lease_owner IS NOT NULL")
                    .execute(pool).await?,
            };
            Ok(result.rows_affected())
        })
    }

    pub async fn get_event(&self, id: &str) -> Result<Option<StoredEvent>, StoreError> {
        on_pool!(self, pool => {
            let row = sqlx::query("SELECT * FROM events WHERE id = $1").bind(id).fetch_optional(pool).await?;
            row.as_ref().map(decode_event).transpose()
        })
    }

    /// The newest events first, optionally of one type, source or state, older than `before`,
    /// without their raw payloads (`get_event` has it): at most `filter.limit`, and no more
    /// once their JSON as listed passes `filter.max_bytes` (a page holds at least one). Rows
    /// are read a few at a time (see `PageFill::wanted`), so reading holds little more than
    /// the page.
    pub async fn list_events(&self, filter: &EventFilter) -> Result<Page<StoredEvent>, StoreError> {
        // The subject's expression is one of a fixed set (never the caller's text), written as
        // the history indexes are, so that `claim`, `account` and `debtor` use them.
        let by_subject = match &filter.subject {
            Some((key, _)) => format!("AND {} = $6", self.subject_reference(key)?),
            None => "AND $6 IS NULL".to_owned(),
        };
        let sql = format!(
            "SELECT id, source, source_event_id, type, source_type, occurred_at, received_at,
                    subject, amount_value, amount_currency, data, chain_depth, state,
                    processed_at, delivery_id, attempts, last_error, next_attempt_ms
             FROM events
             WHERE ($1 IS NULL OR type = $1) AND ($2 IS NULL OR source = $2) AND ($3 IS NULL OR id < $3)
               AND ($5 IS NULL OR state = $5) {by_subject}
               AND ($7 IS NULL OR occurred_at >= $7) AND ($8 IS NULL OR occurred_at < $8)
             ORDER BY id DESC LIMIT $4"
        );
        let mut fill = PageFill::new(filter.limit, filter.max_bytes, filter.before.clone());
        loop {
            let wanted = fill.wanted();
            let rows = on_pool!(self, pool => {
                let rows = sqlx::query(sqlx::AssertSqlSafe(sql.as_str()))
                .bind(&filter.kind)
                .bind(&filter.source)
                .bind(&fill.before)
                .bind(wanted as i64)
                .bind(filter.state.map(EventState::as_str))
                .bind(filter.subject.as_ref().map(|(_, value)| value.as_str()))
                .bind(filter.from)
                .bind(filter.to)
                .fetch_all(pool)
                .await?;
                rows.iter().map(decode_event).collect::<Result<Vec<_>, _>>()
            })?;
            let measure = |e: &StoredEvent| (json_len(&e.listed()), e.event.id.to_string());
            if let Some(page) = fill.take(rows, wanted, measure) {
                return Ok(page);
            }
        }
    }

    /// When the oldest event that is due for processing arrived, if any is waiting: how far
    /// processing lags behind.
    pub async fn oldest_due_pending(
        &self,
        now: DateTime<Utc>,
    ) -> Result<Option<DateTime<Utc>>, StoreError> {
        on_pool!(self, pool => {
            let row = sqlx::query(
                "SELECT received_at FROM events
                 WHERE state = 'pending' AND (next_attempt_ms IS NULL OR next_attempt_ms <= $1)
                 ORDER BY id LIMIT 1",
            )
            .bind(now.timestamp_millis())
            .fetch_optional(pool)
            .await?;
            row.map(|r| r.try_get("received_at")).transpose().map_err(StoreError::from)
        })
    }

    /// How many events are in each processing state: `(pending, processed)`.
    pub async fn count_events(&self) -> Result<(i64, i64), StoreError> {
        on_pool!(self, pool => {
            let row = sqlx::query(
                "SELECT COALESCE(SUM(CASE WHEN state = 'pending' THEN 1 ELSE 0 END), 0) AS pending,
                        COALESCE(SUM(CASE WHEN state = 'processed' THEN 1 ELSE 0 END), 0) AS processed
                 FROM events",
            )
            .fetch_one(pool)
            .await?;
            Ok((row.try_get("pending")?, row.try_get("processed")?))
        })
    }
}

impl Store {
    /// Provider types the catalogue did not know, with how many arrived and when last.
    pub async fn unknown_types(&self) -> Result<Vec<UnknownType>, StoreError> {
        on_pool!(self, pool => {
            let rows = sqlx::query(
                "SELECT source, source_type, COUNT(*) AS count, MAX(id) AS last_event_id
                 FROM events WHERE type = 'unknown' GROUP BY source, source_type ORDER BY source, source_type",
            )
            .fetch_all(pool)
            .await?;
            rows.iter()
                .map(|row| {
                    Ok(UnknownType {
                        source: row.try_get("source")?,
                        source_type: row.try_get("source_type")?,
                        count: row.try_get("count")?,
                        last_event_id: row.try_get("last_event_id")?,
                    })
                })
                .collect()
        })
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct UnknownType {
    pub source: String,
    pub source_type: Option<String>,
    pub count: i64,
    pub last_event_id: String,
}

/// Which events `list_events` returns.
#[derive(Debug, Clone, Default)]
pub struct EventFilter {
    pub kind: Option<String>,
    pub source: Option<String>,
    pub state: Option<EventState>,
    /// A subject reference and its value: `("claim", "C-1")`; the key is one of
    /// [`SUBJECT_KEYS`].
    pub subject: Option<(String, String)>,
    /// Occurred at or after this time.
    pub from: Option<DateTime<Utc>>,
    /// Occurred before this time.
    pub to: Option<DateTime<Utc>>,
    pub before: Option<String>,
    pub limit: u32,
    /// Bytes of JSON after which no more events are added to the page.
    pub max_bytes: usize,
}

/// The subject references an event list can be filtered by (the fields of [`Subject`]).
pub const SUBJECT_KEYS: [&str; 11] = [
    "account",
    "claim",
    "debtor",
    "invoice",
    "case",
    "organization",
    "customer",
    "payment_request",
    "payment",
    "strategy",
    "user",
];

impl Store {
    /// The SQL expression of subject reference `key` in this store's dialect.
    fn subject_reference(&self, key: &str) -> Result<String, StoreError> {
        if !SUBJECT_KEYS.contains(&key) {
            return Err(StoreError::Invalid(format!(
                "no subject reference '{key}': the references are {}",
                SUBJECT_KEYS.join(", ")
            )));
        }
        Ok(match self.backend {
            Backend::Sqlite(_) => format!("json_extract(subject, '$.{key}')"),
            Backend::Postgres(_) => format!("(subject->>'{key}')"),
        })
    }
}

/// Reads an event row of either backend (`sqlx::Row` is the same API on both).
pub(super) fn decode_event<R>(row: &R) -> Result<StoredEvent, StoreError>
where
    R: Row,
    for<'a> &'a str: sqlx::ColumnIndex<R>,
    String: for<'r> sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    Option<String>: for<'r> sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    DateTime<Utc>: for<'r> sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    Option<DateTime<Utc>>: for<'r> sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    Json<Value>: for<'r> sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    Json<Subject>: for<'r> sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    i64: for<'r> sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    Option<i64>: for<'r> sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
{
    let id: String = row.try_get("id")?;
    let corrupt = |what: String| StoreError::Corrupt(format!("event {id}: {what}"));
    let kind: String = row.try_get("type")?;
    let amount_value: Option<String> = row.try_get("amount_value")?;
    let amount = match amount_value {
        Some(v) => Some(Amount {
            value: v
                .parse()
                .map_err(|e| corrupt(format!("amount '{v}': {e}")))?,
            currency: row.try_get("amount_currency")?,
        }),
        None => None,
    };
    let state: String = row.try_get("state")?;
    let state = state.parse::<EventState>().map_err(corrupt)?;
    let failure = match row.try_get::<Option<String>, _>("last_error")? {
        Some(error) => Some(ProcessingFailure {
            attempts: u32::try_from(row.try_get::<i64, _>("attempts")?).unwrap_or(u32::MAX),
            error,
            retry_at: row
                .try_get::<Option<i64>, _>("next_attempt_ms")?
                .filter(|_| state == EventState::Pending)
                .and_then(DateTime::from_timestamp_millis),
        }),
        None => None,
    };
    let event = Event {
        kind: EventType::parse(&kind).map_err(corrupt)?,
        source: row.try_get("source")?,
        source_event_id: row.try_get("source_event_id")?,
        source_type: row.try_get("source_type")?,
        occurred_at: row.try_get("occurred_at")?,
        received_at: row.try_get("received_at")?,
        subject: row.try_get::<Json<Subject>, _>("subject")?.0,
        amount,
        data: row.try_get::<Json<Value>, _>("data")?.0,
        // Lists leave the raw payload out of their SELECT.
        payload: match row.try_get::<Json<Value>, _>("payload") {
            Ok(payload) => payload.0,
            Err(sqlx::Error::ColumnNotFound(_)) => Value::Null,
            Err(e) => return Err(e.into()),
        },
        chain_depth: u32::try_from(row.try_get::<i64, _>("chain_depth")?).unwrap_or(u32::MAX),
        id: EventId::from_stored(id.clone()),
    };
    Ok(StoredEvent {
        event,
        state,
        processed_at: row.try_get("processed_at")?,
        delivery_id: row.try_get("delivery_id")?,
        failure,
    })
}
