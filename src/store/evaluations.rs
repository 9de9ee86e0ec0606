//! Evaluation records and throttles, written with the event's completion in one transaction.

use std::collections::HashSet;

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;
use sqlx::types::Json;
use sqlx::{QueryBuilder, Row};

use super::checks::{INSERT_CHECKS, NewCheck, new_check_id, resolve_in};
use super::outbox::{ActionRow, NewAction, cancel_in};
use super::page::{Page, PageFill, json_len};
use super::subject_state::{StateWrite, write_state_in};
use super::{
    ActionStatus, Backend, CheckStatus, EvaluationOutcome, Store, StoreError, on_pool, parse_word,
    postgres, sqlite,
};
use crate::normalize::EventId;

/// Fires the throttle if its window has passed (or it never fired): returns a row then.
pub(super) const THROTTLE: &str = "
    INSERT INTO throttles (rule_id, throttle_key, fired_at_ms) VALUES ($1, $2, $3)
    ON CONFLICT (rule_id, throttle_key) DO UPDATE SET fired_at_ms = excluded.fired_at_ms
    WHERE throttles.fired_at_ms <= $4
    RETURNING rule_id";

pub(super) const INSERT_EVALUATIONS: &str = "INSERT INTO evaluations (id, event_id, rule_id, rule_version, outcome, error, error_line, actions, logs, duration_us, evaluated_at) ";

/// An evaluation as stored.
#[derive(Debug, Clone, Serialize)]
pub struct EvaluationRecord {
    pub id: String,
    pub event_id: String,
    pub rule_id: String,
    pub rule_version: String,
    pub outcome: EvaluationOutcome,
    pub error: Option<String>,
    pub error_line: Option<i64>,
    pub actions: Value,
    pub logs: Value,
    pub duration_us: i64,
    pub evaluated_at: DateTime<Utc>,
}

/// An evaluation to record with its event's completion.
#[derive(Debug, Clone)]
pub struct NewEvaluation {
    pub rule_id: String,
    pub rule_version: String,
    pub verdict: Verdict,
    /// The lines the rule's scripts logged, as a JSON array.
    pub logs: Value,
    pub duration_us: i64,
}

/// What an evaluation to record came to.
#[derive(Debug, Clone)]
pub enum Verdict {
    /// The rule fired with these actions (shown as `actions`, planned as `planned`), unless
    /// its throttle gate is closed: then it is recorded `throttled` and plans nothing.
    Fired {
        actions: Value,
        planned: Vec<NewAction>,
        throttle: Option<ThrottleGate>,
    },
    Failed {
        error: String,
        line: Option<i64>,
    },
    /// The rule matched and now waits for a follow-up event or its deadline: recorded
    /// `waiting` (with no actions), and `check` is armed for it.
    Waiting {
        check: NewCheck,
    },
}

/// One leased event's processing, to be written with its completion: its evaluations and
/// the other things its processing decided.
#[derive(Debug, Clone)]
pub struct Completion {
    pub event: EventId,
    pub evaluations: Vec<NewEvaluation>,
    pub effects: Effects,
    /// The id of the rule set it was evaluated against (`RuleSet::id`), if one was in force.
    pub rule_set: Option<std::sync::Arc<str>>,
}

impl Completion {
    /// An event's evaluations, with no other effects.
    pub fn new(event: EventId, evaluations: Vec<NewEvaluation>) -> Self {
        Self {
            event,
            evaluations,
            effects: Effects::default(),
            rule_set: None,
        }
    }
}

/// What an event's processing changes besides its evaluations, written in its completion's
/// transaction (and only if its lease is still held).
#[derive(Debug, Clone, Default)]
pub struct Effects {
    /// Subject state to set or remove, in order.
    pub state: Vec<StateWrite>,
    /// Checks this event resolves (satisfied, say), by id; only pending ones change, and
    /// `resolved_by` is this event.
    pub resolve_checks: Vec<(String, CheckStatus)>,
    /// Actions this event cancels, by id; only pending ones change (last error
    /// `cancelled by event <id>`).
    pub cancel_actions: Vec<String>,
}

