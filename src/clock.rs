//! The engine's one source of the time of day. Every stage (ingestion, processing, delivery,
//! retry math, rule reloads) asks a [`Clock`]; the store takes `now` as an argument. Production
//! runs on [`SystemClock`]; tests drive a [`ManualClock`] and move time forward themselves.
//!
//! Waiting (poll intervals, backoff sleeps) is `tokio::time`, which tests pause; the clock only
//! answers what time it is.

use std::fmt;
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};

/// What time it is.
pub trait Clock: Send + Sync + fmt::Debug {
    fn now(&self) -> DateTime<Utc>;

    /// [`Clock::now`] in milliseconds since the Unix epoch (how the outbox schedules).
    fn now_ms(&self) -> i64 {
        self.now().timestamp_millis()
    }
}

/// A clock shared by every task of one engine.
pub type SharedClock = Arc<dyn Clock>;

/// The machine's clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}

impl SystemClock {
    pub fn shared() -> SharedClock {
        Arc::new(Self)
    }
}

/// A clock that stands still until told to move (tests, backtests).
#[derive(Debug)]
pub struct ManualClock(Mutex<DateTime<Utc>>);

impl ManualClock {
    pub fn new(at: DateTime<Utc>) -> Arc<Self> {
        Arc::new(Self(Mutex::new(at)))
    }

    /// A manual clock starting at the machine's time now.
    pub fn starting_now() -> Arc<Self> {
        Self::new(Utc::now())
    }

    pub fn set(&self, at: DateTime<Utc>) {
        *self.0.lock().expect("clock lock is never poisoned") = at;
    }

    pub fn advance(&self, by: std::time::Duration) {
        let mut now = self.0.lock().expect("clock lock is never poisoned");
        let by = chrono::Duration::from_std(by).unwrap_or(chrono::Duration::MAX);
        *now = now
            .checked_add_signed(by)
            .unwrap_or(DateTime::<Utc>::MAX_UTC);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> DateTime<Utc> {
        *self.0.lock().expect("clock lock is never poisoned")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manual_clock_moves_only_when_told() {
        let start = DateTime::parse_from_rfc3339("2026-03-01T09:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let clock = ManualClock::new(start);
        assert_eq!(clock.now(), start);
        clock.advance(std::time::Duration::from_secs(90));
        assert_eq!(clock.now().to_rfc3339(), "2026-03-01T09:01:30+00:00");
        assert_eq!(clock.now_ms(), start.timestamp_millis() + 90_000);
        clock.set(start);
        assert_eq!(clock.now(), start);
    }
}
