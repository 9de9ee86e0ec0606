//! Replay: stored events evaluated again against the rules in force now, knowing what the
//! rules read from the store (history, follow-ups, state) as `explain` does, at the time each
//! event was processed.
//!
//! Receives a selection (one event, or the processed events of a range, a page at a time) from
//! the API and the command line; hands back a [`Report`]: per event, the rules that fire, wait
//! or fail now, and what became of each firing. A dry run stores and sends nothing. Applied,
//! firings go through the keys processing plans by (one evaluation per `(event, rule)`, one
//! outbox row per `(event, rule, action)`): a rule that already fired for an event, was
//! throttled or waited plans nothing new; one that did not fire then (or failed) and fires now
//! is recorded and plans its actions, once, so replaying again plans nothing more. A replay
//! does not redo an event's other effects (the state it set, the checks it settled, the delayed
//! actions it cancelled) and arms no check.

use std::collections::HashMap;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;

use crate::normalize::EventType;
use crate::rules::{Evaluation, Outcome, RuleSet};
use crate::store::{
    EvaluationOutcome, EventState, NewEvaluation, ReplayRange, ReplayWrite, Store, StoreError,
    StoredEvent, Verdict,
};

/// Most events one replay call takes; a range with more answers a cursor.
pub const MAX_EVENTS: u32 = 10_000;
/// Events one replay call takes when it does not say.
pub const DEFAULT_EVENTS: u32 = 1_000;
/// Events read, evaluated and recorded together.
const CHUNK: u32 = 200;

/// Which events a replay takes.
#[derive(Debug, Clone)]
pub enum Selection {
    /// One stored, processed event.
    Event(String),
    /// The processed events of a range, after the cursor `after` (an event id, the
    /// `next_after` of the previous call).
    Range {
        range: ReplayRange,
        after: Option<String>,
    },
}

/// How a replay runs.
#[derive(Debug, Clone)]
pub struct Options {
    /// Report only: store and send nothing.
    pub dry_run: bool,
    /// Most events taken (at most [`MAX_EVENTS`]).
    pub limit: u32,
    /// Bytes of JSON of listed events after which no more are listed (counts stay exact).
    pub max_listed_bytes: usize,
    /// The time firings are recorded at, and throttles passed at.
    pub now: DateTime<Utc>,
}

#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    #[error("no event with id '{0}'")]
    EventNotFound(String),
    /// A pending or failed event, or one of the engine's own.
    #[error("{0}")]
    NotReplayable(String),
    #[error("after: no event with id '{0}' (give the next_after of the previous call)")]
    UnknownCursor(String),
    #[error("replay: {0}")]
    Store(#[from] StoreError),
    #[error("replay: {0}")]
    Internal(String),
}

/// What became of one rule's evaluation in a replay.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Decision {
    /// Dry run: its actions would be planned.
    WouldPlan,
    /// Recorded as fired and its actions planned (`planned`: new outbox rows).
    Planned,
    /// The event has a record of the rule already (fired, throttled or waiting): nothing new.
    AlreadyRecorded,
    /// Its throttle fired within the window (in a dry run: would have).
    Throttled,
    /// The rule waits now (`unless:`): a replay arms no check.
    NotArmed,
    /// Its evaluation failed now: nothing is recorded.
    Failed,
}

