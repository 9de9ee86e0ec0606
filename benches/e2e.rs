//! End to end: signed Receeve webhook in -> rule -> webhook action out to a loopback sink.
//!
//!     cargo bench --bench e2e
//!     BENCH_EVENTS=10000 BENCH_SENDERS=32 TEST_POSTGRES_URL=postgres://postgres@127.0.0.1:5432/test cargo bench --bench e2e
//!
//! The engine, the senders and the sink share this process (and the machine's cores). Latency
//! is from sending the provider's webhook to the sink receiving the action's request; events/s
//! is events delivered to the sink per second of the whole run. Lost = planned actions that
//! never reached the sink (must be 0).
//!
//! `BENCH_ACTIONS=4` gives the rule that many webhook actions (1 to 4; default 1): an event
//! counts as delivered once all of its actions arrived, and its latency runs to the last. The
//! line also gives the CPU time of the whole process (engine, senders and sink) per event.
//!
//! Overload (open loop: requests leave at a fixed rate whatever the answers take):
//!
//!     BENCH_RATE=6000 BENCH_SECONDS=60 cargo bench --bench e2e
//!
//! sends `BENCH_RATE` webhooks a second for `BENCH_SECONDS`, each with a 10 s timeout, and
//! reports the acknowledgements (201, 503 with `Retry-After`, timeouts, other), their
//! latency, the backlog when sending stops and how fast it drains.

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

/// Where the sink records action `k` of the event `id` (the first action's is the id itself).
fn arrival_key(id: &str, k: usize) -> String {
    if k == 0 {
        id.to_owned()
    } else {
        format!("{id}~{k}")
    }
}

/// CPU seconds this process has used (user and system), from `/proc/self/stat`.
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // The fields after the command name (which is in parentheses and may hold spaces).
    let rest = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    // utime and stime are fields 14 and 15 of the line, 12 and 13 after the name.
    (ticks(11) + ticks(12)) / 100.0
}

async fn run(backend: &str, url: String, events: usize, senders: usize, actions: usize) {
    let (sink_url, arrivals) = sink().await;
    let dir = tempfile::tempdir().unwrap();
    let app = engine(&url, dir.path(), &sink_url, actions).await;
    let endpoint = format!("http://{}/webhooks/receeve", app.addr);
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(senders)
        .build()
        .unwrap();
    let run_id = uuid::Uuid::now_v7().simple().to_string();

    let sent: Arc<Mutex<HashMap<String, Instant>>> = Arc::default();
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let started = Instant::now();
    let cpu_at_start = cpu_seconds();
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
    while arrivals.lock().unwrap().len() < events * actions && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let cpu = cpu_seconds() - cpu_at_start;
    let sent = sent.lock().unwrap().clone();
    let arrivals = arrivals.lock().unwrap().clone();
    let last = arrivals
        .values()
        .max()
        .copied()
        .unwrap_or_else(Instant::now);
    // An event is delivered when its last action arrived.
    let mut latencies: Vec<Duration> = sent
        .iter()
        .filter_map(|(id, at)| {
            (0..actions)
                .map(|k| arrivals.get(&arrival_key(id, k)).copied())
                .collect::<Option<Vec<Instant>>>()
                .and_then(|times| times.into_iter().max())
                .map(|arrived| arrived - *at)
        })
        .collect();
    latencies.sort();
    let lost = events * actions - arrivals.len().min(events * actions);
    let p = |q: f64| {
        latencies
            .get(((latencies.len().max(1) - 1) as f64 * q) as usize)
            .copied()
            .unwrap_or_default()
    };
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!(
        "{backend:<9} senders={senders:<3} events={events:<6} actions={actions} acked {:>6.0}/s  delivered {:>6.0} events/s  p50 {:>7.2} ms  p99 {:>7.2} ms  lost {lost} actions  CPU {:.3} ms/event",
        events as f64 / acked.as_secs_f64(),
        latencies.len() as f64 / (last - started).as_secs_f64(),
        ms(p(0.5)),
        ms(p(0.99)),
        cpu * 1000.0 / events as f64,
    );
    app.stop().await.unwrap();
}

/// What an open-loop sender saw of one request.
enum Answer {
    Stored(Duration),
    Refused { retry_after: bool, took: Duration },
    TimedOut,
    Other(String),
}

