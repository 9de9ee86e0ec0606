//! Rules in the running engine (both backends) and the rule author's commands.

use std::path::Path;

crate::on_both_backends!(cases:
    evaluations_are_recorded_with_the_event,
    throttle_fires_once_per_key_per_window,
    a_broken_edit_leaves_the_running_rules_and_says_why,
    a_broken_folder_at_start_runs_the_last_good_set,
    with_no_good_set_events_wait_until_the_folder_is_fixed,
    a_change_whose_inline_tests_fail_is_refused,
    failed_evaluations_are_listed_by_rule_with_their_line,
);

use crate::support::signalbox;

#[test]
fn the_sample_rules_pass_check_and_their_tests() {
    let (ok, out) = signalbox(&["check", "rules"]);
    assert!(ok, "{out}");
    assert!(out.contains("9 rules in 9 files"), "{out}");
    let (ok, out) = signalbox(&["test", "rules"]);
    assert!(ok, "{out}");
    assert!(out.contains("PASS rules/sms_failed_pause.yaml pause_strategy_after_sms_failure pauses_the_claims_strategy"), "{out}");
    assert!(!out.contains("FAIL"), "{out}");
}

#[test]
fn check_reports_each_problem_with_its_position_and_fails() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("a.yaml"),
        "version: 1\nid: a\non: [sms.delivery_faild]\nwhen: evnt.source == \"x\"\n",
    )
    .unwrap();
    std::fs::write(dir.path().join("b.yaml"), "version: 1\nid: b\non: [claim.created]\nactions:\n  - type: email\n    to: nobody\n    subject: s\n    text: t\n").unwrap();
    let (ok, out) = signalbox(&["check", dir.path().to_str().unwrap()]);
    assert!(!ok);
    let a = dir.path().join("a.yaml");
    assert!(out.contains(&format!("{}:3:1: rule a: unknown event type 'sms.delivery_faild'; did you mean 'sms.delivery_failed'?", a.display())), "{out}");
    assert!(
        out.contains(&format!(
            "{}:4:7: rule a: when: Undefined variable: evnt",
            a.display()
        )),
        "{out}"
    );
    assert!(
        out.contains("rule b: actions[0] (email): 'nobody' is not an email address"),
        "{out}"
    );
    assert!(out.contains("3 problems in"), "{out}");
}

/// A template reading a reference that some of the rule's event types lack (promise_to_pay.expired
/// carries no account in the platforms' examples) is a warning at the place it is read; a
/// guarded use is not; `--strict` makes it fail.
#[test]
fn check_warns_about_fields_some_events_lack() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("alert.yaml"),
        "version: 1\nid: alert\non: [promise_to_pay.expired, promise_to_pay.invalidated]\nactions:\n  - type: emit\n    event_type: claim.flagged\n    subject: { claim: \"{{ event.subject.claim }}\", account: \"{{ event.subject.account }}\" }\n",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("guarded.yaml"),
        "version: 1\nid: guarded\non: [promise_to_pay.expired]\nwhen: event.subject.account != ()\nactions:\n  - type: emit\n    event_type: claim.flagged\n    subject: { account: \"{{ event.subject.account }}\", claim: \"{{ event.subject.debtor | default('-') }}\" }\n",
    )
    .unwrap();
    let path = dir.path().to_str().unwrap();
    let (ok, out) = signalbox(&["check", path]);
    assert!(ok, "warnings alone do not fail: {out}");
    let alert = dir.path().join("alert.yaml");
    assert!(
        out.contains(&format!(
            "{}:7:65: rule alert: warning: 'event.subject.account' may be missing: promise_to_pay.expired events do not always carry it, and for such an event the template fails",
            alert.display()
        )),
        "{out}"
    );
    assert!(out.contains("`when: event.subject.account != ()`"), "{out}");
    assert_eq!(
        out.matches("warning:").count(),
        1,
        "claim is carried by both types; guarded uses pass: {out}"
    );
    assert!(
        out.contains("no errors, 1 warning (--strict fails on them)"),
        "{out}"
    );
    let (ok, out) = signalbox(&["check", "--strict", path]);
    assert!(!ok, "{out}");
    assert!(out.contains("1 warning (--strict)"), "{out}");
}

