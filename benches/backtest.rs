//! Backtest throughput: events/s of a backtest (reading the range from the store, then running
//! it on the virtual clock) over 100,000 and 1,000,000 stored events, on SQLite and PostgreSQL.
//!
//!     cargo bench --bench backtest
//!     BENCH_SIZES=100000 TEST_POSTGRES_URL=postgres://postgres@127.0.0.1:5432/test \
//!         cargo bench --bench backtest
//!
//! Per size and backend (a temp SQLite file; a fresh PostgreSQL schema), the store is opened
//! (and migrated), then seeded directly with multi-row INSERTs: the events (default
//! `BENCH_SIZES` = `100000,1000000`), processed, over a claim per 10 events, in turn
//! `sms.delivery_failed`, `promise_to_pay.created` (100.00 EUR) and `payment.received` (4, 3
//! and 3 of each claim's 10), received over 30 days and occurring up to an hour before (so
//! arrivals are out of order), processed a second after they arrive; and an evaluation
//! (fired) of the `plain` rule for every promise, as live would have recorded. Then ANALYZE.
//!
//! The rule set is the one of the 2026-12-01 measurement in docs/benchmarks.md: `plain`
//! (promises of at least 100), `count` (a third failed SMS within 7 days, same claim) and
//! `absence` (a promise unless a payment of at least its amount within 2 DE business days,
//! same claim: each promise waits for its deadline on the clock). Timed: `backtest::read` (the
//! range's events, page by page, and their recorded outcomes) and `backtest::backtest` (the run
//! and the diff), as `signalbox backtest` and `POST /v1/backtest` call them.

use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use serde_json::json;
use signalbox::rules::RuleSet;
use signalbox::store::Store;
use sqlx::QueryBuilder;
use sqlx::types::Json;

/// Rows per seeding statement (SQLite allows 32,766 bound values: 7 a row).
const ROWS_PER_STATEMENT: usize = 4_000;
/// Rows per seeding transaction.
const ROWS_PER_TRANSACTION: usize = 100_000;
/// Days the seeded events arrive over.
const DAYS: i64 = 30;

const RULES: &str = r#"version: 1
rules:
  - id: plain
    on: [promise_to_pay.created]
    when: event.amount.value >= 100
    actions: [{ type: emit, event_type: bench.big }]
  - id: count
    on: [sms.delivery_failed]
    history:
      failures: { events: sms.delivery_failed, same: claim, within: 7d }
    when: history.failures.count >= 3
    actions: [{ type: emit, event_type: bench.unreachable }]
  - id: absence
    on: [promise_to_pay.created]
    calendar: DE
    unless:
      event: payment.received
      same: claim
      where: next.amount.value >= event.amount.value
      within: 2 business days
    actions: [{ type: emit, event_type: bench.unkept }]
"#;

const TYPES: [&str; 3] = [
    "sms.delivery_failed",
    "promise_to_pay.created",
    "payment.received",
];

#[macro_use]
#[path = "common/direct.rs"]
mod direct;
use direct::Direct;

/// A deterministic, time-ordered id for event `k` received at `ms` (UUIDv7, `k` in the
/// random bits).
fn seeded_id(k: usize, ms: i64) -> String {
    let mut random = [0_u8; 10];
    random[2..].copy_from_slice(&(k as u64).to_be_bytes());
    let uuid = uuid::Builder::from_unix_timestamp_millis(ms as u64, &random).into_uuid();
    format!("evt_{}", uuid.simple())
}

