//! Test support: real databases (a temp SQLite file, or a fresh PostgreSQL schema), a running
//! engine bound to 127.0.0.1:0, and an HTTP client.

use std::sync::Once;
use std::time::Duration;

use serde_json::Value;
use signalbox::app::App;
use signalbox::config::Config;
use signalbox::store::Store;

pub(crate) const POSTGRES_ENV: &str = "TEST_POSTGRES_URL";

pub(crate) fn init() {
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
pub(crate) struct TestDb {
    pub url: String,
    cleanup: Option<Box<dyn FnOnce() + Send>>,
    _dir: Option<tempfile::TempDir>,
}

impl TestDb {
    /// Another handle on `db`'s database, which removes nothing when dropped.
    pub(crate) fn borrowed(db: &TestDb) -> TestDb {
        TestDb {
            url: db.url.clone(),
            cleanup: None,
            _dir: None,
        }
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        if let Some(cleanup) = self.cleanup.take() {
            cleanup();
        }
    }
}

/// A fresh SQLite file in a temp folder.
pub(crate) async fn sqlite_db() -> Option<TestDb> {
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
pub(crate) async fn postgres_db() -> Option<TestDb> {
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

pub(crate) fn test_config(db: &TestDb) -> Config {
    let mut config = Config {
        database_url: db.url.clone(),
        rules_dir: std::path::PathBuf::from("rules"),
        ..Config::default()
    };
    config.processing.poll_interval = std::time::Duration::from_millis(50);
    // Fast retries, and loopback targets allowed, for tests.
    config.actions.poll_interval = Duration::from_millis(50);
    config.actions.webhook.allowed_hosts = vec!["127.0.0.1".into()];
    config.actions.allowed_hosts = vec!["127.0.0.1".into()];
    for retry in [
        &mut config.actions.webhook.retry,
        &mut config.actions.email.retry,
        &mut config.actions.emit_retry,
    ] {
        retry.initial_delay = Duration::from_millis(50);
        retry.max_delay = Duration::from_secs(2);
        retry.max_attempts = 3;
    }
    config.processing.retry.initial_delay = Duration::from_millis(50);
    config.processing.retry.max_delay = Duration::from_secs(1);
    config
}

/// A running engine on a loopback port, with a client for it.
pub(crate) struct TestApp {
    pub app: Option<App>,
    pub base: String,
    pub client: reqwest::Client,
    pub store: Store,
}

impl TestApp {
    pub(crate) async fn spawn(config: Config) -> Self {
        Self::spawn_with_clock(config, signalbox::clock::SystemClock::shared()).await
    }

    /// An engine whose every stage reads the time from `clock`.
    pub(crate) async fn spawn_with_clock(
        config: Config,
        clock: signalbox::clock::SharedClock,
    ) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind loopback");
        let store = Store::open(&config.database_url, &config.store)
            .await
            .expect("store opens");
        let app = signalbox::app::start_with_store(&config, listener, store, clock)
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

    pub(crate) async fn post(&self, path: &str, body: impl Into<reqwest::Body>) -> (u16, Value) {
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

    pub(crate) async fn get(&self, path: &str) -> (u16, Value) {
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
    pub(crate) async fn wait_processed(&self) -> (i64, i64) {
        wait_processed(&self.store).await
    }

    pub(crate) async fn stop(mut self) {
        self.app
            .take()
            .expect("running")
            .stop()
            .await
            .expect("clean stop");
    }
}

pub(crate) async fn wait_processed(store: &Store) -> (i64, i64) {
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
pub(crate) fn event_json(source_event_id: &str) -> String {
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

/// A loopback HTTP server standing in for a webhook target or a platform API: it records every
/// request and answers from a script the test sets (status, Retry-After, delay), then 200.
#[derive(Clone, Default)]
pub(crate) struct Receiver {
    pub requests: std::sync::Arc<std::sync::Mutex<Vec<Received>>>,
    script: std::sync::Arc<std::sync::Mutex<std::collections::VecDeque<Answer>>>,
    pub url: String,
}

#[derive(Debug, Clone)]
pub(crate) struct Received {
    pub method: String,
    pub path: String,
    pub headers: std::collections::BTreeMap<String, String>,
    pub body: Vec<u8>,
}

#[derive(Debug, Clone, Copy)]
pub(crate) struct Answer {
    pub status: u16,
    pub retry_after: Option<u64>,
    pub delay: Duration,
}

impl Answer {
    pub(crate) fn status(status: u16) -> Self {
        Self {
            status,
            retry_after: None,
            delay: Duration::ZERO,
        }
    }
}

impl Receiver {
    pub(crate) async fn start() -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let mut receiver = Receiver {
            url: format!("http://{}", listener.local_addr().unwrap()),
            ..Default::default()
        };
        let state = receiver.clone();
        let app = axum::Router::new().fallback(move |req: axum::extract::Request| {
            let state = state.clone();
            async move {
                let (parts, body) = req.into_parts();
                let body = axum::body::to_bytes(body, usize::MAX)
                    .await
                    .unwrap()
                    .to_vec();
                let headers = parts
                    .headers
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or("").to_owned()))
                    .collect();
                state.requests.lock().unwrap().push(Received {
                    method: parts.method.to_string(),
                    path: parts.uri.path().to_owned(),
                    headers,
                    body,
                });
                let answer = state
                    .script
                    .lock()
                    .unwrap()
                    .pop_front()
                    .unwrap_or(Answer::status(200));
                tokio::time::sleep(answer.delay).await;
                let mut response = axum::response::Response::builder().status(answer.status);
                if let Some(seconds) = answer.retry_after {
                    response = response.header("retry-after", seconds.to_string());
                }
                response.body(axum::body::Body::from("ok")).unwrap()
            }
        });
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        receiver.url = receiver.url.clone();
        receiver
    }

    pub(crate) fn answer(&self, answers: &[Answer]) {
        self.script.lock().unwrap().extend(answers.iter().copied());
    }

    pub(crate) fn received(&self) -> Vec<Received> {
        self.requests.lock().unwrap().clone()
    }

    /// Waits until `n` requests arrived (at most 30 s).
    pub(crate) async fn wait_for(&self, n: usize) -> Vec<Received> {
        for _ in 0..600 {
            if self.requests.lock().unwrap().len() >= n {
                return self.received();
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!(
            "expected {n} requests, got {}",
            self.requests.lock().unwrap().len()
        );
    }
}

/// Waits until `total` actions were planned and none is pending (each delivered or dead), at
/// most 30 s; returns `(pending, delivered, dead)`.
pub(crate) async fn wait_actions_settled(store: &Store, total: i64) -> (i64, i64, i64) {
    for _ in 0..600 {
        let counts = store.count_actions().await.expect("count actions");
        if counts.0 == 0 && counts.1 + counts.2 == total {
            return counts;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!(
        "actions still pending after 30 s: {:?}",
        store.count_actions().await
    );
}

/// A real SMTP server (mailin-embedded) on a loopback port, keeping what it receives.
#[derive(Clone, Default)]
pub(crate) struct SmtpServer {
    pub port: u16,
    pub mails: std::sync::Arc<std::sync::Mutex<Vec<Mail>>>,
}

#[derive(Debug, Clone, Default)]
pub(crate) struct Mail {
    pub from: String,
    pub to: Vec<String>,
    pub data: String,
}

#[derive(Clone)]
struct SmtpHandler {
    mails: std::sync::Arc<std::sync::Mutex<Vec<Mail>>>,
    current: Mail,
}

impl mailin_embedded::Handler for SmtpHandler {
    fn data_start(
        &mut self,
        _domain: &str,
        from: &str,
        _is8bit: bool,
        to: &[String],
    ) -> mailin_embedded::Response {
        self.current = Mail {
            from: from.to_owned(),
            to: to.to_vec(),
            data: String::new(),
        };
        mailin_embedded::response::OK
    }

    fn data(&mut self, buf: &[u8]) -> std::io::Result<()> {
        self.current.data.push_str(&String::from_utf8_lossy(buf));
        Ok(())
    }

    fn data_end(&mut self) -> mailin_embedded::Response {
        self.mails
            .lock()
            .unwrap()
            .push(std::mem::take(&mut self.current));
        mailin_embedded::response::OK
    }
}

impl SmtpServer {
    pub(crate) fn start() -> Self {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let server = SmtpServer {
            port,
            ..Default::default()
        };
        let handler = SmtpHandler {
            mails: server.mails.clone(),
            current: Mail::default(),
        };
        std::thread::spawn(move || {
            let mut smtp = mailin_embedded::Server::new(handler);
            smtp.with_name("smtp.test")
                .with_ssl(mailin_embedded::SslConfig::None)
                .unwrap()
                .with_tcp_listener(listener);
            let _ = smtp.serve();
        });
        server
    }

    pub(crate) async fn wait_for(&self, n: usize) -> Vec<Mail> {
        for _ in 0..600 {
            if self.mails.lock().unwrap().len() >= n {
                return self.mails.lock().unwrap().clone();
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!(
            "expected {n} mails, got {}",
            self.mails.lock().unwrap().len()
        );
    }
}

/// Waits until an engine at `base` answers `/healthz`, at most 10 s.
pub(crate) async fn wait_healthy(base: &str) {
    let client = reqwest::Client::new();
    for _ in 0..200 {
        if client.get(format!("{base}/healthz")).send().await.is_ok() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("engine did not answer /healthz within 10 s");
}

/// Runs the `signalbox` binary in the project folder: whether it succeeded, and its stdout
/// and stderr together.
pub(crate) fn signalbox(args: &[&str]) -> (bool, String) {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_signalbox"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("the signalbox binary runs");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.success(), text)
}

/// Starts `signalbox serve` on a free loopback port with `config_yaml` (written into `dir`),
/// the store at `db_url` and the rules in `dir/rules`; returns the process and its port.
/// The caller owns the child at once, so a failed start still kills and reaps it.
pub(crate) fn spawn_engine(
    dir: &std::path::Path,
    db_url: &str,
    config_yaml: &str,
) -> (std::process::Child, u16) {
    spawn_engine_logging(dir, db_url, config_yaml, None)
}

/// As [`spawn_engine`], with its log filtered by `rust_log` (`RUST_LOG`) and written to
/// `dir/engine.log` when given.
pub(crate) fn spawn_engine_logging(
    dir: &std::path::Path,
    db_url: &str,
    config_yaml: &str,
    rust_log: Option<&str>,
) -> (std::process::Child, u16) {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free loopback port")
        .port();
    let config = dir.join("signalbox.yaml");
    std::fs::write(&config, config_yaml).expect("config written");
    let child = std::process::Command::new(env!("CARGO_BIN_EXE_signalbox"))
        .args([
            "serve",
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--config",
        ])
        .arg(&config)
        .env("SIGNALBOX_DATABASE_URL", db_url)
        .env("SIGNALBOX_RULES_DIR", dir.join("rules"))
        .env_remove("RUST_LOG")
        .envs(rust_log.map(|filter| ("RUST_LOG", filter)))
        .stdout(std::process::Stdio::null())
        .stderr(match rust_log {
            Some(_) => std::fs::File::create(dir.join("engine.log"))
                .expect("log file")
                .into(),
            None => std::process::Stdio::null(),
        })
        .spawn()
        .expect("engine binary starts");
    (child, port)
}
