//! The HTTP API: ingestion endpoints, event reads, health; the server that runs it
//! ([`serve`]) and its bounds ([`limits`]).

mod actions;
mod auth;
mod backtest;
mod checks;
mod evaluations;
mod events;
mod health;
mod ingest;
pub mod limits;
mod metrics;
pub mod rejections;
mod replay;
mod rules;
mod serve;
mod stats;
pub mod timeline;
mod tokens;
mod whoami;

use std::sync::Arc;

use axum::Router;
use axum::error_handling::HandleErrorLayer;
use axum::extract::DefaultBodyLimit;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use tower::ServiceBuilder;
use tower::limit::GlobalConcurrencyLimitLayer;
use tower::load_shed::LoadShedLayer;
use tower_http::catch_panic::CatchPanicLayer;
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub use limits::{Limits, ServerConfig};
pub use metrics::MetricsConfig;
pub use serve::serve;

use crate::auth::{Role, Tokens};
use crate::error::ApiError;
use crate::providers::Registry;
use crate::store::Store;
use crate::store::writer::Writer;

/// The OpenAPI document's frame; the paths come from the handlers (`#[utoipa::path]`).
#[derive(OpenApi)]
#[openapi(
    info(
        title = "Signalbox management API",
        description = "Events, rules, checks, actions and tokens of a Signalbox engine (docs/api.md). \
            Every route needs `Authorization: Bearer <token>` with the role its security names."
    ),
    servers((url = "/api/v1")),
    modifiers(&BearerToken),
    tags(
        (name = "events", description = "stored events, deliveries, explain, retry"),
        (name = "rules", description = "rules in force, their statistics and evaluations"),
        (name = "subjects", description = "a claim's (account's, debtor's) timeline"),
        (name = "checks", description = "pending checks of `unless:` rules"),
        (name = "actions", description = "planned actions and their attempts"),
        (name = "tokens", description = "API tokens (admin)"),
    )
)]
struct ApiDoc;

/// The `token` security scheme: a bearer token; each route's scopes name the role it needs.
struct BearerToken;

impl utoipa::Modify for BearerToken {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
        openapi
            .components
            .get_or_insert_with(Default::default)
            .add_security_scheme(
                "token",
                SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
            );
    }
}

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
    /// The SHA-256 of `metrics.token`: `/metrics` then asks for it (or a read token).
    pub metrics_token: Option<[u8; 32]>,
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
    // One router per role, its check applied once; a path may be in several (`/events`:
    // POST to ingest, GET to read), each method behind its own role. Each route comes from
    // its handler's `#[utoipa::path]`, which also documents it in the OpenAPI document.
    let ingest = OpenApiRouter::new()
        .routes(routes!(ingest::post_events))
        .route_layer(gate(Role::Ingest));
    let read = OpenApiRouter::new()
        .routes(routes!(events::list))
        .routes(routes!(events::get_one))
        .routes(routes!(events::evaluations))
        .routes(routes!(events::explain))
        .routes(routes!(events::deliveries))
        .routes(routes!(events::unknown_types))
        .routes(routes!(evaluations::list))
        .routes(routes!(health::rules_status))
        .routes(routes!(rules::list))
        .routes(routes!(rules::get_one))
        .routes(routes!(backtest::validate))
        .routes(routes!(backtest::run))
        .routes(routes!(checks::list_checks))
        .routes(routes!(timeline::get))
        .routes(routes!(actions::list))
        .routes(routes!(actions::get_one))
        .routes(routes!(stats::hourly))
        .routes(routes!(stats::queues))
        .route_layer(gate(Role::Read));
    let operate = OpenApiRouter::new()
        .routes(routes!(events::retry))
        .routes(routes!(checks::cancel_check))
        .routes(routes!(actions::cancel))
        .routes(routes!(actions::retry))
        .routes(routes!(actions::retry_many))
        .routes(routes!(replay::replay))
        .route_layer(gate(Role::Operate));
    let admin = OpenApiRouter::new()
        .routes(routes!(tokens::list, tokens::create))
        .routes(routes!(tokens::revoke))
        .routes(routes!(tokens::uses))
        .route_layer(gate(Role::Admin));
    // Any known token (it checks for itself).
    let any = OpenApiRouter::new().routes(routes!(whoami::get));
    let (api, document) = OpenApiRouter::with_openapi(ApiDoc::openapi())
        .merge(any)
        .merge(ingest)
        .merge(read)
        .merge(operate)
        .merge(admin)
        .split_for_parts();
    let document = Arc::new(document);
    // The API is served under `/api/v1` and, as it first was, `/v1`.
    let routes = Router::new()
        .nest("/api/v1", api.clone())
        .nest("/v1", api)
        .route(
            "/api/v1/openapi.json",
            get(move || {
                let document = document.clone();
                async move { axum::Json(document) }
            }),
        )
        .route(
            "/webhooks/canonical",
            post(ingest::post_events).route_layer(gate(Role::Ingest)),
        )
        // Open unless `metrics.token` is set, as Prometheus scrapes.
        .route(
            "/metrics",
            get(metrics::scrape).route_layer(axum::middleware::from_fn_with_state(
                state.clone(),
                metrics::gate,
            )),
        )
        // The console's files (no token: the data they show comes from the API, with the
        // token).
        .merge(crate::console::routes());
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
        // No answer is read as anything but its content type (a JSON body is never a page).
        .layer(axum::middleware::map_response(nosniff))
        // Outermost: every answer is timed, refusals and panics included.
        .layer(axum::middleware::from_fn(metrics::track))
        .with_state(state)
}

async fn nosniff(mut response: Response) -> Response {
    response.headers_mut().insert(
        axum::http::header::X_CONTENT_TYPE_OPTIONS,
        axum::http::HeaderValue::from_static("nosniff"),
    );
    response
}

/// A list's `limit=`: 50 by default, 1 to 1000.
fn page_limit(limit: Option<u32>) -> u32 {
    limit.unwrap_or(50).clamp(1, 1000)
}

/// A list's `before=` cursor: an empty one is no cursor (the first page), not "before nothing".
fn cursor(before: Option<String>) -> Option<String> {
    before.filter(|b| !b.is_empty())
}

/// A query word (`status=dead`) as one of the words `W` has, or a 400 naming the parameter.
fn query_word<W: std::str::FromStr<Err = String>>(
    name: &str,
    value: Option<&str>,
) -> Result<Option<W>, ApiError> {
    value
        .map(str::parse::<W>)
        .transpose()
        .map_err(|e| ApiError::BadRequest {
            code: "invalid_query",
            message: format!("{name}: {e}"),
        })
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
