//! The web console: its files served with a strict policy and no token, `GET /v1/whoami`, the
//! overview's counts (`/v1/stats/hourly`, `/v1/stats/queues`) on both backends; and the whole
//! console driven in headless Chromium against a real engine binary (SQLite, one browser
//! launch): sign in, a claim's timeline, a fired rule, a playground backtest, retrying a dead
//! action as an operator and being refused as a reader.

use std::time::Duration;

use serde_json::{Value, json};
use signalbox::auth::{Role, TokenConfig};
use signalbox::config::{Config, Secret};

use crate::support::{TestDb, test_config};

crate::on_both_backends!(cases:
    the_console_is_served_without_a_token_under_a_strict_policy,
    whoami_names_the_token_its_roles_and_what_they_allow,
    hourly_counts_put_events_evaluations_and_attempts_in_their_hours,
    queue_counts_show_the_outbox_dead_actions_and_parked_events,
);

const READER: &str = "reader-token-0123456789abcdef";
const OPERATOR: &str = "operator-token-0123456789abcdef";
const INGEST: &str = "ingest-token-0123456789abcdef";

fn with_tokens(mut config: Config) -> Config {
    for (name, token, role) in [
        ("reader", READER, Role::Read),
        ("operator", OPERATOR, Role::Operate),
        ("ingest", INGEST, Role::Ingest),
    ] {
        config.tokens.push(TokenConfig {
            name: name.into(),
            token: Secret::new(token.into()),
            roles: vec![role],
            sources: None,
        });
    }
    config
}

mod cases {
    use chrono::{DateTime, Utc};
    use signalbox::clock::{ManualClock, SharedClock};

    use super::*;
    use crate::rules::write_rules;
    use crate::support::{Answer, Receiver, TestApp};

    async fn get(app: &TestApp, path: &str, token: Option<&str>) -> (u16, Value) {
        let mut request = app.client.get(format!("{}{path}", app.base));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    async fn post_event(app: &TestApp, id: &str, claim: &str, amount: &str) {
        let response = app
            .client
            .post(format!("{}/v1/events", app.base))
            .bearer_auth(INGEST)
            .body(
                json!({"type": "promise_to_pay.expired", "source": "crm", "source_event_id": id,
                       "occurred_at": "2026-12-01T08:00:00Z", "subject": {"claim": claim},
                       "amount": {"value": amount, "currency": "EUR"}})
                .to_string(),
            )
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 201, "{}", response.text().await.unwrap());
    }

    pub(super) async fn the_console_is_served_without_a_token_under_a_strict_policy(db: TestDb) {
        let app = TestApp::spawn(with_tokens(test_config(&db))).await;
        let page = app
            .client
            .get(format!("{}/console/", app.base))
            .send()
            .await
            .unwrap();
        assert_eq!(page.status(), 200);
        let csp = page.headers()["content-security-policy"].to_str().unwrap();
        assert!(csp.contains("script-src 'self'") && csp.contains("default-src 'none'"));
        assert!(!csp.contains("unsafe-inline"), "{csp}");
        assert_eq!(page.headers()["x-content-type-options"], "nosniff");
        assert!(
            page.text()
                .await
                .unwrap()
                .contains("<script type=\"module\" src=\"app.js\">")
        );
        let script = app
            .client
            .get(format!("{}/console/pages/timeline.js", app.base))
            .send()
            .await
            .unwrap();
        assert_eq!(script.status(), 200);
        assert_eq!(
            script.headers()["content-type"],
            "text/javascript; charset=utf-8"
        );
        for missing in [
            "/console/nope.js",
            "/console/../Cargo.toml",
            "/console/pages/",
        ] {
            let response = app
                .client
                .get(format!("{}{missing}", app.base))
                .send()
                .await
                .unwrap();
            assert_eq!(response.status(), 404, "{missing}");
        }
        let bare = app
            .client
            .get(format!("{}/console", app.base))
            .send()
            .await
            .unwrap();
        assert_eq!(bare.url().path(), "/console/", "/console redirects");
        // The data is not: the API still wants the token.
        assert_eq!(get(&app, "/v1/stats/queues", None).await.0, 401);
    }