/// The planned actions' rows, with their status and lease.
const INSERT_LEASED_ACTIONS: &str = "INSERT INTO actions (id, event_id, rule_id, action_index, kind, target, payload, next_attempt_ms, cancel_ref, cancel_types, created_at, updated_at, status, lease_owner, lease_until_ms) ";

/// Room in a dispatcher for actions handed to it as they are planned ([`Store::complete_leasing`]).
#[derive(Debug, Clone, Copy)]
pub struct ActionHandoff<'a> {
    pub lease: super::Lease<'a>,
    /// The kinds it delivers.
    pub kinds: &'a [&'a str],
    /// How many it takes at most.
    pub room: usize,
}

/// Longest throttle key stored as written; longer ones (or ones holding NUL) are stored as
/// their SHA-256, alike on both backends (PostgreSQL refuses index rows beyond ~2.7 KB).
const MAX_KEY_BYTES: usize = 256;

pub(super) fn stored_key(key: &str) -> std::borrow::Cow<'_, str> {
    if key.len() <= MAX_KEY_BYTES && !key.contains('\0') {
        return key.into();
    }
    use sha2::Digest;
    format!(
        "sha256:{}",
        hex::encode(sha2::Sha256::digest(key.as_bytes()))
    )
    .into()
}

/// At most one firing per `(rule, key)` per `window`, across every instance on the store.
#[derive(Debug, Clone)]
pub struct ThrottleGate {
    pub key: String,
    pub window: std::time::Duration,
}

impl Store {
    /// Marks leased events processed and records their evaluations, planned actions, armed
    /// checks and other effects ([`Effects`]), in one transaction: an event is processed
    /// exactly when everything its processing decided is stored. Events whose lease `owner`
    /// lost are left alone (another instance has them), effects included. Throttle gates are
    /// passed here, inside the transaction, so they hold across instances. Returns how many
    /// events were completed.
    pub async fn complete(
        &self,
        owner: &str,
        processed: &[Completion],
        now: DateTime<Utc>,
    ) -> Result<u64, StoreError> {
        Ok(self.complete_leasing(owner, processed, now, None).await?.0)
    }

