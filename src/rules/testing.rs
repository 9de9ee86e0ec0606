//! The inline `tests:` of rule files: an example event and what the rule must do with it.

use std::path::{Path, PathBuf};

use axum::http::{HeaderMap, HeaderName, HeaderValue};
use chrono::{DateTime, Utc};
use serde_json::Value;

use super::evaluate::{EventView, Outcome};
use super::{Rule, RuleSet};
use crate::normalize::Event;
use crate::providers::{Inbound, Registry};

#[derive(Debug, Clone)]
pub struct TestResult {
    pub file: PathBuf,
    pub rule: String,
    pub name: String,
    /// `None` when it passed; else what went wrong, with expected and actual.
    pub failure: Option<String>,
}

/// A time for events that carry none (inline canonical events without `occurred_at`).
fn default_time() -> DateTime<Utc> {
    "2026-01-01T00:00:00Z".parse().expect("a valid time")
}

/// Reads a test's event: a file (relative to the rule file) or inline; canonical, or a
/// platform's payload when `source` is given (normalized by its adapter, signature unchecked).
pub fn load_event(
    rule_file: &Path,
    event: &Value,
    source: Option<&str>,
    registry: &Registry,
    now: Option<DateTime<Utc>>,
) -> Result<Event, String> {
    let received_at = now.unwrap_or_else(default_time);
    let (body, headers) = match event {
        Value::String(path) => {
            let path = rule_file.parent().unwrap_or(Path::new(".")).join(path);
            let body =
                std::fs::read(&path).map_err(|e| format!("event file {}: {e}", path.display()))?;
            let headers_path = path.with_extension("headers.json");
            let mut headers = HeaderMap::new();
            if let Ok(text) = std::fs::read(&headers_path) {
                let map: std::collections::BTreeMap<String, String> = serde_json::from_slice(&text)
                    .map_err(|e| format!("{}: {e}", headers_path.display()))?;
                for (k, v) in map {
                    let name = HeaderName::from_bytes(k.to_ascii_lowercase().as_bytes())
                        .map_err(|e| format!("header {k}: {e}"))?;
                    headers.insert(
                        name,
                        HeaderValue::from_str(&v).map_err(|e| format!("header {k}: {e}"))?,
                    );
                }
            }
            (body, headers)
        }
        inline => (
            serde_json::to_vec(inline).expect("values serialize"),
            HeaderMap::new(),
        ),
    };
    let mut events = match source {
        Some(source) => {
            let provider = registry
                .get(source)
                .ok_or_else(|| format!("no adapter for source '{source}'"))?;
            provider
                .parse(&Inbound {
                    headers: &headers,
                    body: &body,
                    hint: None,
                    received_at,
                })
                .map_err(|e| e.to_string())?
        }
        None => crate::normalize::canonical::parse_body(&body, received_at)
            .map_err(|e| e.to_string())?,
    };
    if events.len() != 1 {
        return Err(format!(
            "a test event must be one event, found {}",
            events.len()
        ));
    }
    Ok(events.remove(0))
}

/// Runs every inline test of every rule.
pub fn run_all(set: &RuleSet, registry: &Registry) -> Vec<TestResult> {
    set.rules()
        .iter()
        .flat_map(|rule| rule.tests.iter().map(move |t| (rule, t)))
        .map(|(rule, test)| {
            let failure = run_one(set, rule, test, registry).err();
            TestResult {
                file: rule.file.clone(),
                rule: rule.id.clone(),
                name: test.name.clone(),
                failure,
            }
        })
        .collect()
}

