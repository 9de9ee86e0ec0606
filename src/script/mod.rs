//! Rule scripts in Rhai: `when` conditions and `script` blocks, compiled once when rules load.
//!
//! Receives the canonical event (as a read-only, shared Rhai value) from rule evaluation and
//! hands back a decision (`when`) or variables for the action templates (`script`). Scripts
//! decide, actions act: every host function is pure, and a script cannot read files, reach the
//! network, start processes, sleep, or run forever (the engine's limits stop it).

pub mod bindings;
mod engine;
mod event;

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};
use rhai::{AST, CallFnOptions, Dynamic, EvalAltResult, Scope};
use serde_json::Value;

use crate::calendar::{Calendars, QuietHours};

pub use engine::{TIME_BUDGET, engine};

/// A script problem, with its position inside the script (1-based) when known.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{message}")]
pub struct ScriptError {
    pub message: String,
    pub line: Option<usize>,
    pub column: Option<usize>,
}

impl ScriptError {
    fn from_position(message: String, position: rhai::Position) -> Self {
        Self {
            message,
            line: position.line(),
            column: position.position(),
        }
    }
}

/// Facts about the world fetched from the store before a batch is evaluated, so that host
/// functions stay pure: today the strategies Signalbox holds paused.
#[derive(Debug, Default)]
pub struct Facts {
    /// `(platform, claim)` of the strategies Signalbox holds paused, for `is_paused`.
    paused: HashSet<(String, String)>,
}

impl Facts {
    pub fn with_paused(paused: impl IntoIterator<Item = (String, String)>) -> Self {
        Self {
            paused: paused.into_iter().collect(),
        }
    }

    fn is_paused(&self, claim: &str, platform: Option<&str>) -> bool {
        self.paused
            .iter()
            .any(|(pl, c)| c == claim && platform.is_none_or(|want| want == pl))
    }
}

/// What host functions read while one event is evaluated: the clock's now, the batch's facts,
/// the calendars and quiet hours of the service config, and the lines scripts log. Handed to
/// Rhai as the run's tag, never kept in a global.
#[derive(Debug)]
pub struct Session {
    now: DateTime<Utc>,
    facts: Arc<Facts>,
    calendars: Arc<Calendars>,
    quiet_hours: QuietHours,
    logs: Mutex<Vec<String>>,
    state: Mutex<StateScope>,
}

/// The state a rule reads and writes while it is evaluated (`state:` in the rule): its
/// subject, the entries stored, and what its scripts wrote, in order.
#[derive(Debug, Default)]
pub struct StateScope {
    /// `claim:C-1`; `None` when the rule keeps no state or the event has no such subject.
    pub subject: Option<String>,
    /// What the rule's `state:` names (`claim`), for messages.
    pub key: Option<&'static str>,
    pub entries: std::collections::BTreeMap<String, Value>,
    /// `(name, value or None to clear, expiry)`.
    pub writes: Vec<(String, Option<Value>, Option<std::time::Duration>)>,
}

/// Most state entries per subject, longest name, and largest value (as JSON).
pub const MAX_STATE_ENTRIES: usize = 100;
pub const MAX_STATE_NAME: usize = 64;
pub const MAX_STATE_VALUE: usize = 4096;
/// The longest expiry `set_state` takes: about ten years.
pub const MAX_STATE_EXPIRY: std::time::Duration = std::time::Duration::from_secs(3650 * 86_400);
/// How long a state entry lasts when `set_state` gives no expiry.
pub const DEFAULT_STATE_EXPIRY: std::time::Duration = std::time::Duration::from_secs(30 * 86_400);

/// The built-in calendars, for sessions not given configured ones.
static BUILTIN_CALENDARS: std::sync::LazyLock<Arc<Calendars>> =
    std::sync::LazyLock::new(|| Arc::new(Calendars::builtin()));

/// Log lines kept per rule evaluation (a line per operation could grow without bound), and
/// characters kept per line.
const MAX_LOG_LINES: usize = 100;
const MAX_LOG_CHARS: usize = 1000;

impl Session {
    /// A session with the built-in calendars and the default quiet hours (21:00 to 08:00).
    pub fn new(now: DateTime<Utc>, facts: Arc<Facts>) -> Arc<Self> {
        Self::with_time(now, facts, BUILTIN_CALENDARS.clone(), QuietHours::default())
    }

    /// A session with the configured calendars and quiet hours.
    pub fn with_time(
        now: DateTime<Utc>,
        facts: Arc<Facts>,
        calendars: Arc<Calendars>,
        quiet_hours: QuietHours,
    ) -> Arc<Self> {
        Arc::new(Self {
            now,
            facts,
            calendars,
            quiet_hours,
            logs: Mutex::new(Vec::new()),
            state: Mutex::new(StateScope::default()),
        })
    }

