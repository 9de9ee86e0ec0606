//! Rules on a virtual clock, in memory: a sequence of events at times, with the deadlines of
//! `unless:` checks, schedule ticks and delayed actions coming due as the clock passes them.
//! Rule tests, `signalbox try --sequence` and backtests run here; nothing is stored or sent.
//!
//! Receives a rule set and timed events; hands back what fired when. It answers the rules'
//! questions ([`super::facts::Recall`]) from what it has seen, as the store does in the engine.

use std::collections::HashMap;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;

use super::RuleSet;
use super::evaluate::Outcome;
use super::facts::{PendingCheck, Query, Recall, gather, ready};
use super::time::{DEADLINE, TICK};
use crate::normalize::{Event, EventId, EventType};

/// What one rule did at one time.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Firing {
    pub at: DateTime<Utc>,
    pub rule: String,
    /// The event it fired for (the first event, for a deadline).
    pub event: String,
    /// The planned actions: parameters, `due` when delayed, `cancelled_by` when a later
    /// event cancelled it before it was due.
    pub actions: Vec<Value>,
    /// Set when the rule failed for the event instead (a run with
    /// [`Room::failures_recorded`]): the error, and nothing was planned.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// A check waiting in memory.
#[derive(Debug, Clone)]
struct Check {
    id: String,
    rule: String,
    event: String,
    subject: String,
    awaits: Vec<String>,
    deadline: DateTime<Utc>,
    pending: bool,
}

/// A planned action in memory: `(firing index, action index)` and what cancels it.
#[derive(Debug, Clone)]
struct Planned {
    firing: usize,
    index: usize,
    id: String,
    due: DateTime<Utc>,
    cancel: Option<(String, Vec<String>)>,
    pending: bool,
}

type StateEntry = (Value, Option<DateTime<Utc>>);

/// What the simulation has seen.
#[derive(Debug, Default)]
pub struct Memory {
    events: Vec<Event>,
    /// Indexes of `events` by subject reference (`claim:C-1`) and by id.
    by_ref: HashMap<String, Vec<usize>>,
    by_id: HashMap<String, usize>,
    checks: Vec<Check>,
    /// Pending checks by deadline, by subject, and by id.
    deadlines: std::collections::BTreeSet<(DateTime<Utc>, usize)>,
    checks_by_subject: HashMap<String, Vec<usize>>,
    check_ids: HashMap<String, usize>,
    planned: Vec<Planned>,
    /// Planned actions a later event may cancel, by subject; all by id.
    planned_by_subject: HashMap<String, Vec<usize>>,
    planned_ids: HashMap<String, usize>,
    /// `(subject, name)` -> `(value, expiry)`.
    state: HashMap<(String, String), StateEntry>,
    throttles: HashMap<(String, String), DateTime<Utc>>,
    /// Claims paused by `pause_strategy` actions that came due.
    paused: Vec<(String, String)>,
    now: DateTime<Utc>,
    /// Firings whose planned actions are kept (the later ones keep their time, rule and event).
    keep_actions: usize,
    /// A rule failing is recorded as a failed firing, and the run goes on.
    failures_recorded: bool,
}

impl Recall for Memory {
    type Error = std::convert::Infallible;

    async fn history(&self, query: &Query) -> Result<Vec<Event>, Self::Error> {
        let mut found: Vec<Event> = match &query.key {
            Some((key, value)) => self
                .by_ref
                .get(&format!("{}:{value}", key.name()))
                .map(|ids| {
                    ids.iter()
                        .map(|i| &self.events[*i])
                        .filter(|e| query.matches(e))
                        .cloned()
                        .collect()
                })
                .unwrap_or_default(),
            None => self
                .events
                .iter()
                .filter(|e| query.matches(e))
                .cloned()
                .collect(),
        };
        found.sort_by(|a, b| (b.occurred_at, &b.id).cmp(&(a.occurred_at, &a.id)));
        found.truncate(query.limit as usize);
        Ok(found)
    }

    async fn dead_actions(
        &self,
        _after: DateTime<Utc>,
        _until: DateTime<Utc>,
        _limit: u32,
    ) -> Result<Vec<Value>, Self::Error> {
        // Nothing is delivered in a simulation, so nothing goes dead.
        Ok(Vec::new())
    }