    /// [`Store::complete`], with up to `handoff.room` of the actions it plans that are due now
    /// and of `handoff.kinds` written in flight, leased to `handoff.lease`'s owner: they are
    /// returned, for that dispatcher to deliver from memory without claiming them. Another
    /// instance (or this one) retakes them from the store if their lease expires first.
    pub async fn complete_leasing(
        &self,
        owner: &str,
        processed: &[Completion],
        now: DateTime<Utc>,
        handoff: Option<ActionHandoff<'_>>,
    ) -> Result<(u64, Vec<ActionRow>), StoreError> {
        // One statement per rule set the events were evaluated against (a round has one).
        let mut by_set: Vec<(Option<&str>, Vec<&str>)> = Vec::new();
        for c in processed {
            let set = c.rule_set.as_deref();
            match by_set.iter_mut().find(|(s, _)| *s == set) {
                Some((_, ids)) => ids.push(c.event.as_str()),
                None => by_set.push((set, vec![c.event.as_str()])),
            }
        }
        let by_set: Vec<(Option<&str>, String)> = by_set
            .into_iter()
            .map(|(set, ids)| (set, serde_json::to_string(&ids).expect("strings serialize")))
            .collect();
        let complete = match self.backend {
            Backend::Sqlite(_) => sqlite::COMPLETE,
            Backend::Postgres(_) => postgres::COMPLETE,
        };
        let now_ms = now.timestamp_millis();
        let _turn = self.write_turn().await;
        on_pool!(self, pool => {
            let mut tx = pool.begin().await?;
            let mut owned: HashSet<String> = HashSet::new();
            for (set, ids) in &by_set {
                let done: Vec<String> = sqlx::query_scalar(complete).bind(now).bind(owner).bind(ids).bind(*set).fetch_all(&mut *tx).await?;
                owned.extend(done);
            }
            let completed: Vec<&Completion> = processed.iter().filter(|c| owned.contains(c.event.as_str())).collect();
            let empty = Value::Array(Vec::new());
            let mut rows = Vec::new();
            for completion in &completed {
                let event_id = &completion.event;
                for evaluation in &completion.evaluations {
                    let (outcome, error, line, actions) = match &evaluation.verdict {
                        Verdict::Fired { actions, throttle, .. } => {
                            let fires = match throttle {
                                Some(gate) => {
                                    let cutoff = now_ms - i64::try_from(gate.window.as_millis()).unwrap_or(i64::MAX);
                                    sqlx::query(THROTTLE).bind(&evaluation.rule_id).bind(stored_key(&gate.key).as_ref()).bind(now_ms).bind(cutoff).fetch_optional(&mut *tx).await?.is_some()
                                }
                                None => true,
                            };
                            let outcome = if fires { EvaluationOutcome::Fired } else { EvaluationOutcome::Throttled };
                            (outcome, None, None, actions)
                        }
                        Verdict::Failed { error, line } => (EvaluationOutcome::Failed, Some(error.as_str()), *line, &empty),
                        Verdict::Waiting { .. } => (EvaluationOutcome::Waiting, None, None, &empty),
                    };
                    rows.push((event_id, evaluation, outcome, error, line, actions));
                }
            }
            for chunk in rows.chunks(1000) {
                let mut insert = QueryBuilder::new(INSERT_EVALUATIONS);
                insert.push_values(chunk, |mut row, (event_id, evaluation, outcome, error, line, actions)| {
                    row.push_bind(format!("evl_{}", uuid::Uuid::now_v7().simple()))
                        .push_bind(event_id.as_str())
                        .push_bind(evaluation.rule_id.as_str())
                        .push_bind(evaluation.rule_version.as_str())
                        .push_bind(outcome.as_str())
                        .push_bind(*error)
                        .push_bind(*line)
                        .push_bind(Json(*actions))
                        .push_bind(Json(&evaluation.logs))
                        .push_bind(evaluation.duration_us)
                        .push_bind(now);
                });
                insert.push(" ON CONFLICT (event_id, rule_id) DO NOTHING");
                insert.build().execute(&mut *tx).await?;
            }
            // The outbox rows of the actions planned by evaluations that fired.
            let planned: Vec<(&EventId, &str, usize, &NewAction)> = rows
                .iter()
                .filter(|r| r.2 == EvaluationOutcome::Fired)
                .flat_map(|(event_id, evaluation, ..)| {
                    let planned = match &evaluation.verdict {
                        Verdict::Fired { planned, .. } => planned.as_slice(),
                        Verdict::Failed { .. } | Verdict::Waiting { .. } => &[],
                    };
                    planned.iter().enumerate().map(move |(i, a)| (*event_id, evaluation.rule_id.as_str(), i, a))
                })
                .collect();
            // Which of them go straight to this instance's dispatcher, leased: due now, of a
            // kind it delivers, as many as it has room for.
            let mut room = handoff.as_ref().map_or(0, |h| h.room);
            let leased: Vec<bool> = planned
                .iter()
                .map(|(.., action)| {
                    let take = room > 0
                        && action.due.is_none_or(|due| due <= now)
                        && handoff.as_ref().is_some_and(|h| h.kinds.contains(&action.kind));
                    room -= usize::from(take);
                    take
                })
                .collect();
            let (lease_owner, lease_until) = handoff.as_ref().map_or((None, None), |h| (Some(h.lease.owner), Some(h.lease.until_ms)));
            let ids: Vec<String> = planned.iter().map(|_| format!("act_{}", uuid::Uuid::now_v7().simple())).collect();
            let mut inserted: HashSet<String> = HashSet::new();
            // 15 columns x 1000 rows stays under SQLite's 32766 bound parameters.
            let rows_of: Vec<usize> = (0..planned.len()).collect();
            for chunk in rows_of.chunks(1000) {
                let mut insert = QueryBuilder::new(INSERT_LEASED_ACTIONS);
                insert.push_values(chunk, |mut row, &i| {
                    let (event_id, rule_id, index, action) = planned[i];
                    let (status, owner, until) = if leased[i] { (ActionStatus::InFlight, lease_owner, lease_until) } else { (ActionStatus::Pending, None, None) };
                    row.push_bind(ids[i].as_str())
                        .push_bind(event_id.as_str())
                        .push_bind(rule_id)
                        .push_bind(index as i64)
                        .push_bind(action.kind)
                        .push_bind(action.target.as_str())
                        .push_bind(Json(&action.payload))
                        .push_bind(action.due.map_or(now_ms, |due| due.timestamp_millis()))
                        .push_bind(action.cancel.as_ref().map(|c| c.subject_ref.as_str()))
                        .push_bind(action.cancel.as_ref().map(|c| Json(&c.types)))
                        .push_bind(now)
                        .push_bind(now)
                        .push_bind(status.as_str())
                        .push_bind(owner)
                        .push_bind(until);
                });
                insert.push(" ON CONFLICT (event_id, rule_id, action_index) DO NOTHING RETURNING id");
                inserted.extend(insert.build_query_scalar::<String>().fetch_all(&mut *tx).await?);
            }
            let handed: Vec<ActionRow> = planned
                .iter()
                .enumerate()
                .filter(|(i, _)| leased[*i] && inserted.contains(&ids[*i]))
                .map(|(i, (event_id, rule_id, index, action))| ActionRow {
                    id: ids[i].clone(),
                    event_id: event_id.to_string(),
                    rule_id: (*rule_id).to_owned(),
                    action_index: *index as i64,
                    kind: action.kind.to_owned(),
                    target: action.target.clone(),
                    payload: action.payload.clone(),
                    attempts: 0,
                })
                .collect();
            // The checks armed by evaluations that wait.
            let armed: Vec<(&EventId, &str, &NewCheck)> = rows
                .iter()
                .filter_map(|(event_id, evaluation, ..)| match &evaluation.verdict {
                    Verdict::Waiting { check } => Some((*event_id, evaluation.rule_id.as_str(), check)),
                    _ => None,
                })
                .collect();
            for chunk in armed.chunks(1000) {
                let mut insert = QueryBuilder::new(INSERT_CHECKS);
                insert.push_values(chunk, |mut row, (event_id, rule_id, check)| {
                    row.push_bind(new_check_id())
                        .push_bind(*rule_id)
                        .push_bind(event_id.as_str())
                        .push_bind(check.subject_ref.as_str())
                        .push_bind(Json(&check.awaits))
                        .push_bind(check.deadline.timestamp_millis())
                        .push_bind(CheckStatus::Pending.as_str())
                        .push_bind(now)
                        .push_bind(now);
                });
                insert.push(" ON CONFLICT (event_id, rule_id) DO NOTHING");
                insert.build().execute(&mut *tx).await?;
            }
            // Each event's other effects, in the order the events were given.
            for completion in &completed {
                let effects = &completion.effects;
                let by = completion.event.as_str();
                write_state_in!(tx, &effects.state, now);
                for status in CheckStatus::ALL.iter().filter(|s| **s != CheckStatus::Pending) {
                    let ids: Vec<&str> = effects.resolve_checks.iter().filter(|(_, s)| s == status).map(|(id, _)| id.as_str()).collect();
                    if !ids.is_empty() {
                        // A deadline's evaluation settles a check the timer marked fired.
                        resolve_in!(tx, ids, status, by, now, " WHERE status IN ('pending', 'fired') AND id IN (");
                    }
                }
                if !effects.cancel_actions.is_empty() {
                    let reason = format!("cancelled by event {by}");
                    cancel_in!(tx, effects.cancel_actions, reason.as_str(), now);
                }
            }
            tx.commit().await?;
            for (.., action) in &planned {
                metrics::counter!("signalbox_actions_planned_total", "kind" => action.kind).increment(1);
            }
            for (_, evaluation, ..) in rows.iter().filter(|r| r.2 == EvaluationOutcome::Throttled) {
                metrics::counter!("signalbox_rule_throttled_total", "rule" => evaluation.rule_id.clone()).increment(1);
            }
            Ok((owned.len() as u64, handed))
        })
    }

