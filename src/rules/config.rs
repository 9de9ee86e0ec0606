//! The rule file format as rule authors write it. Compiling turns these into [`super::Rule`].

use serde::{Deserialize, Serialize};
use serde_json::Value;

pub use crate::actions::ActionConfig;
use crate::actions::one_or_many;

/// A file with several rules: `version: 1` and `rules: [...]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleListFile {
    pub version: u32,
    pub rules: Vec<RuleConfig>,
}

/// One rule. In a file of its own it also carries `version: 1`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RuleConfig {
    /// The rule format version; required in a single-rule file, where it comes first.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<u32>,
    /// Unique across the rules folder; snake_case.
    pub id: String,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default = "enabled_by_default")]
    pub enabled: bool,
    /// Canonical event types, `*` matching any run of characters: `[promise_to_pay.expired, sms.*]`.
    #[serde(default, deserialize_with = "one_or_many")]
    pub on: Vec<String>,
    /// Only events from these platforms.
    #[serde(default, deserialize_with = "one_or_many")]
    pub sources: Vec<String>,
    /// The platform's own types (`event.claim.archived.v1`, `*.archived.*`), for types the
    /// catalogue does not know.
    #[serde(default, deserialize_with = "one_or_many")]
    pub source_types: Vec<String>,
    /// A Rhai expression that must be true for the rule to fire.
    #[serde(default)]
    pub when: Option<String>,
    /// A Rhai block that runs when the rule fires: its variables feed the templates; `skip(reason)`.
    #[serde(default)]
    pub script: Option<String>,
    #[serde(default)]
    pub actions: Vec<ActionConfig>,
    #[serde(default)]
    pub throttle: Option<ThrottleConfig>,
    #[serde(default)]
    pub tests: Vec<RuleTestConfig>,
}

fn enabled_by_default() -> bool {
    true
}

/// Fire at most once per `key` per `window`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ThrottleConfig {
    /// A template, e.g. `{{ event.subject.claim }}`.
    pub key: String,
    /// e.g. `24h`, `30m`, `7days`.
    pub window: String,
}

/// An example event and what the rule must do with it.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RuleTestConfig {
    pub name: String,
    /// A file (relative to the rule file) or an inline canonical event.
    pub event: Value,
    /// The event is this platform's webhook payload, normalized by its adapter.
    #[serde(default)]
    pub source: Option<String>,
    /// What `now()` answers during the test (RFC 3339); default the event's `received_at`.
    #[serde(default)]
    pub now: Option<String>,
    /// `{fires: false}`, or the actions expected in order: each an action type, or a mapping of
    /// the parameters to check (`{type: email, to: [agent@example.com]}`).
    pub expect: Value,
}