/// Text compared with a number is refused by `check`, at its line, where a sample event of the
/// rule's types shows it; money compares as money.
#[test]
fn check_refuses_comparisons_of_text_with_numbers() {
    let dir = tempfile::tempdir().unwrap();
    let rule = |id: &str, when: &str| {
        format!(
            "version: 1\nid: {id}\non: [promise_to_pay.created]\nwhen: {when}\nactions: [{{type: emit, event_type: claim.flagged}}]\n"
        )
    };
    std::fs::write(
        dir.path().join("money.yaml"),
        rule("money", "event.amount.value > 500"),
    )
    .unwrap();
    let path = dir.path().to_str().unwrap();
    let (ok, out) = signalbox(&["check", path]);
    assert!(ok, "an amount compares with a number: {out}");
    std::fs::write(
        dir.path().join("claim.yaml"),
        rule("claim", "event.subject.claim > 500"),
    )
    .unwrap();
    std::fs::write(
        dir.path().join("quoted.yaml"),
        rule("quoted", "event.amount.value >= \"500\""),
    )
    .unwrap();
    let (ok, out) = signalbox(&["check", path]);
    assert!(!ok, "{out}");
    for (file, what) in [
        ("claim.yaml", "text with a number"),
        ("quoted.yaml", "a number with text"),
    ] {
        let expected = format!(
            "{}:4:1: rule {}: when: script error: cannot compare {what} using",
            dir.path().join(file).display(),
            file.trim_end_matches(".yaml")
        );
        assert!(out.contains(&expected), "{expected} in:\n{out}");
    }
    assert!(
        out.contains("found with a sample promise_to_pay.created event from receeve"),
        "{out}"
    );
    assert!(out.contains("2 problems in"), "{out}");
}

#[test]
fn test_shows_a_diff_when_a_rule_test_fails() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("r.yaml"),
        "version: 1\nid: r\non: [claim.created]\nactions: [{type: emit, event_type: claim.flagged, data: {level: high}}]\ntests:\n  - name: wrong\n    event: {type: claim.created, source_event_id: x}\n    expect: [{type: emit, data: {level: low}}]\n",
    )
    .unwrap();
    let (ok, out) = signalbox(&["test", dir.path().to_str().unwrap()]);
    assert!(!ok);
    assert!(out.contains("FAIL") && out.contains("r wrong"), "{out}");
    assert!(
        out.contains("-       \"level\": \"low\"") && out.contains("+       \"level\": \"high\""),
        "{out}"
    );
    assert!(out.contains("0 passed, 1 failed"), "{out}");
}

/// The real difference is named, key by key, with whitespace visible: a trailing newline in a
/// rendered text, a key the action does not have.
#[test]
fn test_failures_name_each_differing_key() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("r.yaml"),
        "version: 1\nid: r\non: [claim.created]\nactions:\n  - type: email\n    to: a@example.com\n    subject: s\n    text: |\n      Hello\ntests:\n  - name: wrong\n    event: {type: claim.created, source_event_id: x}\n    expect: [{type: email, text: Hello, cc: [b@example.com]}]\n",
    )
    .unwrap();
    let (ok, out) = signalbox(&["test", dir.path().to_str().unwrap()]);
    assert!(!ok);
    let text_at = out
        .find("actions[0].text: expected \"Hello\"\n")
        .unwrap_or_else(|| panic!("{out}"));
    let next_line = out[text_at..].lines().nth(1).unwrap_or_default();
    assert!(
        next_line.trim_start() == "actual \"Hello\\n\"",
        "the trailing newline shows: {out}"
    );
    assert!(
        out.contains("actions[0].cc: expected [\"b@example.com\"], but it is missing"),
        "{out}"
    );
}