/// One rule that fires, waits or fails now for a replayed event.
#[derive(Debug, Clone, Serialize)]
pub struct RuleReplay {
    pub rule_id: String,
    pub rule_version: String,
    /// `fired`, `waiting` or `failed`, now.
    pub outcome: &'static str,
    /// What was recorded for the event and rule before the replay, if anything.
    pub then: Option<EvaluationOutcome>,
    pub decision: Decision,
    /// The actions it plans (rendered parameters), when it fires.
    #[serde(skip_serializing_if = "Value::is_null")]
    pub actions: Value,
    /// New outbox rows, when applied.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub planned: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// One replayed event with something to report.
#[derive(Debug, Clone, Serialize)]
pub struct EventReplay {
    pub event_id: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub received_at: DateTime<Utc>,
    /// The time its rules were evaluated at: when it was processed.
    pub evaluated_at: DateTime<Utc>,
    pub rules: Vec<RuleReplay>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// Counts over every replayed event, listed or not.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Totals {
    /// `(event, rule)` pairs that fire now.
    pub fired: u64,
    /// Outbox rows planned (in a dry run: that would be).
    pub actions: u64,
    pub already_recorded: u64,
    pub throttled: u64,
    pub not_armed: u64,
    pub failed: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub dry_run: bool,
    /// Events replayed.
    pub events: u64,
    pub totals: Totals,
    /// The events with a rule that fires, waits or fails now, in order, until their JSON
    /// passes the byte budget.
    pub listed: Vec<EventReplay>,
    /// Whether `listed` holds every such event.
    pub listed_all: bool,
    /// More events of the range follow: pass this as `after` to go on.
    pub next_after: Option<String>,
}

impl Report {
    fn new(dry_run: bool) -> Self {
        Self {
            dry_run,
            events: 0,
            totals: Totals::default(),
            listed: Vec::new(),
            listed_all: true,
            next_after: None,
        }
    }
}

/// Replays `selection` against `rules` (see the module's paragraph).
pub async fn replay(
    store: &Store,
    rules: &Arc<RuleSet>,
    selection: &Selection,
    options: &Options,
) -> Result<Report, ReplayError> {
    let mut run = Run {
        store,
        rules,
        options,
        report: Report::new(options.dry_run),
        listed_bytes: 0,
        gates: HashMap::new(),
    };
    match selection {
        Selection::Event(id) => {
            let Some(stored) = store.get_event(id).await? else {
                return Err(ReplayError::EventNotFound(id.clone()));
            };
            if let Some(why) = not_replayable(&stored) {
                return Err(ReplayError::NotReplayable(why));
            }
            run.chunk(vec![stored]).await?;
        }
        Selection::Range { range, after } => {
            let mut cursor = match after {
                Some(id) => match store.get_event(id).await? {
                    Some(e) => Some((e.event.received_at, id.clone())),
                    None => return Err(ReplayError::UnknownCursor(id.clone())),
                },
                None => None,
            };
            let limit = options.limit.clamp(1, MAX_EVENTS);
            let mut taken = 0;
            while taken < limit {
                let events = store
                    .replay_events(range, cursor.clone(), CHUNK.min(limit - taken))
                    .await?;
                let Some(last) = events.last() else { break };
                cursor = Some((last.event.received_at, last.event.id.to_string()));
                taken += events.len() as u32;
                run.chunk(events).await?;
            }
            if taken == limit
                && !store
                    .replay_events(range, cursor.clone(), 1)
                    .await?
                    .is_empty()
            {
                run.report.next_after = cursor.map(|(_, id)| id);
            }
        }
    }
    Ok(run.report)
}

/// Why a stored event cannot be replayed, if it cannot.
fn not_replayable(stored: &StoredEvent) -> Option<String> {
    let id = &stored.event.id;
    if EventType::INTERNAL.contains(&stored.event.kind.as_str())
        && stored.event.source == crate::providers::ENGINE_SOURCE
    {
        return Some(format!(
            "event {id} is the engine's own {}: ticks and deadlines are not replayed",
            stored.event.kind.as_str()
        ));
    }
    match stored.state {
        EventState::Processed => None,
        EventState::Pending => Some(format!(
            "event {id} is pending: it will be processed by the rules in force; only processed events are replayed"
        )),
        EventState::Failed => Some(format!(
            "event {id} is failed (parked): put it back with POST /v1/events/{id}/retry; only processed events are replayed"
        )),
    }
}

/// One replay call in progress.
struct Run<'a> {
    store: &'a Store,
    rules: &'a Arc<RuleSet>,
    options: &'a Options,
    report: Report,
    listed_bytes: usize,
    /// Dry run: when each `(rule, throttle key)` last fired, as stored, then as the run's own
    /// firings would move it.
    gates: HashMap<(String, String), Option<i64>>,
}

/// An event's evaluations now: at its time, or why they could not be made.
type Evaluated = (StoredEvent, DateTime<Utc>, Result<Vec<Evaluation>, String>);