    /// Starts a rule's evaluation with its state scope.
    pub fn begin_state(
        &self,
        subject: Option<String>,
        entries: std::collections::BTreeMap<String, Value>,
        key: Option<&'static str>,
    ) {
        *self.state.lock().unwrap_or_else(|p| p.into_inner()) = StateScope {
            subject,
            key,
            entries,
            writes: Vec::new(),
        };
    }

    /// Ends a rule's evaluation: its state scope, with what its scripts wrote.
    pub fn take_state(&self) -> StateScope {
        std::mem::take(&mut *self.state.lock().unwrap_or_else(|p| p.into_inner()))
    }

    pub(crate) fn with_state<T>(&self, f: impl FnOnce(&mut StateScope) -> T) -> T {
        f(&mut self.state.lock().unwrap_or_else(|p| p.into_inner()))
    }

    /// The lines logged since the last call.
    pub fn take_logs(&self) -> Vec<String> {
        std::mem::take(&mut *self.logs.lock().unwrap_or_else(|p| p.into_inner()))
    }

    pub(crate) fn now(&self) -> DateTime<Utc> {
        self.now
    }

    pub(crate) fn calendars(&self) -> &Calendars {
        &self.calendars
    }

    pub(crate) fn quiet_hours(&self) -> QuietHours {
        self.quiet_hours
    }

    pub(crate) fn is_paused(&self, claim: &str, platform: Option<&str>) -> bool {
        self.facts.is_paused(claim, platform)
    }

    pub(crate) fn log(&self, line: String) {
        let mut logs = self.logs.lock().unwrap_or_else(|p| p.into_inner());
        if logs.len() < MAX_LOG_LINES {
            // NUL cannot be stored in PostgreSQL text: a log line never poisons its event.
            let line = if line.contains('\0') {
                line.replace('\0', "\u{FFFD}")
            } else {
                line
            };
            logs.push(match line.char_indices().nth(MAX_LOG_CHARS) {
                Some((at, _)) => format!("{}…", &line[..at]),
                None => line,
            });
        }
    }

    /// The session of the run a host function was called from.
    pub(crate) fn of(
        context: &rhai::NativeCallContext<'_>,
    ) -> Result<Arc<Self>, Box<EvalAltResult>> {
        context
            .tag()
            .and_then(|tag| tag.clone().try_cast::<Arc<Self>>())
            .ok_or_else(|| "host function called outside an evaluation".into())
    }
}

/// The function each compiled condition and block is called through, so that its run
/// carries the session as its tag (`fn` items add no statements and no lines before the
/// author's code).
const ENTRY: &str = "__signalbox_entry";

/// The event as scripts see it: the canonical fields (not the raw payload), read-only,
/// converted once per event and shared by every rule evaluated for it.
pub fn event_value(event: &crate::normalize::Event) -> Result<Dynamic, ScriptError> {
    Ok(event::to_dynamic(event))
}

/// A compiled `when:` condition: the expression, as the body of a function of `event`.
#[derive(Debug, Clone)]
pub struct Condition(AST);

/// A compiled `script:` block.
#[derive(Debug, Clone)]
pub struct Block(AST);

/// What a script block decided.
#[derive(Debug, Clone, PartialEq)]
pub enum BlockOutcome {
    /// Go on; these variables (the script's top-level `let`s) feed the action templates.
    Proceed(serde_json::Map<String, Value>),
    /// The script called `skip(reason)`: the rule does not fire for this event.
    Skip(String),
}

impl Condition {
    /// A `when:`: an expression over `event` and the rule's `history`.
    pub fn compile(source: &str) -> Result<Self, ScriptError> {
        Self::compile_with(source, &["event", "history"])
    }

    /// An expression over the variables `params`, given in that order when it runs.
    pub fn compile_with(source: &str, params: &[&str]) -> Result<Self, ScriptError> {
        // Checked as an expression (positions as the author wrote them), run as a function.
        let mut scope = Scope::new();
        for name in params {
            scope.push_constant(*name, ());
        }
        engine()
            .compile_expression_with_scope(&scope, source)
            .map_err(|e| ScriptError::from_position(e.0.to_string(), e.1))?;
        engine()
            .compile(format!(
                "fn {ENTRY}({}) {{\n{source}\n}}",
                params.join(", ")
            ))
            .map(Self)
            .map_err(|e| ScriptError::from_position(e.0.to_string(), e.1))
    }

    /// True when the condition holds for the event (the rule's history empty).
    pub fn holds(&self, event: &Dynamic, session: &Arc<Session>) -> Result<bool, ScriptError> {
        self.holds_with(
            vec![event.clone(), Dynamic::from_map(rhai::Map::new())],
            session,
        )
    }

