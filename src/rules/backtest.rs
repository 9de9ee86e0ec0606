//! Backtests: a rule set run over stored events of a time range on a virtual clock (deadlines,
//! schedules and delays included), without side effects, and compared with what was recorded
//! live: per rule, what would fire now and did not then, and the reverse.
//!
//! [`read`] takes from the store the events of the range (with when each was processed), the
//! events before it that windows read, and the recorded outcomes; [`backtest`] runs them and
//! hands back a [`Report`]. `signalbox backtest` and `POST /v1/backtest` both go through here.
//!
//! Each event sees what it saw live: the events received before it was processed (an event
//! that arrived while an earlier one waited for processing is in that one's windows, as it was
//! in the store), or before it arrived when it is not processed yet.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::RuleSet;
use super::facts::deadline_of;
use super::simulate::{Firing, Input, Room, run_after};
use super::time::TICK;
use crate::normalize::Event;
use crate::store::{EvaluationOutcome, Store, StoreError, StoredEvent};

/// Event ids listed per rule and side at most (counts are exact).
const MAX_LISTED: usize = 100;

/// Firings the report lists at most (with their actions).
const MAX_FIRINGS: usize = 1000;

/// Events read per page.
const PAGE: u32 = 5000;

/// Ids per read of recorded outcomes.
const OUTCOME_IDS: usize = 500;

/// The longest look-back read before the range (history windows longer than this read less).
const MAX_LOOK_BACK_DAYS: u64 = 90;

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
    /// Events the rule failed for now (its script or template raised an error; live, such an
    /// evaluation is recorded `failed` and processing goes on): how many, and the first ids.
    pub failed: usize,
    pub failed_events: Vec<String>,
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

/// What a backtest reads from the store.
#[derive(Debug, Default)]
pub struct Recorded {
    /// Events received before the range that the rules' windows and look-backs read.
    pub seen: Vec<Event>,
    /// The range's events, oldest first, with their processing state and time.
    pub events: Vec<StoredEvent>,
    /// `(event id, rule) -> fired` of the range's recorded evaluations.
    pub outcomes: HashMap<(String, String), bool>,
}

