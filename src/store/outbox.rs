//! Outbox rows and delivery attempts.

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;
use sqlx::types::Json;
use sqlx::{QueryBuilder, Row};

use super::{
    ActionStatus, AttemptOutcome, Backend, Store, StoreError, on_pool, parse_word, postgres, sqlite,
};

pub(super) const INSERT_ACTIONS: &str = "INSERT INTO actions (id, event_id, rule_id, action_index, kind, target, payload, next_attempt_ms, cancel_ref, cancel_types, created_at, updated_at) ";

/// Most attempts of one action listed: its latest.
pub const MAX_ATTEMPTS_LISTED: i64 = 1000;

/// An action planned by a fired evaluation, to be written with it.
#[derive(Debug, Clone)]
pub struct NewAction {
    pub kind: &'static str,
    /// What it talks to (a host, `smtp`, `strategy:<platform>`): one concurrency limit each.
    pub target: String,
    /// The versioned, serialized parameters.
    pub payload: Value,
    /// When it is first due; `None`: at once.
    pub due: Option<DateTime<Utc>>,
    /// A later event that cancels it while it is still pending.
    pub cancel: Option<CancelOn>,
}

/// Which later events cancel a pending action: any about `subject_ref` of one of `types`
/// (empty: of any type).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CancelOn {
    /// `claim:C-1`.
    pub subject_ref: String,
    pub types: Vec<String>,
}

/// Cancels the listed actions (`&[impl AsRef<str>]`) that are still pending, in `$tx`, with
/// `$reason` as their last error: the number that changed.
macro_rules! cancel_in {
    ($tx:expr, $ids:expr, $reason:expr, $now:expr) => {{
        let mut changed = 0_u64;
        for chunk in $ids.chunks($crate::store::IDS_PER_STATEMENT) {
            let mut update = ::sqlx::QueryBuilder::new(
                "UPDATE actions SET status = 'cancelled', lease_owner = NULL, lease_until_ms = NULL, last_error = ",
            );
            update
                .push_bind($reason)
                .push(", updated_at = ")
                .push_bind($now)
                .push(" WHERE status = 'pending' AND id IN (");
            let mut list = update.separated(", ");
            for id in chunk {
                list.push_bind(AsRef::<str>::as_ref(id));
            }
            update.push(")");
            changed += update.build().execute(&mut *$tx).await?.rows_affected();
        }
        changed
    }};
}
pub(super) use cancel_in;

/// An action leased for delivery, as stored.
#[derive(Debug, Clone)]
pub struct ActionRow {
    pub id: String,
    pub event_id: String,
    pub rule_id: String,
    pub action_index: i64,
    pub kind: String,
    pub target: String,
    pub payload: Value,
    /// Attempts made before this one.
    pub attempts: u32,
}

/// An action as listed by `signalbox actions`.
#[derive(Debug, Clone, Serialize)]
pub struct ActionSummary {
    pub id: String,
    pub event_id: String,
    pub rule_id: String,
    pub kind: String,
    pub target: String,
    pub status: ActionStatus,
    pub attempts: i64,
    pub last_error: Option<String>,
    pub updated_at: DateTime<Utc>,
    /// A pending action's next attempt (later than now when it is delayed or backing off).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_attempt_at: Option<DateTime<Utc>>,
}

/// One delivery attempt, as recorded.
#[derive(Debug, Clone, Serialize)]
pub struct AttemptRecord {
    pub attempt: i64,
    pub started_at: DateTime<Utc>,
    pub duration_ms: i64,
    pub outcome: AttemptOutcome,
    /// The engine instance (dispatcher) that made the attempt.
    pub instance: String,
    pub status_code: Option<i64>,
    pub reply: Option<String>,
    pub error: Option<String>,
}

/// One finished attempt, to be recorded.
#[derive(Debug, Clone)]
pub struct NewAttempt<'a> {
    pub action_id: &'a str,
    /// 1 for the first attempt.
    pub attempt: i64,
    pub started_at: DateTime<Utc>,
    pub duration_ms: i64,
    pub outcome: AttemptOutcome,
    pub status_code: Option<i64>,
    pub reply: Option<&'a str>,
    pub error: Option<&'a str>,
    pub next: NextStep,
}

