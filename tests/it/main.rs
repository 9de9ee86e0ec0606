//! Integration tests: one binary. PostgreSQL cases run when TEST_POSTGRES_URL is set.

mod auth;
mod backtest;
mod bounds;
mod cli;
mod console;
mod crash;
mod delivery;
mod disk_full;
mod examples;
mod hostile;
mod ingest;
mod limits;
mod metrics;
mod minimisation;
mod operations;
mod outgoing;
mod payloads;
mod providers;
mod rules;
mod store_suite;
mod support;
mod time;
mod timeline;
mod webhooks;
