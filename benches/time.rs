//! Time-based rules at size: events/s through a plain rule, a rule that counts over a window
//! (`history:`), and an absence check (`unless:`), on a store holding many events and pending
//! checks, on SQLite and PostgreSQL.
//!
//!     cargo bench --bench time
//!     BENCH_STORED=1000000 BENCH_CHECKS=100000 BENCH_EVENTS=20000 \
//!         TEST_POSTGRES_URL=postgres://postgres@127.0.0.1:5432/test cargo bench --bench time
//!
//! Per backend (a temp SQLite file; a fresh PostgreSQL schema), the store is opened (and
//! migrated), then seeded directly with multi-row INSERTs on its tables: `BENCH_STORED`
//! processed events (default 1,000,000) over `BENCH_CLAIMS` claims (default 100,000), in turn
//! `sms.delivery_failed`, `promise_to_pay.created` and `payment.received` (4, 3 and 3 of each
//! claim's 10), occurring at random over the last 60 days; and `BENCH_CHECKS` pending checks (default 100,000) of the absence rule,
//! each armed by a stored promise, one per claim. Then ANALYZE.
//!
//! Each rule set then processes `BENCH_EVENTS` new events (default 20,000), stored as pending
//! with `Store::insert_batch` beforehand, with the engine's own `Processor` in rounds of its
//! default batch size until none is pending: the timed part is leasing, gathering the facts the
//! rules read (history, follow-ups, pending checks), evaluating and completing (evaluations,
//! planned actions, checks written in the completion's transaction). No HTTP, no dispatcher:
//! planned actions (an `emit` of a type no rule listens to) stay in the outbox.
//!
//! - plain: `on: [sms.delivery_failed]`, `when: event.subject.claim != ()`, fires every time;
//! - count: the same with `history: failures {sms.delivery_failed, same: claim, within: 7d}`
//!   and `when: history.failures.count >= 3`; four new failures per claim, so it fires from
//!   the third (or earlier, with stored failures of the last 7 days);
//! - absence: `on: [promise_to_pay.created]` with `unless: payment.received, same: claim,
//!   within: 2 business days`; half the events are promises (each arms a check after its
//!   look-back query), half payments on claims with a stored pending check (each satisfies it).
//!
//! A warm-up of `BENCH_WARMUP` events (default 1,000) runs before each measured rule set.
//! `BENCH_PROFILE=1` also prints, after seeding, the history query's plan and the mean time of
//! each query the time paths add, called alone.

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use serde_json::json;
use signalbox::processor::{ProcessingConfig, Processor};
use signalbox::rules::live::LiveRules;
use signalbox::store::{Ingest, NewDelivery, Store};
use sqlx::QueryBuilder;
use sqlx::types::Json;

/// Rows per seeding statement (SQLite allows 32,766 bound values: 6 a row).
const ROWS_PER_STATEMENT: usize = 5_000;
/// Rows per seeding transaction.
const ROWS_PER_TRANSACTION: usize = 100_000;
/// The multiplier that scatters slots over claims (a prime, so coprime with any count of claims
/// it does not divide).
const SCATTER: usize = 48_271;

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.replace('_', "").parse().ok())
        .unwrap_or(default)
}

struct Sizes {
    stored: usize,
    claims: usize,
    checks: usize,
    events: usize,
    warmup: usize,
}

#[macro_use]
#[path = "common/direct.rs"]
mod direct;
use direct::Direct;

fn claim(c: usize) -> String {
    format!("C-{c:06}")
}

const TYPES: [&str; 3] = [
    "sms.delivery_failed",
    "promise_to_pay.created",
    "payment.received",
];

/// Stored event `k`: claim `k % claims`, its `k / claims`-th event, of type `TYPES[that % 3]`.
fn seeded_type(k: usize, claims: usize) -> &'static str {
    TYPES[(k / claims) % 3]
}

/// A deterministic, time-ordered id for stored event `k` (UUIDv7 at `base_ms` plus a
/// millisecond per thousand events, `k` in the random bits).
fn seeded_id(k: usize, base_ms: u64) -> String {
    let mut random = [0_u8; 10];
    random[2..].copy_from_slice(&(k as u64).to_be_bytes());
    let uuid =
        uuid::Builder::from_unix_timestamp_millis(base_ms + (k / 1000) as u64, &random).into_uuid();
    format!("evt_{}", uuid.simple())
}

