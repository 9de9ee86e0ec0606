//! Counts read for `/metrics` at each scrape, each over a partial index that holds only the
//! rows it counts.

use sqlx::Row;

use super::{Store, StoreError, on_pool};

impl Store {
    /// How many events are parked as failed (their processing failed on every attempt), and
    /// how many checks are pending: `(parked, pending_checks)`.
    pub async fn parked_and_waiting(&self) -> Result<(i64, i64), StoreError> {
        on_pool!(self, pool => {
            let row = sqlx::query(
                "SELECT (SELECT COUNT(*) FROM events WHERE state = 'failed') AS parked,
                        (SELECT COUNT(*) FROM checks WHERE status = 'pending') AS checks",
            )
            .fetch_one(pool)
            .await?;
            Ok((row.try_get("parked")?, row.try_get("checks")?))
        })
    }
}