    async fn history_many(
        &self,
        key: super::time::SubjectKey,
        values: &[&str],
        types: &[String],
        after: DateTime<Utc>,
        until: DateTime<Utc>,
        per_value: u32,
    ) -> Result<Vec<Event>, Self::Error> {
        let mut found = Vec::new();
        for value in values {
            let query = Query {
                key: Some((key, (*value).to_owned())),
                types: types.to_vec(),
                after,
                until,
                limit: per_value,
            };
            found.extend(self.history(&query).await?);
        }
        Ok(found)
    }

    async fn events(&self, ids: &[&str]) -> Result<Vec<Event>, Self::Error> {
        Ok(ids
            .iter()
            .filter_map(|id| self.by_id.get(*id))
            .map(|i| self.events[*i].clone())
            .collect())
    }

    async fn pending_checks(
        &self,
        refs: &[String],
        kind: &str,
        limit: u32,
    ) -> Result<Vec<PendingCheck>, Self::Error> {
        Ok(refs
            .iter()
            .filter_map(|r| self.checks_by_subject.get(r))
            .flatten()
            .map(|i| &self.checks[*i])
            .filter(|c| c.pending && c.awaits.iter().any(|t| t == kind))
            .take(limit as usize)
            .map(|c| PendingCheck {
                id: c.id.clone(),
                rule_id: c.rule.clone(),
                event_id: c.event.clone(),
                subject: c.subject.clone(),
                deadline: c.deadline,
            })
            .collect())
    }

    async fn state(
        &self,
        refs: &[String],
        now: DateTime<Utc>,
    ) -> Result<Vec<(String, String, Value)>, Self::Error> {
        Ok(self
            .state
            .iter()
            .filter(|((subject, _), (_, expires))| {
                refs.contains(subject) && expires.is_none_or(|t| t > now)
            })
            .map(|((subject, name), (value, _))| (subject.clone(), name.clone(), value.clone()))
            .collect())
    }

    async fn cancellable(
        &self,
        refs: &[String],
        limit: u32,
    ) -> Result<Vec<(String, String, Vec<String>)>, Self::Error> {
        Ok(refs
            .iter()
            .filter_map(|r| self.planned_by_subject.get(r))
            .flatten()
            .map(|i| &self.planned[*i])
            .filter(|p| p.pending && p.due > self.now)
            .filter_map(|p| {
                let (subject, types) = p.cancel.as_ref()?;
                refs.contains(subject)
                    .then(|| (p.id.clone(), subject.clone(), types.clone()))
            })
            .take(limit as usize)
            .collect())
    }

    async fn paused(&self, claims: &[&str]) -> Result<Vec<(String, String)>, Self::Error> {
        Ok(self
            .paused
            .iter()
            .filter(|(_, claim)| claims.contains(&claim.as_str()))
            .cloned()
            .collect())
    }
}

impl Memory {
    /// Keeps `event` as seen (stored), indexed by its subjects and id.
    fn remember(&mut self, event: Event) {
        let at = self.events.len();
        for reference in super::time::references(&event) {
            self.by_ref.entry(reference).or_default().push(at);
        }
        self.by_id.insert(event.id.to_string(), at);
        self.events.push(event);
    }
}

/// An internal event (a tick or a deadline) as the engine stores it.
pub fn internal_event(
    kind: &str,
    key: String,
    at: DateTime<Utc>,
    data: Value,
    subject: crate::normalize::Subject,
) -> Event {
    Event {
        id: EventId::new(),
        source: crate::providers::ENGINE_SOURCE.into(),
        source_event_id: key,
        kind: EventType::parse(kind).expect("internal event types are valid"),
        source_type: None,
        occurred_at: at,
        received_at: at,
        subject,
        amount: None,
        data,
        payload: Value::Object(Default::default()),
        chain_depth: 0,
    }
}

/// A schedule tick of `rule` at `tick`: one per rule and tick (its dedupe key says so).
pub fn tick_event(rule: &str, tick: DateTime<Utc>) -> Event {
    internal_event(
        TICK,
        format!("schedule:{rule}:{}", tick.timestamp_millis()),
        tick,
        serde_json::json!({ "rule": rule, "tick": tick.to_rfc3339() }),
        Default::default(),
    )
}

