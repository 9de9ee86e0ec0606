//! What rules read besides the event, fetched before a batch is evaluated so that scripts stay
//! synchronous and pure: history windows, follow-ups of `unless:` and `cancel_on:`, the first
//! event of a deadline, pending checks a follow-up satisfies, per-subject state, cancellable
//! actions, and the strategies held paused.
//!
//! [`gather`] asks a [`Recall`] for them: the store in the engine (indexed, bounded queries),
//! an in-memory record in rule tests and `signalbox try` ([`super::simulate`]). Both answer the
//! same questions, so a rule behaves alike in both.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Duration, Utc};
use serde_json::Value;

use super::RuleSet;
use super::compile::Rule;
use super::time::{DEADLINE, HistorySource, SubjectKey, references};
use crate::normalize::{Event, EventId};

/// Most follow-ups read per rule and event (the first that meets `where` decides).
const MAX_FOLLOW_UPS: u32 = 1000;
/// Most pending checks read per event.
const MAX_PENDING: u32 = 100;
/// Most cancellable delayed actions read per batch.
const MAX_CANCELLABLE: u32 = 1000;

/// Window bounds for "from then on" and "as far back as it goes": ordinary four-digit years,
/// which compare as times on both backends (SQLite compares their text).
fn far_future() -> DateTime<Utc> {
    "9999-12-31T23:59:59Z".parse().expect("a valid time")
}

fn far_past() -> DateTime<Utc> {
    "0001-01-01T00:00:00Z".parse().expect("a valid time")
}

/// Stored events about a subject (or any) of some types in `(after, until]` of `occurred_at`,
/// newest first.
#[derive(Debug, Clone, PartialEq)]
pub struct Query {
    pub key: Option<(SubjectKey, String)>,
    /// Exact types; any when empty.
    pub types: Vec<String>,
    pub after: DateTime<Utc>,
    pub until: DateTime<Utc>,
    pub limit: u32,
}

impl Query {
    /// Whether `event` answers the query (what the in-memory record filters by).
    pub fn matches(&self, event: &Event) -> bool {
        let key_ok = match &self.key {
            Some((key, value)) => key.value(event) == Some(value.as_str()),
            None => true,
        };
        key_ok
            && (self.types.is_empty() || self.types.iter().any(|t| t == event.kind.as_str()))
            && event.occurred_at > self.after
            && event.occurred_at <= self.until
    }
}

/// A pending check, as a follow-up sees it.
#[derive(Debug, Clone)]
pub struct PendingCheck {
    pub id: String,
    pub rule_id: String,
    pub event_id: String,
    pub deadline: DateTime<Utc>,
}

/// Where facts come from.
#[allow(
    async_fn_in_trait,
    reason = "used generically, never as a trait object"
)]
pub trait Recall {
    type Error;
    async fn history(&self, query: &Query) -> Result<Vec<Event>, Self::Error>;
    /// Actions that went dead in `(after, until]`, as JSON summaries, newest first.
    async fn dead_actions(
        &self,
        after: DateTime<Utc>,
        until: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<Value>, Self::Error>;
    async fn event(&self, id: &str) -> Result<Option<Event>, Self::Error>;
    /// Pending checks on these subjects that await `kind`.
    async fn pending_checks(
        &self,
        refs: &[String],
        kind: &str,
        limit: u32,
    ) -> Result<Vec<PendingCheck>, Self::Error>;
    /// Unexpired state entries of these subjects: `(subject, name, value)`.
    async fn state(
        &self,
        refs: &[String],
        now: DateTime<Utc>,
    ) -> Result<Vec<(String, String, Value)>, Self::Error>;
    /// Pending actions a later event about these subjects may cancel: `(id, subject, types)`.
    async fn cancellable(
        &self,
        refs: &[String],
        limit: u32,
    ) -> Result<Vec<(String, String, Vec<String>)>, Self::Error>;
    /// `(platform, claim)` of the strategies held paused, of these claims.
    async fn paused(&self, claims: &[&str]) -> Result<Vec<(String, String)>, Self::Error>;
}

/// What `history.<name>` read.
#[derive(Debug, Clone)]
pub enum HistoryItems {
    Events(Vec<Event>),
    Actions(Vec<Value>),
}

/// What a batch's rules read, by event.
#[derive(Debug, Default)]
pub struct Facts {
    pub script: Arc<crate::script::Facts>,
    history: HashMap<(EventId, String, String), HistoryItems>,
    /// `(event, rule, what)`: follow-ups of `unless` (`what` = "unless") or of an action's
    /// `cancel_on` (`what` = "cancel:<index>").
    follow_ups: HashMap<(EventId, String, String), Vec<Event>>,
    /// A deadline event's first event.
    armed: HashMap<EventId, Event>,
    /// A follow-up's pending checks, each with its first event.
    checks: HashMap<EventId, Vec<(PendingCheck, Event)>>,
    /// Pending delayed actions about the batch's subjects: `(id, subject, types)`.
    cancellable: Vec<(String, String, Vec<String>)>,
    /// Subject state as read, with the batch's writes applied as they are made.
    state: Mutex<HashMap<String, BTreeMap<String, Value>>>,
}

impl Facts {
    pub fn history(&self, event: &EventId, rule: &str, name: &str) -> Option<&HistoryItems> {
        self.history
            .get(&(event.clone(), rule.to_owned(), name.to_owned()))
    }

