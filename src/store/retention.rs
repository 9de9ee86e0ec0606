//! Retention: how long each kind of stored row is kept (`retention:` in the config file), the
//! pruning job that removes what is past it, and the bounds on refused deliveries.
//!
//! The job runs on every instance ([`run`], started by `app`), on the engine's clock. Each pass
//! removes rows in batches of `batch_size`, one short transaction per batch, for at most
//! [`PASS_BUDGET`]; a pass that stops with more to do is followed by another a moment later,
//! so a backlog drains without holding the (SQLite) writer for long. On PostgreSQL each batch
//! takes its rows `FOR UPDATE SKIP LOCKED`, and every statement checks again what it removes,
//! so instances pruning at the same time skip each other's rows: doing it twice is harmless.
//!
//! What is never removed: an event still pending, an event with an action still pending or in
//! flight (nor that action, its attempts or the event's evaluations), and an event with a
//! pending check (the check needs its event at the deadline). Subject state goes once it has
//! expired, whatever the retentions say.

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Deserializer};
use sqlx::QueryBuilder;
use tokio::sync::watch;

use super::{Backend, Store, StoreError, on_pool, postgres, sqlite};
use crate::clock::SharedClock;

/// How long a pass may go on removing before it gives the store back for a while.
pub const PASS_BUDGET: Duration = Duration::from_secs(5);

/// When the first pass runs after start (or after `interval`, if that is shorter).
const FIRST_PASS: Duration = Duration::from_secs(60);

/// Pause between passes while a backlog drains.
const BACKLOG_PAUSE: Duration = Duration::from_secs(1);

/// How long stored rows are kept (`retention:`). A duration (`30d`, `12h`) or `off` (kept
/// forever). Ages count from when the row was written: a delivery's or event's receipt, an
/// evaluation's run, an action's last change, an attempt's start.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RetentionConfig {
    /// How often the pruning job looks for rows past their retention. Default 10m.
    #[serde(with = "humantime_serde")]
    pub interval: Duration,
    /// Rows removed per statement (one transaction each). Default 1000.
    pub batch_size: u32,
    /// Accepted deliveries (each request as it arrived, headers and body). Events keep their
    /// own copy of the payload: an event outliving its delivery loses only the link
    /// (`delivery_id`). Default 30d.
    #[serde(deserialize_with = "keep")]
    pub deliveries: Option<Duration>,
    /// Refused deliveries (answered 4xx: bad signature, malformed or invalid body). Default 7d.
    #[serde(deserialize_with = "keep")]
    pub rejected_deliveries: Option<Duration>,
    /// Processed and failed events, with their evaluations, actions, attempts and resolved
    /// checks, once none of their actions is pending or in flight and none of their checks is
    /// pending. Also the dedupe window: a redelivery of a removed event is a new event; and how
    /// long a resolved check is kept (from when it resolved). Default 180d.
    #[serde(deserialize_with = "keep")]
    pub events: Option<Duration>,
    /// Evaluations (with the rendered actions they planned), if they should go before their
    /// event. Default: with their event.
    #[serde(deserialize_with = "keep")]
    pub evaluations: Option<Duration>,
    /// Delivered, dead and cancelled actions (rendered parameters) with their attempts, if they
    /// should go before their event. Default: with their event.
    #[serde(deserialize_with = "keep")]
    pub actions: Option<Duration>,
    /// Attempts of delivered, dead and cancelled actions (the target's reply), if they should
    /// go before their action. Default: with their action.
    #[serde(deserialize_with = "keep")]
    pub attempts: Option<Duration>,
    /// What API tokens changed (`GET /v1/token-uses`): time, token, method, path, answer.
    /// Default 365d.
    #[serde(deserialize_with = "keep")]
    pub token_uses: Option<Duration>,
    /// What is kept of refused deliveries, and how many are stored.
    pub rejected: RejectedConfig,
}

impl Default for RetentionConfig {
    fn default() -> Self {
        const DAY: u64 = 86_400;
        Self {
            interval: Duration::from_secs(600),
            batch_size: 1000,
            deliveries: Some(Duration::from_secs(30 * DAY)),
            rejected_deliveries: Some(Duration::from_secs(7 * DAY)),
            events: Some(Duration::from_secs(180 * DAY)),
            evaluations: None,
            actions: None,
            attempts: None,
            token_uses: Some(Duration::from_secs(365 * DAY)),
            rejected: RejectedConfig::default(),
        }
    }
}

