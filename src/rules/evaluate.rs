//! Evaluating one event against the rule set: trigger, `when`, `script`, then rendering the
//! actions. Pure: no IO, no clock but the one given.

use std::cell::OnceCell;
use std::collections::BTreeMap;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::RuleSet;
use super::compile::Rule;
use super::config::ActionConfig;
use super::facts::{Facts, HistoryItems, deadline_of};
use crate::normalize::{Event, EventId};
use crate::script::{self, BlockOutcome, Session};

/// Rendered text, refused past [`super::TEMPLATE_OUTPUT_BYTES`].
#[derive(Default)]
struct Bounded {
    bytes: Vec<u8>,
    overflowed: bool,
}

impl std::io::Write for Bounded {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if self.bytes.len() + buf.len() > super::TEMPLATE_OUTPUT_BYTES {
            self.overflowed = true;
            return Err(std::io::Error::other("rendered text too long"));
        }
        self.bytes.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// What one rule did with one event.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum Outcome {
    /// The rule fires with these planned actions (rendered parameters, `type` first).
    Fired {
        actions: Vec<ActionConfig>,
        /// `(rendered key, window)` when the rule is throttled; the store decides.
        #[serde(skip)]
        throttle: Option<(String, Duration)>,
        /// When each action is due and what cancels it (all at once, none, when empty).
        #[serde(skip_serializing_if = "Vec::is_empty")]
        timing: Vec<Timing>,
    },
    /// It matched and now waits: it fires at `deadline` unless an event of `awaits` about
    /// `subject` comes first (a pending check).
    Waiting {
        subject: String,
        awaits: Vec<String>,
        deadline: DateTime<Utc>,
    },
    /// The script called `skip(reason)`.
    Skipped { reason: String },
    /// The trigger or `when` did not match.
    NotMatched { reason: String },
    /// A script or template failed: an error of this rule alone. `line` is in the rule file.
    Failed { error: String, line: Option<usize> },
}

/// When a planned action is due, and what cancels it while it waits.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Timing {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub due: Option<DateTime<Utc>>,
    /// `(subject, event types)`: a later event of these types about the subject cancels it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cancel: Option<(String, Vec<String>)>,
}

/// A state entry a rule wrote (`value` `None`: cleared).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StateWrite {
    pub subject: String,
    pub name: String,
    pub value: Option<Value>,
    pub expires_at: Option<DateTime<Utc>>,
    pub rule_id: String,
}

/// How a check ends when an event settles it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CheckEnd {
    /// Its follow-up came.
    Satisfied,
    /// Its rule is gone or disabled: it no longer waits.
    Cancelled,
}

/// What processing an event changes besides its evaluations.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Effects {
    pub state: Vec<StateWrite>,
    /// Checks this event settles: it is their follow-up, or their deadline found their rule
    /// gone or disabled.
    pub checks: Vec<(String, CheckEnd)>,
    /// Delayed actions this event cancels.
    pub cancelled: Vec<String>,
}

/// One event's evaluations and effects.
#[derive(Debug, Clone, Default)]
pub struct Processed {
    pub evaluations: Vec<Evaluation>,
    pub effects: Effects,
}

#[derive(Debug, Clone, Serialize)]
pub struct Evaluation {
    pub rule_id: String,
    pub rule_version: String,
    #[serde(flatten)]
    pub outcome: Outcome,
    pub logs: Vec<String>,
    #[serde(skip)]
    pub duration: Duration,
}

/// Whether `rule` runs for `event`: enabled, and its trigger takes it.
fn triggers(rule: &Rule, event: &Event) -> bool {
    rule.enabled && rule.trigger.check(event).is_ok()
}

/// Why `rule` does not run for `event`, or `None` when it does.
pub fn trigger_mismatch(rule: &Rule, event: &Event) -> Option<String> {
    if !rule.enabled {
        return Some("the rule is disabled".into());
    }
    rule.trigger
        .check(event)
        .err()
        .map(|mismatch| rule.trigger.explain(mismatch, event))
}

