//! A subject's timeline: what happened to one claim, in time order, from its events to the
//! attempts of the actions they planned, over the API and the command line; and why each rule
//! did or did not fire for one stored event (explain).

crate::on_both_backends!(cases:
    a_claims_timeline_shows_its_events_firings_actions_and_checks,
    explain_says_why_each_rule_did_or_did_not_fire,
    a_backtest_of_the_same_rules_agrees_and_a_change_shows_its_diff,
);

mod cases {
    pub(super) use super::backtest::a_backtest_of_the_same_rules_agrees_and_a_change_shows_its_diff;
    pub(super) use super::explain::explain_says_why_each_rule_did_or_did_not_fire;
    use serde_json::json;

    use crate::rules::write_rules;
    use crate::support::{Receiver, TestApp, TestDb, test_config};

    const RULES: &str = r#"
version: 1
rules:
  - id: tell_crm
    on: [sms.delivery_failed]
    actions:
      - type: webhook
        url: "RECEIVER/{{ event.subject.claim }}"
  - id: unkept
    on: [promise_to_pay.created]
    unless: { event: payment.received, same: claim, within: 3d }
    actions: [{ type: emit, event_type: promise.unkept }]
"#;

    pub(super) async fn a_claims_timeline_shows_its_events_firings_actions_and_checks(db: TestDb) {
        let receiver = Receiver::start().await;
        let dir = tempfile::tempdir().unwrap();
        write_rules(
            dir.path(),
            &[("rules.yaml", &RULES.replace("RECEIVER", &receiver.url))],
        );
        let mut config = test_config(&db);
        config.rules_dir = dir.path().to_owned();
        let app = TestApp::spawn(config).await;
        for (n, kind, claim, at) in [
            (1, "sms.delivery_failed", "C-1", "2026-12-01T09:00:00Z"),
            (2, "sms.delivery_failed", "C-2", "2026-12-01T09:30:00Z"),
            (3, "promise_to_pay.created", "C-1", "2026-12-01T10:00:00Z"),
        ] {
            let (status, _) = app
                .post(
                    "/v1/events",
                    json!({"type": kind, "source_event_id": format!("e-{n}"), "occurred_at": at,
                           "subject": {"claim": claim}})
                    .to_string(),
                )
                .await;
            assert_eq!(status, 201);
        }
        receiver.wait_for(2).await;
        crate::support::wait_actions_settled(&app.store, 2).await;
        let (status, timeline) = app.get("/v1/subjects/claim/C-1/timeline").await;
        assert_eq!(status, 200, "{timeline}");
        assert_eq!(timeline["subject"], "claim:C-1");
        let entries = timeline["entries"].as_array().unwrap();
        let kinds: Vec<(&str, &str)> = entries
            .iter()
            .map(|e| (e["kind"].as_str().unwrap(), e["summary"].as_str().unwrap()))
            .collect();
        let position = |kind: &str, starts: &str| {
            kinds
                .iter()
                .position(|(k, s)| *k == kind && s.starts_with(starts))
                .unwrap_or_else(|| panic!("no {kind} '{starts}' in {kinds:?}"))
        };
        let event = position("event", "sms.delivery_failed from api");
        let fired = position("evaluation", "fired");
        let attempt = position("attempt", "webhook attempt 1: delivered");
        let promise = position("event", "promise_to_pay.created from api");
        let waiting = position("evaluation", "waiting");
        let check = position("check", "waits for payment.received until");
        assert!(event < fired && fired < attempt, "in time order: {kinds:?}");
        assert!(promise < waiting && waiting < check, "{kinds:?}");
        assert!(
            entries
                .iter()
                .all(|e| !e["detail"].to_string().contains("C-2")),
            "nothing of C-2: {entries:?}"
        );
        let (status, refused) = app.get("/v1/subjects/case/X/timeline").await;
        assert_eq!(status, 400, "{refused}");
        // Paged by event: the newest one, then the one before it, then nothing more.
        let (_, newest) = app.get("/v1/subjects/claim/C-1/timeline?limit=1").await;
        assert_eq!(
            newest["entries"][0]["summary"],
            "promise_to_pay.created from api"
        );
        let before = newest["next_before"].as_str().unwrap().to_owned();
        let (_, older) = app
            .get(&format!(
                "/v1/subjects/claim/C-1/timeline?limit=1&before={before}"
            ))
            .await;
        assert_eq!(
            older["entries"][0]["summary"], "sms.delivery_failed from api",
            "{older}"
        );
        let before = older["next_before"].as_str().unwrap().to_owned();
        let (_, none) = app
            .get(&format!(
                "/v1/subjects/claim/C-1/timeline?limit=1&before={before}"
            ))
            .await;
        assert_eq!(none["entries"], json!([]), "{none}");
        assert!(none["next_before"].is_null());

        // The claim's events, found without reading the timeline: by reference, type and time.
        let source_ids = |path: &str| {
            let app = &app;
            let path = path.to_owned();
            async move {
                let (status, page) = app.get(&path).await;
                assert_eq!(status, 200, "{path}: {page}");
                page["events"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|e| e["source_event_id"].as_str().unwrap().to_owned())
                    .collect::<Vec<_>>()
            }
        };
        // The API is served under /api/v1 (and /v1, as it first was).
        assert_eq!(source_ids("/api/v1/events?claim=C-1").await, ["e-3", "e-1"]);
        assert_eq!(
            source_ids("/v1/events?claim=C-1&type=sms.delivery_failed").await,
            ["e-1"]
        );
        assert_eq!(
            source_ids("/v1/events?from=2026-12-01T09:15:00Z&to=2026-12-01T10:00:00Z").await,
            ["e-2"]
        );
        assert!(source_ids("/v1/events?claim=C-9").await.is_empty());
        // An empty cursor is the first page, not an empty one.
        assert_eq!(
            source_ids("/v1/events?claim=C-1&before=").await,
            ["e-3", "e-1"]
        );
        // One event followed to its action: the delivery that brought it, the rule that fired,
        // the action it planned and its attempt.
        let (_, page) = app
            .get("/v1/events?claim=C-1&type=sms.delivery_failed")
            .await;
        let id = page["events"][0]["id"].as_str().unwrap().to_owned();
        let (status, one) = app.get(&format!("/v1/events/{id}")).await;
        assert_eq!(status, 200, "{one}");
        assert!(
            one["delivery"]["id"].as_str().unwrap().starts_with("dlv_"),
            "{one}"
        );
        assert_eq!(one["evaluations"][0]["rule_id"], "tell_crm", "{one}");
        assert_eq!(one["evaluations"][0]["outcome"], "fired", "{one}");
        let action = &one["actions"][0];
        assert_eq!(
            one["evaluations"][0]["actions"][0]["url"],
            format!("{}/C-1", receiver.url)
        );
        assert_eq!(action["target"], "127.0.0.1", "{one}");
        assert_eq!(action["status"], "delivered", "{one}");
        assert_eq!(action["attempts"][0]["outcome"], "delivered", "{one}");
        let (status, refused) = app.get("/v1/events?claim=C-1&account=A-1").await;
        assert_eq!(status, 400, "{refused}");
        assert!(
            refused["message"]
                .as_str()
                .unwrap()
                .contains("one subject reference"),
            "{refused}"
        );
        if db.url.starts_with("sqlite:") {
            let (ok, out) =
                crate::support::signalbox(&["events", "--claim", "C-1", "--database-url", &db.url]);
            assert!(ok, "{out}");
            assert!(
                out.contains("promise_to_pay.created") && out.contains("sms.delivery_failed"),
                "{out}"
            );
            assert!(out.contains("2 shown"), "{out}");
        }
        if db.url.starts_with("sqlite:") {
            let (ok, out) =
                crate::support::signalbox(&["timeline", "claim", "C-1", "--database-url", &db.url]);
            assert!(ok, "{out}");
            assert!(out.contains("event       "), "{out}");
            assert!(out.contains("tell_crm"), "{out}");
            assert!(out.contains("webhook attempt 1: delivered"), "{out}");
        }
        app.stop().await;
    }
}

