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
    pub actions: Vec<RuleAction>,
    #[serde(default)]
    pub throttle: Option<ThrottleConfig>,
    /// Run on a schedule instead of (or besides) on events: `{cron: "0 8 * * mon-fri",
    /// timezone: Europe/Berlin}`.
    #[serde(default)]
    pub schedule: Option<ScheduleConfig>,
    /// The time zone of the rule's local times and business days. Default UTC.
    #[serde(default)]
    pub timezone: Option<String>,
    /// The calendar its business days count on (`DE`, `ES`, `CL`, `weekdays`, or one of the
    /// config's `calendars:`). Default `weekdays`.
    #[serde(default)]
    pub calendar: Option<String>,
    /// Recent events (or dead actions) the scripts read as `history.<name>`, fetched before
    /// the rule is evaluated: `{failures: {events: sms.delivery_failed, same: claim, within: 7d}}`.
    #[serde(default)]
    pub history: std::collections::BTreeMap<String, HistoryConfig>,
    /// The subject whose small key/value state `state(name)` reads and `set_state` writes:
    /// `claim`, `account` or `debtor`.
    #[serde(default)]
    pub state: Option<String>,
    /// Fire only if no follow-up event comes within a window: "A not followed by B".
    #[serde(default)]
    pub unless: Option<UnlessConfig>,
    #[serde(default)]
    pub tests: Vec<RuleTestConfig>,
}

/// One action of a rule: what to do, and optionally when, and what cancels it while it waits.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct RuleAction {
    /// Run this long after the rule fires: `2h`, `30m`, `1 business day`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after: Option<String>,
    /// Run at this time: a template giving RFC 3339 or a date (`{{ remind_at }}`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub at: Option<String>,
    /// While it waits, a later event of these types about the same subject cancels it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cancel_on: Option<FollowUpConfig>,
    #[serde(flatten)]
    pub action: ActionConfig,
}

/// Later events about the same subject: `{event: payment.received, same: claim}`.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct FollowUpConfig {
    #[serde(deserialize_with = "one_or_many")]
    pub event: Vec<String>,
    /// `claim`, `account` or `debtor`.
    pub same: String,
}

/// When a scheduled rule runs.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ScheduleConfig {
    /// A crontab line (`0 8 * * mon-fri`: minute, hour, day of month, month, weekday), or the
    /// `cron` crate's form with seconds first.
    pub cron: String,
    /// Default: the rule's `timezone`, else UTC.
    #[serde(default)]
    pub timezone: Option<String>,
    /// Only on business days of this calendar.
    #[serde(default)]
    pub calendar: Option<String>,
    /// After downtime: `skip` the ticks missed (default) or run the `latest` of them once.
    #[serde(default)]
    pub missed: Option<String>,
}

/// What `history.<name>` holds.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct HistoryConfig {
    /// Events of these types (`*` patterns allowed).
    #[serde(default, deserialize_with = "one_or_many")]
    pub events: Vec<String>,
    /// Instead of events: actions that went `dead` in the window.
    #[serde(default)]
    pub actions: Option<String>,
    /// Only events about the same `claim`, `account` or `debtor` as the evaluated event.
    #[serde(default)]
    pub same: Option<String>,
    /// How far back from the evaluated event's time: `7d`, `24h`.
    pub within: String,
    /// At most this many, newest first. Default 100, at most 1000.
    #[serde(default)]
    pub limit: Option<u32>,
}

/// "A not followed by B": the rule fires at the end of the window unless a follow-up came.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct UnlessConfig {
    /// The follow-up event types.
    #[serde(deserialize_with = "one_or_many")]
    pub event: Vec<String>,
    /// The subject the follow-up must share: `claim`, `account` or `debtor`.
    pub same: String,
    /// A condition the follow-up must meet: Rhai, with the follow-up as `next` and the first
    /// event as `event` (`next.amount.value >= event.amount.value`).
    #[serde(default, rename = "where")]
    pub condition: Option<String>,
    /// When the window starts: a template giving a time or date. Default: when the event occurred.
    #[serde(default)]
    pub from: Option<String>,
    /// How long the window lasts from then: `3d`, `2 business days`.
    pub within: String,
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
    #[serde(default)]
    pub event: Value,
    /// Instead of one `event`: events at times, `[{at: 2026-12-01T10:00:00Z, event: ...}]`,
    /// run on a clock that also fires deadlines, delayed actions and schedules.
    #[serde(default)]
    pub events: Vec<TimedEvent>,
    /// With `events`: the clock starts here (default: the first event's time).
    #[serde(default)]
    pub from: Option<String>,
    /// With `events`: the clock runs until here (default: the last event's time plus 90 days).
    #[serde(default)]
    pub until: Option<String>,
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

/// One event of a test's sequence.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct TimedEvent {
    /// When it arrives (RFC 3339); also its `occurred_at` unless the event says otherwise.
    pub at: String,
    /// A file (relative to the rule file) or an inline canonical event.
    pub event: Value,
    /// The event is this platform's webhook payload.
    #[serde(default)]
    pub source: Option<String>,
}
