//! Subject state: named values rules keep about a subject (`claim:C-1`), each until it expires,
//! written with the completion of the event whose processing set them.

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;
use sqlx::Row;
use sqlx::types::Json;

use super::{Store, StoreError, from_millis, on_pool};

/// Entries [`Store::subject_state`] returns at most per subject.
pub const MAX_STATE_PER_SUBJECT: u32 = 100;

/// Writes one value, replacing the one of the same subject and name.
pub(super) const UPSERT_STATE: &str = "
    INSERT INTO subject_state (subject_ref, name, value, expires_ms, rule_id, updated_at) VALUES ($1, $2, $3, $4, $5, $6)
    ON CONFLICT (subject_ref, name) DO UPDATE SET value = excluded.value, expires_ms = excluded.expires_ms,
        rule_id = excluded.rule_id, updated_at = excluded.updated_at";

pub(super) const REMOVE_STATE: &str =
    "DELETE FROM subject_state WHERE subject_ref = $1 AND name = $2";

/// A value to set (or remove) with an event's completion.
#[derive(Debug, Clone, PartialEq)]
pub struct StateWrite {
    /// `claim:C-1`.
    pub subject_ref: String,
    pub name: String,
    /// `None` removes it.
    pub value: Option<Value>,
    /// When it stops being seen (and is pruned); `None`: never.
    pub expires_at: Option<DateTime<Utc>>,
    /// The rule that sets it.
    pub rule_id: String,
}

/// A value kept about a subject.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StateEntry {
    pub subject_ref: String,
    pub name: String,
    pub value: Value,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<DateTime<Utc>>,
    /// The rule that set it last.
    pub rule_id: String,
}

/// Writes `$writes` (`&[StateWrite]`) in `$tx`, in order (the last write of a name wins).
macro_rules! write_state_in {
    ($tx:expr, $writes:expr, $now:expr) => {{
        for write in $writes {
            match &write.value {
                Some(value) => {
                    ::sqlx::query($crate::store::subject_state::UPSERT_STATE)
                        .bind(write.subject_ref.as_str())
                        .bind(write.name.as_str())
                        .bind(::sqlx::types::Json(value))
                        .bind(write.expires_at.map(|t| t.timestamp_millis()))
                        .bind(write.rule_id.as_str())
                        .bind($now)
                        .execute(&mut *$tx)
                        .await?;
                }
                None => {
                    ::sqlx::query($crate::store::subject_state::REMOVE_STATE)
                        .bind(write.subject_ref.as_str())
                        .bind(write.name.as_str())
                        .execute(&mut *$tx)
                        .await?;
                }
            }
        }
    }};
}
pub(super) use write_state_in;

impl Store {
    /// The unexpired entries (at `now`) of these subjects, by subject in the order given and
    /// by name: at most [`MAX_STATE_PER_SUBJECT`] per subject.
    pub async fn subject_state(
        &self,
        refs: &[String],
        now: DateTime<Utc>,
    ) -> Result<Vec<StateEntry>, StoreError> {
        let mut seen = std::collections::HashSet::new();
        let refs: Vec<&str> = refs
            .iter()
            .map(String::as_str)
            .filter(|r| seen.insert(*r))
            .collect();
        if refs.is_empty() {
            return Ok(Vec::new());
        }
        on_pool!(self, pool => {
            let mut conn = pool.acquire().await?;
            let mut entries = Vec::new();
            for subject_ref in refs {
                let rows = sqlx::query(
                    "SELECT subject_ref, name, value, expires_ms, rule_id FROM subject_state
                     WHERE subject_ref = $1 AND (expires_ms IS NULL OR expires_ms > $2)
                     ORDER BY name LIMIT $3",
                )
                .bind(subject_ref)
                .bind(now.timestamp_millis())
                .bind(i64::from(MAX_STATE_PER_SUBJECT))
                .fetch_all(&mut *conn)
                .await?;
                for row in &rows {
                    let name: String = row.try_get("name")?;
                    let expires_at = row
                        .try_get::<Option<i64>, _>("expires_ms")?
                        .map(|ms| from_millis(ms, &format!("state {subject_ref} {name}")))
                        .transpose()?;
                    entries.push(StateEntry {
                        subject_ref: row.try_get("subject_ref")?,
                        value: row.try_get::<Json<Value>, _>("value")?.0,
                        expires_at,
                        rule_id: row.try_get("rule_id")?,
                        name,
                    });
                }
            }
            Ok(entries)
        })
    }
}