async fn overload(backend: &str, url: String, rate: usize, seconds: usize) {
    let (sink_url, arrivals) = sink().await;
    let dir = tempfile::tempdir().unwrap();
    let app = engine(&url, dir.path(), &sink_url, 1).await;
    let endpoint = format!("http://{}/webhooks/receeve", app.addr);
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let run_id = uuid::Uuid::now_v7().simple().to_string();
    let total = rate * seconds;
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let started = Instant::now();
    let mut tick = tokio::time::interval(Duration::from_millis(10));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let mut sent = 0;
    while sent < total {
        tick.tick().await;
        // Requests due by now at the rate, sent whether or not earlier ones were answered.
        let due = ((started.elapsed().as_secs_f64() * rate as f64) as usize).min(total);
        for i in sent..due {
            let (client, endpoint, tx) = (client.clone(), endpoint.clone(), tx.clone());
            let body = signed(&format!("{run_id}-{i}"));
            tokio::spawn(async move {
                let at = Instant::now();
                let answer = match client.post(&endpoint).body(body).send().await {
                    Ok(r) if r.status() == 201 => Answer::Stored(at.elapsed()),
                    Ok(r) if r.status() == 503 => Answer::Refused {
                        retry_after: r.headers().contains_key("retry-after"),
                        took: at.elapsed(),
                    },
                    Ok(r) => Answer::Other(r.status().to_string()),
                    Err(e) if e.is_timeout() => Answer::TimedOut,
                    Err(e) => Answer::Other(e.to_string()),
                };
                let _ = tx.send(answer);
            });
        }
        sent = due;
    }
    drop(tx);
    let sending = started.elapsed();
    let mut acks = Vec::new();
    let (mut refused, mut refused_without_retry_after, mut timed_out) = (0, 0, 0);
    let mut refusal_times = Vec::new();
    let mut other: HashMap<String, usize> = HashMap::new();
    while let Some(answer) = rx.recv().await {
        match answer {
            Answer::Stored(took) => acks.push(took),
            Answer::Refused { retry_after, took } => {
                refused += 1;
                refused_without_retry_after += usize::from(!retry_after);
                refusal_times.push(took);
            }
            Answer::TimedOut => timed_out += 1,
            Answer::Other(what) => *other.entry(what).or_default() += 1,
        }
    }
    let answered = started.elapsed();
    let delivered_when_answered = arrivals.lock().unwrap().len();
    let stored = acks.len();
    let deadline = Instant::now() + Duration::from_secs(600);
    while arrivals.lock().unwrap().len() < stored && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let drained = started.elapsed();
    let delivered = arrivals.lock().unwrap().len();
    acks.sort();
    refusal_times.sort();
    let p = |v: &[Duration], q: f64| {
        v.get(((v.len().max(1) - 1) as f64 * q) as usize)
            .copied()
            .unwrap_or_default()
            .as_secs_f64()
            * 1000.0
    };
    let backlog = stored.saturating_sub(delivered_when_answered);
    let drain = (drained - answered).as_secs_f64();
    println!(
        "{backend:<9} offered {rate}/s for {seconds} s ({:.1} s to send): stored {stored} (ack p50 {:.1} ms, p99 {:.1} ms), \
         503 {refused} (p99 {:.1} ms, without Retry-After {refused_without_retry_after}), timed out {timed_out}, other {other:?}; \
         delivered {delivered}, lost {}; backlog when the last answer came {backlog}, drained in {drain:.1} s ({:.0}/s); \
         delivered/s over the run {:.0}",
        sending.as_secs_f64(),
        p(&acks, 0.5),
        p(&acks, 0.99),
        p(&refusal_times, 0.99),
        stored.saturating_sub(delivered),
        if drain > 0.0 {
            backlog as f64 / drain
        } else {
            0.0
        },
        delivered as f64 / drained.as_secs_f64(),
    );
    app.stop().await.unwrap();
}

/// The engine with the bench's rule (`actions` webhook actions) and source, on `url`.
async fn engine(
    url: &str,
    dir: &std::path::Path,
    sink_url: &str,
    actions: usize,
) -> signalbox::app::App {
    let mut rule = "version: 1\nid: ptp_hook\non: [promise_to_pay.expired]\nactions:\n".to_owned();
    for k in 0..actions {
        let suffix = if k == 0 {
            String::new()
        } else {
            format!("~{k}")
        };
        rule.push_str(&format!("  - type: webhook\n    url: \"{sink_url}/{{{{ event.source_event_id }}}}{suffix}\"\n    body: {{ claim: \"{{{{ event.subject.claim }}}}\" }}\n"));
    }
    std::fs::write(dir.join("rule.yaml"), rule).unwrap();
    let mut config = Config {
        database_url: url.to_owned(),
        rules_dir: dir.to_owned(),
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
    signalbox::app::start(&config, listener)
        .await
        .expect("engine starts")
}

fn main() {
    signalbox::install_crypto_provider();
    let events = env_usize("BENCH_EVENTS", 10_000);
    let senders = env_usize("BENCH_SENDERS", 32);
    let rate = env_usize("BENCH_RATE", 0);
    let seconds = env_usize("BENCH_SECONDS", 60);
    let actions = env_usize("BENCH_ACTIONS", 1).clamp(1, 4);
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let sqlite = format!("sqlite://{}", dir.path().join("e2e.db").display());
        if rate > 0 {
            overload("sqlite", sqlite, rate, seconds).await;
        } else {
            run("sqlite", sqlite, events, senders, actions).await;
        }
        match std::env::var("TEST_POSTGRES_URL") {
            Ok(base) => {
                let schema = format!("sbx_e2e_{}", uuid::Uuid::now_v7().simple());
                let pool = sqlx::PgPool::connect(&base).await.unwrap();
                sqlx::query(sqlx::AssertSqlSafe(format!("CREATE SCHEMA {schema}")))
                    .execute(&pool)
                    .await
                    .unwrap();
                let sep = if base.contains('?') { '&' } else { '?' };
                let url = format!("{base}{sep}options=-c%20search_path%3D{schema}");
                if rate > 0 {
                    overload("postgres", url, rate, seconds).await;
                } else {
                    run("postgres", url, events, senders, actions).await;
                }
                sqlx::query(sqlx::AssertSqlSafe(format!("DROP SCHEMA {schema} CASCADE")))
                    .execute(&pool)
                    .await
                    .unwrap();
            }
            Err(_) => println!("postgres  skipped: set TEST_POSTGRES_URL to measure PostgreSQL"),
        }
    });
}
