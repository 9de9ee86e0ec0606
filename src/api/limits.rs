//! The HTTP server's bounds: the `server:` settings (timeouts, connection and request limits,
//! the ingestion memory budget, the size of list pages) and the shared state that enforces the
//! ones handlers need. [`super::serve`] enforces the rest on connections.

use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Seconds a client is told to wait (`Retry-After`) when the server is saturated.
pub const RETRY_AFTER_SECONDS: u64 = 1;

/// How many maximum-size request bodies may be in flight at once when
/// `server.ingest_bytes_in_flight` is not set.
const DEFAULT_BODIES_IN_FLIGHT: usize = 8;

/// `server:` in the config file.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    /// Most connections served at once, per listener. Up to a quarter as many more (at least
    /// one) are accepted and answered at once with `503 {"code":"overloaded"}`,
    /// `Retry-After: 1` and `Connection: close` (`GET /healthz` with 200); beyond those,
    /// connections wait in the operating system's listen backlog until one closes. Keep
    /// 1.25 × this per listener below the process's open file limit (`ulimit -n`).
    /// Default 512.
    pub max_connections: usize,
    /// Most requests handled at once (`/healthz` aside). A request beyond it is answered at
    /// once with `503 {"code":"overloaded"}` and `Retry-After: 1`, not queued. Default 256.
    pub max_requests: usize,
    /// How long the server waits for a request's complete headers, counted from when it
    /// starts waiting: the connection opened, or the previous response was sent. A connection
    /// that sends nothing, or sends its headers too slowly, is closed. Default `10s`.
    #[serde(with = "humantime_serde")]
    pub header_read_timeout: Duration,
    /// How long a kept-alive connection may stay open after a response with no new request;
    /// then the server closes it. At most `header_read_timeout`, which also bounds that wait.
    /// Default `5s`.
    #[serde(with = "humantime_serde")]
    pub idle_timeout: Duration,
    /// How long reading a request body may take, all of it; a slower one is answered 408
    /// `body_timeout` and its connection closed. Default `10s`.
    #[serde(with = "humantime_serde")]
    pub body_read_timeout: Duration,
    /// On shutdown, how long requests in flight have to finish; connections still open then
    /// are closed. Default `30s`.
    #[serde(with = "humantime_serde")]
    pub shutdown_timeout: Duration,
    /// Bytes of ingestion request bodies held at once, reserved from each request's
    /// `Content-Length` (or `max_body_bytes` when it has none) before the body is read. A
    /// request that does not fit is answered at once with `503 {"code":"overloaded"}` and
    /// `Retry-After: 1`. At least `max_body_bytes`. Default: 8 × `max_body_bytes` (8 MiB).
    pub ingest_bytes_in_flight: Option<usize>,
    /// Largest page of a list endpoint (`GET /v1/events`, `GET /v1/deliveries`), in bytes of
    /// JSON: items stop being added once the page passes it (a page holds at least one item),
    /// and `next_before` says where the next page starts. Default 1048576 (1 MiB).
    pub max_page_bytes: usize,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            max_connections: 512,
            max_requests: 256,
            header_read_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(5),
            body_read_timeout: Duration::from_secs(10),
            shutdown_timeout: Duration::from_secs(30),
            ingest_bytes_in_flight: None,
            max_page_bytes: 1024 * 1024,
        }
    }
}

impl ServerConfig {
    /// The ingestion budget in bytes, with its default resolved.
    pub fn ingest_budget(&self, max_body_bytes: usize) -> usize {
        self.ingest_bytes_in_flight
            .unwrap_or(max_body_bytes.saturating_mul(DEFAULT_BODIES_IN_FLIGHT))
    }

    /// Values that parse but cannot work, as `(key, message)`.
    pub fn problems(&self, max_body_bytes: usize) -> Vec<(String, String)> {
        let mut problems = Vec::new();
        let mut check = |ok: bool, key: &str, message: String| {
            if !ok {
                problems.push((format!("server.{key}"), message));
            }
        };
        let positive = || "must be greater than 0".to_owned();
        check(self.max_connections > 0, "max_connections", positive());
        check(self.max_requests > 0, "max_requests", positive());
        check(self.max_page_bytes > 0, "max_page_bytes", positive());
        for (key, value) in [
            ("header_read_timeout", self.header_read_timeout),
            ("idle_timeout", self.idle_timeout),
            ("body_read_timeout", self.body_read_timeout),
        ] {
            check(!value.is_zero(), key, positive());
        }
        check(
            self.idle_timeout <= self.header_read_timeout,
            "idle_timeout",
            format!(
                "must be at most header_read_timeout ({}), which also bounds the wait for a next request",
                humantime::format_duration(self.header_read_timeout)
            ),
        );
        let budget = self.ingest_budget(max_body_bytes);
        check(
            budget >= max_body_bytes && budget <= Semaphore::MAX_PERMITS,
            "ingest_bytes_in_flight",
            format!(
                "must be at least max_body_bytes ({max_body_bytes}) and at most {}",
                Semaphore::MAX_PERMITS
            ),
        );
        problems
    }
}