impl NextStep {
    /// `(status, next_attempt_ms)` for the action row.
    fn columns(self) -> (ActionStatus, i64) {
        match self {
            Self::Delivered => (ActionStatus::Delivered, 0),
            Self::RetryAt(ms) => (ActionStatus::Pending, ms),
            Self::Dead => (ActionStatus::Dead, 0),
        }
    }
}

/// What became of an action after an attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NextStep {
    Delivered,
    RetryAt(i64),
    Dead,
}

impl Store {
    /// Leases up to `limit` due actions of the given kinds to `owner`: first those whose
    /// instance's lease expired (it died while delivering), then pending ones whose time has come.
    pub async fn claim_due_actions(
        &self,
        owner: &str,
        limit: usize,
        now_ms: i64,
        lease_until_ms: i64,
        kinds: &[&str],
    ) -> Result<Vec<ActionRow>, StoreError> {
        let (retake, due) = match self.backend {
            Backend::Sqlite(_) => (sqlite::RETAKE_EXPIRED_ACTIONS, sqlite::CLAIM_DUE_ACTIONS),
            Backend::Postgres(_) => (
                postgres::RETAKE_EXPIRED_ACTIONS,
                postgres::CLAIM_DUE_ACTIONS,
            ),
        };
        let kinds = serde_json::to_string(kinds).expect("strings serialize");
        let _turn = self.write_turn().await;
        on_pool!(self, pool => {
            let mut rows = sqlx::query(retake).bind(owner).bind(lease_until_ms).bind(now_ms).bind(&kinds).bind(limit as i64).fetch_all(pool).await?;
            if rows.len() < limit {
                let more = limit - rows.len();
                rows.extend(sqlx::query(due).bind(owner).bind(lease_until_ms).bind(now_ms).bind(&kinds).bind(more as i64).fetch_all(pool).await?);
            }
            rows.iter()
                .map(|row| {
                    let payload: Json<Value> = row.try_get("payload")?;
                    Ok(ActionRow {
                        id: row.try_get("id")?,
                        event_id: row.try_get("event_id")?,
                        rule_id: row.try_get("rule_id")?,
                        action_index: row.try_get("action_index")?,
                        kind: row.try_get("kind")?,
                        target: row.try_get("target")?,
                        payload: payload.0,
                        attempts: u32::try_from(row.try_get::<i64, _>("attempts")?).unwrap_or(u32::MAX),
                    })
                })
                .collect()
        })
    }