mod explain {
    use serde_json::json;

    use crate::rules::write_rules;
    use crate::support::{TestApp, TestDb, test_config};

    const RULES: &str = r#"
version: 1
rules:
  - id: big_promises
    on: [promise_to_pay.created]
    when: event.amount.value >= 1000
    actions: [{ type: emit, event_type: promise.big }]
  - id: any_promise
    on: [promise_to_pay.created]
    history:
      before: { events: promise_to_pay.created, same: claim, within: 30d }
    when: history.before.count >= 2
    actions: [{ type: emit, event_type: promise.again }]
  - id: sms_only
    on: [sms.delivery_failed]
    actions: [{ type: emit, event_type: sms.noted }]
"#;

    pub(crate) async fn explain_says_why_each_rule_did_or_did_not_fire(db: TestDb) {
        let dir = tempfile::tempdir().unwrap();
        write_rules(dir.path(), &[("rules.yaml", RULES)]);
        let mut config = test_config(&db);
        config.rules_dir = dir.path().to_owned();
        let app = TestApp::spawn(config).await;
        let mut last = String::new();
        for n in 1..=2 {
            let (status, receipt) = app
                .post(
                    "/v1/events",
                    json!({"type": "promise_to_pay.created", "source_event_id": format!("p-{n}"),
                           "subject": {"claim": "C-1"}, "amount": {"value": "50", "currency": "EUR"}})
                    .to_string(),
                )
                .await;
            assert_eq!(status, 201);
            last = receipt["id"].as_str().unwrap().to_owned();
        }
        app.wait_processed().await;
        let (status, explained) = app.get(&format!("/v1/events/{last}/explain")).await;
        assert_eq!(status, 200, "{explained}");
        let rules = explained["rules"].as_array().unwrap();
        let of = |id: &str| rules.iter().find(|r| r["rule_id"] == id).unwrap().clone();
        assert_eq!(of("big_promises")["outcome"], "not_matched");
        assert_eq!(of("big_promises")["reason"], "when was false");
        // The history the live run read: this claim's two promises.
        assert_eq!(of("any_promise")["outcome"], "fired", "{explained}");
        assert!(
            of("sms_only")["reason"]
                .as_str()
                .unwrap()
                .contains("is not in on: [sms.delivery_failed]"),
            "{explained}"
        );
        let recorded = explained["recorded"].as_array().unwrap();
        assert_eq!(
            recorded.len(),
            1,
            "live, only any_promise fired: {explained}"
        );
        assert_eq!(recorded[0]["rule_id"], "any_promise");
        let (status, _) = app.get("/v1/events/evt_nope/explain").await;
        assert_eq!(status, 404);
        // The rules with what they did: any_promise fired once, big_promises never.
        let (status, listed) = app.get("/v1/rules").await;
        assert_eq!(status, 200, "{listed}");
        let rule = |id: &str| {
            listed["rules"]
                .as_array()
                .unwrap()
                .iter()
                .find(|r| r["id"] == id)
                .unwrap()
                .clone()
        };
        assert_eq!(rule("any_promise")["stats"]["fired"], 1, "{listed}");
        assert!(rule("any_promise")["stats"]["last_fired"].is_string());
        assert_eq!(rule("big_promises")["stats"]["fired"], 0);
        assert_eq!(
            rule("sms_only")["trigger"]["on"],
            json!(["sms.delivery_failed"])
        );
        let (status, one) = app.get("/v1/rules/any_promise").await;
        assert_eq!(status, 200, "{one}");
        assert!(
            one["source"].as_str().unwrap().contains("history:"),
            "{one}"
        );
        let (status, _) = app.get("/v1/rules/nope").await;
        assert_eq!(status, 404);

        if db.url.starts_with("sqlite:") {
            // The command line reads the same history from the store.
            let (ok, out) = crate::support::signalbox(&[
                "explain",
                &last,
                "--rules",
                dir.path().to_str().unwrap(),
                "--database-url",
                &db.url,
            ]);
            assert!(ok, "{out}");
            assert!(out.contains("FIRES    any_promise"), "{out}");
            assert!(
                out.contains("no       big_promises: when was false"),
                "{out}"
            );
        }

        // The threshold changes: explain answers with the rules the event met, unless asked
        // for the current ones; the rule lists both versions.
        let before = app.get("/v1/rules/status").await.1["set_id"].clone();
        write_rules(
            dir.path(),
            &[("rules.yaml", &RULES.replace(">= 1000", ">= 10"))],
        );
        let mut versions = Vec::new();
        for _ in 0..400 {
            let (_, one) = app.get("/v1/rules/big_promises").await;
            versions = one["versions"].as_array().cloned().unwrap_or_default();
            if versions.len() == 2 {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(25)).await;
        }
        assert_eq!(
            versions.len(),
            2,
            "the old and the new version: {versions:?}"
        );
        assert!(
            versions[0]["source"].as_str().unwrap().contains(">= 10\n"),
            "newest first: {versions:?}"
        );
        assert_ne!(app.get("/v1/rules/status").await.1["set_id"], before);
        let (_, then) = app.get(&format!("/v1/events/{last}/explain")).await;
        assert_eq!(then["rules_from"], "in_force", "{then}");
        assert_eq!(then["rule_set"], before, "{then}");
        let of = |explained: &serde_json::Value, id: &str| {
            explained["rules"]
                .as_array()
                .unwrap()
                .iter()
                .find(|r| r["rule_id"] == id)
                .unwrap()["outcome"]
                .clone()
        };
        assert_eq!(of(&then, "big_promises"), "not_matched", "{then}");
        let (_, now) = app
            .get(&format!("/v1/events/{last}/explain?rules=current"))
            .await;
        assert_eq!(now["rules_from"], "current", "{now}");
        assert_eq!(of(&now, "big_promises"), "fired", "{now}");
        let (status, _) = app
            .get(&format!("/v1/events/{last}/explain?rules=yesterday"))
            .await;
        assert_eq!(status, 400);
        app.stop().await;
    }
}

