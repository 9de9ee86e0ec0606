//! Reading stored events back: `GET /v1/events/{id}` and `GET /v1/events`.

use axum::Json;
use axum::extract::{Path, Query, State};
use chrono::{DateTime, Utc};
use serde::Deserialize;

use super::AppState;
use crate::error::ApiError;
use crate::store::{EventFilter, ListedEvent, StoredEvent};

#[utoipa::path(
    get,
    path = "/events/{id}",
    operation_id = "events_get_one",
    tag = "events",
    params(("id" = String, Path, description = "its id")),
    responses(
        (status = 200, description = "the answer (docs/api.md)", body = serde_json::Value),
        crate::error::Refusals,
    ),
    security(("token" = ["read"]))
)]
/// `GET /v1/events/{id}` (read): one stored event with its raw payload and processing state,
/// and what followed it: the `delivery` that brought it (without its body), its recorded
/// `evaluations`, and the `actions` they planned, each with its `attempts`. How a webhook is
/// followed to its actions.
pub(super) async fn get_one(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let Some(event) = state.store.get_event(&id).await? else {
        return Err(ApiError::NotFound {
            code: "event_not_found",
            message: format!("no event with id '{id}'"),
        });
    };
    let delivery = match &event.delivery_id {
        Some(delivery) => state.store.get_delivery(delivery).await?.map(|d| d.summary),
        None => None,
    };
    let mut actions = Vec::new();
    for action in state.store.actions_for_event(&id).await? {
        let attempts = state.store.attempts(&action.id).await?;
        let mut action = serde_json::to_value(&action).unwrap_or_default();
        action["attempts"] = serde_json::json!(attempts);
        actions.push(action);
    }
    let mut answer = serde_json::to_value(&event).unwrap_or_default();
    answer["delivery"] = serde_json::json!(delivery);
    answer["evaluations"] = serde_json::json!(state.store.evaluations_for_event(&id).await?);
    answer["actions"] = serde_json::json!(actions);
    Ok(Json(answer))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub(super) struct ListQuery {
    #[serde(rename = "type")]
    kind: Option<String>,
    source: Option<String>,
    /// `pending`, `processed` or `failed`.
    state: Option<String>,
    /// RFC 3339: events that occurred at or after this time.
    from: Option<DateTime<Utc>>,
    /// RFC 3339: events that occurred before this time.
    to: Option<DateTime<Utc>>,
    /// An event id: list events older than it (the last id of the previous page).
    before: Option<String>,
    limit: Option<u32>,
    // One subject reference at most: `?claim=C-1`.
    claim: Option<String>,
    account: Option<String>,
    debtor: Option<String>,
    invoice: Option<String>,
    case: Option<String>,
    organization: Option<String>,
    customer: Option<String>,
    payment_request: Option<String>,
    payment: Option<String>,
    strategy: Option<String>,
    user: Option<String>,
}

impl ListQuery {
    /// The subject reference asked for, if one is: `("claim", "C-1")`.
    fn subject(&mut self) -> Result<Option<(String, String)>, ApiError> {
        let given: Vec<(String, String)> = [
            ("claim", self.claim.take()),
            ("account", self.account.take()),
            ("debtor", self.debtor.take()),
            ("invoice", self.invoice.take()),
            ("case", self.case.take()),
            ("organization", self.organization.take()),
            ("customer", self.customer.take()),
            ("payment_request", self.payment_request.take()),
            ("payment", self.payment.take()),
            ("strategy", self.strategy.take()),
            ("user", self.user.take()),
        ]
        .into_iter()
        .filter_map(|(key, value)| value.map(|v| (key.to_owned(), v)))
        .collect();
        match given.len() {
            0 | 1 => Ok(given.into_iter().next()),
            _ => Err(ApiError::BadRequest {
                code: "invalid_query",
                message: format!(
                    "filter by one subject reference at a time, not {}",
                    given
                        .iter()
                        .map(|(k, _)| k.as_str())
                        .collect::<Vec<_>>()
                        .join(" and ")
                ),
            }),
        }
    }
}

/// The newest events first, 50 by default, at most 1000, and no more than
/// `server.max_page_bytes` of them; without their raw payloads (`GET /v1/events/{id}` has it).
/// `next_before` is the cursor for the next page, `null` after the last.
#[utoipa::path(
    get,
    path = "/events",
    operation_id = "events_list",
    tag = "events",
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
) -> Result<Json<serde_json::Value>, ApiError> {
    let Query(mut q) = query?;
    let subject = q.subject()?;
    let wanted = super::query_word("state", q.state.as_deref())?;
    let filter = EventFilter {
        kind: q.kind,
        source: q.source,
        state: wanted,
        subject,
        from: q.from,
        to: q.to,
        before: super::cursor(q.before),
        limit: super::page_limit(q.limit),
        max_bytes: state.limits.max_page_bytes,
    };
    let page = state.store.list_events(&filter).await?;
    let next_before = page.next_before(|e| e.event.id.to_string());
    let events: Vec<ListedEvent<'_>> = page.items.iter().map(StoredEvent::listed).collect();
    Ok(Json(
        serde_json::json!({ "events": events, "next_before": next_before }),
    ))
}