/// Seeds `n` processed events received in `[from, from + DAYS)`, and the `plain` rule's
/// evaluations; returns how long it took.
async fn seed(direct: &Direct, n: usize, from: DateTime<Utc>) -> Duration {
    let started = Instant::now();
    let claims = (n / 10).max(1);
    let span_ms = DAYS * 86_400_000;
    let jsonb = direct.jsonb();
    let sql = format!(
        "INSERT INTO events (id, source, source_event_id, type, occurred_at, received_at, subject,
            amount_value, amount_currency, data, payload, state, processed_at)
         SELECT column1, 'bench', column2, column3, column4, column5, column6,
            column7, CASE WHEN column7 IS NULL THEN NULL ELSE 'EUR' END, '{{}}'{jsonb}, '{{}}'{jsonb},
            'processed', column8
         FROM (VALUES "
    );
    let mut k = 0;
    while k < n {
        let end = (k + ROWS_PER_TRANSACTION).min(n);
        on_direct!(direct, pool => {
            let mut tx = pool.begin().await.expect("begin");
            for first in (k..end).step_by(ROWS_PER_STATEMENT) {
                let last = (first + ROWS_PER_STATEMENT).min(end);
                let mut insert = QueryBuilder::new(sql.as_str());
                let mut rows = insert.separated(", ");
                for k in first..last {
                    let claim = k % claims;
                    let kind = TYPES[[0, 0, 0, 0, 1, 1, 1, 2, 2, 2][(k / claims) % 10]];
                    // Arrivals in id order, spread evenly over the span.
                    let received_ms = from.timestamp_millis() + (k as i64 * span_ms) / n as i64;
                    let received = DateTime::from_timestamp_millis(received_ms).expect("a time");
                    let mut rng = fastrand::Rng::with_seed(k as u64);
                    let occurred = received - chrono::Duration::milliseconds(rng.i64(0..3_600_000));
                    let amount = (kind != TYPES[0]).then_some("100.00");
                    rows.push("(");
                    rows.push_bind_unseparated(seeded_id(k, received_ms));
                    rows.push_unseparated(", ");
                    rows.push_bind_unseparated(format!("seed-{k}"));
                    rows.push_unseparated(", ");
                    rows.push_bind_unseparated(kind);
                    rows.push_unseparated(", ");
                    rows.push_bind_unseparated(occurred);
                    rows.push_unseparated(", ");
                    rows.push_bind_unseparated(received);
                    rows.push_unseparated(", ");
                    rows.push_bind_unseparated(Json(json!({"claim": format!("C-{claim:07}")})));
                    rows.push_unseparated(", ");
                    rows.push_bind_unseparated(amount);
                    rows.push_unseparated(", ");
                    rows.push_bind_unseparated(received + chrono::Duration::seconds(1));
                    rows.push_unseparated(")");
                }
                insert.push(") AS v");
                insert.build().execute(&mut *tx).await.expect("insert events");
            }
            tx.commit().await.expect("commit");
        });
        k = end;
    }
    direct
        .execute(&format!(
            "INSERT INTO evaluations (id, event_id, rule_id, rule_version, outcome, actions, logs,
                duration_us, evaluated_at)
             SELECT 'evl_' || id, id, 'plain', 'bench', 'fired', '[]'{jsonb}, '[]'{jsonb}, 0, processed_at
             FROM events WHERE type = 'promise_to_pay.created'"
        ))
        .await;
    for table in ["events", "evaluations"] {
        direct.execute(&format!("ANALYZE {table}")).await;
    }
    started.elapsed()
}

/// The process's peak resident memory so far, in MiB (Linux; 0 elsewhere).
fn peak_mib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
        })
        .map_or(0, |kib| kib / 1024)
}

struct Measured {
    backend: &'static str,
    stored: usize,
    events: usize,
    read: Duration,
    run: Duration,
    firings: usize,
    peak_mib: u64,
}

async fn measure(backend: &'static str, url: &str, n: usize, set: &RuleSet) -> Measured {
    let store = Store::open(url, &Default::default())
        .await
        .expect("store opens");
    let direct = Direct::connect(url).await;
    // Whole milliseconds, as the seeded times are.
    let to = DateTime::from_timestamp_millis(Utc::now().timestamp_millis()).expect("a time");
    let from = to - chrono::Duration::days(DAYS);
    let seeded = seed(&direct, n, from).await;
    println!(
        "{backend}: seeded {n} events in {:.1} s",
        seeded.as_secs_f64()
    );
    console_reads(&store, to).await;
    let started = Instant::now();
    let recorded = signalbox::rules::backtest::read(&store, set, from, to, None, &mut |_| {})
        .await
        .expect("the range is read");
    let read = started.elapsed();
    let stored = recorded.events.len();
    let started = Instant::now();
    let report = signalbox::rules::backtest::backtest(set, recorded, from, to, &mut |_, _| true)
        .expect("the backtest runs");
    let run = started.elapsed();
    let firings: usize = report.rules.iter().map(|r| r.now).sum();
    let plain = report.rules.iter().find(|r| r.rule == "plain");
    assert!(
        plain.is_some_and(|p| p.only_now.is_empty() && p.only_then.is_empty()),
        "the plain rule agrees with what was seeded as recorded"
    );
    let m = Measured {
        backend,
        stored,
        events: report.events,
        read,
        run,
        firings,
        peak_mib: peak_mib(),
    };
    println!(
        "  read {} in {:.2} s, ran {} in {:.2} s ({} firings): {:.0} events/s in all, peak RSS {} MiB",
        m.stored,
        m.read.as_secs_f64(),
        m.events,
        m.run.as_secs_f64(),
        m.firings,
        m.events as f64 / (m.read + m.run).as_secs_f64(),
        m.peak_mib
    );
    direct.close().await;
    store.close().await;
    m
}