impl Run<'_> {
    /// Evaluates, decides and (unless dry) records a chunk of events.
    async fn chunk(&mut self, events: Vec<StoredEvent>) -> Result<(), ReplayError> {
        let evaluated = self.evaluate(events).await?;
        let ids: Vec<&str> = evaluated
            .iter()
            .map(|(e, ..)| e.event.id.as_str())
            .collect();
        let then: HashMap<(String, String), EvaluationOutcome> = self
            .store
            .outcomes_of_events(&ids)
            .await?
            .into_iter()
            .map(|(event, rule, outcome)| ((event, rule), outcome))
            .collect();
        let mut reports = Vec::with_capacity(evaluated.len());
        // Firings to record: (report index, rule index, record).
        let mut firings: Vec<(usize, usize, NewEvaluation)> = Vec::new();
        for (stored, at, result) in &evaluated {
            self.report.events += 1;
            let mut entry = EventReplay {
                event_id: stored.event.id.to_string(),
                kind: stored.event.kind.as_str().to_owned(),
                received_at: stored.event.received_at,
                evaluated_at: *at,
                rules: Vec::new(),
                error: None,
            };
            let evaluations = match result {
                Ok(evaluations) => evaluations,
                Err(error) => {
                    entry.error = Some(error.clone());
                    reports.push(entry);
                    continue;
                }
            };
            for evaluation in evaluations {
                let then = then
                    .get(&(entry.event_id.clone(), evaluation.rule_id.clone()))
                    .copied();
                let mut rule = RuleReplay {
                    rule_id: evaluation.rule_id.clone(),
                    rule_version: evaluation.rule_version.clone(),
                    outcome: "fired",
                    then,
                    decision: Decision::Failed,
                    actions: Value::Null,
                    planned: None,
                    error: None,
                };
                match &evaluation.outcome {
                    Outcome::Fired { actions, .. } => {
                        self.report.totals.fired += 1;
                        rule.actions = serde_json::to_value(actions).unwrap_or_default();
                        if then.is_some_and(|t| t != EvaluationOutcome::Failed) {
                            rule.decision = Decision::AlreadyRecorded;
                        } else if let Some(record) = crate::processor::record(evaluation) {
                            rule.decision = Decision::WouldPlan;
                            firings.push((reports.len(), entry.rules.len(), record));
                        }
                    }
                    Outcome::Waiting { .. } => {
                        rule.outcome = "waiting";
                        rule.decision = Decision::NotArmed;
                    }
                    Outcome::Failed { error, .. } => {
                        rule.outcome = "failed";
                        rule.error = Some(error.clone());
                    }
                    Outcome::Skipped { .. } | Outcome::NotMatched { .. } => continue,
                }
                entry.rules.push(rule);
            }
            reports.push(entry);
        }
        let decided = if self.options.dry_run {
            self.predict(&firings).await?
        } else {
            let records: Vec<(&crate::normalize::EventId, &NewEvaluation)> = firings
                .iter()
                .map(|(report, _, record)| (&evaluated[*report].0.event.id, record))
                .collect();
            self.store
                .record_replay(&records, self.options.now)
                .await?
                .into_iter()
                .map(|w| match w {
                    ReplayWrite::Planned(n) => (Decision::Planned, Some(n)),
                    ReplayWrite::Throttled => (Decision::Throttled, None),
                    ReplayWrite::AlreadyRecorded => (Decision::AlreadyRecorded, None),
                })
                .collect()
        };
        for ((report, rule, _), (decision, planned)) in firings.iter().zip(decided) {
            let rule = &mut reports[*report].rules[*rule];
            rule.decision = decision;
            rule.planned = if self.options.dry_run { None } else { planned };
            if decision == Decision::WouldPlan || decision == Decision::Planned {
                self.report.totals.actions += planned.unwrap_or(0);
            }
        }
        for entry in reports {
            self.tally(&entry);
            if entry.rules.is_empty() && entry.error.is_none() {
                continue;
            }
            let size = serde_json::to_vec(&entry).map_or(0, |v| v.len());
            if self.report.listed_all
                && (self.listed_bytes + size <= self.options.max_listed_bytes
                    || self.report.listed.is_empty())
            {
                self.listed_bytes += size;
                self.report.listed.push(entry);
            } else {
                self.report.listed_all = false;
            }
        }
        Ok(())
    }

    fn tally(&mut self, entry: &EventReplay) {
        let totals = &mut self.report.totals;
        for rule in &entry.rules {
            match rule.decision {
                Decision::AlreadyRecorded => totals.already_recorded += 1,
                Decision::Throttled => totals.throttled += 1,
                Decision::NotArmed => totals.not_armed += 1,
                Decision::Failed => totals.failed += 1,
                Decision::WouldPlan | Decision::Planned => {}
            }
        }
        if entry.error.is_some() {
            totals.failed += 1;
        }
    }

    /// A dry run's decisions: each firing would plan its actions unless its throttle is
    /// closed, as stored or as this run's earlier firings would leave it.
    async fn predict(
        &mut self,
        firings: &[(usize, usize, NewEvaluation)],
    ) -> Result<Vec<(Decision, Option<u64>)>, ReplayError> {
        let now_ms = self.options.now.timestamp_millis();
        let mut decided = Vec::with_capacity(firings.len());
        for (_, _, record) in firings {
            let Verdict::Fired {
                planned, throttle, ..
            } = &record.verdict
            else {
                decided.push((Decision::AlreadyRecorded, None));
                continue;
            };
            if let Some(gate) = throttle {
                let key = (record.rule_id.clone(), gate.key.clone());
                let fired_at = match self.gates.get(&key) {
                    Some(known) => *known,
                    None => {
                        self.store
                            .throttle_fired_at(&record.rule_id, &gate.key)
                            .await?
                    }
                };
                let window = i64::try_from(gate.window.as_millis()).unwrap_or(i64::MAX);
                if fired_at.is_some_and(|at| at > now_ms.saturating_sub(window)) {
                    self.gates.insert(key, fired_at);
                    decided.push((Decision::Throttled, None));
                    continue;
                }
                self.gates.insert(key, Some(now_ms));
            }
            decided.push((Decision::WouldPlan, Some(planned.len() as u64)));
        }
        Ok(decided)
    }

    /// Each event's evaluations at the time it was processed, knowing what its rules read (as
    /// `explain` does), on a blocking thread. The facts are gathered for the whole chunk at
    /// once (windows, follow-ups and paused strategies are per event either way), unless a
    /// rule keeps subject state: then for each event alone, so that no event reads the state
    /// an earlier one of the chunk would write.
    async fn evaluate(&self, events: Vec<StoredEvent>) -> Result<Vec<Evaluated>, ReplayError> {
        let at = |stored: &StoredEvent| stored.processed_at.unwrap_or(stored.event.received_at);
        let keeps_state = self.rules.rules().iter().any(|r| r.time.state.is_some());
        let mut prepared = Vec::with_capacity(events.len());
        if keeps_state {
            for stored in events {
                let at = at(&stored);
                let facts =
                    crate::rules::facts::gather(self.rules, &[&stored.event], self.store, at)
                        .await?;
                prepared.push((stored, at, Arc::new(facts)));
            }
        } else {
            let batch: Vec<&crate::normalize::Event> = events.iter().map(|e| &e.event).collect();
            let facts = Arc::new(
                crate::rules::facts::gather(self.rules, &batch, self.store, self.options.now)
                    .await?,
            );
            for stored in events {
                let at = at(&stored);
                prepared.push((stored, at, facts.clone()));
            }
        }
        let rules = self.rules.clone();
        tokio::task::spawn_blocking(move || {
            prepared
                .into_iter()
                .map(|(stored, at, facts)| {
                    let evaluations = std::panic::catch_unwind(std::panic::AssertUnwindSafe(
                        || rules.process(&stored.event, at, &facts).evaluations,
                    ))
                    .map_err(|_| {
                        "internal error while evaluating it (a bug in Signalbox; please report it)"
                            .to_owned()
                    });
                    (stored, at, evaluations)
                })
                .collect()
        })
        .await
        .map_err(|e| ReplayError::Internal(format!("evaluation stopped: {e}")))
    }
}
