//! Backtests and rule validation over the API, on both backends: record live (with events that
//! arrived out of order and waited for processing), backtest the same rules (no difference),
//! then changed thresholds (exactly the affected events); the bounds of a backtest; posted rules
//! checked as `signalbox check` checks a folder, with their inline tests.

crate::on_both_backends!(cases:
    a_backtest_over_the_api_agrees_with_live_when_events_arrive_out_of_order,
    a_backtest_is_bounded_and_compiles_posted_rules_as_the_folder_is,
    posted_rules_are_validated_as_check_does_and_their_tests_run,
);

mod cases {
    use chrono::{DateTime, Utc};
    use serde_json::{Value, json};
    use signalbox::auth::{Role, TokenConfig};
    use signalbox::clock::{Clock, ManualClock};
    use signalbox::config::{Config, Secret};
    use signalbox::store::{Ingest, NewDelivery, Store};

    use crate::rules::write_rules;
    use crate::support::{TestApp, TestDb, test_config, wait_actions_settled};

    const READ: &str = "tok-read-backtest-0123456789";
    const OPERATE: &str = "tok-operate-backtest-0123456";
    const INGEST: &str = "tok-ingest-backtest-01234567";

    const RULES: &str = r#"
version: 1
rules:
  - id: big
    on: [promise_to_pay.created]
    when: event.amount.value >= 100
    actions: [{ type: emit, event_type: promise.big }]
  - id: third_failure
    on: [sms.delivery_failed]
    history:
      failures: { events: sms.delivery_failed, same: claim, within: 7d }
    when: history.failures.count >= 3
    actions: [{ type: emit, event_type: claim.unreachable }]
"#;

    fn at(text: &str) -> DateTime<Utc> {
        text.parse().unwrap()
    }

    fn with_tokens(mut config: Config) -> Config {
        config.tokens = [
            ("read", READ, Role::Read),
            ("operate", OPERATE, Role::Operate),
            ("ingest", INGEST, Role::Ingest),
        ]
        .into_iter()
        .map(|(name, text, role)| TokenConfig {
            name: name.into(),
            token: Secret::new(text.into()),
            roles: vec![role],
            sources: None,
        })
        .collect();
        config
    }

