//! What operators do with actions: list them by filter a page at a time, read one in full,
//! and put dead (or cancelled) ones back to be delivered, one or many at a time.

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;
use sqlx::types::Json;
use sqlx::{QueryBuilder, Row};

use super::outbox::{ActionSummary, decode_summary};
use super::page::{Page, PageFill, json_len};
use super::{ActionStatus, Backend, Store, StoreError, on_pool, postgres, sqlite};

/// Most actions one bulk retry puts back.
pub const MAX_RETRY: u32 = 1000;

const SUMMARY_COLUMNS: &str = "SELECT id, event_id, rule_id, kind, target, status, attempts, last_error, updated_at, next_attempt_ms FROM actions WHERE 1 = 1";

/// Which actions [`Store::find_actions`] returns.
#[derive(Debug, Clone, Default)]
pub struct ActionFilter {
    pub status: Option<ActionStatus>,
    pub rule: Option<String>,
    /// The event that planned them.
    pub event: Option<String>,
    pub kind: Option<String>,
    /// Part of what they talk to, without regard to case: the target (a host, `smtp`,
    /// `strategy:<platform>`, `emit`), a webhook's URL, an email's recipients.
    pub target: Option<String>,
    /// An action id: actions older than it (the last id of the previous page).
    pub before: Option<String>,
    pub limit: u32,
    /// Bytes of JSON after which no more actions are added to the page.
    pub max_bytes: usize,
}

/// One action in full: as listed, with its parameters and what cancels it.
#[derive(Debug, Clone, Serialize)]
pub struct ActionDetail {
    #[serde(flatten)]
    pub summary: ActionSummary,
    /// Its place in its rule's `actions:` (with the event and rule, the key it is planned
    /// once by).
    pub action_index: i64,
    pub created_at: DateTime<Utc>,
    /// The stored parameters, `{"version": "1", "action": {"type": ..., ...}}`.
    pub payload: Value,
    /// A later event about this subject (`claim:C-1`) of these types (empty: any) cancels it
    /// while it is pending.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cancel_on: Option<CancelRecord>,
}

#[derive(Debug, Clone, Serialize)]
pub struct CancelRecord {
    pub subject: String,
    pub types: Vec<String>,
}

/// Which dead actions [`Store::retry_dead_actions`] puts back.
#[derive(Debug, Clone, Default)]
pub struct RetryFilter {
    pub rule: Option<String>,
    pub event: Option<String>,
    /// Dead since after this time ...
    pub after: Option<DateTime<Utc>>,
    /// ... and before it (when they went dead: their last change).
    pub before: Option<DateTime<Utc>>,
    /// At most this many (and at most [`MAX_RETRY`]).
    pub limit: u32,
}

/// What a bulk retry did: the actions put back (oldest first), and whether more dead actions
/// match the filter.
#[derive(Debug, Clone, Serialize)]
pub struct Retried {
    pub ids: Vec<String>,
    pub more: bool,
}

/// `LIKE` pattern matching `text` anywhere, lowercase, with `\` escaping `%` and `_`.
fn contains_pattern(text: &str) -> String {
    let mut pattern = String::with_capacity(text.len() + 2);
    pattern.push('%');
    for c in text.to_lowercase().chars() {
        if matches!(c, '%' | '_' | '\\') {
            pattern.push('\\');
        }
        pattern.push(c);
    }
    pattern.push('%');
    pattern
}

impl Store {
    /// Actions newest first, by filter, older than `filter.before`: at most `filter.limit`,
    /// and no more once their JSON passes `filter.max_bytes` (a page holds at least one).
    /// A `target` filter reads each row's parameters: it is a scan, bounded by the page.
    pub async fn find_actions(
        &self,
        filter: &ActionFilter,
    ) -> Result<Page<ActionSummary>, StoreError> {
        let address = match self.backend {
            Backend::Sqlite(_) => sqlite::ACTION_ADDRESS,
            Backend::Postgres(_) => postgres::ACTION_ADDRESS,
        };
        let pattern = filter.target.as_deref().map(contains_pattern);
        let mut fill = PageFill::new(filter.limit, filter.max_bytes, filter.before.clone());
        loop {
            let wanted = fill.wanted();
            let rows = on_pool!(self, pool => {
                let mut select = QueryBuilder::new(SUMMARY_COLUMNS);
                if let Some(status) = filter.status {
                    select.push(" AND status = ").push_bind(status.as_str());
                }
                if let Some(rule) = &filter.rule {
                    select.push(" AND rule_id = ").push_bind(rule.as_str());
                }
                if let Some(event) = &filter.event {
                    select.push(" AND event_id = ").push_bind(event.as_str());
                }
                if let Some(kind) = &filter.kind {
                    select.push(" AND kind = ").push_bind(kind.as_str());
                }
                if let Some(pattern) = &pattern {
                    select
                        .push(" AND (LOWER(target) LIKE ")
                        .push_bind(pattern.as_str())
                        .push(" ESCAPE '\\' OR LOWER(")
                        .push(address)
                        .push(") LIKE ")
                        .push_bind(pattern.as_str())
                        .push(" ESCAPE '\\')");
                }
                if let Some(before) = &fill.before {
                    select.push(" AND id < ").push_bind(before.as_str());
                }
                select.push(" ORDER BY id DESC LIMIT ").push_bind(wanted as i64);
                let rows = select.build().fetch_all(pool).await?;
                rows.iter().map(decode_summary).collect::<Result<Vec<_>, StoreError>>()
            })?;
            let measure = |a: &ActionSummary| (json_len(a), a.id.clone());
            if let Some(page) = fill.take(rows, wanted, measure) {
                return Ok(page);
            }
        }
    }

