//! End to end: signed Receeve webhook in -> rule -> webhook action out to a loopback sink.
//!
//!     cargo bench --bench e2e
//!     BENCH_EVENTS=10000 BENCH_SENDERS=32 TEST_POSTGRES_URL=postgres://postgres@127.0.0.1:5432/test cargo bench --bench e2e
//!
//! The engine, the senders and the sink share this process (and the machine's cores). Latency
//! is from sending the provider's webhook to the sink receiving the action's request; events/s
//! is events delivered to the sink per second of the whole run. Lost = planned actions that
//! never reached the sink (must be 0).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use signalbox::config::{Config, Secret, SourceConfig};

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

type Arrivals = Arc<Mutex<HashMap<String, Instant>>>;

async fn sink() -> (String, Arrivals) {
    let arrivals: Arrivals = Arc::default();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let seen = arrivals.clone();
    let app = axum::Router::new().fallback(move |uri: axum::http::Uri| {
        let seen = seen.clone();
        async move {
            seen.lock()
                .unwrap()
                .entry(uri.path().trim_start_matches('/').to_owned())
                .or_insert_with(Instant::now);
            "ok"
        }
    });
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, arrivals)
}

fn signed(message_id: &str) -> String {
    let payload = format!(
        r#"{{"details":{{"messageType":"event.promiseToPay.expired.v1","claimRef":"CLM-{message_id}","receeveClaimRef":"R-{message_id}","id":"ptp-1"}},"messageId":"{message_id}","timestamp":"2026-11-20T08:00:00.000Z"}}"#
    );
    let signature = hex::encode(signalbox::providers::signature::hmac_sha256(
        b"bench-secret",
        &[payload.as_bytes()],
    ));
    format!(r#"{{"payload":{payload},"signature":"{signature}"}}"#)
}

async fn run(backend: &str, url: String, events: usize, senders: usize) {
    let (sink_url, arrivals) = sink().await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("rule.yaml"),
        format!("version: 1\nid: ptp_hook\non: [promise_to_pay.expired]\nactions:\n  - type: webhook\n    url: \"{sink_url}/{{{{ event.source_event_id }}}}\"\n    body: {{ claim: \"{{{{ event.subject.claim }}}}\" }}\n"),
    )
    .unwrap();
    let mut config = Config {
        database_url: url,
        rules_dir: dir.path().to_owned(),
        ..Config::default()
    };
    config.sources.insert(
        "receeve".into(),
        SourceConfig {
            secrets: vec![Secret::new("bench-secret".into())],
            ..SourceConfig::default()
        },
    );
    config.actions.webhook.allowed_hosts = vec!["127.0.0.1".into()];
    config.actions.workers = 64;
    config.actions.per_target = 64;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let app = signalbox::app::start(&config, listener)
        .await
        .expect("engine starts");
    let endpoint = format!("http://{}/webhooks/receeve", app.addr);
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(senders)
        .build()
        .unwrap();
    let run_id = uuid::Uuid::now_v7().simple().to_string();

    let sent: Arc<Mutex<HashMap<String, Instant>>> = Arc::default();
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let started = Instant::now();
    let tasks: Vec<_> = (0..senders)
        .map(|_| {
            let (client, endpoint, next, sent, run_id) = (
                client.clone(),
                endpoint.clone(),
                next.clone(),
                sent.clone(),
                run_id.clone(),
            );
            tokio::spawn(async move {
                loop {
                    let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    if i >= events {
                        return;
                    }
                    let id = format!("{run_id}-{i}");
                    let at = Instant::now();
                    let response = client
                        .post(&endpoint)
                        .body(signed(&id))
                        .send()
                        .await
                        .expect("request");
                    assert_eq!(response.status(), 201, "event {i}");
                    sent.lock().unwrap().insert(id, at);
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    let acked = started.elapsed();
    // Wait for the outbox to drain (bounded).
    let deadline = Instant::now() + Duration::from_secs(120);
    while arrivals.lock().unwrap().len() < events && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let sent = sent.lock().unwrap().clone();
    let arrivals = arrivals.lock().unwrap().clone();
    let last = arrivals
        .values()
        .max()
        .copied()
        .unwrap_or_else(Instant::now);
    let mut latencies: Vec<Duration> = sent
        .iter()
        .filter_map(|(id, at)| arrivals.get(id).map(|arrived| *arrived - *at))
        .collect();
    latencies.sort();
    let lost = events - latencies.len();
    let p = |q: f64| {
        latencies
            .get(((latencies.len().max(1) - 1) as f64 * q) as usize)
            .copied()
            .unwrap_or_default()
    };
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!(
        "{backend:<9} senders={senders:<3} events={events:<6} acked {:>6.0}/s  delivered {:>6.0}/s  p50 {:>7.2} ms  p99 {:>7.2} ms  lost {lost}",
        events as f64 / acked.as_secs_f64(),
        latencies.len() as f64 / (last - started).as_secs_f64(),
        ms(p(0.5)),
        ms(p(0.99)),
    );
    app.stop().await.unwrap();
}

fn main() {
    signalbox::install_crypto_provider();
    let events = env_usize("BENCH_EVENTS", 10_000);
    let senders = env_usize("BENCH_SENDERS", 32);
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let dir = tempfile::tempdir().unwrap();
        run(
            "sqlite",
            format!("sqlite://{}", dir.path().join("e2e.db").display()),
            events,
            senders,
        )
        .await;
        match std::env::var("TEST_POSTGRES_URL") {
            Ok(base) => {
                let schema = format!("sbx_e2e_{}", uuid::Uuid::now_v7().simple());
                let pool = sqlx::PgPool::connect(&base).await.unwrap();
                sqlx::query(sqlx::AssertSqlSafe(format!("CREATE SCHEMA {schema}")))
                    .execute(&pool)
                    .await
                    .unwrap();
                let sep = if base.contains('?') { '&' } else { '?' };
                run(
                    "postgres",
                    format!("{base}{sep}options=-c%20search_path%3D{schema}"),
                    events,
                    senders,
                )
                .await;
                sqlx::query(sqlx::AssertSqlSafe(format!("DROP SCHEMA {schema} CASCADE")))
                    .execute(&pool)
                    .await
                    .unwrap();
            }
            Err(_) => println!("postgres  skipped: set TEST_POSTGRES_URL to measure PostgreSQL"),
        }
    });
}
