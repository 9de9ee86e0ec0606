//! Signalbox: a rule-based automation engine for debt-collection and receivables teams.
//!
//! The pipeline, one way:
//!
//! ```text
//! HTTP request ─▶ api::ingest ─▶ providers (verify the signature, parse) ─▶ normalize::Event
//!   ─▶ store::writer (group commit; 2xx only once committed)
//!   ─▶ processor (leases pending events in order; evaluates them on a blocking thread)
//!        └▶ rules (trigger, `when`, `script`, templates) ─▶ planned actions
//!   ─▶ store (evaluations and outbox rows in the event's completion transaction)
//!   ─▶ outbox::worker (leases due actions) ─▶ actions::<kind> executor ─▶ the target
//!   ─▶ store (every attempt recorded; retries scheduled; dead after the last)
//! ```
//!
//! Modules, from the bottom up (each imports only those above it in this list):
//!
//! - [`clock`]: the only source of the time of day (`SystemClock`, `ManualClock` for tests).
//! - [`calendar`]: business-day calendars (built-in national holidays plus `calendars:`),
//!   quiet hours, local wall-clock times across clock changes, delays (`3 business days`).
//! - [`schedule`]: crontab lines with crontab's meaning, in a time zone, on business days;
//!   the next tick, and the tick due after downtime.
//! - [`health`]: what the stages report for `/readyz` (heartbeats, write failures, loops).
//! - [`metrics`]: the Prometheus recorder behind `/metrics`; stages count with `metrics::*!`.
//! - [`config`]: loading the config file, `${VAR}` interpolation, secrets, the duration
//!   convention; each subsystem's settings live next to their owner and are gathered here.
//! - [`store`]: SQLite or PostgreSQL through sqlx. Takes its own records (`NewDelivery`,
//!   `NewEvaluation`, `NewAction`, `NewAttempt`) and closed status words; imports no stage.
//! - [`normalize`]: the canonical [`normalize::Event`], canonical JSON input, field helpers.
//! - [`providers`]: one file per platform (`Platform`: name, signature scheme, normalize
//!   function, catalogue part) and the one list `PLATFORMS`.
//! - [`script`]: the Rhai engine and its host functions; a `Session` carries what they read.
//! - [`actions`]: one file per action kind (parameters, check, target, settings, stored form,
//!   retry policy, executor) and the one list `action_kinds!`; `Outcome` of an attempt.
//! - [`rules`]: the rule format, compiler, triggers (`rules::trigger`), evaluation, inline
//!   tests and hot reload.
//! - [`outbox`]: the dispatcher: leases, per-target limits, recording, retry scheduling.
//! - [`processor`]: the durable processing stage between stored events and the outbox.
//! - [`replay`]: stored events evaluated again against the rules in force, dry or planning
//!   through the processing keys.
//! - [`auth`]: API tokens (config and stored, hashed) and their roles.
//! - [`console`]: the web console's files (HTML, CSS, JavaScript modules), embedded and served
//!   at `/console/`; in the browser they read and act only through the API.
//! - [`api`]: the axum router; [`error::ApiError`] is its only error response. `api::serve` is
//!   the accept loop over hyper with the `server:` bounds (`api::limits`): timeouts,
//!   connection and request limits, the ingestion memory budget.
//! - [`app`]: starts and stops all of it; `main` and the tests both use it.
//! - [`cli`]: the `signalbox` subcommands.
//!
//! Where a new kind of something goes: a platform is `providers/<name>.rs` plus a line in
//! `PLATFORMS`; an action kind is `actions/<kind>.rs` plus a line in `action_kinds!`; a trigger
//! is a variant of `rules::trigger::Trigger`.

pub mod actions;
pub mod api;
pub mod app;
pub mod auth;
pub mod calendar;
pub mod cli;
pub mod clock;
pub mod config;
pub mod console;
pub mod error;
pub mod handoff;
pub mod health;
pub mod metrics;
pub mod normalize;
pub mod outbox;
pub mod processor;
pub mod providers;
pub mod replay;
pub mod rules;
pub mod schedule;
pub mod script;
pub mod store;
pub mod timer;

/// Installs ring as rustls's process-wide crypto provider. Call first thing in `main` and in
/// test setup: with two providers compiled in, rustls cannot pick one by itself.
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}