/// Seeds the stored events and pending checks; returns how many checks were seeded.
async fn seed(direct: &Direct, sizes: &Sizes, absence_rule: &str) -> usize {
    let now = Utc::now();
    // Before any id the engine makes from here on.
    let base_ms = (now.timestamp_millis() - 600_000) as u64;
    let window_ms: u64 = 60 * 24 * 3600 * 1000;
    let jsonb = direct.jsonb();
    let started = Instant::now();
    let events_sql = format!(
        "INSERT INTO events (id, source, source_event_id, type, occurred_at, received_at, subject,
            amount_value, amount_currency, data, payload, state, processed_at)
         SELECT column1, 'bench', column2, column3, column4, column4, column5,
            column6, CASE WHEN column6 IS NULL THEN NULL ELSE 'EUR' END, '{{}}'{jsonb}, '{{}}'{jsonb},
            'processed', column4
         FROM (VALUES "
    );
    let mut k = 0;
    while k < sizes.stored {
        let end = (k + ROWS_PER_TRANSACTION).min(sizes.stored);
        on_direct!(direct, pool => {
            let mut tx = pool.begin().await.expect("begin");
            for from in (k..end).step_by(ROWS_PER_STATEMENT) {
                let to = (from + ROWS_PER_STATEMENT).min(end);
                let mut insert = QueryBuilder::new(events_sql.as_str());
                let mut rows = insert.separated(", ");
                for k in from..to {
                    let c = k % sizes.claims;
                    let kind = seeded_type(k, sizes.claims);
                    let mut rng = fastrand::Rng::with_seed(k as u64);
                    let occurred = now - chrono::Duration::milliseconds(rng.u64(0..window_ms) as i64);
                    let subject = json!({"claim": claim(c), "account": format!("A-{:06}", c / 4)});
                    let amount = (kind != TYPES[0]).then_some("100.00");
                    rows.push("(");
                    rows.push_bind_unseparated(seeded_id(k, base_ms));
                    rows.push_unseparated(", ");
                    rows.push_bind_unseparated(format!("seed-{k}"));
                    rows.push_unseparated(", ");
                    rows.push_bind_unseparated(kind);
                    rows.push_unseparated(", ");
                    rows.push_bind_unseparated(occurred);
                    rows.push_unseparated(", ");
                    rows.push_bind_unseparated(Json(subject));
                    rows.push_unseparated(", ");
                    rows.push_bind_unseparated(amount);
                    rows.push_unseparated(")");
                }
                insert.push(") AS v");
                insert.build().execute(&mut *tx).await.expect("insert events");
            }
            tx.commit().await.expect("commit");
        });
        k = end;
        if k % 500_000 == 0 && k < sizes.stored {
            eprintln!(
                "  seeding: {k} events ({:.0} s)",
                started.elapsed().as_secs_f64()
            );
        }
    }
    let events_took = started.elapsed();

    // Check i: claim i % claims, armed by that claim's (1 + 3r)-th event (a promise), r = i /
    // claims; skipped where the claim has no such stored event.
    let started = Instant::now();
    let armed: Vec<(usize, usize)> = (0..sizes.checks)
        .map(|i| {
            let c = i % sizes.claims;
            (c, (1 + 3 * (i / sizes.claims)) * sizes.claims + c)
        })
        .filter(|(_, k)| *k < sizes.stored)
        .collect();
    let checks_sql = format!(
        "INSERT INTO checks (id, rule_id, event_id, subject_ref, awaits, deadline_ms, status, created_at, updated_at)
         SELECT column1, '{absence_rule}', column2, column3, '[\"payment.received\"]'{jsonb}, column4, 'pending', column5, column5
         FROM (VALUES "
    );
    for chunk in armed.chunks(ROWS_PER_TRANSACTION) {
        on_direct!(direct, pool => {
            let mut tx = pool.begin().await.expect("begin");
            for rows_of in chunk.chunks(ROWS_PER_STATEMENT) {
                let mut insert = QueryBuilder::new(checks_sql.as_str());
                let mut rows = insert.separated(", ");
                for (c, k) in rows_of {
                    let deadline = now + chrono::Duration::hours(24 + (*k % 96) as i64);
                    rows.push("(");
                    rows.push_bind_unseparated(format!("chk_{}", uuid::Uuid::now_v7().simple()));
                    rows.push_unseparated(", ");
                    rows.push_bind_unseparated(seeded_id(*k, base_ms));
                    rows.push_unseparated(", ");
                    rows.push_bind_unseparated(format!("claim:{}", claim(*c)));
                    rows.push_unseparated(", ");
                    rows.push_bind_unseparated(deadline.timestamp_millis());
                    rows.push_unseparated(", ");
                    rows.push_bind_unseparated(now);
                    rows.push_unseparated(")");
                }
                insert.push(") AS v");
                insert.build().execute(&mut *tx).await.expect("insert checks");
            }
            tx.commit().await.expect("commit");
        });
    }
    let checks_took = started.elapsed();
    let started = Instant::now();
    for table in ["events", "checks", "evaluations", "actions"] {
        direct.execute(&format!("ANALYZE {table}")).await;
    }
    println!(
        "  seeded {} events in {:.1} s ({:.0}/s), {} pending checks in {:.1} s, ANALYZE {:.1} s",
        sizes.stored,
        events_took.as_secs_f64(),
        sizes.stored as f64 / events_took.as_secs_f64(),
        armed.len(),
        checks_took.as_secs_f64(),
        started.elapsed().as_secs_f64()
    );
    armed.len()
}

const PLAIN: &str = r#"version: 1
id: plain
on: [sms.delivery_failed]
when: event.subject.claim != ()
actions:
  - type: emit
    event_type: bench.noted
    subject: { claim: "{{ event.subject.claim }}" }
"#;

const COUNT: &str = r#"version: 1
id: count
on: [sms.delivery_failed]
history:
  failures: { events: sms.delivery_failed, same: claim, within: 7d }
when: event.subject.claim != () && history.failures.count >= 3
actions:
  - type: emit
    event_type: bench.noted
    subject: { claim: "{{ event.subject.claim }}" }
"#;

const ABSENCE: &str = r#"version: 1
id: absence
on: [promise_to_pay.created]
unless:
  event: payment.received
  same: claim
  within: 2 business days
actions:
  - type: emit
    event_type: bench.noted
    subject: { claim: "{{ event.subject.claim }}" }
"#;

#[derive(Clone, Copy, PartialEq)]
enum Set {
    Plain,
    Count,
    Absence,
}

impl Set {
    fn name(self) -> &'static str {
        match self {
            Self::Plain => "plain",
            Self::Count => "count",
            Self::Absence => "absence",
        }
    }

    fn rule(self) -> &'static str {
        match self {
            Self::Plain => PLAIN,
            Self::Count => COUNT,
            Self::Absence => ABSENCE,
        }
    }
}

