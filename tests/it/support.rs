//! Test support: real databases (a temp SQLite file, or a fresh PostgreSQL schema), a running
//! engine bound to 127.0.0.1:0, and an HTTP client.

use std::sync::Once;
use std::time::Duration;

use serde_json::Value;
use signalbox::app::App;
use signalbox::config::Config;
use signalbox::store::Store;

pub const POSTGRES_ENV: &str = "TEST_POSTGRES_URL";

pub fn init() {
    static INIT: Once = Once::new();
    INIT.call_once(|| {
        signalbox::install_crypto_provider();
        let _ = tracing_subscriber_init();
    });
}

fn tracing_subscriber_init() -> Result<(), ()> {
    // Logs only when asked (RUST_LOG=debug cargo test), captured per test by the harness.
    if std::env::var_os("RUST_LOG").is_some() {
        signalbox::cli::init_logging(signalbox::config::LogFormat::Human);
    }
    Ok(())
}

/// A database for one test, removed when dropped.
pub struct TestDb {
    pub url: String,
    cleanup: Option<Box<dyn FnOnce() + Send>>,
    _dir: Option<tempfile::TempDir>,
}

impl Drop for TestDb {
    fn drop(&mut self) {
        if let Some(cleanup) = self.cleanup.take() {
            cleanup();
        }
    }
}

/// A fresh SQLite file in a temp folder.
pub async fn sqlite_db() -> Option<TestDb> {
    init();
    let dir = tempfile::tempdir().expect("temp dir");
    let url = format!("sqlite://{}", dir.path().join("signalbox.db").display());
    Some(TestDb {
        url,
        cleanup: None,
        _dir: Some(dir),
    })
}

/// A fresh schema in the PostgreSQL at `TEST_POSTGRES_URL`, or `None` (and a loud notice) when
/// the variable is unset. CI always sets it.
pub async fn postgres_db() -> Option<TestDb> {
    init();
    let Ok(base) = std::env::var(POSTGRES_ENV) else {
        eprintln!(
            "SKIPPED: PostgreSQL test: {POSTGRES_ENV} is not set (e.g. postgres://postgres@127.0.0.1:5432/test)"
        );
        return None;
    };
    let schema = format!("sbx_test_{}", uuid::Uuid::now_v7().simple());
    let pool = sqlx::PgPool::connect(&base)
        .await
        .unwrap_or_else(|e| panic!("{POSTGRES_ENV}={base} is set but unreachable: {e}"));
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE SCHEMA {schema}")))
        .execute(&pool)
        .await
        .expect("create schema");
    pool.close().await;
    let separator = if base.contains('?') { '&' } else { '?' };
    let url = format!("{base}{separator}options=-c%20search_path%3D{schema}");
    let cleanup = Box::new(move || {
        // Drop runs inside a test's runtime: use a thread with its own.
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            rt.block_on(async {
                if let Ok(pool) = sqlx::PgPool::connect(&base).await {
                    let _ =
                        sqlx::query(sqlx::AssertSqlSafe(format!("DROP SCHEMA {schema} CASCADE")))
                            .execute(&pool)
                            .await;
                    pool.close().await;
                }
            });
        })
        .join()
        .expect("schema cleanup thread");
    });
    Some(TestDb {
        url,
        cleanup: Some(cleanup),
        _dir: None,
    })
}

/// Runs a test body on both backends: `mod sqlite { ... }` always, `mod postgres { ... }` when
/// `TEST_POSTGRES_URL` is set.
#[macro_export]
macro_rules! on_both_backends {
    ($cases:ident: $($name:ident),* $(,)?) => {
        mod sqlite {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                if let Some(db) = $crate::support::sqlite_db().await { super::$cases::$name(db).await }
            })*
        }
        mod postgres {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                if let Some(db) = $crate::support::postgres_db().await { super::$cases::$name(db).await }
            })*
        }
    };
}

pub fn test_config(db: &TestDb) -> Config {
    let mut config = Config {
        database_url: db.url.clone(),
        rules_dir: std::path::PathBuf::from("rules"),
        ..Config::default()
    };
    config.processing.poll_interval_ms = 50;
    config
}

/// A running engine on a loopback port, with a client for it.
pub struct TestApp {
    pub app: Option<App>,
    pub base: String,
    pub client: reqwest::Client,
    pub store: Store,
}

impl TestApp {
    pub async fn spawn(config: Config) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind loopback");
        let app = signalbox::app::start(&config, listener)
            .await
            .expect("engine starts");
        let base = format!("http://{}", app.addr);
        let store = app.store.clone();
        Self {
            app: Some(app),
            base,
            client: reqwest::Client::new(),
            store,
        }
    }

    pub async fn post(&self, path: &str, body: impl Into<reqwest::Body>) -> (u16, Value) {
        let response = self
            .client
            .post(format!("{}{path}", self.base))
            .body(body)
            .send()
            .await
            .expect("request sent");
        let status = response.status().as_u16();
        let text = response.text().await.expect("response body");
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    pub async fn get(&self, path: &str) -> (u16, Value) {
        let response = self
            .client
            .get(format!("{}{path}", self.base))
            .send()
            .await
            .expect("request sent");
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    /// Waits until no event is pending (the processor has taken everything), at most 30 s.
    pub async fn wait_processed(&self) -> (i64, i64) {
        wait_processed(&self.store).await
    }

    pub async fn stop(mut self) {
        self.app
            .take()
            .expect("running")
            .stop()
            .await
            .expect("clean stop");
    }
}

pub async fn wait_processed(store: &Store) -> (i64, i64) {
    for _ in 0..600 {
        let counts = store.count_events().await.expect("count events");
        if counts.0 == 0 {
            return counts;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!(
        "events still pending after 30 s: {:?}",
        store.count_events().await
    );
}

/// A canonical event body with a given dedupe id.
pub fn event_json(source_event_id: &str) -> String {
    serde_json::json!({
        "type": "promise_to_pay.expired",
        "source": "receeve",
        "source_event_id": source_event_id,
        "occurred_at": "2026-11-20T08:00:00Z",
        "subject": { "claim": "C-1", "account": "A-1" },
        "amount": { "value": "192.38", "currency": "EUR" },
        "data": { "note": "test" }
    })
    .to_string()
}
