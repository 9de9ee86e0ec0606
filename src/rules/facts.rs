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
/// Most pending checks (per awaited type), and cancellable delayed actions, read per batch.
const MAX_PENDING: u32 = 1000;

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
    /// `claim:C-1`.
    pub subject: String,
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
    /// Several subjects' histories at once: for each of `values` (of `key`), its newest
    /// `per_value` events of `types` (any when empty) in `(after, until]`.
    async fn history_many(
        &self,
        key: SubjectKey,
        values: &[&str],
        types: &[String],
        after: DateTime<Utc>,
        until: DateTime<Utc>,
        per_value: u32,
    ) -> Result<Vec<Event>, Self::Error>;
    /// Actions that went dead in `(after, until]`, as JSON summaries, newest first.
    async fn dead_actions(
        &self,
        after: DateTime<Utc>,
        until: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<Value>, Self::Error>;
    /// The events with these ids that are stored.
    async fn events(&self, ids: &[&str]) -> Result<Vec<Event>, Self::Error>;
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

/// One read a batch's rules need: for event `event` and rule `rule`, what `what` names (a
/// history's name, `unless`, or `cancel:<index>`), about `key`'s `value` of `subject`'s
/// event, in `(after, until]`.
struct Need<'a> {
    event: &'a EventId,
    rule: &'a str,
    what: String,
    key: Option<(SubjectKey, String)>,
    types: &'a [String],
    after: DateTime<Utc>,
    until: DateTime<Utc>,
    limit: u32,
    dead_actions: bool,
}

/// Rows read per subject beyond a need's limit in a batched read: later events of the batch
/// and of its moment. A subject whose rows reach it is read again alone, so no window is cut.
const SLACK: u32 = 64;