#[test]
fn try_explains_a_match_and_a_non_match() {
    let (ok, out) = signalbox(&[
        "try",
        "--event",
        "tests/fixtures/providers/b54/invoice.declined.json",
        "--source",
        "b54",
    ]);
    assert!(ok, "{out}");
    assert!(out.contains("event: invoice.declined from b54"), "{out}");
    assert!(
        out.contains("FIRES    b54_invoice_declined_notify_finance"),
        "{out}"
    );
    assert!(
        out.contains("\"subject\": \"B54 declined invoice PxZn9UKhP9ALfbN9\""),
        "{out}"
    );
    assert!(out.contains("no       pause_strategy_after_sms_failure: type 'invoice.declined' is not in on: [sms.delivery_failed]"), "{out}");
    assert!(
        out.contains("1 of 9 rules would fire. Nothing was sent or stored."),
        "{out}"
    );
}

pub(crate) fn write_rules(dir: &Path, files: &[(&str, &str)]) {
    std::fs::create_dir_all(dir).unwrap();
    for (name, text) in files {
        // Write then rename, as editors do, so the watcher never reads half a file.
        let tmp = dir.join(format!(".{name}.tmp"));
        std::fs::write(&tmp, text).unwrap();
        std::fs::rename(&tmp, dir.join(name)).unwrap();
    }
}

mod cases {
    use std::time::Duration;

    use serde_json::{Value, json};

    use super::write_rules;
    use crate::support::{TestApp, TestDb, test_config};

    const RULES: &str = "version: 1
rules:
  - id: flag_big_claims
    on: [claim.created]
    when: minor_units(event.amount) >= 100000
    actions:
      - type: webhook
        url: \"https://crm.example.com/claims/{{ event.subject.claim }}\"
  - id: broken_at_runtime
    on: [claim.created]
    script: |
      let n = 0;
      loop { n += 1; }
    actions: [{type: emit, event_type: claim.flagged}]
  - id: once_a_day_per_claim
    on: [sms.delivery_failed]
    throttle: { key: '{{ event.subject.claim }}', window: 24h }
    actions: [{type: pause_strategy, reason: sms failed}]
";

    async fn app(db: &TestDb, dir: &std::path::Path) -> TestApp {
        write_rules(dir, &[("rules.yaml", RULES)]);
        let mut config = test_config(db);
        config.rules_dir = dir.to_owned();
        TestApp::spawn(config).await
    }

    async fn post(app: &TestApp, event: Value) -> String {
        let (status, receipt) = app.post("/v1/events", event.to_string()).await;
        assert_eq!(status, 201, "{receipt}");
        receipt["id"].as_str().unwrap().to_owned()
    }

    /// Whether a failed evaluation says the script was stopped by its operations bound or
    /// its time budget.
    fn stopped_runaway(evaluation: &Value) -> bool {
        let error = evaluation["error"].as_str().unwrap_or_default();
        error.contains("too many operations") || error.contains("longer than its time budget")
    }

    fn rule_ids(records: &[Value]) -> Vec<&str> {
        records
            .iter()
            .map(|r| r["rule_id"].as_str().unwrap())
            .collect()
    }

    async fn evaluations(app: &TestApp, id: &str) -> Vec<Value> {
        app.wait_processed().await;
        app.get(&format!("/v1/events/{id}/evaluations")).await.1["evaluations"]
            .as_array()
            .unwrap()
            .clone()
    }

    pub(super) async fn evaluations_are_recorded_with_the_event(db: TestDb) {
        let dir = tempfile::tempdir().unwrap();
        let app = app(&db, dir.path()).await;
        let id = post(&app, json!({"type": "claim.created", "source_event_id": "c-1", "subject": {"claim": "C-1"}, "amount": {"value": "2500.00", "currency": "EUR"}})).await;
        let records = evaluations(&app, &id).await;
        assert_eq!(records.len(), 2, "{records:#?}");
        let fired = records
            .iter()
            .find(|r| r["rule_id"] == "flag_big_claims")
            .unwrap();
        assert_eq!(fired["outcome"], "fired");
        assert_eq!(
            fired["actions"],
            json!([{"type": "webhook", "method": "POST", "url": "https://crm.example.com/claims/C-1"}])
        );
        assert_eq!(fired["rule_version"].as_str().unwrap().len(), 12);
        let failed = records
            .iter()
            .find(|r| r["rule_id"] == "broken_at_runtime")
            .unwrap();
        assert_eq!(failed["outcome"], "failed");
        assert!(stopped_runaway(failed), "{failed}");
        assert_eq!(failed["error_line"], 13, "the loop's line in rules.yaml");

        // A small claim: the condition is false, nothing is recorded for that rule.
        let id = post(&app, json!({"type": "claim.created", "source_event_id": "c-2", "subject": {"claim": "C-2"}, "amount": {"value": "12.00", "currency": "EUR"}})).await;
        let records = evaluations(&app, &id).await;
        assert_eq!(rule_ids(&records), ["broken_at_runtime"]);
        app.stop().await;
    }

