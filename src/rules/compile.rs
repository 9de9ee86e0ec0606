//! Rule files to compiled [`Rule`]s. Every problem is collected (not just the first) and
//! named `file:line:col: rule <id>: message`. Compiling does no IO beyond reading the files.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::Value;
use sha2::{Digest, Sha256};

use super::config::{ActionConfig, RuleConfig, RuleListFile, RuleTestConfig};
use super::trigger::Trigger;
use crate::script::bindings::glob_matches;
use crate::script::{Block, Condition, ScriptError};

/// A problem in a rule file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleError {
    pub file: PathBuf,
    pub line: usize,
    pub column: usize,
    pub rule: Option<String>,
    pub message: String,
}

impl fmt::Display for RuleError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}: ", self.file.display(), self.line, self.column)?;
        if let Some(rule) = &self.rule {
            write!(f, "rule {rule}: ")?;
        }
        f.write_str(&self.message)
    }
}

/// Where a YAML value starts in the file, for mapping script positions to file positions.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Span {
    /// 1-based line and column of the key.
    pub line: usize,
    pub column: usize,
    /// A `|` or `>` block: the script starts on the next line, indented by `indent`.
    pub block: Option<usize>,
    /// Column where an inline value starts.
    pub value_column: usize,
}

impl Span {
    /// The file position of a script position (1-based line and column within the script).
    pub fn locate(&self, line: Option<usize>, column: Option<usize>) -> (usize, usize) {
        let (line, column) = (line.unwrap_or(1), column.unwrap_or(1));
        match self.block {
            Some(indent) => (self.line + line, indent + column),
            None => (
                self.line + line - 1,
                if line == 1 {
                    self.value_column + column - 1
                } else {
                    column
                },
            ),
        }
    }
}

/// One action's parameters, with the JSON pointers of the strings that are templates.
#[derive(Debug, Clone)]
pub struct ActionTemplate {
    pub kind: &'static str,
    /// The parameters as JSON, templates unrendered.
    pub params: Value,
    /// `(pointer into params, template name)`.
    pub templates: Vec<(String, String)>,
    /// The action as written: what fires when it has no templates.
    pub literal: ActionConfig,
}

#[derive(Debug, Clone)]
pub struct Throttle {
    pub key_template: String,
    pub window: Duration,
}

/// A compiled rule: what the engine runs. Raw config stops at [`compile_file`].
#[derive(Debug, Clone)]
pub struct Rule {
    pub id: String,
    pub name: Option<String>,
    pub description: Option<String>,
    /// A content hash of the rule as written: changes whenever the rule does.
    pub version: String,
    pub file: PathBuf,
    pub enabled: bool,
    pub trigger: Trigger,
    pub when: Option<Condition>,
    pub script: Option<Block>,
    pub actions: Vec<ActionTemplate>,
    pub throttle: Option<Throttle>,
    /// Schedules, delays, windows, history and state.
    pub time: super::time::TimeSpec,
    pub tests: Vec<RuleTestConfig>,
    pub when_span: Span,
    pub script_span: Span,
}

/// Templates found while compiling: `(name, source)`, compiled into the rule set's environment.
pub type TemplateSources = Vec<(String, String)>;

pub fn is_template(s: &str) -> bool {
    s.contains("{{") || s.contains("{%")
}

/// The canonical types rules may trigger on: the platforms' (`catalogue`, with `unknown`)
/// and those `emit`ted by the rules themselves.
pub fn known_types(catalogue: &BTreeSet<String>, emitted: &BTreeSet<String>) -> BTreeSet<String> {
    catalogue.union(emitted).cloned().collect()
}

pub use crate::script::did_you_mean;

