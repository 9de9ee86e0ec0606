//! API tokens created with the CLI (hashed), and what tokens did.

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::Row;
use sqlx::types::Json;

use super::{Store, StoreError, on_pool};
use crate::auth::{Role, StoredToken};

/// One request a token made that changed something.
#[derive(Debug, Clone, Serialize)]
pub struct TokenUse {
    pub at: DateTime<Utc>,
    pub token: String,
    pub method: String,
    pub path: String,
    pub status: u16,
}

impl Store {
    /// Stores a new token (its hash). An existing name, revoked or not, is refused.
    pub async fn create_token(&self, token: &StoredToken) -> Result<bool, StoreError> {
        let _turn = self.write_turn().await;
        on_pool!(self, pool => {
            let done = sqlx::query(
                "INSERT INTO api_tokens (name, hash, roles, sources, created_at) VALUES ($1, $2, $3, $4, $5)
                 ON CONFLICT (name) DO NOTHING",
            )
            .bind(&token.name)
            .bind(&token.hash)
            .bind(Json(&token.roles))
            .bind(token.sources.as_ref().map(Json))
            .bind(token.created_at)
            .execute(pool)
            .await?;
            Ok(done.rows_affected() == 1)
        })
    }

    /// Revokes a token by name; false if there is no such active token.
    pub async fn revoke_token(&self, name: &str, at: DateTime<Utc>) -> Result<bool, StoreError> {
        let _turn = self.write_turn().await;
        on_pool!(self, pool => {
            let done = sqlx::query("UPDATE api_tokens SET revoked_at = $1 WHERE name = $2 AND revoked_at IS NULL")
                .bind(at)
                .bind(name)
                .execute(pool)
                .await?;
            Ok(done.rows_affected() == 1)
        })
    }

    /// Every stored token, revoked ones included, by name.
    pub async fn list_tokens(&self) -> Result<Vec<StoredToken>, StoreError> {
        self.tokens_where(false).await
    }

    /// The tokens not revoked.
    pub async fn active_tokens(&self) -> Result<Vec<StoredToken>, StoreError> {
        self.tokens_where(true).await
    }

    async fn tokens_where(&self, active_only: bool) -> Result<Vec<StoredToken>, StoreError> {
        on_pool!(self, pool => {
            let rows = sqlx::query(
                "SELECT name, hash, roles, sources, created_at, revoked_at, last_used_at FROM api_tokens
                 WHERE (revoked_at IS NULL OR NOT $1) ORDER BY name",
            )
            .bind(active_only)
            .fetch_all(pool)
            .await?;
            rows.iter()
                .map(|row| {
                    Ok(StoredToken {
                        name: row.try_get("name")?,
                        hash: row.try_get("hash")?,
                        roles: row.try_get::<Json<Vec<Role>>, _>("roles")?.0,
                        sources: row
                            .try_get::<Option<Json<Vec<String>>>, _>("sources")?
                            .map(|j| j.0),
                        created_at: row.try_get("created_at")?,
                        revoked_at: row.try_get("revoked_at")?,
                        last_used_at: row.try_get("last_used_at")?,
                    })
                })
                .collect()
        })
    }

    /// Notes that a stored token was used at `at` (callers do it at most once a minute).
    pub async fn touch_token(&self, name: &str, at: DateTime<Utc>) -> Result<(), StoreError> {
        let _turn = self.write_turn().await;
        on_pool!(self, pool => {
            sqlx::query("UPDATE api_tokens SET last_used_at = $1 WHERE name = $2")
                .bind(at)
                .bind(name)
                .execute(pool)
                .await?;
            Ok(())
        })
    }

    /// Records a request a token made that changed something.
    pub async fn record_token_use(&self, used: &TokenUse) -> Result<(), StoreError> {
        let _turn = self.write_turn().await;
        on_pool!(self, pool => {
            sqlx::query("INSERT INTO token_uses (at, token, method, path, status) VALUES ($1, $2, $3, $4, $5)")
                .bind(used.at)
                .bind(&used.token)
                .bind(&used.method)
                .bind(&used.path)
                .bind(i64::from(used.status))
                .execute(pool)
                .await?;
            Ok(())
        })
    }

    /// The newest token uses first, at most `limit`.
    pub async fn token_uses(&self, limit: u32) -> Result<Vec<TokenUse>, StoreError> {
        on_pool!(self, pool => {
            let rows = sqlx::query("SELECT at, token, method, path, status FROM token_uses ORDER BY id DESC LIMIT $1")
                .bind(i64::from(limit))
                .fetch_all(pool)
                .await?;
            rows.iter()
                .map(|row| {
                    Ok(TokenUse {
                        at: row.try_get("at")?,
                        token: row.try_get("token")?,
                        method: row.try_get("method")?,
                        path: row.try_get("path")?,
                        status: u16::try_from(row.try_get::<i64, _>("status")?).unwrap_or(0),
                    })
                })
                .collect()
        })
    }
}