/// The end of check `check`'s window: one per check.
pub fn deadline_event(
    check: &str,
    rule: &str,
    first: &str,
    deadline: DateTime<Utc>,
    subject: crate::normalize::Subject,
) -> Event {
    internal_event(
        DEADLINE,
        format!("deadline:{check}"),
        deadline,
        serde_json::json!({ "rule": rule, "event": first, "check": check, "deadline": deadline.to_rfc3339() }),
        subject,
    )
}

/// An event to run: it arrives at `at`, and when it is processed the store holds the events
/// that arrived before `sees_until` too (live, an event is processed after it arrives, and its
/// rules read every event stored by then, even ones that arrived after it).
#[derive(Debug, Clone)]
pub struct Input {
    pub at: DateTime<Utc>,
    pub event: Event,
    /// At least `at`; `at` when the event was processed as it arrived.
    pub sees_until: DateTime<Utc>,
}

impl Input {
    /// An event processed as it arrives.
    pub fn at(at: DateTime<Utc>, event: Event) -> Self {
        Self {
            at,
            event,
            sees_until: at,
        }
    }
}

/// Runs `inputs` (events at their arrival times) from `from` until `until` on a virtual
/// clock, with only rule `only` when given. Returns what fired, in time order.
pub fn run(
    set: &RuleSet,
    only: Option<&str>,
    inputs: Vec<(DateTime<Utc>, Event)>,
    from: DateTime<Utc>,
    until: DateTime<Utc>,
) -> Result<Vec<Firing>, String> {
    let inputs = inputs
        .into_iter()
        .map(|(at, event)| Input::at(at, event))
        .collect();
    run_after(
        set,
        only,
        Vec::new(),
        inputs,
        from,
        until,
        Room::default(),
        &mut |_| true,
    )
}

/// How much a run may do, and keep of what it did.
#[derive(Debug, Clone, Copy)]
pub struct Room {
    /// Steps (inputs, deadlines, ticks) at most; `usize::MAX`: 20,000 besides the inputs.
    pub steps: usize,
    /// Firings whose planned actions are kept, the first ones (the later ones keep their time,
    /// rule and event, with no actions).
    pub firings_with_actions: usize,
    /// A rule that fails for an event is recorded (a [`Firing`] with its `error`) and the run
    /// goes on, as live processing does; otherwise the run stops with the error (a test).
    pub failures_recorded: bool,
}

impl Default for Room {
    fn default() -> Self {
        Self {
            steps: usize::MAX,
            firings_with_actions: usize::MAX,
            failures_recorded: false,
        }
    }
}

