//! The token check in front of every management route: 401 without a known token, 403
//! without the route's role. Requests that change something are recorded with their token.

use axum::extract::{Request, State};
use axum::http::{Method, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::AppState;
use crate::auth::{Caller, Denied, Role};
use crate::error::ApiError;
use crate::store::TokenUse;

/// The state of one route's check: the engine's, and the role the route needs.
#[derive(Clone)]
pub(super) struct Gate {
    pub state: AppState,
    pub role: Role,
}

/// Lets the request through when its token has the gate's role, with the [`Caller`] in its
/// extensions (handlers that post events read it).
pub(super) async fn check(State(gate): State<Gate>, mut request: Request, next: Next) -> Response {
    let tokens = &gate.state.tokens;
    let authorization = request
        .headers()
        .get(header::AUTHORIZATION)
        .map(|v| v.as_bytes());
    let caller = match tokens.authorize(authorization, gate.role).await {
        Ok(caller) => caller,
        Err(Denied::Unauthenticated(why)) => {
            metrics::counter!("signalbox_api_refused_total", "reason" => "unauthenticated")
                .increment(1);
            return ApiError::Unauthenticated(why.into()).into_response();
        }
        Err(Denied::Forbidden(why)) => {
            metrics::counter!("signalbox_api_refused_total", "reason" => "forbidden").increment(1);
            let path = request
                .extensions()
                .get::<axum::extract::OriginalUri>()
                .map_or_else(|| request.uri().path(), |uri| uri.path());
            tracing::info!(%path, reason = %why, "request refused: role");
            return ApiError::Forbidden(why).into_response();
        }
    };
    let Caller::Token(token) = &caller else {
        request.extensions_mut().insert(caller);
        return next.run(request).await;
    };
    let token = token.clone();
    // The path as sent (`/api/v1/...`), not as the nested router sees it.
    let path = request
        .extensions()
        .get::<axum::extract::OriginalUri>()
        .map_or_else(|| request.uri().path(), |uri| uri.path())
        .to_owned();
    let method = request.method().clone();
    request.extensions_mut().insert(caller);
    let response = next.run(request).await;
    let now = gate.state.clock.now();
    if token.origin == "store" && tokens.due_touch(&token.name, now) {
        let store = gate.state.store.clone();
        let name = token.name.clone();
        // Off the request's path: a slow store does not slow the answer.
        tokio::spawn(async move {
            if let Err(e) = store.touch_token(&name, now).await {
                tracing::debug!(error = %e, "cannot note a token's use");
            }
        });
    }
    let status = response.status().as_u16();
    let changes = !matches!(method, Method::GET | Method::HEAD | Method::OPTIONS);
    if changes && gate.role != Role::Ingest {
        let used = TokenUse {
            at: now,
            token: token.name.clone(),
            method: method.to_string(),
            path: path.clone(),
            status,
        };
        if let Err(e) = gate.state.store.record_token_use(&used).await {
            tracing::warn!(error = %e, token = %token.name, %path, "cannot record a token's use");
        }
        tracing::info!(token = %token.name, %method, %path, status, "token used");
    } else {
        tracing::debug!(token = %token.name, %method, %path, status, "token used");
    }
    response
}
