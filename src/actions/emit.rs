//! `emit`: a follow-up event, stored as if it had arrived (source `signalbox`), so rules can
//! chain. Keyed by the action's id, a retried emit stores its event once; chains stop at
//! `actions.max_chain_depth`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::retry::RetryConfig;
use super::{ActionsConfig, Deliver, Delivery, Executors, Outcome, Params};
use crate::normalize::{Event, EventId, EventType, Subject};
use crate::store::{Ingest, NewDelivery, Stored};

/// An emit action as the rule file writes it.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct EmitConfig {
    /// The follow-up event's canonical type.
    pub event_type: String,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub subject: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<Value>,
}

/// A planned emit as the outbox keeps it (payload version 1).
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct EmitV1 {
    pub event_type: String,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub subject: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<Value>,
}

impl Params for EmitConfig {
    type Stored = EmitV1;

    fn check(&self, skip: &dyn Fn(&str) -> bool) -> Vec<String> {
        let mut problems = Vec::new();
        if !skip(&self.event_type)
            && let Err(message) = EventType::parse_external(&self.event_type)
        {
            problems.push(message);
        }
        if let Err(err) = subject(&self.subject) {
            problems.push(format!("subject: {err}"));
        }
        problems
    }

    /// Emitting stores an event: every emit shares the one store.
    fn target(&self) -> String {
        "emit".into()
    }

    fn stored(&self) -> EmitV1 {
        EmitV1 {
            event_type: self.event_type.clone(),
            subject: self.subject.clone(),
            data: self.data.clone(),
        }
    }
}

/// The emitted event's subject, from the action's `subject` mapping.
fn subject(fields: &BTreeMap<String, String>) -> Result<Subject, serde_json::Error> {
    let map: serde_json::Map<String, Value> = fields
        .iter()
        .map(|(k, v)| (k.clone(), Value::String(v.clone())))
        .collect();
    serde_json::from_value(Value::Object(map))
}

impl Deliver for EmitV1 {
    fn retry_policy<'a>(&self, config: &'a ActionsConfig) -> &'a RetryConfig {
        &config.emit_retry
    }

    async fn deliver(&self, executors: &Executors, action: &Delivery) -> Outcome {
        emit(executors, action, self).await
    }
}

/// Stores the follow-up event, one chain step deeper than the event that planned it.
async fn emit(executors: &Executors, action: &Delivery, emit: &EmitV1) -> Outcome {
    let failed = |reason: String| Outcome::Failed {
        reason,
        status: None,
    };
    let retry = |e: crate::store::StoreError| Outcome::Retry {
        reason: e.to_string(),
        status: None,
        not_before: None,
    };
    let store = &executors.store;
    let max_depth = executors.config.max_chain_depth;
    let parent = match store.get_event(&action.event_id).await {
        Ok(Some(parent)) => parent.event,
        Ok(None) => return failed(format!("event {} not found", action.event_id)),
        Err(e) => return retry(e),
    };
    let depth = parent.chain_depth + 1;
    if depth > max_depth {
        return failed(format!(
            "chain depth limit reached: this would be the {depth}th emitted event in a row (actions.max_chain_depth = {max_depth})"
        ));
    }
    let kind = match EventType::parse_external(&emit.event_type) {
        Ok(kind) => kind,
        Err(reason) => return failed(reason),
    };
    let subject = match subject(&emit.subject) {
        Ok(subject) => subject,
        Err(e) => return failed(format!("subject: {e}")),
    };
    let now = executors.clock.now();
    let params = serde_json::to_value(emit).expect("emit payloads serialize");
    let event = Event {
        id: EventId::new(),
        source: crate::providers::ENGINE_SOURCE.into(),
        source_event_id: action.id.clone(),
        kind,
        source_type: None,
        occurred_at: now,
        received_at: now,
        subject,
        amount: None,
        data: emit.data.clone().unwrap_or_else(|| serde_json::json!({})),
        payload: serde_json::json!({ "emitted_by": { "action": action.id, "rule": action.rule_id, "event": action.event_id }, "params": params }),
        chain_depth: depth,
    };
    if let Err(reason) = event.storable() {
        return failed(format!("the emitted event cannot be stored: {reason}"));
    }
    let delivery = NewDelivery::internal(now, &event.payload);
    let stored = store
        .insert_batch(&[Ingest {
            delivery,
            events: vec![event],
        }])
        .await;
    match stored {
        Ok(stored) => {
            executors.stored.notify_one();
            let id = stored.first().and_then(|s| s.first()).map(|s| match s {
                Stored::New(id) | Stored::Duplicate(id) => id.to_string(),
            });
            Outcome::Delivered {
                status: None,
                reply: id,
            }
        }
        Err(e) => retry(e),
    }
}