    async fn call(app: &TestApp, path: &str, token: &str, body: Value) -> (u16, Value) {
        let response = app
            .client
            .post(format!("{}{path}", app.base))
            .bearer_auth(token)
            .json(&body)
            .send()
            .await
            .expect("request sent");
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    /// Stores `events` as ingestion does, each received at its `received_at`, while no engine
    /// runs: they wait for processing.
    async fn store_pending(store: &Store, events: &[(Value, &str)]) -> Vec<String> {
        let mut ids = Vec::new();
        for (event, received) in events {
            let event =
                signalbox::normalize::canonical::parse_value(event.clone(), at(received)).unwrap();
            ids.push(event.id.to_string());
            let delivery = NewDelivery {
                id: NewDelivery::new_id(),
                source: "api".into(),
                received_at: at(received),
                headers: json!({}),
                body: bytes::Bytes::new(),
                verification: "unsigned",
                reason: None,
                body_size: None,
                token: None,
            };
            store
                .insert_batch(&[Ingest {
                    delivery,
                    events: vec![event],
                }])
                .await
                .unwrap();
        }
        ids
    }

    fn failure(n: u32, occurred: &str) -> Value {
        json!({"type": "sms.delivery_failed", "source_event_id": format!("f-{n}"),
               "occurred_at": occurred, "subject": {"claim": "C-9"}})
    }

    fn rule(report: &Value, id: &str) -> Value {
        report["rules"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["rule"] == id)
            .unwrap_or_else(|| panic!("no rule {id}: {report}"))
            .clone()
    }

    /// `(now, then, both, only_now, only_then)` of a rule.
    fn diff(report: &Value, id: &str) -> (Value, Value, Value, Value, Value) {
        let r = rule(report, id);
        (
            r["now"].clone(),
            r["then"].clone(),
            r["both"].clone(),
            r["only_now"].clone(),
            r["only_then"].clone(),
        )
    }

    /// Waits until every event is processed and every action delivered, the events those
    /// actions emitted included.
    async fn settle(app: &TestApp, actions: i64) {
        app.wait_processed().await;
        wait_actions_settled(&app.store, actions).await;
        app.wait_processed().await;
    }

    /// Three failures of one claim arrive while the engine is down, the one that occurred last
    /// first; it processes them together later, so the first to arrive counts all three (the
    /// store holds them when it is processed). Later events arrive and are processed at once.
    /// A backtest of the same rules agrees; raised thresholds list exactly what they change.
    pub(super) async fn a_backtest_over_the_api_agrees_with_live_when_events_arrive_out_of_order(
        db: TestDb,
    ) {
        let dir = tempfile::tempdir().unwrap();
        write_rules(dir.path(), &[("rules.yaml", RULES)]);
        let mut config = with_tokens(test_config(&db));
        config.rules_dir = dir.path().to_owned();
        let store = Store::open(&config.database_url, &config.store)
            .await
            .unwrap();
        let late = store_pending(
            &store,
            &[
                (failure(1, "2026-12-01T08:30:00Z"), "2026-12-01T09:01:00Z"),
                (failure(2, "2026-12-01T08:10:00Z"), "2026-12-01T09:02:00Z"),
                (failure(3, "2026-12-01T08:20:00Z"), "2026-12-01T09:03:00Z"),
            ],
        )
        .await;
        store.close().await;
        let clock = ManualClock::new(at("2026-12-01T09:10:00Z"));
        let app = TestApp::spawn_with_clock(config, clock.clone()).await;
        settle(&app, 1).await;
        clock.set(at("2026-12-01T09:20:00Z"));
        let mut promises = Vec::new();
        for (n, value) in [(1, "50"), (2, "150"), (3, "250")] {
            let (status, receipt) = call(
                &app,
                "/v1/events",
                INGEST,
                json!({"type": "promise_to_pay.created", "source_event_id": format!("p-{n}"),
                       "subject": {"claim": format!("C-{n}")}, "amount": {"value": value, "currency": "EUR"}}),
            )
            .await;
            assert_eq!(status, 201, "{receipt}");
            promises.push(receipt["id"].as_str().unwrap().to_owned());
        }
        let (status, receipt) = call(
            &app,
            "/v1/events",
            INGEST,
            failure(4, "2026-12-01T08:40:00Z"),
        )
        .await;
        assert_eq!(status, 201, "{receipt}");
        let fourth = receipt["id"].as_str().unwrap().to_owned();
        settle(&app, 4).await;
        assert_eq!(clock.now(), at("2026-12-01T09:20:00Z"));

        let range = json!({"from": "2026-12-01", "to": "2026-12-02T00:00:00Z"});
        // A reader may backtest (it changes nothing); an ingest token may not.
        let (status, answer) = call(&app, "/v1/backtest", INGEST, range.clone()).await;
        assert_eq!(status, 403, "a backtest needs the read role: {answer}");
        let (status, report) = call(&app, "/v1/backtest", READ, range.clone()).await;
        assert_eq!(status, 200, "{report}");
        // Live, the first failure to arrive fired (it counted the three), and the fourth.
        assert_eq!(
            diff(&report, "third_failure"),
            (json!(2), json!(2), json!(2), json!([]), json!([])),
            "the same rules agree: {report}"
        );
        assert_eq!(
            diff(&report, "big"),
            (json!(2), json!(2), json!(2), json!([]), json!([])),
            "{report}"
        );
        // Seven posted, and the four its emit actions stored.
        assert_eq!(report["events"], 11, "{report}");
        let planned = report["firings"]
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["rule"] == "big" && f["event"] == promises[2].as_str())
            .unwrap_or_else(|| panic!("no firing of big for p-3: {report}"));
        assert_eq!(planned["actions"][0]["type"], "emit", "{report}");
        assert_eq!(
            planned["actions"][0]["event_type"], "promise.big",
            "{report}"
        );
        let first = report["firings"]
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["rule"] == "third_failure")
            .unwrap();
        assert_eq!(first["event"], late[0].as_str(), "{report}");