#[derive(Debug, thiserror::Error)]
pub enum BacktestError {
    #[error("cannot read the stored events: {0}")]
    Store(#[source] StoreError),
    #[error("the range holds more than {limit} events")]
    TooManyEvents { limit: usize },
}

/// How far before the range a backtest reads stored events, for the windows and look-backs of
/// its first events: the longest history window of the rules (at most 90 days).
pub fn look_back(set: &RuleSet) -> chrono::Duration {
    let longest = set
        .rules()
        .iter()
        .flat_map(|r| &r.time.history)
        .map(|h| h.within)
        .max()
        .unwrap_or_default()
        .min(std::time::Duration::from_secs(MAX_LOOK_BACK_DAYS * 86_400));
    chrono::Duration::from_std(longest).unwrap_or_default()
}

/// Outcomes keyed as [`Recorded::outcomes`] has them.
type Outcomes = HashMap<(String, String), bool>;

/// Files recorded outcomes of the events in `ids`.
fn file(
    outcomes: &mut Outcomes,
    rows: Vec<(String, String, EvaluationOutcome)>,
    ids: &HashSet<&str>,
) {
    for (event, rule, outcome) in rows {
        if ids.contains(event.as_str()) {
            outcomes.insert((event, rule), outcome == EvaluationOutcome::Fired);
        }
    }
}

/// All events received in `[from, to)`, oldest first: the pending ones, then the processed
/// (and failed) ones, each page by page (an event processed between the two reads is kept as
/// processed), with their recorded outcomes into `outcomes` when given (one read per page).
/// `read` is told how many so far; past `limit` events, stops with
/// [`BacktestError::TooManyEvents`].
async fn read_range(
    store: &Store,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    limit: Option<usize>,
    read: &mut (dyn FnMut(usize) + Send),
    mut outcomes: Option<&mut Outcomes>,
) -> Result<Vec<StoredEvent>, BacktestError> {
    let mut count = 0;
    let mut sets = Vec::with_capacity(2);
    for finished in [false, true] {
        let mut events: Vec<StoredEvent> = Vec::new();
        let mut after = None;
        loop {
            let rows = store
                .received_between(finished, from, to, after.take(), PAGE)
                .await
                .map_err(BacktestError::Store)?;
            let (Some(first), Some(last)) = (rows.first(), rows.last()) else {
                break;
            };
            after = Some((last.event.received_at, last.event.id.to_string()));
            count += rows.len();
            if let Some(limit) = limit.filter(|l| count > *l) {
                return Err(BacktestError::TooManyEvents { limit });
            }
            if let Some(outcomes) = outcomes.as_deref_mut() {
                let ids: HashSet<&str> = rows.iter().map(|e| e.event.id.as_str()).collect();
                let recorded = if finished {
                    store
                        .outcomes_received_between(first.event.received_at, last.event.received_at)
                        .await
                } else {
                    let mut all = Vec::new();
                    let listed: Vec<&str> = ids.iter().copied().collect();
                    for chunk in listed.chunks(OUTCOME_IDS) {
                        match store.outcomes_of_events(chunk).await {
                            Ok(rows) => all.extend(rows),
                            Err(e) => return Err(BacktestError::Store(e)),
                        }
                    }
                    Ok(all)
                };
                file(outcomes, recorded.map_err(BacktestError::Store)?, &ids);
            }
            events.extend(rows);
            read(count);
        }
        sets.push(events);
    }
    let finished = sets.pop().unwrap_or_default();
    let mut events = sets.pop().unwrap_or_default();
    if !events.is_empty() {
        let done: HashSet<&str> = finished.iter().map(|e| e.event.id.as_str()).collect();
        events.retain(|e| !done.contains(e.event.id.as_str()));
    }
    events.extend(finished);
    events.sort_by(|a, b| {
        (a.event.received_at, &a.event.id).cmp(&(b.event.received_at, &b.event.id))
    });
    Ok(events)
}

/// Reads what a backtest of `set` over the events received in `[from, to)` needs: those
/// events (at most `limit`), the ones before them that windows read, and what was recorded.
/// `read` is told how many events of the range were read so far.
pub async fn read(
    store: &Store,
    set: &RuleSet,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    limit: Option<usize>,
    read: &mut (dyn FnMut(usize) + Send),
) -> Result<Recorded, BacktestError> {
    let seen = read_range(store, from - look_back(set), from, None, &mut |_| {}, None)
        .await?
        .into_iter()
        .map(|stored| stored.event)
        .collect();
    let mut outcomes = HashMap::new();
    let events = read_range(store, from, to, limit, read, Some(&mut outcomes)).await?;
    Ok(Recorded {
        seen,
        events,
        outcomes,
    })
}

/// What a firing is compared by: the rule and the event it fired for (a deadline's first
/// event), or the tick's time.
fn key_of_recorded(event: &Event) -> String {
    if let Some((_, first, ..)) = deadline_of(event) {
        return first.to_owned();
    }
    if event.kind.as_str() == TICK {
        return format!("tick@{}", event.occurred_at.to_rfc3339());
    }
    event.id.to_string()
}

/// Whether the engine made `event` (a tick or a deadline): the clock makes those anew.
fn is_internal(event: &Event) -> bool {
    crate::normalize::EventType::INTERNAL.contains(&event.kind.as_str())
        && event.source == crate::providers::ENGINE_SOURCE
}

/// Runs `set` over `recorded`'s events (received in `[from, to)`), knowing the events before
/// them, and compares with what was recorded. `progress` is told how many of the events are
/// done (of how many) as they are; when it answers `false` the backtest stops with an error.
pub fn backtest(
    set: &RuleSet,
    recorded: Recorded,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    progress: &mut dyn FnMut(usize, usize) -> bool,
) -> Result<Report, String> {
    let Recorded {
        seen,
        events,
        outcomes,
    } = recorded;
    let keys: HashMap<String, String> = events
        .iter()
        .filter(|e| is_internal(&e.event))
        .map(|e| (e.event.id.to_string(), key_of_recorded(&e.event)))
        .collect();
    let mut then: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for ((event_id, rule), fired) in outcomes {
        if !fired {
            continue;
        }
        let key = keys.get(&event_id).cloned().unwrap_or(event_id);
        then.entry(rule).or_default().insert(key);
    }
    let inputs: Vec<Input> = events
        .into_iter()
        .filter(|e| !is_internal(&e.event))
        .map(|stored| {
            let at = stored.event.received_at;
            Input {
                at,
                sees_until: stored.processed_at.unwrap_or(at).max(at),
                event: stored.event,
            }
        })
        .collect();
    let ids: HashSet<String> = inputs.iter().map(|i| i.event.id.to_string()).collect();
    let count = inputs.len();
    // Room for every input, a deadline per input and rule that waits, and the schedules.
    let waiting = set
        .rules()
        .iter()
        .filter(|r| r.time.unless.is_some())
        .count();
    let steps = count.saturating_mul(1 + waiting).saturating_add(20_000);
    let room = Room {
        steps,
        firings_with_actions: MAX_FIRINGS,
        failures_recorded: true,
    };
    let firings = run_after(set, None, seen, inputs, from, to, room, &mut |done| {
        progress(done, count)
    })?;
    let mut now: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut failed: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for firing in &firings {
        let key = if ids.contains(&firing.event) {
            firing.event.clone()
        } else {
            format!("tick@{}", firing.at.to_rfc3339())
        };
        let into = if firing.error.is_some() {
            &mut failed
        } else {
            &mut now
        };
        into.entry(firing.rule.clone()).or_default().insert(key);
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
                failed: failed.get(rule).map_or(0, BTreeSet::len),
                failed_events: failed
                    .get(rule)
                    .map(|f| f.iter().take(MAX_LISTED).cloned().collect())
                    .unwrap_or_default(),
            }
        })
        .collect();
    Ok(Report {
        from,
        to,
        events: count,
        rules,
        firings: firings.into_iter().take(MAX_FIRINGS).collect(),
    })
}
