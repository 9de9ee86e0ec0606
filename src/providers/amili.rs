//! Amili: `{"id", "type" | "eventType", "source", "timeStamp", "data"}` with headers
//! `X-Amili-Event`, `IdempotencyKey`, `X-Amili-Request-Id` and `X-Webhook-Signature`.
//!
//! The signature covers the body only. The dedupe key is therefore the body's `id` (else the
//! body's hash), never the `IdempotencyKey` header: a captured delivery replayed with a new
//! key is the same event, a duplicate.

use serde_json::Value;

use super::{Inbound, Platform, ProviderError, Scheme, content_id, header_text, invalid};
use crate::normalize::catalogue::{Entry, e};
use crate::normalize::fields::{Normalized, first_text, only_text, text, time};

/// Amili: how its deliveries are signed and read, and its part of the event catalogue.
pub static PLATFORM: Platform = Platform {
    name: "amili",
    scheme: Scheme::BodyHmac {
        default_header: "X-Webhook-Signature",
    },
    normalize,
    catalogue: CATALOGUE,
    aliases: &[],
    headers: &[EVENT_HEADER, IDEMPOTENCY_HEADER, REQUEST_ID_HEADER],
};

pub const EVENT_HEADER: &str = "x-amili-event";
/// Stored with the delivery for the record; not the dedupe key (it is not signed).
pub const IDEMPOTENCY_HEADER: &str = "idempotencykey";
pub const REQUEST_ID_HEADER: &str = "x-amili-request-id";

/// The type is in `type` or `eventType` (or the `X-Amili-Event` header); the dedupe key is the
/// signed body's `id`, else the SHA-256 of the body's JSON.
pub fn normalize(body: &Value, req: &Inbound<'_>) -> Result<Normalized, ProviderError> {
    let kind = first_text(body, &[&["type"], &["eventType"]])
        .or_else(|| header_text(req, EVENT_HEADER))
        .ok_or_else(|| invalid("expected 'type' or 'eventType' (or an X-Amili-Event header)"))?;
    let id = text(body, &["id"]).unwrap_or_else(|| content_id(body));
    Ok(normalize_body(body, kind, id))
}

fn normalize_body(body: &Value, kind: String, source_event_id: String) -> Normalized {
    let data = body
        .get("data")
        .filter(|d| d.is_object())
        .cloned()
        .unwrap_or_else(|| Value::Object(Default::default()));
    let mut n = Normalized {
        source_event_id,
        catalogue_type: Some(kind.to_ascii_uppercase()),
        source_type: Some(kind),
        occurred_at: time(body, &["timeStamp"]),
        ..Normalized::default()
    };
    let s = &mut n.subject;
    s.organization = first_text(&data, &[&["organizationId"], &["orgId"]]);
    s.case = text(&data, &["caseId"]);
    s.invoice = text(&data, &["invoiceId"]).or_else(|| only_text(&data, &["invoices"]));
    n.data = data;
    n
}

/// Amili's documented types, in the order of its docs.
const CATALOGUE: &[Entry] = &[
    e(
        "amili",
        "BATCH_COMPLETED",
        "batch.completed",
        "a batch finished (status SUCCESS, PARTIAL or FAILED)",
    ),
    e(
        "amili",
        "SETTLEMENT_CREATED",
        "settlement.created",
        "a settlement was created for an invoice",
    ),
    e(
        "amili",
        "CASE",
        "case.created",
        "a collection case was created",
    ),
    e(
        "amili",
        "CASE_UPDATED",
        "case.updated",
        "a collection case changed (the fields changed are listed)",
    ),
];

#[cfg(test)]
mod tests {
    #[test]
    fn catalogue_count_matches_the_docs() {
        // Amili's webhook docs document 4 event types.
        assert_eq!(super::PLATFORM.catalogue.len(), 4);
    }
}