/// The event as scripts and templates see it, computed once per event, on first use.
pub struct EventView<'a> {
    event: &'a Event,
    /// The event the evaluation is recorded for: `event` itself, or the deadline event of a
    /// check `event` armed.
    evaluated: EventId,
    now: DateTime<Utc>,
    facts: Arc<Facts>,
    /// What the event's scripts read besides the event: the time, the batch's facts, logs.
    session: Arc<Session>,
    dynamic: OnceCell<Result<rhai::Dynamic, String>>,
    template: OnceCell<minijinja::Value>,
}

impl<'a> EventView<'a> {
    /// The event for `set`'s rules (their calendars), at `now`, with `facts`.
    pub fn new(set: &RuleSet, event: &'a Event, now: DateTime<Utc>, facts: Arc<Facts>) -> Self {
        Self::evaluated_as(set, event, event.id.clone(), now, facts)
    }

    fn evaluated_as(
        set: &RuleSet,
        event: &'a Event,
        evaluated: EventId,
        now: DateTime<Utc>,
        facts: Arc<Facts>,
    ) -> Self {
        Self {
            event,
            evaluated,
            now,
            session: Session::with_time(
                now,
                facts.script.clone(),
                set.calendars().clone(),
                set.calendars().quiet_hours(),
            ),
            facts,
            dynamic: OnceCell::new(),
            template: OnceCell::new(),
        }
    }

    fn dynamic(&self) -> Result<&rhai::Dynamic, String> {
        self.dynamic
            .get_or_init(|| script::event_value(self.event).map_err(|e| e.message))
            .as_ref()
            .map_err(Clone::clone)
    }

    fn template(&self) -> &minijinja::Value {
        self.template
            .get_or_init(|| minijinja::Value::from(minijinja::value::Serde(self.event.view())))
    }
}

/// A rendered header may hold only secret references its template's own text holds: values
/// cannot add one, even in pieces (`{{ a }}{{ b }}` with `a` = `$`, `b` = `{secret:X}`).
fn secret_references_are_the_rules(source: &str, rendered: &[u8]) -> Result<(), String> {
    use crate::actions::secrets;
    let rendered = String::from_utf8_lossy(rendered);
    let written = secrets::references(source).unwrap_or_default();
    let made = secrets::references(&rendered)?;
    match made.iter().find(|name| !written.contains(name)) {
        Some(name) => Err(format!(
            "the rendered header references secret '{name}', which the rule's text does not: a value may not write a secret reference"
        )),
        None => Ok(()),
    }
}

