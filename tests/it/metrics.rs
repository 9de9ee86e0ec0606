//! `/metrics` as Prometheus scrapes it, on both backends: strict Prometheus text whose counters
//! and histograms move as events flow and whose gauges are the store's; open unless
//! `metrics.token` is set. And the engine's log: lines of an event's processing and of its
//! action's delivery carry the event, rule and action ids.

use std::collections::{BTreeMap, BTreeSet};

use crate::support::Receiver;

crate::on_both_backends!(cases:
    metrics_count_what_flows,
    the_gauges_count_parked_events_and_pending_checks,
    metrics_need_a_token_only_once_one_is_set,
);

mod cases {
    use serde_json::json;
    use signalbox::auth::{Role, TokenConfig};
    use signalbox::config::Secret;

    use super::{Scrape, scrape};
    use crate::rules::write_rules;
    use crate::support::{Receiver, TestApp, TestDb, test_config};

    pub(super) async fn metrics_count_what_flows(db: TestDb) {
        let receiver = Receiver::start().await;
        let dir = tempfile::tempdir().unwrap();
        write_rules(
            dir.path(),
            &[(
                "r.yaml",
                &format!(
                    "version: 1\nid: metered_rule\non: [sms.delivery_failed]\nactions:\n  - {{ type: webhook, url: \"{}/m\" }}\n",
                    receiver.url
                ),
            )],
        );
        let mut config = test_config(&db);
        config.rules_dir = dir.path().to_owned();
        let app = TestApp::spawn(config).await;
        let before = scrape(&app, None).await.1;
        let (status, receipt) = app
            .post(
                "/v1/events",
                json!({"type": "sms.delivery_failed", "source_event_id": "m-1",
                       "subject": {"claim": "C-9"}})
                .to_string(),
            )
            .await;
        assert_eq!(status, 201, "{receipt}");
        let id = receipt["id"].as_str().unwrap();
        receiver.wait_for(1).await;
        crate::support::wait_actions_settled(&app.store, 1).await;
        assert_eq!(app.get(&format!("/v1/events/{id}")).await.0, 200);
        assert_eq!(app.get("/no/such/path").await.0, 404);
        let after = scrape(&app, None).await.1;

        let webhook = [("kind", "webhook")];
        let moved: &[(&str, &[(&str, &str)])] = &[
            (
                "signalbox_deliveries_total",
                &[("source", "api"), ("verification", "unsigned")],
            ),
            ("signalbox_events_total", &[("type", "sms.delivery_failed")]),
            (
                "signalbox_evaluations_total",
                &[("rule", "metered_rule"), ("outcome", "fired")],
            ),
            ("signalbox_rule_fired_total", &[("rule", "metered_rule")]),
            ("signalbox_actions_planned_total", &webhook),
            (
                "signalbox_actions_finished_total",
                &[("kind", "webhook"), ("outcome", "delivered")],
            ),
            (
                "signalbox_action_attempts_total",
                &[("kind", "webhook"), ("outcome", "delivered")],
            ),
            ("signalbox_action_attempt_duration_seconds_count", &webhook),
            (
                "signalbox_http_request_duration_seconds_count",
                &[
                    ("route", "/v1/events"),
                    ("method", "POST"),
                    ("status", "2xx"),
                ],
            ),
            (
                "signalbox_http_request_duration_seconds_count",
                &[
                    ("route", "/v1/events/{id}"),
                    ("method", "GET"),
                    ("status", "2xx"),
                ],
            ),
            (
                "signalbox_http_request_duration_seconds_count",
                &[("route", "unmatched"), ("method", "GET"), ("status", "4xx")],
            ),
        ];
        for (name, labels) in moved {
            assert!(
                after.value(name, labels) >= before.value(name, labels) + 1.0,
                "{name}{labels:?} did not move: {} then {}",
                before.value(name, labels),
                after.value(name, labels)
            );
        }
        // Histograms, not summaries; labels are templates and words, never ids or paths.
        for histogram in [
            "signalbox_http_request_duration_seconds",
            "signalbox_action_attempt_duration_seconds",
        ] {
            assert_eq!(after.types[histogram], "histogram");
        }
        assert!(
            after.samples.iter().all(|s| s
                .labels
                .values()
                .all(|v| !v.contains(id) && v != "/no/such/path")),
            "a label carries an id or a path"
        );
        // This engine's gauges: everything delivered, nothing waiting, one rule running.
        for (gauge, value) in [
            ("signalbox_outbox_pending", 0.0),
            ("signalbox_outbox_oldest_due_seconds", 0.0),
            ("signalbox_events_parked", 0.0),
            ("signalbox_checks_pending", 0.0),
            ("signalbox_rules_in_force", 1.0),
            ("signalbox_rules_degraded", 0.0),
        ] {
            assert_eq!(after.types[gauge], "gauge");
            assert_eq!(after.value(gauge, &[]), value, "{gauge}");
        }
        assert_eq!(after.types["signalbox_processing_lag_seconds"], "gauge");
        // docs/api.md lists every metric.
        let doc = std::fs::read_to_string(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/api.md"),
        )
        .unwrap();
        for family in after.types.keys() {
            assert!(
                doc.contains(&format!("`{family}`")),
                "{family} is not in docs/api.md"
            );
        }
        app.stop().await;
    }