/// Refused deliveries (`retention.rejected`): stored so an operator can see why a sender is
/// refused, but bounded, since anyone who can reach the endpoint can send them.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RejectedConfig {
    /// Bytes of a refused delivery's body that are stored (its full size is recorded).
    /// Default 4096 (4 KiB).
    pub body_bytes: usize,
    /// Refused deliveries stored per client address (IPv6: per /64) per minute; further ones
    /// are answered as before but not stored, only counted
    /// (`signalbox_rejected_unstored_total`, one warning per address and minute). Default 60.
    pub per_address_per_minute: u32,
    /// Refused deliveries stored per minute from all addresses together. Default 120 (at
    /// most about 2.4 GB over the 7 days refused deliveries are kept, at 4 KiB each).
    pub per_minute: u32,
}

impl Default for RejectedConfig {
    fn default() -> Self {
        Self {
            body_bytes: 4096,
            per_address_per_minute: 60,
            per_minute: 120,
        }
    }
}

impl RetentionConfig {
    /// Settings that parse but cannot work, as `(key, message)`.
    pub fn problems(&self) -> Vec<(String, String)> {
        let mut problems = Vec::new();
        let positive = "must be greater than 0";
        if self.interval.is_zero() {
            problems.push(("retention.interval".into(), positive.into()));
        }
        if self.batch_size == 0 || self.batch_size > 10_000 {
            problems.push((
                "retention.batch_size".into(),
                "must be between 1 and 10000".into(),
            ));
        }
        problems
    }
}

/// A retention: a humantime duration greater than zero, or `off` (kept forever).
fn keep<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
    use serde::de::Error;
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Written {
        Text(String),
        Flag(bool),
    }
    let off = || D::Error::custom("expected a duration such as 30d, or off (kept forever)");
    match Written::deserialize(d)? {
        Written::Flag(false) => Ok(None),
        Written::Flag(true) => Err(off()),
        Written::Text(text) if text.trim() == "off" => Ok(None),
        Written::Text(text) => match humantime::parse_duration(text.trim()) {
            Ok(d) if d.is_zero() => Err(D::Error::custom(
                "0 would remove rows as soon as they are written: give a duration, or off",
            )),
            Ok(d) => Ok(Some(d)),
            Err(e) => Err(D::Error::custom(format!("{e}: {}", off()))),
        },
    }
}

/// The tables a pass removes from, as metrics and logs name them.
pub const TABLES: &[&str] = &[
    "deliveries",
    "rejected_deliveries",
    "events",
    "evaluations",
    "actions",
    "attempts",
    "token_uses",
    "checks",
    "subject_state",
];

/// What one pass removed.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Pruned {
    /// Rows removed per table (of [`TABLES`]; refused deliveries apart from accepted ones).
    pub removed: BTreeMap<&'static str, u64>,
    /// The pass stopped at its time budget with rows still past their retention.
    pub more: bool,
}

impl Pruned {
    pub fn total(&self) -> u64 {
        self.removed.values().sum()
    }

    fn add(&mut self, table: &'static str, n: u64) {
        if n > 0 {
            *self.removed.entry(table).or_default() += n;
        }
    }
}

/// `$head` + `(id, id, ...)` + `$tail`, executed in `$tx`: the rows it affected.
macro_rules! with_ids {
    ($tx:expr, $head:expr, $ids:expr, $tail:expr) => {{
        let mut q = QueryBuilder::new($head);
        q.push("(");
        let mut list = q.separated(", ");
        for id in $ids {
            list.push_bind(id.as_str());
        }
        q.push(")").push($tail);
        q.build().execute(&mut *$tx).await?.rows_affected()
    }};
}

/// Which rows one kind of batch takes.
#[derive(Debug, Clone, Copy)]
enum Step {
    /// Attempts of finished actions, by age.
    Attempts,
    /// Finished actions by age, with their attempts.
    Actions,
    /// Evaluations by age.
    Evaluations,
    /// Resolved checks by when they resolved.
    Checks,
    /// Finished events by age, with everything hanging off them.
    Events,
    /// Accepted deliveries by age; events pointing at them lose the link.
    Deliveries,
    /// Refused deliveries by age.
    Rejected,
}

