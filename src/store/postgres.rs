//! PostgreSQL: the production store, shared by several engine instances.

use std::str::FromStr;

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

use super::StoreConfig;
use super::StoreError;

pub(super) async fn connect(url: &str, config: &StoreConfig) -> Result<sqlx::PgPool, StoreError> {
    let open_error = |source| StoreError::Open {
        url: super::redact_url(url),
        source,
    };
    let options = PgConnectOptions::from_str(url).map_err(open_error)?;
    PgPoolOptions::new()
        .max_connections(config.max_connections)
        .acquire_timeout(config.acquire_timeout)
        .connect_with(options)
        .await
        .map_err(open_error)
}

/// Takes the oldest pending events not leased by a live instance; rows another instance is
/// taking at the same moment are skipped rather than waited for.
pub(super) const CLAIM_PENDING: &str = "
    UPDATE events SET lease_owner = $1, lease_until_ms = $2, attempts = attempts + 1
    WHERE id IN (
        SELECT id FROM events
        WHERE state = 'pending' AND (lease_until_ms IS NULL OR lease_until_ms < $3)
          AND (next_attempt_ms IS NULL OR next_attempt_ms <= $3) AND attempts < $5
        ORDER BY id LIMIT $4
        FOR UPDATE SKIP LOCKED
    )
    RETURNING *";

/// Marks the listed events (a JSON array of ids) processed, if `owner` still leases them.
pub(super) const COMPLETE: &str = "
    UPDATE events SET state = 'processed', processed_at = $1, lease_owner = NULL, lease_until_ms = NULL,
        next_attempt_ms = NULL, last_error = NULL, rule_set_id = $4
    WHERE state = 'pending' AND lease_owner = $2 AND id IN (SELECT jsonb_array_elements_text($3::jsonb))
    RETURNING id";

/// Takes the earliest due pending actions of the listed kinds (a JSON array).
pub(super) const CLAIM_DUE_ACTIONS: &str = "
    UPDATE actions SET status = 'in_flight', lease_owner = $1, lease_until_ms = $2
    WHERE id IN (
        SELECT id FROM actions
        WHERE status = 'pending' AND next_attempt_ms <= $3 AND kind IN (SELECT jsonb_array_elements_text($4::jsonb))
        ORDER BY next_attempt_ms LIMIT $5
        FOR UPDATE SKIP LOCKED
    )
    RETURNING *";

/// Retakes actions whose instance's lease expired (it died while delivering).
pub(super) const RETAKE_EXPIRED_ACTIONS: &str = "
    UPDATE actions SET lease_owner = $1, lease_until_ms = $2
    WHERE id IN (
        SELECT id FROM actions
        WHERE status = 'in_flight' AND lease_until_ms < $3 AND kind IN (SELECT jsonb_array_elements_text($4::jsonb))
        ORDER BY lease_until_ms LIMIT $5
        FOR UPDATE SKIP LOCKED
    )
    RETURNING *";

/// Row locks for a batch a pruner takes: rows another instance is pruning are skipped.
pub(super) const SKIP_LOCKED: &str = " FOR UPDATE SKIP LOCKED";

/// A subject reference's value in an event (`claim`, `account`, `debtor`), written exactly as
/// the history indexes of migration 0009 are, so that queries use them.
pub(super) fn subject_value(key: &str) -> Option<&'static str> {
    match key {
        "claim" => Some("(subject->>'claim')"),
        "account" => Some("(subject->>'account')"),
        "debtor" => Some("(subject->>'debtor')"),
        _ => None,
    }
}

/// Whether the JSON array in column `awaits` holds the text bound between these two parts.
pub(super) const AWAITS_HAS: (&str, &str) = ("awaits @> jsonb_build_array(", "::text)");

/// What an action is addressed to besides its target: a webhook's URL, an email's
/// recipients (`to` and `cc`, as JSON text), for `GET /v1/actions?target=`.
pub(super) const ACTION_ADDRESS: &str = "COALESCE(payload->'action'->>'url', '') || ' ' || COALESCE(payload->'action'->>'to', '') || ' ' || COALESCE(payload->'action'->>'cc', '')";