impl RuleSet {
    /// The enabled rules whose trigger takes the event, in rule order.
    pub fn triggered<'a>(&'a self, event: &'a Event) -> impl Iterator<Item = &'a Rule> + 'a {
        self.candidates(event)
            .filter(move |rule| triggers(rule, event))
    }

    /// Every rule whose trigger takes the event, evaluated in rule order, knowing no facts.
    pub fn evaluate(&self, event: &Event, now: DateTime<Utc>) -> Vec<Evaluation> {
        self.process(event, now, &Arc::default()).evaluations
    }

    /// Every rule whose trigger takes the event, with `facts` fetched for its batch.
    pub fn evaluate_with(
        &self,
        event: &Event,
        now: DateTime<Utc>,
        facts: &Arc<Facts>,
    ) -> Vec<Evaluation> {
        self.process(event, now, facts).evaluations
    }

    /// Evaluates the event with `facts` fetched for its batch: the rules its trigger takes (or,
    /// for a deadline, the rule that waited), and what it changes besides (state written,
    /// checks it satisfies, delayed actions it cancels).
    pub fn process(&self, event: &Event, now: DateTime<Utc>, facts: &Arc<Facts>) -> Processed {
        let mut effects = Effects::default();
        if let Some((rule_id, _, deadline, check)) = deadline_of(event) {
            let evaluations = match (self.rule(rule_id), facts.armed(&event.id)) {
                (Some(rule), Some(first)) if rule.enabled => {
                    let view =
                        EventView::evaluated_as(self, first, event.id.clone(), now, facts.clone());
                    let (evaluation, satisfied) = self.evaluate_deadline(rule, &view, deadline);
                    if satisfied {
                        effects.checks.push((check.to_owned(), CheckEnd::Satisfied));
                    }
                    effects
                        .state
                        .extend(self.state_writes(rule, &view, &evaluation));
                    vec![evaluation]
                }
                // The rule is gone or disabled, or its first event is: the check goes.
                _ => {
                    effects.checks.push((check.to_owned(), CheckEnd::Cancelled));
                    Vec::new()
                }
            };
            return Processed {
                evaluations,
                effects,
            };
        }
        let view = EventView::new(self, event, now, facts.clone());
        let mut evaluations = Vec::new();
        for rule in self.triggered(event) {
            let evaluation = self.evaluate_rule(rule, &view);
            effects
                .state
                .extend(self.state_writes(rule, &view, &evaluation));
            evaluations.push(evaluation);
        }
        for (check, first) in facts.checks(&event.id) {
            let Some(unless) = self
                .rule(&check.rule_id)
                .and_then(|r| r.time.unless.as_ref())
            else {
                continue;
            };
            // As at the deadline: a follow-up counts from the first event on, until then.
            if event.occurred_at <= check.deadline
                && event.occurred_at >= first.occurred_at
                && unless.awaits.iter().any(|t| t == event.kind.as_str())
                && self
                    .meets(unless, first, event, &view.session)
                    .unwrap_or(false)
            {
                effects.checks.push((check.id.clone(), CheckEnd::Satisfied));
            }
        }
        effects
            .cancelled
            .extend(facts.cancelled_by(event).map(str::to_owned));
        Processed {
            evaluations,
            effects,
        }
    }

    /// Every rule, with why it did or did not fire (for `signalbox try`).
    pub fn explain(&self, event: &Event, now: DateTime<Utc>) -> Vec<Evaluation> {
        self.explain_with(event, now, &Arc::default())
    }

    /// Every rule, with why it did or did not fire, knowing `facts` (read from the store for a
    /// stored event): nothing is stored or sent.
    pub fn explain_with(
        &self,
        event: &Event,
        now: DateTime<Utc>,
        facts: &Arc<Facts>,
    ) -> Vec<Evaluation> {
        let view = EventView::new(self, event, now, facts.clone());
        self.rules()
            .iter()
            .map(|rule| self.evaluate_one(rule, &view))
            .collect()
    }

    /// One rule against an event, trigger included (for rule tests).
    pub fn evaluate_one(&self, rule: &Rule, view: &EventView<'_>) -> Evaluation {
        match trigger_mismatch(rule, view.event) {
            Some(reason) => Evaluation {
                rule_id: rule.id.clone(),
                rule_version: rule.version.clone(),
                outcome: Outcome::NotMatched { reason },
                logs: Vec::new(),
                duration: Duration::ZERO,
            },
            None => self.evaluate_rule(rule, view),
        }
    }

    /// Whether `next` is a follow-up that keeps `first`'s rule from firing (its `where`).
    fn meets(
        &self,
        unless: &super::time::Unless,
        first: &Event,
        next: &Event,
        session: &Arc<Session>,
    ) -> Result<bool, String> {
        let Some(condition) = &unless.condition else {
            return Ok(true);
        };
        let first = script::event_value(first).map_err(|e| e.message)?;
        let next = script::event_value(next).map_err(|e| e.message)?;
        condition
            .holds_with(vec![first, next], session)
            .map_err(|e| e.message)
    }

    /// The first follow-up among `follow_ups` that meets `where`, or the error it gave.
    fn first_follow_up<'e>(
        &self,
        unless: &super::time::Unless,
        first: &Event,
        follow_ups: &'e [Event],
        session: &Arc<Session>,
    ) -> Result<Option<&'e Event>, String> {
        for next in follow_ups.iter().rev() {
            if next.id == first.id {
                continue;
            }
            match self.meets(unless, first, next, session) {
                Ok(true) => return Ok(Some(next)),
                Ok(false) => {}
                // A follow-up `where` cannot judge does not count (as when it arrives).
                Err(e) => session.log(format!(
                    "unless.where failed for {} {}, which does not count as a follow-up: {e}",
                    next.kind, next.id
                )),
            }
        }
        Ok(None)
    }

    /// A check's deadline came: the rule fires (with the first event as `event`) unless a
    /// follow-up came in the window. Returns the evaluation, and whether a follow-up
    /// satisfied the check.
    fn evaluate_deadline(
        &self,
        rule: &Rule,
        view: &EventView<'_>,
        deadline: DateTime<Utc>,
    ) -> (Evaluation, bool) {
        let Some(unless) = &rule.time.unless else {
            let evaluation = self.finish(
                rule,
                view,
                Instant::now(),
                Outcome::NotMatched {
                    reason: "the rule no longer waits for a follow-up".into(),
                },
            );
            return (evaluation, false);
        };
        let follow_ups = view.facts.follow_ups(&view.evaluated, &rule.id, "unless");
        let started = Instant::now();
        let (outcome, satisfied) =
            match self.first_follow_up(unless, view.event, follow_ups, &view.session) {
                Err(e) => (
                    Outcome::Failed {
                        error: format!("unless.where: {e}"),
                        line: None,
                    },
                    false,
                ),
                Ok(Some(next)) => (
                    Outcome::NotMatched {
                        reason: format!(
                            "followed by {} {} at {}, before the deadline {}",
                            next.kind,
                            next.id,
                            next.occurred_at.to_rfc3339(),
                            deadline.to_rfc3339()
                        ),
                    },
                    true,
                ),
                Ok(None) => (self.guarded(rule, view, |set| set.act(rule, view)), false),
            };
        (self.finish(rule, view, started, outcome), satisfied)
    }

    fn evaluate_rule(&self, rule: &Rule, view: &EventView<'_>) -> Evaluation {
        let started = Instant::now();
        let outcome = self.guarded(rule, view, |set| set.decide(rule, view));
        self.finish(rule, view, started, outcome)
    }

    /// Runs `decide` with the rule's state in the session; a panic in it is a bug in
    /// Signalbox (a host function, a filter), not the author's: it fails this rule's
    /// evaluation alone, and the other rules and events go on.
    fn guarded(
        &self,
        rule: &Rule,
        view: &EventView<'_>,
        decide: impl FnOnce(&Self) -> Outcome,
    ) -> Outcome {
        // At debug: a span per rule and event costs about as much as a simple condition, and
        // what is logged inside at info and above names the rule itself.
        let _span = tracing::debug_span!("rule", rule_id = %rule.id).entered();
        let subject = rule.time.state.and_then(|k| k.reference(view.event));
        let entries = subject
            .as_deref()
            .map(|s| view.facts.state_of(s))
            .unwrap_or_default();
        view.session.begin_state(
            subject,
            entries,
            rule.time.state.map(super::time::SubjectKey::name),
        );
        std::panic::catch_unwind(AssertUnwindSafe(|| decide(self)))
            .unwrap_or_else(|panic| {
                let what = panic
                    .downcast_ref::<&str>()
                    .map(|s| (*s).to_owned())
                    .or_else(|| panic.downcast_ref::<String>().cloned())
                    .unwrap_or_default();
                tracing::error!(rule_id = %rule.id, event_id = %view.event.id, panic = %what, "rule evaluation panicked");
                Outcome::Failed {
                    error: format!("internal error while evaluating this rule (a bug in Signalbox; please report it): {what}"),
                    line: None,
                }
            })
    }

    fn finish(
        &self,
        rule: &Rule,
        view: &EventView<'_>,
        started: Instant,
        outcome: Outcome,
    ) -> Evaluation {
        let logs = view.session.take_logs();
        Evaluation {
            rule_id: rule.id.clone(),
            rule_version: rule.version.clone(),
            outcome,
            logs,
            duration: started.elapsed(),
        }
    }

    /// The state the rule's scripts wrote, kept unless the evaluation failed; applied to the
    /// batch's facts so the events after it read it.
    fn state_writes(
        &self,
        rule: &Rule,
        view: &EventView<'_>,
        evaluation: &Evaluation,
    ) -> Vec<StateWrite> {
        let scope = view.session.take_state();
        let Some(subject) = scope.subject else {
            return Vec::new();
        };
        if matches!(evaluation.outcome, Outcome::Failed { .. }) {
            return Vec::new();
        }
        scope
            .writes
            .into_iter()
            .map(|(name, value, expiry)| {
                view.facts.apply_state(&subject, &name, value.as_ref());
                StateWrite {
                    subject: subject.clone(),
                    name,
                    value,
                    expires_at: expiry
                        .and_then(|d| chrono::Duration::from_std(d).ok())
                        .and_then(|d| view.now.checked_add_signed(d)),
                    rule_id: rule.id.clone(),
                }
            })
            .collect()
    }

    /// The rule's `history`, as scripts read it.
    fn history(&self, rule: &Rule, view: &EventView<'_>) -> Result<rhai::Dynamic, String> {
        let mut map = rhai::Map::new();
        for spec in &rule.time.history {
            let items = view.facts.history(&view.evaluated, &rule.id, &spec.name);
            map.insert(
                spec.name.as_str().into(),
                history_value(items, rule.time.history_events)?,
            );
        }
        Ok(rhai::Dynamic::from_map(map))
    }

    /// What a rule's scripts read: the event and the rule's history.
    fn script_inputs<'v>(
        &self,
        rule: &Rule,
        view: &'v EventView<'_>,
    ) -> Result<(&'v rhai::Dynamic, rhai::Dynamic), String> {
        let event = view
            .dynamic()
            .map_err(|e| format!("event cannot be given to scripts: {e}"))?;
        let history = self
            .history(rule, view)
            .map_err(|e| format!("history: {e}"))?;
        Ok((event, history))
    }

    fn decide(&self, rule: &Rule, view: &EventView<'_>) -> Outcome {
        let failed = |error: String, line: Option<usize>| Outcome::Failed { error, line };
        if let Some(when) = &rule.when {
            let (event, history) = match self.script_inputs(rule, view) {
                Ok(inputs) => inputs,
                Err(error) => return failed(error, None),
            };
            match when.holds_with(vec![event.clone(), history], &view.session) {
                Ok(true) => {}
                Ok(false) => {
                    return Outcome::NotMatched {
                        reason: "when was false".into(),
                    };
                }
                Err(e) => {
                    return failed(
                        format!("when: {}", e.message),
                        Some(rule.when_span.locate(e.line, e.column).0),
                    );
                }
            }
        }
        if let Some(unless) = &rule.time.unless {
            return self.wait(rule, unless, view);
        }
        self.act(rule, view)
    }

    /// An `unless:` rule matched: it waits for a follow-up, unless one already came.
    fn wait(&self, rule: &Rule, unless: &super::time::Unless, view: &EventView<'_>) -> Outcome {
        let Some(subject) = unless.same.reference(view.event) else {
            return Outcome::NotMatched {
                reason: format!(
                    "the event has no {} to wait for a follow-up about",
                    unless.same.name()
                ),
            };
        };
        let follow_ups = view.facts.follow_ups(&view.evaluated, &rule.id, "unless");
        match self.first_follow_up(unless, view.event, follow_ups, &view.session) {
            Err(e) => {
                return Outcome::Failed {
                    error: format!("unless.where: {e}"),
                    line: None,
                };
            }
            Ok(Some(next)) => {
                return Outcome::NotMatched {
                    reason: format!(
                        "already followed by {} {} at {}",
                        next.kind,
                        next.id,
                        next.occurred_at.to_rfc3339()
                    ),
                };
            }
            Ok(None) => {}
        }
        let from = match &unless.from {
            Some(name) => {
                match self.render_text(name, &self.context(view, &Default::default(), rule)) {
                    Ok(text) => match local_time(text.trim(), rule.time.zone) {
                        Some(t) => t,
                        None => {
                            return Outcome::Failed {
                                error: format!(
                                    "unless.from: '{text}' is not a time (RFC 3339 or a date such as 2026-12-01)"
                                ),
                                line: None,
                            };
                        }
                    },
                    Err(e) => {
                        return Outcome::Failed {
                            error: format!("unless.from: {e}"),
                            line: None,
                        };
                    }
                }
            }
            None => view.event.occurred_at,
        };
        let Some(deadline) = unless
            .within
            .apply(from, rule.time.zone, rule.time.calendar())
        else {
            return Outcome::Failed {
                error: format!(
                    "unless.within from {} is beyond the calendar",
                    from.to_rfc3339()
                ),
                line: None,
            };
        };
        if let Err(error) = within_reach(deadline, view.now) {
            return Outcome::Failed {
                error: format!("unless: the deadline {error}"),
                line: None,
            };
        }
        Outcome::Waiting {
            subject,
            awaits: unless.awaits.clone(),
            deadline,
        }
    }

    /// Runs the script, then renders the actions.
    fn act(&self, rule: &Rule, view: &EventView<'_>) -> Outcome {
        let failed = |error: String, line: Option<usize>| Outcome::Failed { error, line };
        if let Some(script) = &rule.script {
            let (event, history) = match self.script_inputs(rule, view) {
                Ok(inputs) => inputs,
                Err(error) => return failed(error, None),
            };
            return match script.run_with(event, history, &view.session) {
                Ok(BlockOutcome::Proceed(vars)) => self.render(rule, view, vars),
                Ok(BlockOutcome::Skip(reason)) => Outcome::Skipped { reason },
                Err(e) => failed(
                    format!("script: {}", e.message),
                    Some(rule.script_span.locate(e.line, e.column).0),
                ),
            };
        }
        self.render(rule, view, serde_json::Map::new())
    }

    /// Renders every action's templates with the event and the script's variables, then checks
    /// the result as `check` checks literal parameters.
    /// What templates read: the event, the script's variables, the rule's history.
    fn context(
        &self,
        view: &EventView<'_>,
        vars: &serde_json::Map<String, Value>,
        rule: &Rule,
    ) -> minijinja::Value {
        // The event's template value is built once per event and shared (reference-counted).
        let mut context: BTreeMap<String, minijinja::Value> = vars
            .iter()
            .map(|(k, v)| {
                (
                    k.clone(),
                    minijinja::Value::from(minijinja::value::Serde(v)),
                )
            })
            .collect();
        context.insert("event".into(), view.template().clone());
        if !rule.time.history.is_empty() {
            let history: serde_json::Map<String, Value> = rule
                .time
                .history
                .iter()
                .map(|spec| {
                    let items = view.facts.history(&view.evaluated, &rule.id, &spec.name);
                    (spec.name.clone(), history_json(items))
                })
                .collect();
            context.insert(
                "history".into(),
                minijinja::Value::from(minijinja::value::Serde(Value::Object(history))),
            );
        }
        minijinja::Value::from(context)
    }

    /// Renders the template `name` with `context`, bounded in size and instructions.
    fn render_text(&self, name: &str, context: &minijinja::Value) -> Result<String, String> {
        let template = self
            .templates
            .get_template(name)
            .map_err(|e| e.to_string())?;
        let mut out = Bounded::default();
        let rendered = template.render_captured_to(context.clone(), &mut out);
        if rendered.is_ok() && super::Slot::of(name) == super::Slot::Header {
            secret_references_are_the_rules(template.source(), &out.bytes)?;
        }
        match rendered {
            Ok(_) if out.bytes.contains(&0) => Err(
                "the rendered text contains a NUL character (\\u0000), which cannot be sent or stored".into(),
            ),
            Ok(_) => String::from_utf8(out.bytes).map_err(|_| "rendered text is not UTF-8".into()),
            Err(_) if out.overflowed => Err(format!(
                "the rendered text passed {} KiB (a loop writing without end?)",
                super::TEMPLATE_OUTPUT_BYTES / 1024
            )),
            Err(e) if e.kind() == minijinja::ErrorKind::OutOfFuel => Err(format!(
                "stopped: the template ran more than {} instructions (a loop without end?)",
                super::TEMPLATE_FUEL
            )),
            Err(e) => Err(e.detail().map_or_else(|| e.to_string(), str::to_owned)),
        }
    }

    /// When action `index` is due and what cancels it; `None` when a follow-up that cancels
    /// it already came (it is not planned).
    fn timing(
        &self,
        rule: &Rule,
        view: &EventView<'_>,
        index: usize,
        context: &minijinja::Value,
    ) -> Result<Option<Timing>, String> {
        let Some(spec) = rule.time.actions.get(index) else {
            return Ok(Some(Timing::default()));
        };
        let due = match (&spec.after, &spec.at) {
            (Some(after), _) => Some(
                after
                    .apply(view.now, rule.time.zone, rule.time.calendar())
                    .ok_or_else(|| format!("actions[{index}].after: beyond the calendar"))?,
            ),
            (None, Some(name)) => {
                let text = self
                    .render_text(name, context)
                    .map_err(|e| format!("actions[{index}].at: {e}"))?;
                Some(local_time(text.trim(), rule.time.zone).ok_or_else(|| {
                    format!("actions[{index}].at: '{text}' is not a time (RFC 3339 or a date such as 2026-12-01)")
                })?)
            }
            (None, None) => None,
        };
        if let Some(due) = due {
            within_reach(due, view.now).map_err(|e| format!("actions[{index}]: it is due {e}"))?;
        }
        let cancel = match &spec.cancel_on {
            Some((types, key)) => match key.reference(view.event) {
                Some(subject) => {
                    let what = format!("cancel:{index}");
                    if let Some(next) = view
                        .facts
                        .follow_ups(&view.evaluated, &rule.id, &what)
                        .iter()
                        .find(|next| next.id != view.event.id)
                    {
                        view.session.log(format!(
                            "actions[{index}] not planned: {} {} already came (cancel_on)",
                            next.kind, next.id
                        ));
                        return Ok(None);
                    }
                    Some((subject, types.clone()))
                }
                None => None,
            },
            None => None,
        };
        Ok(Some(Timing { due, cancel }))
    }

    /// Renders every action's templates with the event and the script's variables, then checks
    /// the result as `check` checks literal parameters.
    fn render(
        &self,
        rule: &Rule,
        view: &EventView<'_>,
        vars: serde_json::Map<String, Value>,
    ) -> Outcome {
        let context = self.context(view, &vars, rule);
        let render = |name: &str| self.render_text(name, &context);
        let mut actions = Vec::with_capacity(rule.actions.len());
        let mut timing = Vec::with_capacity(rule.actions.len());
        for (index, action) in rule.actions.iter().enumerate() {
            let when = match self.timing(rule, view, index, &context) {
                Ok(Some(when)) => when,
                Ok(None) => continue,
                Err(error) => return Outcome::Failed { error, line: None },
            };
            // Literal parameters were checked when the rule loaded; check what templates made.
            if action.templates.is_empty() {
                actions.push(action.literal.clone());
                timing.push(when);
                continue;
            }
            let mut params = action.params.clone();
            for (pointer, name) in &action.templates {
                let text = match render(name) {
                    Ok(text) => text,
                    Err(e) => {
                        return Outcome::Failed {
                            error: format!("actions[{index}]{}: {e}", pointer.replace('/', ".")),
                            line: None,
                        };
                    }
                };
                if let Some(slot) = params.pointer_mut(pointer) {
                    *slot = Value::String(text);
                }
            }
            let (config, problems) = match ActionConfig::deserialize(&params) {
                Ok(config) => {
                    let problems = config.check(&|_| false);
                    (Some(config), problems)
                }
                Err(e) => (None, vec![e.to_string()]),
            };
            let Some(config) = config.filter(|_| problems.is_empty()) else {
                return Outcome::Failed {
                    error: format!(
                        "actions[{index}] ({}): {}",
                        action.kind,
                        problems.join("; ")
                    ),
                    line: None,
                };
            };
            actions.push(config);
            timing.push(when);
        }
        if timing.iter().all(|t| *t == Timing::default()) {
            timing.clear();
        }
        let throttle = match &rule.throttle {
            Some(t) => match render(&t.key_template) {
                Ok(key) => Some((key, t.window)),
                Err(e) => {
                    return Outcome::Failed {
                        error: format!("throttle.key: {e}"),
                        line: None,
                    };
                }
            },
            None => None,
        };
        Outcome::Fired {
            actions,
            throttle,
            timing,
        }
    }
}

