//! Actions delivered to real targets on loopback, on both backends.

crate::on_both_backends!(cases:
    webhook_is_signed_and_retried_after_500_until_delivered,
    retry_after_of_a_429_is_honored,
    stalled_and_refused_targets_are_retried_then_dead_lettered_and_retry_puts_them_back,
    client_errors_fail_at_once,
    email_reaches_a_real_smtp_server,
    email_without_an_smtp_server_is_dead_with_the_reason,
    strategy_pause_is_sent_once_and_resume_after,
    emit_chains_rules_and_stops_at_the_depth_limit,
    a_graceful_stop_under_load_leaves_nothing_leased_for_the_next_instance,
);

mod cases {
    use std::time::Duration;

    use serde_json::{Value, json};
    use signalbox::actions::email::SmtpTls;
    use signalbox::actions::strategy::ConnectorConfig;
    use signalbox::config::{Config, Secret};
    use signalbox::store::ActionStatus;

    use crate::rules::write_rules;
    use crate::support::{
        Answer, Receiver, SmtpServer, TestApp, TestDb, test_config, wait_actions_settled,
    };

    /// An engine on `db` with `rules` as its only rule file, configured further by `configure`.
    pub(super) async fn app(
        db: &TestDb,
        rules: &str,
        configure: impl FnOnce(&mut Config),
    ) -> (TestApp, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        write_rules(dir.path(), &[("rules.yaml", rules)]);
        let mut config = test_config(db);
        config.rules_dir = dir.path().to_owned();
        configure(&mut config);
        (TestApp::spawn(config).await, dir)
    }

    fn webhook_rule(url: &str, extra: &str) -> String {
        format!(
            "version: 1\nid: notify\non: [claim.created]\nactions:\n  - type: webhook\n    url: \"{url}/hook/{{{{ event.subject.claim }}}}\"\n    body: {{ claim: \"{{{{ event.subject.claim }}}}\" }}\n{extra}"
        )
    }

    async fn post_claim(app: &TestApp, id: &str) {
        let (status, body) = app
            .post(
                "/v1/events",
                json!({"type": "claim.created", "source_event_id": id, "subject": {"claim": id}})
                    .to_string(),
            )
            .await;
        assert_eq!(status, 201, "{body}");
    }

    async fn only_action(app: &TestApp) -> signalbox::store::ActionSummary {
        let actions = app.store.list_actions(None, None, 10).await.unwrap();
        assert_eq!(actions.len(), 1, "{actions:?}");
        actions.into_iter().next().unwrap()
    }

    pub(super) async fn webhook_is_signed_and_retried_after_500_until_delivered(db: TestDb) {
        let receiver = Receiver::start().await;
        receiver.answer(&[Answer::status(500)]);
        let (app, _dir) = app(&db, &webhook_rule(&receiver.url, ""), |c| {
            c.actions.webhook.signing_secrets = vec![Secret::new("hook-secret".into())]
        })
        .await;
        post_claim(&app, "C-1").await;
        let requests = receiver.wait_for(2).await;
        assert_eq!(wait_actions_settled(&app.store, 1).await, (0, 1, 0));
        let action = only_action(&app).await;
        assert_eq!((action.status.as_str(), action.attempts), ("delivered", 2));
        assert_eq!(requests.len(), 2, "delivered once after one failure");
        for r in &requests {
            assert_eq!(r.path, "/hook/C-1");
            assert_eq!(
                r.headers["idempotency-key"], action.id,
                "the same key on every attempt"
            );
            assert_eq!(
                serde_json::from_slice::<Value>(&r.body).unwrap(),
                json!({"claim": "C-1"})
            );
            // The receiver's check: HMAC-SHA256 of "<t>.<body>" with the shared secret.
            let header = &r.headers["signalbox-signature"];
            let t = header.split(',').next().unwrap().trim_start_matches("t=");
            let expected = hex::encode(signalbox::providers::signature::hmac_sha256(
                b"hook-secret",
                &[format!("{t}.").as_bytes(), &r.body],
            ));
            assert!(header.contains(&format!("v1={expected}")), "{header}");
        }
        let attempts = app.store.attempts(&action.id).await.unwrap();
        let summary: Vec<(String, Option<i64>)> = attempts
            .iter()
            .map(|a| (a.outcome.as_str().to_owned(), a.status_code))
            .collect();
        assert_eq!(
            summary,
            [
                ("retry".to_owned(), Some(500)),
                ("delivered".to_owned(), Some(200))
            ]
        );
        app.stop().await;
    }

