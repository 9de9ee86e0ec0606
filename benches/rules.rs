//! Rule evaluation throughput: events/s on one core for 10, 100 and 1,000 rules, next to the
//! cost of evaluating the same compiled Rhai conditions directly, and allocations per event.
//!
//!     cargo bench --bench rules
//!
//! Rules are generated across the catalogue's event types (a `when` on source, claim and amount;
//! a webhook action with templated URL and body; one rule in 20 on a glob), and events are the
//! 102 documented examples, normalized: a realistic mix of types. Storage is not included.

use std::alloc::{GlobalAlloc, Layout, System};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use signalbox::normalize::Event;
use signalbox::providers::{Inbound, Registry, catalogue};
use signalbox::rules::{Outcome, RuleSet};
use signalbox::script::Condition;

struct Counting;

static ALLOCATIONS: AtomicU64 = AtomicU64::new(0);

// SAFETY: forwards to the system allocator; only counts calls.
#[allow(
    unsafe_code,
    reason = "a global allocator is unsafe to implement; it only counts and forwards"
)]
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as the caller's.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// The conditions of a mix. `selective`: alert on large amounts (a rule fires for a minority of
/// the events it sees). `always`: every rule that sees an event fires (the worst case: every
/// event renders actions).
fn condition(mix: &str, i: usize) -> String {
    match mix {
        "selective" => format!(
            r#"event.source != "test" && (event.subject.claim ?? "") != "C-{i}" && event.amount != () && minor_units(event.amount) >= {}"#,
            100_000 + (i % 5) * 1000
        ),
        _ => format!(
            r#"event.source != "test" && (event.subject.claim ?? "") != "C-{i}" && (event.amount == () || minor_units(event.amount) >= {})"#,
            (i % 5) * 1000
        ),
    }
}

fn rules(mix: &str, n: usize) -> RuleSet {
    let kinds: Vec<&str> = catalogue::entries().map(|e| e.kind).collect();
    let mut text = String::from("version: 1\nrules:\n");
    for i in 0..n {
        let on = if i % 20 == 0 {
            "sms.*".to_owned()
        } else {
            kinds[i % kinds.len()].to_owned()
        };
        text += &format!(
            "  - id: rule_{i}\n    on: [\"{on}\"]\n    when: '{}'\n    actions:\n      - type: webhook\n        url: \"https://hooks.example.com/r{i}/{{{{ event.source }}}}\"\n        body: {{ type: \"{{{{ event.type }}}}\", rule: r{i} }}\n",
            condition(mix, i)
        );
    }
    RuleSet::compile(&BTreeMap::from([(PathBuf::from("bench.yaml"), text)]))
        .expect("generated rules compile")
}

fn events() -> Vec<Event> {
    let registry = Registry::from_config(&Default::default()).unwrap();
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/providers");
    let mut events = Vec::new();
    for source in std::fs::read_dir(&root).unwrap() {
        let source = source.unwrap().path();
        if !source.is_dir() {
            continue;
        }
        let name = source.file_name().unwrap().to_string_lossy().into_owned();
        for file in std::fs::read_dir(&source).unwrap() {
            let path = file.unwrap().path();
            if !path.to_string_lossy().ends_with(".json")
                || path.to_string_lossy().ends_with(".headers.json")
            {
                continue;
            }
            let body = std::fs::read(&path).unwrap();
            let headers = Default::default();
            let inbound = Inbound {
                headers: &headers,
                body: &body,
                hint: None,
                received_at: chrono::Utc::now(),
            };
            events.extend(registry.get(&name).unwrap().parse(&inbound).unwrap());
        }
    }
    events
}

