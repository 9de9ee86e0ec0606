//! Replays: the stored events a replay takes, and what its firings record. A replay plans
//! through the same keys as processing: one evaluation per `(event, rule)`, one outbox row per
//! `(event, rule, action)`, so replaying what already fired plans nothing.

use chrono::{DateTime, Utc};
use sqlx::types::Json;

use super::evaluations::{INSERT_EVALUATIONS, THROTTLE, stored_key};
use super::events::decode_event;
use super::{EvaluationOutcome, NewEvaluation, Store, StoreError, StoredEvent, Verdict, on_pool};
use crate::normalize::{EventId, EventType};

/// Which stored events a replay takes: processed ones received in `[from, to)`, optionally of
/// one type and source; never the engine's own ticks and deadlines.
#[derive(Debug, Clone)]
pub struct ReplayRange {
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    pub kind: Option<String>,
    pub source: Option<String>,
}

/// What recording one replayed firing came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplayWrite {
    /// Recorded as fired, with this many outbox rows new (those already there stay).
    Planned(u64),
    /// Recorded as throttled: its rule's throttle had fired within the window.
    Throttled,
    /// The event already has a record of this rule (fired, throttled or waiting): nothing new.
    AlreadyRecorded,
}

/// The first `$n` placeholders of the range query; a cursor and the limit follow.
const RANGE: &str = "SELECT * FROM events
     WHERE state IN ('processed', 'failed') AND state = 'processed'
       AND received_at >= $1 AND received_at < $2
       AND ($3 IS NULL OR type = $3) AND ($4 IS NULL OR source = $4)
       AND NOT (source = $5 AND type IN ($6, $7))
       AND (received_at > $8 OR (received_at = $8 AND id > $9))
     ORDER BY received_at, id LIMIT $10";

impl Store {
    /// Processed events of `range`, oldest first (by `received_at`, then id), after the cursor
    /// `after` (the last event of the previous page), at most `limit` (at most 1000).
    pub async fn replay_events(
        &self,
        range: &ReplayRange,
        after: Option<(DateTime<Utc>, String)>,
        limit: u32,
    ) -> Result<Vec<StoredEvent>, StoreError> {
        let (after_at, after_id) = after.unwrap_or((range.from, String::new()));
        let [tick, deadline] = EventType::INTERNAL;
        on_pool!(self, pool => {
            let rows = sqlx::query(RANGE)
                .bind(range.from)
                .bind(range.to)
                .bind(range.kind.as_deref())
                .bind(range.source.as_deref())
                .bind(crate::providers::ENGINE_SOURCE)
                .bind(tick)
                .bind(deadline)
                .bind(after_at)
                .bind(after_id)
                .bind(i64::from(limit.min(super::MAX_LIST)))
                .fetch_all(pool)
                .await?;
            rows.iter().map(decode_event).collect()
        })
    }

    /// When the throttle of `rule` with `key` last fired (epoch ms), if it ever did.
    pub async fn throttle_fired_at(
        &self,
        rule: &str,
        key: &str,
    ) -> Result<Option<i64>, StoreError> {
        on_pool!(self, pool => {
            let fired: Option<i64> = sqlx::query_scalar(
                "SELECT fired_at_ms FROM throttles WHERE rule_id = $1 AND throttle_key = $2",
            )
            .bind(rule)
            .bind(stored_key(key).as_ref())
            .fetch_optional(pool)
            .await?;
            Ok(fired)
        })
    }