        // Raised thresholds: the 150 promise, and the failure that counted three, no longer
        // fire; the fourth failure counts four and still does.
        let changed = RULES
            .replace(">= 100", ">= 200")
            .replace("count >= 3", "count >= 4");
        let mut posted = range.clone();
        posted["rules"] = json!({"files": {"rules.yaml": changed}});
        let (status, report) = call(&app, "/v1/backtest", OPERATE, posted).await;
        assert_eq!(status, 200, "{report}");
        assert_eq!(
            diff(&report, "big"),
            (
                json!(1),
                json!(2),
                json!(1),
                json!([]),
                json!([promises[1]])
            ),
            "{report}"
        );
        assert_eq!(
            diff(&report, "third_failure"),
            (json!(1), json!(2), json!(1), json!([]), json!([late[0]])),
            "{report}"
        );
        assert!(
            report["firings"]
                .as_array()
                .unwrap()
                .iter()
                .any(|f| f["rule"] == "third_failure" && f["event"] == fourth.as_str()),
            "{report}"
        );
        // A rule that fails for one event is counted, with the event, and the others run on.
        let fragile = format!(
            "{RULES}  - id: fragile\n    on: [promise_to_pay.created]\n    script: |\n      if event.amount.value > 120 && event.amount.value < 180 {{ throw \"boom\"; }}\n    actions: [{{ type: emit, event_type: promise.noted }}]\n"
        );
        let mut posted = range.clone();
        posted["rules"] = json!({"files": {"rules.yaml": fragile}});
        let (status, report) = call(&app, "/v1/backtest", READ, posted).await;
        assert_eq!(status, 200, "{report}");
        assert_eq!(
            diff(&report, "big"),
            (json!(2), json!(2), json!(2), json!([]), json!([])),
            "{report}"
        );
        let rule = report["rules"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["rule"] == "fragile")
            .unwrap();
        assert_eq!(rule["failed"], 1, "{report}");
        assert_eq!(rule["failed_events"], json!([promises[1]]), "{report}");
        assert_eq!(rule["now"], 2, "the other two promises: {report}");
        // Nothing was stored or sent: the same events, the same actions.
        let (pending, processed) = app.store.count_events().await.unwrap();
        assert_eq!((pending, processed), (0, 11));
        assert_eq!(app.store.count_actions().await.unwrap().1, 4);
        app.stop().await;
    }

    pub(super) async fn a_backtest_is_bounded_and_compiles_posted_rules_as_the_folder_is(
        db: TestDb,
    ) {
        let dir = tempfile::tempdir().unwrap();
        write_rules(dir.path(), &[("rules.yaml", RULES)]);
        let mut config = with_tokens(test_config(&db));
        config.rules_dir = dir.path().to_owned();
        let app = TestApp::spawn(config).await;
        let refused = |body: Value, code: &'static str, says: &'static str| {
            let app = &app;
            async move {
                let (status, answer) = call(app, "/v1/backtest", OPERATE, body.clone()).await;
                assert_eq!(
                    (status, answer["code"].as_str()),
                    (400, Some(code)),
                    "{body}: {answer}"
                );
                let message = answer["message"].as_str().unwrap();
                assert!(message.contains(says), "{body}: {message}");
            }
        };
        refused(
            json!({"to": "2026-12-01"}),
            "invalid_backtest",
            "missing field `from`",
        )
        .await;
        refused(
            json!({"from": "last week"}),
            "invalid_backtest",
            "'last week' is not a time",
        )
        .await;
        refused(
            json!({"from": "2026-12-01", "to": "2026-11-01"}),
            "invalid_backtest",
            "to must be after from",
        )
        .await;
        refused(
            json!({"from": "2026-01-01", "to": "2026-12-01"}),
            "range_too_long",
            "more than 100 days",
        )
        .await;
        refused(
            json!({"from": "2026-11-01", "to": "2026-12-01", "rules": {"files": {"../up.yaml": RULES}}}),
            "invalid_rules",
            "rule file name '../up.yaml'",
        )
        .await;
        let big = "#".repeat(signalbox::rules::MAX_RULE_FILE_BYTES + 1);
        refused(
            json!({"from": "2026-11-01", "to": "2026-12-01", "rules": {"files": {"big.yaml": big}}}),
            "invalid_rules",
            "more than the 256 KiB a rule file may have",
        )
        .await;
        // A posted rule with a problem answers what `signalbox check` says of it.
        let broken = RULES.replace("event.amount.value >= 100", "evnt.amount.value >= 100");
        let posted = tempfile::tempdir().unwrap();
        write_rules(posted.path(), &[("broken.yaml", &broken)]);
        let (ok, checked) = crate::support::signalbox(&["check", posted.path().to_str().unwrap()]);
        assert!(!ok, "{checked}");
        let (status, answer) = call(
            &app,
            "/v1/backtest",
            OPERATE,
            json!({"from": "2026-11-01", "to": "2026-12-01", "rules": {"files": {"broken.yaml": broken}}}),
        )
        .await;
        assert_eq!(
            (status, answer["code"].as_str()),
            (400, Some("invalid_rules")),
            "{answer}"
        );
        let problem = answer["message"]
            .as_str()
            .unwrap()
            .lines()
            .nth(1)
            .unwrap()
            .to_owned();
        assert!(problem.starts_with("broken.yaml:"), "{answer}");
        assert!(problem.contains("rule big:"), "{problem}");
        assert!(
            checked.contains(&format!("/{problem}")),
            "{checked}\nvs {problem}"
        );

        // The events of a range are counted as they are read: past the bound, nothing runs.
        for n in 0..3 {
            let small = json!({"type": "promise_to_pay.created", "source_event_id": format!("small-{n}"),
                               "subject": {"claim": "C-1"}, "amount": {"value": "5", "currency": "EUR"}});
            let (status, _) = call(&app, "/v1/events", INGEST, small).await;
            assert_eq!(status, 201);
        }
        app.wait_processed().await;
        let set = signalbox::rules::RuleSet::load_dir(dir.path()).unwrap();
        let (from, to) = (
            Utc::now() - chrono::Duration::hours(1),
            Utc::now() + chrono::Duration::hours(1),
        );
        let too_many =
            signalbox::rules::backtest::read(&app.store, &set, from, to, Some(2), &mut |_| {})
                .await;
        assert!(
            matches!(
                too_many,
                Err(signalbox::rules::backtest::BacktestError::TooManyEvents { limit: 2 })
            ),
            "{too_many:?}"
        );
        let read =
            signalbox::rules::backtest::read(&app.store, &set, from, to, Some(3), &mut |_| {})
                .await
                .unwrap();
        assert_eq!(read.events.len(), 3);
        app.stop().await;
    }

    const VALID: &str = r#"version: 1
