//! The canonical event: the one shape every provider's delivery is turned into.
//!
//! Receives nothing itself; provider adapters (`crate::providers`) build [`Event`]s and the store
//! keeps them. Everything downstream (rules, actions) reads only this type.

pub mod canonical;
pub mod catalogue;
pub mod fields;
pub mod redact;

use std::fmt;

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

/// Engine-assigned event id: `evt_` followed by a UUIDv7, so ids sort by time of receipt.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct EventId(String);

impl EventId {
    pub const PREFIX: &'static str = "evt_";

    pub fn new() -> Self {
        Self(format!("{}{}", Self::PREFIX, Uuid::now_v7().simple()))
    }

    /// Wraps an id read back from the store or a URL.
    pub fn from_stored(id: String) -> Self {
        Self(id)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl Default for EventId {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Display for EventId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A canonical event type: snake_case `<entity>.<what_happened>`, e.g. `promise_to_pay.expired`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(transparent)]
pub struct EventType(String);

impl EventType {
    /// The type of an event whose provider type is not in the catalogue.
    pub const UNKNOWN: &'static str = "unknown";

    pub fn parse(s: &str) -> Result<Self, String> {
        if s == Self::UNKNOWN || is_dotted_snake_case(s) {
            Ok(Self(s.to_owned()))
        } else {
            Err(format!(
                "event type '{s}' must be snake_case '<entity>.<what_happened>', e.g. 'promise_to_pay.expired'"
            ))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The types only the engine stores (schedule ticks and the deadlines of `unless:`
    /// checks), each under a dedupe key of its own.
    pub const INTERNAL: [&'static str; 2] = ["schedule.tick", "check.deadline"];

    /// `s` as the type of an event from outside or of an `emit` action: any valid type but
    /// the engine's own.
    pub fn parse_external(s: &str) -> Result<Self, String> {
        if Self::INTERNAL.contains(&s) {
            return Err(format!(
                "'{s}' is the engine's own event type (it stores those itself, once each): use another type"
            ));
        }
        Self::parse(s)
    }
}

impl<'de> Deserialize<'de> for EventType {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Self::parse(&s).map_err(serde::de::Error::custom)
    }
}

impl fmt::Display for EventType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

fn is_snake_word(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some('a'..='z'))
        && chars.all(|c| matches!(c, 'a'..='z' | '0'..='9' | '_'))
        && !s.ends_with('_')
}

fn is_dotted_snake_case(s: &str) -> bool {
    let mut parts = s.split('.');
    let count = s.split('.').count();
    count >= 2 && parts.all(is_snake_word)
}

/// A source name (`receeve`, `api`): a snake_case word.
pub fn validate_source(s: &str) -> Result<(), String> {
    if s.len() <= 64 && is_snake_word(s) {
        Ok(())
    } else {
        Err(format!(
            "source '{s}' must be a snake_case word of at most 64 characters, e.g. 'receeve'"
        ))
    }
}

/// References to the business objects an event is about. Only those present are serialized.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Subject {
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "reference"
    )]
    pub account: Option<String>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "reference"
    )]
    pub claim: Option<String>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "reference"
    )]
    pub debtor: Option<String>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "reference"
    )]
    pub invoice: Option<String>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "reference"
    )]
    pub case: Option<String>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "reference"
    )]
    pub organization: Option<String>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "reference"
    )]
    pub customer: Option<String>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "reference"
    )]
    pub payment_request: Option<String>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "reference"
    )]
    pub payment: Option<String>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "reference"
    )]
    pub strategy: Option<String>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "reference"
    )]
    pub user: Option<String>,
}

/// A subject reference: a string, or an integer id taken as its decimal text.
fn reference<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Reference {
        Text(String),
        Integer(i64),
    }
    let reference: Option<Reference> = Option::deserialize(d)?;
    Ok(reference.map(|r| match r {
        Reference::Text(s) => s,
        Reference::Integer(n) => n.to_string(),
    }))
}

/// A money amount, exact: `value` is a decimal in whole currency units (`"192.38"`), serialized
/// as a string so no JSON reader rounds it. `currency` is an ISO 4217 code when the provider
/// gives one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Amount {
    pub value: Decimal,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub currency: Option<String>,
}

/// The canonical event. Its JSON form (field names, `type`, RFC 3339 times) is a stable contract
/// for rule authors and integration teams.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    pub id: EventId,
    pub source: String,
    /// The provider's delivery or message id: with `source`, the dedupe key.
    pub source_event_id: String,
    #[serde(rename = "type")]
    pub kind: EventType,
    /// The provider's own type, e.g. `event.promiseToPay.expired.v1`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_type: Option<String>,
    pub occurred_at: DateTime<Utc>,
    pub received_at: DateTime<Utc>,
    #[serde(default)]
    pub subject: Subject,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub amount: Option<Amount>,
    /// The provider's details, as the adapter extracted them.
    #[serde(default)]
    pub data: Value,
    /// The original payload of this event, as the provider sent it.
    #[serde(default)]
    pub payload: Value,
    /// For events emitted by rules: how many `emit` actions led here (bounds chains).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub chain_depth: u32,
}

/// Longest id or reference an event may carry, in bytes: ids and references are dedupe keys
/// and index entries, and PostgreSQL refuses index rows beyond about 2.7 KB.
pub const MAX_ID_BYTES: usize = 512;