    pub fn follow_ups(&self, event: &EventId, rule: &str, what: &str) -> &[Event] {
        self.follow_ups
            .get(&(event.clone(), rule.to_owned(), what.to_owned()))
            .map_or(&[], Vec::as_slice)
    }

    pub fn armed(&self, deadline: &EventId) -> Option<&Event> {
        self.armed.get(deadline)
    }

    pub fn checks(&self, event: &EventId) -> &[(PendingCheck, Event)] {
        self.checks.get(event).map_or(&[], Vec::as_slice)
    }

    /// Pending delayed actions `event` cancels: about one of its subjects, naming its type
    /// (or any type).
    pub fn cancelled_by<'a>(&'a self, event: &'a Event) -> impl Iterator<Item = &'a str> + 'a {
        let refs = references(event);
        self.cancellable
            .iter()
            .filter(move |(_, subject, types)| {
                refs.contains(subject)
                    && (types.is_empty() || types.iter().any(|t| t == event.kind.as_str()))
            })
            .map(|(id, ..)| id.as_str())
    }

    /// A subject's state entries, as the batch has left them so far.
    pub fn state_of(&self, subject: &str) -> BTreeMap<String, Value> {
        self.state
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(subject)
            .cloned()
            .unwrap_or_default()
    }

    /// Applies a rule's state writes, for the events after it in the batch.
    pub fn apply_state(&self, subject: &str, name: &str, value: Option<&Value>) {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let entries = state.entry(subject.to_owned()).or_default();
        match value {
            Some(v) => entries.insert(name.to_owned(), v.clone()),
            None => entries.remove(name),
        };
    }
}

/// What a deadline event says: `(rule, first event, deadline, check)`.
pub fn deadline_of(event: &Event) -> Option<(&str, &str, DateTime<Utc>, &str)> {
    if event.kind.as_str() != DEADLINE || event.source != crate::providers::ENGINE_SOURCE {
        return None;
    }
    let field = |name: &str| event.data.get(name).and_then(Value::as_str);
    let deadline = field("deadline").and_then(|t| t.parse().ok())?;
    Some((field("rule")?, field("event")?, deadline, field("check")?))
}

/// The time history windows end at for `event`: its `occurred_at`.
fn window_end(event: &Event) -> DateTime<Utc> {
    event.occurred_at
}

/// Follow-ups count from the first event's `occurred_at` on (a follow-up that arrived before
/// the first event was processed counts too: look-back).
fn follow_up_query(
    key: SubjectKey,
    first: &Event,
    types: &[String],
    until: DateTime<Utc>,
) -> Option<Query> {
    Some(Query {
        key: Some((key, key.value(first)?.to_owned())),
        types: types.to_vec(),
        after: first.occurred_at - Duration::milliseconds(1),
        until,
        limit: MAX_FOLLOW_UPS,
    })
}

