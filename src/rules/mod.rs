//! Rules: YAML files in the rules folder, compiled once into a [`RuleSet`] that evaluates events.
//!
//! Receives processed events from the processor; hands back evaluations (fired with planned
//! actions, or failed) that the store records with the event. Owns the rule format
//! (`config.rs`), its compiler (`compile.rs`), evaluation (`evaluate.rs`), the inline rule tests
//! (`testing.rs`) and hot reload (`live.rs`).

pub mod backtest;
pub mod compile;
pub mod config;
pub mod evaluate;
pub mod facts;
pub mod live;
pub mod optional;
pub mod posted;
pub mod simulate;
pub mod testing;
pub mod time;
pub mod trigger;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};

pub use compile::{Rule, RuleError};
pub use evaluate::{CheckEnd, Effects, Evaluation, Outcome, Processed, StateWrite, Timing};

/// Rule files one set may have at most (a folder, or files posted to the API).
pub const MAX_RULE_FILES: usize = 1000;

/// Bytes one rule file may have at most.
pub const MAX_RULE_FILE_BYTES: usize = 256 * 1024;

/// A rule file's problem of size: `None` when it is within [`MAX_RULE_FILE_BYTES`].
pub fn too_large(bytes: usize) -> Option<String> {
    (bytes > MAX_RULE_FILE_BYTES).then(|| {
        format!(
            "the file has {bytes} bytes, more than the {} KiB a rule file may have",
            MAX_RULE_FILE_BYTES / 1024
        )
    })
}

/// The rule files (`*.yaml`, `*.yml`) directly in `dir`, sorted. A missing folder holds no rules;
/// an unreadable one is an error.
pub fn scan(dir: &Path) -> Result<Vec<PathBuf>, String> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(format!("{}: cannot read rules folder: {e}", dir.display())),
    };
    let mut files = Vec::new();
    for entry in entries {
        let path = entry.map_err(|e| format!("{}: {e}", dir.display()))?.path();
        let is_yaml = matches!(
            path.extension().and_then(|e| e.to_str()),
            Some("yaml" | "yml")
        );
        if is_yaml && path.is_file() {
            files.push(path);
        }
    }
    files.sort();
    Ok(files)
}

/// A compiled, validated set of rules, indexed by the event types they trigger on.
pub struct RuleSet {
    rules: Vec<Rule>,
    /// Exact event type -> indexes of rules whose `on` names it.
    by_type: HashMap<String, Vec<usize>>,
    /// Rules with a glob in `on` or with `source_types`: checked for every event.
    scan_all: Vec<usize>,
    by_id: HashMap<String, usize>,
    /// Event types some rule's `unless` waits for.
    awaited: BTreeSet<String>,
    calendars: std::sync::Arc<crate::calendar::Calendars>,
    templates: minijinja::Environment<'static>,
    pub files: Vec<PathBuf>,
    /// Each file's text, as compiled (kept so the set can be stored and run again).
    pub texts: BTreeMap<PathBuf, String>,
    /// A hash of the files' paths and texts ([`RuleSet::id`]).
    id: String,
}

impl std::fmt::Debug for RuleSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RuleSet")
            .field("rules", &self.rules.len())
            .field("files", &self.files)
            .finish()
    }
}

impl RuleSet {
    /// Loads every rule file in `dir`, or every problem found in them.
    pub fn load_dir(dir: &Path) -> Result<Self, Vec<RuleError>> {
        Self::load_dir_with(dir, &Default::default())
    }

    /// Loads every rule file in `dir` with these calendars (the config's, besides the
    /// built-in ones).
    pub fn load_dir_with(
        dir: &Path,
        calendars: &std::sync::Arc<crate::calendar::Calendars>,
    ) -> Result<Self, Vec<RuleError>> {
        let files = scan(dir).map_err(|message| {
            vec![RuleError {
                file: dir.to_owned(),
                line: 1,
                column: 1,
                rule: None,
                message,
            }]
        })?;
        Self::load_files_with(&files, calendars)
    }

    pub fn load_files(files: &[PathBuf]) -> Result<Self, Vec<RuleError>> {
        Self::load_files_with(files, &Default::default())
    }

    pub fn load_files_with(
        files: &[PathBuf],
        calendars: &std::sync::Arc<crate::calendar::Calendars>,
    ) -> Result<Self, Vec<RuleError>> {
        let mut texts = BTreeMap::new();
        let mut errors = Vec::new();
        if files.len() > MAX_RULE_FILES {
            return Err(vec![RuleError {
                file: files[0].parent().unwrap_or(Path::new(".")).to_owned(),
                line: 1,
                column: 1,
                rule: None,
                message: format!(
                    "{} rule files, more than the {MAX_RULE_FILES} a rule set may have",
                    files.len()
                ),
            }]);
        }
        for file in files {
            let size = std::fs::metadata(file).map_or(0, |m| m.len());
            if let Some(message) = too_large(usize::try_from(size).unwrap_or(usize::MAX)) {
                errors.push(RuleError {
                    file: file.clone(),
                    line: 1,
                    column: 1,
                    rule: None,
                    message,
                });
                continue;
            }
            match std::fs::read_to_string(file) {
                Ok(text) => {
                    texts.insert(file.clone(), text);
                }
                Err(e) => errors.push(RuleError {
                    file: file.clone(),
                    line: 1,
                    column: 1,
                    rule: None,
                    message: format!("cannot read: {e}"),
                }),
            }
        }
        match Self::compile_with(&texts, calendars) {
            Ok(set) if errors.is_empty() => Ok(set),
            Ok(_) => Err(errors),
            Err(mut more) => {
                errors.append(&mut more);
                Err(errors)
            }
        }
    }

