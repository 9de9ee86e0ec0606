//! Checks: "A not followed by B" rules. An event of type A arms a check for its rule, written
//! with the event's completion; a later event of an awaited type about the same subject
//! satisfies it; at its deadline, if still pending, the rule fires. Each resolves once.

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::types::Json;
use sqlx::{QueryBuilder, Row};

use super::{
    Backend, CheckStatus, IDS_PER_STATEMENT, MAX_LIST, Store, StoreError, from_millis, on_pool,
    parse_word, postgres, sqlite,
};

pub(super) const INSERT_CHECKS: &str = "INSERT INTO checks (id, rule_id, event_id, subject_ref, awaits, deadline_ms, status, created_at, updated_at) ";

/// A check to arm with the evaluation that matched (see [`super::Verdict::Waiting`]).
#[derive(Debug, Clone, PartialEq)]
pub struct NewCheck {
    /// The subject the follow-up must be about: `claim:C-1`.
    pub subject_ref: String,
    /// Event types any one of which satisfies the check.
    pub awaits: Vec<String>,
    /// When, with no awaited event, the rule fires.
    pub deadline: DateTime<Utc>,
}

/// A check as stored.
#[derive(Debug, Clone, Serialize)]
pub struct CheckRecord {
    /// `chk_<uuidv7>`.
    pub id: String,
    pub rule_id: String,
    /// The event that armed it.
    pub event_id: String,
    pub subject_ref: String,
    pub awaits: Vec<String>,
    pub deadline: DateTime<Utc>,
    pub status: CheckStatus,
    /// The event that satisfied it, the deadline's event, or who cancelled it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resolved_by: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// Moves the listed checks (`&[impl AsRef<str>]`) that are still pending to `$status`, in
/// `$tx`: the number that changed.
macro_rules! resolve_in {
    ($tx:expr, $ids:expr, $status:expr, $by:expr, $now:expr) => {{
        $crate::store::checks::resolve_in!(
            $tx,
            $ids,
            $status,
            $by,
            $now,
            " WHERE status = 'pending' AND id IN ("
        )
    }};
    ($tx:expr, $ids:expr, $status:expr, $by:expr, $now:expr, $from:expr) => {{
        let mut changed = 0_u64;
        for chunk in $ids.chunks($crate::store::IDS_PER_STATEMENT) {
            let mut update = ::sqlx::QueryBuilder::new("UPDATE checks SET status = ");
            update
                .push_bind($status.as_str())
                .push(", resolved_by = ")
                .push_bind($by)
                .push(", updated_at = ")
                .push_bind($now)
                .push($from);
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
pub(super) use resolve_in;

impl Store {
    /// Pending checks about any of `refs` (a subject's references; the first 500 count) that
    /// await `event_type`, oldest first, at most `limit` (and at most 1000).
    pub async fn pending_checks_for(
        &self,
        refs: &[String],
        event_type: &str,
        limit: u32,
    ) -> Result<Vec<CheckRecord>, StoreError> {
        let limit = limit.min(MAX_LIST);
        if refs.is_empty() || limit == 0 {
            return Ok(Vec::new());
        }
        let (has, has_end) = match self.backend {
            Backend::Sqlite(_) => sqlite::AWAITS_HAS,
            Backend::Postgres(_) => postgres::AWAITS_HAS,
        };
        on_pool!(self, pool => {
            let mut select = QueryBuilder::new("SELECT * FROM checks WHERE status = 'pending' AND subject_ref IN (");
            let mut list = select.separated(", ");
            for r in refs.iter().take(IDS_PER_STATEMENT) {
                list.push_bind(r.as_str());
            }
            select.push(") AND ").push(has).push_bind(event_type).push(has_end);
            select.push(" ORDER BY id LIMIT ").push_bind(i64::from(limit));
            let rows = select.build().fetch_all(pool).await?;
            rows.iter().map(decode_check).collect()
        })
    }

    /// The checks these events armed (at most 500 ids), any status.
    pub async fn checks_of_events(&self, ids: &[&str]) -> Result<Vec<CheckRecord>, StoreError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        on_pool!(self, pool => {
            let mut select = QueryBuilder::new("SELECT * FROM checks WHERE event_id IN (");
            let mut list = select.separated(", ");
            for id in ids.iter().take(IDS_PER_STATEMENT) {
                list.push_bind(*id);
            }
            select.push(")");
            let rows = select.build().fetch_all(pool).await?;
            rows.iter().map(decode_check).collect()
        })
    }

    /// Pending checks whose deadline is at or before `now`, earliest deadline first, at most
    /// `limit` (and at most 1000).
    pub async fn due_checks(
        &self,
        now: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<CheckRecord>, StoreError> {
        on_pool!(self, pool => {
            let rows = sqlx::query(
                "SELECT * FROM checks WHERE status = 'pending' AND deadline_ms <= $1 ORDER BY deadline_ms, id LIMIT $2",
            )
            .bind(now.timestamp_millis())
            .bind(i64::from(limit.min(MAX_LIST)))
            .fetch_all(pool)
            .await?;
            rows.iter().map(decode_check).collect()
        })
    }

    /// Resolves the listed checks as `status` (satisfied, fired or cancelled), `resolved_by`
    /// an event id or who cancelled them. Only checks still pending change, so a check
    /// resolves once however many instances try: returns how many changed. `Pending` is
    /// refused ([`StoreError::Invalid`]).
    pub async fn resolve_checks(
        &self,
        ids: &[&str],
        status: CheckStatus,
        resolved_by: &str,
        now: DateTime<Utc>,
    ) -> Result<u64, StoreError> {
        if status == CheckStatus::Pending {
            return Err(StoreError::Invalid(
                "a check is resolved as satisfied, fired or cancelled, not pending".into(),
            ));
        }
        if ids.is_empty() {
            return Ok(0);
        }
        let _turn = self.write_turn().await;
        on_pool!(self, pool => {
            let mut tx = pool.begin().await?;
            let changed = resolve_in!(tx, ids, status, resolved_by, now);
            tx.commit().await?;
            Ok(changed)
        })
    }

    /// Checks, newest first, optionally in one status and of one rule: at most `limit` (and
    /// at most 1000).
    pub async fn list_checks(
        &self,
        status: Option<CheckStatus>,
        rule: Option<&str>,
        limit: u32,
    ) -> Result<Vec<CheckRecord>, StoreError> {
        self.list_checks_before(status, rule, None, limit).await
    }

    /// As [`Store::list_checks`], of the checks older than check `before` (a page's cursor).
    pub async fn list_checks_before(
        &self,
        status: Option<CheckStatus>,
        rule: Option<&str>,
        before: Option<&str>,
        limit: u32,
    ) -> Result<Vec<CheckRecord>, StoreError> {
        on_pool!(self, pool => {
            let rows = sqlx::query(
                "SELECT * FROM checks WHERE ($1 IS NULL OR status = $1) AND ($2 IS NULL OR rule_id = $2)
                   AND ($4 IS NULL OR id < $4)
                 ORDER BY id DESC LIMIT $3",
            )
            .bind(status.map(CheckStatus::as_str))
            .bind(rule)
            .bind(i64::from(limit.min(MAX_LIST)))
            .bind(before)
            .fetch_all(pool)
            .await?;
            rows.iter().map(decode_check).collect()
        })
    }

    pub async fn get_check(&self, id: &str) -> Result<Option<CheckRecord>, StoreError> {
        on_pool!(self, pool => {
            let row = sqlx::query("SELECT * FROM checks WHERE id = $1").bind(id).fetch_optional(pool).await?;
            row.as_ref().map(decode_check).transpose()
        })
    }
}

/// A new check's id: `chk_<uuidv7>`.
pub(super) fn new_check_id() -> String {
    format!("chk_{}", uuid::Uuid::now_v7().simple())
}

fn decode_check<R>(row: &R) -> Result<CheckRecord, StoreError>
where
    R: Row,
    for<'a> &'a str: sqlx::ColumnIndex<R>,
    String: for<'r> sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    Option<String>: for<'r> sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    i64: for<'r> sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    DateTime<Utc>: for<'r> sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    Json<Vec<String>>: for<'r> sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
{
    let id: String = row.try_get("id")?;
    Ok(CheckRecord {
        rule_id: row.try_get("rule_id")?,
        event_id: row.try_get("event_id")?,
        subject_ref: row.try_get("subject_ref")?,
        awaits: row.try_get::<Json<Vec<String>>, _>("awaits")?.0,
        deadline: from_millis(row.try_get("deadline_ms")?, &format!("check {id} deadline"))?,
        status: parse_word(row.try_get("status")?)?,
        resolved_by: row.try_get("resolved_by")?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
        id,
    })
}