/// Gathers what `batch`'s rules read, from `recall`.
pub async fn gather<R: Recall>(
    set: &RuleSet,
    batch: &[&Event],
    recall: &R,
    now: DateTime<Utc>,
) -> Result<Facts, R::Error> {
    let mut facts = Facts::default();
    let claims: Vec<&str> = batch
        .iter()
        .filter_map(|e| e.subject.claim.as_deref())
        .collect();
    let paused = if claims.is_empty() {
        Vec::new()
    } else {
        recall.paused(&claims).await?
    };
    facts.script = Arc::new(crate::script::Facts::with_paused(paused));
    let mut state_refs: HashSet<String> = HashSet::new();
    let awaited = set.awaited_types();
    let mut batch_refs: HashSet<String> = HashSet::new();
    for event in batch {
        if let Some((rule_id, first_id, deadline, _)) = deadline_of(event) {
            let Some(rule) = set.rule(rule_id) else {
                continue;
            };
            let Some(first) = recall.event(first_id).await? else {
                continue;
            };
            if let Some(unless) = &rule.time.unless
                && let Some(query) = follow_up_query(unless.same, &first, &unless.awaits, deadline)
            {
                let found = recall.history(&query).await?;
                facts
                    .follow_ups
                    .insert((event.id.clone(), rule.id.clone(), "unless".into()), found);
            }
            read_history(&mut facts, recall, rule, event, &first).await?;
            if let Some(key) = rule.time.state.and_then(|k| k.reference(&first)) {
                state_refs.insert(key);
            }
            facts.armed.insert(event.id.clone(), first);
            continue;
        }
        let triggered: Vec<&Rule> = set.triggered(event).collect();
        for rule in triggered {
            read_history(&mut facts, recall, rule, event, event).await?;
            if let Some(unless) = &rule.time.unless
                && let Some(query) =
                    follow_up_query(unless.same, event, &unless.awaits, far_future())
            {
                let found = recall.history(&query).await?;
                facts
                    .follow_ups
                    .insert((event.id.clone(), rule.id.clone(), "unless".into()), found);
            }
            for (index, timing) in rule.time.actions.iter().enumerate() {
                if let Some((types, key)) = &timing.cancel_on
                    && let Some(query) = follow_up_query(*key, event, types, far_future())
                {
                    let found = recall.history(&query).await?;
                    facts.follow_ups.insert(
                        (event.id.clone(), rule.id.clone(), format!("cancel:{index}")),
                        found,
                    );
                }
            }
            if let Some(key) = rule.time.state.and_then(|k| k.reference(event)) {
                state_refs.insert(key);
            }
        }
        let refs = references(event);
        if refs.is_empty() {
            continue;
        }
        if awaited.contains(event.kind.as_str()) {
            let mut found = Vec::new();
            for check in recall
                .pending_checks(&refs, event.kind.as_str(), MAX_PENDING)
                .await?
            {
                if let Some(first) = recall.event(&check.event_id).await? {
                    found.push((check, first));
                }
            }
            facts.checks.insert(event.id.clone(), found);
        }
        batch_refs.extend(refs);
    }
    // Every event may cancel delayed actions planned before it, whatever the rules in force
    // now say (the rule that planned one may have changed since): one query per batch.
    if !batch_refs.is_empty() {
        let refs: Vec<String> = batch_refs.into_iter().collect();
        facts.cancellable = recall.cancellable(&refs, MAX_CANCELLABLE).await?;
    }
    if !state_refs.is_empty() {
        let refs: Vec<String> = state_refs.into_iter().collect();
        let mut state = HashMap::<String, BTreeMap<String, Value>>::new();
        for (subject, name, value) in recall.state(&refs, now).await? {
            state.entry(subject).or_default().insert(name, value);
        }
        facts.state = Mutex::new(state);
    }
    Ok(facts)
}

/// Reads `rule`'s history declarations for `event` (`subject`: whose claim, account or
/// debtor the window follows; the first event for a deadline).
async fn read_history<R: Recall>(
    facts: &mut Facts,
    recall: &R,
    rule: &Rule,
    event: &Event,
    subject: &Event,
) -> Result<(), R::Error> {
    let until = window_end(event);
    for spec in &rule.time.history {
        let after = chrono::Duration::from_std(spec.within)
            .ok()
            .and_then(|w| until.checked_sub_signed(w))
            .filter(|after| *after > far_past())
            .unwrap_or_else(far_past);
        let items = match &spec.source {
            HistorySource::DeadActions => {
                HistoryItems::Actions(recall.dead_actions(after, until, spec.limit).await?)
            }
            HistorySource::Events(types) => {
                let key = match spec.same {
                    Some(key) => match key.value(subject) {
                        Some(value) => Some((key, value.to_owned())),
                        // No claim (say) to follow: nothing to read.
                        None => {
                            facts.history.insert(
                                (event.id.clone(), rule.id.clone(), spec.name.clone()),
                                HistoryItems::Events(Vec::new()),
                            );
                            continue;
                        }
                    },
                    None => None,
                };
                let query = Query {
                    key,
                    types: types.clone(),
                    after,
                    until,
                    limit: spec.limit,
                };
                HistoryItems::Events(recall.history(&query).await?)
            }
        };
        facts.history.insert(
            (event.id.clone(), rule.id.clone(), spec.name.clone()),
            items,
        );
    }
    Ok(())
}

/// Runs a future that never waits (an in-memory [`Recall`]) to its end.
pub fn ready<F: std::future::Future>(future: F) -> F::Output {
    let mut future = std::pin::pin!(future);
    let mut context = std::task::Context::from_waker(std::task::Waker::noop());
    match future.as_mut().poll(&mut context) {
        std::task::Poll::Ready(output) => output,
        std::task::Poll::Pending => unreachable!("an in-memory recall never waits"),
    }
}