    pub(super) async fn whoami_names_the_token_its_roles_and_what_they_allow(db: TestDb) {
        let app = TestApp::spawn(with_tokens(test_config(&db))).await;
        let (status, me) = get(&app, "/v1/whoami", Some(READER)).await;
        assert_eq!(status, 200);
        assert_eq!(
            me,
            json!({"name": "reader", "roles": ["read"], "open": false,
                   "may": {"ingest": false, "read": true, "operate": false, "admin": false}})
        );
        let (_, me) = get(&app, "/v1/whoami", Some(OPERATOR)).await;
        assert_eq!(me["may"]["read"], true, "operate includes read");
        assert_eq!(me["may"]["operate"], true);
        assert_eq!(me["may"]["admin"], false);
        let (status, me) = get(&app, "/v1/whoami", Some(INGEST)).await;
        assert_eq!(status, 200, "any known token may ask who it is");
        assert_eq!(me["may"]["read"], false);
        assert_eq!(get(&app, "/v1/whoami", None).await.0, 401);
        let (status, refused) = get(&app, "/v1/whoami", Some("sbt_unknown")).await;
        assert_eq!(
            (status, refused["code"].as_str()),
            (401, Some("unauthorized"))
        );

        // With no tokens at all (the quick start), the API is open and says so.
        let open = TestApp::spawn(test_config(&TestDb::borrowed(&db))).await;
        let (status, me) = get(&open, "/v1/whoami", None).await;
        assert_eq!(status, 200);
        assert_eq!(me["open"], true);
        assert_eq!(me["may"]["operate"], true);
    }

    fn at(text: &str) -> DateTime<Utc> {
        text.parse().unwrap()
    }

    pub(super) async fn hourly_counts_put_events_evaluations_and_attempts_in_their_hours(
        db: TestDb,
    ) {
        let receiver = Receiver::start().await;
        let dir = tempfile::tempdir().unwrap();
        write_rules(
            dir.path(),
            &[(
                "hook.yaml",
                &format!(
                    "version: 1\nid: hook\non: [promise_to_pay.expired]\nwhen: event.amount.value > 100\nactions: [{{type: webhook, url: '{}/x'}}]\n",
                    receiver.url
                ),
            )],
        );
        let mut config = with_tokens(test_config(&db));
        config.rules_dir = dir.path().to_owned();
        let clock = ManualClock::new(at("2026-12-01T10:20:00Z"));
        let shared: SharedClock = clock.clone();
        let app = TestApp::spawn_with_clock(config, shared).await;
        post_event(&app, "h-1", "C-1", "150").await;
        post_event(&app, "h-2", "C-2", "50").await;
        crate::support::wait_actions_settled(&app.store, 1).await;
        clock.set(at("2026-12-01T12:40:00Z"));
        post_event(&app, "h-3", "C-3", "250").await;
        crate::support::wait_actions_settled(&app.store, 2).await;

        let (status, body) = get(&app, "/v1/stats/hourly?hours=3", Some(READER)).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["from"], "2026-12-01T10:00:00Z");
        assert_eq!(body["to"], "2026-12-01T13:00:00Z");
        let hours: Vec<(&str, i64, i64, i64)> = body["hours"]
            .as_array()
            .unwrap()
            .iter()
            .map(|h| {
                (
                    h["start"].as_str().unwrap(),
                    h["events"].as_i64().unwrap(),
                    h["evaluations"].as_i64().unwrap(),
                    h["attempts"].as_i64().unwrap(),
                )
            })
            .collect();
        assert_eq!(
            hours,
            [
                ("2026-12-01T10:00:00Z", 2, 1, 1),
                ("2026-12-01T11:00:00Z", 0, 0, 0),
                ("2026-12-01T12:00:00Z", 1, 1, 1),
            ]
        );
        let (_, day) = get(&app, "/v1/stats/hourly", Some(READER)).await;
        assert_eq!(day["hours"].as_array().unwrap().len(), 24, "24 by default");
        for bad in ["0", "169", "x"] {
            let (status, _) =
                get(&app, &format!("/v1/stats/hourly?hours={bad}"), Some(READER)).await;
            assert_eq!(status, 400, "hours={bad}");
        }
        assert_eq!(get(&app, "/v1/stats/hourly", Some(INGEST)).await.0, 403);
    }

    pub(super) async fn queue_counts_show_the_outbox_dead_actions_and_parked_events(db: TestDb) {
        let receiver = Receiver::start().await;
        receiver.answer(&[Answer::status(500); 2]);
        let dir = tempfile::tempdir().unwrap();
        write_rules(
            dir.path(),
            &[(
                "hook.yaml",
                &format!(
                    "version: 1\nid: hook\non: [promise_to_pay.expired]\nactions: [{{type: webhook, url: '{}/x'}}]\n",
                    receiver.url
                ),
            )],
        );
        let mut config = with_tokens(test_config(&db));
        config.rules_dir = dir.path().to_owned();
        config.actions.webhook.retry.max_attempts = 1;
        let app = TestApp::spawn(config).await;
        let (_, empty) = get(&app, "/v1/stats/queues", Some(READER)).await;
        assert_eq!(
            empty,
            json!({"outbox_pending": 0, "outbox_oldest_due_at": null, "dead_actions": 0,
                   "parked_events": 0, "pending_events": 0})
        );
        post_event(&app, "q-1", "C-1", "10").await;
        post_event(&app, "q-2", "C-2", "20").await;
        post_event(&app, "q-3", "C-3", "30").await;
        let (_, delivered, dead) = crate::support::wait_actions_settled(&app.store, 3).await;
        assert_eq!((delivered, dead), (1, 2));
        let (status, counts) = get(&app, "/v1/stats/queues", Some(READER)).await;
        assert_eq!(status, 200);
        assert_eq!(counts["dead_actions"], 2);
        assert_eq!(counts["outbox_pending"], 0);
        assert_eq!(counts["pending_events"], 0);
        assert_eq!(counts["parked_events"], 0);
    }
}