mod backtest {
    use serde_json::json;

    use crate::rules::write_rules;
    use crate::support::{TestApp, TestDb, test_config};

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

    /// The JSON report in the command's output (its progress lines go to stderr, which the
    /// helper folds in).
    fn json_of(out: &str) -> serde_json::Value {
        let (start, end) = (out.find('{').unwrap(), out.rfind('}').unwrap());
        serde_json::from_str(&out[start..=end]).unwrap_or_else(|e| panic!("{e}: {out}"))
    }

    /// Record live, backtest the same rules over the same events: no difference. Raise a
    /// threshold: the diff lists exactly the events it changes.
    pub(crate) async fn a_backtest_of_the_same_rules_agrees_and_a_change_shows_its_diff(
        db: TestDb,
    ) {
        let dir = tempfile::tempdir().unwrap();
        write_rules(dir.path(), &[("rules.yaml", RULES)]);
        let mut config = test_config(&db);
        config.rules_dir = dir.path().to_owned();
        let app = TestApp::spawn(config).await;
        let mut ids = Vec::new();
        for (n, value) in [(1, "50"), (2, "150"), (3, "250")] {
            let (status, receipt) = app
                .post(
                    "/v1/events",
                    json!({"type": "promise_to_pay.created", "source_event_id": format!("p-{n}"),
                           "subject": {"claim": format!("C-{n}")}, "amount": {"value": value, "currency": "EUR"}})
                    .to_string(),
                )
                .await;
            assert_eq!(status, 201);
            ids.push(receipt["id"].as_str().unwrap().to_owned());
        }
        for n in 1..=3 {
            let (status, _) = app
                .post(
                    "/v1/events",
                    json!({"type": "sms.delivery_failed", "source_event_id": format!("s-{n}"),
                           "subject": {"claim": "C-9"}})
                    .to_string(),
                )
                .await;
            assert_eq!(status, 201);
        }
        app.wait_processed().await;
        let backtest = |rules: &std::path::Path| {
            crate::support::signalbox(&[
                "backtest",
                "--rules",
                rules.to_str().unwrap(),
                "--from",
                "2020-01-01",
                "--json",
                "--database-url",
                &db.url,
            ])
        };
        let (ok, out) = backtest(dir.path());
        assert!(ok, "{out}");
        let report = json_of(&out);
        let rule = |report: &serde_json::Value, id: &str| {
            report["rules"]
                .as_array()
                .unwrap()
                .iter()
                .find(|r| r["rule"] == id)
                .unwrap()
                .clone()
        };
        // The six posted, and those the rules' emit actions stored meanwhile.
        assert!(report["events"].as_u64().unwrap() >= 6, "{report}");
        assert_eq!(
            (
                rule(&report, "big")["now"].clone(),
                rule(&report, "big")["then"].clone()
            ),
            (json!(2), json!(2)),
            "{report}"
        );
        assert_eq!(rule(&report, "third_failure")["both"], 1, "{report}");
        assert!(
            rule(&report, "big")["only_now"]
                .as_array()
                .unwrap()
                .is_empty()
                && rule(&report, "third_failure")["only_then"]
                    .as_array()
                    .unwrap()
                    .is_empty(),
            "the same rules agree: {report}"
        );
        // A threshold raised to 200: the 150 promise no longer fires.
        let changed = tempfile::tempdir().unwrap();
        write_rules(
            changed.path(),
            &[("rules.yaml", &RULES.replace(">= 100", ">= 200"))],
        );
        let (ok, out) = backtest(changed.path());
        assert!(ok, "{out}");
        let report = json_of(&out);
        assert_eq!(
            rule(&report, "big")["only_then"],
            json!([ids[1]]),
            "{report}"
        );
        assert_eq!(rule(&report, "big")["only_now"], json!([]), "{report}");
        // The readable form says the same.
        let (ok, out) = crate::support::signalbox(&[
            "backtest",
            "--rules",
            changed.path().to_str().unwrap(),
            "--from",
            "2020-01-01",
            "--database-url",
            &db.url,
        ]);
        assert!(ok, "{out}");
        assert!(
            out.contains(&format!("  - fired then, not now: {}", ids[1])),
            "{out}"
        );
        assert!(out.contains("nothing was sent or stored"), "{out}");
        app.stop().await;
    }
}