    /// The evaluations recorded for an event, in rule order of evaluation.
    pub async fn evaluations_for_event(
        &self,
        event_id: &str,
    ) -> Result<Vec<EvaluationRecord>, StoreError> {
        self.evaluations_for_events(&[event_id]).await
    }

    /// The evaluations recorded for these events (at most 500 ids), in the order they were
    /// made: one statement for a page of events.
    pub async fn evaluations_for_events(
        &self,
        ids: &[&str],
    ) -> Result<Vec<EvaluationRecord>, StoreError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        on_pool!(self, pool => {
            let mut select = QueryBuilder::new("SELECT * FROM evaluations WHERE event_id IN (");
            let mut list = select.separated(", ");
            for id in ids.iter().take(super::IDS_PER_STATEMENT) {
                list.push_bind(*id);
            }
            select.push(") ORDER BY id");
            let rows = select.build().fetch_all(pool).await?;
            rows.iter().map(decode_evaluation).collect()
        })
    }

    /// Recorded evaluations, newest first: of one outcome (`failed`, say), one rule, since a
    /// time, older than the id `before` (the last of the previous page); at most
    /// `filter.limit` of them and about `max_bytes` of JSON.
    pub async fn list_evaluations(
        &self,
        filter: &EvaluationFilter,
        max_bytes: usize,
    ) -> Result<Page<EvaluationRecord>, StoreError> {
        let mut fill = PageFill::new(filter.limit, max_bytes, filter.before.clone());
        loop {
            let wanted = fill.wanted();
            let rows = on_pool!(self, pool => {
                let rows = sqlx::query(
                    "SELECT * FROM evaluations
                     WHERE ($1 IS NULL OR outcome = $1) AND ($2 IS NULL OR rule_id = $2)
                       AND ($3 IS NULL OR evaluated_at >= $3) AND ($4 IS NULL OR id < $4)
                     ORDER BY id DESC LIMIT $5",
                )
                .bind(filter.outcome.map(EvaluationOutcome::as_str))
                .bind(filter.rule.as_deref())
                .bind(filter.since)
                .bind(&fill.before)
                .bind(wanted as i64)
                .fetch_all(pool)
                .await?;
                rows.iter().map(decode_evaluation).collect::<Result<Vec<_>, StoreError>>()
            })?;
            let measure = |e: &EvaluationRecord| (json_len(e), e.id.clone());
            if let Some(page) = fill.take(rows, wanted, measure) {
                return Ok(page);
            }
        }
    }

    /// Per rule, how many evaluations failed since `since`, and when the last did.
    pub async fn failures_by_rule(
        &self,
        since: DateTime<Utc>,
    ) -> Result<Vec<RuleFailures>, StoreError> {
        on_pool!(self, pool => {
            let rows = sqlx::query(
                "SELECT rule_id, COUNT(*) AS failed, MAX(evaluated_at) AS last_failed_at FROM evaluations
                 WHERE outcome = 'failed' AND evaluated_at >= $1 GROUP BY rule_id ORDER BY rule_id",
            )
            .bind(since)
            .fetch_all(pool)
            .await?;
            rows.iter()
                .map(|row| {
                    Ok(RuleFailures {
                        rule_id: row.try_get("rule_id")?,
                        failed: row.try_get("failed")?,
                        last_failed_at: row.try_get("last_failed_at")?,
                    })
                })
                .collect()
        })
    }
}

