//! One convention for durations in settings: humantime text (`30s`, `500ms`, `1h`). Keys
//! written before it (`lease_seconds: 30`, `poll_interval_ms: 1000`) still load: [`either`]
//! takes a setting from its key or from the old numeric key it replaces, never both.

use std::time::Duration;

/// The unit of an old numeric key.
#[derive(Debug, Clone, Copy)]
pub enum Unit {
    Seconds,
    Millis,
}

/// The duration set by `key` (humantime) or by `old_key` (a number of `unit`), if either is
/// set; an error naming both if both are.
pub fn either(
    key: &str,
    value: Option<Duration>,
    old_key: &str,
    old: Option<u64>,
    unit: Unit,
) -> Result<Option<Duration>, String> {
    match (value, old) {
        (Some(_), Some(_)) => Err(format!(
            "{key} and {old_key} set the same thing: keep {key} (e.g. {key}: 30s)"
        )),
        (Some(value), None) => Ok(Some(value)),
        (None, Some(n)) => Ok(Some(match unit {
            Unit::Seconds => Duration::from_secs(n),
            Unit::Millis => Duration::from_millis(n),
        })),
        (None, None) => Ok(None),
    }
}
