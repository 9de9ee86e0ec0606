//! `GET /v1/subjects/{key}/{value}/timeline` (read): everything that happened to one claim (or
//! account, debtor) in time order: its events, what each rule did with them (fired, waited,
//! failed, throttled), the actions they planned with every attempt, and the checks waiting on
//! it. How an agent answers "why was this claim paused on 3 March".

use axum::Json;
use axum::extract::{Path, Query, State};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::AppState;
use crate::error::ApiError;
use crate::store::{HistoryQuery, Store, StoreError};

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub(super) struct TimelineQuery {
    /// The subject's newest events taken (1 to 200, default 50).
    limit: Option<u32>,
    /// RFC 3339: only events that occurred before it (`next_before` of the previous page).
    before: Option<DateTime<Utc>>,
}

/// One thing that happened, at a time.
#[derive(Debug, Serialize)]
pub struct Entry {
    pub at: DateTime<Utc>,
    /// `event`, `evaluation`, `action`, `attempt` or `check`.
    pub kind: &'static str,
    /// The event it belongs to.
    pub event_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rule_id: Option<String>,
    /// One line for people: `sms.delivery_failed from receeve`, `fired`, `pause_strategy
    /// delivered`.
    pub summary: String,
    pub detail: Value,
}

/// One page of a timeline: its entries, oldest first, and the cursor to the page before.
#[derive(Debug, Serialize)]
pub struct Timeline {
    pub entries: Vec<Entry>,
    /// When the oldest event of the page occurred, if older events may follow: the `before`
    /// of the next page.
    pub next_before: Option<DateTime<Utc>>,
}

/// The timeline of `key`'s `value`: its `limit` newest events that occurred before `before`
/// and what followed them, oldest first.
pub async fn timeline(
    store: &Store,
    key: &str,
    value: &str,
    limit: u32,
    before: Option<DateTime<Utc>>,
) -> Result<Timeline, StoreError> {
    let far: DateTime<Utc> = "9999-12-31T23:59:59Z".parse().expect("a valid time");
    let past: DateTime<Utc> = "0001-01-01T00:00:00Z".parse().expect("a valid time");
    // The window is (after, until]: up to the microsecond before `before`.
    let until = before.map_or(far, |b| b - chrono::Duration::microseconds(1));
    let events = store
        .history(&HistoryQuery {
            key,
            value: Some(value),
            types: &[],
            after: past,
            until,
            limit,
        })
        .await?;
    let next_before = (events.len() == limit as usize)
        .then(|| events.iter().map(|e| e.occurred_at).min())
        .flatten();
    // What followed the page's events, read for all of them at once.
    let ids: Vec<&str> = events.iter().map(|e| e.id.as_str()).collect();
    let mut evaluations: std::collections::HashMap<String, Vec<_>> = Default::default();
    for evaluation in store.evaluations_for_events(&ids).await? {
        evaluations
            .entry(evaluation.event_id.clone())
            .or_default()
            .push(evaluation);
    }
    let mut actions: std::collections::HashMap<String, Vec<_>> = Default::default();
    for action in store.actions_for_events(&ids).await? {
        actions
            .entry(action.event_id.clone())
            .or_default()
            .push(action);
    }
    let mut entries = Vec::new();
    for event in &events {
        let id = event.id.to_string();
        entries.push(Entry {
            at: event.occurred_at,
            kind: "event",
            event_id: id.clone(),
            rule_id: None,
            summary: format!("{} from {}", event.kind, event.source),
            detail: serde_json::to_value(event.view()).unwrap_or(Value::Null),
        });
        for evaluation in evaluations.remove(&id).unwrap_or_default() {
            entries.push(Entry {
                at: evaluation.evaluated_at,
                kind: "evaluation",
                event_id: id.clone(),
                rule_id: Some(evaluation.rule_id.clone()),
                summary: match &evaluation.error {
                    Some(error) => format!("{}: {error}", evaluation.outcome),
                    None => evaluation.outcome.to_string(),
                },
                detail: serde_json::to_value(&evaluation).unwrap_or(Value::Null),
            });
        }
        for action in actions.remove(&id).unwrap_or_default() {
            for attempt in store.attempts(&action.id).await? {
                entries.push(Entry {
                    at: attempt.started_at,
                    kind: "attempt",
                    event_id: id.clone(),
                    rule_id: Some(action.rule_id.clone()),
                    summary: format!(
                        "{} attempt {}: {}{}",
                        action.kind,
                        attempt.attempt,
                        attempt.outcome,
                        attempt
                            .error
                            .as_deref()
                            .map(|e| format!(" ({e})"))
                            .unwrap_or_default()
                    ),
                    detail: serde_json::to_value(&attempt).unwrap_or(Value::Null),
                });
            }
            entries.push(Entry {
                at: action.next_attempt_at.unwrap_or(action.updated_at),
                kind: "action",
                event_id: id.clone(),
                rule_id: Some(action.rule_id.clone()),
                summary: format!("{} to {}: {}", action.kind, action.target, action.status),
                detail: serde_json::to_value(&action).unwrap_or(Value::Null),
            });
        }
    }
    for check in store.checks_of_events(&ids).await? {
        {
            entries.push(Entry {
                at: check.deadline,
                kind: "check",
                event_id: check.event_id.clone(),
                rule_id: Some(check.rule_id.clone()),
                summary: format!(
                    "waits for {} until {}: {}",
                    check.awaits.join(" or "),
                    check.deadline.to_rfc3339(),
                    check.status
                ),
                detail: serde_json::to_value(&check).unwrap_or(Value::Null),
            });
        }
    }
    entries.sort_by_key(|e| e.at);
    Ok(Timeline {
        entries,
        next_before,
    })
}

#[utoipa::path(
    get,
    path = "/subjects/{key}/{value}/timeline",
    operation_id = "timeline_get",
    tag = "subjects",
    params(("key" = String, Path, description = "`claim`, `account` or `debtor`"), ("value" = String, Path, description = "the reference, e.g. `C-1`"), TimelineQuery),
    responses(
        (status = 200, description = "the answer (docs/api.md)", body = serde_json::Value),
        crate::error::Refusals,
    ),
    security(("token" = ["read"]))
)]
pub(super) async fn get(
    State(state): State<AppState>,
    Path((key, value)): Path<(String, String)>,
    query: Result<Query<TimelineQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let Query(q) = query?;
    if !crate::store::HISTORY_KEYS.contains(&key.as_str()) {
        return Err(ApiError::BadRequest {
            code: "invalid_subject",
            message: format!(
                "'{key}' is not a subject with a timeline: use {}",
                crate::store::HISTORY_KEYS.join(", ")
            ),
        });
    }
    let page = timeline(
        &state.store,
        &key,
        &value,
        q.limit.unwrap_or(50).clamp(1, 200),
        q.before,
    )
    .await?;
    Ok(Json(serde_json::json!({
        "subject": format!("{key}:{value}"),
        "entries": page.entries,
        "next_before": page.next_before,
    })))
}