id: big
on: [promise_to_pay.created]
when: event.amount.value >= 100
actions: [{ type: emit, event_type: promise.big }]
tests:
  - name: fires_for_150
    event: { type: promise_to_pay.created, source_event_id: p-1, subject: { claim: C-1 }, amount: { value: "150", currency: EUR } }
    expect: [emit]
  - name: fires_for_50
    event: { type: promise_to_pay.created, source_event_id: p-2, subject: { claim: C-1 }, amount: { value: "50", currency: EUR } }
    expect: [emit]
"#;

    pub(super) async fn posted_rules_are_validated_as_check_does_and_their_tests_run(db: TestDb) {
        let dir = tempfile::tempdir().unwrap();
        write_rules(dir.path(), &[("rules.yaml", RULES)]);
        let mut config = with_tokens(test_config(&db));
        config.rules_dir = dir.path().to_owned();
        let app = TestApp::spawn(config).await;
        let (status, v) = call(&app, "/v1/rules/validate", READ, json!({"yaml": VALID})).await;
        assert_eq!(status, 200, "{v}");
        assert_eq!(
            (v["valid"].clone(), v["rules"].clone()),
            (json!(true), json!(1)),
            "{v}"
        );
        assert_eq!(
            (v["passed"].clone(), v["failed"].clone()),
            (json!(1), json!(1)),
            "{v}"
        );
        let tests = v["tests"].as_array().unwrap();
        assert_eq!(tests[0]["name"], "fires_for_150");
        assert_eq!(tests[0]["passed"], true);
        assert_eq!(
            (tests[1]["name"].as_str(), tests[1]["passed"].as_bool()),
            (Some("fires_for_50"), Some(false))
        );
        let failure = tests[1]["failure"].as_str().unwrap();
        assert!(
            failure.contains("expected it to fire, but it did not"),
            "{failure}"
        );

        // Two files, one broken: each problem with its file and line, as `signalbox check`
        // prints it.
        let broken = "version: 1\nid: typo\non: [promise_to_pay.created]\nwhen: evnt.amount.value > 1\nactions: [{ type: emit, event_type: x.y }]\n";
        let posted = tempfile::tempdir().unwrap();
        write_rules(posted.path(), &[("a.yaml", VALID), ("b.yaml", broken)]);
        let (ok, checked) = crate::support::signalbox(&["check", posted.path().to_str().unwrap()]);
        assert!(!ok, "{checked}");
        let (status, v) = call(
            &app,
            "/v1/rules/validate",
            READ,
            json!({"files": {"a.yaml": VALID, "b.yaml": broken}}),
        )
        .await;
        assert_eq!(status, 200, "{v}");
        assert_eq!(v["valid"], false, "{v}");
        let errors = v["errors"].as_array().unwrap();
        assert_eq!(errors.len(), 1, "{v}");
        assert_eq!(
            (
                errors[0]["file"].as_str(),
                errors[0]["line"].as_u64(),
                errors[0]["rule"].as_str()
            ),
            (Some("b.yaml"), Some(4), Some("typo")),
            "{v}"
        );
        let text = errors[0]["text"].as_str().unwrap();
        assert!(
            checked.contains(&format!("/{text}")),
            "{checked}\nvs {text}"
        );
        assert_eq!(v["tests"], json!([]), "tests run only on valid rules: {v}");

        for (body, says) in [
            (json!({}), "give either"),
            (
                json!({"yaml": VALID, "files": {"a.yaml": VALID}}),
                "give either",
            ),
            (json!({"files": {}}), "no rule files"),
            (
                json!({"files": {"/etc/x.yaml": VALID}}),
                "rule file name '/etc/x.yaml'",
            ),
            (json!({"yaml": 7}), "invalid type"),
        ] {
            let (status, answer) = call(&app, "/v1/rules/validate", READ, body.clone()).await;
            assert_eq!(
                (status, answer["code"].as_str()),
                (400, Some("invalid_rules")),
                "{body}: {answer}"
            );
            assert!(
                answer["message"].as_str().unwrap().contains(says),
                "{body}: {answer}"
            );
        }
        // As `curl -d` sends it (no JSON content type), and past the body limit.
        let raw = |body: String| {
            app.client
                .post(format!("{}/v1/rules/validate", app.base))
                .bearer_auth(READ)
                .body(body)
                .send()
        };
        let response = raw(json!({"yaml": VALID}).to_string()).await.unwrap();
        assert_eq!(response.status().as_u16(), 200);
        let big = json!({"yaml": "#".repeat(1 << 20)}).to_string();
        let response = raw(big).await.unwrap();
        assert_eq!(response.status().as_u16(), 413);
        let answer: Value = response.json().await.unwrap();
        assert_eq!(answer["code"], "payload_too_large", "{answer}");
        // Nothing was saved: the set in force is the folder's.
        let response = app
            .client
            .get(format!("{}/v1/rules", app.base))
            .bearer_auth(READ)
            .send()
            .await
            .unwrap();
        let listed: Value = response.json().await.unwrap();
        let ids: Vec<&str> = listed["rules"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["id"].as_str().unwrap())
            .collect();
        assert_eq!(ids, ["big", "third_failure"], "{listed}");
        app.stop().await;
    }
}