    /// Compiles rule files given as `(path, text)`, against the platforms' event types.
    pub fn compile(texts: &BTreeMap<PathBuf, String>) -> Result<Self, Vec<RuleError>> {
        Self::compile_with(texts, &Default::default())
    }

    /// Compiles rule files with these calendars.
    pub fn compile_with(
        texts: &BTreeMap<PathBuf, String>,
        calendars: &std::sync::Arc<crate::calendar::Calendars>,
    ) -> Result<Self, Vec<RuleError>> {
        Self::compile_against(texts, &crate::providers::known_event_types(), calendars)
    }

    /// Compiles rule files given as `(path, text)`: `catalogue` are the event types the
    /// platforms send (rules may also trigger on the types they emit).
    pub fn compile_against(
        texts: &BTreeMap<PathBuf, String>,
        catalogue: &BTreeSet<String>,
        calendars: &std::sync::Arc<crate::calendar::Calendars>,
    ) -> Result<Self, Vec<RuleError>> {
        let configs: Vec<_> = texts
            .values()
            .flat_map(|t| compile::peek_configs(t))
            .collect();
        let known = compile::known_types(catalogue, &compile::emitted_types(&configs));
        let mut rules = Vec::new();
        let mut errors = Vec::new();
        let mut templates = Vec::new();
        for (path, text) in texts {
            let (mut compiled, mut problems) =
                compile::compile_file(path, text, &known, calendars, &mut templates);
            rules.append(&mut compiled);
            errors.append(&mut problems);
        }
        errors.extend(compile::duplicate_ids(&rules, texts));
        if !errors.is_empty() {
            return Err(errors);
        }
        let mut env = environment();
        for (name, source) in templates {
            env.add_template_owned(name, source)
                .expect("templates were checked when compiled");
        }
        let mut by_type: HashMap<String, Vec<usize>> = HashMap::new();
        let mut scan_all = Vec::new();
        for (index, rule) in rules.iter().enumerate() {
            match rule.trigger.exact_types() {
                Some(kinds) => {
                    for kind in kinds {
                        by_type.entry(kind.to_owned()).or_default().push(index);
                    }
                }
                None => scan_all.push(index),
            }
        }
        let by_id = rules
            .iter()
            .enumerate()
            .map(|(i, r)| (r.id.clone(), i))
            .collect();
        let awaited = rules
            .iter()
            .filter_map(|r| r.time.unless.as_ref())
            .flat_map(|u| u.awaits.iter().cloned())
            .collect();
        Ok(Self {
            rules,
            by_type,
            scan_all,
            by_id,
            awaited,
            calendars: calendars.clone(),
            templates: env,
            files: texts.keys().cloned().collect(),
            id: Self::identify(texts),
            texts: texts.clone(),
        })
    }

    /// The set's identity: a hash of its files' paths and texts.
    pub fn id(&self) -> String {
        self.id.clone()
    }

    fn identify(texts: &BTreeMap<PathBuf, String>) -> String {
        use sha2::Digest;
        let mut hash = sha2::Sha256::new();
        for (path, text) in texts {
            hash.update(path.to_string_lossy().as_bytes());
            hash.update([0]);
            hash.update(text.as_bytes());
            hash.update([0]);
        }
        format!("rs_{}", hex::encode(&hash.finalize()[..8]))
    }

    pub fn rules(&self) -> &[Rule] {
        &self.rules
    }

    /// The rule with this id.
    pub fn rule(&self, id: &str) -> Option<&Rule> {
        self.by_id.get(id).map(|i| &self.rules[*i])
    }

    /// Event types some rule's `unless` waits for.
    pub fn awaited_types(&self) -> &BTreeSet<String> {
        &self.awaited
    }

    /// The calendars the rules were compiled with.
    pub fn calendars(&self) -> &std::sync::Arc<crate::calendar::Calendars> {
        &self.calendars
    }

    /// The scheduled rules.
    pub fn scheduled(&self) -> impl Iterator<Item = (&Rule, &time::Scheduled)> {
        self.rules
            .iter()
            .filter(|r| r.enabled)
            .filter_map(|r| r.time.schedule.as_ref().map(|s| (r, s)))
    }

