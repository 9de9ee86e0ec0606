//! Time in rules, compiled: schedules, delayed actions, "A not followed by B" (`unless:`),
//! history windows and the subject whose state scripts keep.
//!
//! Receives the raw `schedule:`, `history:`, `state:`, `unless:` and per-action `after:`,
//! `at:` and `cancel_on:` from [`super::compile`]; hands back their compiled forms, which
//! evaluation ([`super::evaluate`]) and the facts a batch needs ([`super::facts`]) read.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use chrono_tz::Tz;

use super::config::{HistoryConfig, RuleConfig, UnlessConfig};
use super::trigger::Pattern;
use crate::calendar::{Calendars, Offset};
use crate::normalize::Event;
use crate::schedule::{Missed, Schedule};
use crate::script::Condition;

/// The event type of a schedule's tick (source `signalbox`, one per rule and tick).
pub const TICK: &str = crate::normalize::EventType::INTERNAL[0];
/// The event type of an `unless:` window's end (source `signalbox`, one per check).
pub const DEADLINE: &str = crate::normalize::EventType::INTERNAL[1];

/// Most history items one declaration may read.
pub const MAX_HISTORY: u32 = 1000;
const DEFAULT_HISTORY: u32 = 100;
/// Most event types one history declaration names (the store's bound).
const MAX_HISTORY_TYPES: usize = 100;

/// The subject references rules key on: indexed in the store for history and checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SubjectKey {
    Claim,
    Account,
    Debtor,
}

impl SubjectKey {
    pub const ALL: [Self; 3] = [Self::Claim, Self::Account, Self::Debtor];

    pub fn parse(text: &str) -> Result<Self, String> {
        match text {
            "claim" => Ok(Self::Claim),
            "account" => Ok(Self::Account),
            "debtor" => Ok(Self::Debtor),
            other => Err(format!(
                "'{other}' is not a subject to match on: write claim, account or debtor"
            )),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::Claim => "claim",
            Self::Account => "account",
            Self::Debtor => "debtor",
        }
    }

    pub fn value(self, event: &Event) -> Option<&str> {
        match self {
            Self::Claim => event.subject.claim.as_deref(),
            Self::Account => event.subject.account.as_deref(),
            Self::Debtor => event.subject.debtor.as_deref(),
        }
        .filter(|v| !v.is_empty())
    }

    /// `claim:C-1`: how checks, state and cancellable actions name their subject.
    pub fn reference(self, event: &Event) -> Option<String> {
        self.value(event).map(|v| format!("{}:{v}", self.name()))
    }
}

/// Every subject reference of an event (`claim:C-1`, `account:A-7`, ...).
pub fn references(event: &Event) -> Vec<String> {
    SubjectKey::ALL
        .iter()
        .filter_map(|key| key.reference(event))
        .collect()
}

/// A scheduled rule's schedule.
#[derive(Debug, Clone)]
pub struct Scheduled {
    pub schedule: Schedule,
    pub missed: Missed,
    /// The schedule as written (with its zone and calendar): a changed one counts anew.
    pub written: String,
}

/// Where a history declaration reads.
#[derive(Debug, Clone)]
pub enum HistorySource {
    /// Stored events of these types (patterns expanded to the known types; any, when empty).
    Events(Vec<String>),
    /// Actions that went dead in the window.
    DeadActions,
}

/// A compiled `history.<name>`.
#[derive(Debug, Clone)]
pub struct HistorySpec {
    pub name: String,
    pub source: HistorySource,
    pub same: Option<SubjectKey>,
    pub within: Duration,
    pub limit: u32,
}

/// A compiled `unless:`.
#[derive(Debug, Clone)]
pub struct Unless {
    pub awaits: Vec<String>,
    pub same: SubjectKey,
    /// Over `event` (the first) and `next` (the follow-up).
    pub condition: Option<Condition>,
    /// Template name of `from:`, if written.
    pub from: Option<String>,
    pub within: Offset,
}

