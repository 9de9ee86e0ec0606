//! Reading provider JSON leniently: fields in any order, missing, `null`, ids as strings or
//! numbers. And turning provider amounts into exact decimals.

use chrono::{DateTime, NaiveDate, Utc};
use rust_decimal::Decimal;
use serde_json::Value;

use super::catalogue::Entry;
use super::{Amount, Event, EventId, EventType, Subject};

/// The value at `path`, if every step exists and is not null.
pub fn at<'a>(value: &'a Value, path: &[&str]) -> Option<&'a Value> {
    let mut current = value;
    for key in path {
        current = current.get(key)?;
    }
    (!current.is_null()).then_some(current)
}

/// A reference at `path`: a non-empty string, or an integer as text.
pub fn text(value: &Value, path: &[&str]) -> Option<String> {
    match at(value, path)? {
        Value::String(s) if !s.trim().is_empty() => Some(s.clone()),
        Value::Number(n) if n.is_i64() || n.is_u64() => Some(n.to_string()),
        _ => None,
    }
}

/// The first of several paths that holds a reference.
pub fn first_text(value: &Value, paths: &[&[&str]]) -> Option<String> {
    paths.iter().find_map(|path| text(value, path))
}

/// The single element of a one-element array of references (a list of several names no one).
pub fn only_text(value: &Value, path: &[&str]) -> Option<String> {
    match at(value, path)?.as_array()?.as_slice() {
        [one] => text(one, &[]),
        _ => None,
    }
}

/// A time at `path`: RFC 3339, or a bare date (taken as midnight UTC).
pub fn time(value: &Value, path: &[&str]) -> Option<DateTime<Utc>> {
    let s = at(value, path)?.as_str()?;
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Some(t.with_timezone(&Utc));
    }
    let date = NaiveDate::parse_from_str(s, "%Y-%m-%d").ok()?;
    Some(date.and_hms_opt(0, 0, 0)?.and_utc())
}