/// serde's "unknown field `whn`, expected one of `a`, `b`" with a suggestion added.
fn explain_serde(message: &str) -> String {
    let message = match message.rfind(" at line ") {
        Some(at) => &message[..at],
        None => message,
    };
    let unknown = ["unknown field `", "unknown variant `"]
        .iter()
        .find_map(|p| {
            let start = message.find(p)? + p.len();
            Some(&message[start..start + message[start..].find('`')?])
        });
    let expected: Vec<&str> = message
        .split("expected one of ")
        .nth(1)
        .map(|l| l.split('`').skip(1).step_by(2).collect())
        .unwrap_or_default();
    match unknown.and_then(|u| did_you_mean(u, expected.iter().copied())) {
        Some(suggestion) => format!("{message}; did you mean `{suggestion}`?"),
        None => message.to_owned(),
    }
}

/// Line (1-based) where `id: <id>` appears, the rule's first line for error positions.
pub(super) fn rule_line(text: &str, id: &str) -> usize {
    text.lines()
        .position(|l| {
            let l = l.trim_start().trim_start_matches("- ").trim_start();
            l.strip_prefix("id:")
                .is_some_and(|v| v.trim().trim_matches(['"', '\'']) == id)
        })
        .map_or(1, |i| i + 1)
}

/// The position of `key:` in the rule starting at `from` (1-based), before the next rule.
fn key_span(text: &str, from: usize, key: &str) -> Option<Span> {
    for (i, line) in text.lines().enumerate().skip(from.saturating_sub(1)) {
        let trimmed = line.trim_start();
        let body = trimmed.trim_start_matches("- ");
        if i + 1 > from && trimmed.starts_with("- id:") {
            return None;
        }
        if let Some(rest) = body.strip_prefix(key).and_then(|r| r.strip_prefix(':')) {
            let column = line.len() - body.len() + 1;
            let value = rest.trim_start();
            let value_column = column + key.len() + 1 + (rest.len() - value.len());
            let block = if value.starts_with('|') || value.starts_with('>') {
                let next = text.lines().nth(i + 1).unwrap_or_default();
                Some(next.len() - next.trim_start().len())
            } else {
                None
            };
            return Some(Span {
                line: i + 1,
                column,
                block,
                value_column,
            });
        }
    }
    None
}

/// Reads and compiles one file's rules against the event types `known` to exist (the
/// platforms' and those `emit` actions produce anywhere in the folder).
pub fn compile_file(
    path: &Path,
    text: &str,
    known: &BTreeSet<String>,
    calendars: &std::sync::Arc<crate::calendar::Calendars>,
    templates: &mut TemplateSources,
) -> (Vec<Rule>, Vec<RuleError>) {
    let error = |line: usize, column: usize, rule: Option<&str>, message: String| RuleError {
        file: path.to_owned(),
        line,
        column,
        rule: rule.map(str::to_owned),
        message,
    };
    let yaml_error = |e: serde_yaml::Error| {
        let (line, column) = e.location().map_or((1, 1), |l| (l.line(), l.column()));
        error(line, column, None, explain_serde(&e.to_string()))
    };
    let value: serde_yaml::Value = match serde_yaml::from_str(text) {
        Ok(v) => v,
        Err(e) => return (Vec::new(), vec![yaml_error(e)]),
    };
    let (version, configs) = if value.get("rules").is_some() {
        match serde_yaml::from_str::<RuleListFile>(text) {
            Ok(file) => (Some(file.version), file.rules),
            Err(e) => return (Vec::new(), vec![yaml_error(e)]),
        }
    } else {
        match serde_yaml::from_str::<RuleConfig>(text) {
            Ok(rule) => (rule.version, vec![rule]),
            Err(e) => return (Vec::new(), vec![yaml_error(e)]),
        }
    };
    if version != Some(1) {
        let found = version.map_or("no version".to_owned(), |v| format!("version {v}"));
        return (
            Vec::new(),
            vec![error(
                1,
                1,
                None,
                format!("rule files start with `version: 1` (found {found})"),
            )],
        );
    }
    let rules_yaml: Vec<serde_yaml::Value> = match value.get("rules") {
        Some(serde_yaml::Value::Sequence(items)) => items.clone(),
        _ => vec![value.clone()],
    };
    let mut rules = Vec::new();
    let mut errors = Vec::new();
    for (config, yaml) in configs.into_iter().zip(rules_yaml) {
        match compile_rule(path, text, config, &yaml, known, calendars, templates) {
            Ok(rule) => rules.push(rule),
            Err(mut e) => errors.append(&mut e),
        }
    }
    (rules, errors)
}

