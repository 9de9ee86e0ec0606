//! Outbox rows, delivery attempts and strategy states.

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;
use sqlx::types::Json;
use sqlx::{QueryBuilder, Row};

use super::{Backend, Store, StoreError, on_pool, postgres, sqlite};
use crate::outbox::{OutboxAction, Outcome, Payload};

pub(super) const INSERT_ACTIONS: &str = "INSERT INTO actions (id, event_id, rule_id, action_index, kind, target, payload, next_attempt_ms, created_at, updated_at) ";

/// An action as listed by `signalbox actions`.
#[derive(Debug, Clone, Serialize)]
pub struct ActionSummary {
    pub id: String,
    pub event_id: String,
    pub rule_id: String,
    pub kind: String,
    pub target: String,
    pub status: String,
    pub attempts: i64,
    pub last_error: Option<String>,
    pub updated_at: DateTime<Utc>,
}

/// One delivery attempt, as recorded.
#[derive(Debug, Clone, Serialize)]
pub struct AttemptRecord {
    pub attempt: i64,
    pub started_at: DateTime<Utc>,
    pub duration_ms: i64,
    pub outcome: String,
    /// The engine instance (dispatcher) that made the attempt.
    pub instance: String,
    pub status_code: Option<i64>,
    pub reply: Option<String>,
    pub error: Option<String>,
}

/// One finished attempt, to be recorded.
#[derive(Debug)]
pub struct AttemptToRecord<'a> {
    pub action: &'a OutboxAction,
    pub started_at: DateTime<Utc>,
    pub duration_ms: i64,
    pub outcome: &'a Outcome,
    pub next: NextStep,
}

impl AttemptToRecord<'_> {
    fn attempt(&self) -> i64 {
        i64::from(self.action.attempts) + 1
    }
}

