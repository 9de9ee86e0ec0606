//! `GET /v1/rules` and `GET /v1/rules/{id}` (read): the rules in force, with what they did in
//! a window (fired, throttled, waiting, failed, and when last), and one rule's source.

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::{Path, Query, State};
use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::{Value, json};

use super::AppState;
use crate::error::ApiError;
use crate::rules::Rule;
use crate::rules::trigger::Trigger;

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub(super) struct StatsQuery {
    /// RFC 3339: statistics from this time on (default: the last 24 hours).
    since: Option<DateTime<Utc>>,
}

/// Each rule's statistics since `since`: `{fired, throttled, waiting, failed, last_fired}`.
async fn stats(
    state: &AppState,
    since: DateTime<Utc>,
) -> Result<BTreeMap<String, serde_json::Map<String, Value>>, ApiError> {
    let mut by_rule: BTreeMap<String, serde_json::Map<String, Value>> = BTreeMap::new();
    for stat in state.store.rule_stats(since).await? {
        let entry = by_rule.entry(stat.rule_id.clone()).or_default();
        entry.insert(stat.outcome.to_string(), json!(stat.count));
        entry.insert(format!("last_{}", stat.outcome), json!(stat.last_at));
    }
    Ok(by_rule)
}

fn describe(rule: &Rule, stats: Option<&serde_json::Map<String, Value>>) -> Value {
    let trigger = match &rule.trigger {
        Trigger::Events {
            on,
            source_types,
            sources,
        } => json!({
            "on": on.iter().map(ToString::to_string).collect::<Vec<_>>(),
            "source_types": source_types.iter().map(ToString::to_string).collect::<Vec<_>>(),
            "sources": sources,
        }),
        Trigger::Schedule { .. } => json!({
            "schedule": rule.time.schedule.as_ref().map(|s| s.written.clone()),
        }),
    };
    let mut counts = serde_json::Map::new();
    for outcome in crate::store::EvaluationOutcome::ALL {
        counts.insert(outcome.to_string(), json!(0));
    }
    if let Some(stats) = stats {
        counts.extend(stats.clone());
    }
    json!({
        "id": rule.id,
        "name": rule.name,
        "description": rule.description,
        "file": rule.file,
        "version": rule.version,
        "enabled": rule.enabled,
        "trigger": trigger,
        "waits_for": rule.time.unless.as_ref().map(|u| u.awaits.clone()),
        "actions": rule.actions.iter().map(|a| a.kind).collect::<Vec<_>>(),
        "stats": counts,
    })
}

fn since(q: &StatsQuery, state: &AppState) -> DateTime<Utc> {
    q.since
        .unwrap_or_else(|| state.clock.now() - chrono::Duration::hours(24))
}

/// `GET /v1/rules?since=`: every rule in force, with its statistics.
#[utoipa::path(
    get,
    path = "/rules",
    operation_id = "rules_list",
    tag = "rules",
    params(StatsQuery),
    responses(
        (status = 200, description = "the answer (docs/api.md)", body = serde_json::Value),
        crate::error::Refusals,
    ),
    security(("token" = ["read"]))
)]
pub(super) async fn list(
    State(state): State<AppState>,
    query: Result<Query<StatsQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let Query(q) = query?;
    let since = since(&q, &state);
    let stats = stats(&state, since).await?;
    let set = state.rules.current();
    let rules: Vec<Value> = set
        .rules()
        .iter()
        .map(|r| describe(r, stats.get(&r.id)))
        .collect();
    Ok(Json(json!({
        "since": since,
        "rule_set": state.rules.status().set_id,
        "rules": rules,
    })))
}

/// `GET /v1/rules/{id}?since=`: one rule, with its statistics and the text of its file.
#[utoipa::path(
    get,
    path = "/rules/{id}",
    operation_id = "rules_get_one",
    tag = "rules",
    params(("id" = String, Path, description = "its id"), StatsQuery),
    responses(
        (status = 200, description = "the answer (docs/api.md)", body = serde_json::Value),
        crate::error::Refusals,
    ),
    security(("token" = ["read"]))
)]
pub(super) async fn get_one(
    State(state): State<AppState>,
    Path(id): Path<String>,
    query: Result<Query<StatsQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let Query(q) = query?;
    let set = state.rules.current();
    let Some(rule) = set.rule(&id) else {
        return Err(ApiError::NotFound {
            code: "rule_not_found",
            message: format!("no rule '{id}' in the set in force"),
        });
    };
    let since = since(&q, &state);
    let stats = stats(&state, since).await?;
    let mut described = describe(rule, stats.get(&rule.id));
    described["source"] = json!(set.texts.get(&rule.file));
    described["since"] = json!(since);
    described["versions"] = json!(versions(&state, &id).await?);
    Ok(Json(described))
}

/// How many stored rule sets `versions` looks through.
const VERSIONS_SEARCHED: u32 = 50;

/// The versions rule `id` had in the rule sets of this folder that went into force, newest
/// first: `{version, rule_set, last_in_force_at, source}`, one per version (where it last ran).
async fn versions(state: &AppState, id: &str) -> Result<Vec<Value>, ApiError> {
    let origin = state.rules.status().dir.to_string_lossy().into_owned();
    let sets = state.store.rule_sets(&origin, VERSIONS_SEARCHED).await?;
    let mut seen = std::collections::HashSet::new();
    let mut versions = Vec::new();
    for set in sets {
        for text in set.files.values() {
            for (rule, version, source) in crate::rules::compile::written_rules(text) {
                if rule == id && seen.insert(version.clone()) {
                    versions.push(json!({
                        "version": version,
                        "rule_set": set.id,
                        "last_in_force_at": set.loaded_at,
                        "source": source,
                    }));
                }
            }
        }
    }
    Ok(versions)
}