    /// Events whose processing failed on every attempt are parked, and counted; checks that
    /// wait for a follow-up are counted.
    pub(super) async fn the_gauges_count_parked_events_and_pending_checks(db: TestDb) {
        let dir = tempfile::tempdir().unwrap();
        write_rules(
            dir.path(),
            &[(
                "rules.yaml",
                "version: 1\nrules:\n  - id: poisoned_gauge\n    on: [claim.created]\n    actions: [{type: emit, event_type: claim.flagged}]\n  - id: unkept\n    on: [promise_to_pay.created]\n    unless: { event: payment.received, same: claim, within: 3d }\n    actions: [{ type: emit, event_type: promise.unkept }]\n",
            )],
        );
        let mut config = test_config(&db);
        config.rules_dir = dir.path().to_owned();
        config.processing.retry.max_attempts = 1;
        let app = TestApp::spawn(config).await;
        let gauges = |scrape: &Scrape| {
            (
                scrape.value("signalbox_events_parked", &[]),
                scrape.value("signalbox_checks_pending", &[]),
            )
        };
        assert_eq!(gauges(&scrape(&app, None).await.1), (0.0, 0.0));
        poison(&db).await;
        for (n, kind) in [(1, "claim.created"), (2, "promise_to_pay.created")] {
            let (status, receipt) = app
                .post(
                    "/v1/events",
                    json!({"type": kind, "source_event_id": format!("g-{n}"),
                           "subject": {"claim": "C-1"}})
                    .to_string(),
                )
                .await;
            assert_eq!(status, 201, "{receipt}");
        }
        app.wait_processed().await;
        let (status, failed) = app.get("/v1/events?state=failed").await;
        assert_eq!(status, 200);
        assert_eq!(failed["events"].as_array().unwrap().len(), 1, "{failed}");
        assert_eq!(gauges(&scrape(&app, None).await.1), (1.0, 1.0));
        app.stop().await;
    }

    /// Makes storing an evaluation of `poisoned_gauge` fail, as a store refusing one event's
    /// records would.
    async fn poison(db: &TestDb) {
        if db.url.starts_with("sqlite:") {
            let pool = sqlx::SqlitePool::connect(&db.url).await.unwrap();
            sqlx::query("CREATE TRIGGER poison BEFORE INSERT ON evaluations WHEN NEW.rule_id = 'poisoned_gauge' BEGIN SELECT RAISE(ABORT, 'poisoned for the test'); END")
                .execute(&pool).await.unwrap();
            pool.close().await;
        } else {
            let pool = sqlx::PgPool::connect(&db.url).await.unwrap();
            sqlx::query("CREATE FUNCTION poison() RETURNS trigger AS $$ BEGIN IF NEW.rule_id = 'poisoned_gauge' THEN RAISE EXCEPTION 'poisoned for the test'; END IF; RETURN NEW; END $$ LANGUAGE plpgsql")
                .execute(&pool).await.unwrap();
            sqlx::query("CREATE TRIGGER poison BEFORE INSERT ON evaluations FOR EACH ROW EXECUTE FUNCTION poison()")
                .execute(&pool).await.unwrap();
            pool.close().await;
        }
    }

