//! `POST /v1/backtest` (read): the rule set in force, or posted rule files, run over the
//! stored events of a range on a virtual clock, and compared with what was recorded (the report
//! of `signalbox backtest --json`). `POST /v1/rules/validate` (read): posted rule files checked
//! as `signalbox check` checks a folder, and their inline tests run. Neither stores or sends
//! anything.
//!
//! Both are bounded: the posted files as a rules folder's are, a backtest's range (days and
//! events) and running time, and one backtest and one validation at a time per instance; the
//! work runs on a blocking thread, off the threads that answer requests.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde::de::DeserializeOwned;

use super::AppState;
use crate::error::ApiError;
use crate::rules::RuleSet;
use crate::rules::backtest::BacktestError;

/// The longest range one backtest over the API covers.
pub(super) const MAX_DAYS: i64 = 100;

/// The most events one backtest over the API reads (`signalbox backtest` has no bound).
pub(super) const MAX_EVENTS: usize = 200_000;

/// How long one backtest over the API may run through its events.
pub(super) const MAX_RUN: Duration = Duration::from_secs(300);

/// Seconds a client is told to wait while another backtest or validation runs.
const BUSY_RETRY_AFTER: u64 = 10;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct BacktestRequest {
    /// RFC 3339 or a date: events received from then on.
    from: String,
    /// Until then (excluded); default now.
    #[serde(default)]
    to: Option<String>,
    /// Rules to try instead of the set in force.
    #[serde(default)]
    rules: Option<PostedRules>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct PostedRules {
    files: BTreeMap<String, String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ValidateRequest {
    #[serde(default)]
    files: Option<BTreeMap<String, String>>,
    /// One file's text (validated as `rule.yaml`).
    #[serde(default)]
    yaml: Option<String>,
}

fn bad(code: &'static str, message: impl Into<String>) -> ApiError {
    ApiError::BadRequest {
        code,
        message: message.into(),
    }
}

/// 503 while the slot is taken, with a `Retry-After` fit for work that takes seconds.
fn busy(what: &'static str) -> Response {
    let mut response = ApiError::Overloaded { what }.into_response();
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from(BUSY_RETRY_AFTER));
    response
}

/// A JSON body, whatever its `Content-Type` says (as `curl -d` sends it); a body past
/// `max_body_bytes` is a 413.
fn body<T: DeserializeOwned>(
    state: &AppState,
    body: Result<Bytes, BytesRejection>,
    code: &'static str,
) -> Result<T, ApiError> {
    let bytes = body.map_err(|e| {
        if e.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::PayloadTooLarge {
                limit: state.limits.max_body_bytes,
            }
        } else {
            bad(code, e.body_text())
        }
    })?;
    serde_json::from_slice(&bytes).map_err(|e| bad(code, format!("the body: {e}")))
}

fn time(what: &str, text: &str) -> Result<DateTime<Utc>, ApiError> {
    crate::script::bindings::parse_time(text).ok_or_else(|| {
        bad(
            "invalid_backtest",
            format!("{what}: '{text}' is not a time (RFC 3339, or a date such as 2026-11-01)"),
        )
    })
}

/// Compiles posted files as the rules folder is compiled, with the config's calendars; a
/// problem is a 400 listing them as `signalbox check` prints them.
fn compile_posted(files: &BTreeMap<String, String>, state: &AppState) -> Result<RuleSet, ApiError> {
    let texts = crate::rules::posted::texts(files).map_err(|e| bad("invalid_rules", e))?;
    let calendars = state.rules.current().calendars().clone();
    crate::rules::posted::compile(&texts, &calendars).map_err(|errors| {
        let lines: Vec<String> = errors.iter().map(ToString::to_string).collect();
        bad(
            "invalid_rules",
            format!(
                "{} problem{} in the posted rules:\n{}",
                errors.len(),
                if errors.len() == 1 { "" } else { "s" },
                lines.join("\n")
            ),
        )
    })
}

