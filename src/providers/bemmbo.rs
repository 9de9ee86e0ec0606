//! Bemmbo, delivered by Svix. Most bodies carry no type: it comes from the endpoint
//! (`/webhooks/bemmbo/{event_type}`) or is recognised from the body's shape. Amounts are whole
//! Chilean pesos (CLP) without a currency field.

use serde_json::Value;

use super::{Inbound, Platform, ProviderError, Scheme, content_id, header_text};
use crate::normalize::catalogue::{Entry, e};
use crate::normalize::fields::{Normalized, decimal, first_text, time, whole_units};

/// Bemmbo: how its deliveries are signed and read, and its part of the event catalogue.
pub static PLATFORM: Platform = Platform {
    name: "bemmbo",
    scheme: Scheme::Svix {
        default_tolerance: std::time::Duration::from_secs(300),
    },
    normalize,
    catalogue: CATALOGUE,
    aliases: &[],
    headers: &[],
};

pub const CURRENCY: &str = "CLP";

/// The type comes from the endpoint path or the body's shape; the dedupe key is the `svix-id`
/// header; the time is the body's own, else the `svix-timestamp`.
pub fn normalize(body: &Value, req: &Inbound<'_>) -> Result<Normalized, ProviderError> {
    let id = header_text(req, "svix-id")
        .or_else(|| header_text(req, "webhook-id"))
        .unwrap_or_else(|| content_id(body));
    let sent_at = header_text(req, "svix-timestamp")
        .and_then(|t| t.parse().ok())
        .and_then(|t| chrono::DateTime::from_timestamp(t, 0));
    let mut normalized = normalize_body(body, req.hint, id);
    normalized.occurred_at = normalized.occurred_at.or(sent_at);
    Ok(normalized)
}

/// The event type a body's shape shows, for deliveries that do not name it.
pub fn recognise(body: &Value) -> Option<&'static str> {
    let has = |key: &str| body.get(key).is_some_and(|v| !v.is_null());
    Some(match () {
        _ if has("customer") && body.get("invoices").is_some_and(Value::is_array) => {
            "collections_reminder_by_account"
        }
        _ if has("customer") && body.get("invoice").is_some_and(Value::is_object) => {
            "collections_reminder_by_invoice"
        }
        _ if has("customerId") && has("debt") => "customer_debt_status_changed",
        _ if has("invoiceId") && has("deconciledAt") => "invoice_deconciled_from_payments",
        _ if has("invoiceId") && has("reconciledAt") => "invoice_reconciled_to_payments",
        _ => return None,
    })
}

fn normalize_body(body: &Value, hint: Option<&str>, source_event_id: String) -> Normalized {
    let kind = hint
        .map(str::to_owned)
        .or_else(|| recognise(body).map(str::to_owned));
    let mut n = Normalized {
        source_event_id,
        catalogue_type: kind.clone(),
        source_type: kind,
        occurred_at: time(body, &["updatedAt"])
            .or_else(|| time(body, &["reconciledAt"]))
            .or_else(|| time(body, &["deconciledAt"])),
        data: body.clone(),
        ..Normalized::default()
    };
    let s = &mut n.subject;
    s.customer = first_text(body, &[&["customer", "fiscalId"], &["customerId"]]);
    s.invoice = first_text(
        body,
        &[
            &["invoice", "referenceNumber"],
            &["invoice", "number"],
            &["invoiceId"],
        ],
    );
    let amount = ["totalAmount", "debt"]
        .iter()
        .find_map(|k| body.get(*k).filter(|v| v.is_number()));
    let amount = amount.or_else(|| {
        body.pointer("/invoice/amountToBePaid")
            .filter(|v| v.is_number())
    });
    n.amount = match amount {
        Some(a) => whole_units(a, Some(CURRENCY)),
        None => movements_total(body).map(|total| crate::normalize::Amount {
            value: total,
            currency: Some(CURRENCY.into()),
        }),
    };
    n
}

/// The sum of `movements[].assignedAmount`, for (de)reconciliation events.
fn movements_total(body: &Value) -> Option<rust_decimal::Decimal> {
    let movements = body.get("movements")?.as_array()?;
    movements
        .iter()
        .map(|m| m.get("assignedAmount").and_then(decimal))
        .sum::<Option<_>>()
        .filter(|_| !movements.is_empty())
}

/// Bemmbo's documented types, in the order of its docs.
const CATALOGUE: &[Entry] = &[
    // Bemmbo (no type in the body: recognised from its shape, or from the endpoint path)
    e(
        "bemmbo",
        "collections_reminder_by_account",
        "reminder.account_summary_sent",
        "a summary reminder of an account's invoices was issued",
    ),
    e(
        "bemmbo",
        "collections_reminder_by_invoice",
        "reminder.invoice_sent",
        "a reminder for an invoice issued, about to expire or expired was sent",
    ),
    e(
        "bemmbo",
        "customer_debt_status_changed",
        "customer.debt_status_changed",
        "a customer's debt status changed",
    ),
    e(
        "bemmbo",
        "invoice_deconciled_from_payments",
        "invoice.deconciled",
        "an invoice was unmatched from payments",
    ),
    e(
        "bemmbo",
        "invoice_reconciled_to_payments",
        "invoice.reconciled",
        "an invoice was matched to payments",
    ),
];

#[cfg(test)]
mod tests {
    #[test]
    fn catalogue_count_matches_the_docs() {
        // Bemmbo's webhook docs document 5 event types.
        assert_eq!(super::PLATFORM.catalogue.len(), 5);
    }
}