    const METRICS_TOKEN: &str = "metrics-0123456789abcdefghij";
    const READ_TOKEN: &str = "tok-read-0123456789abcdefgh";
    const INGEST_TOKEN: &str = "tok-ingest-0123456789abcdef";

    /// Without `metrics.token`, `/metrics` answers anyone, even once the API has tokens; with
    /// it, only that token or a read token, even while the rest of the API is open.
    pub(super) async fn metrics_need_a_token_only_once_one_is_set(db: TestDb) {
        let tokens = vec![
            TokenConfig {
                name: "reader".into(),
                token: Secret::new(READ_TOKEN.into()),
                roles: vec![Role::Read],
                sources: None,
            },
            TokenConfig {
                name: "ingester".into(),
                token: Secret::new(INGEST_TOKEN.into()),
                roles: vec![Role::Ingest],
                sources: None,
            },
        ];
        let metrics_token = Some(Secret::new(METRICS_TOKEN.into()));
        let wrong = "metrics-0123456789abcdefghiJ";

        // API tokens, no metrics token: Prometheus scrapes without one.
        let mut config = test_config(&db);
        config.tokens = tokens.clone();
        config.validate().unwrap();
        let app = TestApp::spawn(config).await;
        assert_eq!(scrape(&app, None).await.0, 200);
        assert_eq!(app.get("/v1/events").await.0, 401, "the API stays closed");
        app.stop().await;

        // A metrics token, and the API open (no tokens).
        let mut config = test_config(&TestDb::borrowed(&db));
        config.metrics.token = metrics_token.clone();
        config.validate().unwrap();
        let app = TestApp::spawn(config).await;
        let (status, refused) = scrape(&app, None).await;
        assert_eq!(status, 401);
        assert!(refused.text.contains("metrics.token"), "{}", refused.text);
        assert_eq!(scrape(&app, Some(wrong)).await.0, 401);
        assert_eq!(scrape(&app, Some(METRICS_TOKEN)).await.0, 200);
        assert_eq!(app.get("/v1/events").await.0, 200, "the API stays open");
        app.stop().await;

        // Both: the metrics token or a read token; a token without the read role is refused.
        let mut config = test_config(&TestDb::borrowed(&db));
        config.tokens = tokens;
        config.metrics.token = metrics_token;
        let app = TestApp::spawn(config).await;
        for (token, status) in [
            (None, 401),
            (Some(wrong), 401),
            (Some(METRICS_TOKEN), 200),
            (Some(READ_TOKEN), 200),
            (Some(INGEST_TOKEN), 403),
        ] {
            assert_eq!(scrape(&app, token).await.0, status, "{token:?}");
        }
        app.stop().await;
    }
}