/// How far ahead a check's deadline or a delayed action may lie: a year and a day. Further
/// (a far-future date in an event, a typo in a delay) would keep rows waiting for ever.
const MAX_AHEAD_DAYS: i64 = 366;

/// `Ok` if `t` is at most [`MAX_AHEAD_DAYS`] after `now`; else why not, for a message.
fn within_reach(t: DateTime<Utc>, now: DateTime<Utc>) -> Result<(), String> {
    if t.signed_duration_since(now) > chrono::Duration::days(MAX_AHEAD_DAYS) {
        return Err(format!(
            "{} is more than {MAX_AHEAD_DAYS} days away: nothing waits that long (a date in the event, or the delay, is wrong?)",
            t.to_rfc3339()
        ));
    }
    Ok(())
}

/// A time a template gave: RFC 3339; or, in `zone` (a due date is a day where the debtor
/// lives), a bare date (its midnight) or a date and time without an offset
/// (`2026-12-23T23:59:59`).
fn local_time(text: &str, zone: chrono_tz::Tz) -> Option<DateTime<Utc>> {
    if let Ok(date) = chrono::NaiveDate::parse_from_str(text, "%Y-%m-%d") {
        return Some(crate::calendar::local_to_utc(
            date.and_hms_opt(0, 0, 0)?,
            zone,
        ));
    }
    if let Ok(local) = chrono::NaiveDateTime::parse_from_str(text, "%Y-%m-%dT%H:%M:%S") {
        return Some(crate::calendar::local_to_utc(local, zone));
    }
    script::bindings::parse_time(text)
}