/// A rule's version: a hash of what it says (its YAML as data, so layout and comments do not
/// count).
fn version_of(yaml: &serde_yaml::Value) -> String {
    let canonical = serde_json::to_vec(&serde_json::to_value(yaml).unwrap_or(Value::Null))
        .expect("values serialize");
    hex::encode(&Sha256::digest(&canonical)[..6])
}

/// Each rule written in a rule file's `text`, as `(id, version, its YAML)`, versioned as
/// compiling does; nothing else is checked (a text that does not parse has none).
pub fn written_rules(text: &str) -> Vec<(String, String, String)> {
    let Ok(value) = serde_yaml::from_str::<serde_yaml::Value>(text) else {
        return Vec::new();
    };
    let items = match value.get("rules") {
        Some(serde_yaml::Value::Sequence(items)) => items.clone(),
        _ => vec![value],
    };
    items
        .into_iter()
        .filter_map(|yaml| {
            let id = yaml.get("id")?.as_str()?.to_owned();
            let written = serde_yaml::to_string(&yaml).unwrap_or_default();
            Some((id, version_of(&yaml), written))
        })
        .collect()
}

fn compile_rule(
    path: &Path,
    text: &str,
    config: RuleConfig,
    yaml: &serde_yaml::Value,
    known: &BTreeSet<String>,
    calendars: &std::sync::Arc<crate::calendar::Calendars>,
    templates: &mut TemplateSources,
) -> Result<Rule, Vec<RuleError>> {
    let start = rule_line(text, &config.id);
    let id = config.id.clone();
    let mut errors = Vec::new();
    let at = |key: &str, message: String| {
        let span = key_span(text, start, key).unwrap_or(Span {
            line: start,
            column: 1,
            block: None,
            value_column: 1,
        });
        RuleError {
            file: path.to_owned(),
            line: span.line,
            column: span.column,
            rule: Some(id.clone()),
            message,
        }
    };

    let id_ok = !config.id.is_empty()
        && config
            .id
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if !id_ok {
        errors.push(at(
            "id",
            format!("id '{}' must be snake_case (a-z, 0-9, _)", config.id),
        ));
    }
    if config.on.is_empty() && config.source_types.is_empty() && config.schedule.is_none() {
        errors.push(at(
            "on",
            "a rule needs a trigger: `on:` (event types), `source_types:` or `schedule:`".into(),
        ));
    }
    if config.schedule.is_some() && !(config.on.is_empty() && config.source_types.is_empty()) {
        errors.push(at(
            "schedule",
            "a rule runs on a schedule or on events, not both: move one into a rule of its own"
                .into(),
        ));
    }
    for pattern in &config.on {
        if pattern.contains('*') {
            if !known.iter().any(|k| glob_matches(pattern, k)) {
                errors.push(at(
                    "on",
                    format!("'{pattern}' matches no known event type (see `signalbox events`)"),
                ));
            }
        } else if !known.contains(pattern) {
            let hint = did_you_mean(pattern, known.iter().map(String::as_str))
                .map(|s| format!("; did you mean '{s}'?"))
                .unwrap_or_default();
            errors.push(at(
                "on",
                format!("unknown event type '{pattern}'{hint} (see `signalbox events`)"),
            ));
        }
    }
    for source in &config.sources {
        if let Err(e) = crate::normalize::validate_source(source) {
            errors.push(at("sources", e));
        }
    }

    let when_span = key_span(text, start, "when").unwrap_or_default();
    let script_span = key_span(text, start, "script").unwrap_or_default();
    let script_error = |span: Span, what: &str, source: &str, e: ScriptError| {
        // Rhai puts "unexpected end" after the last line; the author's last line is where the
        // script is unfinished (an unclosed brace, a dangling operator).
        let lines = source.trim_end().lines().count().max(1);
        let (script_line, script_column) = match e.line {
            Some(l) if l > lines => (
                Some(lines),
                Some(source.trim_end().lines().last().map_or(1, |l| l.len() + 1)),
            ),
            other => (other, e.column),
        };
        let (line, column) = span.locate(script_line, script_column);
        RuleError {
            file: path.to_owned(),
            line,
            column,
            rule: Some(id.clone()),
            message: format!("{what}: {}", e.message),
        }
    };
    let when = match config.when.as_deref().map(Condition::compile) {
        Some(Err(e)) => {
            errors.push(script_error(
                when_span,
                "when",
                config.when.as_deref().unwrap_or_default(),
                e,
            ));
            None
        }
        other => other.and_then(Result::ok),
    };
    let script = match config.script.as_deref().map(Block::compile) {
        Some(Err(e)) => {
            errors.push(script_error(
                script_span,
                "script",
                config.script.as_deref().unwrap_or_default(),
                e,
            ));
            None
        }
        other => other.and_then(Result::ok),
    };

    // What templates may read besides the event: the script's top-level variables, and the
    // rule's history.
    let mut script_vars = config
        .script
        .as_deref()
        .map(crate::script::top_level_names)
        .unwrap_or_default();
    let history_names: BTreeSet<String> = config.history.keys().cloned().collect();
    if !history_names.is_empty() {
        script_vars.insert("history".into());
    }
    // A problem with a name in a template: at the name itself, else at `actions:`.
    let at_text = |needle: &str, message: String| match find_in_rule(text, start, needle) {
        Some((line, column)) => RuleError {
            file: path.to_owned(),
            line,
            column,
            rule: Some(id.clone()),
            message,
        },
        None => at("actions", message),
    };
    let mut actions = Vec::new();
    for (index, action) in config.actions.iter().map(|a| &a.action).enumerate() {
        let params = serde_json::to_value(action).expect("action configs serialize");
        let mut found = Vec::new();
        collect_templates(&params, String::new(), &mut found);
        let mut action_templates = Vec::new();
        for (pointer, source) in found {
            let name = format!("{}/actions/{index}{pointer}", config.id);
            let field = format!("actions[{index}]{}", pointer.replace('/', "."));
            if let Err(e) = check_template(&name, &source) {
                errors.push(at("actions", format!("{field}: {e}")));
            }
            for (bad, message) in unknown_names(&source, &script_vars) {
                errors.push(at_text(&bad, format!("{field}: {message}")));
            }
            templates.push((name.clone(), source));
            action_templates.push((pointer, name));
        }
        for problem in action.check(&is_template) {
            let message = format!("actions[{index}] ({}): {problem}", action.kind());
            // At the value the problem names (`'nobody' is not an email address`), if it does.
            match quoted(&problem) {
                Some(value) => errors.push(at_text(value, message)),
                None => errors.push(at("actions", message)),
            }
        }
        actions.push(ActionTemplate {
            kind: action.kind(),
            params,
            templates: action_templates,
            literal: action.clone(),
        });
    }

    let throttle = config.throttle.as_ref().and_then(|t| {
        let name = format!("{}/throttle", config.id);
        if let Err(e) = check_template(&name, &t.key) {
            errors.push(at("throttle", format!("throttle.key: {e}")));
        }
        for (bad, message) in unknown_names(&t.key, &script_vars) {
            errors.push(at_text(&bad, format!("throttle.key: {message}")));
        }
        templates.push((name.clone(), t.key.clone()));
        match humantime::parse_duration(&t.window) {
            Ok(window) => Some(Throttle {
                key_template: name,
                window,
            }),
            Err(e) => {
                errors.push(at(
                    "throttle",
                    format!(
                        "throttle.window: '{}' is not a duration such as 24h or 30m: {e}",
                        t.window
                    ),
                ));
                None
            }
        }
    });

    let (time, problems) = {
        let mut register = |suffix: &str, source: &str| -> Result<String, String> {
            let name = format!("{}/{suffix}", config.id);
            check_template(&name, source)?;
            if let Some((_, message)) = unknown_names(source, &script_vars).into_iter().next() {
                return Err(message);
            }
            templates.push((name.clone(), source.to_owned()));
            Ok(name)
        };
        super::time::compile(&config, calendars, known, &mut register)
    };
    for (key, message) in problems {
        errors.push(at(key, message));
    }

    let mut test_names = BTreeSet::new();
    for test in &config.tests {
        if !test_names.insert(&test.name) {
            errors.push(at("tests", format!("two tests are named '{}'", test.name)));
        }
    }

    if !errors.is_empty() {
        return Err(errors);
    }
    let trigger = if time.schedule.is_some() {
        Trigger::Schedule {
            rule: config.id.clone(),
        }
    } else {
        Trigger::events(&config.on, &config.source_types, &config.sources)
    };
    Ok(Rule {
        version: version_of(yaml),
        id: config.id,
        name: config.name,
        description: config.description,
        file: path.to_owned(),
        enabled: config.enabled,
        trigger,
        time,
        when,
        script,
        actions,
        throttle,
        tests: config.tests,
        when_span,
        script_span,
    })
}