    /// True when the condition holds for `args`, one per parameter it was compiled with.
    pub fn holds_with(
        &self,
        args: Vec<Dynamic>,
        session: &Arc<Session>,
    ) -> Result<bool, ScriptError> {
        let options = CallFnOptions::new()
            .eval_ast(false)
            .with_tag(session.clone());
        let value: Dynamic = engine::with_budget(|engine| {
            engine.call_fn_with_options(options, &mut Scope::new(), &self.0, ENTRY, args)
        })
        .map_err(|e| {
            // The function's first line is the wrapper's: the author's line 1 is line 2.
            let mut error = runtime_error(e);
            error.line = error.line.map(|l| l.saturating_sub(1).max(1));
            error
        })?;
        value.as_bool().map_err(|kind| ScriptError {
            message: format!("when must be true or false, but gave {kind}"),
            line: None,
            column: None,
        })
    }
}

impl Block {
    pub fn compile(source: &str) -> Result<Self, ScriptError> {
        let ast = engine()
            .compile_with_scope(&compile_scope(), source)
            .map_err(|e| ScriptError::from_position(e.0.to_string(), e.1))?;
        static ENTRY_FN: std::sync::LazyLock<AST> = std::sync::LazyLock::new(|| {
            engine()
                .compile(format!("fn {ENTRY}() {{}}"))
                .expect("the entry function compiles")
        });
        Ok(Self(ast.merge(&ENTRY_FN)))
    }

    pub fn run(
        &self,
        event: &Dynamic,
        session: &Arc<Session>,
    ) -> Result<BlockOutcome, ScriptError> {
        self.run_with(event, Dynamic::from_map(rhai::Map::new()), session)
    }

    /// Runs with the rule's `history` besides the event.
    pub fn run_with(
        &self,
        event: &Dynamic,
        history: Dynamic,
        session: &Arc<Session>,
    ) -> Result<BlockOutcome, ScriptError> {
        let mut scope = Scope::new();
        scope.push_constant_dynamic("event", event.clone());
        scope.push_constant_dynamic("history", history);
        // The block's statements run first (keeping their variables), then the empty entry.
        let options = CallFnOptions::new()
            .eval_ast(true)
            .rewind_scope(false)
            .with_tag(session.clone());
        let ran: Result<Dynamic, _> = engine::with_budget(|engine| {
            engine.call_fn_with_options(options, &mut scope, &self.0, ENTRY, ())
        });
        if let Err(e) = ran {
            return match bindings::skip_reason(&e) {
                Some(reason) => Ok(BlockOutcome::Skip(reason)),
                None => Err(runtime_error(e)),
            };
        }
        let mut vars = serde_json::Map::new();
        for (name, _constant, value) in scope.iter() {
            if name == "event" || name == "history" {
                continue;
            }
            let value: Value = rhai::serde::from_dynamic(&value).map_err(|e| ScriptError {
                message: format!("variable '{name}' cannot be used in templates: {e}"),
                line: None,
                column: None,
            })?;
            vars.insert(name.to_owned(), value);
        }
        Ok(BlockOutcome::Proceed(vars))
    }
}

/// The variables a script block sets at its top level (`let x = ...;`, `const X = ...;`):
/// those are handed to the action templates. Read from the text (blocks, strings and comments
/// skipped), so it also serves rules that do not compile.
pub fn top_level_names(source: &str) -> std::collections::BTreeSet<String> {
    let mut names = std::collections::BTreeSet::new();
    let mut depth = 0_usize;
    let mut chars = source.char_indices().peekable();
    let mut word_start = None;
    let mut previous_word = String::new();
    while let Some((i, c)) = chars.next() {
        match c {
            '"' | '`' => {
                // Skip the string (escapes included).
                let quote = c;
                while let Some((_, c)) = chars.next() {
                    if c == '\\' {
                        chars.next();
                    } else if c == quote {
                        break;
                    }
                }
            }
            '\'' => {
                // A character literal: '{', '\''.
                while let Some((_, c)) = chars.next() {
                    if c == '\\' {
                        chars.next();
                    } else if c == '\'' {
                        break;
                    }
                }
            }
            '/' if chars.peek().is_some_and(|(_, n)| *n == '/') => {
                for (_, c) in chars.by_ref() {
                    if c == '\n' {
                        break;
                    }
                }
            }
            '/' if chars.peek().is_some_and(|(_, n)| *n == '*') => {
                chars.next();
                let mut star = false;
                for (_, c) in chars.by_ref() {
                    if star && c == '/' {
                        break;
                    }
                    star = c == '*';
                }
            }
            '{' | '(' | '[' => depth += 1,
            '}' | ')' | ']' => depth = depth.saturating_sub(1),
            _ => {}
        }
        let is_word = c.is_alphanumeric() || c == '_';
        match (is_word, word_start) {
            (true, None) => word_start = Some(i),
            (false, Some(start)) => {
                let word = &source[start..i];
                if depth == 0 && (previous_word == "let" || previous_word == "const") {
                    names.insert(word.to_owned());
                }
                previous_word = word.to_owned();
                word_start = None;
            }
            _ => {}
        }
    }
    if let Some(start) = word_start
        && depth == 0
        && (previous_word == "let" || previous_word == "const")
    {
        names.insert(source[start..].to_owned());
    }
    names
}

