//! `GET /v1/evaluations`: what rules did, across events: every failed evaluation of a rule
//! since a time, with the error and its line in the rule file.

use axum::Json;
use axum::extract::{Query, State};
use chrono::{DateTime, Utc};
use serde::Deserialize;

use super::AppState;
use crate::error::ApiError;
use crate::store::{EvaluationFilter, EvaluationOutcome};

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub(super) struct EvaluationsQuery {
    /// `fired`, `throttled` or `failed`.
    outcome: Option<String>,
    rule: Option<String>,
    /// RFC 3339: only evaluations at or after it.
    since: Option<DateTime<Utc>>,
    /// An evaluation id: older ones (the last id of the previous page).
    before: Option<String>,
    limit: Option<u32>,
}

/// Newest first, 50 by default, at most 1000 and `server.max_page_bytes` of them;
/// `next_before` is the cursor for the next page, `null` after the last.
#[utoipa::path(
    get,
    path = "/evaluations",
    operation_id = "evaluations_list",
    tag = "rules",
    params(EvaluationsQuery),
    responses(
        (status = 200, description = "the answer (docs/api.md)", body = serde_json::Value),
        crate::error::Refusals,
    ),
    security(("token" = ["read"]))
)]
pub(super) async fn list(
    State(state): State<AppState>,
    query: Result<Query<EvaluationsQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let Query(q) = query?;
    let outcome = super::query_word::<EvaluationOutcome>("outcome", q.outcome.as_deref())?;
    let filter = EvaluationFilter {
        outcome,
        rule: q.rule,
        since: q.since,
        before: super::cursor(q.before),
        limit: super::page_limit(q.limit),
    };
    let page = state
        .store
        .list_evaluations(&filter, state.limits.max_page_bytes)
        .await?;
    let next_before = page.next_before(|e| e.id.clone());
    Ok(Json(
        serde_json::json!({ "evaluations": page.items, "next_before": next_before }),
    ))
}