const RULES: &[(&str, &str)] = &[
    (
        "escalate.yaml",
        "version: 1\nid: escalate_expired_promise\nname: Escalate an expired promise\ndescription: A promise to pay over 100 EUR expired; tell the team.\non: [promise_to_pay.expired]\nwhen: event.amount.value > 100\nactions:\n  - { type: emit, event_type: claim.payment_trouble }\n",
    ),
    (
        "small.yaml",
        "version: 1\nid: ignore_small_amounts\non: [promise_to_pay.expired]\nwhen: event.amount.value < 10\nactions:\n  - { type: emit, event_type: claim.payment_trouble }\n",
    ),
    (
        "notify.yaml",
        "version: 1\nid: notify_crm\non: [promise_to_pay.expired]\nactions:\n  - { type: webhook, url: \"RECEIVER/hook\" }\n",
    ),
];

/// What the browser test needs, or a panic saying how to install it.
fn browser_tools() -> std::path::PathBuf {
    let browser = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/browser");
    let node = std::process::Command::new("node").arg("--version").output();
    assert!(
        node.is_ok_and(|o| o.status.success()),
        "the console's browser test needs node: run .ci/tools (it installs nodejs, chromium and tests/browser's packages)"
    );
    assert!(
        browser.join("node_modules/playwright-core").is_dir(),
        "the console's browser test needs playwright-core in tests/browser/node_modules: run .ci/tools (npm ci there)"
    );
    let chromium = std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    assert!(
        std::path::Path::new(&chromium).exists(),
        "the console's browser test needs Debian's chromium at {chromium}: run .ci/tools"
    );
    browser
}