pub(super) fn collect_templates(value: &Value, pointer: String, out: &mut Vec<(String, String)>) {
    match value {
        Value::String(s) if is_template(s) => out.push((pointer, s.clone())),
        Value::Array(items) => items
            .iter()
            .enumerate()
            .for_each(|(i, v)| collect_templates(v, format!("{pointer}/{i}"), out)),
        Value::Object(map) => map.iter().for_each(|(k, v)| {
            collect_templates(
                v,
                format!("{pointer}/{}", k.replace('~', "~0").replace('/', "~1")),
                out,
            )
        }),
        _ => {}
    }
}

fn check_template(name: &str, source: &str) -> Result<(), String> {
    let mut env = minijinja::Environment::new();
    env.add_template_owned(name.to_owned(), source.to_owned())
        .map(|_| ())
        .map_err(|e| format!("template: {}", e.detail().unwrap_or(&e.to_string())))
}

/// What templates may read of the event (its template view), and of its subject and amount.
const EVENT_FIELDS: &[&str] = &[
    "id",
    "source",
    "source_event_id",
    "type",
    "source_type",
    "occurred_at",
    "received_at",
    "subject",
    "amount",
    "data",
    "chain_depth",
];
const SUBJECT_FIELDS: &[&str] = &[
    "account",
    "claim",
    "debtor",
    "invoice",
    "case",
    "organization",
    "customer",
    "payment_request",
    "payment",
    "strategy",
    "user",
];
const AMOUNT_FIELDS: &[&str] = &["value", "currency"];

