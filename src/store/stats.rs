//! Counts per hour for the console's overview: events received (processed or parked),
//! evaluations recorded (what rules did: fired, throttled, waiting, failed) and delivery
//! attempts. Each hour is one range count on a time index (`events_finished`,
//! `evaluations_evaluated`, `attempts_started`), so the cost follows the hours asked for and
//! the rows in them, never the size of the tables.

use chrono::{DateTime, Duration, Utc};
use serde::Serialize;
use sqlx::{QueryBuilder, Row};

use super::{Store, StoreError, on_pool};

/// The most hours one call counts (a week): SQLite takes at most 500 terms in one compound
/// select.
pub const MAX_HOURS: u32 = 168;

/// One hour's counts, from `start` (inclusive) to an hour later.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HourCounts {
    pub start: DateTime<Utc>,
    /// Events received in the hour that are processed or parked (pending ones are not yet
    /// counted).
    pub events: i64,
    /// Evaluations recorded in the hour (a rule fired, was throttled, waits, or failed).
    pub evaluations: i64,
    /// Delivery attempts started in the hour.
    pub attempts: i64,
}

/// What each series counts: its table, time column, and the condition its index needs.
const SERIES: [(&str, &str, &str); 3] = [
    (
        "events",
        "received_at",
        "state IN ('processed', 'failed') AND ",
    ),
    ("evaluations", "evaluated_at", ""),
    ("attempts", "started_at", ""),
];

impl Store {
    /// Counts for the `hours` hours from `from` (at most [`MAX_HOURS`]), oldest first.
    pub async fn hourly_counts(
        &self,
        from: DateTime<Utc>,
        hours: u32,
    ) -> Result<Vec<HourCounts>, StoreError> {
        let hours = hours.clamp(1, MAX_HOURS);
        let mut counts: Vec<HourCounts> = (0..hours)
            .map(|h| HourCounts {
                start: from + Duration::hours(i64::from(h)),
                events: 0,
                evaluations: 0,
                attempts: 0,
            })
            .collect();
        for (series, (table, column, condition)) in SERIES.iter().enumerate() {
            on_pool!(self, pool => {
                let mut select = QueryBuilder::new("");
                for (h, hour) in counts.iter().enumerate() {
                    if h > 0 {
                        select.push(" UNION ALL ");
                    }
                    select.push(format!(
                        "SELECT CAST({h} AS BIGINT) AS h, COUNT(*) AS n FROM {table} WHERE {condition}{column} >= "
                    ));
                    select.push_bind(hour.start);
                    select.push(format!(" AND {column} < "));
                    select.push_bind(hour.start + Duration::hours(1));
                }
                let rows = select.build().fetch_all(pool).await?;
                for row in &rows {
                    let h: i64 = row.try_get("h")?;
                    let n: i64 = row.try_get("n")?;
                    let Some(hour) = usize::try_from(h).ok().and_then(|h| counts.get_mut(h)) else {
                        continue;
                    };
                    match series {
                        0 => hour.events = n,
                        1 => hour.evaluations = n,
                        _ => hour.attempts = n,
                    }
                }
            });
        }
        Ok(counts)
    }
}

/// What waits or was set aside now: the outbox, dead actions, parked events. Each is a count
/// on a partial index (`actions_pending`, `actions_dead`, `events_failed`, `events_pending`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct QueueCounts {
    /// Actions waiting for their time (first attempt or retry), and the oldest due one's time.
    pub outbox_pending: i64,
    pub outbox_oldest_due_at: Option<DateTime<Utc>>,
    /// Actions out of attempts or failed for good (`POST /v1/actions/{id}/retry` puts one back).
    pub dead_actions: i64,
    /// Events whose processing failed on every attempt (`POST /v1/events/{id}/retry`).
    pub parked_events: i64,
    /// Events not yet processed.
    pub pending_events: i64,
}

impl Store {
    pub async fn queue_counts(&self, now: DateTime<Utc>) -> Result<QueueCounts, StoreError> {
        let (outbox_pending, outbox_oldest_due_at) = self.outbox_depth(now).await?;
        on_pool!(self, pool => {
            let row = sqlx::query(
                "SELECT (SELECT COUNT(*) FROM actions WHERE status = 'dead') AS dead,
                        (SELECT COUNT(*) FROM events WHERE state = 'failed') AS parked,
                        (SELECT COUNT(*) FROM events WHERE state = 'pending') AS pending",
            )
            .fetch_one(pool)
            .await?;
            Ok(QueueCounts {
                outbox_pending,
                outbox_oldest_due_at,
                dead_actions: row.try_get("dead")?,
                parked_events: row.try_get("parked")?,
                pending_events: row.try_get("pending")?,
            })
        })
    }
}