fn main() {
    let events = events();
    let now = chrono::Utc::now();
    println!("{} events in the mix, one core, no storage\n", events.len());
    println!(
        "{:>9}  {:>6}  {:>12}  {:>9}  {:>11}  {:>10}  {:>16}  {:>10}",
        "mix",
        "rules",
        "events/s",
        "us/event",
        "fired/event",
        "allocs/evt",
        "conditions only",
        "us/event"
    );
    for (mix, n) in [
        ("selective", 10),
        ("selective", 100),
        ("selective", 1000),
        ("always", 10),
        ("always", 100),
        ("always", 1000),
    ] {
        let set = rules(mix, n);
        // Warm up.
        for e in &events {
            set.evaluate(e, now);
        }
        let rounds = (200_000 / n).clamp(20, 2000);
        let allocs_before = ALLOCATIONS.load(Ordering::Relaxed);
        let started = Instant::now();
        let mut fired = 0usize;
        for _ in 0..rounds {
            for e in &events {
                fired += set
                    .evaluate(e, now)
                    .iter()
                    .filter(|x| matches!(x.outcome, Outcome::Fired { .. }))
                    .count();
            }
        }
        let elapsed = started.elapsed();
        let allocs = ALLOCATIONS.load(Ordering::Relaxed) - allocs_before;
        let evaluated = (rounds * events.len()) as f64;

        // The same conditions, compiled and evaluated directly against the rules whose type matches.
        let kinds: Vec<&str> = catalogue::entries().map(|e| e.kind).collect();
        let conditions: Vec<(String, Condition)> = (0..n)
            .map(|i| {
                let on = if i % 20 == 0 {
                    "sms.*".to_owned()
                } else {
                    kinds[i % kinds.len()].to_owned()
                };
                (on, Condition::compile(&condition(mix, i)).unwrap())
            })
            .collect();
        let dynamics: Vec<_> = events
            .iter()
            .map(|e| signalbox::script::event_value(e).unwrap())
            .collect();
        let session = signalbox::script::Session::new(now, Default::default());
        let started = Instant::now();
        for _ in 0..rounds {
            for (e, d) in events.iter().zip(&dynamics) {
                for (on, c) in &conditions {
                    if signalbox::script::bindings::glob_matches(on, e.kind.as_str()) {
                        std::hint::black_box(c.holds(d, &session).unwrap());
                    }
                }
            }
        }
        let direct: Duration = started.elapsed();
        println!(
            "{mix:>9}  {n:>6}  {:>12.0}  {:>9.2}  {:>11.2}  {:>10.1}  {:>14.0}/s  {:>10.2}",
            evaluated / elapsed.as_secs_f64(),
            elapsed.as_secs_f64() * 1e6 / evaluated,
            fired as f64 / evaluated,
            allocs as f64 / evaluated,
            evaluated / direct.as_secs_f64(),
            direct.as_secs_f64() * 1e6 / evaluated,
        );
    }

    hostile(now);
}

/// Peak resident memory of this process so far, in MiB (`VmHWM`).
fn peak_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        })
        .map_or(0.0, |kb| kb / 1024.0)
}

/// What the bounds cost a hostile rule: each evaluated once, with its wall time, how it was
/// stopped, and how far it raised the process's peak memory (the hoarder first, so its peak
/// is its own).
fn hostile(now: chrono::DateTime<chrono::Utc>) {
    let cases = [
        (
            "map of 60 KB strings",
            "script: |\n  let s = \"x\";\n  s.pad(60000, \"y\");\n  let m = #{};\n  let n = 0;\n  while n < 20000 { m[`k${n}`] = s + n; n += 1; }\n",
        ),
        (
            "slow string operations",
            "script: |\n  let s = \"x\";\n  s.pad(60000, \"y\");\n  let n = 0;\n  while n < 15000 { let t = s.to_upper(); n += 1; }\n",
        ),
        (
            "endless loop",
            "script: |\n  let n = 0;\n  loop { n += 1; }\n",
        ),
    ];
    let event: Event = serde_json::from_value(serde_json::json!({
        "id": "evt_1", "source": "api", "source_event_id": "h", "type": "claim.created",
        "occurred_at": "2026-11-20T08:00:00Z", "received_at": "2026-11-20T08:00:00Z"
    }))
    .unwrap();
    println!(
        "\nhostile rules, each evaluated once (time budget {} ms)",
        signalbox::script::TIME_BUDGET.as_millis()
    );
    println!(
        "{:>24}  {:>9}  {:>14}  stopped by",
        "script", "ms", "peak +MiB"
    );
    for (name, script) in cases {
        let text = format!(
            "version: 1\nid: hostile\non: [claim.created]\n{script}actions: [{{type: emit, event_type: claim.flagged}}]\n"
        );
        let files = BTreeMap::from([(PathBuf::from("h.yaml"), text)]);
        let set = RuleSet::compile(&files).unwrap();
        // Reset the peak to what is resident now, so the case's own peak shows.
        let _ = std::fs::write("/proc/self/clear_refs", "5");
        let before = peak_mib();
        let started = Instant::now();
        let evaluation = set.evaluate(&event, now).remove(0);
        let elapsed = started.elapsed();
        let how = match &evaluation.outcome {
            Outcome::Failed { error, .. } => error.clone(),
            other => format!("{other:?}"),
        };
        println!(
            "{name:>24}  {:>9.1}  {:>14.1}  {how}",
            elapsed.as_secs_f64() * 1e3,
            peak_mib() - before
        );
    }
}
