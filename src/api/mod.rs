//! The HTTP API: ingestion endpoints, event reads, health.

mod evaluations;
mod events;
mod health;
mod ingest;

use std::sync::Arc;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use tower_http::catch_panic::CatchPanicLayer;

use crate::providers::Registry;
use crate::store::Store;
use crate::store::writer::Writer;

/// What every handler shares.
#[derive(Clone)]
pub struct AppState {
    pub store: Store,
    pub writer: Writer,
    pub providers: Arc<Registry>,
    pub rules: Arc<crate::rules::live::LiveRules>,
    pub max_body_bytes: usize,
    pub clock: crate::clock::SharedClock,
    pub health: Arc<crate::health::Health>,
    /// How long an event may wait before `/readyz` says processing is stalled.
    pub max_lag: std::time::Duration,
}

pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/v1/events", post(ingest::post_events).get(events::list))
        .route("/v1/events/{id}", get(events::get_one))
        .route("/v1/events/{id}/evaluations", get(events::evaluations))
        .route("/v1/deliveries", get(events::deliveries))
        .route("/v1/unknown-types", get(events::unknown_types))
        .route("/webhooks/{source}", post(ingest::post_webhook))
        .route(
            "/webhooks/{source}/{hint}",
            post(ingest::post_webhook_with_hint),
        )
        .route("/v1/evaluations", get(evaluations::list))
        .route("/v1/rules/status", get(health::rules_status))
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .fallback(not_found)
        .layer(DefaultBodyLimit::max(state.max_body_bytes))
        .layer(CatchPanicLayer::custom(panic_response))
        .with_state(state)
}

async fn not_found() -> crate::error::ApiError {
    crate::error::ApiError::NotFound {
        code: "not_found",
        message: "no such endpoint".into(),
    }
}

/// A panic in a handler is a bug: log it, answer a plain 500, keep serving.
fn panic_response(_: Box<dyn std::any::Any + Send + 'static>) -> Response {
    tracing::error!("request handler panicked");
    (
        StatusCode::INTERNAL_SERVER_ERROR,
        axum::Json(serde_json::json!({"code": "internal", "message": "internal error"})),
    )
        .into_response()
}
