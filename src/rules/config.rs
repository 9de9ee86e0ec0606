//! The rule file format as rule authors write it. Compiling turns these into [`super::Rule`].

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

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

fn one_or_many<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrMany {
        One(String),
        Many(Vec<String>),
    }
    Ok(match OneOrMany::deserialize(d)? {
        OneOrMany::One(s) => vec![s],
        OneOrMany::Many(v) => v,
    })
}

/// What a rule does when it fires. Every string may be a template: `{{ event.subject.claim }}`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ActionConfig {
    Webhook(WebhookConfig),
    Email(EmailConfig),
    PauseStrategy(StrategyConfig),
    ResumeStrategy(StrategyConfig),
    Emit(EmitConfig),
}

impl ActionConfig {
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Webhook(_) => "webhook",
            Self::Email(_) => "email",
            Self::PauseStrategy(_) => "pause_strategy",
            Self::ResumeStrategy(_) => "resume_strategy",
            Self::Emit(_) => "emit",
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookConfig {
    pub url: String,
    #[serde(default = "default_method")]
    pub method: String,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub headers: BTreeMap<String, String>,
    /// A JSON body (a mapping or list, templates in its strings) or a text body (a string).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<Value>,
    /// How long to wait for an answer, e.g. `10s` (the default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<String>,
    /// Statuses that count as delivered; default any 2xx.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub success: Option<Vec<u16>>,
}

fn default_method() -> String {
    "POST".into()
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct EmailConfig {
    #[serde(deserialize_with = "one_or_many")]
    pub to: Vec<String>,
    #[serde(
        default,
        deserialize_with = "one_or_many",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub cc: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reply_to: Option<String>,
    /// Defaults to the configured sender.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
    pub subject: String,
    pub text: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub html: Option<String>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct StrategyConfig {
    /// The claim whose collection strategy to pause or resume. Default: the event's claim.
    #[serde(default = "default_claim")]
    pub claim: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The platform that owns the strategy. Default: the event's source.
    #[serde(default = "default_platform")]
    pub platform: String,
}

fn default_claim() -> String {
    "{{ event.subject.claim }}".into()
}

fn default_platform() -> String {
    "{{ event.source }}".into()
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct EmitConfig {
    /// The follow-up event's canonical type.
    pub event_type: String,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub subject: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<Value>,
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