/// A JSON number as an exact decimal (its shortest text, so `19238.94` stays `19238.94`).
pub fn decimal(value: &Value) -> Option<Decimal> {
    match value {
        Value::Number(n) => n
            .to_string()
            .parse()
            .ok()
            .or_else(|| Decimal::from_scientific(&n.to_string()).ok()),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// Digits after the decimal point in a currency's minor unit (ISO 4217); 2 for the rest.
pub fn minor_unit_digits(currency: Option<&str>) -> u32 {
    match currency.map(str::to_ascii_uppercase).as_deref() {
        Some(
            "BIF" | "CLP" | "DJF" | "GNF" | "ISK" | "JPY" | "KMF" | "KRW" | "PYG" | "RWF" | "UGX"
            | "UYI" | "VND" | "VUV" | "XAF" | "XOF" | "XPF",
        ) => 0,
        Some("BHD" | "IQD" | "JOD" | "KWD" | "LYD" | "OMR" | "TND") => 3,
        _ => 2,
    }
}

/// An integer amount in minor units (cents): `19238` EUR is `192.38`.
pub fn minor_units(value: &Value, currency: Option<String>) -> Option<Amount> {
    let minor = decimal(value)?;
    if !minor.fract().is_zero() {
        return None;
    }
    let mut value = minor;
    value
        .set_scale(minor_unit_digits(currency.as_deref()))
        .ok()?;
    Some(Amount { value, currency })
}

/// An amount already in whole currency units, integer or decimal.
pub fn whole_units(value: &Value, currency: Option<&str>) -> Option<Amount> {
    Some(Amount {
        value: decimal(value)?,
        currency: currency.map(str::to_owned),
    })
}

/// `event.claim.created.v1` -> `event.claim.created` (any `.vN` suffix).
pub fn strip_version_suffix(s: &str) -> &str {
    match s.rsplit_once(".v") {
        Some((base, n)) if !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()) => base,
        _ => s,
    }
}

/// `v1.collection.payment_request.created` -> `collection.payment_request.created`.
pub fn strip_version_prefix(s: &str) -> &str {
    match s.split_once('.') {
        Some((v, rest))
            if v.len() > 1 && v.starts_with('v') && v[1..].bytes().all(|b| b.is_ascii_digit()) =>
        {
            rest
        }
        _ => s,
    }
}

/// What an adapter read from one delivery; [`Normalized::into_event`] completes it.
#[derive(Debug, Default)]
pub struct Normalized {
    pub source_event_id: String,
    /// The provider's type as sent (with its version), when the delivery names one.
    pub source_type: Option<String>,
    /// The catalogue key: the provider's type without its version.
    pub catalogue_type: Option<String>,
    pub occurred_at: Option<DateTime<Utc>>,
    pub subject: Subject,
    pub amount: Option<Amount>,
    pub data: Value,
}

impl Normalized {
    /// The canonical event: `entry`, the catalogue's entry for [`Self::catalogue_type`] (looked
    /// up by the provider, which owns the catalogue), names its type; without one it is `unknown`.
    pub fn into_event(
        self,
        source: &str,
        entry: Option<&Entry>,
        payload: Value,
        received_at: DateTime<Utc>,
    ) -> Event {
        let kind = entry
            .map(|entry| EventType::parse(entry.kind).expect("catalogue types are valid (tested)"))
            .unwrap_or_else(|| EventType::parse(EventType::UNKNOWN).expect("unknown is valid"));
        Event {
            id: EventId::new(),
            source: source.to_owned(),
            source_event_id: self.source_event_id,
            kind,
            source_type: self.source_type,
            occurred_at: self.occurred_at.unwrap_or(received_at),
            received_at,
            subject: self.subject,
            amount: self.amount,
            data: self.data,
            payload,
            chain_depth: 0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn amounts_stay_exact() {
        assert_eq!(
            minor_units(&json!(19238), Some("EUR".into()))
                .unwrap()
                .value
                .to_string(),
            "192.38"
        );
        assert_eq!(
            minor_units(&json!(501), Some("EUR".into()))
                .unwrap()
                .value
                .to_string(),
            "5.01"
        );
        assert_eq!(
            minor_units(&json!(5000), Some("JPY".into()))
                .unwrap()
                .value
                .to_string(),
            "5000"
        );
        assert_eq!(
            minor_units(&json!(1234), Some("KWD".into()))
                .unwrap()
                .value
                .to_string(),
            "1.234"
        );
        assert!(
            minor_units(&json!(12.5), Some("EUR".into())).is_none(),
            "minor units are whole"
        );
        assert_eq!(
            whole_units(&json!(19238.94), None)
                .unwrap()
                .value
                .to_string(),
            "19238.94"
        );
        assert_eq!(
            whole_units(&json!(0.1), None).unwrap().value.to_string(),
            "0.1"
        );
        assert_eq!(
            whole_units(&json!(4000000), Some("CLP"))
                .unwrap()
                .value
                .to_string(),
            "4000000"
        );
        assert!(whole_units(&json!("lots"), None).is_none());
    }

    #[test]
    fn versions_are_stripped_whatever_their_number() {
        assert_eq!(
            strip_version_suffix("event.claim.created.v1"),
            "event.claim.created"
        );
        assert_eq!(
            strip_version_suffix("event.instalmentPlan.created.v12"),
            "event.instalmentPlan.created"
        );
        assert_eq!(
            strip_version_suffix("event.claim.created"),
            "event.claim.created"
        );
        assert_eq!(strip_version_suffix("event.claim.vip"), "event.claim.vip");
        assert_eq!(
            strip_version_prefix("v3.collection.payment_request.paid"),
            "collection.payment_request.paid"
        );
        assert_eq!(strip_version_prefix("invoice.paid"), "invoice.paid");
    }

    #[test]
    fn references_and_times_are_read_leniently() {
        let v = json!({"a": {"id": 42, "name": " ", "ref": "R-1", "none": null}, "list": ["x"], "two": ["x", "y"],
                       "t": "2024-03-21T12:30:30.000Z", "d": "2024-10-15"});
        assert_eq!(text(&v, &["a", "id"]).as_deref(), Some("42"));
        assert_eq!(text(&v, &["a", "name"]), None);
        assert_eq!(text(&v, &["a", "none"]), None);
        assert_eq!(
            first_text(&v, &[&["a", "missing"], &["a", "ref"]]).as_deref(),
            Some("R-1")
        );
        assert_eq!(only_text(&v, &["list"]).as_deref(), Some("x"));
        assert_eq!(only_text(&v, &["two"]), None);
        assert_eq!(
            time(&v, &["t"]).unwrap().to_rfc3339(),
            "2024-03-21T12:30:30+00:00"
        );
        assert_eq!(
            time(&v, &["d"]).unwrap().to_rfc3339(),
            "2024-10-15T00:00:00+00:00"
        );
    }
}