    pub(super) async fn throttle_fires_once_per_key_per_window(db: TestDb) {
        let dir = tempfile::tempdir().unwrap();
        let app = app(&db, dir.path()).await;
        let sms = |id: &str, claim: &str| json!({"type": "sms.delivery_failed", "source_event_id": id, "subject": {"claim": claim}});
        let mut outcomes = Vec::new();
        for (id, claim) in [
            ("s-1", "C-1"),
            ("s-2", "C-1"),
            ("s-3", "C-2"),
            ("s-4", "C-1"),
        ] {
            let event_id = post(&app, sms(id, claim)).await;
            let records = evaluations(&app, &event_id).await;
            outcomes.push(records[0]["outcome"].as_str().unwrap().to_owned());
        }
        assert_eq!(outcomes, ["fired", "throttled", "fired", "throttled"]);
        app.stop().await;
    }

    pub(super) async fn a_broken_edit_leaves_the_running_rules_and_says_why(db: TestDb) {
        let dir = tempfile::tempdir().unwrap();
        let app = app(&db, dir.path()).await;
        let wait_for = |want: fn(&Value) -> bool| {
            let app = &app;
            async move {
                for _ in 0..200 {
                    let (_, status) = app.get("/v1/rules/status").await;
                    if want(&status) {
                        return status;
                    }
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                panic!(
                    "rules status did not change within 10 s: {:?}",
                    app.get("/v1/rules/status").await
                );
            }
        };
        write_rules(
            dir.path(),
            &[(
                "rules.yaml",
                &RULES.replace(
                    "on: [claim.created]\n    when:",
                    "on: [claim.creatd]\n    when:",
                ),
            )],
        );
        let status = wait_for(|r| r["rejected_reload"].is_array()).await;
        assert!(
            status["rejected_reload"][0]
                .as_str()
                .unwrap()
                .contains("unknown event type 'claim.creatd'; did you mean 'claim.created'?"),
            "{status}"
        );
        assert_eq!(status["rules"], 3);
        let (_, ready) = app.get("/readyz").await;
        assert_eq!(ready["status"], "ready", "the running rules stay");
        assert_eq!(ready["rules"]["reload_refused"], true);
        assert!(
            !ready.to_string().contains("claim.creatd"),
            "/readyz shows no rule errors: {ready}"
        );
        let id = post(&app, json!({"type": "claim.created", "source_event_id": "h-1", "subject": {"claim": "C-9"}, "amount": {"value": "5000", "currency": "EUR"}})).await;
        assert!(
            evaluations(&app, &id)
                .await
                .iter()
                .any(|r| r["rule_id"] == "flag_big_claims" && r["outcome"] == "fired"),
            "old rules still run"
        );

        write_rules(
            dir.path(),
            &[(
                "rules.yaml",
                "version: 1\nid: only_one\non: [claim.created]\nactions: [{type: emit, event_type: claim.flagged}]\n",
            )],
        );
        let status = wait_for(|r| r["rules"] == 1).await;
        assert!(status["rejected_reload"].is_null(), "{status}");
        let id = post(
            &app,
            json!({"type": "claim.created", "source_event_id": "h-2"}),
        )
        .await;
        let records = evaluations(&app, &id).await;
        assert_eq!(rule_ids(&records), ["only_one"]);
        app.stop().await;
    }

    const GOOD: &str = "version: 1\nid: flag\non: [claim.created]\nactions: [{type: emit, event_type: claim.flagged}]\n";
    const BROKEN: &str = "version: 1\nid: flag\non: [claim.creatd]\nactions: [{type: emit, event_type: claim.flagged}]\n";

    async fn start(db: &TestDb, dir: &std::path::Path) -> TestApp {
        let mut config = test_config(db);
        config.rules_dir = dir.to_owned();
        TestApp::spawn(config).await
    }

    pub(super) async fn a_broken_folder_at_start_runs_the_last_good_set(db: TestDb) {
        let dir = tempfile::tempdir().unwrap();
        write_rules(dir.path(), &[("rules.yaml", GOOD)]);
        start(&db, dir.path()).await.stop().await;

        // A typo saved while the engine was down: it starts all the same.
        write_rules(dir.path(), &[("rules.yaml", BROKEN)]);
        let app = start(&db, dir.path()).await;
        let (status, ready) = app.get("/readyz").await;
        assert_eq!(status, 200, "intake goes on: {ready}");
        assert_eq!(ready["status"], "degraded");
        assert_eq!(
            ready["rules"]["problem"],
            "running the last good rule set: the rules folder has problems"
        );
        let (_, rules) = app.get("/v1/rules/status").await;
        assert!(
            rules["rejected_reload"][0]
                .as_str()
                .unwrap()
                .contains("unknown event type 'claim.creatd'"),
            "{rules}"
        );
        let id = post(
            &app,
            json!({"type": "claim.created", "source_event_id": "b-1"}),
        )
        .await;
        assert_eq!(
            rule_ids(&evaluations(&app, &id).await),
            ["flag"],
            "the last good set ran"
        );
        app.stop().await;
    }

    pub(super) async fn with_no_good_set_events_wait_until_the_folder_is_fixed(db: TestDb) {
        let dir = tempfile::tempdir().unwrap();
        write_rules(dir.path(), &[("rules.yaml", BROKEN)]);
        let mut config = test_config(&db);
        config.rules_dir = dir.path().to_owned();
        let clock = signalbox::clock::ManualClock::starting_now();
        let app = TestApp::spawn_with_clock(config, clock.clone()).await;
        let (status, ready) = app.get("/readyz").await;
        assert_eq!(status, 200, "{ready}");
        assert_eq!(ready["status"], "degraded");
        assert!(
            ready["rules"]["problem"]
                .as_str()
                .unwrap()
                .starts_with("no rule set in force"),
            "{ready}"
        );
        let id = post(
            &app,
            json!({"type": "claim.created", "source_event_id": "w-1"}),
        )
        .await;
        // Waiting for fixed rules is degraded, not stalled: intake keeps its traffic.
        clock.advance(Duration::from_secs(600));
        let (status, ready) = app.get("/readyz").await;
        assert_eq!(
            (status, &ready["status"]),
            (200, &json!("degraded")),
            "{ready}"
        );
        // Fixed: the waiting event is evaluated by the fixed rules (not by an empty set).
        write_rules(dir.path(), &[("rules.yaml", GOOD)]);
        assert_eq!(rule_ids(&evaluations(&app, &id).await), ["flag"]);
        let (_, ready) = app.get("/readyz").await;
        assert_eq!(ready["status"], "ready", "{ready}");
        app.stop().await;
    }

    pub(super) async fn failed_evaluations_are_listed_by_rule_with_their_line(db: TestDb) {
        let dir = tempfile::tempdir().unwrap();
        let app = app(&db, dir.path()).await;
        let id = post(&app, json!({"type": "claim.created", "source_event_id": "l-1", "subject": {"claim": "C-1"}, "amount": {"value": "10.00", "currency": "EUR"}})).await;
        app.wait_processed().await;
        let (status, listed) = app
            .get("/v1/evaluations?outcome=failed&rule=broken_at_runtime")
            .await;
        assert_eq!(status, 200, "{listed}");
        assert!(listed["next_before"].is_null(), "one page: {listed}");
        let listed = listed["evaluations"].as_array().unwrap();
        assert_eq!(listed.len(), 1, "{listed:?}");
        assert_eq!(listed[0]["event_id"], id.as_str());
        assert_eq!(listed[0]["error_line"], 13);
        // Stopped by whichever bound it meets first (the operations, or on a slow machine
        // the time budget).
        assert!(stopped_runaway(&listed[0]), "{}", listed[0]);
        let (status, _) = app.get("/v1/evaluations?outcome=broken").await;
        assert_eq!(status, 400);
        if db.url.starts_with("sqlite:") {
            let (ok, out) = super::signalbox(&[
                "evaluations",
                "--rule",
                "broken_at_runtime",
                "--database-url",
                &db.url,
            ]);
            assert!(ok, "{out}");
            assert!(
                out.contains(&id)
                    && (out.contains("too many operations") || out.contains("time budget")),
                "{out}"
            );
            assert!(out.contains("failed in the last 24 hours:"), "{out}");
        }
        app.stop().await;
    }

    pub(super) async fn a_change_whose_inline_tests_fail_is_refused(db: TestDb) {
        let dir = tempfile::tempdir().unwrap();
        write_rules(dir.path(), &[("rules.yaml", GOOD)]);
        let app = start(&db, dir.path()).await;
        let failing = format!(
            "{GOOD}tests:\n  - name: expects_nothing\n    event: {{type: claim.created, source_event_id: x}}\n    expect: {{fires: false}}\n"
        );
        write_rules(dir.path(), &[("rules.yaml", &failing)]);
        let mut refused = Value::Null;
        for _ in 0..200 {
            let (_, status) = app.get("/v1/rules/status").await;
            if status["rejected_reload"].is_array() {
                refused = status;
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let problem = refused["rejected_reload"][0].as_str().unwrap_or_default();
        assert!(
            problem.contains("rules.yaml:6:1: rule flag: inline test 'expects_nothing' fails"),
            "{refused}"
        );
        app.stop().await;
    }
}

/// Every YAML example in docs/rules.md is a valid rule file, and its inline tests pass.
#[test]
fn the_examples_in_the_rules_doc_work() {
    let doc = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/rules.md"))
        .unwrap();
    let blocks: Vec<&str> = doc
        .split("```yaml\n")
        .skip(1)
        .map(|b| b.split("```").next().unwrap())
        .collect();
    let registry = signalbox::providers::Registry::from_config(&Default::default()).unwrap();
    let mut tests = 0;
    for (i, block) in blocks.iter().enumerate() {
        if !block.starts_with("version: 1") {
            continue; // a fragment (e.g. only `tests:`), shown inside a rule elsewhere
        }
        // Paths in examples are relative to a file in docs/.
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("docs/example_{i}.yaml"));
        let texts = std::collections::BTreeMap::from([(path, block.to_string())]);
        let set = signalbox::rules::RuleSet::compile(&texts)
            .unwrap_or_else(|e| panic!("example {i}:\n{block}\n{e:?}"));
        for result in signalbox::rules::testing::run_all(&set, &registry) {
            assert!(
                result.failure.is_none(),
                "example {i}, test {}: {:?}",
                result.name,
                result.failure
            );
            tests += 1;
        }
    }
    assert!(tests >= 5, "the examples carry their tests ({tests})");
}

/// A broken rule folder shows in the metrics (the real binary: one engine per process, so its
/// gauges are its own): degraded and reload refused, and how many rules run.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broken_folder_at_start_shows_in_the_metrics() {
    crate::support::init();
    let dir = tempfile::tempdir().unwrap();
    write_rules(
        &dir.path().join("rules"),
        &[(
            "broken.yaml",
            "version: 1\nid: broken\non: [claim.created\n",
        )],
    );
    let db = format!("sqlite://{}", dir.path().join("metrics.db").display());
    let (child, port) = crate::support::spawn_engine(dir.path(), &db, "{}\n");
    struct Kill(std::process::Child);
    impl Drop for Kill {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let _engine = Kill(child);
    let base = format!("http://127.0.0.1:{port}");
    crate::support::wait_healthy(&base).await;
    let metrics = reqwest::get(format!("{base}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for line in [
        "signalbox_rules_degraded 1",
        "signalbox_rules_reload_refused 1",
        "signalbox_rules_in_force 0",
    ] {
        assert!(metrics.lines().any(|l| l == line), "{line} in:\n{metrics}");
    }
}
