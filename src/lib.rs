//! Signalbox: a rule-based automation engine for debt-collection and receivables teams.
//!
//! Data flows one way:
//!
//! ```text
//! HTTP request ─▶ api::ingest ─▶ providers (verify, parse) ─▶ normalize::Event
//!              ─▶ store::writer (group commit; 2xx only once committed)
//!              ─▶ processor (leases pending events in order, marks them processed)
//! ```
//!
//! - [`config`]: service configuration (defaults, file, `SIGNALBOX_*`, flags).
//! - [`normalize`]: the canonical [`normalize::Event`] and canonical JSON input.
//! - [`providers`]: the adapter registry, one adapter per platform.
//! - [`store`]: SQLite or PostgreSQL through sqlx; deliveries, events, leases.
//! - [`processor`]: the durable processing stage.
//! - [`api`]: the axum router; [`error::ApiError`] is its only error response.
//! - [`app`]: starts and stops all of it; `main` and the tests both use it.

pub mod actions;
pub mod api;
pub mod app;
pub mod cli;
pub mod clock;
pub mod config;
pub mod error;
pub mod normalize;
pub mod outbox;
pub mod processor;
pub mod providers;
pub mod rules;
pub mod script;
pub mod store;

/// Installs ring as rustls's process-wide crypto provider. Call first thing in `main` and in
/// test setup: with two providers compiled in, rustls cannot pick one by itself.
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}