/// Hands out claims no earlier batch used (scattered over the stored claims).
struct Slots {
    next: usize,
    claims: usize,
}

impl Slots {
    fn take(&mut self, n: usize) -> Vec<usize> {
        let taken = (self.next..self.next + n)
            .map(|slot| (slot * SCATTER) % self.claims)
            .collect();
        self.next += n;
        taken
    }
}

/// `n` new events for `set`: four failures per claim (plain, count), or alternating promises
/// and payments on claims of their own (absence).
fn new_events(
    set: Set,
    n: usize,
    slots: &mut Slots,
    run: &str,
) -> Vec<signalbox::normalize::Event> {
    let now = Utc::now();
    let (claims, kinds): (Vec<usize>, Vec<&str>) = match set {
        Set::Plain | Set::Count => {
            let claims = slots.take(n.div_ceil(4));
            let per_round = claims.len();
            (0..n).map(|j| (claims[j % per_round], TYPES[0])).unzip()
        }
        Set::Absence => {
            let claims = slots.take(n);
            (0..n)
                .map(|j| (claims[j], if j % 2 == 0 { TYPES[1] } else { TYPES[2] }))
                .unzip()
        }
    };
    claims
        .iter()
        .zip(kinds)
        .enumerate()
        .map(|(j, (c, kind))| {
            let at: DateTime<Utc> = now + chrono::Duration::milliseconds(j as i64);
            let mut value = json!({
                "type": kind, "source": "bench", "source_event_id": format!("{run}-{j}"),
                "occurred_at": at.to_rfc3339(),
                "subject": {"claim": claim(*c), "account": format!("A-{:06}", c / 4)},
                "data": {"channel": "sms", "providerName": "bench"}
            });
            if kind != TYPES[0] {
                value["amount"] = json!({"value": "100.00", "currency": "EUR"});
            }
            signalbox::normalize::canonical::parse_value(value, now).expect("a canonical event")
        })
        .collect()
}

async fn ingest(store: &Store, events: Vec<signalbox::normalize::Event>) {
    for chunk in events.chunks(1000) {
        let ingest = Ingest {
            delivery: NewDelivery {
                id: NewDelivery::new_id(),
                source: "bench".into(),
                received_at: Utc::now(),
                headers: json!({}),
                body: bytes::Bytes::from_static(b"[]"),
                verification: "unsigned",
                reason: None,
                body_size: None,
                token: None,
            },
            events: chunk.to_vec(),
        };
        store.insert_batch(&[ingest]).await.expect("events stored");
    }
}