/// Gathers what `batch`'s rules read, from `recall`: one read per rule's declaration for the
/// whole batch where it can (subjects `IN (...)`), not one per event.
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

    // The first events of the batch's deadlines, in one read.
    let deadlines: Vec<(&Event, &Rule, &str, DateTime<Utc>)> = batch
        .iter()
        .filter_map(|e| {
            let (rule, first, deadline, _) = deadline_of(e)?;
            Some((*e, set.rule(rule)?, first, deadline))
        })
        .collect();
    let first_ids: Vec<&str> = deadlines.iter().map(|(_, _, first, _)| *first).collect();
    let firsts = by_id(recall, &first_ids).await?;
    for (event, _, first, _) in &deadlines {
        if let Some(first) = firsts.get(*first) {
            facts.armed.insert(event.id.clone(), first.clone());
        }
    }

    // What each event's rules read, as needs.
    let mut needs: Vec<Need<'_>> = Vec::new();
    let mut state_refs: HashSet<String> = HashSet::new();
    for (event, rule, _, deadline) in &deadlines {
        let Some(first) = facts.armed.get(&event.id).cloned() else {
            continue;
        };
        if let Some(unless) = &rule.time.unless {
            needs.push(follow_up_need(
                &event.id,
                &rule.id,
                "unless".into(),
                unless.same,
                &first,
                &unless.awaits,
                *deadline,
            ));
        }
        history_needs(&mut needs, rule, event, &first);
        if let Some(key) = rule.time.state.and_then(|k| k.reference(&first)) {
            state_refs.insert(key);
        }
    }
    for event in batch.iter().filter(|e| deadline_of(e).is_none()) {
        for rule in set.triggered(event) {
            history_needs(&mut needs, rule, event, event);
            if let Some(unless) = &rule.time.unless {
                needs.push(follow_up_need(
                    &event.id,
                    &rule.id,
                    "unless".into(),
                    unless.same,
                    event,
                    &unless.awaits,
                    far_future(),
                ));
            }
            for (index, timing) in rule.time.actions.iter().enumerate() {
                if let Some((types, key)) = &timing.cancel_on {
                    needs.push(follow_up_need(
                        &event.id,
                        &rule.id,
                        format!("cancel:{index}"),
                        *key,
                        event,
                        types,
                        far_future(),
                    ));
                }
            }
            if let Some(key) = rule.time.state.and_then(|k| k.reference(event)) {
                state_refs.insert(key);
            }
        }
    }
    read_needs(&mut facts, recall, needs).await?;

    // Pending checks the batch's events may satisfy: one read per awaited type.
    let awaited = set.awaited_types();
    let mut by_kind: BTreeMap<&str, Vec<&Event>> = BTreeMap::new();
    let mut batch_refs: HashSet<String> = HashSet::new();
    for event in batch {
        let refs = references(event);
        if refs.is_empty() {
            continue;
        }
        if awaited.contains(event.kind.as_str()) {
            by_kind.entry(event.kind.as_str()).or_default().push(event);
        }
        batch_refs.extend(refs);
    }
    for (kind, events) in by_kind {
        let refs: Vec<String> = events
            .iter()
            .flat_map(|e| references(e))
            .collect::<HashSet<_>>()
            .into_iter()
            .collect();
        let checks = recall.pending_checks(&refs, kind, MAX_PENDING).await?;
        let ids: Vec<&str> = checks.iter().map(|c| c.event_id.as_str()).collect();
        let firsts = by_id(recall, &ids).await?;
        for event in events {
            let refs = references(event);
            let found: Vec<(PendingCheck, Event)> = checks
                .iter()
                .filter(|c| refs.contains(&c.subject))
                .filter_map(|c| Some((c.clone(), firsts.get(&c.event_id)?.clone())))
                .collect();
            facts.checks.insert(event.id.clone(), found);
        }
    }

    // Every event may cancel delayed actions planned before it, whatever the rules in force
    // now say (the rule that planned one may have changed since): one read per batch.
    if !batch_refs.is_empty() {
        let refs: Vec<String> = batch_refs.into_iter().collect();
        facts.cancellable = recall.cancellable(&refs, MAX_PENDING).await?;
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

/// The stored events with these ids, by id.
async fn by_id<R: Recall>(recall: &R, ids: &[&str]) -> Result<HashMap<String, Event>, R::Error> {
    Ok(recall
        .events(ids)
        .await?
        .into_iter()
        .map(|e| (e.id.to_string(), e))
        .collect())
}

/// A need for the follow-ups of `first` about its `key`, from its `occurred_at` on (a
/// follow-up that arrived before the first event was processed counts too: look-back).
fn follow_up_need<'a>(
    event: &'a EventId,
    rule: &'a str,
    what: String,
    key: SubjectKey,
    first: &Event,
    types: &'a [String],
    until: DateTime<Utc>,
) -> Need<'a> {
    Need {
        event,
        rule,
        what,
        key: key.value(first).map(|v| (key, v.to_owned())),
        types,
        after: first.occurred_at - Duration::milliseconds(1),
        until,
        limit: MAX_FOLLOW_UPS,
        dead_actions: false,
    }
}

/// The needs of `rule`'s history declarations for `event`, whose window ends at its time
/// (`subject`: whose claim, account or debtor a window follows; the first event for a
/// deadline).
fn history_needs<'a>(needs: &mut Vec<Need<'a>>, rule: &'a Rule, event: &'a Event, subject: &Event) {
    let until = window_end(event);
    for spec in &rule.time.history {
        let after = chrono::Duration::from_std(spec.within)
            .ok()
            .and_then(|w| until.checked_sub_signed(w))
            .filter(|after| *after > far_past())
            .unwrap_or_else(far_past);
        let (types, dead_actions): (&[String], bool) = match &spec.source {
            HistorySource::DeadActions => (&[], true),
            HistorySource::Events(types) => (types, false),
        };
        let key = spec
            .same
            .map(|key| (key, key.value(subject).map(str::to_owned)));
        needs.push(Need {
            event: &event.id,
            rule: &rule.id,
            what: spec.name.clone(),
            // A window that follows a subject the event lacks reads nothing.
            key: match key {
                Some((key, Some(value))) => Some((key, value)),
                Some((_, None)) => {
                    needs_nothing(needs, &event.id, &rule.id, &spec.name);
                    continue;
                }
                None => None,
            },
            types,
            after,
            until,
            limit: spec.limit,
            dead_actions,
        });
    }
}