/// The names a template uses that nothing provides: each `(name, message)`. A template may
/// read `event` (the fields it has; `data.*` is open) and the variables the rule's script
/// sets; anything else would fail every evaluation at run time.
fn unknown_names(source: &str, script_vars: &BTreeSet<String>) -> Vec<(String, String)> {
    let env = minijinja::Environment::new();
    let Ok(template) = env.template_from_str(source) else {
        return Vec::new();
    };
    let mut problems = Vec::new();
    let globals: BTreeSet<&str> = env.globals().map(|(name, _)| name).collect();
    let mut used: Vec<String> = template
        .undeclared_variables(true)
        .into_iter()
        .filter(|name| !globals.contains(name.split('.').next().unwrap_or_default()))
        .collect();
    used.sort();
    for name in used {
        let parts: Vec<&str> = name.split('.').collect();
        let (top, rest) = (parts[0], &parts[1..]);
        if top == "event" {
            let Some(field) = rest.first() else { continue };
            let (known, what): (&[&str], String) = match (*field, rest.get(1)) {
                (f, _) if !EVENT_FIELDS.contains(&f) => (EVENT_FIELDS, "the event".into()),
                ("subject", Some(r)) if !SUBJECT_FIELDS.contains(r) => {
                    (SUBJECT_FIELDS, "event.subject".into())
                }
                ("amount", Some(r)) if !AMOUNT_FIELDS.contains(r) => {
                    (AMOUNT_FIELDS, "event.amount".into())
                }
                _ => continue,
            };
            let bad = if known == EVENT_FIELDS {
                *field
            } else {
                rest[1]
            };
            let hint = did_you_mean(bad, known.iter().copied())
                .map(|s| format!("; did you mean '{s}'?"))
                .unwrap_or_default();
            problems.push((
                bad.to_owned(),
                format!(
                    "'{name}': {what} has no field '{bad}'{hint} (it has: {})",
                    known.join(", ")
                ),
            ));
            continue;
        }
        if script_vars.contains(top) {
            continue;
        }
        let hint = did_you_mean(top, script_vars.iter().map(String::as_str).chain(["event"]))
            .map(|s| format!("; did you mean '{s}'?"))
            .unwrap_or_default();
        let offer = if script_vars.is_empty() {
            "the rule has no script setting variables".to_owned()
        } else {
            format!(
                "the script sets: {}",
                script_vars.iter().cloned().collect::<Vec<_>>().join(", ")
            )
        };
        problems.push((
            top.to_owned(),
            format!("'{top}' is not known: a template reads `event` and the variables its script sets ({offer}){hint}"),
        ));
    }
    problems
}

