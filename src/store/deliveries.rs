//! Deliveries: every request that reached an ingestion endpoint, refused ones included, kept
//! for audit and replay. They are written with their events (`Store::insert_batch`).

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;
use sqlx::Row;

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
}

impl Store {
    /// The newest deliveries first, optionally only those with one verification outcome.
    pub async fn list_deliveries(
        &self,
        verification: Option<&str>,
        limit: u32,
    ) -> Result<Vec<DeliverySummary>, StoreError> {
        on_pool!(self, pool => {
            let rows = sqlx::query(
                "SELECT d.id, d.source, d.received_at, d.verification, d.reason,
                        (SELECT COUNT(*) FROM events e WHERE e.delivery_id = d.id) AS events
                 FROM deliveries d WHERE ($1 IS NULL OR d.verification = $1)
                 ORDER BY d.id DESC LIMIT $2",
            )
            .bind(verification)
            .bind(i64::from(limit))
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
                    })
                })
                .collect()
        })
    }
}
