//! `POST /v1/replay` (operate): stored events evaluated again against the rules in force now;
//! a dry run by default (see [`crate::replay`]).

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use serde::Deserialize;
use serde_json::{Value, json};

use super::AppState;
use super::actions::optional_body;
use crate::error::ApiError;
use crate::replay::{DEFAULT_EVENTS, MAX_EVENTS, Options, ReplayError, Selection};
use crate::store::ReplayRange;

const CODE: &str = "invalid_replay_request";

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ReplayBody {
    /// One stored event ...
    event_id: Option<String>,
    /// ... or the processed events received from this time (RFC 3339 or a date) ...
    from: Option<String>,
    /// ... until this one, excluded (default: now) ...
    to: Option<String>,
    /// ... of this type and source only.
    #[serde(rename = "type")]
    kind: Option<String>,
    source: Option<String>,
    /// After this event (`next_after` of the previous call).
    after: Option<String>,
    /// Events taken at most: 1000 by default, at most 10000.
    limit: Option<u32>,
    /// Report only, storing and sending nothing: true unless `false` is given.
    dry_run: Option<bool>,
}

fn invalid(message: impl Into<String>) -> ApiError {
    ApiError::BadRequest {
        code: CODE,
        message: message.into(),
    }
}

/// What the body asks for, checked.
fn selection(
    body: ReplayBody,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<(Selection, u32), ApiError> {
    let time = |what: &str, text: &str| {
        crate::script::bindings::parse_time(text).ok_or_else(|| {
            invalid(format!(
                "{what}: '{text}' is not a time (RFC 3339 such as 2026-11-20T08:00:00Z, or a date 2026-11-20)"
            ))
        })
    };
    let limit = body.limit.unwrap_or(DEFAULT_EVENTS);
    if limit == 0 || limit > MAX_EVENTS {
        return Err(invalid(format!(
            "limit: {limit}: from 1 to {MAX_EVENTS} events per call; go on from next_after"
        )));
    }
    match (body.event_id, body.from) {
        (Some(id), None) => {
            let extra = [
                ("to", body.to.is_some()),
                ("type", body.kind.is_some()),
                ("source", body.source.is_some()),
                ("after", body.after.is_some()),
                ("limit", body.limit.is_some()),
            ];
            if let Some((name, _)) = extra.iter().find(|(_, given)| *given) {
                return Err(invalid(format!(
                    "{name} goes with from, not with event_id: give one event, or a range"
                )));
            }
            Ok((Selection::Event(id), 1))
        }
        (None, Some(from)) => {
            let from = time("from", &from)?;
            let to = match &body.to {
                Some(to) => time("to", to)?,
                None => now,
            };
            if to <= from {
                return Err(invalid("to must be later than from"));
            }
            let range = ReplayRange {
                from,
                to,
                kind: body.kind,
                source: body.source,
            };
            Ok((
                Selection::Range {
                    range,
                    after: body.after,
                },
                limit,
            ))
        }
        (Some(_), Some(_)) => Err(invalid(
            "give event_id (one event) or from and to (a range), not both",
        )),
        (None, None) => Err(invalid(
            "give event_id (one event) or from and to (a range): {\"event_id\": \"evt_...\"} or {\"from\": \"2026-11-01\", \"to\": \"2026-12-01\"}",
        )),
    }
}

/// `POST /v1/replay` (operate).
#[utoipa::path(
    post,
    path = "/replay",
    operation_id = "replay_replay",
    tag = "events",
    request_body(content = serde_json::Value, description = "see docs/api.md"),
    responses(
        (status = 200, description = "the answer (docs/api.md)", body = serde_json::Value),
        crate::error::Refusals,
    ),
    security(("token" = ["operate"]))
)]
pub(super) async fn replay(
    State(state): State<AppState>,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let body: ReplayBody = optional_body(&body, CODE)?;
    let dry_run = body.dry_run.unwrap_or(true);
    let now = state.clock.now();
    let (selection, limit) = selection(body, now)?;
    if !state.rules.in_force() {
        return Err(ApiError::Conflict {
            code: "no_rules_in_force",
            message: "no rule set is in force (the rules folder was broken at start): nothing to replay against".into(),
        });
    }
    let rules = state.rules.current();
    let options = Options {
        dry_run,
        limit,
        max_listed_bytes: state.limits.max_page_bytes,
        now,
    };
    let report = crate::replay::replay(&state.store, &rules, &selection, &options)
        .await
        .map_err(|e| match e {
            ReplayError::EventNotFound(_) => ApiError::NotFound {
                code: "event_not_found",
                message: e.to_string(),
            },
            ReplayError::NotReplayable(message) => ApiError::Conflict {
                code: "event_not_replayable",
                message,
            },
            ReplayError::UnknownCursor(_) => invalid(e.to_string()),
            ReplayError::Store(e) => ApiError::from(e),
            ReplayError::Internal(e) => ApiError::Internal(e),
        })?;
    if !dry_run {
        tracing::info!(
            events = report.events,
            fired = report.totals.fired,
            actions = report.totals.actions,
            "replay planned"
        );
    }
    let mut answer =
        serde_json::to_value(&report).map_err(|e| ApiError::Internal(e.to_string()))?;
    answer["rule_set"] = json!(state.rules.status().set_id);
    Ok(Json(answer))
}