impl Store {
    /// Per rule and outcome since `since`: how many evaluations, and the last one's time.
    pub async fn rule_stats(&self, since: DateTime<Utc>) -> Result<Vec<RuleStat>, StoreError> {
        on_pool!(self, pool => {
            let rows = sqlx::query(
                "SELECT rule_id, outcome, COUNT(*) AS n, MAX(evaluated_at) AS last_at FROM evaluations
                 WHERE evaluated_at >= $1 GROUP BY rule_id, outcome ORDER BY rule_id, outcome",
            )
            .bind(since)
            .fetch_all(pool)
            .await?;
            rows.iter()
                .map(|row| {
                    Ok(RuleStat {
                        rule_id: row.try_get("rule_id")?,
                        outcome: parse_word(row.try_get("outcome")?)?,
                        count: row.try_get("n")?,
                        last_at: row.try_get("last_at")?,
                    })
                })
                .collect()
        })
    }
}

impl Store {
    /// What was recorded for the processed (and failed) events received in `[first, last]`
    /// (both included): `(event, rule, outcome)`. For backtests, one read per page of events
    /// (by the retention index `events_finished`), instead of one per 500 ids.
    pub async fn outcomes_received_between(
        &self,
        first: DateTime<Utc>,
        last: DateTime<Utc>,
    ) -> Result<Vec<(String, String, EvaluationOutcome)>, StoreError> {
        on_pool!(self, pool => {
            let rows = sqlx::query(
                "SELECT ev.event_id, ev.rule_id, ev.outcome FROM events e
                 JOIN evaluations ev ON ev.event_id = e.id
                 WHERE e.state IN ('processed', 'failed') AND e.received_at >= $1 AND e.received_at <= $2",
            )
            .bind(first)
            .bind(last)
            .fetch_all(pool)
            .await?;
            rows.iter()
                .map(|row| {
                    Ok((
                        row.try_get("event_id")?,
                        row.try_get("rule_id")?,
                        parse_word(row.try_get("outcome")?)?,
                    ))
                })
                .collect()
        })
    }