/// A rules change that is refused is counted, and so is one applied; the running rules stay.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rule_reloads_are_counted_by_outcome() {
    let db = crate::support::sqlite_db().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let good = "version: 1\nid: reloaded\non: [claim.created]\nactions: [{type: emit, event_type: claim.flagged}]\n";
    crate::rules::write_rules(dir.path(), &[("r.yaml", good)]);
    let mut config = crate::support::test_config(&db);
    config.rules_dir = dir.path().to_owned();
    let app = crate::support::TestApp::spawn(config).await;
    let rules = app.app.as_ref().unwrap().rules.clone();
    let reloads = |scrape: &Scrape, outcome: &str| {
        scrape.value("signalbox_rules_reloads_total", &[("outcome", outcome)])
    };
    let before = scrape(&app, None).await.1;

    crate::rules::write_rules(dir.path(), &[("r.yaml", "version: 1\nid: [broken\n")]);
    assert!(rules.reload().is_err());
    let refused = scrape(&app, None).await.1;
    assert!(reloads(&refused, "refused") >= reloads(&before, "refused") + 1.0);
    assert_eq!(refused.value("signalbox_rules_reload_refused", &[]), 1.0);
    assert_eq!(refused.value("signalbox_rules_in_force", &[]), 1.0);

    crate::rules::write_rules(dir.path(), &[("r.yaml", good)]);
    rules.reload().unwrap();
    let applied = scrape(&app, None).await.1;
    assert!(reloads(&applied, "applied") >= reloads(&before, "applied") + 1.0);
    assert_eq!(applied.value("signalbox_rules_reload_refused", &[]), 0.0);
    app.stop().await;
}

/// The engine's JSON log: a line written while an event is processed (a script's `print`, at
/// debug) carries the event's id and the rule's; a line of its action's delivery (a failed
/// attempt, at info) carries the action's, the event's and the rule's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn log_lines_of_processing_and_delivery_carry_the_event_and_rule() {
    crate::support::init();
    let receiver = Receiver::start().await;
    receiver.answer(&[crate::support::Answer::status(503)]);
    let dir = tempfile::tempdir().unwrap();
    crate::rules::write_rules(
        &dir.path().join("rules"),
        &[(
            "traced.yaml",
            &format!(
                "version: 1\nid: traced\non: [sms.delivery_failed]\nscript: |\n  print(\"checking \" + event.subject.claim);\nactions:\n  - {{ type: webhook, url: \"{}/t\" }}\n",
                receiver.url
            ),
        )],
    );
    let db = format!("sqlite://{}", dir.path().join("logs.db").display());
    let config = "log_format: json\nactions:\n  allowed_hosts: [\"127.0.0.1\"]\n  webhook:\n    allowed_hosts: [\"127.0.0.1\"]\n    retry: { policy: fixed, max_attempts: 2, initial_delay: 50ms, max_delay: 50ms }\n";
    let (child, port) =
        crate::support::spawn_engine_logging(dir.path(), &db, config, Some("info,signalbox=debug"));
    let _engine = Kill(child);
    let base = format!("http://127.0.0.1:{port}");
    crate::support::wait_healthy(&base).await;
    let receipt: serde_json::Value = reqwest::Client::new()
        .post(format!("{base}/v1/events"))
        .body(
            serde_json::json!({"type": "sms.delivery_failed", "source_event_id": "l-1",
                               "subject": {"claim": "C-7"}})
            .to_string(),
        )
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let event_id = receipt["id"].as_str().expect("an event id").to_owned();
    // The retry is the second request.
    receiver.wait_for(2).await;

    // The lines are written as they happen; the second attempt is after the first's line.
    let log = dir.path().join("engine.log");
    let lines: Vec<serde_json::Value> = std::fs::read_to_string(&log)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    let line = |message: &str| {
        lines
            .iter()
            .find(|l| l["fields"]["message"] == message)
            .unwrap_or_else(|| panic!("no '{message}' line in {lines:#?}"))
    };
    // What the spans around a line carry, by field.
    let context = |line: &serde_json::Value| -> BTreeMap<String, String> {
        line["spans"]
            .as_array()
            .into_iter()
            .flatten()
            .flat_map(|span| span.as_object().unwrap())
            .filter(|(key, _)| *key != "name")
            .map(|(key, value)| (key.clone(), value.as_str().unwrap().to_owned()))
            .collect()
    };
    let printed = line("script print");
    assert_eq!(printed["fields"]["text"], "checking C-7");
    let ids = context(printed);
    assert_eq!(ids.get("event_id"), Some(&event_id), "{printed}");
    assert_eq!(ids.get("rule_id").map(String::as_str), Some("traced"));

    let retried = line("delivery failed, will retry");
    let ids = context(retried);
    assert_eq!(ids.get("event_id"), Some(&event_id), "{retried}");
    assert_eq!(ids.get("rule_id").map(String::as_str), Some("traced"));
    assert!(
        ids.get("action_id")
            .is_some_and(|id| id.starts_with("act_")),
        "{retried}"
    );
}