    /// One action with its parameters.
    pub async fn action_detail(&self, id: &str) -> Result<Option<ActionDetail>, StoreError> {
        on_pool!(self, pool => {
            let row = sqlx::query(
                "SELECT id, event_id, rule_id, action_index, kind, target, payload, status, attempts, last_error,
                        created_at, updated_at, next_attempt_ms, cancel_ref, cancel_types
                 FROM actions WHERE id = $1",
            )
            .bind(id)
            .fetch_optional(pool)
            .await?;
            let Some(row) = row else { return Ok(None) };
            let cancel_ref: Option<String> = row.try_get("cancel_ref")?;
            let types: Option<Json<Vec<String>>> = row.try_get("cancel_types")?;
            Ok(Some(ActionDetail {
                summary: decode_summary(&row)?,
                action_index: row.try_get("action_index")?,
                created_at: row.try_get("created_at")?,
                payload: row.try_get::<Json<Value>, _>("payload")?.0,
                cancel_on: cancel_ref.map(|subject| CancelRecord {
                    subject,
                    types: types.map(|t| t.0).unwrap_or_default(),
                }),
            }))
        })
    }

    /// Puts one action back to be delivered now, with a fresh set of attempts and its id (its
    /// idempotency key) unchanged: a dead one or a pending one (then due now), and a cancelled
    /// one only if `cancelled`. Returns whether it changed.
    pub async fn retry_action(
        &self,
        id: &str,
        cancelled: bool,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let _turn = self.write_turn().await;
        on_pool!(self, pool => {
            let done = sqlx::query(
                "UPDATE actions SET status = 'pending', attempts = 0, next_attempt_ms = $1, lease_owner = NULL,
                        lease_until_ms = NULL, updated_at = $2,
                        last_error = CASE WHEN status = 'cancelled' THEN NULL ELSE last_error END
                 WHERE id = $3 AND (status IN ('dead', 'pending') OR ($4 AND status = 'cancelled'))",
            )
            .bind(now.timestamp_millis())
            .bind(now)
            .bind(id)
            .bind(cancelled)
            .execute(pool)
            .await?;
            Ok(done.rows_affected() == 1)
        })
    }

    /// Puts dead actions matching `filter` back to be delivered now, oldest first, at most
    /// `filter.limit` (and [`MAX_RETRY`]), each with a fresh set of attempts and its id
    /// unchanged. Cancelled actions are never among them.
    pub async fn retry_dead_actions(
        &self,
        filter: &RetryFilter,
        now: DateTime<Utc>,
    ) -> Result<Retried, StoreError> {
        let limit = filter.limit.clamp(1, MAX_RETRY) as usize;
        let _turn = self.write_turn().await;
        on_pool!(self, pool => {
            let mut select = QueryBuilder::new("SELECT id FROM actions WHERE status = 'dead'");
            if let Some(rule) = &filter.rule {
                select.push(" AND rule_id = ").push_bind(rule.clone());
            }
            if let Some(event) = &filter.event {
                select.push(" AND event_id = ").push_bind(event.clone());
            }
            if let Some(after) = filter.after {
                select.push(" AND updated_at > ").push_bind(after);
            }
            if let Some(before) = filter.before {
                select.push(" AND updated_at < ").push_bind(before);
            }
            select
                .push(" ORDER BY id LIMIT ")
                .push_bind(limit as i64 + 1);
            let mut tx = pool.begin().await?;
            let mut ids: Vec<String> = select.build_query_scalar().fetch_all(&mut *tx).await?;
            let more = ids.len() > limit;
            ids.truncate(limit);
            let mut retried = Vec::with_capacity(ids.len());
            for chunk in ids.chunks(super::IDS_PER_STATEMENT) {
                let mut update = QueryBuilder::new(
                    "UPDATE actions SET status = 'pending', attempts = 0, lease_owner = NULL, lease_until_ms = NULL, next_attempt_ms = ",
                );
                update
                    .push_bind(now.timestamp_millis())
                    .push(", updated_at = ")
                    .push_bind(now)
                    .push(" WHERE status = 'dead' AND id IN (");
                let mut list = update.separated(", ");
                for id in chunk {
                    list.push_bind(id.as_str());
                }
                update.push(") RETURNING id");
                retried.extend(update.build_query_scalar::<String>().fetch_all(&mut *tx).await?);
            }
            tx.commit().await?;
            retried.sort();
            Ok(Retried { ids: retried, more })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn target_patterns_match_the_text_anywhere_and_only_the_text() {
        assert_eq!(contains_pattern("CRM.Example"), "%crm.example%");
        assert_eq!(contains_pattern("50%_off\\"), "%50\\%\\_off\\\\%");
    }
}
