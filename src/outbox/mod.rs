//! The outbox: planned actions as durable rows, delivered by dispatchers, retried, recorded.
//!
//! Receives planned actions from rule evaluation (rows written in the same transaction as the
//! evaluation, by `Store::complete`); hands each due action to its executor (`crate::actions`)
//! and records every attempt. Planning happens exactly once per (event, rule, action);
//! delivery is at least once, with the action's id as a stable idempotency key.

pub mod retry;
pub mod worker;

use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::rules::config::ActionConfig;

/// A stored action's parameters, versioned so rows written by older engines stay readable.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "version")]
pub enum Payload {
    #[serde(rename = "1")]
    V1 { action: Value },
}

impl Payload {
    pub fn current(action: Value) -> Self {
        Self::V1 { action }
    }

    /// The action to run, whatever version stored it.
    pub fn action(&self) -> Result<ActionConfig, String> {
        match self {
            Self::V1 { action } => ActionConfig::deserialize(action)
                .map_err(|e| format!("stored action is unreadable: {e}")),
        }
    }
}

/// What the action talks to: actions to one target share its concurrency limit.
pub fn target_of(action: &Value) -> String {
    match action["type"].as_str().unwrap_or_default() {
        "webhook" => action["url"]
            .as_str()
            .and_then(|u| url::Url::parse(u).ok())
            .and_then(|u| u.host_str().map(str::to_owned))
            .unwrap_or_else(|| "webhook".into()),
        "email" => "smtp".into(),
        "pause_strategy" | "resume_strategy" => format!(
            "strategy:{}",
            action["platform"].as_str().unwrap_or_default()
        ),
        other => other.to_owned(),
    }
}

/// An action taken by a dispatcher for delivery.
#[derive(Debug, Clone)]
pub struct OutboxAction {
    pub id: String,
    pub event_id: String,
    pub rule_id: String,
    pub action_index: i64,
    pub kind: String,
    pub target: String,
    pub payload: Payload,
    /// Attempts made before this one.
    pub attempts: u32,
}

/// What one delivery attempt came to, decided where the failure happened.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    Delivered {
        status: Option<u16>,
        reply: Option<String>,
    },
    /// Worth trying again: a timeout, a refused connection, a 5xx or 429, a transient SMTP reply.
    /// `not_before` is the target's own Retry-After.
    Retry {
        reason: String,
        status: Option<u16>,
        not_before: Option<Duration>,
    },
    /// Trying again would fail the same way: a 4xx, invalid parameters, nothing configured.
    Failed { reason: String, status: Option<u16> },
}

impl Outcome {
    pub fn name(&self) -> &'static str {
        match self {
            Self::Delivered { .. } => "delivered",
            Self::Retry { .. } => "retry",
            Self::Failed { .. } => "failed",
        }
    }

    pub fn status(&self) -> Option<u16> {
        match self {
            Self::Delivered { status, .. }
            | Self::Retry { status, .. }
            | Self::Failed { status, .. } => *status,
        }
    }

    pub fn error(&self) -> Option<&str> {
        match self {
            Self::Delivered { .. } => None,
            Self::Retry { reason, .. } | Self::Failed { reason, .. } => Some(reason),
        }
    }
}