    pub(super) async fn retry_after_of_a_429_is_honored(db: TestDb) {
        let receiver = Receiver::start().await;
        receiver.answer(&[Answer {
            status: 429,
            retry_after: Some(1),
            delay: Duration::ZERO,
        }]);
        // The engine's time stands still until the test moves it past the Retry-After.
        let clock = signalbox::clock::ManualClock::starting_now();
        let dir = tempfile::tempdir().unwrap();
        write_rules(
            dir.path(),
            &[("rules.yaml", &webhook_rule(&receiver.url, ""))],
        );
        let mut config = test_config(&db);
        config.rules_dir = dir.path().to_owned();
        let app = TestApp::spawn_with_clock(config, clock.clone()).await;
        post_claim(&app, "C-2").await;
        receiver.wait_for(1).await;
        let mut action = only_action(&app).await;
        for _ in 0..1500 {
            if action.attempts == 1 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
            action = only_action(&app).await;
        }
        assert_eq!(
            action.attempts, 1,
            "the first attempt is recorded within 30 s"
        );
        clock.advance(Duration::from_secs(1));
        receiver.wait_for(2).await;
        assert_eq!(wait_actions_settled(&app.store, 1).await, (0, 1, 0));
        let attempts = app.store.attempts(&action.id).await.unwrap();
        let waited = (attempts[1].started_at - attempts[0].started_at)
            .to_std()
            .unwrap();
        assert!(
            waited >= Duration::from_secs(1),
            "retried after {waited:?}, before the target's Retry-After of 1 s"
        );
        app.stop().await;
    }

    pub(super) async fn stalled_and_refused_targets_are_retried_then_dead_lettered_and_retry_puts_them_back(
        db: TestDb,
    ) {
        let receiver = Receiver::start().await;
        let stall = Answer {
            status: 200,
            retry_after: None,
            delay: Duration::from_secs(2),
        };
        receiver.answer(&[stall, stall, stall]);
        let rules =
            webhook_rule(&receiver.url, "    timeout: 200ms\n").replace("id: notify", "id: slow");
        let closed = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let rules =
            format!("{rules}  - type: webhook\n    url: http://127.0.0.1:{closed}/nobody-home\n");
        let (app, _dir) = app(&db, &rules, |_| {}).await;
        post_claim(&app, "C-3").await;
        assert_eq!(wait_actions_settled(&app.store, 2).await, (0, 0, 2));
        for action in app
            .store
            .list_actions(Some(ActionStatus::Dead), None, 10)
            .await
            .unwrap()
        {
            let attempts = app.store.attempts(&action.id).await.unwrap();
            assert_eq!(attempts.len(), 3, "every attempt recorded: {attempts:?}");
            let error = attempts[2].error.clone().unwrap();
            assert!(
                error.contains("timed out") || error.contains("cannot connect"),
                "{error}"
            );
        }
        // The target is fast again: putting the rule's dead actions back delivers the webhook.
        assert_eq!(
            app.store
                .retry_actions(None, Some("slow"), chrono::Utc::now())
                .await
                .unwrap(),
            2
        );
        let delivered = receiver.wait_for(4).await;
        assert_eq!(delivered.len(), 4);
        // Settled means nothing pending: the closed port has been tried again until dead.
        let (_, delivered, dead) = wait_actions_settled(&app.store, 2).await;
        assert_eq!((delivered, dead), (1, 1), "the closed port stays dead");
        app.stop().await;
    }