impl Step {
    /// The ids of at most `$2` rows older than `$1`.
    fn select(self) -> &'static str {
        match self {
            Self::Attempts => {
                "SELECT t.id FROM attempts t WHERE t.started_at < $1
                 AND EXISTS (SELECT 1 FROM actions a WHERE a.id = t.action_id AND a.status IN ('delivered', 'dead', 'cancelled'))
                 LIMIT $2"
            }
            Self::Actions => {
                "SELECT id FROM actions WHERE status IN ('delivered', 'dead', 'cancelled') AND updated_at < $1 LIMIT $2"
            }
            Self::Evaluations => "SELECT id FROM evaluations WHERE evaluated_at < $1 LIMIT $2",
            Self::Checks => {
                "SELECT id FROM checks WHERE status <> 'pending' AND updated_at < $1 LIMIT $2"
            }
            Self::Events => {
                "SELECT e.id FROM events e WHERE e.state IN ('processed', 'failed') AND e.received_at < $1
                 AND NOT EXISTS (SELECT 1 FROM actions a WHERE a.event_id = e.id AND a.status IN ('pending', 'in_flight'))
                 AND NOT EXISTS (SELECT 1 FROM checks c WHERE c.event_id = e.id AND c.status = 'pending')
                 LIMIT $2"
            }
            Self::Deliveries => {
                "SELECT id FROM deliveries WHERE reason IS NULL AND received_at < $1 LIMIT $2"
            }
            Self::Rejected => {
                "SELECT id FROM deliveries WHERE reason IS NOT NULL AND received_at < $1 LIMIT $2"
            }
        }
    }
}

impl Store {
    /// Removes what is past `config`'s retentions at `now`, in batches, for at most `budget`
    /// (a batch started goes on to its end). Children go first, so one pass leaves nothing
    /// dangling.
    pub async fn prune(
        &self,
        config: &RetentionConfig,
        now: DateTime<Utc>,
        budget: Duration,
    ) -> Result<Pruned, StoreError> {
        let started = tokio::time::Instant::now();
        let mut pruned = Pruned::default();
        let steps = [
            (Step::Attempts, config.attempts),
            (Step::Actions, config.actions),
            (Step::Evaluations, config.evaluations),
            (Step::Checks, config.events),
            (Step::Events, config.events),
            (Step::Deliveries, config.deliveries),
            (Step::Rejected, config.rejected_deliveries),
        ];
        let limit = config.batch_size.max(1);
        for (step, keep) in steps {
            let Some(keep) = keep else { continue };
            let Some(cutoff) = chrono::Duration::from_std(keep)
                .ok()
                .and_then(|keep| now.checked_sub_signed(keep))
            else {
                continue;
            };
            loop {
                if started.elapsed() >= budget {
                    pruned.more = true;
                    return Ok(pruned);
                }
                let taken = self.prune_batch(step, cutoff, limit, &mut pruned).await?;
                if taken < u64::from(limit) {
                    break;
                }
            }
        }
        if let Some(cutoff) = config
            .token_uses
            .and_then(|keep| chrono::Duration::from_std(keep).ok())
            .and_then(|keep| now.checked_sub_signed(keep))
        {
            loop {
                if started.elapsed() >= budget {
                    pruned.more = true;
                    return Ok(pruned);
                }
                let removed = self.prune_token_uses(cutoff, limit).await?;
                pruned.add("token_uses", removed);
                if removed < u64::from(limit) {
                    break;
                }
            }
        }
        loop {
            if started.elapsed() >= budget {
                pruned.more = true;
                return Ok(pruned);
            }
            let removed = self.prune_subject_state(now, limit).await?;
            pruned.add("subject_state", removed);
            if removed < u64::from(limit) {
                break;
            }
        }
        Ok(pruned)
    }

    /// At most `limit` subject state entries that expired before `now` (they hang off
    /// nothing). The outer condition is checked again, so an entry written anew meanwhile
    /// stays.
    async fn prune_subject_state(&self, now: DateTime<Utc>, limit: u32) -> Result<u64, StoreError> {
        let lock = match self.backend {
            Backend::Sqlite(_) => sqlite::SKIP_LOCKED,
            Backend::Postgres(_) => postgres::SKIP_LOCKED,
        };
        let sql = format!(
            "DELETE FROM subject_state WHERE expires_ms < $1 AND (subject_ref, name) IN
               (SELECT subject_ref, name FROM subject_state WHERE expires_ms < $1 LIMIT $2{lock})"
        );
        let _turn = self.write_turn().await;
        on_pool!(self, pool => {
            let done = sqlx::query(sqlx::AssertSqlSafe(sql))
                .bind(now.timestamp_millis())
                .bind(i64::from(limit))
                .execute(pool)
                .await?;
            Ok(done.rows_affected())
        })
    }