impl Event {
    /// Drops what the store does not keep of its times (PostgreSQL keeps microseconds), so
    /// that the event handed to the processor in memory is the one a claim reads back.
    pub fn trim_to_stored_precision(&mut self) {
        use chrono::SubsecRound;
        self.occurred_at = self.occurred_at.trunc_subsecs(6);
        self.received_at = self.received_at.trunc_subsecs(6);
    }

    /// Why this event cannot be stored alike on both backends, if it cannot: an id or a
    /// reference longer than [`MAX_ID_BYTES`], or a NUL character anywhere (PostgreSQL text
    /// and JSON cannot hold one). Checked at the edge, so the sender gets a 400 naming it.
    pub fn storable(&self) -> Result<(), String> {
        let long = |name: &str, value: &str| {
            if value.len() > MAX_ID_BYTES {
                Err(format!(
                    "{name} is {} bytes long; at most {MAX_ID_BYTES} are accepted",
                    value.len()
                ))
            } else {
                Ok(())
            }
        };
        long("source_event_id", &self.source_event_id)?;
        long("type", self.kind.as_str())?;
        if let Some(source_type) = &self.source_type {
            long("source_type", source_type)?;
        }
        let subject = serde_json::to_value(&self.subject).unwrap_or_default();
        for (name, value) in subject.as_object().into_iter().flatten() {
            long(
                &format!("subject.{name}"),
                value.as_str().unwrap_or_default(),
            )?;
        }
        let nul = |at: &str| {
            Err(format!(
                "{at} contains a NUL character (\\u0000), which cannot be stored"
            ))
        };
        let texts = [
            ("source_event_id", Some(self.source_event_id.as_str())),
            ("source_type", self.source_type.as_deref()),
            (
                "amount.currency",
                self.amount.as_ref().and_then(|a| a.currency.as_deref()),
            ),
        ];
        if let Some((name, _)) = texts
            .iter()
            .find(|(_, text)| text.is_some_and(|t| t.contains('\0')))
        {
            return nul(name);
        }
        for (name, value) in [
            ("subject", &subject),
            ("data", &self.data),
            ("payload", &self.payload),
        ] {
            if let Some(at) = nul_at(value, name) {
                return nul(&at);
            }
        }
        Ok(())
    }
}

/// Where in `value` (a path from `path`) a string or key holds a NUL character.
fn nul_at(value: &Value, path: &str) -> Option<String> {
    match value {
        Value::String(s) => s.contains('\0').then(|| path.to_owned()),
        Value::Array(items) => items
            .iter()
            .enumerate()
            .find_map(|(i, v)| nul_at(v, &format!("{path}[{i}]"))),
        Value::Object(map) => map.iter().find_map(|(k, v)| {
            if k.contains('\0') {
                Some(format!("{path} (a key)"))
            } else {
                nul_at(v, &format!("{path}.{k}"))
            }
        }),
        _ => None,
    }
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

/// The event as rules see it: every canonical field but the raw `payload`. Borrowed, so
/// handing it to scripts and templates copies nothing first.
#[derive(Debug, Serialize)]
pub struct EventView<'a> {
    pub id: &'a EventId,
    pub source: &'a str,
    pub source_event_id: &'a str,
    #[serde(rename = "type")]
    pub kind: &'a EventType,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source_type: Option<&'a str>,
    pub occurred_at: DateTime<Utc>,
    pub received_at: DateTime<Utc>,
    pub subject: &'a Subject,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub amount: Option<&'a Amount>,
    pub data: &'a Value,
    #[serde(skip_serializing_if = "is_zero")]
    pub chain_depth: u32,
}

impl Event {
    pub fn view(&self) -> EventView<'_> {
        EventView {
            id: &self.id,
            source: &self.source,
            source_event_id: &self.source_event_id,
            kind: &self.kind,
            source_type: self.source_type.as_deref(),
            occurred_at: self.occurred_at,
            received_at: self.received_at,
            subject: &self.subject,
            amount: self.amount.as_ref(),
            data: &self.data,
            chain_depth: self.chain_depth,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_types_are_dotted_snake_case() {
        for ok in [
            "promise_to_pay.expired",
            "sms.delivery_failed",
            "a.b.c",
            "unknown",
        ] {
            assert!(EventType::parse(ok).is_ok(), "{ok}");
        }
        for bad in [
            "PromiseToPay.expired",
            "promise_to_pay",
            "promise_to_pay.",
            ".expired",
            "sms.delivery-failed",
            "sms..failed",
            "",
        ] {
            assert!(EventType::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn event_ids_sort_by_creation() {
        let ids: Vec<EventId> = (0..100).map(|_| EventId::new()).collect();
        let mut sorted = ids.clone();
        sorted.sort();
        assert_eq!(ids, sorted);
        assert!(ids[0].as_str().starts_with("evt_"));
    }

    #[test]
    fn amounts_keep_their_exact_decimal_value() {
        let amount: Amount =
            serde_json::from_str(r#"{"value":"19238.94","currency":"EUR"}"#).unwrap();
        assert_eq!(
            serde_json::to_string(&amount).unwrap(),
            r#"{"value":"19238.94","currency":"EUR"}"#
        );
    }
}
