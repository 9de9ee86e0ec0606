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
}