impl NextStep {
    /// `(status, next_attempt_ms)` for the action row.
    fn columns(self) -> (&'static str, i64) {
        match self {
            Self::Delivered => ("delivered", 0),
            Self::RetryAt(ms) => ("pending", ms),
            Self::Dead => ("dead", 0),
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
    ) -> Result<Vec<OutboxAction>, StoreError> {
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
                    let payload: Json<Payload> = row.try_get("payload")?;
                    Ok(OutboxAction {
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
        attempts: &[AttemptToRecord<'_>],
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
                    row.push_bind(a.action.id.as_str()).push_bind(status).push_bind(a.attempt()).push_bind(next_ms).push_bind(a.outcome.error());
                });
                update.push(") AS vals) AS v WHERE actions.id = v.id AND actions.status = 'in_flight' AND actions.lease_owner = ");
                update.push_bind(owner).push(" RETURNING actions.id");
                owned.extend(update.build_query_scalar::<String>().fetch_all(&mut *tx).await?);
            }
            let recorded: Vec<&AttemptToRecord<'_>> = attempts.iter().filter(|a| owned.contains(&a.action.id)).collect();
            for chunk in recorded.chunks(500) {
                let mut insert = QueryBuilder::new("INSERT INTO attempts (id, action_id, attempt, started_at, duration_ms, outcome, instance, status_code, reply, error) ");
                insert.push_values(chunk, |mut row, a| {
                    let reply = match a.outcome {
                        Outcome::Delivered { reply, .. } => reply.as_deref(),
                        _ => None,
                    };
                    row.push_bind(format!("att_{}", uuid::Uuid::now_v7().simple()))
                        .push_bind(a.action.id.as_str())
                        .push_bind(a.attempt())
                        .push_bind(a.started_at)
                        .push_bind(a.duration_ms)
                        .push_bind(a.outcome.name())
                        .push_bind(owner)
                        .push_bind(a.outcome.status().map(i64::from))
                        .push_bind(reply)
                        .push_bind(a.outcome.error());
                });
                insert.build().execute(&mut *tx).await?;
            }
            tx.commit().await?;
            Ok::<_, StoreError>(owned)
        })?;
        Ok(attempts
            .iter()
            .map(|a| owned.contains(&a.action.id))
            .collect())
    }

    /// Gives back the actions `owner` holds but has not started (at shutdown).
    pub async fn release_actions(&self, owner: &str) -> Result<u64, StoreError> {
        let _turn = self.write_turn().await;
        on_pool!(self, pool => {
            let done = sqlx::query("UPDATE actions SET status = 'pending', lease_owner = NULL, lease_until_ms = NULL WHERE status = 'in_flight' AND lease_owner = $1")
                .bind(owner)
                .execute(pool)
                .await?;
            Ok(done.rows_affected())
        })
    }

    /// Actions, newest first, optionally in one status and of one rule.
    pub async fn list_actions(
        &self,
        status: Option<&str>,
        rule: Option<&str>,
        limit: u32,
    ) -> Result<Vec<ActionSummary>, StoreError> {
        on_pool!(self, pool => {
            let rows = sqlx::query(
                "SELECT id, event_id, rule_id, kind, target, status, attempts, last_error, updated_at FROM actions
                 WHERE ($1 IS NULL OR status = $1) AND ($2 IS NULL OR rule_id = $2) ORDER BY id DESC LIMIT $3",
            )
            .bind(status)
            .bind(rule)
            .bind(i64::from(limit))
            .fetch_all(pool)
            .await?;
            rows.iter()
                .map(|row| {
                    Ok(ActionSummary {
                        id: row.try_get("id")?,
                        event_id: row.try_get("event_id")?,
                        rule_id: row.try_get("rule_id")?,
                        kind: row.try_get("kind")?,
                        target: row.try_get("target")?,
                        status: row.try_get("status")?,
                        attempts: row.try_get("attempts")?,
                        last_error: row.try_get("last_error")?,
                        updated_at: row.try_get("updated_at")?,
                    })
                })
                .collect()
        })
    }

    /// Every attempt of an action, in order.
    pub async fn attempts(&self, action_id: &str) -> Result<Vec<AttemptRecord>, StoreError> {
        on_pool!(self, pool => {
            let rows = sqlx::query("SELECT * FROM attempts WHERE action_id = $1 ORDER BY attempt").bind(action_id).fetch_all(pool).await?;
            rows.iter()
                .map(|row| {
                    Ok(AttemptRecord {
                        attempt: row.try_get("attempt")?,
                        started_at: row.try_get("started_at")?,
                        duration_ms: row.try_get("duration_ms")?,
                        outcome: row.try_get("outcome")?,
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

    /// Whether Signalbox last paused the claim's strategy at `platform`, and by which rule.
    pub async fn strategy_paused_by(
        &self,
        platform: &str,
        claim: &str,
    ) -> Result<Option<String>, StoreError> {
        on_pool!(self, pool => {
            let row = sqlx::query("SELECT rule_id FROM strategy_states WHERE platform = $1 AND claim = $2 AND paused = $3")
                .bind(platform)
                .bind(claim)
                .bind(true)
                .fetch_optional(pool)
                .await?;
            Ok(row.map(|r| r.try_get("rule_id")).transpose()?)
        })
    }

    pub async fn set_strategy_state(
        &self,
        platform: &str,
        claim: &str,
        paused: bool,
        rule_id: &str,
        reason: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let _turn = self.write_turn().await;
        on_pool!(self, pool => {
            sqlx::query(
                "INSERT INTO strategy_states (platform, claim, paused, rule_id, reason, changed_at) VALUES ($1, $2, $3, $4, $5, $6)
                 ON CONFLICT (platform, claim) DO UPDATE SET paused = excluded.paused, rule_id = excluded.rule_id,
                   reason = excluded.reason, changed_at = excluded.changed_at",
            )
            .bind(platform)
            .bind(claim)
            .bind(paused)
            .bind(rule_id)
            .bind(reason)
            .bind(now)
            .execute(pool)
            .await?;
            Ok(())
        })
    }

    /// The claims whose strategies Signalbox holds paused, among `claims` (for scripts).
    pub async fn paused_claims(
        &self,
        claims: &[&str],
    ) -> Result<Vec<(String, String)>, StoreError> {
        if claims.is_empty() {
            return Ok(Vec::new());
        }
        on_pool!(self, pool => {
            let mut query = QueryBuilder::new("SELECT platform, claim FROM strategy_states WHERE paused = ");
            query.push_bind(true).push(" AND claim IN (");
            let mut list = query.separated(", ");
            for claim in claims {
                list.push_bind(*claim);
            }
            query.push(")");
            let rows = query.build().fetch_all(pool).await?;
            rows.iter().map(|r| Ok((r.try_get("platform")?, r.try_get("claim")?))).collect()
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

/// The JSON stored for a planned action.
pub(super) fn payload_json(action: &Value) -> Json<Payload> {
    Json(Payload::current(action.clone()))
}