/// `POST /v1/backtest`: `{from, to?, rules?: {files: {...}}}`.
#[utoipa::path(
    post,
    path = "/backtest",
    operation_id = "backtest_run",
    tag = "rules",
    request_body(content = serde_json::Value, description = "see docs/api.md"),
    responses(
        (status = 200, description = "the answer (docs/api.md)", body = serde_json::Value),
        crate::error::Refusals,
    ),
    security(("token" = ["read"]))
)]
pub(super) async fn run(
    State(state): State<AppState>,
    request: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let request: BacktestRequest = body(&state, request, "invalid_backtest")?;
    let from = time("from", &request.from)?;
    let to = match &request.to {
        Some(t) => time("to", t)?,
        None => state.clock.now(),
    };
    if to <= from {
        return Err(bad("invalid_backtest", "to must be after from"));
    }
    if to - from > chrono::Duration::days(MAX_DAYS) {
        return Err(bad(
            "range_too_long",
            format!(
                "the range covers more than {MAX_DAYS} days: backtest a shorter range over the API, or the whole with `signalbox backtest`"
            ),
        ));
    }
    let Some(permit) = state.limits.start_backtest() else {
        return Ok(busy("a backtest is already running on this instance"));
    };
    let set: Arc<RuleSet> = match &request.rules {
        Some(posted) => Arc::new(compile_posted(&posted.files, &state)?),
        None if !state.rules.in_force() => {
            return Err(bad(
                "no_rules_in_force",
                "no rule set is in force: post the rules to try as rules.files",
            ));
        }
        None => state.rules.current(),
    };
    let recorded =
        crate::rules::backtest::read(&state.store, &set, from, to, Some(MAX_EVENTS), &mut |_| {})
            .await
            .map_err(|e| match e {
                BacktestError::Store(e) => ApiError::from(e),
                too_many @ BacktestError::TooManyEvents { .. } => bad(
                    "too_many_events",
                    format!(
                        "{too_many}: backtest a shorter range over the API, or the whole with `signalbox backtest`"
                    ),
                ),
            })?;
    let report = tokio::task::spawn_blocking(move || {
        let _permit = permit;
        let started = Instant::now();
        let mut out_of_time = false;
        let report = crate::rules::backtest::backtest(&set, recorded, from, to, &mut |_, _| {
            out_of_time = started.elapsed() >= MAX_RUN;
            !out_of_time
        });
        report.map_err(|e| {
            if out_of_time {
                format!(
                    "{e}: a backtest over the API runs at most {} s; backtest a shorter range, or use `signalbox backtest`",
                    MAX_RUN.as_secs()
                )
            } else {
                e
            }
        })
    })
    .await
    .map_err(|e| ApiError::Internal(format!("the backtest stopped: {e}")))?
    .map_err(|e| bad("backtest_failed", e))?;
    Ok(Json(report).into_response())
}

/// `POST /v1/rules/validate`: `{files: {...}}` or `{yaml: "..."}`.
#[utoipa::path(
    post,
    path = "/rules/validate",
    operation_id = "backtest_validate",
    tag = "rules",
    request_body(content = serde_json::Value, description = "see docs/api.md"),
    responses(
        (status = 200, description = "the answer (docs/api.md)", body = serde_json::Value),
        crate::error::Refusals,
    ),
    security(("token" = ["read"]))
)]
pub(super) async fn validate(
    State(state): State<AppState>,
    request: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let request: ValidateRequest = body(&state, request, "invalid_rules")?;
    let files = match (request.files, request.yaml) {
        (Some(files), None) => files,
        (None, Some(yaml)) => BTreeMap::from([("rule.yaml".to_owned(), yaml)]),
        _ => {
            return Err(bad(
                "invalid_rules",
                r#"give either {"files": {"name.yaml": "..."}} or {"yaml": "..."}"#,
            ));
        }
    };
    let texts = crate::rules::posted::texts(&files).map_err(|e| bad("invalid_rules", e))?;
    let Some(permit) = state.limits.start_validation() else {
        return Ok(busy(
            "a rule validation is already running on this instance",
        ));
    };
    let calendars = state.rules.current().calendars().clone();
    let providers = state.providers.clone();
    let validation = tokio::task::spawn_blocking(move || {
        let _permit = permit;
        crate::rules::posted::validate(&texts, &calendars, &providers)
    })
    .await
    .map_err(|e| ApiError::Internal(format!("the validation stopped: {e}")))?
    .map_err(|e| bad("too_many_tests", e))?;
    Ok(Json(validation).into_response())
}
