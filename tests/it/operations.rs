//! Putting things right over the API, on both backends: actions listed by what a user asks for,
//! a dead action retried to a real loopback target with its idempotency key, a cancelled one
//! that stops retrying, and replays of stored events against changed rules (dry, then applied
//! once and only once).

crate::on_both_backends!(cases:
    a_retried_dead_action_is_delivered_again_with_its_key_and_only_operators_may_retry,
    a_cancelled_action_is_not_tried_again,
    a_replay_dry_stores_nothing_and_applied_plans_only_the_new_firing_once,
    action_filters_return_what_was_asked_a_page_at_a_time,
);

mod cases {
    use std::time::Duration;

    use serde_json::{Value, json};
    use signalbox::auth::{Role, TokenConfig};
    use signalbox::clock::{Clock, ManualClock};
    use signalbox::config::{Config, Secret};
    use signalbox::store::ActionStatus;

    use crate::rules::write_rules;
    use crate::support::{Answer, Receiver, TestApp, TestDb, test_config, wait_actions_settled};

    const INGEST: &str = "tok-ops-ingest-0123456789abcdef";
    const READ: &str = "tok-ops-read-0123456789abcdefgh";
    const OPERATE: &str = "tok-ops-operate-0123456789abcd";

    /// The config with one token per role these tests use.
    fn with_tokens(mut config: Config) -> Config {
        config.tokens = [
            ("ingest", INGEST, Role::Ingest),
            ("reader", READ, Role::Read),
            ("ops", OPERATE, Role::Operate),
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

    /// An engine on `db` with `rules` (`RECEIVER` replaced by the receiver's URL) in a folder
    /// of its own, tokens, and `clock`.
    async fn engine(
        db: &TestDb,
        receiver: &Receiver,
        rules: &str,
        clock: Option<signalbox::clock::SharedClock>,
    ) -> (TestApp, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        write_rules(
            dir.path(),
            &[("rules.yaml", &rules.replace("RECEIVER", &receiver.url))],
        );
        let mut config = with_tokens(test_config(db));
        config.rules_dir = dir.path().to_owned();
        let app = match clock {
            Some(clock) => TestApp::spawn_with_clock(config, clock).await,
            None => TestApp::spawn(config).await,
        };
        (app, dir)
    }

    async fn call(
        app: &TestApp,
        method: &str,
        path: &str,
        token: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let mut request = app
            .client
            .request(method, format!("{}{path}", app.base))
            .bearer_auth(token);
        if let Some(body) = body {
            request = request
                .header("content-type", "application/json")
                .body(body.to_string());
        }
        let response = request.send().await.expect("request sent");
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    async fn get(app: &TestApp, path: &str) -> Value {
        let (status, body) = call(app, "GET", path, READ, None).await;
        assert_eq!(status, 200, "GET {path}: {body}");
        body
    }

    async fn post_claim(app: &TestApp, claim: &str, amount: &str) -> String {
        let (status, receipt) = call(
            app,
            "POST",
            "/v1/events",
            INGEST,
            Some(json!({"type": "claim.created", "source_event_id": claim,
                        "subject": {"claim": claim}, "amount": {"value": amount, "currency": "EUR"}})),
        )
        .await;
        assert_eq!(status, 201, "{receipt}");
        receipt["id"].as_str().unwrap().to_owned()
    }

    fn ids(list: &Value) -> Vec<String> {
        list["actions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a["id"].as_str().unwrap().to_owned())
            .collect()
    }

    const HOOK: &str = r#"
version: 1
id: notify
on: [claim.created]
actions:
  - type: webhook
    url: "RECEIVER/hook/{{ event.subject.claim }}"
    body: { claim: "{{ event.subject.claim }}" }
"#;

    pub(super) async fn a_retried_dead_action_is_delivered_again_with_its_key_and_only_operators_may_retry(
        db: TestDb,
    ) {
        let receiver = Receiver::start().await;
        // The target refuses the first request for good: the action is dead at once.
        receiver.answer(&[Answer::status(422)]);
        let (app, _dir) = engine(&db, &receiver, HOOK, None).await;
        post_claim(&app, "C-1", "10").await;
        assert_eq!(wait_actions_settled(&app.store, 1).await, (0, 0, 1));
        let dead = get(&app, "/v1/actions?state=dead").await;
        let [id] = ids(&dead).try_into().unwrap();
        let detail = get(&app, &format!("/v1/actions/{id}")).await;
        let action = &detail["action"];
        assert_eq!(action["status"], "dead", "{detail}");
        assert_eq!(action["idempotency_key"], id.as_str());
        assert_eq!(action["target"], "127.0.0.1");
        assert_eq!(
            action["parameters"]["url"],
            format!("{}/hook/C-1", receiver.url)
        );
        assert_eq!(action["parameters"]["body"], json!({"claim": "C-1"}));
        assert_eq!(detail["attempts"][0]["outcome"], "failed");
        assert_eq!(detail["attempts"][0]["status_code"], 422);

        let path = format!("/v1/actions/{id}/retry");
        let (status, refused) = call(&app, "POST", &path, READ, None).await;
        assert_eq!(status, 403, "a reader may not retry: {refused}");
        assert_eq!(refused["code"], "forbidden");
        let (status, refused) = call(&app, "POST", "/v1/actions/retry", READ, None).await;
        assert_eq!(status, 403, "{refused}");
        assert_eq!(
            app.store.get_action(&id).await.unwrap().unwrap().status,
            ActionStatus::Dead,
            "a refused retry changes nothing"
        );

        let (status, retried) = call(&app, "POST", &path, OPERATE, None).await;
        assert_eq!(
            (status, retried["retried"].clone()),
            (200, json!(1)),
            "{retried}"
        );
        let requests = receiver.wait_for(2).await;
        assert_eq!(wait_actions_settled(&app.store, 1).await, (0, 1, 0));
        assert_eq!(requests.len(), 2);
        for request in &requests {
            assert_eq!(request.path, "/hook/C-1");
            assert_eq!(
                request.headers["idempotency-key"], id,
                "the retried action keeps its key"
            );
        }
        let detail = get(&app, &format!("/v1/actions/{id}")).await;
        assert_eq!(detail["action"]["status"], "delivered");
        let outcomes: Vec<&str> = detail["attempts"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a["outcome"].as_str().unwrap())
            .collect();
        assert_eq!(outcomes, ["failed", "delivered"], "every attempt, in order");

        // Nothing left to retry: said, not done.
        let (status, again) = call(&app, "POST", &path, OPERATE, None).await;
        assert_eq!(
            (status, again["retried"].clone()),
            (200, json!(0)),
            "{again}"
        );
        assert!(
            again["message"].as_str().unwrap().contains("is delivered"),
            "{again}"
        );
        let (status, none) = call(&app, "POST", "/v1/actions/retry", OPERATE, None).await;
        assert_eq!(status, 200, "{none}");
        assert_eq!(
            (none["retried"].clone(), none["more"].clone()),
            (json!(0), json!(false))
        );
        let (status, missing) =
            call(&app, "POST", "/v1/actions/act_nope/retry", OPERATE, None).await;
        assert_eq!(
            (status, missing["code"].clone()),
            (404, json!("action_not_found"))
        );
        let (status, missing) = call(&app, "GET", "/v1/actions/act_nope", READ, None).await;
        assert_eq!(
            (status, missing["code"].clone()),
            (404, json!("action_not_found"))
        );
        assert_eq!(receiver.received().len(), 2);
        app.stop().await;
    }

    pub(super) async fn a_cancelled_action_is_not_tried_again(db: TestDb) {
        let receiver = Receiver::start().await;
        receiver.answer(&[Answer::status(500)]);
        // The engine's time stands still: the retry after the 500 waits until the test moves it.
        let clock = ManualClock::new("2026-12-01T09:00:00Z".parse().unwrap());
        let (app, _dir) = engine(&db, &receiver, HOOK, Some(clock.clone())).await;
        post_claim(&app, "C-1", "10").await;
        receiver.wait_for(1).await;
        let mut backing_off = None;
        for _ in 0..1500 {
            let action = app
                .store
                .list_actions(None, None, 10)
                .await
                .unwrap()
                .remove(0);
            if action.attempts == 1 && action.status == ActionStatus::Pending {
                backing_off = Some(action);
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let action = backing_off.expect("the action waits for its retry");
        assert!(action.next_attempt_at.unwrap() > clock.now(), "{action:?}");

        let path = format!("/v1/actions/{}/cancel", action.id);
        let (status, refused) = call(&app, "POST", &path, READ, None).await;
        assert_eq!(status, 403, "{refused}");
        let (status, cancelled) = call(&app, "POST", &path, OPERATE, None).await;
        assert_eq!(
            (status, cancelled["cancelled"].clone()),
            (200, json!(1)),
            "{cancelled}"
        );
        let listed = get(&app, "/v1/actions?state=cancelled").await;
        assert_eq!(ids(&listed), std::slice::from_ref(&action.id));
        assert_eq!(listed["actions"][0]["last_error"], "cancelled by token ops");

        // Past its retry time, with another action due after it: the dispatcher delivers that
        // one, and never the cancelled one.
        clock.advance(Duration::from_secs(60));
        post_claim(&app, "C-2", "10").await;
        let received = receiver.wait_for(2).await;
        assert_eq!(wait_actions_settled(&app.store, 1).await, (0, 1, 0));
        let paths: Vec<&str> = received.iter().map(|r| r.path.as_str()).collect();
        assert_eq!(paths, ["/hook/C-1", "/hook/C-2"]);
        let after = app.store.get_action(&action.id).await.unwrap().unwrap();
        assert_eq!((after.status, after.attempts), (ActionStatus::Cancelled, 1));

        // A cancelled action is retried only when asked for by name.
        let retry = format!("/v1/actions/{}/retry", action.id);
        let (status, kept) = call(&app, "POST", &retry, OPERATE, None).await;
        assert_eq!((status, kept["retried"].clone()), (200, json!(0)), "{kept}");
        assert!(
            kept["message"]
                .as_str()
                .unwrap()
                .contains("\"cancelled\": true"),
            "{kept}"
        );
        let (status, bulk) =
            call(&app, "POST", "/v1/actions/retry", OPERATE, Some(json!({}))).await;
        assert_eq!(
            (status, bulk["retried"].clone()),
            (200, json!(0)),
            "bulk retries skip it: {bulk}"
        );
        let (status, back) = call(
            &app,
            "POST",
            &retry,
            OPERATE,
            Some(json!({"cancelled": true})),
        )
        .await;
        assert_eq!((status, back["retried"].clone()), (200, json!(1)), "{back}");
        let received = receiver.wait_for(3).await;
        assert_eq!(received[2].path, "/hook/C-1");
        assert_eq!(received[2].headers["idempotency-key"], action.id);
        assert_eq!(wait_actions_settled(&app.store, 2).await, (0, 2, 0));
        app.stop().await;
    }

    /// The rules before the change: `notify` fires, `tag` fails on every event.
    const BEFORE: &str = r#"
version: 1
rules:
  - id: notify
    on: [claim.created]
    actions: [{ type: webhook, url: "RECEIVER/hook/{{ event.subject.claim }}" }]
  - id: tag
    on: [claim.created]
    script: |
      let n = 0;
      loop { n += 1; }
    actions: [{ type: webhook, url: "RECEIVER/tag/{{ event.subject.claim }}" }]
"#;

    /// The rules after the change: `notify` as it was, `tag` mended, and a new rule for big
    /// claims.
    const AFTER: &str = r#"
version: 1
rules:
  - id: notify
    on: [claim.created]
    actions: [{ type: webhook, url: "RECEIVER/hook/{{ event.subject.claim }}" }]
  - id: tag
    on: [claim.created]
    actions: [{ type: webhook, url: "RECEIVER/tag/{{ event.subject.claim }}" }]
  - id: big_claims
    on: [claim.created]
    when: event.amount.value >= 1000
    actions: [{ type: webhook, url: "RECEIVER/big/{{ event.subject.claim }}" }]
"#;

    fn paths(receiver: &Receiver) -> Vec<String> {
        let mut paths: Vec<String> = receiver.received().into_iter().map(|r| r.path).collect();
        paths.sort();
        paths
    }

    async fn recorded(app: &TestApp, event: &str) -> Vec<(String, String)> {
        let body = get(app, &format!("/v1/events/{event}/evaluations")).await;
        let mut rules: Vec<(String, String)> = body["evaluations"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| {
                (
                    e["rule_id"].as_str().unwrap().to_owned(),
                    e["outcome"].as_str().unwrap().to_owned(),
                )
            })
            .collect();
        rules.sort();
        rules
    }

    pub(super) async fn a_replay_dry_stores_nothing_and_applied_plans_only_the_new_firing_once(
        db: TestDb,
    ) {
        let receiver = Receiver::start().await;
        let (app, dir) = engine(&db, &receiver, BEFORE, None).await;
        let small = post_claim(&app, "C-1", "50").await;
        let big = post_claim(&app, "C-2", "5000").await;
        post_claim(&app, "C-3", "2500").await;
        receiver.wait_for(3).await;
        assert_eq!(wait_actions_settled(&app.store, 3).await, (0, 3, 0));

        write_rules(
            dir.path(),
            &[("rules.yaml", &AFTER.replace("RECEIVER", &receiver.url))],
        );
        let mut reloaded = false;
        for _ in 0..1500 {
            if get(&app, "/v1/rules/status").await["rules"] == 3 {
                reloaded = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert!(reloaded, "the changed rules are in force");
        let range = json!({"from": "2000-01-01", "to": "2100-01-01"});

        // Only operators replay; a dry run (the default) reports and changes nothing.
        let (status, refused) = call(&app, "POST", "/v1/replay", READ, Some(range.clone())).await;
        assert_eq!(status, 403, "{refused}");
        let (status, dry) = call(&app, "POST", "/v1/replay", OPERATE, Some(range.clone())).await;
        assert_eq!(status, 200, "{dry}");
        assert_eq!(dry["dry_run"], true);
        assert_eq!(dry["events"], 3);
        assert_eq!(
            dry["totals"],
            json!({"fired": 8, "actions": 5, "already_recorded": 3, "throttled": 0, "not_armed": 0, "failed": 0}),
            "{dry}"
        );
        let of = |report: &Value, event: &str, rule: &str| {
            report["listed"]
                .as_array()
                .unwrap()
                .iter()
                .find(|e| e["event_id"] == event)
                .and_then(|e| {
                    e["rules"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .find(|r| r["rule_id"] == rule)
                        .cloned()
                })
                .unwrap_or_else(|| panic!("no {rule} for {event} in {report}"))
        };
        let would = of(&dry, &big, "big_claims");
        assert_eq!(would["decision"], "would_plan");
        assert_eq!(would["then"], Value::Null);
        assert_eq!(
            would["actions"][0]["url"],
            format!("{}/big/C-2", receiver.url)
        );
        assert_eq!(of(&dry, &small, "notify")["decision"], "already_recorded");
        assert_eq!(of(&dry, &small, "notify")["then"], "fired");
        // A rule that failed then and fires now plans its actions.
        assert_eq!(of(&dry, &small, "tag")["decision"], "would_plan");
        assert_eq!(of(&dry, &small, "tag")["then"], "failed");
        let (status, one) = call(
            &app,
            "POST",
            "/v1/replay",
            OPERATE,
            Some(json!({"event_id": big})),
        )
        .await;
        assert_eq!((status, one["events"].clone()), (200, json!(1)), "{one}");
        assert_eq!(one["totals"]["actions"], 2);
        assert_eq!(
            app.store.count_actions().await.unwrap(),
            (0, 3, 0),
            "nothing planned"
        );
        assert_eq!(
            recorded(&app, &big).await,
            [
                ("notify".into(), "fired".into()),
                ("tag".into(), "failed".into())
            ]
        );

        // Applied: exactly the new firings plan their actions, and are delivered.
        let mut apply = range.clone();
        apply["dry_run"] = json!(false);
        let (status, applied) =
            call(&app, "POST", "/v1/replay", OPERATE, Some(apply.clone())).await;
        assert_eq!(status, 200, "{applied}");
        assert_eq!(applied["totals"]["actions"], 5, "{applied}");
        assert_eq!(of(&applied, &big, "big_claims")["decision"], "planned");
        assert_eq!(of(&applied, &big, "big_claims")["planned"], 1);
        receiver.wait_for(8).await;
        assert_eq!(wait_actions_settled(&app.store, 8).await, (0, 8, 0));
        assert_eq!(
            paths(&receiver),
            [
                "/big/C-2",
                "/big/C-3",
                "/hook/C-1",
                "/hook/C-2",
                "/hook/C-3",
                "/tag/C-1",
                "/tag/C-2",
                "/tag/C-3"
            ]
        );
        assert_eq!(
            recorded(&app, &big).await,
            [
                ("big_claims".into(), "fired".into()),
                ("notify".into(), "fired".into()),
                ("tag".into(), "fired".into())
            ]
        );

        // Again: everything is recorded already, nothing more is planned.
        let (status, again) = call(&app, "POST", "/v1/replay", OPERATE, Some(apply)).await;
        assert_eq!(status, 200, "{again}");
        assert_eq!(again["totals"]["actions"], 0, "{again}");
        assert_eq!(again["totals"]["already_recorded"], 8);
        assert_eq!(app.store.count_actions().await.unwrap(), (0, 8, 0));

        // A range a page at a time.
        let mut paged = range.clone();
        paged["limit"] = json!(2);
        let (_, first) = call(&app, "POST", "/v1/replay", OPERATE, Some(paged.clone())).await;
        assert_eq!(first["events"], 2, "{first}");
        paged["after"] = first["next_after"].clone();
        assert!(paged["after"].is_string(), "{first}");
        let (_, rest) = call(&app, "POST", "/v1/replay", OPERATE, Some(paged)).await;
        assert_eq!(rest["events"], 1, "{rest}");
        assert_eq!(rest["next_after"], Value::Null);

        // Clear refusals.
        for (body, status, code) in [
            (json!({}), 400, "invalid_replay_request"),
            (
                json!({"event_id": big, "from": "2026-01-01"}),
                400,
                "invalid_replay_request",
            ),
            (
                json!({"from": "2026-01-01", "limit": 10001}),
                400,
                "invalid_replay_request",
            ),
            (json!({"from": "yesterday"}), 400, "invalid_replay_request"),
            (
                json!({"from": "2026-01-01", "dry": false}),
                400,
                "invalid_replay_request",
            ),
            (json!({"event_id": "evt_nope"}), 404, "event_not_found"),
            (
                json!({"from": "2026-01-01", "after": "evt_nope"}),
                400,
                "invalid_replay_request",
            ),
        ] {
            let (got, answer) = call(&app, "POST", "/v1/replay", OPERATE, Some(body.clone())).await;
            assert_eq!(
                (got, answer["code"].as_str()),
                (status, Some(code)),
                "{body}: {answer}"
            );
        }
        if db.url.starts_with("sqlite:") {
            // The command line replays against the folder, on the store: nothing new either.
            let rules = dir.path().to_str().unwrap();
            let (ok, out) = crate::support::signalbox(&[
                "replay",
                "--from",
                "2000-01-01",
                "--rules",
                rules,
                "--database-url",
                &db.url,
            ]);
            assert!(ok, "{out}");
            assert!(
                out.contains(
                    "3 events replayed: 8 firings, would plan 0 actions; 8 already recorded"
                ),
                "{out}"
            );
            assert!(out.contains("a dry run"), "{out}");
        }
        app.stop().await;
    }

    const TWO_KINDS: &str = r#"
version: 1
rules:
  - id: hook
    on: [claim.created]
    actions: [{ type: webhook, url: "RECEIVER/hook/{{ event.subject.claim }}" }]
  - id: mail
    on: [claim.created]
    actions:
      - type: email
        to: "agent-{{ event.subject.claim }}@example.com"
        subject: "claim {{ event.subject.claim }}"
        text: created
"#;

    pub(super) async fn action_filters_return_what_was_asked_a_page_at_a_time(db: TestDb) {
        let receiver = Receiver::start().await;
        // Emails go nowhere (no SMTP server): dead at once. Webhooks are delivered.
        let (app, _dir) = engine(&db, &receiver, TWO_KINDS, None).await;
        let mut events = Vec::new();
        for claim in ["C-1", "C-2", "C-3"] {
            events.push(post_claim(&app, claim, "10").await);
        }
        assert_eq!(wait_actions_settled(&app.store, 6).await, (0, 3, 3));
        let kinds = |list: &Value| -> Vec<(String, String)> {
            list["actions"]
                .as_array()
                .unwrap()
                .iter()
                .map(|a| {
                    (
                        a["kind"].as_str().unwrap().to_owned(),
                        a["status"].as_str().unwrap().to_owned(),
                    )
                })
                .collect()
        };
        let dead = get(&app, "/v1/actions?state=dead").await;
        assert_eq!(kinds(&dead), vec![("email".into(), "dead".into()); 3]);
        assert_eq!(
            kinds(&get(&app, "/v1/actions?status=delivered&rule=hook").await),
            vec![("webhook".into(), "delivered".into()); 3]
        );
        let of_event = get(&app, &format!("/v1/actions?event={}", events[1])).await;
        assert_eq!(of_event["actions"].as_array().unwrap().len(), 2);
        assert!(
            of_event["actions"]
                .as_array()
                .unwrap()
                .iter()
                .all(|a| a["event_id"] == events[1].as_str())
        );
        // Target: part of the URL or the recipients, in any case; `%` is a character.
        let url = get(&app, "/v1/actions?target=/HOOK/c-2").await;
        assert_eq!(kinds(&url), [("webhook".into(), "delivered".into())]);
        assert_eq!(url["actions"][0]["event_id"], events[1].as_str());
        let mail = get(&app, "/v1/actions?target=agent-c-3@").await;
        assert_eq!(kinds(&mail), [("email".into(), "dead".into())]);
        assert_eq!(mail["actions"][0]["event_id"], events[2].as_str());
        assert_eq!(
            ids(&get(&app, "/v1/actions?target=127.0.0.1").await).len(),
            3
        );
        assert!(ids(&get(&app, "/v1/actions?target=%25").await).is_empty());
        assert!(ids(&get(&app, "/v1/actions?kind=pause_strategy").await).is_empty());
        let detail = get(&app, &format!("/v1/actions/{}", ids(&mail)[0])).await;
        assert_eq!(
            detail["action"]["parameters"]["to"],
            json!(["agent-C-3@example.com"])
        );

        // Pages: newest first, two at a time, each once.
        let all = ids(&get(&app, "/v1/actions").await);
        assert_eq!(all.len(), 6);
        let mut seen = Vec::new();
        let mut path = "/v1/actions?limit=2".to_owned();
        loop {
            let page = get(&app, &path).await;
            assert!(ids(&page).len() <= 2);
            seen.extend(ids(&page));
            match page["next_before"].as_str() {
                Some(before) => path = format!("/v1/actions?limit=2&before={before}"),
                None => break,
            }
        }
        assert_eq!(seen, all);
        let mut sorted = all.clone();
        sorted.sort();
        sorted.reverse();
        assert_eq!(all, sorted, "newest first");
        for bad in [
            "/v1/actions?state=sent",
            "/v1/actions?color=red",
            "/v1/actions?limit=x",
        ] {
            let (status, answer) = call(&app, "GET", bad, READ, None).await;
            assert_eq!(
                (status, answer["code"].as_str()),
                (400, Some("invalid_query")),
                "{bad}: {answer}"
            );
        }
        let (_, answer) = call(&app, "GET", "/v1/actions?state=sent", READ, None).await;
        assert!(
            answer["message"]
                .as_str()
                .unwrap()
                .contains("pending, in_flight, delivered, dead, cancelled"),
            "{answer}"
        );

        // Dead letters retried by rule, a bounded number per call. A retried email dies again
        // at once (no SMTP server), so the second call asks for those dead before the first.
        let before_retrying = chrono::Utc::now().to_rfc3339();
        let (status, first) = call(
            &app,
            "POST",
            "/v1/actions/retry",
            OPERATE,
            Some(json!({"rule": "mail", "limit": 2})),
        )
        .await;
        assert_eq!(status, 200, "{first}");
        assert_eq!(
            (first["retried"].clone(), first["more"].clone()),
            (json!(2), json!(true))
        );
        let (_, rest) = call(
            &app,
            "POST",
            "/v1/actions/retry",
            OPERATE,
            Some(json!({"state": "dead", "rule": "mail", "before": before_retrying})),
        )
        .await;
        assert_eq!(
            (rest["retried"].clone(), rest["more"].clone()),
            (json!(1), json!(false)),
            "{rest}"
        );
        let mut retried: Vec<String> = first["ids"]
            .as_array()
            .unwrap()
            .iter()
            .chain(rest["ids"].as_array().unwrap())
            .map(|i| i.as_str().unwrap().to_owned())
            .collect();
        retried.sort();
        let mut dead_ids = ids(&dead);
        dead_ids.sort();
        assert_eq!(retried, dead_ids, "each dead email once");
        // Without SMTP they die again; the deliveries stay as they were.
        assert_eq!(wait_actions_settled(&app.store, 6).await, (0, 3, 3));
        for (body, what) in [
            (json!({"state": "cancelled"}), "only dead actions"),
            (json!({"limit": 5000}), "from 1 to 1000"),
            (json!({"after": "soon"}), "not a time"),
            (
                json!({"after": "2026-12-02", "before": "2026-12-01"}),
                "later than after",
            ),
            (json!({"rules": "mail"}), "unknown field"),
        ] {
            let (status, answer) = call(
                &app,
                "POST",
                "/v1/actions/retry",
                OPERATE,
                Some(body.clone()),
            )
            .await;
            assert_eq!(status, 400, "{body}: {answer}");
            assert!(
                answer["message"].as_str().unwrap().contains(what),
                "{body}: {answer}"
            );
        }
        if db.url.starts_with("sqlite:") {
            let (ok, out) = crate::support::signalbox(&[
                "actions",
                "--target",
                "agent-c-1",
                "--database-url",
                &db.url,
            ]);
            assert!(ok, "{out}");
            assert!(out.contains(&events[0]) && out.contains("email"), "{out}");
            assert!(out.contains("1 shown"), "{out}");
            let (ok, out) = crate::support::signalbox(&[
                "actions",
                "retry",
                "--dead",
                "--event",
                &events[0],
                "--database-url",
                &db.url,
            ]);
            assert!(ok && out.contains("1 action put back"), "{out}");
            let (ok, out) = crate::support::signalbox(&[
                "actions",
                "show",
                &ids(&url)[0],
                "--database-url",
                &db.url,
            ]);
            assert!(ok, "{out}");
            assert!(
                out.contains("target        127.0.0.1") && out.contains("/hook/C-2"),
                "{out}"
            );
            assert!(out.contains("#1") && out.contains("delivered"), "{out}");
        }
        app.stop().await;
    }
}