    pub fn len(&self) -> usize {
        self.rules.len()
    }

    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// Rules that may take the event, in rule order: those naming its type, and those that must
    /// be checked for every event. Allocates only when both kinds apply.
    fn candidates<'a>(
        &'a self,
        event: &crate::normalize::Event,
    ) -> Box<dyn Iterator<Item = &'a Rule> + 'a> {
        let exact = self
            .by_type
            .get(event.kind.as_str())
            .map(Vec::as_slice)
            .unwrap_or_default();
        let pick = move |i: &usize| &self.rules[*i];
        match (exact.is_empty(), self.scan_all.is_empty()) {
            (_, true) => Box::new(exact.iter().map(pick)),
            (true, false) => Box::new(self.scan_all.iter().map(pick)),
            (false, false) => {
                let mut indexes: Vec<usize> = exact.iter().chain(&self.scan_all).copied().collect();
                indexes.sort_unstable();
                Box::new(indexes.into_iter().map(move |i| &self.rules[i]))
            }
        }
    }
}

/// Instructions one template render may run (a `for` over a few hundred items takes a few
/// thousand): a runaway nested loop stops with "fuel exhausted".
pub const TEMPLATE_FUEL: u64 = 50_000;

/// Most bytes one rendered template may produce (an email body, a webhook body).
pub const TEMPLATE_OUTPUT_BYTES: usize = 256 * 1024;

/// Where a template's text goes, which decides how the values in it are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Slot {
    /// A webhook `url`: values percent-encoded.
    Url,
    /// A webhook header: a value may not write a secret reference.
    Header,
    /// An email's `html`: values HTML-escaped.
    Html,
    /// Anything else: values as they are.
    Text,
}

impl Slot {
    /// The slot of a template by its name, `{rule_id}/actions/{index}{json pointer}` (rule ids
    /// are snake_case, so the parts split on `/`). Only webhooks have a top-level `url` or
    /// `headers`.
    pub(crate) fn of(name: &str) -> Self {
        let mut parts = name.splitn(4, '/').skip(1);
        match (parts.next(), parts.next(), parts.next()) {
            (Some("actions"), Some(_), Some("url")) => Self::Url,
            (Some("actions"), Some(_), Some(field)) if field.starts_with("headers/") => {
                Self::Header
            }
            _ if name.ends_with("/html") => Self::Html,
            _ => Self::Text,
        }
    }
}

const URL_ESCAPE: &str = "url";
const HEADER_ESCAPE: &str = "header";

/// What values rendered into a URL keep as they are: RFC 3986's unreserved characters, so a
/// value is one path segment, query key or value, or fragment, whatever it holds.
const URL_COMPONENT: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// The template environment: `{{ ... }}` with strict undefined values (a misspelt field is an
/// error, not an empty string); values HTML-escaped in `html` bodies, percent-encoded in
/// webhook URLs (`| safe` writes a value as it is), and never writing a secret reference into a
/// webhook header.
fn environment() -> minijinja::Environment<'static> {
    use minijinja::AutoEscape;
    let mut env = minijinja::Environment::new();
    env.set_undefined_behavior(minijinja::UndefinedBehavior::Strict);
    env.set_fuel(Some(TEMPLATE_FUEL));
    env.set_auto_escape_callback(|name| match Slot::of(name) {
        Slot::Url => AutoEscape::Custom(URL_ESCAPE.into()),
        Slot::Header => AutoEscape::Custom(HEADER_ESCAPE.into()),
        Slot::Html => AutoEscape::Html,
        Slot::Text => AutoEscape::None,
    });
    env.set_formatter(|out, state, value| {
        match state.auto_escape() {
            AutoEscape::Custom(kind) if kind == URL_ESCAPE => {
                if value.is_safe() {
                    write!(out, "{value}")?;
                } else {
                    let text = value.to_string();
                    write!(
                        out,
                        "{}",
                        percent_encoding::utf8_percent_encode(&text, URL_COMPONENT)
                    )?;
                }
                Ok(())
            }
            AutoEscape::Custom(kind) if kind == HEADER_ESCAPE => {
                let text = value.to_string();
                if text.contains(crate::actions::secrets::PREFIX) {
                    return Err(minijinja::Error::new(
                        minijinja::ErrorKind::InvalidOperation,
                        "a value may not write a secret reference (${secret:...}) into a header; only the rule's own text may",
                    ));
                }
                out.write_str(&text)?;
                Ok(())
            }
            _ => minijinja::escape_formatter(out, state, value),
        }
    });
    env.add_filter("money", money_filter);
    env
}

/// `{{ event.amount | money }}`: `1,234.50 EUR`.
fn money_filter(amount: minijinja::Value) -> Result<String, minijinja::Error> {
    let invalid =
        |what: String| minijinja::Error::new(minijinja::ErrorKind::InvalidOperation, what);
    let value = amount
        .get_attr("value")
        .map_err(|e| invalid(e.to_string()))?;
    let text = value
        .as_str()
        .map(str::to_owned)
        .unwrap_or_else(|| value.to_string());
    let decimal: rust_decimal::Decimal = text
        .parse()
        .map_err(|_| invalid(format!("money: '{text}' is not an amount")))?;
    let currency = amount
        .get_attr("currency")
        .ok()
        .filter(|c| !c.is_undefined() && !c.is_none())
        .map(|c| c.to_string());
    Ok(crate::script::bindings::money_text(
        decimal,
        currency.as_deref(),
    ))
}

#[cfg(test)]
mod tests;
