//! `GET /healthz` (the process answers) and `GET /readyz` (it can do its work).

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde_json::{Value, json};

use super::AppState;

pub(super) async fn healthz() -> Json<Value> {
    Json(json!({ "status": "ok" }))
}

/// Ready when the store answers and rules are loaded. A refused reload (the running rules
/// stay) is shown, but does not make the engine unready.
pub(super) async fn readyz(State(state): State<AppState>) -> (StatusCode, Json<Value>) {
    let store = match state.store.ping().await {
        Ok(()) => Ok(state.store.backend_name()),
        Err(e) => Err(e.to_string()),
    };
    let rules = state.rules.status();
    let ready = store.is_ok();
    let body = json!({
        "status": if ready { "ready" } else { "not_ready" },
        "store": match &store { Ok(backend) => json!({ "ok": true, "backend": backend }), Err(e) => json!({ "ok": false, "error": e }) },
        "rules": rules,
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