struct Kill(std::process::Child);

impl Drop for Kill {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `GET /metrics` with `token` as a bearer: the status, and the scrape (checked as
/// Prometheus text when 200).
async fn scrape(app: &crate::support::TestApp, token: Option<&str>) -> (u16, Scrape) {
    let mut request = app.client.get(format!("{}/metrics", app.base));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let content_type = response
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_owned());
    let text = response.text().await.unwrap();
    if status != 200 {
        return (
            status,
            Scrape {
                text,
                ..Scrape::default()
            },
        );
    }
    assert_eq!(
        content_type.as_deref(),
        Some("text/plain; version=0.0.4; charset=utf-8")
    );
    (status, Scrape::parse(&text))
}

/// One sample line.
#[derive(Debug)]
pub(crate) struct Sample {
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub value: f64,
}

/// A scrape read strictly as the Prometheus text format (version 0.0.4): each line a
/// `# HELP`, a `# TYPE`, another comment, blank, or a sample of a family whose `# TYPE` came
/// before it; names, label names and label values (with their escapes) as the format has
/// them; no series twice; counters not negative; each histogram with increasing `le` bounds,
/// cumulative counts, a `+Inf` bucket equal to its `_count`, and a `_sum`. Panics at the
/// first deviation, naming the line.
#[derive(Debug, Default)]
pub(crate) struct Scrape {
    pub text: String,
    pub types: BTreeMap<String, String>,
    pub samples: Vec<Sample>,
}

impl Scrape {
    pub(crate) fn parse(text: &str) -> Self {
        assert!(
            text.is_empty() || text.ends_with('\n'),
            "the text ends with a line feed"
        );
        let mut scrape = Scrape {
            text: text.to_owned(),
            ..Scrape::default()
        };
        let mut helped = BTreeSet::new();
        let mut sampled = BTreeSet::new();
        let mut series = BTreeSet::new();
        for (n, line) in text.lines().enumerate() {
            let fail = |why: &str| -> ! { panic!("line {}: {why}: {line:?}", n + 1) };
            if line.is_empty() {
                continue;
            }
            if let Some(comment) = line.strip_prefix("# ") {
                let mut words = comment.splitn(3, ' ');
                match (words.next(), words.next(), words.next()) {
                    (Some("HELP"), Some(name), Some(help)) => {
                        if !is_metric_name(name) {
                            fail("not a metric name");
                        }
                        if !helped.insert(name.to_owned()) {
                            fail("a second HELP");
                        }
                        let mut chars = help.chars();
                        while let Some(c) = chars.next() {
                            if c == '\\' && !matches!(chars.next(), Some('\\' | 'n')) {
                                fail("an escape other than \\\\ or \\n in HELP");
                            }
                        }
                    }
                    (Some("TYPE"), Some(name), Some(kind)) => {
                        if !is_metric_name(name) {
                            fail("not a metric name");
                        }
                        if !["counter", "gauge", "histogram", "summary", "untyped"].contains(&kind)
                        {
                            fail("not a metric type");
                        }
                        if sampled.contains(name) {
                            fail("TYPE after the family's samples");
                        }
                        if scrape.types.insert(name.into(), kind.into()).is_some() {
                            fail("a second TYPE");
                        }
                    }
                    (Some("HELP" | "TYPE"), ..) => fail("HELP or TYPE without its parts"),
                    _ => {}
                }
                continue;
            }
            if line.starts_with('#') {
                continue;
            }
            let sample = parse_sample(line).unwrap_or_else(|why| fail(&why));
            let Some((family, kind)) = scrape.family(&sample.name) else {
                fail("a sample of no declared family")
            };
            if kind == "counter" && (sample.value.is_nan() || sample.value < 0.0) {
                fail("a counter below zero");
            }
            sampled.insert(family);
            if !series.insert((sample.name.clone(), format!("{:?}", sample.labels))) {
                fail("the same series twice");
            }
            scrape.samples.push(sample);
        }
        scrape.check_histograms();
        scrape
    }