/// `history.<name>` for scripts: `#{count, events, first, last, sum}` (events newest first;
/// `first` and `last` the oldest and newest times; `sum` of the events' amounts).
///
/// `with_events` false (the rule's scripts never name `events`) leaves the list empty: turning
/// each event into a script value is most of a history's cost.
fn history_value(items: Option<&HistoryItems>, with_events: bool) -> Result<rhai::Dynamic, String> {
    let mut map = rhai::Map::new();
    let (count, list, first, last, sum) = match items {
        None => (
            0,
            rhai::Array::new(),
            None,
            None,
            rust_decimal::Decimal::ZERO,
        ),
        Some(HistoryItems::Events(events)) => {
            let mut list = rhai::Array::with_capacity(events.len());
            let mut sum = rust_decimal::Decimal::ZERO;
            for event in events {
                if with_events {
                    list.push(script::event_value(event).map_err(|e| e.message)?);
                }
                if let Some(amount) = &event.amount {
                    sum = sum
                        .checked_add(amount.value)
                        .ok_or("the sum of the amounts is too large")?;
                }
            }
            let first = events.last().map(|e| e.occurred_at.to_rfc3339());
            let last = events.first().map(|e| e.occurred_at.to_rfc3339());
            (events.len(), list, first, last, sum)
        }
        Some(HistoryItems::Actions(actions)) => {
            let mut list = rhai::Array::with_capacity(actions.len());
            for action in actions {
                list.push(rhai::serde::to_dynamic(action).map_err(|e| e.to_string())?);
            }
            let time = |a: Option<&Value>| {
                a.and_then(|a| a.get("updated_at"))
                    .and_then(Value::as_str)
                    .map(str::to_owned)
            };
            (
                actions.len(),
                list,
                time(actions.last()),
                time(actions.first()),
                rust_decimal::Decimal::ZERO,
            )
        }
    };
    let time = |t: Option<String>| t.map_or(rhai::Dynamic::UNIT, rhai::Dynamic::from);
    map.insert("count".into(), rhai::Dynamic::from(count as i64));
    map.insert("events".into(), rhai::Dynamic::from_array(list));
    map.insert("first".into(), time(first));
    map.insert("last".into(), time(last));
    map.insert("sum".into(), rhai::Dynamic::from_decimal(sum));
    Ok(rhai::Dynamic::from_map(map))
}

/// `history.<name>` for templates, as JSON.
fn history_json(items: Option<&HistoryItems>) -> Value {
    let (count, list, sum) = match items {
        None => (0, Vec::new(), rust_decimal::Decimal::ZERO),
        Some(HistoryItems::Events(events)) => (
            events.len(),
            events
                .iter()
                .map(|e| serde_json::to_value(e.view()).unwrap_or(Value::Null))
                .collect(),
            events
                .iter()
                .filter_map(|e| e.amount.as_ref())
                .fold(rust_decimal::Decimal::ZERO, |sum, a| {
                    sum.checked_add(a.value).unwrap_or(sum)
                }),
        ),
        Some(HistoryItems::Actions(actions)) => {
            (actions.len(), actions.clone(), rust_decimal::Decimal::ZERO)
        }
    };
    serde_json::json!({ "count": count, "events": list, "sum": sum.to_string() })
}
