//! Warnings about fields a rule reads that some of its events lack: a template that reads
//! `event.subject.claim` fails for an event without a claim, so the alert is lost for it.
//! What each type carries comes from the platforms' examples (`providers::carried`); a use
//! is fine when the rule guards it (`when` or the script reads the field, the template gives it
//! a `| default(...)` or tests it in an `{% if %}`). `signalbox check` prints these;
//! `check --strict` fails on them.

use std::collections::BTreeSet;

use super::RuleSet;
use super::compile::{RuleError, collect_templates, find_in_rule, peek_configs, rule_line};
use super::config::RuleConfig;
use super::trigger::Pattern;
use crate::providers::carried::{CARRIED, carried};

/// Every unguarded use of a field that some of a rule's documented event types lack.
pub fn warnings(set: &RuleSet) -> Vec<RuleError> {
    let mut out = Vec::new();
    for (path, text) in &set.texts {
        for config in peek_configs(text) {
            let start = rule_line(text, &config.id);
            for (field, lacking) in unguarded(&config) {
                let (line, column) =
                    find_in_rule(text, start, &format!("event.{field}")).unwrap_or((start, 1));
                out.push(RuleError {
                    file: path.clone(),
                    line,
                    column,
                    rule: Some(config.id.clone()),
                    message: message(&field, &lacking),
                });
            }
        }
    }
    out
}

fn message(field: &str, lacking: &[&str]) -> String {
    let shown: Vec<&str> = lacking.iter().take(3).copied().collect();
    let more = if lacking.len() > 3 {
        format!(" and {} more", lacking.len() - 3)
    } else {
        String::new()
    };
    format!(
        "warning: 'event.{field}' may be missing: {}{more} events do not always carry it, and for such an event the template fails and the rule's actions are lost. Write {{{{ event.{field} | default(\"unknown\") }}}}, or guard the rule with `when: event.{field} != ()`",
        shown.join(", ")
    )
}

/// `(field, documented types the rule takes that lack it)` for each unguarded use.
fn unguarded(config: &RuleConfig) -> Vec<(String, Vec<&'static str>)> {
    // The documented types the rule takes. Rules on `source_types` only, or on types no
    // example documents, are not judged: nothing is known of their events.
    let patterns: Vec<Pattern> = config.on.iter().map(|p| Pattern::new(p)).collect();
    let types: Vec<&'static str> = CARRIED
        .iter()
        .map(|(kind, _)| *kind)
        .filter(|kind| patterns.iter().any(|p| p.matches(kind)))
        .collect();
    if types.is_empty() {
        return Vec::new();
    }
    let mut sources = Vec::new();
    for action in &config.actions {
        let params = serde_json::to_value(action).expect("action configs serialize");
        collect_templates(&params, String::new(), &mut sources);
    }
    if let Some(throttle) = &config.throttle {
        sources.push((String::new(), throttle.key.clone()));
    }
    let guards = [config.when.as_deref(), config.script.as_deref()];
    let mut found: BTreeSet<String> = BTreeSet::new();
    let mut out = Vec::new();
    for (_, source) in &sources {
        for field in optional_fields_read(source) {
            let path = format!("event.{field}");
            let guarded = guards.iter().flatten().any(|g| g.contains(&path))
                || guarded_in_template(source, &path);
            if guarded || !found.insert(field.clone()) {
                continue;
            }
            let lacking: Vec<&'static str> = types
                .iter()
                .copied()
                .filter(|kind| carried(kind).is_some_and(|c| !c.contains(&field.as_str())))
                .collect();
            if !lacking.is_empty() {
                out.push((field, lacking));
            }
        }
    }
    out
}

/// The fields a template reads that an event may lack: `subject.<ref>` and `amount`.
fn optional_fields_read(source: &str) -> Vec<String> {
    let env = minijinja::Environment::new();
    let Ok(template) = env.template_from_str(source) else {
        return Vec::new();
    };
    let mut fields: Vec<String> = template
        .undeclared_variables(true)
        .into_iter()
        .filter_map(|name| {
            let parts: Vec<&str> = name.split('.').collect();
            match parts.as_slice() {
                ["event", "subject", reference, ..] => Some(format!("subject.{reference}")),
                ["event", "amount", ..] => Some("amount".to_owned()),
                _ => None,
            }
        })
        .collect();
    fields.sort();
    fields.dedup();
    fields
}