    /// Records attempts and moves their actions on, all in one transaction, for the actions
    /// `owner` still holds. Returns, per attempt, whether it was recorded (a lost lease means
    /// another instance has the action now).
    pub async fn record_attempts(
        &self,
        owner: &str,
        attempts: &[NewAttempt<'_>],
        now: DateTime<Utc>,
    ) -> Result<Vec<bool>, StoreError> {
        if attempts.is_empty() {
            return Ok(Vec::new());
        }
        let _turn = self.write_turn().await;
        let owned: std::collections::HashSet<String> = on_pool!(self, pool => {
            let mut tx = pool.begin().await?;
            let mut owned = std::collections::HashSet::new();
            for chunk in attempts.chunks(500) {
                let mut update = QueryBuilder::new(
                    "UPDATE actions SET status = v.status, attempts = v.attempts, next_attempt_ms = v.next_ms, last_error = v.error,
                        lease_owner = NULL, lease_until_ms = NULL, updated_at = ",
                );
                update.push_bind(now).push(
                    " FROM (SELECT column1 AS id, column2 AS status, column3 AS attempts, column4 AS next_ms, column5 AS error FROM (",
                );
                update.push_values(chunk, |mut row, a| {
                    let (status, next_ms) = a.next.columns();
                    row.push_bind(a.action_id).push_bind(status.as_str()).push_bind(a.attempt).push_bind(next_ms).push_bind(a.error);
                });
                update.push(") AS vals) AS v WHERE actions.id = v.id AND actions.status = 'in_flight' AND actions.lease_owner = ");
                update.push_bind(owner).push(" RETURNING actions.id");
                owned.extend(update.build_query_scalar::<String>().fetch_all(&mut *tx).await?);
            }
            let recorded: Vec<&NewAttempt<'_>> = attempts.iter().filter(|a| owned.contains(a.action_id)).collect();
            for chunk in recorded.chunks(500) {
                let mut insert = QueryBuilder::new("INSERT INTO attempts (id, action_id, attempt, started_at, duration_ms, outcome, instance, status_code, reply, error) ");
                insert.push_values(chunk, |mut row, a| {
                    row.push_bind(format!("att_{}", uuid::Uuid::now_v7().simple()))
                        .push_bind(a.action_id)
                        .push_bind(a.attempt)
                        .push_bind(a.started_at)
                        .push_bind(a.duration_ms)
                        .push_bind(a.outcome.as_str())
                        .push_bind(owner)
                        .push_bind(a.status_code)
                        .push_bind(a.reply)
                        .push_bind(a.error);
                });
                insert.build().execute(&mut *tx).await?;
            }
            tx.commit().await?;
            Ok::<_, StoreError>(owned)
        })?;
        Ok(attempts
            .iter()
            .map(|a| owned.contains(a.action_id))
            .collect())
    }

    /// Gives back the actions `owner` holds but has not started (at shutdown); with
    /// `others`, every action in flight that `owner` does not hold (at the start of the one
    /// instance a SQLite file has: they were leased by a process that died).
    pub async fn release_actions(&self, owner: &str, others: bool) -> Result<u64, StoreError> {
        let _turn = self.write_turn().await;
        on_pool!(self, pool => {
            let done = sqlx::query("UPDATE actions SET status = 'pending', lease_owner = NULL, lease_until_ms = NULL
                 WHERE status = 'in_flight' AND (($2 AND (lease_owner IS NULL OR lease_owner <> $1)) OR (NOT $2 AND lease_owner = $1))")
                .bind(owner)
                .bind(others)
                .execute(pool)
                .await?;
            Ok(done.rows_affected())
        })
    }

    /// Actions, newest first, optionally in one status and of one rule.
    pub async fn list_actions(
        &self,
        status: Option<ActionStatus>,
        rule: Option<&str>,
        limit: u32,
    ) -> Result<Vec<ActionSummary>, StoreError> {
        on_pool!(self, pool => {
            let rows = sqlx::query(
                "SELECT id, event_id, rule_id, kind, target, status, attempts, last_error, updated_at, next_attempt_ms FROM actions
                 WHERE ($1 IS NULL OR status = $1) AND ($2 IS NULL OR rule_id = $2) ORDER BY id DESC LIMIT $3",
            )
            .bind(status.map(ActionStatus::as_str))
            .bind(rule)
            .bind(i64::from(limit))
            .fetch_all(pool)
            .await?;
            rows.iter().map(decode_summary).collect()
        })
    }

    /// The actions an event's evaluations planned, in rule and action order.
    pub async fn actions_for_event(
        &self,
        event_id: &str,
    ) -> Result<Vec<ActionSummary>, StoreError> {
        self.actions_for_events(&[event_id]).await
    }

    /// The actions these events' evaluations planned (at most 500 ids), by event, rule and
    /// action order: one statement for a page of events.
    pub async fn actions_for_events(&self, ids: &[&str]) -> Result<Vec<ActionSummary>, StoreError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        on_pool!(self, pool => {
            let mut select = QueryBuilder::new(
                "SELECT id, event_id, rule_id, kind, target, status, attempts, last_error, updated_at, next_attempt_ms FROM actions WHERE event_id IN (",
            );
            let mut list = select.separated(", ");
            for id in ids.iter().take(super::IDS_PER_STATEMENT) {
                list.push_bind(*id);
            }
            select.push(") ORDER BY event_id, rule_id, action_index");
            let rows = select.build().fetch_all(pool).await?;
            rows.iter().map(decode_summary).collect()
        })
    }

    /// Pending actions, and when the oldest of those due by `now` became due (through the
    /// pending index).
    pub async fn outbox_depth(
        &self,
        now: DateTime<Utc>,
    ) -> Result<(i64, Option<DateTime<Utc>>), StoreError> {
        on_pool!(self, pool => {
            let row = sqlx::query(
                "SELECT COUNT(*) AS pending, MIN(CASE WHEN next_attempt_ms <= $1 THEN next_attempt_ms END) AS oldest
                 FROM actions WHERE status = 'pending'",
            )
            .bind(now.timestamp_millis())
            .fetch_one(pool)
            .await?;
            let oldest: Option<i64> = row.try_get("oldest")?;
            Ok((row.try_get("pending")?, oldest.and_then(DateTime::from_timestamp_millis)))
        })
    }

    /// One action, as lists show it.
    pub async fn get_action(&self, id: &str) -> Result<Option<ActionSummary>, StoreError> {
        on_pool!(self, pool => {
            let row = sqlx::query(
                "SELECT id, event_id, rule_id, kind, target, status, attempts, last_error, updated_at, next_attempt_ms FROM actions WHERE id = $1",
            )
            .bind(id)
            .fetch_optional(pool)
            .await?;
            row.as_ref().map(decode_summary).transpose()
        })
    }

    /// Actions that went dead with `updated_at` in `(after, until]`, newest first, at most
    /// `limit` (and at most 1000): for digests.
    pub async fn dead_actions_between(
        &self,
        after: DateTime<Utc>,
        until: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<ActionSummary>, StoreError> {
        on_pool!(self, pool => {
            let rows = sqlx::query(
                "SELECT id, event_id, rule_id, kind, target, status, attempts, last_error, updated_at, next_attempt_ms FROM actions
                 WHERE status = 'dead' AND updated_at > $1 AND updated_at <= $2 ORDER BY updated_at DESC, id DESC LIMIT $3",
            )
                .bind(after)
                .bind(until)
                .bind(i64::from(limit.min(super::MAX_LIST)))
                .fetch_all(pool)
                .await?;
            rows.iter().map(decode_summary).collect()
        })
    }

    /// Pending actions that a later event about any of `refs` (the first 500 count) cancels,
    /// oldest first, at most `limit` (and at most 1000): each with the event types that cancel
    /// it (empty: any).
    pub async fn cancellable_actions(
        &self,
        refs: &[String],
        limit: u32,
    ) -> Result<Vec<(String, String, Vec<String>)>, StoreError> {
        let limit = limit.min(super::MAX_LIST);
        if refs.is_empty() || limit == 0 {
            return Ok(Vec::new());
        }
        on_pool!(self, pool => {
            let mut select = QueryBuilder::new(
                "SELECT id, cancel_ref, cancel_types FROM actions WHERE status = 'pending' AND cancel_ref IS NOT NULL AND cancel_ref IN (",
            );
            let mut list = select.separated(", ");
            for r in refs.iter().take(super::IDS_PER_STATEMENT) {
                list.push_bind(r.as_str());
            }
            select.push(") ORDER BY id LIMIT ").push_bind(i64::from(limit));
            let rows = select.build().fetch_all(pool).await?;
            rows.iter()
                .map(|row| {
                    let types: Option<Json<Vec<String>>> = row.try_get("cancel_types")?;
                    Ok((
                        row.try_get("id")?,
                        row.try_get("cancel_ref")?,
                        types.map(|t| t.0).unwrap_or_default(),
                    ))
                })
                .collect()
        })
    }

    /// Cancels the listed actions that are still pending (not in flight, delivered or dead):
    /// status `cancelled`, `reason` as their last error. Returns how many changed.
    pub async fn cancel_actions(
        &self,
        ids: &[&str],
        reason: &str,
        now: DateTime<Utc>,
    ) -> Result<u64, StoreError> {
        if ids.is_empty() {
            return Ok(0);
        }
        let _turn = self.write_turn().await;
        on_pool!(self, pool => {
            let mut tx = pool.begin().await?;
            let changed = cancel_in!(tx, ids, reason, now);
            tx.commit().await?;
            Ok(changed)
        })
    }

    /// Every attempt of an action (its latest [`MAX_ATTEMPTS_LISTED`]), in the order they were
    /// made: a retry starts a fresh set, numbered from 1 again.
    pub async fn attempts(&self, action_id: &str) -> Result<Vec<AttemptRecord>, StoreError> {
        on_pool!(self, pool => {
            let rows = sqlx::query("SELECT * FROM attempts WHERE action_id = $1 ORDER BY started_at DESC, id DESC LIMIT $2")
                .bind(action_id)
                .bind(MAX_ATTEMPTS_LISTED)
                .fetch_all(pool)
                .await?;
            rows.iter()
                .rev()
                .map(|row| {
                    Ok(AttemptRecord {
                        attempt: row.try_get("attempt")?,
                        started_at: row.try_get("started_at")?,
                        duration_ms: row.try_get("duration_ms")?,
                        outcome: parse_word(row.try_get("outcome")?)?,
                        instance: row.try_get("instance")?,
                        status_code: row.try_get("status_code")?,
                        reply: row.try_get("reply")?,
                        error: row.try_get("error")?,
                    })
                })
                .collect()
        })
    }

    /// Puts dead (or pending) actions back to be delivered now with a fresh set of attempts:
    /// one by id, or every dead action of a rule. Returns how many.
    pub async fn retry_actions(
        &self,
        id: Option<&str>,
        dead_of_rule: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<u64, StoreError> {
        let _turn = self.write_turn().await;
        on_pool!(self, pool => {
            let done = sqlx::query(
                "UPDATE actions SET status = 'pending', attempts = 0, next_attempt_ms = 0, updated_at = $1
                 WHERE status IN ('dead', 'pending') AND (($2 IS NOT NULL AND id = $2) OR ($3 IS NOT NULL AND rule_id = $3 AND status = 'dead'))",
            )
            .bind(now)
            .bind(id)
            .bind(dead_of_rule)
            .execute(pool)
            .await?;
            Ok(done.rows_affected())
        })
    }

    /// How many actions are in each status: `(pending or in flight, delivered, dead)`.
    pub async fn count_actions(&self) -> Result<(i64, i64, i64), StoreError> {
        on_pool!(self, pool => {
            let row = sqlx::query(
                "SELECT COALESCE(SUM(CASE WHEN status IN ('pending', 'in_flight') THEN 1 ELSE 0 END), 0) AS open,
                        COALESCE(SUM(CASE WHEN status = 'delivered' THEN 1 ELSE 0 END), 0) AS delivered,
                        COALESCE(SUM(CASE WHEN status = 'dead' THEN 1 ELSE 0 END), 0) AS dead
                 FROM actions",
            )
            .fetch_one(pool)
            .await?;
            Ok((row.try_get("open")?, row.try_get("delivered")?, row.try_get("dead")?))
        })
    }
}

pub(super) fn decode_summary<R>(row: &R) -> Result<ActionSummary, StoreError>
where
    R: Row,
    for<'a> &'a str: sqlx::ColumnIndex<R>,
    String: for<'r> sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    Option<String>: for<'r> sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    i64: for<'r> sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    DateTime<Utc>: for<'r> sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
{
    Ok(ActionSummary {
        id: row.try_get("id")?,
        event_id: row.try_get("event_id")?,
        rule_id: row.try_get("rule_id")?,
        kind: row.try_get("kind")?,
        target: row.try_get("target")?,
        status: parse_word(row.try_get("status")?)?,
        attempts: row.try_get("attempts")?,
        last_error: row.try_get("last_error")?,
        updated_at: row.try_get("updated_at")?,
        next_attempt_at: match parse_word::<super::ActionStatus>(row.try_get("status")?)? {
            super::ActionStatus::Pending => {
                DateTime::from_timestamp_millis(row.try_get("next_attempt_ms")?)
            }
            _ => None,
        },
    })
}
