//! Time in the running engine, on both backends and on a manual clock: counts over windows,
//! "A not followed by B" with its look-back, delayed actions cancelled by a later event,
//! schedules ticking once across instances, and what survives a crash.

crate::on_both_backends!(cases:
    a_count_rule_fires_at_the_third_event_not_the_second,
    a_check_fires_once_at_its_deadline_unless_a_follow_up_came,
    a_follow_up_that_arrived_first_leaves_no_check,
    delayed_actions_wait_and_a_later_event_cancels_them,
    a_schedule_ticks_once_per_tick_with_two_engines,
    pending_checks_and_delayed_actions_survive_a_crash,
    an_operator_cancels_a_pending_check_and_a_delayed_action,
    state_one_event_writes_the_next_reads_until_it_expires,
);

/// `signalbox try --sequence`: what fires when, on a virtual clock, nothing sent or stored.
#[test]
fn try_runs_a_sequence_of_events_on_a_clock() {
    let dir = tempfile::tempdir().unwrap();
    let sequence = dir.path().join("sequence.yaml");
    std::fs::write(
        &sequence,
        r#"
events:
  - at: "2026-12-01T10:00:00Z"
    event: { type: promise_to_pay.created, source: receeve, source_event_id: p-1, subject: { claim: C-1 }, amount: { value: "150.00", currency: EUR }, data: { dueDate: "2026-12-23" } }
  - at: "2026-12-01T10:00:00Z"
    event: { type: promise_to_pay.created, source: receeve, source_event_id: p-2, subject: { claim: C-2 }, amount: { value: "80.00", currency: EUR }, data: { dueDate: "2026-12-23" } }
  - at: "2026-12-22T10:00:00Z"
    event: { type: payment.received, source: receeve, source_event_id: pay-2, subject: { claim: C-2 }, amount: { value: "80.00", currency: EUR } }
until: "2027-01-10T00:00:00Z"
"#,
    )
    .unwrap();
    let rules = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("rules");
    let (ok, out) = crate::support::signalbox(&[
        "try",
        "--sequence",
        sequence.to_str().unwrap(),
        "--rules",
        rules.to_str().unwrap(),
    ]);
    assert!(ok, "{out}");
    assert!(
        out.contains("2026-12-28T22:59:59+00:00  FIRES promise_to_pay_unkept"),
        "{out}"
    );
    assert!(out.contains("Claim C-1: promise to pay not kept"), "{out}");
    assert!(!out.contains("Claim C-2"), "C-2 paid: {out}");
    assert!(out.contains("Nothing was sent or stored."), "{out}");
}

mod cases {
    use std::time::Duration;

    use chrono::{DateTime, Utc};
    use serde_json::{Value, json};
    use signalbox::clock::{Clock, ManualClock, SharedClock};
    use signalbox::store::{ActionStatus, CheckStatus, Store};

    use crate::rules::write_rules;
    use crate::support::{Receiver, TestApp, TestDb, test_config};

    fn start() -> DateTime<Utc> {
        "2026-12-01T09:00:00Z".parse().unwrap()
    }

    async fn app(db: &TestDb, rules: &std::path::Path, clock: SharedClock) -> TestApp {
        let mut config = test_config(db);
        config.rules_dir = rules.to_owned();
        TestApp::spawn_with_clock(config, clock).await
    }

    /// A loopback receiver, a rules folder (`RECEIVER` in the rules is the receiver's URL), a
    /// manual clock at [`start`], and an engine on them.
    async fn engine(
        db: &TestDb,
        rules: &[(&str, &str)],
    ) -> (
        Receiver,
        tempfile::TempDir,
        std::sync::Arc<ManualClock>,
        TestApp,
    ) {
        let receiver = Receiver::start().await;
        let dir = tempfile::tempdir().unwrap();
        let files: Vec<(&str, String)> = rules
            .iter()
            .map(|(name, text)| (*name, text.replace("RECEIVER", &receiver.url)))
            .collect();
        let files: Vec<(&str, &str)> = files.iter().map(|(n, t)| (*n, t.as_str())).collect();
        write_rules(dir.path(), &files);
        let clock = ManualClock::new(start());
        let app = app(db, dir.path(), clock.clone()).await;
        (receiver, dir, clock, app)
    }

