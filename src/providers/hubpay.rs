//! Hubpay: `{"id", "event": "v1.collection.payment_request.<what>", "createdAt", "accountId",
//! "relatedObject": {"id", "type"}, "data"}`. The docs carry no amounts.

use serde_json::Value;

use super::{Inbound, ProviderError, content_id, invalid};
use crate::normalize::fields::{Normalized, strip_version_prefix, text, time};

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
