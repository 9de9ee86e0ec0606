//! Backtests: a rule set run over stored events of a time range on a virtual clock (deadlines,
//! schedules and delays included), without side effects, and compared with what was recorded
//! live: per rule, what would fire now and did not then, and the reverse.
//!
//! Receives the events (in arrival order), the events before the range that windows read, and
//! the recorded outcomes; hands back a [`Report`]. Reading them from the store is the caller's.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::RuleSet;
use super::facts::deadline_of;
use super::simulate::{Firing, run_after};
use super::time::TICK;
use crate::normalize::Event;

/// Event ids listed per rule and side at most (counts are exact).
const MAX_LISTED: usize = 100;

/// One rule's comparison.
#[derive(Debug, Default, Serialize)]
pub struct RuleDiff {
    pub rule: String,
    /// Firings now (this rule set) and then (recorded live), and in both.
    pub now: usize,
    pub then: usize,
    pub both: usize,
    /// What fired now but not then, and then but not now: event ids (or `tick@<time>`).
    pub only_now: Vec<String>,
    pub only_then: Vec<String>,
}

#[derive(Debug, Serialize)]
pub struct Report {
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    /// Events of the range run through the rules (the engine's own ticks and deadlines are
    /// made anew by the clock, not replayed).
    pub events: usize,
    pub rules: Vec<RuleDiff>,
    /// What would fire, in time order (the first 1000).
    pub firings: Vec<Firing>,
}

impl Report {
    /// Whether now and then agree on every rule.
    pub fn agrees(&self) -> bool {
        self.rules
            .iter()
            .all(|r| r.only_now.is_empty() && r.only_then.is_empty())
    }
}

/// What a firing is compared by: the rule and the event it fired for (a deadline's first
/// event), or the tick's time.
fn key_of_recorded(event: &Event, rule: &str) -> String {
    if let Some((_, first, ..)) = deadline_of(event) {
        return first.to_owned();
    }
    if event.kind.as_str() == TICK {
        return format!("tick@{}", event.occurred_at.to_rfc3339());
    }
    let _ = rule;
    event.id.to_string()
}

/// Runs `set` over `events` received in `[from, to)`, knowing `seen` (stored before `from`),
/// and compares with `recorded`: `(event id, rule) -> fired` of the range's evaluations.
pub fn backtest(
    set: &RuleSet,
    seen: Vec<Event>,
    events: Vec<Event>,
    recorded: &HashMap<(String, String), bool>,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Result<Report, String> {
    let by_id: HashMap<String, &Event> = events.iter().map(|e| (e.id.to_string(), e)).collect();
    let mut then: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for ((event_id, rule), fired) in recorded {
        if !fired {
            continue;
        }
        let key = by_id
            .get(event_id)
            .map_or_else(|| event_id.clone(), |e| key_of_recorded(e, rule));
        then.entry(rule.clone()).or_default().insert(key);
    }
    let inputs: Vec<(DateTime<Utc>, Event)> = events
        .iter()
        .filter(|e| {
            !(crate::normalize::EventType::INTERNAL.contains(&e.kind.as_str())
                && e.source == crate::providers::ENGINE_SOURCE)
        })
        .map(|e| (e.received_at, e.clone()))
        .collect();
    let count = inputs.len();
    // Room for every input, a deadline per input and rule that waits, and the schedules.
    let waiting = set
        .rules()
        .iter()
        .filter(|r| r.time.unless.is_some())
        .count();
    let steps = count.saturating_mul(1 + waiting).saturating_add(20_000);
    let firings = run_after(set, None, seen, inputs, from, to, steps)?;
    let mut now: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for firing in &firings {
        let key = if by_id.contains_key(&firing.event) {
            firing.event.clone()
        } else {
            format!("tick@{}", firing.at.to_rfc3339())
        };
        now.entry(firing.rule.clone()).or_default().insert(key);
    }
    let names: BTreeSet<&String> = set
        .rules()
        .iter()
        .map(|r| &r.id)
        .chain(then.keys())
        .collect();
    let empty = BTreeSet::new();
    let rules = names
        .into_iter()
        .map(|rule| {
            let (n, t) = (
                now.get(rule).unwrap_or(&empty),
                then.get(rule).unwrap_or(&empty),
            );
            RuleDiff {
                rule: rule.clone(),
                now: n.len(),
                then: t.len(),
                both: n.intersection(t).count(),
                only_now: n.difference(t).take(MAX_LISTED).cloned().collect(),
                only_then: t.difference(n).take(MAX_LISTED).cloned().collect(),
            }
        })
        .collect();
    Ok(Report {
        from,
        to,
        events: count,
        rules,
        firings: firings.into_iter().take(1000).collect(),
    })
}
