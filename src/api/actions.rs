//! Planned actions, for the people who run the engine: `GET /v1/actions` (by status, rule,
//! event, kind, target; paged), `GET /v1/actions/{id}` (parameters and every attempt), and
//! putting them right: `POST /v1/actions/{id}/cancel`, `POST /v1/actions/{id}/retry`,
//! `POST /v1/actions/retry` (dead ones, many at a time).

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use super::AppState;
use super::checks::who;
use crate::error::ApiError;
use crate::store::{ActionFilter, ActionStatus, MAX_RETRY, RetryFilter};

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub(super) struct ListQuery {
    /// `pending`, `in_flight`, `delivered`, `dead`, `cancelled` (`state=` says the same).
    #[serde(alias = "state")]
    status: Option<String>,
    rule: Option<String>,
    event: Option<String>,
    kind: Option<String>,
    /// Part of the target, a webhook's URL or an email's recipients, without regard to case.
    target: Option<String>,
    /// An action id: actions older than it (`next_before` of the previous page).
    before: Option<String>,
    limit: Option<u32>,
}

/// `GET /v1/actions` (read): newest first, 50 by default, at most 1000 and
/// `server.max_page_bytes`; `next_before` is the cursor for the next page, `null` after the
/// last.
#[utoipa::path(
    get,
    path = "/actions",
    operation_id = "actions_list",
    tag = "actions",
    params(ListQuery),
    responses(
        (status = 200, description = "the answer (docs/api.md)", body = serde_json::Value),
        crate::error::Refusals,
    ),
    security(("token" = ["read"]))
)]
pub(super) async fn list(
    State(state): State<AppState>,
    query: Result<Query<ListQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let Query(q) = query?;
    let status = super::query_word::<ActionStatus>("status", q.status.as_deref())?;
    let filter = ActionFilter {
        status,
        rule: q.rule,
        event: q.event,
        kind: q.kind,
        target: q.target.filter(|t| !t.is_empty()),
        before: super::cursor(q.before),
        limit: super::page_limit(q.limit),
        max_bytes: state.limits.max_page_bytes,
    };
    let page = state.store.find_actions(&filter).await?;
    let next_before = page.next_before(|a| a.id.clone());
    Ok(Json(
        json!({ "actions": page.items, "next_before": next_before }),
    ))
}

/// `GET /v1/actions/{id}` (read): the action with its parameters (`parameters`, as stored),
/// what cancels it, its next attempt, and every attempt in the order made.
#[utoipa::path(
    get,
    path = "/actions/{id}",
    operation_id = "actions_get_one",
    tag = "actions",
    params(("id" = String, Path, description = "its id")),
    responses(
        (status = 200, description = "the answer (docs/api.md)", body = serde_json::Value),
        crate::error::Refusals,
    ),
    security(("token" = ["read"]))
)]
pub(super) async fn get_one(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let Some(detail) = state.store.action_detail(&id).await? else {
        return Err(not_found(&id));
    };
    let attempts = state.store.attempts(&id).await?;
    let mut action =
        serde_json::to_value(&detail).map_err(|e| ApiError::Internal(e.to_string()))?;
    if let Some(fields) = action.as_object_mut() {
        let payload = fields.remove("payload").unwrap_or_default();
        fields.insert("idempotency_key".into(), json!(detail.summary.id));
        fields.insert("payload_version".into(), payload["version"].clone());
        fields.insert("parameters".into(), payload["action"].clone());
    }
    Ok(Json(json!({ "action": action, "attempts": attempts })))
}