/// The first `'quoted'` value in a problem message.
fn quoted(message: &str) -> Option<&str> {
    let start = message.find('\'')? + 1;
    let len = message[start..].find('\'')?;
    Some(&message[start..start + len]).filter(|v| !v.is_empty())
}

/// Where `needle` first appears in the rule starting at line `from`: `(line, column)`.
pub(super) fn find_in_rule(text: &str, from: usize, needle: &str) -> Option<(usize, usize)> {
    text.lines()
        .enumerate()
        .skip(from.saturating_sub(1))
        .find_map(|(i, line)| line.find(needle).map(|at| (i + 1, at + 1)))
}

/// Event types that `emit` actions name literally, across all files' configs.
pub fn emitted_types(configs: &[RuleConfig]) -> BTreeSet<String> {
    configs
        .iter()
        .flat_map(|r| &r.actions)
        .filter_map(|a| match &a.action {
            ActionConfig::Emit(e) if !is_template(&e.event_type) => Some(e.event_type.clone()),
            _ => None,
        })
        .collect()
}

/// Parses a file's rule configs without compiling (to learn the emitted types first).
pub fn peek_configs(text: &str) -> Vec<RuleConfig> {
    serde_yaml::from_str::<RuleListFile>(text)
        .map(|f| f.rules)
        .or_else(|_| serde_yaml::from_str::<RuleConfig>(text).map(|r| vec![r]))
        .unwrap_or_default()
}

/// Rule ids defined twice across the folder.
pub fn duplicate_ids(rules: &[Rule], texts: &BTreeMap<PathBuf, String>) -> Vec<RuleError> {
    let mut seen: BTreeMap<&str, &Path> = BTreeMap::new();
    let mut errors = Vec::new();
    for rule in rules {
        if let Some(first) = seen.insert(&rule.id, &rule.file) {
            let line = texts.get(&rule.file).map_or(1, |t| rule_line(t, &rule.id));
            errors.push(RuleError {
                file: rule.file.clone(),
                line,
                column: 1,
                rule: Some(rule.id.clone()),
                message: format!("id is already used by a rule in {}", first.display()),
            });
        }
    }
    errors
}
