//! Rule scripts in Rhai: `when` conditions and `script` blocks, compiled once when rules load.
//!
//! Receives the canonical event (as a read-only, shared Rhai value) from rule evaluation and
//! hands back a decision (`when`) or variables for the action templates (`script`). Scripts
//! decide, actions act: every host function is pure, and a script cannot read files, reach the
//! network, start processes, sleep, or run forever (the engine's limits stop it).

pub mod bindings;
mod engine;
mod event;

use std::cell::RefCell;

use chrono::{DateTime, Utc};
use rhai::{AST, Dynamic, EvalAltResult, Scope};
use serde_json::Value;

pub use engine::engine;

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

/// Per-evaluation state the host functions read: the clock and the log lines.
struct Context {
    now: DateTime<Utc>,
    logs: Vec<String>,
}

thread_local! {
    /// `(platform, claim)` of the strategies Signalbox holds paused, for `is_paused`; set by the
    /// processor for the batch it evaluates.
    static PAUSED: RefCell<std::collections::HashSet<(String, String)>> = RefCell::new(std::collections::HashSet::new());
    static CONTEXT: RefCell<Context> = const { RefCell::new(Context { now: DateTime::UNIX_EPOCH, logs: Vec::new() }) };
}

/// Runs `f` with `now()` answering `now`; returns its result and the lines scripts logged.
/// (Rhai runs synchronously on this thread, so the context is this thread's.)
pub fn with_context<T>(now: DateTime<Utc>, f: impl FnOnce() -> T) -> (T, Vec<String>) {
    CONTEXT.with(|c| {
        let mut c = c.borrow_mut();
        c.now = now;
        c.logs.clear();
    });
    let result = f();
    let logs = CONTEXT.with(|c| std::mem::take(&mut c.borrow_mut().logs));
    (result, logs)
}

/// Makes `is_paused(...)` answer from these `(platform, claim)` pairs on this thread.
pub fn set_paused_claims(paused: impl IntoIterator<Item = (String, String)>) {
    PAUSED.with(|p| *p.borrow_mut() = paused.into_iter().collect());
}

pub(crate) fn is_paused(claim: &str, platform: Option<&str>) -> bool {
    PAUSED.with(|p| {
        p.borrow()
            .iter()
            .any(|(pl, c)| c == claim && platform.is_none_or(|want| want == pl))
    })
}

pub(crate) fn context_now() -> DateTime<Utc> {
    CONTEXT.with(|c| c.borrow().now)
}

pub(crate) fn context_log(line: String) {
    CONTEXT.with(|c| {
        let mut c = c.borrow_mut();
        // A log line per operation could grow without bound: keep the first 100.
        if c.logs.len() < 100 {
            c.logs.push(line);
        }
    });
}

/// The event as scripts see it: the canonical fields (not the raw payload), read-only,
/// converted once per event and shared by every rule evaluated for it.
pub fn event_value(event: &crate::normalize::Event) -> Result<Dynamic, ScriptError> {
    Ok(event::to_dynamic(event))
}

/// A compiled `when:` condition.
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
    pub fn compile(source: &str) -> Result<Self, ScriptError> {
        engine()
            .compile_expression_with_scope(&compile_scope(), source)
            .map(Self)
            .map_err(|e| ScriptError::from_position(e.0.to_string(), e.1))
    }

    /// True when the condition holds for the event.
    pub fn holds(&self, event: &Dynamic) -> Result<bool, ScriptError> {
        let mut scope = Scope::new();
        scope.push_constant_dynamic("event", event.clone());
        let value: Dynamic = engine()
            .eval_ast_with_scope(&mut scope, &self.0)
            .map_err(runtime_error)?;
        value.as_bool().map_err(|kind| ScriptError {
            message: format!("when must be true or false, but gave {kind}"),
            line: None,
            column: None,
        })
    }
}

impl Block {
    pub fn compile(source: &str) -> Result<Self, ScriptError> {
        engine()
            .compile_with_scope(&compile_scope(), source)
            .map(Self)
            .map_err(|e| ScriptError::from_position(e.0.to_string(), e.1))
    }

    pub fn run(&self, event: &Dynamic) -> Result<BlockOutcome, ScriptError> {
        let mut scope = Scope::new();
        scope.push_constant_dynamic("event", event.clone());
        if let Err(e) = engine().run_ast_with_scope(&mut scope, &self.0) {
            return match bindings::skip_reason(&e) {
                Some(reason) => Ok(BlockOutcome::Skip(reason)),
                None => Err(runtime_error(e)),
            };
        }
        let mut vars = serde_json::Map::new();
        for (name, _constant, value) in scope.iter() {
            if name == "event" {
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

/// The variables a script may use without declaring them, so that a misspelt one (`evnt`) is
/// an error when rules load rather than when an event arrives.
fn compile_scope() -> Scope<'static> {
    let mut scope = Scope::new();
    scope.push_constant("event", ());
    scope
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
        EvalAltResult::ErrorRuntime(ref value, _) => format!("script error: {value}"),
        other => other.to_string(),
    };
    ScriptError::from_position(message.replace(&format!(" ({position})"), ""), position)
}

#[cfg(test)]
mod tests;