/// Runs every inline test of every rule whose events are written inline; a test that names an
/// event file fails with why (rules posted to the API: the server reads no files for them).
pub fn run_inline(set: &RuleSet, registry: &Registry) -> Vec<TestResult> {
    set.rules()
        .iter()
        .flat_map(|rule| rule.tests.iter().map(move |t| (rule, t)))
        .map(|(rule, test)| {
            let names_file =
                test.event.is_string() || test.events.iter().any(|e| e.event.is_string());
            let failure = if names_file {
                Some(
                    "a posted rule's test gives its events inline: the server reads no event files"
                        .to_owned(),
                )
            } else {
                run_one(set, rule, test, registry).err()
            };
            TestResult {
                file: rule.file.clone(),
                rule: rule.id.clone(),
                name: test.name.clone(),
                failure,
            }
        })
        .collect()
}

fn run_one(
    set: &RuleSet,
    rule: &Rule,
    test: &super::config::RuleTestConfig,
    registry: &Registry,
) -> Result<(), String> {
    // A sequence, or a scheduled rule's test (its ticks are the events).
    if !test.events.is_empty() || rule.time.schedule.is_some() {
        return run_sequence(set, rule, test, registry);
    }
    let now = test
        .now
        .as_deref()
        .map(|t| {
            crate::script::bindings::parse_time(t)
                .ok_or_else(|| format!("now: '{t}' is not a time"))
        })
        .transpose()?;
    let event = load_event(
        &rule.file,
        &test.event,
        test.source.as_deref(),
        registry,
        now,
    )?;
    let now = now.unwrap_or(event.occurred_at);
    let evaluation = set.evaluate_one(rule, &EventView::new(set, &event, now, Default::default()));
    let expect = Expectation::parse(&test.expect)?;
    match (&evaluation.outcome, expect.fires) {
        (Outcome::Failed { error, line }, _) => Err(format!(
            "the rule failed: {error}{}",
            line.map(|l| format!(" (line {l})")).unwrap_or_default()
        )),
        (Outcome::Fired { actions, .. }, true) => compare_actions(&expect.actions, &json(actions)),
        (Outcome::Fired { actions, .. }, false) => Err(format!(
            "expected it not to fire, but it fired:\n{}",
            pretty(&Value::Array(json(actions)))
        )),
        (Outcome::Waiting { deadline, .. }, true) => Err(format!(
            "it waits for a follow-up until {}: give the test `events:` at times, so the clock runs to the deadline",
            deadline.to_rfc3339()
        )),
        (Outcome::NotMatched { reason } | Outcome::Skipped { reason }, true) => {
            Err(format!("expected it to fire, but it did not: {reason}"))
        }
        (_, false) => Ok(()),
    }
}

fn time_of(what: &str, text: &str) -> Result<DateTime<Utc>, String> {
    crate::script::bindings::parse_time(text).ok_or_else(|| {
        format!("{what}: '{text}' is not a time (RFC 3339, e.g. 2026-12-01T10:00:00Z)")
    })
}

/// Runs timed events (files relative to `file`) on a virtual clock from `from` (default the
/// first event) until `until` (default the last event plus 90 days), with only rule `only`
/// when given: what fired when.
pub fn run_timed(
    set: &RuleSet,
    only: Option<&str>,
    file: &Path,
    events: &[super::config::TimedEvent],
    from: Option<&str>,
    until: Option<&str>,
    registry: &Registry,
) -> Result<Vec<super::simulate::Firing>, String> {
    let mut inputs = Vec::with_capacity(events.len());
    for (i, timed) in events.iter().enumerate() {
        let at = time_of(&format!("events[{i}].at"), &timed.at)?;
        let event = load_event(
            file,
            &timed.event,
            timed.source.as_deref(),
            registry,
            Some(at),
        )
        .map_err(|e| format!("events[{i}]: {e}"))?;
        inputs.push((at, event));
    }
    let first = inputs
        .iter()
        .map(|(at, _)| *at)
        .min()
        .unwrap_or_else(default_time);
    let last = inputs
        .iter()
        .map(|(at, _)| *at)
        .max()
        .unwrap_or_else(default_time);
    let from = match from {
        Some(t) => time_of("from", t)?,
        None => first,
    };
    let until = match until {
        Some(t) => time_of("until", t)?,
        None => last + chrono::Duration::days(90),
    };
    super::simulate::run(set, only, inputs, from, until)
}