    /// Records replayed firings (evaluations whose verdict is `Fired`; others are skipped as
    /// already recorded) in one transaction. Each is recorded only where its event has no
    /// record of the rule, or a `failed` one (which it replaces): then its throttle is passed,
    /// as in processing, and its actions planned, each once per `(event, rule, action)`.
    pub async fn record_replay(
        &self,
        firings: &[(&EventId, &NewEvaluation)],
        now: DateTime<Utc>,
    ) -> Result<Vec<ReplayWrite>, StoreError> {
        let now_ms = now.timestamp_millis();
        let upsert = format!(
            "{INSERT_EVALUATIONS} VALUES ($1, $2, $3, $4, $5, NULL, NULL, $6, $7, $8, $9)
             ON CONFLICT (event_id, rule_id) DO UPDATE SET rule_version = excluded.rule_version,
                 outcome = excluded.outcome, error = NULL, error_line = NULL, actions = excluded.actions,
                 logs = excluded.logs, duration_us = excluded.duration_us, evaluated_at = excluded.evaluated_at
             WHERE evaluations.outcome = 'failed'
             RETURNING id"
        );
        let _turn = self.write_turn().await;
        on_pool!(self, pool => {
            let mut tx = pool.begin().await?;
            let mut written = Vec::with_capacity(firings.len());
            for (event_id, evaluation) in firings {
                let Verdict::Fired { actions, planned, throttle } = &evaluation.verdict else {
                    written.push(ReplayWrite::AlreadyRecorded);
                    continue;
                };
                let recorded: Option<String> = sqlx::query_scalar(sqlx::AssertSqlSafe(upsert.as_str()))
                    .bind(format!("evl_{}", uuid::Uuid::now_v7().simple()))
                    .bind(event_id.as_str())
                    .bind(evaluation.rule_id.as_str())
                    .bind(evaluation.rule_version.as_str())
                    .bind(EvaluationOutcome::Fired.as_str())
                    .bind(Json(actions))
                    .bind(Json(&evaluation.logs))
                    .bind(evaluation.duration_us)
                    .bind(now)
                    .fetch_optional(&mut *tx)
                    .await?;
                let Some(evaluation_id) = recorded else {
                    written.push(ReplayWrite::AlreadyRecorded);
                    continue;
                };
                if let Some(gate) = throttle {
                    let cutoff = now_ms - i64::try_from(gate.window.as_millis()).unwrap_or(i64::MAX);
                    let fires = sqlx::query(THROTTLE)
                        .bind(&evaluation.rule_id)
                        .bind(stored_key(&gate.key).as_ref())
                        .bind(now_ms)
                        .bind(cutoff)
                        .fetch_optional(&mut *tx)
                        .await?
                        .is_some();
                    if !fires {
                        sqlx::query("UPDATE evaluations SET outcome = $1 WHERE id = $2")
                            .bind(EvaluationOutcome::Throttled.as_str())
                            .bind(&evaluation_id)
                            .execute(&mut *tx)
                            .await?;
                        written.push(ReplayWrite::Throttled);
                        continue;
                    }
                }
                let mut new_rows = 0;
                // 12 columns x 1000 rows stays under SQLite's 32766 bound parameters.
                for (chunk_index, chunk) in planned.chunks(1000).enumerate() {
                    let mut insert = sqlx::QueryBuilder::new(super::outbox::INSERT_ACTIONS);
                    insert.push_values(chunk.iter().enumerate(), |mut row, (i, action)| {
                        row.push_bind(format!("act_{}", uuid::Uuid::now_v7().simple()))
                            .push_bind(event_id.as_str())
                            .push_bind(evaluation.rule_id.as_str())
                            .push_bind((chunk_index * 1000 + i) as i64)
                            .push_bind(action.kind)
                            .push_bind(action.target.as_str())
                            .push_bind(Json(&action.payload))
                            .push_bind(action.due.map_or(now_ms, |due| due.timestamp_millis()))
                            .push_bind(action.cancel.as_ref().map(|c| c.subject_ref.as_str()))
                            .push_bind(action.cancel.as_ref().map(|c| Json(&c.types)))
                            .push_bind(now)
                            .push_bind(now);
                    });
                    insert.push(" ON CONFLICT (event_id, rule_id, action_index) DO NOTHING");
                    new_rows += insert.build().execute(&mut *tx).await?.rows_affected();
                }
                written.push(ReplayWrite::Planned(new_rows));
            }
            tx.commit().await?;
            Ok(written)
        })
    }
}
