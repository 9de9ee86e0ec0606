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
