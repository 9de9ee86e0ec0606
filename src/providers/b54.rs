//! B54: `{"event": "invoice.approved" | "invoice.declined" | "invoice.paid", "data"}`. No delivery
//! id: the dedupe key is the SHA-256 of the body's JSON. Amounts are decimals in whole units, no
//! currency.

use serde_json::Value;

use super::{Inbound, Platform, ProviderError, Scheme, content_id, invalid};
use crate::normalize::catalogue::{Entry, e};
use crate::normalize::fields::{Normalized, text, time, whole_units};

/// B54: how its deliveries are signed and read, and its part of the event catalogue.
pub static PLATFORM: Platform = Platform {
    name: "b54",
    scheme: Scheme::BodyHmac {
        default_header: "X-B54-Signature",
    },
    normalize,
    catalogue: CATALOGUE,
    aliases: &[],
    headers: &[],
};

pub fn normalize(body: &Value, _req: &Inbound<'_>) -> Result<Normalized, ProviderError> {
    let event = text(body, &["event"])
        .ok_or_else(|| invalid("expected an 'event' naming the event type"))?;
    let data = body
        .get("data")
        .filter(|d| d.is_object())
        .cloned()
        .unwrap_or_else(|| Value::Object(Default::default()));
    let amount_field = match event.as_str() {
        "invoice.approved" => "amount_approved",
        "invoice.declined" => "amount_requested",
        "invoice.paid" => "payment_amount",
        _ => "amount",
    };
    let mut n = Normalized {
        source_event_id: content_id(body),
        catalogue_type: Some(event.clone()),
        source_type: Some(event),
        occurred_at: time(&data, &["updated_at"]).or_else(|| time(&data, &["created_at"])),
        amount: data.get(amount_field).and_then(|a| whole_units(a, None)),
        ..Normalized::default()
    };
    let s = &mut n.subject;
    s.invoice = text(&data, &["invoice_id"]);
    s.customer = text(&data, &["customer_partner_id"]);
    s.organization = text(&data, &["company_id"]);
    n.data = data;
    Ok(n)
}

/// B54's documented types, in the order of its docs.
const CATALOGUE: &[Entry] = &[
    e(
        "b54",
        "invoice.approved",
        "invoice.approved",
        "an invoice was approved for discounting",
    ),
    e(
        "b54",
        "invoice.declined",
        "invoice.declined",
        "an invoice was declined",
    ),
    e(
        "b54",
        "invoice.paid",
        "invoice.paid",
        "a payment was made for an invoice",
    ),
];

#[cfg(test)]
mod tests {
    #[test]
    fn catalogue_count_matches_the_docs() {
        // B54's webhook docs document 3 event types.
        assert_eq!(super::PLATFORM.catalogue.len(), 3);
    }
}
