//! The HTTP API: ingestion endpoints, event reads, health; the server that runs it
//! ([`serve`]) and its bounds ([`limits`]).

mod auth;
mod backtest;
mod checks;
mod evaluations;
mod events;
mod health;
mod ingest;
pub mod limits;
pub mod rejections;
mod rules;
mod serve;
pub mod timeline;
mod tokens;

use std::sync::Arc;

use axum::Router;
use axum::error_handling::HandleErrorLayer;
use axum::extract::DefaultBodyLimit;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use tower::ServiceBuilder;
use tower::limit::GlobalConcurrencyLimitLayer;
use tower::load_shed::LoadShedLayer;
use tower_http::catch_panic::CatchPanicLayer;

pub use limits::{Limits, ServerConfig};
pub use serve::serve;

use crate::auth::{Role, Tokens};
use crate::error::ApiError;
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
    pub limits: Limits,
    pub clock: crate::clock::SharedClock,
    pub health: Arc<crate::health::Health>,
    /// How long an event may wait before `/readyz` says processing is stalled.
    pub max_lag: std::time::Duration,
    /// Which refused deliveries are stored (`retention.rejected`).
    pub rejections: Arc<rejections::Rejections>,
    pub tokens: Arc<Tokens>,
}

/// The management listener: the whole API, each route behind the token check of its role.
/// Platform webhooks and health answer without a token (webhooks are signed).
pub fn router(state: AppState) -> Router {
    let gate = |role: Role| {
        axum::middleware::from_fn_with_state(
            auth::Gate {
                state: state.clone(),
                role,
            },
            auth::check,
        )
    };
    // One router per role, its check applied once; a path may be in several (`/v1/events`:
    // POST to ingest, GET to read), each method behind its own role.
    let ingest = Router::new()
        .route("/v1/events", post(ingest::post_events))
        .route("/webhooks/canonical", post(ingest::post_events))
        .route_layer(gate(Role::Ingest));
    let read = Router::new()
        .route("/v1/events", get(events::list))
        .route("/v1/events/{id}", get(events::get_one))
        .route("/v1/events/{id}/evaluations", get(events::evaluations))
        .route("/v1/events/{id}/explain", get(events::explain))
        .route("/v1/deliveries", get(events::deliveries))
        .route("/v1/unknown-types", get(events::unknown_types))
        .route("/v1/evaluations", get(evaluations::list))
        .route("/v1/rules/status", get(health::rules_status))
        .route("/v1/rules", get(rules::list))
        .route("/v1/rules/{id}", get(rules::get_one))
        .route("/v1/rules/validate", post(backtest::validate))
        .route("/v1/checks", get(checks::list_checks))
        .route("/v1/subjects/{key}/{value}/timeline", get(timeline::get))
        .route("/v1/actions", get(checks::list_actions))
        .route("/metrics", get(metrics))
        .route_layer(gate(Role::Read));
    let operate = Router::new()
        .route("/v1/events/{id}/retry", post(events::retry))
        .route("/v1/checks/{id}/cancel", post(checks::cancel_check))
        .route("/v1/actions/{id}/cancel", post(checks::cancel_action))
        .route("/v1/backtest", post(backtest::run))
        .route_layer(gate(Role::Operate));
    let admin = Router::new()
        .route("/v1/tokens", get(tokens::list).post(tokens::create))
        .route("/v1/tokens/{name}", delete(tokens::revoke))
        .route("/v1/token-uses", get(tokens::uses))
        .route_layer(gate(Role::Admin));
    let routes = ingest.merge(read).merge(operate).merge(admin);
    finish(with_webhooks(routes), state)
}

/// The public listener: only the platforms' signed webhooks, and health.
pub fn public_router(state: AppState) -> Router {
    finish(with_webhooks(Router::new()), state)
}

/// What both listeners serve without a token: the platforms' webhooks (each verified by its
/// signature) and readiness.
fn with_webhooks(routes: Router<AppState>) -> Router<AppState> {
    routes
        .route("/webhooks/{source}", post(ingest::post_webhook))
        .route(
            "/webhooks/{source}/{hint}",
            post(ingest::post_webhook_with_hint),
        )
        .route("/readyz", get(health::readyz))
}

/// The bounds and fallbacks every listener has.
fn finish(routes: Router<AppState>, state: AppState) -> Router {
    // At most `max_requests` handled at once, across all routes; one more is answered 503 at
    // once (load shedding) instead of waiting for a slot.
    let shed = ServiceBuilder::new()
        .layer(HandleErrorLayer::new(|_: tower::BoxError| async {
            ApiError::Overloaded {
                what: "too many requests in flight",
            }
        }))
        .layer(LoadShedLayer::new())
        .layer(GlobalConcurrencyLimitLayer::new(state.limits.max_requests));
    routes
        .fallback(not_found)
        .layer(shed)
        // Added after the limit, so it is outside it: liveness answers while saturated.
        .route("/healthz", get(health::healthz))
        .layer(DefaultBodyLimit::max(state.limits.max_body_bytes))
        .layer(CatchPanicLayer::custom(panic_response))
        .with_state(state)
}

/// Prometheus text exposition.
async fn metrics(axum::extract::State(state): axum::extract::State<AppState>) -> impl IntoResponse {
    crate::metrics::sample(&state.store, state.clock.now()).await;
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        crate::metrics::render(),
    )
}

async fn not_found() -> ApiError {
    ApiError::NotFound {
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
