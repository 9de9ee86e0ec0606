//! What the benches share: a second pool on the store's database, for seeding and counting
//! (`#[macro_use] #[path = "common/direct.rs"] mod direct;`).

use std::time::Duration;

/// A second pool on the store's database, for seeding and counting.
pub(crate) enum Direct {
    Sqlite(sqlx::SqlitePool),
    Postgres(sqlx::PgPool),
}

macro_rules! on_direct {
    ($direct:expr, $pool:ident => $body:expr) => {
        match $direct {
            Direct::Sqlite($pool) => $body,
            Direct::Postgres($pool) => $body,
        }
    };
}

impl Direct {
    pub(crate) async fn connect(url: &str) -> Self {
        if url.starts_with("sqlite:") {
            use std::str::FromStr;
            let options = sqlx::sqlite::SqliteConnectOptions::from_str(url)
                .expect("sqlite url")
                .journal_mode(sqlx::sqlite::SqliteJournalMode::Wal)
                .synchronous(sqlx::sqlite::SqliteSynchronous::Off)
                .busy_timeout(Duration::from_secs(30));
            let pool = sqlx::sqlite::SqlitePoolOptions::new()
                .max_connections(1)
                .connect_with(options)
                .await
                .expect("sqlite opens");
            Self::Sqlite(pool)
        } else {
            let pool = sqlx::postgres::PgPoolOptions::new()
                .max_connections(1)
                .connect(url)
                .await
                .expect("postgres reachable");
            Self::Postgres(pool)
        }
    }

    /// `::jsonb` on PostgreSQL (a text literal selected into a JSONB column needs it).
    pub(crate) fn jsonb(&self) -> &'static str {
        match self {
            Self::Sqlite(_) => "",
            Self::Postgres(_) => "::jsonb",
        }
    }

    pub(crate) async fn execute(&self, sql: &str) {
        on_direct!(self, pool => {
            sqlx::query(sqlx::AssertSqlSafe(sql.to_owned()))
                .execute(pool)
                .await
                .unwrap_or_else(|e| panic!("{sql}: {e}"));
        })
    }

    /// `(key, count)` rows of a `SELECT key, COUNT(*) ... GROUP BY key`.
    #[allow(dead_code, reason = "one of the benches counts")]
    pub(crate) async fn counts(&self, sql: &str, bind: &str) -> Vec<(String, i64)> {
        on_direct!(self, pool => {
            sqlx::query_as::<_, (String, i64)>(sqlx::AssertSqlSafe(sql.to_owned()))
                .bind(bind)
                .fetch_all(pool)
                .await
                .unwrap_or_else(|e| panic!("{sql}: {e}"))
        })
    }

    pub(crate) async fn close(&self) {
        on_direct!(self, pool => pool.close().await)
    }
}
