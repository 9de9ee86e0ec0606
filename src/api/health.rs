//! `GET /healthz` (the process answers), `GET /readyz` (it can do its work), and
//! `GET /v1/rules/status` (the rule set in force and the last refused reload, in detail).

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde_json::{Value, json};

use super::AppState;

pub(super) async fn healthz() -> Json<Value> {
    Json(json!({ "status": "ok" }))
}

/// Ready when the store answers and takes writes, processing keeps up (no event has waited
/// longer than `processing.max_lag`), every background loop runs, and rules are in force.
/// The body names each check, with no paths or rule errors (it may be public).
pub(super) async fn readyz(State(state): State<AppState>) -> (StatusCode, Json<Value>) {
    let now = state.clock.now();
    let store = match state.store.ping().await {
        Err(_) => Err("unreachable"),
        // A write failed since the last success: only a write tells whether it would now.
        // One probe at a time: callers meanwhile hear what is known (the last write failed).
        Ok(()) if state.health.write_failure().is_some() => {
            if state.health.start_probe() {
                let probed = state.store.probe_write().await;
                state.health.end_probe();
                match probed {
                    Ok(()) => {
                        state.health.wrote(Ok(()));
                        Ok(())
                    }
                    Err(_) => Err("cannot write"),
                }
            } else {
                Err("cannot write")
            }
        }
        Ok(()) => Ok(()),
    };
    let loops = state.health.loops();
    let processor_running = loops.get("processor").is_some_and(|l| l.running);
    let lag = match store {
        Ok(()) => state
            .store
            .oldest_due_pending(now)
            .await
            .ok()
            .flatten()
            .map(|oldest| (now - oldest).to_std().unwrap_or_default()),
        Err(_) => None,
    };
    let rules = state.rules.status();
    let processing = if !processor_running {
        Err("the processor is not running".to_owned())
    } else if !rules.in_force {
        // Evaluation waits for fixed rules on purpose: that is degraded (below), not stalled,
        // so intake keeps its traffic.
        Ok(())
    } else {
        match lag {
            Some(lag) if lag > state.max_lag => Err(format!(
                "stalled: the oldest pending event has waited {} s (processing.max_lag is {} s)",
                lag.as_secs(),
                state.max_lag.as_secs()
            )),
            _ => Ok(()),
        }
    };
    let loops_ok = loops.values().all(|l| l.running);
    let ready = store.is_ok() && processing.is_ok() && loops_ok;
    // Broken rule files at start: intake works (ready), but the body says it is degraded.
    let rules_problem = if !rules.in_force {
        Some(
            "no rule set in force: the rules folder has problems; events are stored and wait for evaluation",
        )
    } else if rules.fallback.is_some() {
        Some("running the last good rule set: the rules folder has problems")
    } else {
        None
    };
    let status = match (ready, rules_problem) {
        (false, _) => "not_ready",
        (true, Some(_)) => "degraded",
        (true, None) => "ready",
    };
    let body = json!({
        "status": status,
        "store": match store {
            Ok(()) => json!({ "ok": true, "backend": state.store.backend_name() }),
            Err(problem) => json!({ "ok": false, "backend": state.store.backend_name(), "problem": problem }),
        },
        "processing": match &processing {
            Ok(()) => json!({ "ok": true, "lag_seconds": lag.map_or(0, |l| l.as_secs()) }),
            Err(problem) => json!({ "ok": false, "problem": problem }),
        },
        "loops": loops,
        "rules": match rules_problem {
            None => json!({ "ok": true, "rules": rules.rules, "reload_refused": rules.rejected_reload.is_some() }),
            Some(problem) => json!({ "ok": false, "rules": rules.rules, "problem": problem, "reload_refused": rules.rejected_reload.is_some() }),
        },
    });
    (
        if ready {
            StatusCode::OK
        } else {
            StatusCode::SERVICE_UNAVAILABLE
        },
        Json(body),
    )
}

/// The rule set in force: folder, counts, when it loaded, and the problems of the last
/// refused reload (with their files and lines).
#[utoipa::path(
    get,
    path = "/rules/status",
    operation_id = "health_rules_status",
    tag = "rules",
    responses(
        (status = 200, description = "the answer (docs/api.md)", body = serde_json::Value),
        crate::error::Refusals,
    ),
    security(("token" = ["read"]))
)]
pub(super) async fn rules_status(State(state): State<AppState>) -> Json<Value> {
    Json(json!(state.rules.status()))
}