/// Processes until nothing is pending; returns the time it took.
async fn drain(processor: &Processor, store: &Store) -> Duration {
    let started = Instant::now();
    loop {
        let taken = processor.round().await.expect("a processing round");
        if taken == 0 && store.count_events().await.expect("count").0 == 0 {
            return started.elapsed();
        }
    }
}

struct Measured {
    set: Set,
    events: usize,
    took: Duration,
    notes: String,
}

impl Measured {
    fn per_second(&self) -> f64 {
        self.events as f64 / self.took.as_secs_f64()
    }
}

async fn measure(
    store: &Store,
    direct: &Direct,
    set: Set,
    sizes: &Sizes,
    slots: &mut Slots,
) -> Measured {
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::write(dir.path().join("rule.yaml"), set.rule()).expect("rule written");
    let clock = signalbox::clock::SystemClock::shared();
    let calendars = signalbox::config::Config::default()
        .calendars()
        .expect("built-in calendars");
    let rules = LiveRules::start(dir.path(), clock.clone(), false, store, calendars).await;
    assert!(rules.in_force(), "the {} rule loads", set.name());
    let processor = Processor::new(
        store.clone(),
        rules,
        ProcessingConfig::default(),
        Arc::default(),
        None,
        clock,
        Arc::default(),
    );
    let run = uuid::Uuid::now_v7().simple().to_string();
    ingest(
        store,
        new_events(set, sizes.warmup, slots, &format!("{run}-w")),
    )
    .await;
    drain(&processor, store).await;
    let checks_before = direct
        .counts(
            "SELECT status, COUNT(*) FROM checks WHERE rule_id = $1 GROUP BY status",
            "absence",
        )
        .await;
    let fired_before = fired_count(direct, set.name()).await;
    ingest(store, new_events(set, sizes.events, slots, &run)).await;
    let took = drain(&processor, store).await;
    let fired = fired_count(direct, set.name()).await - fired_before;
    let notes = if set == Set::Absence {
        let after = direct
            .counts(
                "SELECT status, COUNT(*) FROM checks WHERE rule_id = $1 GROUP BY status",
                "absence",
            )
            .await;
        let count = |rows: &[(String, i64)], status: &str| {
            rows.iter()
                .find(|(s, _)| s == status)
                .map_or(0, |(_, n)| *n)
        };
        let total = |rows: &[(String, i64)]| rows.iter().map(|(_, n)| n).sum::<i64>();
        let satisfied = count(&after, "satisfied") - count(&checks_before, "satisfied");
        format!(
            "{} checks armed, {satisfied} satisfied; {} pending at the end",
            total(&after) - total(&checks_before),
            count(&after, "pending")
        )
    } else {
        format!("fired {:.2}/event", fired as f64 / sizes.events as f64)
    };
    Measured {
        set,
        events: sizes.events,
        took,
        notes,
    }
}

async fn fired_count(direct: &Direct, rule: &str) -> i64 {
    direct
        .counts(
            "SELECT outcome, COUNT(*) FROM evaluations WHERE rule_id = $1 GROUP BY outcome",
            rule,
        )
        .await
        .iter()
        .filter(|(outcome, _)| outcome == "fired")
        .map(|(_, n)| n)
        .sum()
}

async fn run(backend: &str, url: &str, sizes: &Sizes) -> Vec<Measured> {
    println!(
        "{backend}: seeding {} events over {} claims and {} pending checks",
        sizes.stored, sizes.claims, sizes.checks
    );
    let store = Store::open(url, &Default::default())
        .await
        .expect("store opens");
    let direct = Direct::connect(url).await;
    seed(&direct, sizes, "absence").await;
    if std::env::var("BENCH_PROFILE").is_ok_and(|v| v == "1") {
        profile(&store, sizes).await;
    }
    let mut slots = Slots {
        next: 0,
        claims: sizes.claims,
    };
    let mut measured = Vec::new();
    for set in [Set::Plain, Set::Count, Set::Absence] {
        let m = measure(&store, &direct, set, sizes, &mut slots).await;
        println!(
            "  {:<8} {:>6} events in {:>6.2} s: {:>7.0} events/s  ({})",
            set.name(),
            m.events,
            m.took.as_secs_f64(),
            m.per_second(),
            m.notes
        );
        measured.push(m);
    }
    direct.close().await;
    store.close().await;
    measured
}