    pub(super) async fn client_errors_fail_at_once(db: TestDb) {
        let receiver = Receiver::start().await;
        receiver.answer(&[Answer::status(422)]);
        let (app, _dir) = app(&db, &webhook_rule(&receiver.url, ""), |_| {}).await;
        post_claim(&app, "C-4").await;
        assert_eq!(wait_actions_settled(&app.store, 1).await, (0, 0, 1));
        let action = only_action(&app).await;
        assert_eq!(action.attempts, 1);
        assert!(action.last_error.unwrap().contains("422"));
        assert_eq!(receiver.received().len(), 1);
        app.stop().await;
    }

    /// Without an SMTP server an email never waits silently: it is dead, saying why, and
    /// `actions retry` sends it once a server is configured.
    pub(super) async fn email_without_an_smtp_server_is_dead_with_the_reason(db: TestDb) {
        let rules = "version: 1\nid: mail\non: [claim.created]\nactions:\n  - type: email\n    to: agent@example.com\n    subject: s\n    text: t\n";
        let (app, _dir) = app(&db, rules, |_| {}).await;
        post_claim(&app, "C-1").await;
        assert_eq!(wait_actions_settled(&app.store, 1).await, (0, 0, 1));
        let dead = app
            .store
            .list_actions(Some(signalbox::store::ActionStatus::Dead), None, 10)
            .await
            .unwrap();
        assert!(
            dead[0]
                .last_error
                .as_deref()
                .unwrap_or_default()
                .starts_with("no SMTP server is configured (actions.email.host)"),
            "{dead:?}"
        );
        app.stop().await;
    }

    pub(super) async fn email_reaches_a_real_smtp_server(db: TestDb) {
        let smtp = SmtpServer::start();
        let rules = "version: 1\nid: mail\non: [claim.created]\nactions:\n  - type: email\n    to: [agent@example.com]\n    cc: lead@example.com\n    subject: \"Claim {{ event.subject.claim }} created\"\n    text: \"Please look at claim {{ event.subject.claim }}.\"\n    html: \"<p>Claim <b>{{ event.subject.claim }}</b></p>\"\n";
        let (app, _dir) = app(&db, rules, |c| {
            c.actions.email.host = Some("127.0.0.1".into());
            c.actions.email.port = Some(smtp.port);
            c.actions.email.tls = SmtpTls::None;
            c.actions.email.from = Some("Signalbox <alerts@example.com>".into());
        })
        .await;
        post_claim(&app, "C-<5>").await;
        let mails = smtp.wait_for(1).await;
        assert_eq!(wait_actions_settled(&app.store, 1).await, (0, 1, 0));
        let mail = &mails[0];
        assert_eq!(mail.from, "alerts@example.com");
        assert_eq!(mail.to, ["agent@example.com", "lead@example.com"]);
        assert!(
            mail.data.contains("Subject: Claim C-<5> created"),
            "{}",
            mail.data
        );
        assert!(
            mail.data.contains("From: Signalbox <alerts@example.com>"),
            "{}",
            mail.data
        );
        assert!(
            mail.data.contains("Please look at claim C-<5>."),
            "{}",
            mail.data
        );
        assert!(
            mail.data.contains("<b>C-&lt;5&gt;</b>"),
            "values are escaped in HTML: {}",
            mail.data
        );
        app.stop().await;
    }

