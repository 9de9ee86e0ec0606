//! Amili: `{"id", "type" | "eventType", "source", "timeStamp", "data"}` with headers
//! `X-Amili-Event`, `IdempotencyKey` (the dedupe key) and `X-Webhook-Signature`.

use serde_json::Value;

use super::signature::Verifier;
use super::{
    Inbound, Provider, ProviderError, Verification, content_id, header_text, invalid, parse_json,
};
use crate::normalize::Event;
use crate::normalize::fields::{Normalized, first_text, only_text, text, time};

pub const EVENT_HEADER: &str = "x-amili-event";
pub const IDEMPOTENCY_HEADER: &str = "idempotencykey";

pub struct Amili {
    pub verifier: Verifier,
}

impl Provider for Amili {
    fn name(&self) -> &str {
        "amili"
    }

    fn verify(&self, req: &Inbound<'_>) -> Result<Verification, ProviderError> {
        self.verifier.verify(req)
    }

    fn parse(&self, req: &Inbound<'_>) -> Result<Vec<Event>, ProviderError> {
        let body = parse_json(req.body)?;
        let kind = first_text(&body, &[&["type"], &["eventType"]])
            .or_else(|| header_text(req, EVENT_HEADER))
            .ok_or_else(|| {
                invalid("expected 'type' or 'eventType' (or an X-Amili-Event header)")
            })?;
        let id = header_text(req, IDEMPOTENCY_HEADER)
            .or_else(|| text(&body, &["id"]))
            .unwrap_or_else(|| content_id(&body));
        let normalized = normalize(&body, kind, id);
        Ok(vec![normalized.into_event(
            self.name(),
            body,
            req.received_at,
        )])
    }
}

pub fn normalize(body: &Value, kind: String, source_event_id: String) -> Normalized {
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
