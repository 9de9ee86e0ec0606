//! Integration tests: one binary. PostgreSQL cases run when TEST_POSTGRES_URL is set.

mod crash;
mod delivery;
mod examples;
mod hostile;
mod ingest;
mod payloads;
mod providers;
mod rules;
mod store_suite;
mod support;
mod webhooks;