/// The variables a script may use without declaring them, so that a misspelt one (`evnt`) is
/// an error when rules load rather than when an event arrives.
fn compile_scope() -> Scope<'static> {
    let mut scope = Scope::new();
    scope.push_constant("event", ());
    scope.push_constant("history", ());
    scope
}

/// The closest of `candidates` to `word`, if close enough to be a likely typo.
pub fn did_you_mean<'a>(
    word: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<&'a str> {
    candidates
        .into_iter()
        .map(|c| (strsim::jaro_winkler(word, c), c))
        .filter(|(score, _)| *score > 0.85)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, c)| c)
}

/// The host functions and common methods rule authors call, for "did you mean".
const KNOWN_FUNCTIONS: &[&str] = &[
    "now",
    "parse_time",
    "days_between",
    "hours_between",
    "add_days",
    "add_hours",
    "is_before",
    "format_time",
    "weekday",
    "hour_of_day",
    "is_business_day",
    "add_business_days",
    "is_quiet_hours",
    "end_of_quiet_hours",
    "at_local",
    "minor_units",
    "format_money",
    "matches",
    "is_blank",
    "is_paused",
    "state",
    "set_state",
    "clear_state",
    "log",
    "skip",
    "contains",
    "starts_with",
    "ends_with",
    "to_lower",
    "to_upper",
    "trim",
    "split",
    "replace",
    "len",
    "parse_int",
    "parse_float",
    "parse_decimal",
    "to_string",
    "keys",
    "values",
    "is_empty",
    "sub_string",
    "index_of",
];

/// Rhai's "Function not found: starts_with ((), &str | ImmutableString | String)" in the
/// author's words: a function given nothing (an absent field), or one that does not exist.
fn function_not_found(signature: &str) -> String {
    let (name, args) = signature
        .split_once(" (")
        .map_or((signature, ""), |(n, a)| (n, a.trim_end_matches(')')));
    let name = name.trim();
    if args.split(',').any(|a| a.trim() == "()") {
        return format!(
            "`{name}` was given nothing: a value the event does not have? Give a default with `??` (e.g. `(event.subject.account ?? \"\")`) or check `!= ()` first"
        );
    }
    if !KNOWN_FUNCTIONS.contains(&name) {
        let hint = did_you_mean(name, KNOWN_FUNCTIONS.iter().copied())
            .map(|s| format!("; did you mean `{s}`?"))
            .unwrap_or_default();
        return format!("there is no function `{name}`{hint} (see the functions in docs/rules.md)");
    }
    let args = args
        .replace(" | ImmutableString | String", "")
        .replace("&str", "text");
    format!("`{name}` cannot take ({args}): see its arguments in docs/rules.md")
}

/// Takes the `Box` that Rhai's results carry, so it can serve `map_err` directly.
#[allow(
    clippy::boxed_local,
    reason = "Rhai returns errors boxed; this is their map_err"
)]
fn runtime_error(e: Box<EvalAltResult>) -> ScriptError {
    let position = e.position();
    let message = match *e {
        EvalAltResult::ErrorTooManyOperations(_) => {
            "stopped: the script ran too many operations (an endless loop?)".to_owned()
        }
        EvalAltResult::ErrorTerminated(ref token, _)
            if token
                .clone()
                .into_string()
                .is_ok_and(|t| t == engine::OUT_OF_TIME) =>
        {
            format!(
                "stopped: the script ran longer than its time budget of {} ms",
                TIME_BUDGET.as_millis()
            )
        }
        EvalAltResult::ErrorDataTooLarge(ref what, _) => format!(
            "stopped: {what} grew beyond its limit (strings {} KiB, arrays and maps {} items)",
            engine::MAX_STRING / 1024,
            engine::MAX_ITEMS
        ),
        EvalAltResult::ErrorRuntime(ref value, _) => format!("script error: {value}"),
        EvalAltResult::ErrorFunctionNotFound(ref signature, _) => function_not_found(signature),
        EvalAltResult::ErrorDotExpr(ref what, _) if what.contains("for type '()'") => {
            let property = what.split('\'').nth(1).unwrap_or("?");
            format!(
                "reading `.{property}` of nothing: the value before it is absent (use `??` to give a default, or check `!= ()` first)"
            )
        }
        other => other.to_string(),
    };
    ScriptError::from_position(message.replace(&format!(" ({position})"), ""), position)
}

#[cfg(test)]
mod tests;