    async fn post(app: &TestApp, event: Value) -> String {
        let (status, receipt) = app.post("/v1/events", event.to_string()).await;
        assert_eq!(status, 201, "{receipt}");
        receipt["id"].as_str().unwrap().to_owned()
    }

    /// Polls `done` (every 20 ms, at most 30 s): a wait for work, not for a window of time.
    async fn until<F: std::future::Future<Output = bool>>(what: &str, mut done: impl FnMut() -> F) {
        for _ in 0..1500 {
            if done().await {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("timed out waiting until {what}");
    }

    async fn actions(store: &Store, rule: &str) -> Vec<signalbox::store::ActionSummary> {
        store.list_actions(None, Some(rule), 100).await.unwrap()
    }

    const COUNT: &str = r#"
version: 1
id: three_failures
on: [sms.delivery_failed]
history:
  failures: { events: sms.delivery_failed, same: claim, within: 7d }
when: history.failures.count >= 3
actions:
  - type: webhook
    url: "RECEIVER/{{ event.subject.claim }}/{{ history.failures.count }}"
"#;

    pub(super) async fn a_count_rule_fires_at_the_third_event_not_the_second(db: TestDb) {
        let (receiver, _dir, _clock, app) = engine(&db, &[("count.yaml", COUNT)]).await;
        let failure = |n: u32, claim: &str, at: &str| {
            json!({"type": "sms.delivery_failed", "source_event_id": format!("f-{n}"),
                   "occurred_at": at, "subject": {"claim": claim}})
        };
        post(&app, failure(1, "C-1", "2026-11-20T09:00:00Z")).await; // 11 days before: out
        post(&app, failure(2, "C-1", "2026-11-28T09:00:00Z")).await;
        post(&app, failure(3, "C-2", "2026-11-29T09:00:00Z")).await; // another claim
        post(&app, failure(4, "C-1", "2026-11-30T09:00:00Z")).await;
        app.wait_processed().await;
        assert!(
            actions(&app.store, "three_failures").await.is_empty(),
            "two failures of C-1 within 7 days are not enough"
        );
        post(&app, failure(5, "C-1", "2026-12-01T08:00:00Z")).await;
        let received = receiver.wait_for(1).await;
        assert_eq!(
            received[0].path, "/C-1/3",
            "the third failure within 7 days fires"
        );
        assert_eq!(actions(&app.store, "three_failures").await.len(), 1);
        app.stop().await;
    }

    const PROMISE: &str = r#"
version: 1
id: unkept
on: [promise_to_pay.created]
calendar: DE
unless:
  event: payment.received
  same: claim
  where: next.amount.value >= event.amount.value
  from: "{{ event.data.dueDate }}"
  within: 2 business days
actions:
  - type: webhook
    url: "RECEIVER/unkept/{{ event.subject.claim }}"
"#;

    fn promise(claim: &str, due: &str) -> Value {
        json!({"type": "promise_to_pay.created", "source_event_id": format!("p-{claim}"),
               "occurred_at": "2026-12-01T09:00:00Z", "subject": {"claim": claim},
               "amount": {"value": "100.00", "currency": "EUR"}, "data": {"dueDate": due}})
    }

    fn payment(n: u32, claim: &str, value: &str, at: &str) -> Value {
        json!({"type": "payment.received", "source_event_id": format!("pay-{n}"),
               "occurred_at": at, "subject": {"claim": claim},
               "amount": {"value": value, "currency": "EUR"}})
    }

    pub(super) async fn a_check_fires_once_at_its_deadline_unless_a_follow_up_came(db: TestDb) {
        let (receiver, dir, clock, app) = engine(&db, &[("promise.yaml", PROMISE)]).await;
        // On PostgreSQL a second engine races the first for every deadline.
        let second = if db.url.starts_with("postgres") {
            Some(self::app(&db, dir.path(), clock.clone()).await)
        } else {
            None
        };
        // Due Friday 4 December: the deadline is Tuesday the 8th, 00:00 UTC.
        post(&app, promise("C-1", "2026-12-04")).await;
        post(&app, promise("C-2", "2026-12-04")).await;
        post(&app, promise("C-3", "2026-12-04")).await;
        app.wait_processed().await;
        let pending = app
            .store
            .list_checks(Some(CheckStatus::Pending), Some("unkept"), 10)
            .await
            .unwrap();
        assert_eq!(pending.len(), 3, "{pending:?}");
        assert_eq!(
            pending[0].deadline,
            "2026-12-08T00:00:00Z".parse::<DateTime<Utc>>().unwrap()
        );
        // C-2 pays in full, C-3 only in part.
        clock.set("2026-12-05T10:00:00Z".parse().unwrap());
        post(&app, payment(1, "C-2", "100.00", "2026-12-05T10:00:00Z")).await;
        post(&app, payment(2, "C-3", "40.00", "2026-12-05T10:00:00Z")).await;
        app.wait_processed().await;
        let satisfied = app
            .store
            .list_checks(Some(CheckStatus::Satisfied), Some("unkept"), 10)
            .await
            .unwrap();
        assert_eq!(satisfied.len(), 1, "{satisfied:?}");
        // Just before the deadline nothing fires; at it, C-1 and C-3 do, once each.
        clock.set("2026-12-07T23:59:59Z".parse().unwrap());
        assert!(
            app.store
                .due_checks(clock.now(), 10)
                .await
                .unwrap()
                .is_empty(),
            "nothing is due a second before the deadline"
        );
        assert!(receiver.received().is_empty());
        clock.set("2026-12-08T00:00:00Z".parse().unwrap());
        let mut paths: Vec<String> = receiver
            .wait_for(2)
            .await
            .into_iter()
            .map(|r| r.path)
            .collect();
        paths.sort();
        assert_eq!(paths, ["/unkept/C-1", "/unkept/C-3"]);
        crate::support::wait_actions_settled(&app.store, 2).await;
        clock.set("2026-12-09T00:00:00Z".parse().unwrap());
        app.wait_processed().await;
        let fired = app
            .store
            .list_checks(Some(CheckStatus::Fired), Some("unkept"), 10)
            .await
            .unwrap();
        assert_eq!(fired.len(), 2);
        assert_eq!(
            actions(&app.store, "unkept").await.len(),
            2,
            "fired once each"
        );
        assert_eq!(receiver.received().len(), 2, "delivered once each");
        if let Some(second) = second {
            second.stop().await;
        }
        app.stop().await;
    }

    pub(super) async fn a_follow_up_that_arrived_first_leaves_no_check(db: TestDb) {
        let (_receiver, _dir, clock, app) = engine(&db, &[("promise.yaml", PROMISE)]).await;
        // The payment is processed before the promise it keeps (it occurred after it).
        post(&app, payment(1, "C-1", "100.00", "2026-12-01T09:00:01Z")).await;
        app.wait_processed().await;
        let id = post(&app, promise("C-1", "2026-12-04")).await;
        app.wait_processed().await;
        let pending = app
            .store
            .list_checks(None, Some("unkept"), 10)
            .await
            .unwrap();
        assert!(pending.is_empty(), "no check: {pending:?}");
        let (_, listed) = app.get(&format!("/v1/events/{id}/evaluations")).await;
        assert_eq!(listed["evaluations"], json!([]), "no waiting record");
        clock.set("2026-12-10T00:00:00Z".parse().unwrap());
        app.wait_processed().await;
        assert!(
            actions(&app.store, "unkept").await.is_empty(),
            "no false alarm"
        );
        app.stop().await;
    }

    const REMIND: &str = r#"
version: 1
id: remind
on: [promise_to_pay.created]
actions:
  - type: webhook
    url: "RECEIVER/remind/{{ event.subject.claim }}"
    after: 1h
    cancel_on: { event: payment.received, same: claim }
"#;

    pub(super) async fn delayed_actions_wait_and_a_later_event_cancels_them(db: TestDb) {
        let (receiver, _dir, clock, app) = engine(&db, &[("remind.yaml", REMIND)]).await;
        post(&app, promise("C-1", "2026-12-04")).await;
        post(&app, promise("C-2", "2026-12-04")).await;
        app.wait_processed().await;
        let planned = actions(&app.store, "remind").await;
        assert_eq!(planned.len(), 2);
        assert!(planned.iter().all(|a| a.status == ActionStatus::Pending));
        clock.advance(Duration::from_secs(30 * 60));
        post(&app, payment(1, "C-2", "100.00", "2026-12-01T09:30:00Z")).await;
        app.wait_processed().await;
        let waiting = actions(&app.store, "remind").await;
        assert!(
            waiting.iter().any(|a| a.status == ActionStatus::Pending
                && a.next_attempt_at.is_some_and(|t| t > clock.now())),
            "C-1's reminder is not due yet: {waiting:?}"
        );
        assert!(receiver.received().is_empty(), "not due yet");
        clock.advance(Duration::from_secs(31 * 60));
        let received = receiver.wait_for(1).await;
        assert_eq!(received[0].path, "/remind/C-1");
        let statuses: Vec<(String, ActionStatus)> = actions(&app.store, "remind")
            .await
            .into_iter()
            .map(|a| (a.last_error.unwrap_or_default(), a.status))
            .collect();
        assert!(
            statuses
                .iter()
                .any(|(why, s)| *s == ActionStatus::Cancelled && why.contains("cancelled by event")),
            "{statuses:?}"
        );
        crate::support::wait_actions_settled(&app.store, 1).await;
        assert_eq!(receiver.received().len(), 1, "the cancelled one never runs");
        app.stop().await;
    }

    const TICK: &str = r#"
version: 1
id: every_minute
schedule: { cron: "* * * * *" }
actions:
  - type: webhook
    url: "RECEIVER/tick/{{ event.occurred_at }}"
"#;

    pub(super) async fn a_schedule_ticks_once_per_tick_with_two_engines(db: TestDb) {
        let receiver = Receiver::start().await;
        let dir = tempfile::tempdir().unwrap();
        write_rules(
            dir.path(),
            &[("tick.yaml", &TICK.replace("RECEIVER", &receiver.url))],
        );
        let clock = ManualClock::new(start());
        let first = app(&db, dir.path(), clock.clone()).await;
        // One SQLite file has one engine; PostgreSQL is shared by two.
        let second = if db.url.starts_with("postgres") {
            Some(app(&db, dir.path(), clock.clone()).await)
        } else {
            None
        };
        // The schedule counts from its first sight; then three ticks pass, one at a time.
        until("the schedule is seen", || async {
            first
                .store
                .schedule_state("every_minute")
                .await
                .unwrap()
                .is_some()
        })
        .await;
        for minute in 1..=3 {
            clock.advance(Duration::from_secs(60));
            receiver.wait_for(minute).await;
            // Recorded before the clock jumps again (a jump expires in-flight leases).
            crate::support::wait_actions_settled(&first.store, minute as i64).await;
        }
        // Both engines' timers raced for each tick; one event each was stored.
        let (_, ticks) = first.get("/v1/events?type=schedule.tick").await;
        assert_eq!(ticks["events"].as_array().unwrap().len(), 3, "{ticks}");
        let mut paths: Vec<String> = receiver.received().into_iter().map(|r| r.path).collect();
        paths.sort();
        assert_eq!(
            paths,
            [
                "/tick/2026-12-01T09%3A01%3A00Z",
                "/tick/2026-12-01T09%3A02%3A00Z",
                "/tick/2026-12-01T09%3A03%3A00Z"
            ],
            "each tick once"
        );
        if let Some(second) = second {
            second.stop().await;
        }
        first.stop().await;
    }

    /// An engine on a runtime of its own, dropped without a clean stop (as a crash leaves it:
    /// nothing after the last commit).
    fn crashed_engine(db: TestDb, rules: &std::path::Path, clock: SharedClock, events: Vec<Value>) {
        let runtime = tokio::runtime::Runtime::new().unwrap();
        let rules = rules.to_owned();
        runtime.block_on(async move {
            let app = app(&db, &rules, clock).await;
            for event in events {
                post(&app, event).await;
            }
            app.wait_processed().await;
            std::mem::forget(app);
        });
        runtime.shutdown_background();
    }

    pub(super) async fn an_operator_cancels_a_pending_check_and_a_delayed_action(db: TestDb) {
        let (receiver, _dir, clock, app) =
            engine(&db, &[("promise.yaml", PROMISE), ("remind.yaml", REMIND)]).await;
        post(&app, promise("C-1", "2026-12-04")).await;
        app.wait_processed().await;
        let (status, listed) = app.get("/v1/checks?status=pending").await;
        assert_eq!(status, 200, "{listed}");
        let check = listed["checks"][0]["id"].as_str().unwrap().to_owned();
        let (status, listed) = app.get("/v1/actions?status=pending&rule=remind").await;
        assert_eq!(status, 200, "{listed}");
        let action = listed["actions"][0]["id"].as_str().unwrap().to_owned();
        assert_eq!(
            listed["actions"][0]["next_attempt_at"], "2026-12-01T10:00:00Z",
            "a delayed action shows when it runs"
        );
        let (status, answer) = app.post(&format!("/v1/checks/{check}/cancel"), "").await;
        assert_eq!((status, &answer["cancelled"]), (200, &json!(1)), "{answer}");
        let (status, answer) = app.post(&format!("/v1/actions/{action}/cancel"), "").await;
        assert_eq!((status, &answer["cancelled"]), (200, &json!(1)), "{answer}");
        // A second cancel says why nothing changed; an unknown id is 404.
        let (status, answer) = app.post(&format!("/v1/actions/{action}/cancel"), "").await;
        assert_eq!(status, 200);
        assert!(
            answer["message"]
                .as_str()
                .unwrap()
                .contains("is cancelled, not pending"),
            "{answer}"
        );
        let (status, _) = app.post("/v1/checks/chk_nope/cancel", "").await;
        assert_eq!(status, 404);
        // Past every deadline, nothing runs.
        clock.set("2026-12-20T00:00:00Z".parse().unwrap());
        assert!(
            app.store
                .due_checks(clock.now(), 10)
                .await
                .unwrap()
                .is_empty(),
            "the cancelled check never comes due"
        );
        let cancelled = app.store.get_action(&action).await.unwrap().unwrap();
        assert_eq!(cancelled.status, ActionStatus::Cancelled);
        app.wait_processed().await;
        assert!(receiver.received().is_empty(), "{:?}", receiver.received());
        // Checks come a page at a time, newest first, each page's cursor leading to the next.
        post(&app, promise("C-2", "2027-01-04")).await;
        app.wait_processed().await;
        let mut seen = Vec::new();
        let mut path = "/v1/checks?limit=1".to_owned();
        loop {
            let (status, page) = app.get(&path).await;
            assert_eq!(status, 200, "{page}");
            seen.extend(
                page["checks"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|c| c["id"].clone()),
            );
            match page["next_before"].as_str() {
                Some(before) => path = format!("/v1/checks?limit=1&before={before}"),
                None => break,
            }
        }
        assert_eq!(seen.len(), 2, "{seen:?}");
        assert_eq!(seen[1], json!(check), "the cancelled one, older: {seen:?}");
        app.stop().await;
    }

    const STATE: &str = r#"
version: 1
id: nth_failure
on: [sms.delivery_failed]
state: claim
script: |
  let n = (state("failures") ?? 0) + 1;
  set_state("failures", n, "1d");
actions:
  - type: webhook
    url: "RECEIVER/{{ event.subject.claim }}/{{ n }}"
"#;

    pub(super) async fn state_one_event_writes_the_next_reads_until_it_expires(db: TestDb) {
        let (receiver, _dir, clock, app) = engine(&db, &[("state.yaml", STATE)]).await;
        let failure = |n: u32, claim: &str| {
            json!({"type": "sms.delivery_failed", "source_event_id": format!("s-{n}"),
                   "subject": {"claim": claim}})
        };
        post(&app, failure(1, "C-1")).await;
        app.wait_processed().await;
        // Two in one request (one batch): the second reads what the first wrote.
        let (status, receipt) = app
            .post(
                "/v1/events",
                json!([failure(2, "C-1"), failure(3, "C-1"), failure(4, "C-2")]).to_string(),
            )
            .await;
        assert_eq!(status, 200, "{receipt}");
        app.wait_processed().await;
        // Delivered before the clock jumps (a jump would expire the leases of deliveries in
        // flight, and they would be made again: at least once).
        receiver.wait_for(4).await;
        crate::support::wait_actions_settled(&app.store, 4).await;
        // A day later the count has expired and starts again.
        clock.advance(Duration::from_secs(86_400 + 1));
        post(&app, failure(5, "C-1")).await;
        let mut paths: Vec<String> = receiver
            .wait_for(5)
            .await
            .into_iter()
            .map(|r| r.path)
            .collect();
        paths.sort();
        assert_eq!(paths, ["/C-1/1", "/C-1/1", "/C-1/2", "/C-1/3", "/C-2/1"]);
        app.stop().await;
    }

    pub(super) async fn pending_checks_and_delayed_actions_survive_a_crash(db: TestDb) {
        let receiver = Receiver::start().await;
        let dir = tempfile::tempdir().unwrap();
        write_rules(
            dir.path(),
            &[
                ("promise.yaml", &PROMISE.replace("RECEIVER", &receiver.url)),
                ("remind.yaml", &REMIND.replace("RECEIVER", &receiver.url)),
            ],
        );
        let clock = ManualClock::new(start());
        {
            let (dir, clock) = (dir.path().to_owned(), clock.clone() as SharedClock);
            let borrowed = TestDb::borrowed(&db);
            tokio::task::spawn_blocking(move || {
                crashed_engine(borrowed, &dir, clock, vec![promise("C-1", "2026-12-04")]);
            })
            .await
            .unwrap();
        }
        // A new engine on the same store, days later: the reminder runs, the check fires,
        // each once.
        clock.set("2026-12-08T00:00:00Z".parse().unwrap());
        let app = app(&db, dir.path(), clock.clone()).await;
        let mut paths: Vec<String> = receiver
            .wait_for(2)
            .await
            .into_iter()
            .map(|r| r.path)
            .collect();
        paths.sort();
        assert_eq!(paths, ["/remind/C-1", "/unkept/C-1"]);
        crate::support::wait_actions_settled(&app.store, 2).await;
        assert_eq!(receiver.received().len(), 2, "once each");
        let fired = app
            .store
            .list_checks(Some(CheckStatus::Fired), None, 10)
            .await
            .unwrap();
        assert_eq!(fired.len(), 1, "{fired:?}");
        app.stop().await;
    }
}

/// A calendar of the config counts in `check` and `test` as in the engine; without the config
/// the rule names a calendar that does not exist, and `check` says so.
#[test]
fn the_configs_calendars_count_in_check_and_test() {
    let dir = tempfile::tempdir().unwrap();
    let rules = dir.path().join("rules");
    std::fs::create_dir_all(&rules).unwrap();
    std::fs::write(
        rules.join("r.yaml"),
        r#"version: 1
id: acme_deadline
on: [promise_to_pay.created]
calendar: acme
unless: { event: payment.received, same: claim, from: "{{ event.data.dueDate }}", within: 1 business day }
actions: [{ type: emit, event_type: promise.unkept }]
tests:
  - name: the_24th_is_a_holiday_at_acme
    events:
      - { at: "2026-12-01T10:00:00Z", event: { type: promise_to_pay.created, source_event_id: p, subject: { claim: C-1 }, data: { dueDate: "2026-12-23" } } }
    expect:
      - at: "2026-12-28T00:00:00Z"
"#,
    )
    .unwrap();
    let config = dir.path().join("signalbox.yaml");
    std::fs::write(
        &config,
        "calendars:\n  acme: { extends: DE, holidays: [2026-12-24] }\nquiet_hours: { start: \"20:00\", end: \"07:30\" }\n",
    )
    .unwrap();
    let (rules, config) = (rules.to_str().unwrap(), config.to_str().unwrap());
    let (ok, out) = crate::support::signalbox(&["test", rules, "-c", config]);
    assert!(ok, "{out}");
    assert!(out.contains("PASS"), "{out}");
    let (ok, out) = crate::support::signalbox(&["check", rules]);
    assert!(!ok, "{out}");
    assert!(
        out.contains("'acme' is not a calendar (known: CL, DE, ES, weekdays)"),
        "{out}"
    );
}