/// As [`run`], knowing `seen` (events already stored before `from`, which history windows and
/// look-backs read), with `room` for steps and firings. `progress`
/// is told how many inputs are done after each step; when it answers `false` the run stops
/// with an error.
#[allow(
    clippy::too_many_arguments,
    reason = "one internal entry point, called by run and the backtest"
)]
pub fn run_after(
    set: &RuleSet,
    only: Option<&str>,
    seen: Vec<Event>,
    mut inputs: Vec<Input>,
    from: DateTime<Utc>,
    until: DateTime<Utc>,
    room: Room,
    progress: &mut dyn FnMut(usize) -> bool,
) -> Result<Vec<Firing>, String> {
    inputs.sort_by_key(|input| input.at);
    let times: Vec<(DateTime<Utc>, DateTime<Utc>)> =
        inputs.iter().map(|i| (i.at, i.sees_until)).collect();
    let mut waiting: Vec<Option<Event>> = inputs.into_iter().map(|i| Some(i.event)).collect();
    let mut memory = Memory {
        now: from,
        keep_actions: room.firings_with_actions,
        failures_recorded: room.failures_recorded,
        ..Memory::default()
    };
    for event in seen {
        memory.remember(event);
    }
    // Inputs `..stored` are in memory (at `places[i]`); `next` is the next one to process.
    // An input is stored when its turn comes, or earlier, when an input before it is
    // processed after it arrived.
    let (mut next, mut stored) = (0_usize, 0_usize);
    let mut places: Vec<usize> = Vec::with_capacity(times.len());
    let mut horizon = from;
    let mut firings: Vec<Firing> = Vec::new();
    // Each scheduled rule's next tick, found once per tick.
    let mut next_ticks: HashMap<String, DateTime<Utc>> = set
        .scheduled()
        .filter(|(rule, _)| only.is_none_or(|o| o == rule.id))
        .filter_map(|(rule, s)| Some((rule.id.clone(), s.schedule.next_after(from)?)))
        .collect();
    // Bounds a run (an every-minute schedule over months would otherwise run for long); a
    // backtest gives room for its events besides.
    let max_steps = if room.steps == usize::MAX {
        20_000_usize.saturating_add(times.len())
    } else {
        room.steps
    };
    for step_number in 0..=max_steps {
        if step_number == max_steps {
            return Err(format!(
                "the clock stopped after {max_steps} steps at {}: give `until` an earlier time",
                memory.now.to_rfc3339()
            ));
        }
        // What comes next: an input, a deadline, or a tick, the earliest first.
        let next_input = times.get(next).map(|(at, _)| *at);
        let next_deadline = memory
            .deadlines
            .first()
            .map(|(deadline, _)| (*deadline).max(memory.now));
        let next_tick = next_ticks
            .iter()
            .map(|(rule, tick)| (*tick, rule.clone()))
            .min();
        let candidates = [
            next_input.map(|t| (t, 0)),
            next_deadline.map(|t| (t, 1)),
            next_tick.as_ref().map(|(t, _)| (*t, 2)),
        ];
        let Some((at, which)) = candidates.into_iter().flatten().min() else {
            break;
        };
        if at > until {
            break;
        }
        memory.now = at.max(memory.now);
        let event = match which {
            0 => {
                // The store only grows: what this input sees, later steps see too. An input
                // that arrived at the very time this one was processed counts as after it.
                horizon = horizon.max(times[next].1);
                while stored < times.len() && (stored <= next || times[stored].0 < horizon) {
                    let mut event = waiting[stored].take().expect("stored once");
                    event.received_at = times[stored].0;
                    places.push(memory.events.len());
                    memory.remember(event);
                    stored += 1;
                }
                next += 1;
                memory.events[places[next - 1]].clone()
            }
            1 => {
                let (_, index) = memory.deadlines.pop_first().expect("a pending check");
                let check = &mut memory.checks[index];
                check.pending = false;
                let (id, rule, first, deadline) = (
                    check.id.clone(),
                    check.rule.clone(),
                    check.event.clone(),
                    check.deadline,
                );
                let subject = memory
                    .by_id
                    .get(&first)
                    .map(|i| memory.events[*i].subject.clone())
                    .unwrap_or_default();
                let event = deadline_event(&id, &rule, &first, deadline, subject);
                memory.remember(event.clone());
                event
            }
            _ => {
                let (tick, rule) = next_tick.expect("a tick");
                match set
                    .rule(&rule)
                    .and_then(|r| r.time.schedule.as_ref())
                    .and_then(|s| s.schedule.next_after(tick))
                {
                    Some(next) => next_ticks.insert(rule.clone(), next),
                    None => next_ticks.remove(&rule),
                };
                let event = tick_event(&rule, tick);
                memory.remember(event.clone());
                event
            }
        };
        step(set, only, &mut memory, &mut firings, &event)?;
        if !progress(next) {
            return Err(format!(
                "stopped after {next} of {} events, at {}",
                times.len(),
                memory.now.to_rfc3339()
            ));
        }
    }
    Ok(firings)
}

