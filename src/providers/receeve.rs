//! Receeve: `{"payload": {"details": {"messageType": ...}, "messageId", "timestamp", "user"},
//! "signature"}`. Amounts are integer minor units with a `currency`.

use serde_json::Value;

use super::{Inbound, ProviderError, content_id, invalid};
use crate::normalize::fields::{
    Normalized, first_text, minor_units, only_text, strip_version_suffix, text, time,
};

pub fn normalize(body: &Value, _req: &Inbound<'_>) -> Result<Normalized, ProviderError> {
    let payload = body
        .get("payload")
        .filter(|p| p.is_object())
        .ok_or_else(|| invalid("expected a 'payload' object"))?;
    let empty = Value::Object(Default::default());
    let details = payload
        .get("details")
        .filter(|d| d.is_object())
        .unwrap_or(&empty);
    let message_type = text(details, &["messageType"])
        .ok_or_else(|| invalid("payload.details.messageType is missing"))?;
    let plan = details.get("instalmentPlan").unwrap_or(&Value::Null);

    let mut n = Normalized {
        source_event_id: text(payload, &["messageId"]).unwrap_or_else(|| content_id(payload)),
        catalogue_type: Some(strip_version_suffix(&message_type).to_owned()),
        source_type: Some(message_type),
        occurred_at: time(payload, &["timestamp"]),
        data: details.clone(),
        ..Normalized::default()
    };
    let s = &mut n.subject;
    s.account = text(details, &["accountReference"]);
    s.claim = first_text(
        details,
        &[&["claimRef"], &["claimReference"], &["receeveClaimRef"]],
    )
    .or_else(|| only_text(plan, &["scope", "externalClaimReferences"]))
    .or_else(|| single_claim_payment(details));
    s.debtor = first_text(
        details,
        &[&["externalDebtorRef"], &["debtor", "externalDebtorRef"]],
    )
    .or_else(|| only_text(plan, &["scope", "debtorReferences"]));
    s.user = text(payload, &["user", "id"]);

    let currency = text(details, &["currency"])
        .or_else(|| text(plan, &["currency"]))
        .or_else(|| {
            details
                .pointer("/claimPayments/0/currency")
                .and_then(|c| text(c, &[]))
        });
    let amount = ["totalAmount", "amount", "totalPaymentAmount"]
        .iter()
        .find_map(|k| details.get(*k).filter(|v| v.is_number()));
    let amount = amount.or_else(|| plan.get("totalAmount").filter(|v| v.is_number()));
    n.amount = amount.and_then(|a| minor_units(a, currency));
    Ok(n)
}

fn single_claim_payment(details: &Value) -> Option<String> {
    match details.get("claimPayments")?.as_array()?.as_slice() {
        [one] => first_text(one, &[&["claimRef"], &["receeveClaimRef"]]),
        _ => None,
    }
}
