//! `GET /metrics`: the Prometheus text, open unless `metrics.token` is set (as Prometheus
//! scrapes without credentials by default), with the store's gauges sampled at each scrape;
//! and the middleware that times every request by its route template.

use std::borrow::Cow;
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::{Method, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use super::AppState;
use crate::auth::{Caller, Denied, Role};
use crate::config::Secret;
use crate::error::ApiError;

/// Who may read `GET /metrics` (`metrics:` in the config file).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MetricsConfig {
    /// A token `GET /metrics` then asks for, as `Authorization: Bearer <token>` (a token with
    /// the read role works too), given as `${VAR}`. Default none: `/metrics` answers without
    /// a token, as Prometheus scrapes by default.
    pub token: Option<Secret>,
}

impl MetricsConfig {
    /// Problems, as `(key, message)`.
    pub fn problems(&self) -> Vec<(String, String)> {
        match &self.token {
            Some(token) if token.expose().len() < 24 => vec![(
                "metrics.token".into(),
                "is shorter than 24 characters: use `signalbox tokens generate` for a strong one"
                    .into(),
            )],
            _ => Vec::new(),
        }
    }

    /// The SHA-256 of the token, which is all the engine keeps of it.
    pub fn token_hash(&self) -> Option<[u8; 32]> {
        self.token.as_ref().map(|t| crate::auth::hash(t.expose()))
    }
}

/// Lets a scrape through when no metrics token is set; else only with that token or a token
/// with the read role.
pub(super) async fn gate(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let Some(expected) = state.metrics_token else {
        return next.run(request).await;
    };
    let authorization = request
        .headers()
        .get(header::AUTHORIZATION)
        .map(|v| v.as_bytes());
    if authorization.is_some_and(|value| crate::auth::presents(value, &expected)) {
        return next.run(request).await;
    }
    match state.tokens.authorize(authorization, Role::Read).await {
        Ok(Caller::Token(_)) => next.run(request).await,
        // The API is open (no tokens), but the metrics are not.
        Ok(Caller::Open) | Err(Denied::Unauthenticated(_)) => {
            metrics::counter!("signalbox_api_refused_total", "reason" => "unauthenticated")
                .increment(1);
            ApiError::Unauthenticated(
                "/metrics needs a token: send `Authorization: Bearer <token>` with the metrics token (`metrics.token`) or a token with the read role".into(),
            )
            .into_response()
        }
        Err(Denied::Forbidden(why)) => {
            metrics::counter!("signalbox_api_refused_total", "reason" => "forbidden").increment(1);
            ApiError::Forbidden(why).into_response()
        }
    }
}

/// One scrape at a time: the gauges read from the store are set, then rendered, under this
/// lock, so that each scrape shows its own engine's values (several engines share the one
/// recorder in a test process).
static SCRAPE: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Prometheus text exposition.
pub(super) async fn scrape(State(state): State<AppState>) -> impl IntoResponse {
    let text = {
        let _one = SCRAPE.lock().await;
        sample(&state).await;
        crate::metrics::render()
    };
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        text,
    )
}

/// Sets the gauges read at each scrape: from the store, the outbox's pending actions and how
/// long the oldest due one has waited, how far processing lags, events parked as failed and
/// checks pending; from the rule set, how many rules run and whether they are degraded.
async fn sample(state: &AppState) {
    let now = state.clock.now();
    let store = &state.store;
    let seconds_since =
        |t: chrono::DateTime<chrono::Utc>| (now - t).num_milliseconds().max(0) as f64 / 1000.0;
    match store.outbox_depth(now).await {
        Ok((pending, oldest_due)) => {
            metrics::gauge!("signalbox_outbox_pending").set(pending as f64);
            metrics::gauge!("signalbox_outbox_oldest_due_seconds")
                .set(oldest_due.map_or(0.0, seconds_since));
        }
        Err(e) => tracing::warn!(error = %e, "cannot read the outbox for /metrics"),
    }
    match store.oldest_due_pending(now).await {
        Ok(oldest) => metrics::gauge!("signalbox_processing_lag_seconds")
            .set(oldest.map_or(0.0, seconds_since)),
        Err(e) => tracing::warn!(error = %e, "cannot read the processing lag for /metrics"),
    }
    match store.parked_and_waiting().await {
        Ok((parked, checks)) => {
            metrics::gauge!("signalbox_events_parked").set(parked as f64);
            metrics::gauge!("signalbox_checks_pending").set(checks as f64);
        }
        Err(e) => tracing::warn!(error = %e, "cannot count parked events for /metrics"),
    }
    let rules = state.rules.status();
    let flag = |on: bool| if on { 1.0 } else { 0.0 };
    metrics::gauge!("signalbox_rules_in_force").set(rules.rules as f64);
    metrics::gauge!("signalbox_rules_degraded")
        .set(flag(rules.fallback.is_some() || !rules.in_force));
    metrics::gauge!("signalbox_rules_reload_refused").set(flag(rules.rejected_reload.is_some()));
}

/// Times each request into `signalbox_http_request_duration_seconds`, until its response
/// head is ready, labelled by the route template it matched (`/v1/events/{id}`, so that ids
/// never become labels; `unmatched` for a path no route has), its method (one of the
/// standard ones, or `other`) and its status class (`2xx`, ...).
pub(super) async fn track(request: Request, next: Next) -> Response {
    let route = match request.extensions().get::<MatchedPath>() {
        Some(path) => Cow::Owned(path.as_str().to_owned()),
        None => Cow::Borrowed("unmatched"),
    };
    let method = method_label(request.method());
    let started = Instant::now();
    let response = next.run(request).await;
    let status = match response.status().as_u16() {
        100..=199 => "1xx",
        200..=299 => "2xx",
        300..=399 => "3xx",
        400..=499 => "4xx",
        _ => "5xx",
    };
    metrics::histogram!(
        crate::metrics::HTTP_REQUEST_DURATION,
        "route" => route,
        "method" => method,
        "status" => status
    )
    .record(started.elapsed().as_secs_f64());
    response
}

/// A method as a label: the standard ones by name, any other (a client may send any token)
/// as `other`.
fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::PATCH => "PATCH",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        _ => "other",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn methods_outside_the_standard_ones_share_one_label() {
        assert_eq!(method_label(&Method::POST), "POST");
        assert_eq!(method_label(&Method::from_bytes(b"BREW").unwrap()), "other");
    }

    #[test]
    fn a_short_metrics_token_is_refused() {
        let config = |token: &str| MetricsConfig {
            token: Some(Secret::new(token.into())),
        };
        assert_eq!(config("short").problems()[0].0, "metrics.token");
        assert!(config(&"x".repeat(24)).problems().is_empty());
        assert!(MetricsConfig::default().problems().is_empty());
    }
}