/// What handlers need of the limits, shared by all of them.
#[derive(Debug, Clone)]
pub struct Limits {
    pub max_requests: usize,
    pub max_body_bytes: usize,
    pub body_read_timeout: Duration,
    pub max_page_bytes: usize,
    /// One permit per byte of request body the ingestion endpoints may hold.
    ingest: Arc<Semaphore>,
    /// One backtest (`POST /v1/backtest`) at a time, and one rule validation.
    backtests: Arc<Semaphore>,
    validations: Arc<Semaphore>,
}

impl Limits {
    pub fn new(server: &ServerConfig, max_body_bytes: usize) -> Self {
        Self {
            max_requests: server.max_requests,
            max_body_bytes,
            body_read_timeout: server.body_read_timeout,
            max_page_bytes: server.max_page_bytes,
            ingest: Arc::new(Semaphore::new(
                server
                    .ingest_budget(max_body_bytes)
                    .min(Semaphore::MAX_PERMITS),
            )),
            backtests: Arc::new(Semaphore::new(1)),
            validations: Arc::new(Semaphore::new(1)),
        }
    }

    /// The instance's one backtest slot, or `None` while a backtest runs. Released when the
    /// permit drops.
    pub fn start_backtest(&self) -> Option<OwnedSemaphorePermit> {
        self.backtests.clone().try_acquire_owned().ok()
    }

    /// The instance's one rule validation slot, or `None` while a validation runs.
    pub fn start_validation(&self) -> Option<OwnedSemaphorePermit> {
        self.validations.clone().try_acquire_owned().ok()
    }

    /// Reserves `bytes` (capped at `max_body_bytes`, at least 1) of the ingestion budget, or
    /// `None` when it is spent. Released when the permit drops.
    pub fn reserve_body(&self, bytes: usize) -> Option<OwnedSemaphorePermit> {
        let bytes = bytes.clamp(1, self.max_body_bytes.max(1));
        let bytes = u32::try_from(bytes).unwrap_or(u32::MAX);
        self.ingest.clone().try_acquire_many_owned(bytes).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ingestion_budget_refuses_what_does_not_fit_and_frees_on_drop() {
        let server = ServerConfig {
            ingest_bytes_in_flight: Some(300),
            ..ServerConfig::default()
        };
        let limits = Limits::new(&server, 200);
        let first = limits.reserve_body(150).expect("fits");
        assert!(limits.reserve_body(151).is_none(), "150 + 151 > 300");
        let second = limits.reserve_body(10_000).map(|_| ());
        assert!(
            second.is_none(),
            "an unknown or huge size weighs max_body_bytes"
        );
        drop(first);
        assert!(limits.reserve_body(10_000).is_some(), "freed when dropped");
    }

    #[test]
    fn one_backtest_and_one_validation_run_at_a_time() {
        let limits = Limits::new(&ServerConfig::default(), 1024);
        let backtest = limits.start_backtest().expect("free");
        assert!(limits.start_backtest().is_none(), "one at a time");
        // Handlers share the state by cloning it: a clone shares the slot.
        let shared = limits.clone();
        assert!(
            shared.start_backtest().is_none(),
            "per instance, not per clone"
        );
        let validation = limits.start_validation().expect("a slot of its own");
        assert!(limits.start_validation().is_none());
        drop((backtest, validation));
        assert!(limits.start_backtest().is_some(), "freed when dropped");
        assert!(limits.start_validation().is_some());
    }

    #[test]
    fn settings_that_cannot_work_are_named() {
        assert!(ServerConfig::default().problems(1 << 20).is_empty());
        let server = ServerConfig {
            max_connections: 0,
            idle_timeout: Duration::from_secs(60),
            ingest_bytes_in_flight: Some(1000),
            ..ServerConfig::default()
        };
        let keys: Vec<String> = server.problems(1 << 20).into_iter().map(|p| p.0).collect();
        assert_eq!(
            keys,
            [
                "server.max_connections",
                "server.idle_timeout",
                "server.ingest_bytes_in_flight"
            ]
        );
    }
}