/// A test with `events:` at times: run on a virtual clock, then compared firing by firing.
fn run_sequence(
    set: &RuleSet,
    rule: &Rule,
    test: &super::config::RuleTestConfig,
    registry: &Registry,
) -> Result<(), String> {
    let firings = run_timed(
        set,
        Some(&rule.id),
        &rule.file,
        &test.events,
        test.from.as_deref(),
        test.until.as_deref(),
        registry,
    )?;
    let shown = || pretty(&serde_json::to_value(&firings).expect("firings serialize"));
    let expected: Vec<Value> = match &test.expect {
        Value::Object(map) if map.get("fires") == Some(&Value::Bool(false)) => {
            return if firings.is_empty() {
                Ok(())
            } else {
                Err(format!(
                    "expected it not to fire, but it fired:\n{}",
                    shown()
                ))
            };
        }
        Value::Array(items) => items.clone(),
        _ => {
            return Err(
                "expect: with `events`, a list of firings ({at: time, actions: [...]}) or {fires: false}"
                    .into(),
            );
        }
    };
    if expected.len() != firings.len() {
        return Err(format!(
            "expected {} firing(s), but it fired {} time(s):\n{}",
            expected.len(),
            firings.len(),
            shown()
        ));
    }
    for (i, (want, got)) in expected.iter().zip(&firings).enumerate() {
        let Value::Object(want) = want else {
            return Err(format!(
                "expect[{i}]: a firing, {{at: time, actions: [...]}}"
            ));
        };
        if let Some(key) = want
            .keys()
            .find(|k| !matches!(k.as_str(), "at" | "actions"))
        {
            return Err(format!(
                "expect[{i}]: unknown key '{key}' (expected at, actions)"
            ));
        }
        if let Some(at) = want.get("at") {
            let at = time_of(&format!("expect[{i}].at"), at.as_str().unwrap_or_default())?;
            if at != got.at {
                return Err(format!(
                    "firing {}: expected at {}, but it fired at {}:\n{}",
                    i + 1,
                    at.to_rfc3339(),
                    got.at.to_rfc3339(),
                    shown()
                ));
            }
        }
        if let Some(Value::Array(actions)) = want.get("actions") {
            compare_actions(actions, &got.actions)
                .map_err(|e| format!("firing {} (at {}): {e}", i + 1, got.at.to_rfc3339()))?;
        }
    }
    Ok(())
}

struct Expectation {
    fires: bool,
    actions: Vec<Value>,
}

impl Expectation {
    /// `[...]` (fires, with these actions), or `{fires: bool, actions: [...]}`.
    fn parse(value: &Value) -> Result<Self, String> {
        match value {
            Value::Array(actions) => Ok(Self {
                fires: true,
                actions: actions.clone(),
            }),
            Value::Object(map) => {
                if let Some(key) = map
                    .keys()
                    .find(|k| !matches!(k.as_str(), "fires" | "actions"))
                {
                    return Err(format!(
                        "expect: unknown key '{key}' (expected fires, actions)"
                    ));
                }
                let fires = map
                    .get("fires")
                    .map(|f| f.as_bool().ok_or("expect.fires: true or false"))
                    .transpose()?
                    .unwrap_or(true);
                let actions = match map.get("actions") {
                    Some(Value::Array(a)) => a.clone(),
                    Some(_) => return Err("expect.actions: a list".into()),
                    None => Vec::new(),
                };
                Ok(Self { fires, actions })
            }
            _ => Err("expect: a list of actions, or {fires: true|false, actions: [...]}".into()),
        }
    }
}