/// Whether the template itself handles the field's absence: `path | default(...)` (or `| d`),
/// `path is defined`, or `path` tested in an `{% if %}`.
fn guarded_in_template(source: &str, path: &str) -> bool {
    let squeezed: String = source.chars().filter(|c| !c.is_whitespace()).collect();
    let path_squeezed: String = path.chars().filter(|c| !c.is_whitespace()).collect();
    let mut rest = squeezed.as_str();
    while let Some(at) = rest.find(&path_squeezed) {
        let after = &rest[at + path_squeezed.len()..];
        // `event.amount.value | default(...)` guards `event.amount` too.
        let after = after.trim_start_matches(|c: char| c == '.' || c.is_alphanumeric() || c == '_');
        if after.starts_with("|default")
            || after.starts_with("|d(")
            || after.starts_with("isdefined")
        {
            return true;
        }
        rest = after;
    }
    source
        .split("{%")
        .skip(1)
        .filter_map(|tag| tag.split("%}").next())
        .any(|tag| {
            let tag = tag.trim_start_matches('-').trim_start();
            (tag.starts_with("if ") || tag.starts_with("elif ")) && tag.contains(path)
        })
}

/// Comparisons of values of different kinds that `check` can know: each rule's `when` and
/// script run on a sample event of each documented type it takes (the references the type
/// carries as text, its amount as an amount, `data` empty). A comparison of text with a number
/// there is one with every real event too: an error, at its line. Comparisons with absent values
/// (`data.*` is not sampled) are left to run time, which names them.
pub fn type_errors(set: &RuleSet) -> Vec<RuleError> {
    use crate::normalize::{Amount, Event, EventId, EventType, Subject};
    use crate::rules::evaluate::Outcome;
    let at = chrono::DateTime::UNIX_EPOCH;
    let mut seen = BTreeSet::new();
    let mut out = Vec::new();
    for platform in crate::providers::PLATFORMS {
        for entry in platform.catalogue {
            let (Some(fields), Ok(kind)) = (carried(entry.kind), EventType::parse(entry.kind))
            else {
                continue;
            };
            if !seen.insert((platform.name, entry.kind)) {
                continue;
            }
            let subject: serde_json::Map<String, serde_json::Value> = fields
                .iter()
                .filter_map(|f| f.strip_prefix("subject."))
                .map(|r| {
                    (
                        r.to_owned(),
                        serde_json::Value::String(format!("sample-{r}")),
                    )
                })
                .collect();
            let event = Event {
                id: EventId::new(),
                source: platform.name.to_owned(),
                source_event_id: "check-sample".into(),
                kind,
                source_type: Some(entry.source_type.to_owned()),
                occurred_at: at,
                received_at: at,
                subject: serde_json::from_value::<Subject>(subject.into()).unwrap_or_default(),
                amount: fields.contains(&"amount").then(|| Amount {
                    value: rust_decimal::Decimal::new(100_000, 2),
                    currency: Some("EUR".into()),
                }),
                data: serde_json::json!({}),
                payload: serde_json::json!({}),
                chain_depth: 0,
            };
            for evaluation in set.evaluate(&event, at) {
                let Outcome::Failed { error, line } = &evaluation.outcome else {
                    continue;
                };
                let knowable = error.contains("cannot compare text with a number")
                    || error.contains("cannot compare a number with text");
                let Some(rule) = set.rules().iter().find(|r| r.id == evaluation.rule_id) else {
                    continue;
                };
                if knowable
                    && !out
                        .iter()
                        .any(|e: &RuleError| e.rule.as_deref() == Some(&rule.id))
                {
                    out.push(RuleError {
                        file: rule.file.clone(),
                        line: line.unwrap_or(1),
                        column: 1,
                        rule: Some(rule.id.clone()),
                        message: format!(
                            "{error}; this is so for every event (found with a sample {} event from {})",
                            entry.kind, platform.name
                        ),
                    });
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_read_by_templates() {
        assert_eq!(
            optional_fields_read("{{ event.subject.claim }} {{ event.amount.value }} {{ x }}"),
            ["amount", "subject.claim"]
        );
        assert!(optional_fields_read("{{ event.data.x }} {{ event.source }}").is_empty());
    }

    #[test]
    fn guards_in_the_template() {
        let path = "event.subject.claim";
        assert!(guarded_in_template(
            "{{ event.subject.claim | default('none') }}",
            path
        ));
        assert!(guarded_in_template(
            "{{ event.subject.claim|d('-') }}",
            path
        ));
        assert!(guarded_in_template(
            "{% if event.subject.claim %}{{ event.subject.claim }}{% endif %}",
            path
        ));
        assert!(guarded_in_template(
            "{{ event.amount.value | default(0) }}",
            "event.amount"
        ));
        assert!(!guarded_in_template("{{ event.subject.claim }}", path));
        assert!(!guarded_in_template(
            "{{ event.subject.claim }} {{ event.subject.account | default('x') }}",
            path
        ));
    }
}
