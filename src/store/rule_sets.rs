//! Rule sets that went into force, kept so that a start with broken rule files can run the
//! last good one.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use sqlx::Row;
use sqlx::types::Json;

use super::{Store, StoreError, on_pool};

/// A rule set as it went into force.
#[derive(Debug, Clone)]
pub struct StoredRuleSet {
    pub id: String,
    /// Path -> text of each rule file.
    pub files: BTreeMap<String, String>,
    pub loaded_at: DateTime<Utc>,
    pub origin: String,
}

impl Store {
    /// Records that `set` went into force (again, if it is known: its time moves on).
    pub async fn save_rule_set(&self, set: &StoredRuleSet) -> Result<(), StoreError> {
        let _turn = self.write_turn().await;
        on_pool!(self, pool => {
            sqlx::query(
                "INSERT INTO rule_sets (id, files, loaded_at, origin) VALUES ($1, $2, $3, $4)
                 ON CONFLICT (id) DO UPDATE SET loaded_at = excluded.loaded_at, origin = excluded.origin",
            )
            .bind(&set.id)
            .bind(Json(&set.files))
            .bind(set.loaded_at)
            .bind(&set.origin)
            .execute(pool)
            .await?;
            Ok(())
        })
    }

    /// The rule set from `origin` (a rules folder) that most recently went into force, if any
    /// did. (Instances sharing a store with other folders do not take each other's rules.)
    pub async fn last_rule_set(&self, origin: &str) -> Result<Option<StoredRuleSet>, StoreError> {
        Ok(self.rule_sets(origin, 1).await?.pop())
    }

    /// The `limit` rule sets from `origin` that most recently went into force, newest first.
    pub async fn rule_sets(
        &self,
        origin: &str,
        limit: u32,
    ) -> Result<Vec<StoredRuleSet>, StoreError> {
        on_pool!(self, pool => {
            let rows = sqlx::query("SELECT id, files, loaded_at, origin FROM rule_sets WHERE origin = $1 ORDER BY loaded_at DESC LIMIT $2")
                .bind(origin)
                .bind(i64::from(limit))
                .fetch_all(pool)
                .await?;
            rows.iter().map(decode).collect()
        })
    }

    /// The stored rule set `id`, if it went into force here once.
    pub async fn rule_set(&self, id: &str) -> Result<Option<StoredRuleSet>, StoreError> {
        on_pool!(self, pool => {
            let row = sqlx::query("SELECT id, files, loaded_at, origin FROM rule_sets WHERE id = $1")
                .bind(id)
                .fetch_optional(pool)
                .await?;
            row.as_ref().map(decode).transpose()
        })
    }

    /// The id of the rule set event `id` was evaluated against, once it was processed.
    pub async fn event_rule_set(&self, id: &str) -> Result<Option<String>, StoreError> {
        on_pool!(self, pool => {
            let set: Option<Option<String>> = sqlx::query_scalar("SELECT rule_set_id FROM events WHERE id = $1")
                .bind(id)
                .fetch_optional(pool)
                .await?;
            Ok(set.flatten())
        })
    }
}

fn decode<R>(row: &R) -> Result<StoredRuleSet, StoreError>
where
    R: Row,
    for<'a> &'a str: sqlx::ColumnIndex<R>,
    String: for<'r> sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    DateTime<Utc>: for<'r> sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    Json<BTreeMap<String, String>>: for<'r> sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
{
    Ok(StoredRuleSet {
        id: row.try_get("id")?,
        files: row.try_get::<Json<BTreeMap<String, String>>, _>("files")?.0,
        loaded_at: row.try_get("loaded_at")?,
        origin: row.try_get("origin")?,
    })
}
