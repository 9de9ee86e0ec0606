//! Hostile input against the running engine, on both backends: each case must leave the
//! engine processing the next normal event, with the hostile one recorded and its reason.

crate::on_both_backends!(cases:
    hostile_amounts_times_and_templates_fail_their_rules_alone,
    a_poisoned_event_is_retried_then_parked_and_the_others_go_on,
    the_edge_refuses_nul_and_long_ids_and_records_the_delivery,
    a_committed_batch_of_a_thousand_can_be_posted_again,
    readyz_turns_not_ready_while_processing_lags,
);

mod cases {
    use serde_json::{Value, json};

    use crate::rules::write_rules;
    use crate::support::{TestApp, TestDb, test_config};

    /// The documented large-claim condition, calendar and format helpers at their extremes, a
    /// runaway template, and a throttle keyed on a long text, beside a rule that just fires.
    const RULES: &str = "version: 1
rules:
  - id: large_claim
    on: [claim.created]
    when: event.amount != () && minor_units(event.amount) >= 10000
    actions: [{type: emit, event_type: claim.flagged}]
  - id: far_future
    on: [claim.created]
    script: |
      let due = add_days(event.occurred_at, 9223372036854775807);
    actions: [{type: emit, event_type: claim.flagged}]
  - id: bad_format
    on: [claim.created]
    script: |
      let when = format_time(event.occurred_at, \"%Q\");
    actions: [{type: emit, event_type: claim.flagged}]
  - id: nested_loops
    on: [claim.created]
    actions:
      - type: emit
        event_type: claim.flagged
        data: { x: '{% for a in range(10000) %}{% for b in range(10000) %}{% endfor %}{% endfor %}' }
  - id: long_throttle_key
    on: [claim.created]
    throttle: { key: '{{ event.data.note }}', window: 24h }
    actions: [{type: emit, event_type: claim.flagged}]
  - id: fine
    on: [claim.created]
    actions: [{type: emit, event_type: claim.flagged}]
";

    async fn app(db: &TestDb, dir: &std::path::Path, rules: &str) -> TestApp {
        write_rules(dir, &[("rules.yaml", rules)]);
        let mut config = test_config(db);
        config.rules_dir = dir.to_owned();
        TestApp::spawn(config).await
    }

    fn outcomes(records: &Value) -> Vec<(String, String, String)> {
        let mut out: Vec<_> = records["evaluations"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| {
                (
                    r["rule_id"].as_str().unwrap().to_owned(),
                    r["outcome"].as_str().unwrap().to_owned(),
                    r["error"].as_str().unwrap_or_default().to_owned(),
                )
            })
            .collect();
        out.sort();
        out
    }

    pub(super) async fn hostile_amounts_times_and_templates_fail_their_rules_alone(db: TestDb) {
        let dir = tempfile::tempdir().unwrap();
        let app = app(&db, dir.path(), RULES).await;
        let note = "n".repeat(4000);
        let hostile = json!({"type": "claim.created", "source_event_id": "h-1", "subject": {"claim": "C-1"},
            "amount": {"value": "79228162514264337593543950335", "currency": "EUR"}, "data": {"note": note}});
        let (status, receipt) = app.post("/v1/events", hostile.to_string()).await;
        assert_eq!(status, 201, "{receipt}");
        let hostile_id = receipt["id"].as_str().unwrap().to_owned();
        let normal = json!({"type": "claim.created", "source_event_id": "h-2", "subject": {"claim": "C-2"},
            "amount": {"value": "20.00", "currency": "EUR"}, "data": {"note": "short"}});
        let (_, receipt) = app.post("/v1/events", normal.to_string()).await;
        let normal_id = receipt["id"].as_str().unwrap().to_owned();
        app.wait_processed().await;

        let (_, event) = app.get(&format!("/v1/events/{hostile_id}")).await;
        assert_eq!(event["state"], "processed");
        let (_, records) = app
            .get(&format!("/v1/events/{hostile_id}/evaluations"))
            .await;
        let got = outcomes(&records);
        let find = |rule: &str| got.iter().find(|(r, ..)| r == rule).cloned().unwrap();
        assert_eq!(find("large_claim").1, "failed");
        assert!(find("large_claim").2.contains("is too large"), "{got:?}");
        assert!(
            find("far_future").2.contains("beyond the calendar"),
            "{got:?}"
        );
        assert!(
            find("bad_format").2.contains("is not a time format"),
            "{got:?}"
        );
        assert!(
            find("nested_loops")
                .2
                .contains("stopped: the template ran more than"),
            "{got:?}"
        );
        assert_eq!(
            find("long_throttle_key").1,
            "fired",
            "a 4000-byte key is stored"
        );
        assert_eq!(find("fine").1, "fired");

        // The same long key throttles the next event carrying it; the normal event went on.
        let again = json!({"type": "claim.created", "source_event_id": "h-3", "subject": {"claim": "C-3"}, "data": {"note": note}});
        let (_, receipt) = app.post("/v1/events", again.to_string()).await;
        let again_id = receipt["id"].as_str().unwrap().to_owned();
        app.wait_processed().await;
        let (_, records) = app.get(&format!("/v1/events/{again_id}/evaluations")).await;
        assert!(
            outcomes(&records)
                .iter()
                .any(|(r, o, _)| r == "long_throttle_key" && o == "throttled"),
            "{records}"
        );
        let (_, records) = app
            .get(&format!("/v1/events/{normal_id}/evaluations"))
            .await;
        let normal = outcomes(&records);
        assert!(
            normal.iter().any(|(r, o, _)| r == "fine" && o == "fired"),
            "{normal:?}"
        );
        app.stop().await;
    }

    /// A database trigger refuses one rule's evaluation record: a real failure of one event's
    /// completion, on either backend.
    async fn poison(db: &TestDb) {
        if db.url.starts_with("sqlite:") {
            let pool = sqlx::SqlitePool::connect(&db.url).await.unwrap();
            sqlx::query("CREATE TRIGGER poison BEFORE INSERT ON evaluations WHEN NEW.rule_id = 'poisoned' BEGIN SELECT RAISE(ABORT, 'poisoned for the test'); END")
                .execute(&pool).await.unwrap();
            pool.close().await;
        } else {
            let pool = sqlx::PgPool::connect(&db.url).await.unwrap();
            sqlx::query("CREATE FUNCTION poison() RETURNS trigger AS $$ BEGIN IF NEW.rule_id = 'poisoned' THEN RAISE EXCEPTION 'poisoned for the test'; END IF; RETURN NEW; END $$ LANGUAGE plpgsql")
                .execute(&pool).await.unwrap();
            sqlx::query("CREATE TRIGGER poison BEFORE INSERT ON evaluations FOR EACH ROW EXECUTE FUNCTION poison()")
                .execute(&pool).await.unwrap();
            pool.close().await;
        }
    }

    async fn cure(db: &TestDb) {
        if db.url.starts_with("sqlite:") {
            let pool = sqlx::SqlitePool::connect(&db.url).await.unwrap();
            sqlx::query("DROP TRIGGER poison")
                .execute(&pool)
                .await
                .unwrap();
            pool.close().await;
        } else {
            let pool = sqlx::PgPool::connect(&db.url).await.unwrap();
            sqlx::query("DROP TRIGGER poison ON evaluations")
                .execute(&pool)
                .await
                .unwrap();
            pool.close().await;
        }
    }

    pub(super) async fn a_poisoned_event_is_retried_then_parked_and_the_others_go_on(db: TestDb) {
        let dir = tempfile::tempdir().unwrap();
        write_rules(
            dir.path(),
            &[(
                "rules.yaml",
                "version: 1\nrules:\n  - id: poisoned\n    on: [claim.created]\n    when: event.data.poison == true\n    actions: [{type: emit, event_type: claim.flagged}]\n  - id: fine\n    on: [claim.created]\n    actions: [{type: emit, event_type: claim.flagged}]\n",
            )],
        );
        let mut config = test_config(&db);
        config.rules_dir = dir.path().to_owned();
        config.processing.retry.max_attempts = 2;
        config.processing.retry.initial_delay = std::time::Duration::from_millis(50);
        let app = TestApp::spawn(config).await;
        poison(&db).await;
        // One delivery, so one processing batch: the poisoned event sits between two others.
        let batch = json!([
            {"type": "claim.created", "source_event_id": "p-1", "subject": {"claim": "C-1"}},
            {"type": "claim.created", "source_event_id": "p-2", "subject": {"claim": "C-2"}, "data": {"poison": true}},
            {"type": "claim.created", "source_event_id": "p-3", "subject": {"claim": "C-3"}},
        ]);
        let (status, receipt) = app.post("/v1/events", batch.to_string()).await;
        assert_eq!(status, 200, "{receipt}");
        let ids: Vec<String> = receipt["events"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["id"].as_str().unwrap().to_owned())
            .collect();
        app.wait_processed().await;

        let state = |event: &Value| event["state"].as_str().unwrap().to_owned();
        for i in [0, 2] {
            let (_, event) = app.get(&format!("/v1/events/{}", ids[i])).await;
            assert_eq!(state(&event), "processed", "{event}");
        }
        let (status, failed) = app.get("/v1/events?state=failed").await;
        assert_eq!(status, 200);
        let failed = failed["events"].as_array().unwrap();
        assert_eq!(failed.len(), 1, "{failed:?}");
        assert_eq!(failed[0]["id"], ids[1].as_str());
        assert_eq!(failed[0]["failure"]["attempts"], 2);
        assert!(
            failed[0]["failure"]["error"]
                .as_str()
                .unwrap()
                .contains("poisoned for the test"),
            "{}",
            failed[0]
        );

        // Events behind it are not blocked, and once the cause is gone it can be retried.
        let (status, _) = app
            .post(
                "/v1/events",
                json!({"type": "claim.created", "source_event_id": "p-4"}).to_string(),
            )
            .await;
        assert_eq!(status, 201);
        app.wait_processed().await;
        cure(&db).await;
        assert_eq!(app.store.retry_events(&[ids[1].as_str()]).await.unwrap(), 1);
        app.wait_processed().await;
        let (_, event) = app.get(&format!("/v1/events/{}", ids[1])).await;
        assert_eq!(state(&event), "processed", "{event}");
        assert!(event.get("failure").is_none(), "{event}");
        let (_, records) = app.get(&format!("/v1/events/{}/evaluations", ids[1])).await;
        assert_eq!(records["evaluations"].as_array().unwrap().len(), 2);
        app.stop().await;
    }

    pub(super) async fn the_edge_refuses_nul_and_long_ids_and_records_the_delivery(db: TestDb) {
        let app = TestApp::spawn(test_config(&db)).await;
        let nul =
            r#"{"type": "claim.created", "source_event_id": "z-1", "data": {"note": "a\u0000b"}}"#;
        let (status, error) = app.post("/v1/events", nul).await;
        assert_eq!(status, 400, "{error}");
        assert_eq!(
            error["message"],
            "data.note contains a NUL character (\\u0000), which cannot be stored"
        );
        let long = json!({"type": "claim.created", "source_event_id": "x".repeat(3000)});
        let (status, error) = app.post("/v1/events", long.to_string()).await;
        assert_eq!(status, 400, "{error}");
        assert_eq!(
            error["message"],
            "source_event_id is 3000 bytes long; at most 512 are accepted"
        );
        let long_claim = json!({"type": "claim.created", "source_event_id": "z-2", "subject": {"claim": "c".repeat(600)}});
        let (status, error) = app.post("/v1/events", long_claim.to_string()).await;
        assert_eq!(status, 400, "{error}");
        assert!(
            error["message"]
                .as_str()
                .unwrap()
                .starts_with("subject.claim is 600 bytes long"),
            "{error}"
        );
        let (_, deliveries) = app.get("/v1/deliveries").await;
        let refused: Vec<&str> = deliveries["deliveries"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|d| d["reason"].as_str())
            .collect();
        assert_eq!(
            refused.len(),
            3,
            "every refused delivery is recorded: {deliveries}"
        );
        let (status, _) = app
            .post(
                "/v1/events",
                json!({"type": "claim.created", "source_event_id": "z-3"}).to_string(),
            )
            .await;
        assert_eq!(status, 201, "the next normal event is stored");
        app.stop().await;
    }

    pub(super) async fn a_committed_batch_of_a_thousand_can_be_posted_again(db: TestDb) {
        let app = TestApp::spawn(test_config(&db)).await;
        let batch: Vec<Value> = (0..1000)
            .map(|i| json!({"type": "claim.created", "source_event_id": format!("b-{i}")}))
            .collect();
        let body = Value::Array(batch).to_string();
        let (status, first) = app.post("/v1/events", body.clone()).await;
        assert_eq!(status, 200, "{first}");
        assert_eq!(
            (first["stored"].as_u64(), first["duplicates"].as_u64()),
            (Some(1000), Some(0))
        );
        // The sender did not see the answer and retries: it is told every event is stored.
        let (status, again) = app.post("/v1/events", body).await;
        assert_eq!(status, 200, "{again}");
        assert_eq!(
            (again["stored"].as_u64(), again["duplicates"].as_u64()),
            (Some(0), Some(1000))
        );
        assert_eq!(again["events"][999]["id"], first["events"][999]["id"]);
        app.stop().await;
    }

    /// Rules slow enough that processing falls behind: with the clock moved past
    /// `processing.max_lag`, `/readyz` says processing is stalled; once the backlog is
    /// processed, it is ready again.
    pub(super) async fn readyz_turns_not_ready_while_processing_lags(db: TestDb) {
        let dir = tempfile::tempdir().unwrap();
        let slow = "script: |\n      let s = \"x\";\n      s.pad(60000, \"y\");\n      let n = 0;\n      while n < 15000 { let t = s.to_upper(); n += 1; }\n";
        write_rules(
            dir.path(),
            &[(
                "rules.yaml",
                &format!(
                    "version: 1\nrules:\n  - id: slow_a\n    on: [claim.created]\n    {slow}    actions: [{{type: emit, event_type: claim.flagged}}]\n  - id: slow_b\n    on: [claim.created]\n    {slow}    actions: [{{type: emit, event_type: claim.flagged}}]\n"
                ),
            )],
        );
        let mut config = test_config(&db);
        config.rules_dir = dir.path().to_owned();
        config.processing.max_lag = std::time::Duration::from_secs(60);
        let clock = signalbox::clock::ManualClock::starting_now();
        let app = TestApp::spawn_with_clock(config, clock.clone()).await;
        assert_eq!(app.get("/readyz").await.0, 200);
        let batch: Vec<Value> = (0..40)
            .map(|i| json!({"type": "claim.created", "source_event_id": format!("s-{i}")}))
            .collect();
        let (status, _) = app
            .post("/v1/events", Value::Array(batch).to_string())
            .await;
        assert_eq!(status, 200);
        clock.advance(std::time::Duration::from_secs(120));
        let (status, ready) = app.get("/readyz").await;
        assert_eq!(status, 503, "{ready}");
        assert!(
            ready["processing"]["problem"]
                .as_str()
                .unwrap()
                .starts_with("stalled: the oldest pending event has waited 12"),
            "{ready}"
        );
        app.wait_processed().await;
        let (status, ready) = app.get("/readyz").await;
        assert_eq!(status, 200, "{ready}");
        app.stop().await;
    }
}
