//! Counts for the console's overview (read): `GET /v1/stats/hourly?hours=24`, events,
//! evaluations and delivery attempts per hour over the last hours (1 to 168); and
//! `GET /v1/stats/queues`, what waits or was set aside now.

use axum::Json;
use axum::extract::{Query, State};
use chrono::{DurationRound, TimeDelta};
use serde::Deserialize;
use serde_json::{Value, json};

use super::AppState;
use crate::error::ApiError;
use crate::store::MAX_HOURS;

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub(super) struct HourlyQuery {
    /// How many hours back, the current one included (1 to 168, default 24).
    hours: Option<u32>,
}

#[utoipa::path(
    get,
    path = "/stats/hourly",
    operation_id = "stats_hourly",
    tag = "events",
    params(HourlyQuery),
    responses(
        (status = 200, description = "the answer (docs/api.md)", body = serde_json::Value),
        crate::error::Refusals,
    ),
    security(("token" = ["read"]))
)]
pub(super) async fn hourly(
    State(state): State<AppState>,
    query: Result<Query<HourlyQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let Query(q) = query?;
    let hours = q.hours.unwrap_or(24);
    if !(1..=MAX_HOURS).contains(&hours) {
        return Err(ApiError::BadRequest {
            code: "invalid_query",
            message: format!("hours: {hours} is not between 1 and {MAX_HOURS}"),
        });
    }
    let now = state.clock.now();
    let hour = TimeDelta::hours(1);
    let current = now.duration_trunc(hour).unwrap_or(now);
    let from = current - hour * (hours as i32 - 1);
    let counts = state.store.hourly_counts(from, hours).await?;
    Ok(Json(json!({
        "from": from,
        "to": current + hour,
        "hours": counts,
    })))
}

/// `GET /v1/stats/queues` (read): the outbox's depth and oldest due action, dead actions,
/// parked and pending events, now.
#[utoipa::path(
    get,
    path = "/stats/queues",
    operation_id = "stats_queues",
    tag = "events",
    responses(
        (status = 200, description = "the answer (docs/api.md)", body = serde_json::Value),
        crate::error::Refusals,
    ),
    security(("token" = ["read"]))
)]
pub(super) async fn queues(State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    let counts = state.store.queue_counts(state.clock.now()).await?;
    Ok(Json(json!(counts)))
}
