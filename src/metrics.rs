//! Metrics: the process's one Prometheus recorder, rendered on `GET /metrics` (read role).
//! Stages count with the `metrics` macros (`metrics::counter!`); names start `signalbox_`.

use std::sync::OnceLock;

use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// Installs the recorder on first use (one per process: several engines in one test process
/// share it) and returns the handle that renders it.
pub fn handle() -> &'static PrometheusHandle {
    HANDLE.get_or_init(|| {
        let recorder = PrometheusBuilder::new().build_recorder();
        let handle = recorder.handle();
        if metrics::set_global_recorder(recorder).is_err() {
            tracing::warn!(
                "a metrics recorder was already installed; /metrics shows only this one's"
            );
        }
        handle
    })
}

/// The Prometheus text exposition of every metric so far.
pub fn render() -> String {
    handle().render()
}

/// Counts what ingestion stored: deliveries by source and verification outcome
/// (`signalbox_deliveries_total`), new events by type (`signalbox_events_total`; a type outside
/// the catalogue counts as `other`, so a sender cannot grow the label set without bound).
pub fn stored(batch: &[crate::store::Ingest], results: &[Vec<crate::store::Stored>]) {
    let known = known_types();
    for (ingest, stored) in batch.iter().zip(results) {
        let source = if crate::providers::reserved_source(&ingest.delivery.source)
            || ingest.delivery.source == crate::normalize::canonical::DEFAULT_SOURCE
        {
            ingest.delivery.source.clone()
        } else {
            "other".to_owned()
        };
        metrics::counter!(
            "signalbox_deliveries_total",
            "source" => source,
            "verification" => ingest.delivery.verification
        )
        .increment(1);
        for (event, stored) in ingest.events.iter().zip(stored) {
            if matches!(stored, crate::store::Stored::New(_)) {
                let kind = if known.contains(event.kind.as_str()) {
                    event.kind.to_string()
                } else {
                    "other".to_owned()
                };
                metrics::counter!("signalbox_events_total", "type" => kind).increment(1);
            }
        }
    }
}

/// The catalogue's event types, computed once.
fn known_types() -> &'static std::collections::BTreeSet<String> {
    static KNOWN: OnceLock<std::collections::BTreeSet<String>> = OnceLock::new();
    KNOWN.get_or_init(|| {
        let mut known = crate::providers::known_event_types();
        known.extend(crate::normalize::EventType::INTERNAL.map(str::to_owned));
        known
    })
}

/// Gauges read from the store when `/metrics` is scraped: the outbox's pending actions and
/// how long the oldest due one has waited, how far processing lags, pending checks.
pub async fn sample(store: &crate::store::Store, now: chrono::DateTime<chrono::Utc>) {
    match store.outbox_depth(now).await {
        Ok((pending, oldest_due)) => {
            metrics::gauge!("signalbox_outbox_pending").set(pending as f64);
            let age =
                oldest_due.map_or(0.0, |t| (now - t).num_milliseconds().max(0) as f64 / 1000.0);
            metrics::gauge!("signalbox_outbox_oldest_due_seconds").set(age);
        }
        Err(e) => tracing::warn!(error = %e, "cannot read the outbox for /metrics"),
    }
    match store.oldest_due_pending(now).await {
        Ok(oldest) => {
            let lag = oldest.map_or(0.0, |t| (now - t).num_milliseconds().max(0) as f64 / 1000.0);
            metrics::gauge!("signalbox_processing_lag_seconds").set(lag);
        }
        Err(e) => tracing::warn!(error = %e, "cannot read the processing lag for /metrics"),
    }
}
