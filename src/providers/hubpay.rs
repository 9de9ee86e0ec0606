//! Hubpay: `{"id", "event": "v1.collection.payment_request.<what>", "createdAt", "accountId",
//! "relatedObject": {"id", "type"}, "data"}`. The docs carry no amounts.

use serde_json::Value;

use super::{Inbound, Platform, ProviderError, Scheme, content_id, invalid};
use crate::normalize::catalogue::{Entry, e};
use crate::normalize::fields::{Normalized, strip_version_prefix, text, time};

/// Hubpay: how its deliveries are signed and read, and its part of the event catalogue.
pub static PLATFORM: Platform = Platform {
    name: "hubpay",
    scheme: Scheme::BodyHmac {
        default_header: "X-Hubpay-Signature",
    },
    normalize,
    catalogue: CATALOGUE,
    aliases: &[],
    headers: &[],
};

pub fn normalize(body: &Value, _req: &Inbound<'_>) -> Result<Normalized, ProviderError> {
    let event = text(body, &["event"])
        .ok_or_else(|| invalid("expected an 'event' naming the event type"))?;
    let related_id = text(body, &["relatedObject", "id"]);
    let related_type = text(body, &["relatedObject", "type"]).unwrap_or_default();
    let mut data = match body.get("data") {
        Some(Value::Object(map)) => map.clone(),
        _ => Default::default(),
    };
    if let Some(related) = body.get("relatedObject").filter(|r| r.is_object()) {
        data.insert("relatedObject".into(), related.clone());
    }
    let data = Value::Object(data);

    let mut n = Normalized {
        source_event_id: text(body, &["id"]).unwrap_or_else(|| content_id(body)),
        catalogue_type: Some(strip_version_prefix(&event).to_owned()),
        source_type: Some(event),
        occurred_at: time(body, &["createdAt"]),
        ..Normalized::default()
    };
    let s = &mut n.subject;
    s.account = text(body, &["accountId"]);
    match related_type.as_str() {
        "collection.payment_request" => s.payment_request = related_id,
        "collection.payment_request.payment" => {
            s.payment = related_id;
            s.payment_request = text(&data, &["paymentRequestId"]);
        }
        _ => {
            s.payment = text(&data, &["paymentId"]);
            s.payment_request = text(&data, &["paymentRequestId"]);
        }
    }
    n.data = data;
    Ok(n)
}

/// Hubpay's documented types, in the order of its docs.
const CATALOGUE: &[Entry] = &[
    e(
        "hubpay",
        "collection.payment_request.created",
        "payment_request.created",
        "a payment request was created",
    ),
    e(
        "hubpay",
        "collection.payment_request.paid",
        "payment_request.paid",
        "a payment request was paid in full",
    ),
    e(
        "hubpay",
        "collection.payment_request.part_paid",
        "payment_request.partially_paid",
        "a payment request was paid in part",
    ),
    e(
        "hubpay",
        "collection.payment_request.cancelled",
        "payment_request.cancelled",
        "a payment request was cancelled",
    ),
    e(
        "hubpay",
        "collection.payment_request.payment.created",
        "payment.created",
        "a payment on a payment request was created",
    ),
    e(
        "hubpay",
        "collection.payment_request.payment.pending",
        "payment.pending",
        "a payment on a payment request is pending",
    ),
    e(
        "hubpay",
        "collection.payment_request.payment.received",
        "payment.received",
        "a payment on a payment request was received",
    ),
    e(
        "hubpay",
        "collection.payment_request.payment.completed",
        "payment.completed",
        "a payment on a payment request completed",
    ),
    e(
        "hubpay",
        "collection.payment_request.payment.failed",
        "payment.failed",
        "a payment on a payment request failed",
    ),
    e(
        "hubpay",
        "collection.payment_request.payment.reversed",
        "payment.reversed",
        "a payment on a payment request was reversed",
    ),
    e(
        "hubpay",
        "collection.payment_request.payment.payout.pending_approval",
        "payout.pending_approval",
        "a payout of a payment awaits approval",
    ),
    e(
        "hubpay",
        "collection.payment_request.payment.payout.initiated",
        "payout.initiated",
        "a payout of a payment was initiated",
    ),
    e(
        "hubpay",
        "collection.payment_request.payment.payout.paid",
        "payout.paid",
        "a payout of a payment was paid",
    ),
    e(
        "hubpay",
        "collection.payment_request.payment.payout.failed",
        "payout.failed",
        "a payout of a payment failed",
    ),
];

#[cfg(test)]
mod tests {
    #[test]
    fn catalogue_count_matches_the_docs() {
        // Hubpay's webhook docs document 14 event types.
        assert_eq!(super::PLATFORM.catalogue.len(), 14);
    }
}