    pub(super) async fn strategy_pause_is_sent_once_and_resume_after(db: TestDb) {
        let platform = Receiver::start().await;
        let rules = "version: 1\nrules:\n  - id: pause_on_sms_failure\n    on: [sms.delivery_failed]\n    actions: [{type: pause_strategy, reason: sms failed}]\n  - id: resume_on_promise\n    on: [promise_to_pay.created]\n    actions: [{type: resume_strategy, reason: promise made}]\n";
        let (app, _dir) = app(&db, rules, |c| {
            c.actions.connectors.insert(
                "api".into(),
                ConnectorConfig {
                    base_url: format!("{}/v1", platform.url),
                    token: Some(Secret::new("platform-token".into())),
                    pause_path: "/claims/{claim}/strategy/pause".into(),
                    resume_path: "/claims/{claim}/strategy/resume".into(),
                    retry: Default::default(),
                },
            );
        })
        .await;
        let post = |id: &str, kind: &str| {
            json!({"type": kind, "source_event_id": id, "subject": {"claim": "C 6"}}).to_string()
        };
        assert_eq!(
            app.post("/v1/events", post("s-1", "sms.delivery_failed"))
                .await
                .0,
            201
        );
        let requests = platform.wait_for(1).await;
        assert_eq!(wait_actions_settled(&app.store, 1).await, (0, 1, 0));
        assert_eq!(
            (requests[0].method.as_str(), requests[0].path.as_str()),
            ("POST", "/v1/claims/C+6/strategy/pause")
        );
        assert_eq!(
            requests[0].headers["authorization"],
            "Bearer platform-token"
        );
        let body: Value = serde_json::from_slice(&requests[0].body).unwrap();
        assert_eq!(
            (
                body["claim"].as_str(),
                body["reason"].as_str(),
                body["rule_id"].as_str()
            ),
            (
                Some("C 6"),
                Some("sms failed"),
                Some("pause_on_sms_failure")
            )
        );
        assert_eq!(
            app.store
                .strategy_paused_by("api", "C 6")
                .await
                .unwrap()
                .as_deref(),
            Some("pause_on_sms_failure")
        );

        // A second failed SMS: the pause is already in force, nothing is sent.
        assert_eq!(
            app.post("/v1/events", post("s-2", "sms.delivery_failed"))
                .await
                .0,
            201
        );
        assert_eq!(wait_actions_settled(&app.store, 2).await, (0, 2, 0));
        assert_eq!(platform.received().len(), 1);
        let skipped = app.store.list_actions(None, None, 10).await.unwrap()[0]
            .id
            .clone();
        let attempt = &app.store.attempts(&skipped).await.unwrap()[0];
        assert!(
            attempt
                .reply
                .as_deref()
                .unwrap()
                .starts_with("skipped: the strategy of claim C 6 is already paused"),
            "{attempt:?}"
        );

        assert_eq!(
            app.post("/v1/events", post("p-1", "promise_to_pay.created"))
                .await
                .0,
            201
        );
        let requests = platform.wait_for(2).await;
        assert_eq!(requests[1].path, "/v1/claims/C+6/strategy/resume");
        assert_eq!(wait_actions_settled(&app.store, 3).await, (0, 3, 0));
        assert_eq!(
            app.store.strategy_paused_by("api", "C 6").await.unwrap(),
            None
        );
        app.stop().await;
    }

