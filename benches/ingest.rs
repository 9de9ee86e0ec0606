//! Ingestion over HTTP: events acknowledged per second and ack latency, on SQLite and PostgreSQL.
//!
//!     cargo bench --bench ingest
//!     BENCH_EVENTS=50000 BENCH_SENDERS=32 TEST_POSTGRES_URL=postgres://postgres@127.0.0.1:5432/test cargo bench --bench ingest
//!
//! The engine runs in this process on 127.0.0.1:0 with a fresh store; `BENCH_SENDERS` tasks
//! (default 32) each post single canonical events over keep-alive HTTP/1.1 connections, one
//! request at a time, until `BENCH_EVENTS` (default 20000) are acknowledged. Latency is from
//! sending a request to reading its 201. Client and engine share the machine's cores. The
//! processor runs alongside, marking events processed, as in production. With `BENCH_TOKEN=1`
//! the engine has API tokens and every request carries an ingest token allowed the source.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use signalbox::config::Config;

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

struct Report {
    backend: &'static str,
    events: usize,
    elapsed: Duration,
    latencies: Vec<Duration>,
}

impl Report {
    fn percentile(&self, p: f64) -> Duration {
        let index = ((self.latencies.len() as f64 - 1.0) * p).round() as usize;
        self.latencies[index]
    }

    fn print(&self, senders: usize) {
        let ms = |d: Duration| d.as_secs_f64() * 1000.0;
        println!(
            "{:<9} senders={senders:<3} events={:<6} {:>8.0} events/s  p50 {:>6.2} ms  p99 {:>6.2} ms  max {:>7.2} ms",
            self.backend,
            self.events,
            self.events as f64 / self.elapsed.as_secs_f64(),
            ms(self.percentile(0.50)),
            ms(self.percentile(0.99)),
            ms(*self.latencies.last().expect("at least one event")),
        );
    }
}

async fn run(backend: &'static str, url: String, events: usize, senders: usize) -> Report {
    let mut config = Config {
        database_url: url,
        ..Config::default()
    };
    config.rules_dir = std::env::temp_dir().join("signalbox-bench-no-rules");
    // Tokens: the API checks each request's token (hash, constant-time compare, role, source).
    const TOKEN: &str = "bench-ingest-token-0123456789abcdef";
    let with_token = std::env::var("BENCH_TOKEN").is_ok_and(|v| v == "1");
    if with_token {
        config.tokens = vec![signalbox::auth::TokenConfig {
            name: "bench".into(),
            token: signalbox::config::Secret::new(TOKEN.into()),
            roles: vec![signalbox::auth::Role::Ingest],
            sources: Some(vec!["receeve".into()]),
        }];
    }
    let bearer = with_token.then_some(TOKEN);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let app = signalbox::app::start(&config, listener)
        .await
        .expect("engine starts");
    let endpoint = format!("http://{}/v1/events", app.addr);
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(senders)
        .build()
        .expect("client");
    let run_id = uuid::Uuid::now_v7().simple().to_string();
    let body = move |i: usize| {
        format!(
            r#"{{"type":"promise_to_pay.expired","source":"receeve","source_event_id":"{run_id}-{i}","occurred_at":"2026-11-20T08:00:00Z","subject":{{"claim":"C-{i}","account":"A-{}"}},"amount":{{"value":"192.38","currency":"EUR"}},"data":{{"promiseId":"p-{i}","channel":"sms"}}}}"#,
            i % 97
        )
    };

    // Warm-up: connections, prepared statements, page cache.
    for i in 0..200 {
        let mut request = client.post(&endpoint);
        if let Some(token) = bearer {
            request = request.bearer_auth(token);
        }
        let response = request
            .body(body(events + i))
            .send()
            .await
            .expect("warm-up");
        assert_eq!(response.status(), 201);
    }

    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let tasks: Vec<_> = (0..senders)
        .map(|_| {
            let (client, endpoint, next) = (client.clone(), endpoint.clone(), next.clone());
            let body = body.clone();
            tokio::spawn(async move {
                let mut latencies = Vec::new();
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= events {
                        return latencies;
                    }
                    let sent = Instant::now();
                    let mut request = client.post(&endpoint);
                    if let Some(token) = bearer {
                        request = request.bearer_auth(token);
                    }
                    let response = request.body(body(i)).send().await.expect("request");
                    assert_eq!(response.status(), 201, "event {i} not stored");
                    latencies.push(sent.elapsed());
                }
            })
        })
        .collect();
    let mut latencies = Vec::with_capacity(events);
    for task in tasks {
        latencies.extend(task.await.expect("sender"));
    }
    let elapsed = started.elapsed();
    latencies.sort();

    let (pending, processed) = app.store.count_events().await.expect("count");
    assert_eq!(
        (pending + processed) as usize,
        events + 200,
        "every acknowledged event is stored once"
    );
    app.stop().await.expect("clean stop");
    Report {
        backend,
        events,
        elapsed,
        latencies,
    }
}

fn main() {
    signalbox::install_crypto_provider();
    let events = env_usize("BENCH_EVENTS", 20_000);
    let senders = env_usize("BENCH_SENDERS", 32);
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    runtime.block_on(async {
        let dir = tempfile::tempdir().expect("temp dir");
        let sqlite = format!("sqlite://{}", dir.path().join("bench.db").display());
        run("sqlite", sqlite, events, senders).await.print(senders);

        match std::env::var("TEST_POSTGRES_URL") {
            Ok(base) => {
                let schema = format!("sbx_bench_{}", uuid::Uuid::now_v7().simple());
                let pool = sqlx::PgPool::connect(&base)
                    .await
                    .expect("postgres reachable");
                let create = format!("CREATE SCHEMA {schema}");
                sqlx::query(sqlx::AssertSqlSafe(create))
                    .execute(&pool)
                    .await
                    .expect("schema");
                let sep = if base.contains('?') { '&' } else { '?' };
                let url = format!("{base}{sep}options=-c%20search_path%3D{schema}");
                run("postgres", url, events, senders).await.print(senders);
                let drop = format!("DROP SCHEMA {schema} CASCADE");
                sqlx::query(sqlx::AssertSqlSafe(drop))
                    .execute(&pool)
                    .await
                    .expect("drop schema");
            }
            Err(_) => println!("postgres  skipped: set TEST_POSTGRES_URL to measure PostgreSQL"),
        }
    });
}
