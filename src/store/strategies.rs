//! Strategy states: which claims' collection strategies Signalbox holds paused, by which rule.

use chrono::{DateTime, Utc};
use sqlx::{QueryBuilder, Row};

use super::{Store, StoreError, on_pool};

impl Store {
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
}
