//! Metrics: the process's one Prometheus recorder, rendered on `GET /metrics` (see
//! `api::metrics`, which also samples the store's gauges at each scrape). Stages count with the
//! `metrics` macros (`metrics::counter!`); names start `signalbox_`, and every label takes its
//! values from a closed set (route templates, kinds, outcomes, rule ids), never from a sender.

use std::sync::OnceLock;
use std::time::Duration;

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// HTTP request latency, by matched route template, method and status class.
pub const HTTP_REQUEST_DURATION: &str = "signalbox_http_request_duration_seconds";
/// How long one delivery attempt of an action took, by kind.
pub const ACTION_ATTEMPT_DURATION: &str = "signalbox_action_attempt_duration_seconds";

/// Upper bounds of the request latency buckets: an API answer takes milliseconds; a list
/// over a slow store or a large batch of events, up to seconds.
const HTTP_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];
/// Upper bounds of the attempt duration buckets: a webhook or SMTP exchange, up to the
/// executors' timeouts.
const ATTEMPT_BUCKETS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
];

/// How often recorded histogram samples are folded into their buckets when nobody scrapes
/// (a scrape folds them too): without it they would pile up in memory between scrapes.
const UPKEEP_EVERY: Duration = Duration::from_secs(5);

/// Installs the recorder on first use (one per process: several engines in one test process
/// share it) and returns the handle that renders it.
pub fn handle() -> &'static PrometheusHandle {
    HANDLE.get_or_init(|| {
        let recorder = PrometheusBuilder::new()
            .set_buckets_for_metric(Matcher::Full(HTTP_REQUEST_DURATION.into()), HTTP_BUCKETS)
            .and_then(|b| {
                b.set_buckets_for_metric(
                    Matcher::Full(ACTION_ATTEMPT_DURATION.into()),
                    ATTEMPT_BUCKETS,
                )
            })
            .expect("the bucket lists are not empty")
            .build_recorder();
        let handle = recorder.handle();
        if metrics::set_global_recorder(recorder).is_err() {
            tracing::warn!(
                "a metrics recorder was already installed; /metrics shows only this one's"
            );
        }
        describe();
        let upkeep = handle.clone();
        // A thread, not a task: the recorder outlives any one runtime (tests start several).
        let spawned = std::thread::Builder::new()
            .name("metrics-upkeep".into())
            .spawn(move || {
                loop {
                    std::thread::sleep(UPKEEP_EVERY);
                    upkeep.run_upkeep();
                }
            });
        if let Err(e) = spawned {
            tracing::warn!(error = %e, "cannot start the metrics upkeep; histograms are folded at each scrape only");
        }
        handle
    })
}

/// The `# HELP` line of every metric.
fn describe() {
    use metrics::{describe_counter, describe_gauge, describe_histogram};
    describe_counter!(
        "signalbox_deliveries_total",
        "requests stored by ingestion, by source and verification outcome"
    );
    describe_counter!("signalbox_events_total", "new events stored, by type");
    describe_counter!(
        "signalbox_evaluations_total",
        "rule evaluations, by rule and outcome"
    );
    describe_counter!("signalbox_rule_fired_total", "firings, by rule");
    describe_counter!(
        "signalbox_rule_failures_total",
        "failed evaluations, by rule"
    );
    describe_counter!(
        "signalbox_rule_throttled_total",
        "firings held back by the rule's throttle, by rule"
    );
    describe_counter!(
        "signalbox_actions_planned_total",
        "actions written to the outbox, by kind"
    );
    describe_counter!(
        "signalbox_actions_finished_total",
        "actions that reached their end by delivery, by kind and outcome"
    );
    describe_counter!(
        "signalbox_action_attempts_total",
        "delivery attempts, by kind and outcome"
    );
    describe_histogram!(
        ACTION_ATTEMPT_DURATION,
        metrics::Unit::Seconds,
        "how long one delivery attempt took, by kind"
    );
    describe_histogram!(
        HTTP_REQUEST_DURATION,
        metrics::Unit::Seconds,
        "time to answer an HTTP request, by route template, method and status class"
    );
    describe_counter!(
        "signalbox_api_refused_total",
        "requests refused by the token check, by reason"
    );
    describe_counter!(
        "signalbox_rules_reloads_total",
        "changes of the rules folder, applied or refused"
    );
    describe_counter!("signalbox_retention_removed_total", "rows pruned, by table");
    describe_counter!(
        "signalbox_rejected_unstored_total",
        "refused deliveries answered but not stored"
    );
    describe_counter!(
        "signalbox_connections_refused_total",
        "requests answered 503 on connections beyond server.max_connections"
    );
    describe_gauge!(
        "signalbox_outbox_pending",
        "actions waiting, delayed ones included"
    );
    describe_gauge!(
        "signalbox_outbox_oldest_due_seconds",
        metrics::Unit::Seconds,
        "how long the oldest due action has waited"
    );
    describe_gauge!(
        "signalbox_processing_lag_seconds",
        metrics::Unit::Seconds,
        "how long the oldest due event has waited for processing"
    );
    describe_gauge!(
        "signalbox_events_parked",
        "events parked as failed after their last processing attempt"
    );
    describe_gauge!(
        "signalbox_checks_pending",
        "checks waiting for a follow-up event or their deadline"
    );
    describe_gauge!("signalbox_rules_in_force", "rules running");
    describe_gauge!(
        "signalbox_rules_degraded",
        "1 while the rules folder's rules are not the ones in force"
    );
    describe_gauge!(
        "signalbox_rules_reload_refused",
        "1 while the last change of the rules folder was refused"
    );
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
