//! Schedules: where each scheduled rule is, so that a restart (or another instance) neither
//! repeats a tick nor skips one.

use chrono::{DateTime, Utc};
use sqlx::Row;

use super::{Store, StoreError, from_millis, on_pool};

/// Keeps the row unless the expression changed or the tick moves forwards: two instances
/// racing, the slower one's earlier tick does not win.
const SET_SCHEDULE: &str = "
    INSERT INTO schedules (rule_id, expression, last_tick_ms, updated_at) VALUES ($1, $2, $3, $4)
    ON CONFLICT (rule_id) DO UPDATE SET expression = excluded.expression,
        last_tick_ms = excluded.last_tick_ms, updated_at = excluded.updated_at
    WHERE schedules.expression <> excluded.expression OR schedules.last_tick_ms < excluded.last_tick_ms";

impl Store {
    /// The schedule a rule last ran under, as written, and the last tick it ran for; `None`
    /// if it never ran.
    pub async fn schedule_state(
        &self,
        rule_id: &str,
    ) -> Result<Option<(String, DateTime<Utc>)>, StoreError> {
        on_pool!(self, pool => {
            let row = sqlx::query("SELECT expression, last_tick_ms FROM schedules WHERE rule_id = $1")
                .bind(rule_id)
                .fetch_optional(pool)
                .await?;
            row.map(|row| {
                let expression: String = row.try_get("expression")?;
                let tick = from_millis(row.try_get("last_tick_ms")?, &format!("schedule of {rule_id}"))?;
                Ok((expression, tick))
            })
            .transpose()
        })
    }

    /// Records that `rule_id` ran for the tick `last_tick` of `expression`. Never moves the
    /// tick backwards for the same expression (two instances racing); a different expression
    /// replaces the row (a changed schedule starts counting anew).
    pub async fn set_schedule_state(
        &self,
        rule_id: &str,
        expression: &str,
        last_tick: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let _turn = self.write_turn().await;
        on_pool!(self, pool => {
            sqlx::query(SET_SCHEDULE)
                .bind(rule_id)
                .bind(expression)
                .bind(last_tick.timestamp_millis())
                .bind(now)
                .execute(pool)
                .await?;
            Ok(())
        })
    }
}
