//! `GET /healthz` (the process answers) and `GET /readyz` (it can do its work).

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde_json::{Value, json};

use super::AppState;

pub async fn healthz() -> Json<Value> {
    Json(json!({ "status": "ok" }))
}

/// Ready when the store answers and the rules folder can be read.
pub async fn readyz(State(state): State<AppState>) -> (StatusCode, Json<Value>) {
    let store = match state.store.ping().await {
        Ok(()) => Ok(state.store.backend_name()),
        Err(e) => Err(e.to_string()),
    };
    let rules = crate::rules::scan(&state.rules_dir);
    let ready = store.is_ok() && rules.is_ok();
    let body = json!({
        "status": if ready { "ready" } else { "not_ready" },
        "store": match &store { Ok(backend) => json!({ "ok": true, "backend": backend }), Err(e) => json!({ "ok": false, "error": e }) },
        "rules": match &rules { Ok(files) => json!({ "ok": true, "dir": state.rules_dir, "files": files.len() }), Err(e) => json!({ "ok": false, "dir": state.rules_dir, "error": e }) },
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
