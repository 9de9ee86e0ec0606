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
use crate::normalize::Event;
use crate::script::{self, BlockOutcome, Facts, Session};

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
    },
    /// The script called `skip(reason)`.
    Skipped { reason: String },
    /// The trigger or `when` did not match.
    NotMatched { reason: String },
    /// A script or template failed: an error of this rule alone. `line` is in the rule file.
    Failed { error: String, line: Option<usize> },
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
    /// What the event's scripts read besides the event: the time, the batch's facts, logs.
    session: Arc<Session>,
    dynamic: OnceCell<Result<rhai::Dynamic, String>>,
    template: OnceCell<minijinja::Value>,
}

impl<'a> EventView<'a> {
    pub fn new(event: &'a Event, now: DateTime<Utc>, facts: Arc<Facts>) -> Self {
        Self {
            event,
            session: Session::new(now, facts),
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
    /// Every rule whose trigger takes the event, evaluated in rule order, knowing no facts.
    pub fn evaluate(&self, event: &Event, now: DateTime<Utc>) -> Vec<Evaluation> {
        self.evaluate_with(event, now, &Arc::default())
    }

    /// Every rule whose trigger takes the event, with `facts` fetched for its batch.
    pub fn evaluate_with(
        &self,
        event: &Event,
        now: DateTime<Utc>,
        facts: &Arc<Facts>,
    ) -> Vec<Evaluation> {
        let view = EventView::new(event, now, facts.clone());
        self.candidates(event)
            .filter(|rule| triggers(rule, event))
            .map(|rule| self.evaluate_rule(rule, &view))
            .collect()
    }

    /// Every rule, with why it did or did not fire (for `signalbox try`).
    pub fn explain(&self, event: &Event, now: DateTime<Utc>) -> Vec<Evaluation> {
        let view = EventView::new(event, now, Arc::default());
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

    fn evaluate_rule(&self, rule: &Rule, view: &EventView<'_>) -> Evaluation {
        let started = Instant::now();
        // A panic here is a bug in Signalbox (a host function, a filter), not the author's: it
        // fails this rule's evaluation alone, and the other rules and events go on.
        let outcome = std::panic::catch_unwind(AssertUnwindSafe(|| self.decide(rule, view)))
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
            });
        let logs = view.session.take_logs();
        Evaluation {
            rule_id: rule.id.clone(),
            rule_version: rule.version.clone(),
            outcome,
            logs,
            duration: started.elapsed(),
        }
    }

    fn decide(&self, rule: &Rule, view: &EventView<'_>) -> Outcome {
        let failed = |error: String, line: Option<usize>| Outcome::Failed { error, line };
        if rule.when.is_some() || rule.script.is_some() {
            let event = match view.dynamic() {
                Ok(event) => event,
                Err(e) => return failed(format!("event cannot be given to scripts: {e}"), None),
            };
            if let Some(when) = &rule.when {
                match when.holds(event, &view.session) {
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
            if let Some(script) = &rule.script {
                match script.run(event, &view.session) {
                    Ok(BlockOutcome::Proceed(vars)) => return self.render(rule, view, vars),
                    Ok(BlockOutcome::Skip(reason)) => return Outcome::Skipped { reason },
                    Err(e) => {
                        return failed(
                            format!("script: {}", e.message),
                            Some(rule.script_span.locate(e.line, e.column).0),
                        );
                    }
                }
            }
        }
        self.render(rule, view, serde_json::Map::new())
    }

    /// Renders every action's templates with the event and the script's variables, then checks
    /// the result as `check` checks literal parameters.
    fn render(
        &self,
        rule: &Rule,
        view: &EventView<'_>,
        vars: serde_json::Map<String, Value>,
    ) -> Outcome {
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
        let context = minijinja::Value::from(context);
        let render = |name: &str| -> Result<String, String> {
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
                Ok(_) => {
                    String::from_utf8(out.bytes).map_err(|_| "rendered text is not UTF-8".into())
                }
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
        };
        let mut actions = Vec::with_capacity(rule.actions.len());
        for (index, action) in rule.actions.iter().enumerate() {
            // Literal parameters were checked when the rule loaded; check what templates made.
            if action.templates.is_empty() {
                actions.push(action.literal.clone());
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
        Outcome::Fired { actions, throttle }
    }
}