/// A compiled per-action `after:` / `at:` / `cancel_on:`.
#[derive(Debug, Clone, Default)]
pub struct ActionTiming {
    pub after: Option<Offset>,
    /// Template name of `at:`.
    pub at: Option<String>,
    pub cancel_on: Option<(Vec<String>, SubjectKey)>,
}

impl ActionTiming {
    pub fn is_delayed(&self) -> bool {
        self.after.is_some() || self.at.is_some()
    }
}

/// Everything time-related of one rule.
#[derive(Debug, Clone)]
pub struct TimeSpec {
    pub schedule: Option<Scheduled>,
    pub history: Vec<HistorySpec>,
    pub state: Option<SubjectKey>,
    pub unless: Option<Unless>,
    /// One per action, in order.
    pub actions: Vec<ActionTiming>,
    pub zone: Tz,
    pub calendar: String,
    pub calendars: Arc<Calendars>,
    /// Whether the rule's scripts may read a history's `events` (their text names them).
    pub history_events: bool,
}

impl TimeSpec {
    pub fn calendar(&self) -> &crate::calendar::Calendar {
        self.calendars
            .get(&self.calendar)
            .expect("the calendar was checked when the rule compiled")
    }
}

/// A problem with one key of a rule: `(key, message)`; the compiler places it.
pub type Problem = (&'static str, String);

/// Compiles the time parts of `config`. `template` registers a template under a name and
/// returns the name (or the problem with it); `known` are the event types rules may name.
pub fn compile(
    config: &RuleConfig,
    calendars: &Arc<Calendars>,
    known: &BTreeSet<String>,
    template: &mut dyn FnMut(&str, &str) -> Result<String, String>,
) -> (TimeSpec, Vec<Problem>) {
    let mut problems: Vec<Problem> = Vec::new();
    let zone = match config.timezone.as_deref() {
        Some(name) => match zone(name) {
            Ok(zone) => zone,
            Err(e) => {
                problems.push(("timezone", e));
                Tz::UTC
            }
        },
        None => Tz::UTC,
    };
    let calendar = config.calendar.clone().unwrap_or_else(|| "weekdays".into());
    if let Err(e) = known_calendar(calendars, &calendar) {
        problems.push(("calendar", e));
    }
    let known_type = |what: &str, kind: &str| -> Option<String> {
        if known.contains(kind) {
            return None;
        }
        let hint = crate::script::did_you_mean(kind, known.iter().map(String::as_str))
            .map(|s| format!("; did you mean '{s}'?"))
            .unwrap_or_default();
        Some(format!(
            "{what}: unknown event type '{kind}'{hint} (see `signalbox events`)"
        ))
    };

    let schedule = config.schedule.as_ref().and_then(|s| {
        let zone_name = s
            .timezone
            .clone()
            .or_else(|| config.timezone.clone())
            .unwrap_or_else(|| "UTC".into());
        let missed = match s.missed.as_deref() {
            None | Some("skip") => Missed::Skip,
            Some("latest") => Missed::Latest,
            Some(other) => {
                problems.push((
                    "schedule",
                    format!("schedule.missed: '{other}' is not a policy: write skip or latest"),
                ));
                Missed::Skip
            }
        };
        let mut schedule = match Schedule::parse(&s.cron, &zone_name) {
            Ok(schedule) => schedule,
            Err(e) => {
                problems.push(("schedule", format!("schedule.cron: {e}")));
                return None;
            }
        };
        if let Some(name) = &s.calendar {
            match known_calendar(calendars, name) {
                Ok(calendar) => schedule = schedule.with_calendar(std::sync::Arc::new(calendar)),
                Err(e) => {
                    problems.push(("schedule", format!("schedule.calendar: {e}")));
                    return None;
                }
            }
        }
        Some(Scheduled {
            written: format!(
                "{} in {zone_name}{}",
                s.cron,
                s.calendar
                    .as_deref()
                    .map(|c| format!(", business days of {c}"))
                    .unwrap_or_default()
            ),
            schedule,
            missed,
        })
    });

    let mut history = Vec::new();
    for (name, h) in &config.history {
        match compile_history(name, h, known) {
            Ok(spec) => history.push(spec),
            Err(e) => problems.push(("history", e)),
        }
    }

    let state = config
        .state
        .as_deref()
        .and_then(|s| match SubjectKey::parse(s) {
            Ok(key) => Some(key),
            Err(e) => {
                problems.push(("state", format!("state: {e}")));
                None
            }
        });

    let unless = config.unless.as_ref().and_then(|u| {
        let mut ok = true;
        for kind in &u.event {
            if let Some(e) = known_type("unless.event", kind) {
                problems.push(("unless", e));
                ok = false;
            }
        }
        match compile_unless(u, template) {
            Ok(unless) if ok => Some(unless),
            Ok(_) => None,
            Err(e) => {
                problems.push(("unless", e));
                None
            }
        }
    });

    let mut actions = Vec::with_capacity(config.actions.len());
    for (index, action) in config.actions.iter().enumerate() {
        let mut timing = ActionTiming::default();
        if action.after.is_some() && action.at.is_some() {
            problems.push((
                "actions",
                format!("actions[{index}]: write `after` or `at`, not both"),
            ));
        }
        if let Some(after) = &action.after {
            match Offset::parse(after) {
                Ok(offset) => timing.after = Some(offset),
                Err(e) => problems.push(("actions", format!("actions[{index}].after: {e}"))),
            }
        }
        if let Some(at) = &action.at {
            match template(&format!("actions/{index}/at"), at) {
                Ok(name) => timing.at = Some(name),
                Err(e) => problems.push(("actions", format!("actions[{index}].at: {e}"))),
            }
        }
        if let Some(cancel) = &action.cancel_on {
            if !timing.is_delayed() {
                problems.push((
                    "actions",
                    format!("actions[{index}].cancel_on: only a delayed action (with `after` or `at`) can be cancelled by a later event"),
                ));
            }
            for kind in &cancel.event {
                if let Some(e) = known_type(&format!("actions[{index}].cancel_on.event"), kind) {
                    problems.push(("actions", e));
                }
            }
            match SubjectKey::parse(&cancel.same) {
                Ok(key) => timing.cancel_on = Some((cancel.event.clone(), key)),
                Err(e) => {
                    problems.push(("actions", format!("actions[{index}].cancel_on.same: {e}")))
                }
            }
        }
        actions.push(timing);
    }

    if schedule.is_some() && unless.is_some() {
        problems.push((
            "unless",
            "a scheduled rule cannot wait for a follow-up: `unless` needs an event to follow"
                .into(),
        ));
    }
    (
        TimeSpec {
            history_events: [config.when.as_deref(), config.script.as_deref()]
                .into_iter()
                .flatten()
                .any(|source| source.contains("events")),
            schedule,
            history,
            state,
            unless,
            actions,
            zone,
            calendar,
            calendars: calendars.clone(),
        },
        problems,
    )
}

fn zone(name: &str) -> Result<Tz, String> {
    name.parse::<Tz>().map_err(|_| {
        let hint =
            crate::script::did_you_mean(name, chrono_tz::TZ_VARIANTS.iter().map(|tz| tz.name()))
                .map(|s| format!("; did you mean '{s}'?"))
                .unwrap_or_default();
        format!("timezone: '{name}' is not a time zone (e.g. Europe/Berlin){hint}")
    })
}

fn known_calendar(calendars: &Calendars, name: &str) -> Result<crate::calendar::Calendar, String> {
    calendars.get(name).cloned().ok_or_else(|| {
        let names: Vec<&str> = calendars.names().collect();
        let hint = crate::script::did_you_mean(name, names.iter().copied())
            .map(|s| format!("; did you mean '{s}'?"))
            .unwrap_or_default();
        format!(
            "'{name}' is not a calendar (known: {}){hint}",
            names.join(", ")
        )
    })
}

fn compile_history(
    name: &str,
    h: &HistoryConfig,
    known: &BTreeSet<String>,
) -> Result<HistorySpec, String> {
    let at = |e: String| format!("history.{name}: {e}");
    let name_ok = !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        && !name.starts_with(|c: char| c.is_ascii_digit());
    if !name_ok {
        return Err(at(
            "a history name is snake_case (a-z, 0-9, _), as scripts read it as history.<name>"
                .into(),
        ));
    }
    let source = match (&h.actions, h.events.is_empty()) {
        (Some(status), true) if status == "dead" => HistorySource::DeadActions,
        (Some(status), true) => {
            return Err(at(format!(
                "actions: '{status}' is not readable history: write `actions: dead`"
            )));
        }
        (Some(_), false) => return Err(at("write `events` or `actions`, not both".into())),
        (None, _) => {
            for pattern in &h.events {
                let matches = if pattern.contains('*') {
                    known
                        .iter()
                        .any(|k| crate::script::bindings::glob_matches(pattern, k))
                } else {
                    known.contains(pattern)
                };
                if !matches {
                    let hint =
                        crate::script::did_you_mean(pattern, known.iter().map(String::as_str))
                            .map(|s| format!("; did you mean '{s}'?"))
                            .unwrap_or_default();
                    return Err(at(format!(
                        "unknown event type '{pattern}'{hint} (see `signalbox events`)"
                    )));
                }
            }
            // `*` alone is any type; other patterns name the types they match.
            let types: Vec<String> = if h.events.iter().any(|p| p == "*") {
                Vec::new()
            } else {
                known
                    .iter()
                    .filter(|k| h.events.iter().any(|p| Pattern::new(p).matches(k)))
                    .cloned()
                    .collect()
            };
            if types.len() > MAX_HISTORY_TYPES {
                return Err(at(format!(
                    "events: the patterns match {} event types; a history reads at most {MAX_HISTORY_TYPES} (or `*`, every type)",
                    types.len()
                )));
            }
            HistorySource::Events(types)
        }
    };
    let same = h
        .same
        .as_deref()
        .map(SubjectKey::parse)
        .transpose()
        .map_err(at)?;
    if matches!(source, HistorySource::DeadActions) && same.is_some() {
        return Err(at(
            "dead actions are read for every subject: leave out `same`".into(),
        ));
    }
    let within = humantime::parse_duration(&h.within).map_err(|e| {
        at(format!(
            "within: '{}' is not a duration such as 7d or 24h: {e}",
            h.within
        ))
    })?;
    let limit = h.limit.unwrap_or(DEFAULT_HISTORY);
    if limit == 0 || limit > MAX_HISTORY {
        return Err(at(format!("limit: between 1 and {MAX_HISTORY}")));
    }
    Ok(HistorySpec {
        name: name.to_owned(),
        source,
        same,
        within,
        limit,
    })
}

fn compile_unless(
    u: &UnlessConfig,
    template: &mut dyn FnMut(&str, &str) -> Result<String, String>,
) -> Result<Unless, String> {
    if u.event.is_empty() {
        return Err("unless.event: name the follow-up event type(s)".into());
    }
    let same = SubjectKey::parse(&u.same).map_err(|e| format!("unless.same: {e}"))?;
    let within = Offset::parse(&u.within).map_err(|e| format!("unless.within: {e}"))?;
    let condition = u
        .condition
        .as_deref()
        .map(|source| Condition::compile_with(source, &["event", "next"]))
        .transpose()
        .map_err(|e| format!("unless.where: {}", e.message))?;
    let from = u
        .from
        .as_deref()
        .map(|source| template("unless/from", source))
        .transpose()
        .map_err(|e| format!("unless.from: {e}"))?;
    Ok(Unless {
        awaits: u.event.clone(),
        same,
        condition,
        from,
        within,
    })
}