/// Processes one event at the memory's now, and records what it did.
fn step(
    set: &RuleSet,
    only: Option<&str>,
    memory: &mut Memory,
    firings: &mut Vec<Firing>,
    event: &Event,
) -> Result<(), String> {
    let now = memory.now;
    let Ok(facts) = ready(gather(set, &[event], &*memory, now));
    let facts = Arc::new(facts);
    let processed = set.process(event, now, &facts);
    let first_id = super::facts::deadline_of(event)
        .map(|(_, first, ..)| first.to_owned())
        .unwrap_or_else(|| event.id.to_string());
    for evaluation in &processed.evaluations {
        if only.is_some_and(|o| o != evaluation.rule_id) {
            continue;
        }
        match &evaluation.outcome {
            Outcome::Failed { error, line } => {
                let line = line.map(|l| format!(" (line {l})")).unwrap_or_default();
                if !memory.failures_recorded {
                    return Err(format!(
                        "at {}: rule {} failed for event {}: {error}{line}",
                        now.to_rfc3339(),
                        evaluation.rule_id,
                        event.id
                    ));
                }
                firings.push(Firing {
                    at: now,
                    rule: evaluation.rule_id.clone(),
                    event: first_id.clone(),
                    actions: Vec::new(),
                    error: Some(format!("{error}{line}")),
                });
            }
            Outcome::Waiting {
                subject,
                awaits,
                deadline,
            } => {
                let index = memory.checks.len();
                let id = format!("chk_{}", index + 1);
                memory.deadlines.insert((*deadline, index));
                memory
                    .checks_by_subject
                    .entry(subject.clone())
                    .or_default()
                    .push(index);
                memory.check_ids.insert(id.clone(), index);
                memory.checks.push(Check {
                    id,
                    rule: evaluation.rule_id.clone(),
                    event: event.id.to_string(),
                    subject: subject.clone(),
                    awaits: awaits.clone(),
                    deadline: *deadline,
                    pending: true,
                });
            }
            Outcome::Fired {
                actions,
                throttle,
                timing,
            } => {
                if let Some((key, window)) = throttle {
                    let gate = (evaluation.rule_id.clone(), key.clone());
                    let open = memory.throttles.get(&gate).is_none_or(|last| {
                        chrono::Duration::from_std(*window)
                            .ok()
                            .and_then(|w| last.checked_add_signed(w))
                            .is_some_and(|until| until <= now)
                    });
                    if !open {
                        continue;
                    }
                    memory.throttles.insert(gate, now);
                }
                let firing = firings.len();
                let keep = firing < memory.keep_actions;
                let mut planned = Vec::with_capacity(if keep { actions.len() } else { 0 });
                for (index, action) in actions.iter().enumerate() {
                    let when = timing.get(index).cloned().unwrap_or_default();
                    let pause = matches!(action, crate::actions::ActionConfig::PauseStrategy(_));
                    if !(keep || pause) && when.cancel.is_none() {
                        continue;
                    }
                    let mut json = serde_json::to_value(action).expect("action configs serialize");
                    if let Some(due) = when.due {
                        json["due"] = Value::String(due.to_rfc3339());
                    }
                    if pause {
                        let claim = json["claim"].as_str().unwrap_or_default().to_owned();
                        let platform = json["platform"].as_str().unwrap_or_default().to_owned();
                        memory.paused.push((platform, claim));
                    }
                    // Only an action with `cancel_on` can be cancelled: only those are kept
                    // to look up.
                    if let Some((subject, _)) = &when.cancel {
                        let at = memory.planned.len();
                        let id = format!("act_{}_{index}", firing + 1);
                        memory
                            .planned_by_subject
                            .entry(subject.clone())
                            .or_default()
                            .push(at);
                        memory.planned_ids.insert(id.clone(), at);
                        memory.planned.push(Planned {
                            firing,
                            index,
                            id,
                            due: when.due.unwrap_or(now),
                            cancel: when.cancel,
                            pending: true,
                        });
                    }
                    if keep {
                        planned.push(json);
                    }
                }
                firings.push(Firing {
                    at: now,
                    rule: evaluation.rule_id.clone(),
                    event: first_id.clone(),
                    actions: planned,
                    error: None,
                });
            }
            Outcome::Skipped { .. } | Outcome::NotMatched { .. } => {}
        }
    }
    let effects = processed.effects;
    for write in effects.state {
        if only.is_some_and(|o| o != write.rule_id) {
            continue;
        }
        let key = (write.subject, write.name);
        match write.value {
            Some(value) => {
                memory.state.insert(key, (value, write.expires_at));
            }
            None => {
                memory.state.remove(&key);
            }
        }
    }
    for (id, _) in effects.checks {
        if let Some(&index) = memory.check_ids.get(&id) {
            let check = &mut memory.checks[index];
            if check.pending {
                check.pending = false;
                memory.deadlines.remove(&(check.deadline, index));
            }
        }
    }
    for id in effects.cancelled {
        let found = memory.planned_ids.get(&id).copied();
        if let Some(p) = found.map(|i| &mut memory.planned[i]).filter(|p| p.pending) {
            p.pending = false;
            if let Some(action) = firings
                .get_mut(p.firing)
                .and_then(|f| f.actions.get_mut(p.index))
            {
                action["cancelled_by"] = Value::String(event.id.to_string());
            }
        }
    }
    Ok(())
}