    pub(super) async fn emit_chains_rules_and_stops_at_the_depth_limit(db: TestDb) {
        let receiver = Receiver::start().await;
        let rules = format!(
            "version: 1\nrules:\n  - id: escalate\n    on: [claim.created]\n    actions: [{{type: emit, event_type: claim.escalated, subject: {{claim: '{{{{ event.subject.claim }}}}'}}}}]\n  - id: tell_crm\n    on: [claim.escalated]\n    actions: [{{type: webhook, url: '{}/escalated/{{{{ event.subject.claim }}}}'}}]\n  - id: loop\n    on: [claim.looped]\n    actions: [{{type: emit, event_type: claim.looped}}]\n",
            receiver.url
        );
        let (app, _dir) = app(&db, &rules, |c| c.actions.max_chain_depth = 3).await;
        post_claim(&app, "C-7").await;
        let requests = receiver.wait_for(1).await;
        assert_eq!(requests[0].path, "/escalated/C-7");
        let body: Value = serde_json::from_slice(&requests[0].body).unwrap();
        assert_eq!(body["event"]["type"], "claim.escalated");
        assert_eq!(body["event"]["source"], "signalbox");
        assert_eq!(body["event"]["chain_depth"], 1);

        // A rule that emits what it triggers on stops at the limit.
        assert_eq!(
            app.post(
                "/v1/events",
                json!({"type": "claim.looped", "source_event_id": "l-1"}).to_string()
            )
            .await
            .0,
            201
        );
        for _ in 0..200 {
            if !app
                .store
                .list_actions(Some(ActionStatus::Dead), Some("loop"), 10)
                .await
                .unwrap()
                .is_empty()
            {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let dead = app
            .store
            .list_actions(Some(ActionStatus::Dead), Some("loop"), 10)
            .await
            .unwrap();
        assert_eq!(dead.len(), 1);
        assert!(
            dead[0]
                .last_error
                .as_deref()
                .unwrap()
                .contains("chain depth limit"),
            "{dead:?}"
        );
        let looped = app.get("/v1/events?type=claim.looped&limit=10").await.1;
        assert_eq!(
            looped["events"].as_array().unwrap().len(),
            4,
            "the posted event and 3 emitted ones"
        );
        app.stop().await;
    }

    /// Stopped gracefully while events arrive and actions are delivered, an engine leaves
    /// nothing leased to itself: the next instance on the same store takes every acknowledged
    /// event and delivers its action at once, though leases last an hour (on PostgreSQL, which
    /// keeps other instances' leases; SQLite's next start releases every lease anyway): a
    /// stage that stops drops its queue, so the stage before it writes what it has unleased.
    pub(super) async fn a_graceful_stop_under_load_leaves_nothing_leased_for_the_next_instance(
        db: TestDb,
    ) {
        let receiver = Receiver::start().await;
        let rules = webhook_rule(&receiver.url, "");
        let configure = |config: &mut Config| {
            config.processing.lease = Duration::from_secs(3600);
            config.actions.lease = Duration::from_secs(3600);
        };
        let (first, dir) = app(&db, &rules, configure).await;
        let (base, client) = (first.base.clone(), first.client.clone());
        let senders: Vec<_> = (0..8)
            .map(|sender| {
                let (base, client) = (base.clone(), client.clone());
                tokio::spawn(async move {
                    let mut acknowledged = Vec::new();
                    for i in 0..60 {
                        let id = format!("c-{sender}-{i}");
                        let body = json!({"type": "claim.created", "source_event_id": id, "subject": {"claim": id}});
                        let sent = client
                            .post(format!("{base}/v1/events"))
                            .body(body.to_string())
                            .send()
                            .await;
                        match sent {
                            Ok(response) if response.status() == 201 => acknowledged.push(id),
                            // Stopping: refused or not answered, so not acknowledged.
                            Ok(_) => {}
                            Err(_) => break,
                        }
                    }
                    acknowledged
                })
            })
            .collect();
        // Stop while events still arrive and actions are being delivered.
        receiver.wait_for(20).await;
        first.stop().await;
        let mut acknowledged = std::collections::BTreeSet::new();
        for sender in senders {
            acknowledged.extend(sender.await.unwrap());
        }
        assert!(acknowledged.len() >= 20, "{}", acknowledged.len());

        let mut config = test_config(&db);
        config.rules_dir = dir.path().to_owned();
        configure(&mut config);
        let next = TestApp::spawn(config).await;
        let wanted: std::collections::BTreeSet<String> = acknowledged
            .iter()
            .map(|id| format!("/hook/{id}"))
            .collect();
        let mut missing = wanted.clone();
        for _ in 0..600 {
            let delivered: std::collections::BTreeSet<String> =
                receiver.received().into_iter().map(|r| r.path).collect();
            missing = wanted.difference(&delivered).cloned().collect();
            if missing.is_empty() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert!(
            missing.is_empty(),
            "{} of {} acknowledged events never delivered, e.g. {:?}",
            missing.len(),
            wanted.len(),
            missing.iter().next()
        );
        next.stop().await;
    }
}

/// Two engine instances on one PostgreSQL share the work: 1,000 actions, each delivered, none
/// twice. (SQLite is one instance per file.)
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_instances_on_one_postgres_deliver_each_action_once() {
    use std::collections::BTreeMap;

    use crate::support::{Receiver, postgres_db, wait_actions_settled};

    let Some(db) = postgres_db().await else {
        return;
    };
    let receiver = Receiver::start().await;
    let rules = format!(
        "version: 1\nid: hook\non: [claim.created]\nactions: [{{type: webhook, url: '{}/{{{{ event.source_event_id }}}}'}}]\n",
        receiver.url
    );
    let ((a, _dir_a), (b, _dir_b)) = (
        cases::app(&db, &rules, |_| {}).await,
        cases::app(&db, &rules, |_| {}).await,
    );
    for chunk in 0..10 {
        let events: Vec<serde_json::Value> =
            (0..100).map(|i| serde_json::json!({"type": "claim.created", "source_event_id": format!("x-{chunk}-{i}")})).collect();
        let app = if chunk % 2 == 0 { &a } else { &b };
        let (status, receipt) = app
            .post("/v1/events", serde_json::Value::Array(events).to_string())
            .await;
        assert_eq!((status, receipt["stored"].as_u64()), (200, Some(100)));
    }
    assert_eq!(wait_actions_settled(&a.store, 1000).await, (0, 1000, 0));
    let mut per_key: BTreeMap<String, usize> = BTreeMap::new();
    for request in receiver.received() {
        *per_key
            .entry(request.headers["idempotency-key"].clone())
            .or_default() += 1;
    }
    assert_eq!(per_key.len(), 1000, "each action delivered");
    assert!(
        per_key.values().all(|n| *n == 1),
        "none twice: {:?}",
        per_key.iter().filter(|(_, n)| **n > 1).collect::<Vec<_>>()
    );
    let mut instances = std::collections::BTreeSet::new();
    for key in per_key.keys() {
        instances.extend(
            a.store
                .attempts(key)
                .await
                .unwrap()
                .into_iter()
                .map(|attempt| attempt.instance),
        );
    }
    assert_eq!(instances.len(), 2, "both instances delivered a share");
    a.stop().await;
    b.stop().await;
}

/// `signalbox actions` lists by status, shows attempts, and puts dead actions back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_actions_command_lists_shows_and_retries() {
    use crate::support::{Answer, Receiver, sqlite_db, wait_actions_settled};

    let db = sqlite_db().await.unwrap();
    let receiver = Receiver::start().await;
    receiver.answer(&[Answer::status(404)]);
    let rules = format!(
        "version: 1\nid: hook\non: [claim.created]\nactions: [{{type: webhook, url: '{}/x'}}]\n",
        receiver.url
    );
    let (app, _dir) = cases::app(&db, &rules, |_| {}).await;
    assert_eq!(
        app.post(
            "/v1/events",
            r#"{"type":"claim.created","source_event_id":"cli-1"}"#
        )
        .await
        .0,
        201
    );
    assert_eq!(wait_actions_settled(&app.store, 1).await, (0, 0, 1));
    app.stop().await;

    let run = |args: &[&str]| {
        let output = std::process::Command::new(env!("CARGO_BIN_EXE_signalbox"))
            .args(args)
            .env("SIGNALBOX_DATABASE_URL", &db.url)
            .output()
            .unwrap();
        (
            output.status.success(),
            format!(
                "{}{}",
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            ),
        )
    };
    let (ok, out) = run(&["actions", "--status", "dead"]);
    assert!(ok, "{out}");
    assert!(
        out.contains("dead")
            && out.contains("webhook")
            && out.contains("target answered 404 Not Found"),
        "{out}"
    );
    assert!(out.contains("0 pending, 0 delivered, 1 dead"), "{out}");
    let id = out
        .lines()
        .find(|l| l.starts_with("act_"))
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .to_owned();
    let (ok, out) = run(&["actions", "show", &id]);
    assert!(
        ok && out.contains("#1")
            && out.contains("failed")
            && out.contains("status 404")
            && out.contains("by dsp_"),
        "{out}"
    );
    let (ok, out) = run(&["actions", "retry", "--rule", "hook"]);
    assert!(ok && out.contains("1 action put back"), "{out}");
    let (ok, out) = run(&["actions", "--status", "pending"]);
    assert!(
        ok && out.contains("1 pending, 0 delivered, 0 dead"),
        "{out}"
    );
    let (ok, out) = run(&["actions", "retry", "--rule", "hook"]);
    assert!(
        !ok && out.contains("rule hook has no dead actions"),
        "{out}"
    );
}
