//! Canonical JSON from integration teams: one object, a JSON array, or NDJSON.

use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::Value;
use sha2::{Digest, Sha256};

use super::{Amount, Event, EventId, EventType, Subject, validate_source};

/// The source given to canonical events that do not name one.
pub const DEFAULT_SOURCE: &str = "api";

/// What an integration team posts. The engine assigns `id` and `received_at`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CanonicalInput {
    #[serde(rename = "type")]
    kind: EventType,
    source: Option<String>,
    source_event_id: Option<String>,
    /// A Signalbox event forwarded from another engine: its id becomes `source_event_id`.
    id: Option<String>,
    source_type: Option<String>,
    occurred_at: Option<DateTime<Utc>>,
    /// Accepted so forwarded events pass, and ignored: the engine stamps its own receipt time.
    #[serde(rename = "received_at")]
    _received_at: Option<serde::de::IgnoredAny>,
    #[serde(default)]
    subject: Subject,
    amount: Option<Amount>,
    data: Option<Value>,
    /// Accepted so forwarded events pass; the posted object itself is kept as the payload.
    #[serde(rename = "payload")]
    _payload: Option<serde::de::IgnoredAny>,
    /// Accepted so forwarded events pass, and ignored: chains are counted per engine.
    #[serde(rename = "chain_depth")]
    _chain_depth: Option<serde::de::IgnoredAny>,
}

/// Why a canonical body was refused, with where: `item 3: amount.value: invalid type ...`.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum CanonicalError {
    /// The body is not JSON (or NDJSON): says line and column.
    #[error("{0}")]
    MalformedJson(String),
    /// The JSON is not a valid event: says which item and field.
    #[error("{0}")]
    InvalidEvent(String),
}

impl CanonicalError {
    fn in_item(self, index: usize) -> Self {
        match self {
            Self::MalformedJson(m) => Self::MalformedJson(format!("item {index}: {m}")),
            Self::InvalidEvent(m) => Self::InvalidEvent(format!("item {index}: {m}")),
        }
    }
}

/// Splits a body into JSON values: a single object, an array of objects, or NDJSON.
/// Errors say where (line and column, or item number).
pub fn split_values(body: &[u8]) -> Result<Vec<Value>, CanonicalError> {
    let first = body.iter().find(|b| !b.is_ascii_whitespace());
    match first {
        None => Err(CanonicalError::InvalidEvent(
            "empty body: expected a JSON event object, an array of them, or NDJSON".into(),
        )),
        Some(b'[') => match serde_json::from_slice::<Value>(body) {
            Ok(Value::Array(items)) if items.is_empty() => Err(CanonicalError::InvalidEvent(
                "empty array: expected at least one event".into(),
            )),
            Ok(Value::Array(items)) => Ok(items),
            Ok(other) => Err(CanonicalError::InvalidEvent(format!(
                "expected an array of events, found {}",
                kind_of(&other)
            ))),
            Err(e) => Err(CanonicalError::MalformedJson(format!(
                "malformed JSON: {e}"
            ))),
        },
        Some(_) => {
            let mut values = Vec::new();
            for value in serde_json::Deserializer::from_slice(body).into_iter::<Value>() {
                values.push(
                    value.map_err(|e| {
                        CanonicalError::MalformedJson(format!("malformed JSON: {e}"))
                    })?,
                );
            }
            Ok(values)
        }
    }
}

/// Turns a posted body into canonical events, all or nothing.
pub fn parse_body(body: &[u8], received_at: DateTime<Utc>) -> Result<Vec<Event>, CanonicalError> {
    let values = split_values(body)?;
    let batch = values.len() > 1 || body.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'[');
    values
        .into_iter()
        .enumerate()
        .map(|(index, value)| {
            parse_value(value, received_at).map_err(|e| if batch { e.in_item(index) } else { e })
        })
        .collect()
}

/// Turns one posted JSON value into a canonical event.
pub fn parse_value(value: Value, received_at: DateTime<Utc>) -> Result<Event, CanonicalError> {
    if !value.is_object() {
        return Err(CanonicalError::InvalidEvent(format!(
            "expected a JSON object, found {}",
            kind_of(&value)
        )));
    }
    let input: CanonicalInput = serde_path_to_error::deserialize(&value).map_err(|e| {
        let path = e.path().to_string();
        if path == "." {
            CanonicalError::InvalidEvent(e.inner().to_string())
        } else {
            CanonicalError::InvalidEvent(format!("{path}: {}", e.inner()))
        }
    })?;
    EventType::parse_external(input.kind.as_str())
        .map_err(|e| CanonicalError::InvalidEvent(format!("type: {e}")))?;
    let source = input.source.unwrap_or_else(|| DEFAULT_SOURCE.to_owned());
    validate_source(&source).map_err(|e| CanonicalError::InvalidEvent(format!("source: {e}")))?;
    let source_event_id = match input.source_event_id.or(input.id) {
        Some(id) if id.trim().is_empty() => {
            return Err(CanonicalError::InvalidEvent(
                "source_event_id: must not be empty".into(),
            ));
        }
        Some(id) => id,
        None => content_id(&value),
    };
    Ok(Event {
        id: EventId::new(),
        source,
        source_event_id,
        kind: input.kind,
        source_type: input.source_type,
        occurred_at: input.occurred_at.unwrap_or(received_at),
        received_at,
        subject: input.subject,
        amount: input.amount,
        data: input
            .data
            .unwrap_or_else(|| Value::Object(Default::default())),
        payload: value,
        chain_depth: 0,
    })
}