/// A need that reads nothing: an empty history.
fn needs_nothing<'a>(needs: &mut Vec<Need<'a>>, event: &'a EventId, rule: &'a str, what: &str) {
    needs.push(Need {
        event,
        rule,
        what: what.to_owned(),
        key: None,
        types: &[],
        after: far_future(),
        until: far_future(),
        limit: 0,
        dead_actions: false,
    });
}

/// Reads every need: those of one rule's declaration about subjects together, the others
/// alone; each event's result is cut to its own window and limit.
async fn read_needs<R: Recall>(
    facts: &mut Facts,
    recall: &R,
    needs: Vec<Need<'_>>,
) -> Result<(), R::Error> {
    // Group the needs that can be read together: same rule, declaration and key kind.
    let mut groups: BTreeMap<(String, String, &'static str), Vec<Need<'_>>> = BTreeMap::new();
    for need in needs {
        match (&need.key, need.dead_actions, need.limit) {
            (_, _, 0) => store(facts, &need, Vec::new()),
            (_, true, _) => {
                let actions = recall
                    .dead_actions(need.after, need.until, need.limit)
                    .await?;
                facts.history.insert(
                    (need.event.clone(), need.rule.to_owned(), need.what.clone()),
                    HistoryItems::Actions(actions),
                );
            }
            (None, false, _) => {
                let found = recall.history(&query(&need, None)).await?;
                store(facts, &need, found);
            }
            (Some((key, _)), false, _) => groups
                .entry((need.rule.to_owned(), need.what.clone(), key.name()))
                .or_default()
                .push(need),
        }
    }
    for (_, group) in groups {
        let Some((key, _)) = group[0].key.clone() else {
            continue;
        };
        let values: Vec<String> = group
            .iter()
            .filter_map(|n| n.key.as_ref().map(|(_, v)| v.clone()))
            .collect::<HashSet<_>>()
            .into_iter()
            .collect();
        let value_refs: Vec<&str> = values.iter().map(String::as_str).collect();
        let after = group.iter().map(|n| n.after).min().unwrap_or_else(far_past);
        let until = group
            .iter()
            .map(|n| n.until)
            .max()
            .unwrap_or_else(far_future);
        let limit = group.iter().map(|n| n.limit).max().unwrap_or(0);
        let per_value = limit.saturating_add(SLACK).min(super::time::MAX_HISTORY);
        let rows = recall
            .history_many(key, &value_refs, group[0].types, after, until, per_value)
            .await?;
        let mut by_value: HashMap<String, Vec<Event>> = HashMap::new();
        for row in rows {
            if let Some(value) = key.value(&row) {
                by_value.entry(value.to_owned()).or_default().push(row);
            }
        }
        for need in group {
            let value = need.key.as_ref().map_or("", |(_, v)| v.as_str());
            let rows = by_value.get(value).map_or(&[][..], Vec::as_slice);
            // The subject's rows reached the read's bound: they may not cover this window.
            let found = if rows.len() as u32 >= per_value {
                recall.history(&query(&need, Some(value))).await?
            } else {
                let mut found: Vec<Event> = rows
                    .iter()
                    .filter(|e| e.occurred_at > need.after && e.occurred_at <= need.until)
                    .cloned()
                    .collect();
                found.sort_by(|a, b| (b.occurred_at, &b.id).cmp(&(a.occurred_at, &a.id)));
                found.truncate(need.limit as usize);
                found
            };
            store(facts, &need, found);
        }
    }
    Ok(())
}

fn query(need: &Need<'_>, value: Option<&str>) -> Query {
    Query {
        key: need
            .key
            .as_ref()
            .map(|(key, v)| (*key, value.unwrap_or(v).to_owned())),
        types: need.types.to_vec(),
        after: need.after,
        until: need.until,
        limit: need.limit,
    }
}

/// Files what a need read: a history, or follow-ups.
fn store(facts: &mut Facts, need: &Need<'_>, found: Vec<Event>) {
    let key = (need.event.clone(), need.rule.to_owned(), need.what.clone());
    if need.what == "unless" || need.what.starts_with("cancel:") {
        facts.follow_ups.insert(key, found);
    } else {
        facts.history.insert(key, HistoryItems::Events(found));
    }
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