    /// What was recorded for these events (at most 500): `(event, rule, outcome)`.
    pub async fn outcomes_of_events(
        &self,
        ids: &[&str],
    ) -> Result<Vec<(String, String, EvaluationOutcome)>, StoreError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        on_pool!(self, pool => {
            let mut select = QueryBuilder::new("SELECT event_id, rule_id, outcome FROM evaluations WHERE event_id IN (");
            let mut list = select.separated(", ");
            for id in ids.iter().take(500) {
                list.push_bind(*id);
            }
            select.push(")");
            let rows = select.build().fetch_all(pool).await?;
            rows.iter()
                .map(|row| {
                    Ok((
                        row.try_get("event_id")?,
                        row.try_get("rule_id")?,
                        parse_word(row.try_get("outcome")?)?,
                    ))
                })
                .collect()
        })
    }
}

/// How often a rule's evaluations came to one outcome in a window, and when last.
#[derive(Debug, Clone, Serialize)]
pub struct RuleStat {
    pub rule_id: String,
    pub outcome: EvaluationOutcome,
    pub count: i64,
    pub last_at: DateTime<Utc>,
}

/// Which evaluations `list_evaluations` returns.
#[derive(Debug, Clone, Default)]
pub struct EvaluationFilter {
    pub outcome: Option<EvaluationOutcome>,
    pub rule: Option<String>,
    pub since: Option<DateTime<Utc>>,
    pub before: Option<String>,
    pub limit: u32,
}

/// How often one rule failed.
#[derive(Debug, Clone, Serialize)]
pub struct RuleFailures {
    pub rule_id: String,
    pub failed: i64,
    pub last_failed_at: DateTime<Utc>,
}

fn decode_evaluation<R>(row: &R) -> Result<EvaluationRecord, StoreError>
where
    R: Row,
    for<'a> &'a str: sqlx::ColumnIndex<R>,
    String: for<'r> sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    Option<String>: for<'r> sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    Option<i64>: for<'r> sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    i64: for<'r> sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    DateTime<Utc>: for<'r> sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    Json<Value>: for<'r> sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
{
    Ok(EvaluationRecord {
        id: row.try_get("id")?,
        event_id: row.try_get("event_id")?,
        rule_id: row.try_get("rule_id")?,
        rule_version: row.try_get("rule_version")?,
        outcome: parse_word(row.try_get("outcome")?)?,
        error: row.try_get("error")?,
        error_line: row.try_get::<Option<i64>, _>("error_line")?,
        actions: row.try_get::<Json<Value>, _>("actions")?.0,
        logs: row.try_get::<Json<Value>, _>("logs")?.0,
        duration_us: row.try_get("duration_us")?,
        evaluated_at: row.try_get("evaluated_at")?,
    })
}
