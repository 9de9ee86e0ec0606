//! Deliveries: every request that reached an ingestion endpoint, refused ones included, kept
//! for audit and replay. They are written with their events (`Store::insert_batch`).

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;
use sqlx::Row;

use super::page::{Page, PageFill, json_len};
use super::{Store, StoreError, on_pool};

/// A request as it reached an ingestion endpoint, kept for audit and replay.
#[derive(Debug, Clone)]
pub struct NewDelivery {
    pub id: String,
    pub source: String,
    pub received_at: DateTime<Utc>,
    /// The headers that matter (content type, signatures, provider ids), as a JSON object.
    pub headers: Value,
    pub body: bytes::Bytes,
    pub verification: &'static str,
    pub reason: Option<String>,
    /// The API token that posted it (`None`: a platform's signed webhook, or the open API).
    pub token: Option<String>,
}

impl NewDelivery {
    pub fn new_id() -> String {
        format!("dlv_{}", uuid::Uuid::now_v7().simple())
    }
}

/// A stored request, without its body.
#[derive(Debug, Clone, Serialize)]
pub struct DeliverySummary {
    pub id: String,
    pub source: String,
    pub received_at: DateTime<Utc>,
    /// `verified`, `unsigned` or `rejected`.
    pub verification: String,
    /// Why it was refused, if it was.
    pub reason: Option<String>,
    /// Events stored from it (0 for refused deliveries).
    pub events: i64,
    /// The API token that posted it, if one did.
    pub token: Option<String>,
}

impl Store {
    /// The newest deliveries first, optionally only those with one verification outcome, older
    /// than `before` (a delivery id): at most `limit`, and no more once their JSON passes
    /// `max_bytes` (a page holds at least one).
    pub async fn list_deliveries(
        &self,
        verification: Option<&str>,
        before: Option<&str>,
        limit: u32,
        max_bytes: usize,
    ) -> Result<Page<DeliverySummary>, StoreError> {
        let mut fill = PageFill::new(limit, max_bytes, before.map(str::to_owned));
        loop {
            let wanted = fill.wanted();
            let rows = on_pool!(self, pool => {
                let rows = sqlx::query(
                    "SELECT d.id, d.source, d.received_at, d.verification, d.reason, d.token,
                            (SELECT COUNT(*) FROM events e WHERE e.delivery_id = d.id) AS events
                     FROM deliveries d WHERE ($1 IS NULL OR d.verification = $1) AND ($2 IS NULL OR d.id < $2)
                     ORDER BY d.id DESC LIMIT $3",
                )
                .bind(verification)
                .bind(&fill.before)
                .bind(wanted as i64)
                .fetch_all(pool)
                .await?;
                rows.iter()
                    .map(|row| {
                        Ok(DeliverySummary {
                            id: row.try_get("id")?,
                            source: row.try_get("source")?,
                            received_at: row.try_get("received_at")?,
                            verification: row.try_get("verification")?,
                            reason: row.try_get("reason")?,
                            events: row.try_get("events")?,
                            token: row.try_get("token")?,
                        })
                    })
                    .collect::<Result<Vec<_>, StoreError>>()
            })?;
            let measure = |d: &DeliverySummary| (json_len(d), d.id.clone());
            if let Some(page) = fill.take(rows, wanted, measure) {
                return Ok(page);
            }
        }
    }
}