/// A stable id for an event posted without one: the SHA-256 of its JSON, so posting the same
/// event twice is recognised as a duplicate. (serde_json's maps are sorted, so key order in the
/// request does not matter.)
pub fn content_id(value: &Value) -> String {
    let canonical = serde_json::to_vec(value).expect("a JSON value always serializes");
    format!("sha256:{}", hex::encode(Sha256::digest(canonical)))
}

fn kind_of(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> DateTime<Utc> {
        "2026-11-22T10:00:00Z".parse().unwrap()
    }

    #[test]
    fn parses_a_full_event() {
        let body = br#"{"type":"promise_to_pay.expired","source":"receeve","source_event_id":"m-1",
            "occurred_at":"2026-11-20T08:00:00Z","subject":{"claim":"C-9","account":"A-1"},
            "amount":{"value":192.38,"currency":"EUR"},"data":{"note":"x"}}"#;
        let events = parse_body(body, now()).unwrap();
        assert_eq!(events.len(), 1);
        let e = &events[0];
        assert_eq!(e.kind.as_str(), "promise_to_pay.expired");
        assert_eq!(e.source, "receeve");
        assert_eq!(e.source_event_id, "m-1");
        assert_eq!(e.subject.claim.as_deref(), Some("C-9"));
        assert_eq!(e.amount.as_ref().unwrap().value.to_string(), "192.38");
        assert_eq!(e.occurred_at.to_rfc3339(), "2026-11-20T08:00:00+00:00");
        assert_eq!(e.received_at, now());
        assert_eq!(e.payload["data"]["note"], "x");
    }

    #[test]
    fn defaults_source_time_and_content_derived_id() {
        let a = parse_body(br#"{"type":"claim.created","data":{"a":1,"b":2}}"#, now()).unwrap();
        let b = parse_body(br#"{"data":{"b":2,"a":1},"type":"claim.created"}"#, now()).unwrap();
        assert_eq!(a[0].source, "api");
        assert_eq!(a[0].occurred_at, now());
        assert!(a[0].source_event_id.starts_with("sha256:"));
        assert_eq!(
            a[0].source_event_id, b[0].source_event_id,
            "key order must not change the id"
        );
    }

    #[test]
    fn accepts_arrays_and_ndjson() {
        let array =
            br#"[{"type":"a.b","source_event_id":"1"},{"type":"a.c","source_event_id":"2"}]"#;
        assert_eq!(parse_body(array, now()).unwrap().len(), 2);
        let ndjson = b"{\"type\":\"a.b\",\"source_event_id\":\"1\"}\n{\"type\":\"a.c\",\"source_event_id\":\"2\"}\n";
        assert_eq!(parse_body(ndjson, now()).unwrap().len(), 2);
    }

    #[test]
    fn errors_say_what_and_where() {
        let err = parse_body(b"{\"type\": \"a.b\",\n \"subject\": {", now()).unwrap_err();
        assert!(
            err.to_string()
                .starts_with("malformed JSON: EOF while parsing"),
            "{}",
            err.to_string()
        );
        assert!(err.to_string().contains("line 2"), "{}", err.to_string());

        let err = parse_body(br#"{"type":"Claim Created"}"#, now()).unwrap_err();
        assert!(
            err.to_string()
                .starts_with("type: event type 'Claim Created' must be snake_case"),
            "{}",
            err.to_string()
        );

        let err = parse_body(
            br#"[{"type":"a.b"},{"type":"a.b","amount":{"value":"ten"}}]"#,
            now(),
        )
        .unwrap_err();
        assert!(
            err.to_string().starts_with("item 1: amount.value:"),
            "{}",
            err.to_string()
        );

        let err = parse_body(br#"{"type":"a.b","subject":{"clam":"1"}}"#, now()).unwrap_err();
        assert!(
            err.to_string().starts_with(
                "subject.clam: unknown field `clam`, expected one of `account`, `claim`"
            ),
            "{}",
            err
        );

        let err = parse_body(br#"{"subject":{}}"#, now()).unwrap_err();
        assert!(
            err.to_string().contains("missing field `type`"),
            "{}",
            err.to_string()
        );

        assert_eq!(
            parse_body(b"  ", now()).unwrap_err().to_string(),
            "empty body: expected a JSON event object, an array of them, or NDJSON"
        );
        assert_eq!(
            parse_body(b"[]", now()).unwrap_err().to_string(),
            "empty array: expected at least one event"
        );
        assert_eq!(
            parse_body(b"42", now()).unwrap_err().to_string(),
            "expected a JSON object, found a number"
        );
        assert!(
            parse_body(br#"{"type":"a.b","source":"Bad Source"}"#, now())
                .unwrap_err()
                .to_string()
                .starts_with("source: ")
        );
    }
}