    /// At most `limit` token uses older than `cutoff`, oldest first (they hang off nothing).
    async fn prune_token_uses(&self, cutoff: DateTime<Utc>, limit: u32) -> Result<u64, StoreError> {
        let _turn = self.write_turn().await;
        on_pool!(self, pool => {
            let done = sqlx::query(
                "DELETE FROM token_uses WHERE id IN (SELECT id FROM token_uses WHERE at < $1 ORDER BY at LIMIT $2)",
            )
            .bind(cutoff)
            .bind(i64::from(limit))
            .execute(pool)
            .await?;
            Ok(done.rows_affected())
        })
    }

    /// One batch of `step` in one transaction; returns how many rows it selected.
    async fn prune_batch(
        &self,
        step: Step,
        cutoff: DateTime<Utc>,
        limit: u32,
        pruned: &mut Pruned,
    ) -> Result<u64, StoreError> {
        let lock = match self.backend {
            Backend::Sqlite(_) => sqlite::SKIP_LOCKED,
            Backend::Postgres(_) => postgres::SKIP_LOCKED,
        };
        let _turn = self.write_turn().await;
        let counts: Vec<(&'static str, u64)> = on_pool!(self, pool => {
            let mut tx = pool.begin().await?;
            let mut select = QueryBuilder::new(step.select());
            select.push(lock);
            let ids: Vec<String> = select
                .build_query_scalar()
                .bind(cutoff)
                .bind(i64::from(limit))
                .fetch_all(&mut *tx)
                .await?;
            let mut counts = vec![("selected", ids.len() as u64)];
            if !ids.is_empty() {
                match step {
                    Step::Attempts => {
                        counts.push(("attempts", with_ids!(tx, "DELETE FROM attempts WHERE id IN ", &ids, "")));
                    }
                    Step::Actions => {
                        counts.push(("attempts", with_ids!(tx, "DELETE FROM attempts WHERE action_id IN ", &ids,
                            " AND action_id IN (SELECT id FROM actions WHERE status IN ('delivered', 'dead', 'cancelled'))")));
                        counts.push(("actions", with_ids!(tx, "DELETE FROM actions WHERE id IN ", &ids,
                            " AND status IN ('delivered', 'dead', 'cancelled') AND NOT EXISTS (SELECT 1 FROM attempts t WHERE t.action_id = actions.id)")));
                    }
                    Step::Evaluations => {
                        counts.push(("evaluations", with_ids!(tx, "DELETE FROM evaluations WHERE id IN ", &ids, "")));
                    }
                    Step::Checks => {
                        counts.push(("checks", with_ids!(tx, "DELETE FROM checks WHERE id IN ", &ids, " AND status <> 'pending'")));
                    }
                    Step::Events => {
                        // An action put back to pending meanwhile keeps itself and its event.
                        counts.push(("attempts", with_ids!(tx,
                            "DELETE FROM attempts WHERE action_id IN (SELECT id FROM actions WHERE status IN ('delivered', 'dead', 'cancelled') AND event_id IN ",
                            &ids, ")")));
                        counts.push(("actions", with_ids!(tx,
                            "DELETE FROM actions WHERE status IN ('delivered', 'dead', 'cancelled') AND NOT EXISTS (SELECT 1 FROM attempts t WHERE t.action_id = actions.id) AND event_id IN ",
                            &ids, "")));
                        // Resolved checks go with the event that armed them; a check armed
                        // meanwhile (the event retried) keeps it.
                        counts.push(("checks", with_ids!(tx, "DELETE FROM checks WHERE status <> 'pending' AND event_id IN ", &ids, "")));
                        let orphan = " AND NOT EXISTS (SELECT 1 FROM actions a WHERE a.event_id = evaluations.event_id)";
                        counts.push(("evaluations", with_ids!(tx, "DELETE FROM evaluations WHERE event_id IN ", &ids, orphan)));
                        counts.push(("events", with_ids!(tx, "DELETE FROM events WHERE id IN ", &ids,
                            " AND state IN ('processed', 'failed') AND NOT EXISTS (SELECT 1 FROM actions a WHERE a.event_id = events.id)
                              AND NOT EXISTS (SELECT 1 FROM checks c WHERE c.event_id = events.id)")));
                    }
                    Step::Deliveries => {
                        with_ids!(tx, "UPDATE events SET delivery_id = NULL WHERE delivery_id IN ", &ids, "");
                        counts.push(("deliveries", with_ids!(tx, "DELETE FROM deliveries WHERE id IN ", &ids, " AND reason IS NULL")));
                    }
                    Step::Rejected => {
                        counts.push(("rejected_deliveries", with_ids!(tx, "DELETE FROM deliveries WHERE id IN ", &ids, " AND reason IS NOT NULL")));
                    }
                }
            }
            tx.commit().await?;
            Ok::<_, StoreError>(counts)
        })?;
        let mut selected = 0;
        for (table, n) in counts {
            if table == "selected" {
                selected = n;
            } else {
                pruned.add(table, n);
            }
        }
        Ok(selected)
    }
}

/// The pruning job: a pass a minute after start and every `interval` after that (a moment
/// after a pass that stopped at its budget), until `shutdown`. Counts what it removed in
/// `signalbox_retention_removed_total{table}` and logs one line per pass that removed anything.
pub async fn run(
    store: Store,
    config: RetentionConfig,
    clock: SharedClock,
    mut shutdown: watch::Receiver<bool>,
) {
    // The first pass comes soon after start, not in the start's rush.
    let mut wait = config.interval.min(FIRST_PASS);
    loop {
        tokio::select! {
            () = tokio::time::sleep(wait) => {}
            _ = shutdown.wait_for(|stop| *stop) => return,
        }
        wait = config.interval;
        // Stopping drops a batch in hand: its transaction rolls back, nothing half done.
        let pass = tokio::select! {
            pass = store.prune(&config, clock.now(), PASS_BUDGET) => pass,
            _ = shutdown.wait_for(|stop| *stop) => return,
        };
        match pass {
            Ok(pruned) => {
                record(&pruned);
                if pruned.more {
                    wait = BACKLOG_PAUSE;
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "retention pass failed; trying again at the next one")
            }
        }
    }
}

/// Counts a pass in the metrics and, if it removed anything, in one log line (counts only).
pub fn record(pruned: &Pruned) {
    for (table, n) in &pruned.removed {
        metrics::counter!("signalbox_retention_removed_total", "table" => *table).increment(*n);
    }
    if pruned.total() > 0 {
        let n = |table| pruned.removed.get(table).copied().unwrap_or(0);
        tracing::info!(
            deliveries = n("deliveries"),
            rejected_deliveries = n("rejected_deliveries"),
            events = n("events"),
            evaluations = n("evaluations"),
            actions = n("actions"),
            attempts = n("attempts"),
            token_uses = n("token_uses"),
            checks = n("checks"),
            subject_state = n("subject_state"),
            more = pruned.more,
            "removed rows past their retention"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(yaml: &str) -> Result<RetentionConfig, String> {
        serde_yaml::from_str(yaml).map_err(|e| e.to_string())
    }

    #[test]
    fn retentions_are_durations_or_off_and_default_when_absent() {
        let config = parse("deliveries: 12h\nevents: off\nactions: 30d\n").unwrap();
        assert_eq!(config.deliveries, Some(Duration::from_secs(12 * 3600)));
        assert_eq!(config.events, None, "off keeps forever");
        assert_eq!(config.actions, Some(Duration::from_secs(30 * 86_400)));
        assert_eq!(
            config.rejected_deliveries,
            Some(Duration::from_secs(7 * 86_400)),
            "absent keys keep their defaults"
        );
        assert_eq!(config.evaluations, None, "with their event by default");
        let err = parse("events: 0s\n").unwrap_err();
        assert!(err.contains("0 would remove rows"), "{err}");
        let err = parse("events: soon\n").unwrap_err();
        assert!(err.contains("or off"), "{err}");
        assert!(parse("event: 1d\n").unwrap_err().contains("unknown field"));
        assert!(
            RetentionConfig {
                batch_size: 0,
                ..RetentionConfig::default()
            }
            .problems()
            .iter()
            .any(|(key, _)| key == "retention.batch_size")
        );
    }

    #[test]
    fn a_pass_is_counted_per_table_in_the_metrics() {
        crate::metrics::handle();
        let pruned = Pruned {
            removed: [("events", 2), ("rejected_deliveries", 3)]
                .into_iter()
                .collect(),
            more: false,
        };
        record(&pruned);
        let text = crate::metrics::render();
        for table in ["events", "rejected_deliveries"] {
            let line = format!("signalbox_retention_removed_total{{table=\"{table}\"}}");
            assert!(text.contains(&line), "{line} in {text}");
        }
    }
}