/// The queries the time paths add, each alone on the seeded store: how the database plans the
/// history query, and the mean time of each call (one at a time, as `gather` makes them).
async fn profile(store: &Store, sizes: &Sizes) {
    use signalbox::store::HistoryQuery;
    let now = Utc::now();
    let far = "9999-12-31T23:59:59Z".parse().expect("a time");
    let week_ago = now - chrono::Duration::days(7);
    let failures = vec![TYPES[0].to_owned()];
    let payments = vec![TYPES[2].to_owned()];
    let claims: Vec<String> = (0..2000)
        .map(|i| claim((i * SCATTER + 7) % sizes.claims))
        .collect();
    let window = |value, types, after, until| HistoryQuery {
        key: "claim",
        value: Some(value),
        types,
        after,
        until,
        limit: 100,
    };
    let plan = store
        .explain_history(&window(&claims[0], &failures, week_ago, now))
        .await
        .expect("explain");
    println!("  history plan: {}", plan.replace('\n', " / "));
    let timed = |what: &str, calls: usize, took: Duration, rows: usize| {
        println!(
            "  {what:<40} {:>7.1} us/call, {:.2} rows/call",
            took.as_secs_f64() * 1e6 / calls.max(1) as f64,
            rows as f64 / calls.max(1) as f64
        );
    };
    let (started, mut rows) = (Instant::now(), 0);
    for c in &claims {
        let q = window(c, &failures, week_ago, now);
        rows += store.history(&q).await.expect("history").len();
    }
    timed(
        "history (count: failures in 7d)",
        claims.len(),
        started.elapsed(),
        rows,
    );
    let (started, mut rows) = (Instant::now(), 0);
    for c in &claims {
        let q = window(c, &payments, now, far);
        rows += store.history(&q).await.expect("history").len();
    }
    timed(
        "history (unless look-back)",
        claims.len(),
        started.elapsed(),
        rows,
    );
    let (started, mut first) = (Instant::now(), Vec::new());
    for c in &claims {
        let refs = vec![format!("claim:{c}")];
        let found = store
            .pending_checks_for(&refs, TYPES[2], 100)
            .await
            .expect("checks");
        first.extend(found.into_iter().map(|c| c.event_id));
    }
    timed(
        "pending_checks_for (a payment)",
        claims.len(),
        started.elapsed(),
        first.len(),
    );
    let started = Instant::now();
    for id in &first {
        store.get_event(id).await.expect("event").expect("stored");
    }
    timed(
        "get_event (a check's first event)",
        first.len(),
        started.elapsed(),
        first.len(),
    );
}

fn print_table(results: &[(&str, Vec<Measured>)]) {
    println!();
    println!("| store | rules | events/s | time per event / plain's | notes |");
    println!("|---|---|---|---|---|");
    for (backend, measured) in results {
        let plain = measured[0].per_second();
        for m in measured {
            println!(
                "| {backend} | {} | {:.0} | {:.2} | {} |",
                m.set.name(),
                m.per_second(),
                plain / m.per_second(),
                m.notes
            );
        }
    }
}

fn main() {
    signalbox::install_crypto_provider();
    let sizes = Sizes {
        stored: env_usize("BENCH_STORED", 1_000_000),
        claims: env_usize("BENCH_CLAIMS", 100_000).max(1),
        checks: env_usize("BENCH_CHECKS", 100_000),
        events: env_usize("BENCH_EVENTS", 20_000).max(4),
        warmup: env_usize("BENCH_WARMUP", 1_000).max(4),
    };
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    runtime.block_on(async {
        let mut results = Vec::new();
        let dir = tempfile::tempdir().expect("temp dir");
        let sqlite = format!("sqlite://{}", dir.path().join("time.db").display());
        results.push(("SQLite", run("sqlite", &sqlite, &sizes).await));

        match std::env::var("TEST_POSTGRES_URL") {
            Ok(base) => {
                let schema = format!("sbx_time_{}", uuid::Uuid::now_v7().simple());
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
                results.push(("PostgreSQL", run("postgres", &url, &sizes).await));
                let drop = format!("DROP SCHEMA {schema} CASCADE");
                sqlx::query(sqlx::AssertSqlSafe(drop))
                    .execute(&pool)
                    .await
                    .expect("drop schema");
            }
            Err(_) => println!("postgres  skipped: set TEST_POSTGRES_URL to measure PostgreSQL"),
        }
        print_table(&results);
    });
}