/// Each expected action is a type name, or the parameters to check (others are ignored).
fn compare_actions(expected: &[Value], actual: &[Value]) -> Result<(), String> {
    let matches = |e: &Value, a: &Value| match e {
        Value::String(kind) => a["type"] == *kind,
        Value::Object(fields) => fields.iter().all(|(k, v)| a.get(k) == Some(v)),
        _ => false,
    };
    if expected.len() == actual.len() && expected.iter().zip(actual).all(|(e, a)| matches(e, a)) {
        return Ok(());
    }
    Err(format!(
        "{}{}",
        differences(expected, actual),
        diff(
            &pretty(&Value::Array(expected.to_vec())),
            &pretty(&Value::Array(actual.to_vec())),
        )
    ))
}

/// Each difference on a line of its own: the path, the expected and the actual value, strings
/// written as JSON so that a trailing space or newline shows (`"text\n"`).
fn differences(expected: &[Value], actual: &[Value]) -> String {
    let mut out = String::from("what differs:\n");
    for (i, e) in expected.iter().enumerate() {
        let path = format!("actions[{i}]");
        let Some(a) = actual.get(i) else {
            out += &format!(
                "  {path}: expected {}, but only {} action(s) were planned\n",
                show(e),
                actual.len()
            );
            continue;
        };
        match e {
            Value::String(kind) if a["type"] != *kind => {
                out += &format!(
                    "  {path}.type: expected {}, actual {}\n",
                    show(e),
                    show(&a["type"])
                );
            }
            Value::Object(fields) => {
                for (key, want) in fields {
                    compare_value(&format!("{path}.{key}"), want, a.get(key), &mut out);
                }
            }
            _ => {}
        }
    }
    for (i, a) in actual.iter().enumerate().skip(expected.len()) {
        out += &format!(
            "  actions[{i}]: not expected, but planned: {}\n",
            show(&a["type"])
        );
    }
    out
}

fn compare_value(path: &str, expected: &Value, actual: Option<&Value>, out: &mut String) {
    match (expected, actual) {
        (_, None) => *out += &format!("  {path}: expected {}, but it is missing\n", show(expected)),
        (Value::Object(want), Some(Value::Object(got))) => {
            for (key, value) in want {
                compare_value(&format!("{path}.{key}"), value, got.get(key), out);
            }
            for (key, value) in got.iter().filter(|(k, _)| !want.contains_key(*k)) {
                *out += &format!("  {path}.{key}: not expected, but it is {}\n", show(value));
            }
        }
        (want, Some(got)) if want != got => {
            *out += &format!(
                "  {path}: expected {}\n  {:width$}    actual {}\n",
                show(want),
                "",
                show(got),
                width = path.len()
            );
        }
        _ => {}
    }
}

/// A value on one line, as JSON (strings quoted, whitespace escaped), cut if long.
fn show(value: &Value) -> String {
    let text = value.to_string();
    match text.char_indices().nth(200) {
        Some((at, _)) => format!("{}…", &text[..at]),
        None => text,
    }
}

fn pretty(value: &Value) -> String {
    serde_json::to_string_pretty(value).expect("values serialize")
}

/// Expected and actual, lines only in the expectation marked `-`, lines only in the result `+`.
fn diff(expected: &str, actual: &str) -> String {
    let mut out = String::from("actions differ (- expected, + actual):\n");
    let actual_lines: Vec<&str> = actual.lines().collect();
    let expected_lines: Vec<&str> = expected.lines().collect();
    for line in &expected_lines {
        let mark = if actual_lines.contains(line) {
            ' '
        } else {
            '-'
        };
        out += &format!("{mark} {line}\n");
    }
    for line in &actual_lines {
        if !expected_lines.contains(line) {
            out += &format!("+ {line}\n");
        }
    }
    out
}

/// Planned actions as the JSON the expectations are written against.
fn json(actions: &[crate::actions::ActionConfig]) -> Vec<Value> {
    actions
        .iter()
        .map(|a| serde_json::to_value(a).expect("action configs serialize"))
        .collect()
}