/// Refused deliveries are stored too: `?verification=rejected` shows why senders get 401.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub(super) struct DeliveriesQuery {
    verification: Option<String>,
    /// A delivery id: list deliveries older than it (`next_before` of the previous page).
    before: Option<String>,
    limit: Option<u32>,
}

#[utoipa::path(
    get,
    path = "/deliveries",
    operation_id = "events_deliveries",
    tag = "events",
    params(DeliveriesQuery),
    responses(
        (status = 200, description = "the answer (docs/api.md)", body = serde_json::Value),
        crate::error::Refusals,
    ),
    security(("token" = ["read"]))
)]
pub(super) async fn deliveries(
    State(state): State<AppState>,
    query: Result<Query<DeliveriesQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let Query(q) = query?;
    let page = state
        .store
        .list_deliveries(
            q.verification.as_deref(),
            super::cursor(q.before).as_deref(),
            super::page_limit(q.limit),
            state.limits.max_page_bytes,
        )
        .await?;
    let next_before = page.next_before(|d| d.id.clone());
    Ok(Json(
        serde_json::json!({ "deliveries": page.items, "next_before": next_before }),
    ))
}

#[utoipa::path(
    get,
    path = "/unknown-types",
    operation_id = "events_unknown_types",
    tag = "events",
    responses(
        (status = 200, description = "the answer (docs/api.md)", body = serde_json::Value),
        crate::error::Refusals,
    ),
    security(("token" = ["read"]))
)]
pub(super) async fn unknown_types(
    State(state): State<AppState>,
) -> Result<Json<serde_json::Value>, ApiError> {
    Ok(Json(
        serde_json::json!({ "unknown_types": state.store.unknown_types().await? }),
    ))
}