    /// The family a sample name belongs to, and its type.
    fn family(&self, name: &str) -> Option<(String, String)> {
        if let Some(kind) = self.types.get(name) {
            return Some((name.to_owned(), kind.clone()));
        }
        ["_bucket", "_sum", "_count"].iter().find_map(|suffix| {
            let base = name.strip_suffix(suffix)?;
            let kind = self.types.get(base)?;
            (kind == "histogram" || (kind == "summary" && *suffix != "_bucket"))
                .then(|| (base.to_owned(), kind.clone()))
        })
    }

    fn check_histograms(&self) {
        for (family, _) in self.types.iter().filter(|(_, kind)| *kind == "histogram") {
            let mut buckets: BTreeMap<String, Vec<(f64, f64)>> = BTreeMap::new();
            for sample in self
                .samples
                .iter()
                .filter(|s| s.name == format!("{family}_bucket"))
            {
                let mut labels = sample.labels.clone();
                let le = labels
                    .remove("le")
                    .unwrap_or_else(|| panic!("{family}: a bucket without le"));
                let bound = parse_value(&le).unwrap_or_else(|e| panic!("{family}: le {le:?}: {e}"));
                buckets
                    .entry(format!("{labels:?}"))
                    .or_default()
                    .push((bound, sample.value));
            }
            for (labels, counts) in &buckets {
                for pair in counts.windows(2) {
                    assert!(
                        pair[0].0 < pair[1].0 && pair[0].1 <= pair[1].1,
                        "{family}{labels}: buckets not increasing: {counts:?}"
                    );
                }
                let last = counts.last().expect("a bucket");
                assert_eq!(last.0, f64::INFINITY, "{family}{labels}: no +Inf bucket");
                let of = |suffix: &str| {
                    self.samples
                        .iter()
                        .find(|s| {
                            s.name == format!("{family}{suffix}")
                                && format!("{:?}", s.labels) == *labels
                        })
                        .unwrap_or_else(|| panic!("{family}{labels}: no {suffix}"))
                        .value
                };
                assert_eq!(of("_count"), last.1, "{family}{labels}: +Inf is not _count");
                of("_sum");
            }
        }
    }

    /// The sum of the samples named `name` that have all of `labels` (0 when none has).
    pub(crate) fn value(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.samples
            .iter()
            .filter(|s| {
                s.name == name
                    && labels
                        .iter()
                        .all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v))
            })
            .map(|s| s.value)
            .sum()
    }
}

fn is_metric_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

fn is_label_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
        && !name.starts_with("__")
}

/// A sample value: a float, `+Inf`, `-Inf` or `NaN`.
fn parse_value(text: &str) -> Result<f64, String> {
    match text {
        "+Inf" => Ok(f64::INFINITY),
        "-Inf" => Ok(f64::NEG_INFINITY),
        "NaN" => Ok(f64::NAN),
        _ if text
            .chars()
            .all(|c| c.is_ascii_digit() || "+-.eE".contains(c)) =>
        {
            text.parse().map_err(|e| format!("not a number: {e}"))
        }
        _ => Err("not a number".into()),
    }
}