/// What the console's pages read from the store, on this many stored events: the overview
/// (hourly counts of the last 24 hours, the queues, the rules' statistics), the first page of
/// events, and one claim's timeline; each timed alone, the best of three (a page asks them
/// over HTTP, the HTML and scripts being a few kilobytes from memory).
async fn console_reads(store: &Store, now: DateTime<Utc>) {
    let day = now - chrono::Duration::hours(24);
    let best = |times: [Duration; 3]| times.into_iter().min().unwrap_or_default();
    let mut overview = [Duration::ZERO; 3];
    let mut events = [Duration::ZERO; 3];
    let mut timeline = [Duration::ZERO; 3];
    for i in 0..3 {
        let started = Instant::now();
        store.hourly_counts(day, 24).await.expect("hourly counts");
        store.queue_counts(now).await.expect("queue counts");
        store.rule_stats(day).await.expect("rule statistics");
        overview[i] = started.elapsed();
        let started = Instant::now();
        let filter = signalbox::store::EventFilter {
            limit: 50,
            max_bytes: 1 << 20,
            ..Default::default()
        };
        store.list_events(&filter).await.expect("events page");
        events[i] = started.elapsed();
        let started = Instant::now();
        signalbox::api::timeline::timeline(store, "claim", "C-0000042", 50, None)
            .await
            .expect("a timeline");
        timeline[i] = started.elapsed();
    }
    println!(
        "  console reads: overview {:.1} ms, first events page {:.1} ms, a claim's timeline {:.1} ms",
        best(overview).as_secs_f64() * 1000.0,
        best(events).as_secs_f64() * 1000.0,
        best(timeline).as_secs_f64() * 1000.0
    );
}

fn main() {
    signalbox::install_crypto_provider();
    let sizes: Vec<usize> = std::env::var("BENCH_SIZES")
        .unwrap_or_else(|_| "100000,1000000".into())
        .split(',')
        .filter_map(|s| s.trim().replace('_', "").parse().ok())
        .collect();
    let calendars = signalbox::config::Config::default()
        .calendars()
        .expect("built-in calendars");
    let texts = [("rules.yaml".into(), RULES.to_owned())].into();
    let set = RuleSet::compile_with(&texts, &calendars).expect("the bench's rules compile");
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    runtime.block_on(async {
        let mut results = Vec::new();
        for &n in &sizes {
            let dir = tempfile::tempdir().expect("temp dir");
            let sqlite = format!("sqlite://{}", dir.path().join("backtest.db").display());
            results.push(measure("SQLite", &sqlite, n, &set).await);
            let Ok(base) = std::env::var("TEST_POSTGRES_URL") else {
                println!("postgres: skipped (set TEST_POSTGRES_URL to measure PostgreSQL)");
                continue;
            };
            let schema = format!("sbx_backtest_{}", uuid::Uuid::now_v7().simple());
            let pool = sqlx::PgPool::connect(&base)
                .await
                .expect("postgres reachable");
            sqlx::query(sqlx::AssertSqlSafe(format!("CREATE SCHEMA {schema}")))
                .execute(&pool)
                .await
                .expect("schema");
            let sep = if base.contains('?') { '&' } else { '?' };
            let url = format!("{base}{sep}options=-c%20search_path%3D{schema}");
            results.push(measure("PostgreSQL", &url, n, &set).await);
            sqlx::query(sqlx::AssertSqlSafe(format!("DROP SCHEMA {schema} CASCADE")))
                .execute(&pool)
                .await
                .expect("drop schema");
        }
        println!();
        println!("| store | stored events | read | run | events/s (read + run) | events/s (run) | firings | peak RSS |");
        println!("|---|---|---|---|---|---|---|---|");
        for m in &results {
            println!(
                "| {} | {} | {:.1} s | {:.1} s | {:.0} | {:.0} | {} | {} MiB |",
                m.backend,
                m.stored,
                m.read.as_secs_f64(),
                m.run.as_secs_f64(),
                m.events as f64 / (m.read + m.run).as_secs_f64(),
                m.events as f64 / m.run.as_secs_f64(),
                m.firings,
                m.peak_mib
            );
        }
    });
}