/// What the rules did with an event (fired, throttled or failed).
#[utoipa::path(
    get,
    path = "/events/{id}/evaluations",
    operation_id = "events_evaluations",
    tag = "events",
    params(("id" = String, Path, description = "its id")),
    responses(
        (status = 200, description = "the answer (docs/api.md)", body = serde_json::Value),
        crate::error::Refusals,
    ),
    security(("token" = ["read"]))
)]
pub(super) async fn evaluations(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<serde_json::Value>, ApiError> {
    require_event(&state, &id).await?;
    Ok(Json(
        serde_json::json!({ "evaluations": state.store.evaluations_for_event(&id).await? }),
    ))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub(super) struct ExplainQuery {
    /// `in_force` (default): the rule set the event was evaluated against; `current`: the
    /// rules in force now.
    rules: Option<String>,
}

/// `GET /v1/events/{id}/explain?rules=in_force|current` (read): every rule against a stored
/// event, with why it did or did not fire (its trigger, its condition, a script's skip, an
/// error), knowing what the rules read from the store (history, follow-ups, state) at the time
/// the event was processed; beside what was recorded live. By default the rules are the set
/// the event was evaluated against (kept in the store), else the current ones, and the answer
/// says which. Nothing is stored or sent.
#[utoipa::path(
    get,
    path = "/events/{id}/explain",
    operation_id = "events_explain",
    tag = "events",
    params(("id" = String, Path, description = "its id"), ExplainQuery),
    responses(
        (status = 200, description = "the answer (docs/api.md)", body = serde_json::Value),
        crate::error::Refusals,
    ),
    security(("token" = ["read"]))
)]
pub(super) async fn explain(
    State(state): State<AppState>,
    Path(id): Path<String>,
    query: Result<Query<ExplainQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let Query(q) = query?;
    let want_current = match q.rules.as_deref() {
        None | Some("in_force") => false,
        Some("current") => true,
        Some(other) => {
            return Err(ApiError::BadRequest {
                code: "invalid_query",
                message: format!("rules: '{other}' is neither 'in_force' nor 'current'"),
            });
        }
    };
    let Some(stored) = state.store.get_event(&id).await? else {
        return Err(ApiError::NotFound {
            code: "event_not_found",
            message: format!("no event with id '{id}'"),
        });
    };
    let (rules, rules_from, note) = if want_current {
        (state.rules.current(), "current", None)
    } else {
        rules_in_force(&state, &id).await?
    };
    let at = stored.processed_at.unwrap_or_else(|| state.clock.now());
    let facts = std::sync::Arc::new(
        crate::rules::facts::gather(&rules, &[&stored.event], &state.store, at).await?,
    );
    let set_id = rules.id();
    let evaluations = tokio::task::spawn_blocking(move || {
        rules
            .explain_with(&stored.event, at, &facts)
            .into_iter()
            .map(|e| serde_json::to_value(&e).unwrap_or_default())
            .collect::<Vec<_>>()
    })
    .await
    .map_err(|e| ApiError::Internal(e.to_string()))?;
    Ok(Json(serde_json::json!({
        "event_id": id,
        "rule_set": set_id,
        "rules_from": rules_from,
        "note": note,
        "at": at,
        "rules": evaluations,
        "recorded": state.store.evaluations_for_event(&id).await?,
    })))
}

/// The rule set event `id` was evaluated against, compiled again from the store: with
/// `in_force`, or the current set with `current` and why.
async fn rules_in_force(
    state: &AppState,
    id: &str,
) -> Result<
    (
        std::sync::Arc<crate::rules::RuleSet>,
        &'static str,
        Option<String>,
    ),
    ApiError,
> {
    let current = state.rules.current();
    let Some(set_id) = state.store.event_rule_set(id).await? else {
        let why = "the event has not been evaluated yet (or was before rule sets were recorded): explained with the current rules";
        return Ok((current, "current", Some(why.to_owned())));
    };
    if set_id == current.id() {
        return Ok((current, "in_force", None));
    }
    let Some(stored) = state.store.rule_set(&set_id).await? else {
        let why = format!("rule set {set_id} is not stored: explained with the current rules");
        return Ok((current, "current", Some(why)));
    };
    let live = state.rules.clone();
    let compiled = tokio::task::spawn_blocking(move || live.earlier(&stored))
        .await
        .map_err(|e| ApiError::Internal(e.to_string()))?;
    match compiled {
        Ok(set) => Ok((set, "in_force", None)),
        Err(errors) => {
            let why = format!(
                "rule set {set_id} no longer compiles ({} problems): explained with the current rules",
                errors.len()
            );
            Ok((current, "current", Some(why)))
        }
    }
}

/// `POST /v1/events/{id}/retry` (operate): a parked (`failed`) event is processed again.
#[utoipa::path(
    post,
    path = "/events/{id}/retry",
    operation_id = "events_retry",
    tag = "events",
    params(("id" = String, Path, description = "its id")),
    responses(
        (status = 200, description = "the answer (docs/api.md)", body = serde_json::Value),
        crate::error::Refusals,
    ),
    security(("token" = ["operate"]))
)]
pub(super) async fn retry(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<serde_json::Value>, ApiError> {
    require_event(&state, &id).await?;
    let retried = state.store.retry_events(&[id.as_str()]).await?;
    let message = if retried == 0 {
        "the event is not failed: only failed events are retried"
    } else {
        "the event will be processed again"
    };
    Ok(Json(
        serde_json::json!({ "retried": retried, "message": message }),
    ))
}

/// 404 unless the event `id` is stored.
async fn require_event(state: &AppState, id: &str) -> Result<(), ApiError> {
    match state.store.get_event(id).await? {
        Some(_) => Ok(()),
        None => Err(ApiError::NotFound {
            code: "event_not_found",
            message: format!("no event with id '{id}'"),
        }),
    }
}
