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
    /// The body, or for a refused delivery its first `retention.rejected.body_bytes`.
    pub body: bytes::Bytes,
    pub verification: &'static str,
    pub reason: Option<String>,
    /// The size of the body as it arrived, when `body` holds only a prefix of it.
    pub body_size: Option<usize>,
    /// The API token that posted it (`None`: a platform's signed webhook, or the open API).
    pub token: Option<String>,
}

impl NewDelivery {
    /// The delivery of an event the engine stores itself (emitted by a rule, a schedule's
    /// tick, a check's deadline): source `signalbox`, verification `internal`.
    pub fn internal(received_at: chrono::DateTime<chrono::Utc>, body: &serde_json::Value) -> Self {
        Self {
            id: Self::new_id(),
            source: crate::providers::ENGINE_SOURCE.into(),
            received_at,
            headers: serde_json::json!({}),
            body: bytes::Bytes::from(serde_json::to_vec(body).expect("values serialize")),
            verification: "internal",
            reason: None,
            body_size: None,
            token: None,
        }
    }

    pub fn new_id() -> String {
        format!("dlv_{}", uuid::Uuid::now_v7().simple())
    }

    /// Keeps only the first `max` bytes of the body (recording its size), and at most
    /// `max_header` bytes of each header value.
    pub fn truncate(&mut self, max: usize, max_header: usize) {
        if self.body.len() > max {
            self.body_size = Some(self.body.len());
            self.body.truncate(max);
        }
        if let Some(headers) = self.headers.as_object_mut() {
            for value in headers.values_mut() {
                truncate_text(value, max_header);
            }
        }
    }

    /// The size of the body as it arrived.
    pub fn received_size(&self) -> usize {
        self.body_size.unwrap_or(self.body.len())
    }
}

/// Cuts the string (or each string of an array) to at most `max` bytes, at a character boundary.
fn truncate_text(value: &mut Value, max: usize) {
    match value {
        Value::String(text) if text.len() > max => {
            let mut end = max;
            while !text.is_char_boundary(end) {
                end -= 1;
            }
            text.truncate(end);
        }
        Value::Array(items) => items.iter_mut().for_each(|v| truncate_text(v, max)),
        _ => {}
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
    /// Bytes of the body as it arrived (a refused delivery keeps only a prefix of them).
    /// Absent for deliveries stored before it was recorded.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub body_size: Option<i64>,
    /// The API token that posted it, if one did.
    pub token: Option<String>,
}

/// A stored delivery with its headers and body, as stored.
#[derive(Debug, Clone, Serialize)]
pub struct StoredDelivery {
    #[serde(flatten)]
    pub summary: DeliverySummary,
    pub headers: Value,
    #[serde(skip)]
    pub body: Vec<u8>,
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
                    "SELECT d.id, d.source, d.received_at, d.verification, d.reason, d.body_size, d.token,
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
                    .map(summary)
                    .collect::<Result<Vec<_>, StoreError>>()
            })?;
            let measure = |d: &DeliverySummary| (json_len(d), d.id.clone());
            if let Some(page) = fill.take(rows, wanted, measure) {
                return Ok(page);
            }
        }
    }

    /// One delivery with its headers and stored body, if it is (still) stored.
    pub async fn get_delivery(&self, id: &str) -> Result<Option<StoredDelivery>, StoreError> {
        on_pool!(self, pool => {
            let row = sqlx::query(
                "SELECT d.id, d.source, d.received_at, d.verification, d.reason, d.body_size, d.token, d.headers, d.body,
                        (SELECT COUNT(*) FROM events e WHERE e.delivery_id = d.id) AS events
                 FROM deliveries d WHERE d.id = $1",
            )
            .bind(id)
            .fetch_optional(pool)
            .await?;
            row.map(|row| {
                let headers: sqlx::types::Json<Value> = row.try_get("headers")?;
                Ok(StoredDelivery {
                    summary: summary(&row)?,
                    headers: headers.0,
                    body: row.try_get("body")?,
                })
            })
            .transpose()
        })
    }
}

/// A delivery's summary from a row selecting its columns and `events` (the count).
fn summary<R: Row>(row: &R) -> Result<DeliverySummary, StoreError>
where
    for<'a> &'a str: sqlx::ColumnIndex<R>,
    String: for<'r> sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    Option<String>: for<'r> sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    DateTime<Utc>: for<'r> sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    i64: for<'r> sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    Option<i64>: for<'r> sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
{
    Ok(DeliverySummary {
        id: row.try_get("id")?,
        source: row.try_get("source")?,
        received_at: row.try_get("received_at")?,
        verification: row.try_get("verification")?,
        reason: row.try_get("reason")?,
        events: row.try_get("events")?,
        body_size: row.try_get("body_size")?,
        token: row.try_get("token")?,
    })
}