/// `POST /v1/actions/{id}/cancel` (operate): a pending action (delayed, or waiting for a
/// retry) is cancelled and never runs. One being delivered, delivered or dead is left alone.
#[utoipa::path(
    post,
    path = "/actions/{id}/cancel",
    operation_id = "actions_cancel",
    tag = "actions",
    params(("id" = String, Path, description = "its id")),
    responses(
        (status = 200, description = "the answer (docs/api.md)", body = serde_json::Value),
        crate::error::Refusals,
    ),
    security(("token" = ["operate"]))
)]
pub(super) async fn cancel(
    State(state): State<AppState>,
    caller: Option<axum::Extension<crate::auth::Caller>>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let reason = format!("cancelled by {}", who(caller.as_deref()));
    let cancelled = state
        .store
        .cancel_actions(&[id.as_str()], &reason, state.clock.now())
        .await?;
    if cancelled == 0 {
        return match state.store.get_action(&id).await? {
            Some(action) => Ok(Json(json!({
                "cancelled": 0,
                "message": format!("the action is {}, not pending: only a pending action can be cancelled", action.status),
            }))),
            None => Err(not_found(&id)),
        };
    }
    Ok(Json(json!({
        "cancelled": cancelled,
        "message": "the action is cancelled and will not run",
    })))
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RetryOne {
    /// Put a cancelled action back too (it was cancelled on purpose: say so).
    #[serde(default)]
    cancelled: bool,
}

/// `POST /v1/actions/{id}/retry` (operate), body optional: a dead action (out of attempts, or
/// failed for good) or a pending one is due now with a fresh set of attempts, its id (the
/// `Idempotency-Key` it is sent with) unchanged. A cancelled one only with
/// `{"cancelled": true}`.
#[utoipa::path(
    post,
    path = "/actions/{id}/retry",
    operation_id = "actions_retry",
    tag = "actions",
    params(("id" = String, Path, description = "its id")),
    request_body(content = serde_json::Value, description = "see docs/api.md"),
    responses(
        (status = 200, description = "the answer (docs/api.md)", body = serde_json::Value),
        crate::error::Refusals,
    ),
    security(("token" = ["operate"]))
)]
pub(super) async fn retry(
    State(state): State<AppState>,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let asked: RetryOne = optional_body(&body, "invalid_retry_request")?;
    let Some(action) = state.store.get_action(&id).await? else {
        return Err(not_found(&id));
    };
    if state
        .store
        .retry_action(&id, asked.cancelled, state.clock.now())
        .await?
    {
        return Ok(Json(json!({
            "retried": 1,
            "message": "the action is due now, with a fresh set of attempts and the same idempotency key",
        })));
    }
    let message = match action.status {
        ActionStatus::Cancelled => format!(
            "the action was cancelled ({}): to run it anyway, post {{\"cancelled\": true}}",
            action.last_error.as_deref().unwrap_or("no reason recorded")
        ),
        status => format!(
            "the action is {status}: only a dead or pending action is retried (a cancelled one with {{\"cancelled\": true}})"
        ),
    };
    Ok(Json(json!({ "retried": 0, "message": message })))
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RetryMany {
    /// Only `dead`, the default.
    state: Option<String>,
    rule: Option<String>,
    event: Option<String>,
    /// Went dead after this time (RFC 3339 or a date) ...
    after: Option<String>,
    /// ... and before this one.
    before: Option<String>,
    /// At most 1000, the default.
    limit: Option<u32>,
}

/// `POST /v1/actions/retry` (operate), body optional: dead actions, oldest first, of a rule, an
/// event, a time range (when they went dead), at most `limit` (1000) per call; `more` says
/// whether others match. Cancelled actions are never retried in bulk.
#[utoipa::path(
    post,
    path = "/actions/retry",
    operation_id = "actions_retry_many",
    tag = "actions",
    request_body(content = serde_json::Value, description = "see docs/api.md"),
    responses(
        (status = 200, description = "the answer (docs/api.md)", body = serde_json::Value),
        crate::error::Refusals,
    ),
    security(("token" = ["operate"]))
)]
pub(super) async fn retry_many(
    State(state): State<AppState>,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let asked: RetryMany = optional_body(&body, "invalid_retry_request")?;
    let invalid = |message: String| ApiError::BadRequest {
        code: "invalid_retry_request",
        message,
    };
    match asked.state.as_deref() {
        None | Some("dead") => {}
        Some(other) => {
            return Err(invalid(format!(
                "state: '{other}': only dead actions are retried in bulk (a pending or cancelled one by its id: POST /v1/actions/{{id}}/retry)"
            )));
        }
    }
    let time = |what: &str, text: Option<&str>| -> Result<Option<DateTime<Utc>>, ApiError> {
        text.map(|t| {
            crate::script::bindings::parse_time(t).ok_or_else(|| {
                invalid(format!(
                    "{what}: '{t}' is not a time (RFC 3339 such as 2026-11-20T08:00:00Z, or a date 2026-11-20)"
                ))
            })
        })
        .transpose()
    };
    let after = time("after", asked.after.as_deref())?;
    let before = time("before", asked.before.as_deref())?;
    if let (Some(a), Some(b)) = (after, before)
        && a >= b
    {
        return Err(invalid("before must be later than after".into()));
    }
    let limit = asked.limit.unwrap_or(MAX_RETRY);
    if limit == 0 || limit > MAX_RETRY {
        return Err(invalid(format!(
            "limit: {limit}: from 1 to {MAX_RETRY} actions per call; call again while more is true"
        )));
    }
    let filter = RetryFilter {
        rule: asked.rule,
        event: asked.event,
        after,
        before,
        limit,
    };
    let retried = state
        .store
        .retry_dead_actions(&filter, state.clock.now())
        .await?;
    let n = retried.ids.len();
    let message = match (n, retried.more) {
        (0, _) => "no dead action matches".to_owned(),
        (_, false) => format!(
            "{n} dead action{} due now",
            if n == 1 { " is" } else { "s are" }
        ),
        (_, true) => format!(
            "{n} dead actions are due now; more match: call again to retry the next {limit}"
        ),
    };
    Ok(Json(json!({
        "retried": n,
        "ids": retried.ids,
        "more": retried.more,
        "message": message,
    })))
}

/// A JSON body that may be left out (empty: `T::default()`).
pub(super) fn optional_body<T: DeserializeOwned + Default>(
    body: &Bytes,
    code: &'static str,
) -> Result<T, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    serde_json::from_slice(body).map_err(|e| ApiError::BadRequest {
        code,
        message: format!("the body is not a valid request: {e}"),
    })
}

fn not_found(id: &str) -> ApiError {
    ApiError::NotFound {
        code: "action_not_found",
        message: format!("no action with id '{id}'"),
    }
}