/// `name{label="value",...} value [timestamp]`.
fn parse_sample(line: &str) -> Result<Sample, String> {
    let end = line.find(['{', ' ']).ok_or("no value")?;
    let name = &line[..end];
    if !is_metric_name(name) {
        return Err("not a metric name".into());
    }
    let mut rest = &line[end..];
    let mut labels = BTreeMap::new();
    if let Some(mut inside) = rest.strip_prefix('{') {
        loop {
            if let Some(after) = inside.strip_prefix('}') {
                rest = after;
                break;
            }
            let eq = inside.find('=').ok_or("a label without =")?;
            let label = &inside[..eq];
            if !is_label_name(label) {
                return Err(format!("not a label name: {label:?}"));
            }
            let quoted = inside[eq + 1..]
                .strip_prefix('"')
                .ok_or("a label value not in quotes")?;
            let mut value = String::new();
            let mut chars = quoted.char_indices();
            let close = loop {
                match chars.next() {
                    None => return Err("a label value not closed".into()),
                    Some((i, '"')) => break i,
                    Some((_, '\\')) => match chars.next() {
                        Some((_, '\\')) => value.push('\\'),
                        Some((_, '"')) => value.push('"'),
                        Some((_, 'n')) => value.push('\n'),
                        _ => return Err("an escape other than \\\\, \\\" or \\n".into()),
                    },
                    Some((_, '\n')) => return Err("a raw line feed in a label value".into()),
                    Some((_, c)) => value.push(c),
                }
            };
            if labels.insert(label.to_owned(), value).is_some() {
                return Err(format!("label {label} twice"));
            }
            inside = &quoted[close + 1..];
            if let Some(after) = inside.strip_prefix(',') {
                inside = after;
            } else if !inside.starts_with('}') {
                return Err("labels not separated by commas".into());
            }
        }
    }
    let mut parts = rest
        .strip_prefix(' ')
        .ok_or("no space before the value")?
        .split(' ');
    let value = parse_value(parts.next().unwrap_or_default())?;
    if let Some(timestamp) = parts.next() {
        timestamp
            .parse::<i64>()
            .map_err(|e| format!("not a timestamp: {e}"))?;
    }
    if parts.next().is_some() {
        return Err("more after the timestamp".into());
    }
    Ok(Sample {
        name: name.to_owned(),
        labels,
        value,
    })
}

#[test]
fn the_strict_reading_refuses_what_prometheus_would() {
    let good = "# HELP a_total what a counts\n# TYPE a_total counter\na_total{route=\"/v1/events/{id}\",x=\"q\\\"\\n\\\\\"} 3\n\n# TYPE h histogram\nh_bucket{le=\"0.5\"} 1\nh_bucket{le=\"+Inf\"} 2\nh_sum 0.7\nh_count 2\n";
    let scrape = Scrape::parse(good);
    assert_eq!(
        scrape.value("a_total", &[("route", "/v1/events/{id}")]),
        3.0
    );
    assert_eq!(scrape.samples[0].labels["x"], "q\"\n\\");
    for bad in [
        "a_total 1\n",                                                    // no TYPE
        "# TYPE a_total counter\na_total{x=\"1} 1\n",                     // value not closed
        "# TYPE a_total counter\na_total{x=1} 1\n",                       // not quoted
        "# TYPE a_total counter\na_total{x=\"\\t\"} 1\n",                 // bad escape
        "# TYPE a_total counter\na_total 1\na_total 2\n",                 // series twice
        "# TYPE a_total counter\na_total one\n",                          // not a number
        "# TYPE a_total counter\na_total -1\n",                           // negative counter
        "# TYPE a_total counter\na_total 1\n# TYPE a_total counter\n",    // TYPE twice
        "# TYPE h histogram\nh_bucket{le=\"1\"} 2\nh_sum 1\nh_count 2\n", // no +Inf
        "# TYPE h histogram\nh_bucket{le=\"1\"} 3\nh_bucket{le=\"+Inf\"} 2\nh_sum 1\nh_count 2\n",
        "# TYPE a_total counter\na_total 1", // no final line feed
    ] {
        let refused = std::panic::catch_unwind(|| Scrape::parse(bad));
        assert!(refused.is_err(), "accepted: {bad:?}");
    }
}
