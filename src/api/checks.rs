//! Waiting checks an operator may look at and stop: pending `unless:` checks
//! (`GET /v1/checks`, `POST /v1/checks/{id}/cancel`). Planned actions are in `actions.rs`.

use axum::Json;
use axum::extract::{Path, Query, State};
use serde::Deserialize;

use super::AppState;
use crate::error::ApiError;
use crate::store::CheckStatus;

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub(super) struct ListQuery {
    /// `pending`, `satisfied`, `fired`, `cancelled`.
    status: Option<String>,
    rule: Option<String>,
    /// A check id: checks older than it (`next_before` of the previous page).
    before: Option<String>,
    limit: Option<u32>,
}

/// `GET /v1/checks` (read): newest first, 50 by default, at most 1000.
#[utoipa::path(
    get,
    path = "/checks",
    operation_id = "checks_list_checks",
    tag = "checks",
    params(ListQuery),
    responses(
        (status = 200, description = "the answer (docs/api.md)", body = serde_json::Value),
        crate::error::Refusals,
    ),
    security(("token" = ["read"]))
)]
pub(super) async fn list_checks(
    State(state): State<AppState>,
    query: Result<Query<ListQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let Query(q) = query?;
    let limit = super::page_limit(q.limit);
    let checks = state
        .store
        .list_checks_before(
            super::query_word::<CheckStatus>("status", q.status.as_deref())?,
            q.rule.as_deref(),
            super::cursor(q.before).as_deref(),
            limit,
        )
        .await?;
    let next_before = (checks.len() == limit as usize)
        .then(|| checks.last().map(|c| c.id.clone()))
        .flatten();
    Ok(Json(
        serde_json::json!({ "checks": checks, "next_before": next_before }),
    ))
}

/// `POST /v1/checks/{id}/cancel` (operate): a pending check stops waiting; its rule does
/// not fire for it.
#[utoipa::path(
    post,
    path = "/checks/{id}/cancel",
    operation_id = "checks_cancel_check",
    tag = "checks",
    params(("id" = String, Path, description = "its id")),
    responses(
        (status = 200, description = "the answer (docs/api.md)", body = serde_json::Value),
        crate::error::Refusals,
    ),
    security(("token" = ["operate"]))
)]
pub(super) async fn cancel_check(
    State(state): State<AppState>,
    caller: Option<axum::Extension<crate::auth::Caller>>,
    Path(id): Path<String>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let Some(check) = state.store.get_check(&id).await? else {
        return Err(ApiError::NotFound {
            code: "check_not_found",
            message: format!("no check with id '{id}'"),
        });
    };
    let by = format!("cancelled by {}", who(caller.as_deref()));
    let cancelled = state
        .store
        .resolve_checks(
            &[id.as_str()],
            CheckStatus::Cancelled,
            &by,
            state.clock.now(),
        )
        .await?;
    let message = if cancelled == 0 {
        format!(
            "the check is {}, not pending: nothing to cancel",
            check.status
        )
    } else {
        "the check no longer waits; its rule will not fire for it".into()
    };
    Ok(Json(
        serde_json::json!({ "cancelled": cancelled, "message": message }),
    ))
}

/// Who asked, as recorded with what they changed.
pub(super) fn who(caller: Option<&crate::auth::Caller>) -> String {
    match caller.and_then(crate::auth::Caller::name) {
        Some(name) => format!("token {name}"),
        None => "an operator (no token)".into(),
    }
}