/// The whole console in headless Chromium against a real engine on SQLite (one browser for
/// every flow; tests/browser/console.mjs says what each step checks).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_console_in_a_browser() {
    let browser = browser_tools();
    let db = crate::support::sqlite_db().await.expect("a SQLite file");
    let receiver = crate::support::Receiver::start().await;
    // Both webhooks fail once and die (one attempt allowed); a retry is then delivered.
    receiver.answer(&[crate::support::Answer::status(500); 2]);
    let dir = tempfile::tempdir().unwrap();
    let rules: Vec<(&str, String)> = RULES
        .iter()
        .map(|(name, text)| (*name, text.replace("RECEIVER", &receiver.url)))
        .collect();
    let rules: Vec<(&str, &str)> = rules.iter().map(|(n, t)| (*n, t.as_str())).collect();
    crate::rules::write_rules(&dir.path().join("rules"), &rules);
    let config = format!(
        "tokens:\n  - {{ name: reader, token: {READER}, roles: [read] }}\n  - {{ name: operator, token: {OPERATOR}, roles: [operate] }}\n  - {{ name: ingest, token: {INGEST}, roles: [ingest] }}\nprocessing:\n  poll_interval: 50ms\nactions:\n  poll_interval: 50ms\n  allowed_hosts: [127.0.0.1]\n  webhook:\n    allowed_hosts: [127.0.0.1]\n    retry: {{ max_attempts: 1 }}\n"
    );
    let (child, port) = crate::support::spawn_engine(dir.path(), &db.url, &config);
    let _engine = KillOnDrop(child);
    let base = format!("http://127.0.0.1:{port}");
    crate::support::wait_healthy(&base).await;
    let client = reqwest::Client::new();
    let mut claims = Vec::new();
    for (n, claim, amount) in [(1, "C-1", "192.38"), (2, "C-2", "50.00")] {
        let response = client
            .post(format!("{base}/v1/events"))
            .bearer_auth(INGEST)
            .body(
                json!({"type": "promise_to_pay.expired", "source": "crm",
                       "source_event_id": format!("console-{n}"), "occurred_at": "2026-12-01T08:00:00Z",
                       "subject": {"claim": claim, "debtor": "D-1"},
                       "amount": {"value": amount, "currency": "EUR"}, "data": {"note": "browser test"}})
                .to_string(),
            )
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 201);
        claims.push(claim);
    }
    // Both webhooks dead, every event processed.
    let mut queues = Value::Null;
    for _ in 0..400 {
        queues = client
            .get(format!("{base}/v1/stats/queues"))
            .bearer_auth(READER)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if queues["dead_actions"] == 2 && queues["pending_events"] == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(queues["dead_actions"], 2, "{queues}");

    let shots = std::env::var("CONSOLE_SCREENSHOTS").map_or_else(
        |_| {
            std::path::Path::new(env!("CARGO_TARGET_TMPDIR"))
                .parent()
                .expect("the target folder")
                .join("console-screenshots")
        },
        std::path::PathBuf::from,
    );
    let log = dir.path().join("node.log");
    let mut node = std::process::Command::new("node")
        .arg(browser.join("console.mjs"))
        .env("CONSOLE_URL", &base)
        .env("READER_TOKEN", READER)
        .env("OPERATOR_TOKEN", OPERATOR)
        .env("CLAIM", claims[0])
        .env("CHANGED_CLAIM", claims[1])
        .env("RULE", "escalate_expired_promise")
        .env("SCREENSHOTS", &shots)
        .stdout(std::fs::File::create(&log).unwrap())
        .stderr(std::fs::File::create(dir.path().join("node.err")).unwrap())
        .spawn()
        .expect("node starts");
    let mut status = None;
    for _ in 0..1800 {
        if let Some(done) = node.try_wait().unwrap() {
            status = Some(done);
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    if status.is_none() {
        let _ = node.kill();
        let _ = node.wait();
    }
    let out = format!(
        "{}{}",
        std::fs::read_to_string(&log).unwrap_or_default(),
        std::fs::read_to_string(dir.path().join("node.err")).unwrap_or_default()
    );
    eprintln!("{out}");
    let status = status.unwrap_or_else(|| panic!("the browser test took over 3 minutes:\n{out}"));
    assert!(status.success(), "the browser test failed:\n{out}");
    assert!(out.contains("flows passed"), "{out}");
    // The operator's retry reached the target again, and was delivered.
    receiver.wait_for(3).await;
}

/// Stops the engine however the test ends.
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
