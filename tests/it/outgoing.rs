//! Outgoing requests against real local targets, on both backends: disguised local addresses
//! are refused before any connection (the action dead, the reason recorded), allow-listed
//! names are reached.
//!
//! Every URL here is this machine (127.0.0.0/8, ::1, or a spelling of them): no test sends a
//! request anywhere else. Other ranges are covered by `actions::guard`'s unit tests.

crate::on_both_backends!(cases:
    disguised_loopback_webhooks_are_refused_before_any_connection,
    a_name_resolving_to_loopback_is_refused_unless_allow_listed,
    connectors_and_smtp_on_local_names_are_refused_unless_allow_listed,
    hostile_values_arrive_percent_encoded_in_the_request_path,
    secrets_in_headers_reach_the_target_and_are_stored_only_as_references,
);

mod cases {
    use serde_json::json;
    use signalbox::actions::email::SmtpTls;
    use signalbox::actions::strategy::ConnectorConfig;
    use signalbox::config::Config;
    use signalbox::store::{ActionStatus, ActionSummary};

    use crate::rules::write_rules;
    use crate::support::{
        Receiver, SmtpServer, TestApp, TestDb, test_config, wait_actions_settled,
    };

    /// An engine with `rules` and nothing allow-listed (unlike `test_config`), then `configure`.
    pub(super) async fn spawn(
        db: &TestDb,
        rules: &str,
        configure: impl FnOnce(&mut Config),
    ) -> (TestApp, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        write_rules(dir.path(), &[("rules.yaml", rules)]);
        let mut config = test_config(db);
        config.rules_dir = dir.path().to_owned();
        config.actions.webhook.allowed_hosts.clear();
        config.actions.allowed_hosts.clear();
        configure(&mut config);
        (TestApp::spawn(config).await, dir)
    }

    pub(super) fn webhooks(urls: &[String]) -> String {
        let mut rule = "version: 1\nid: hooks\non: [claim.created]\nactions:\n".to_owned();
        for url in urls {
            rule += &format!("  - type: webhook\n    url: \"{url}\"\n    body: {{ a: 1 }}\n");
        }
        rule
    }

    pub(super) async fn post_claim(app: &TestApp, id: &str) {
        let (status, body) = app
            .post(
                "/v1/events",
                json!({"type": "claim.created", "source_event_id": id, "subject": {"claim": id}})
                    .to_string(),
            )
            .await;
        assert_eq!(status, 201, "{body}");
    }

    /// The dead actions, each with its one attempt's recorded error.
    async fn dead(app: &TestApp) -> Vec<(ActionSummary, String)> {
        let actions = app
            .store
            .list_actions(Some(ActionStatus::Dead), None, 100)
            .await
            .unwrap();
        let mut out = Vec::new();
        for action in actions {
            let attempts = app.store.attempts(&action.id).await.unwrap();
            assert_eq!(
                attempts.len(),
                1,
                "refused at once, never retried: {attempts:?}"
            );
            let error = attempts[0].error.clone().unwrap_or_default();
            assert_eq!(action.last_error.as_deref(), Some(error.as_str()));
            out.push((action, error));
        }
        out
    }

    pub(super) async fn disguised_loopback_webhooks_are_refused_before_any_connection(db: TestDb) {
        let receiver = Receiver::start().await;
        let port = receiver.url.rsplit(':').next().unwrap().to_owned();
        let urls: Vec<String> = [
            "[::ffff:127.0.0.1]",
            "[::ffff:7f00:1]",
            "[0:0:0:0:0:ffff:127.0.0.1]",
            "[::1]",
            "localhost",
            "localhost.",
            "LocalHost",
            "app.localhost",
            "127.0.0.1",
            "127.1",
            "127.0.1",
            "0x7f.0.0.1",
            "0177.0.0.1",
            "2130706433",
        ]
        .iter()
        .map(|host| format!("http://{host}:{port}/hook"))
        .collect();
        let (app, _dir) = spawn(&db, &webhooks(&urls), |_| {}).await;
        post_claim(&app, "C-1").await;
        let total = urls.len() as i64;
        assert_eq!(wait_actions_settled(&app.store, total).await, (0, 0, total));
        let dead = dead(&app).await;
        assert_eq!(dead.len(), urls.len());
        for (action, error) in &dead {
            assert!(
                error.contains("loopback address; list it in actions.allowed_hosts to allow it")
                    || error.contains("is a localhost name; list it in actions.allowed_hosts"),
                "{}: {error}",
                action.target
            );
        }
        assert!(
            dead.iter()
                .any(|(_, e)| e.starts_with("host 'localhost' resolves to ")),
            "{dead:?}"
        );
        assert!(
            dead.iter()
                .any(|(_, e)| e.starts_with("host '::ffff:127.0.0.1' is a loopback address")),
            "{dead:?}"
        );
        assert!(receiver.received().is_empty(), "nothing reached the target");
        app.stop().await;
    }

    pub(super) async fn a_name_resolving_to_loopback_is_refused_unless_allow_listed(db: TestDb) {
        let receiver = Receiver::start().await;
        let port = receiver.url.rsplit(':').next().unwrap().to_owned();
        let urls = [
            format!("http://localhost:{port}/named"),
            format!("http://localhost.:{port}/dotted"),
            format!("http://127.0.0.1:{port}/literal"),
        ];
        let (app, _dir) = spawn(&db, &webhooks(&urls), |c| {
            c.actions.allowed_hosts = vec!["LOCALHOST".into()];
        })
        .await;
        post_claim(&app, "C-1").await;
        assert_eq!(wait_actions_settled(&app.store, 3).await, (0, 2, 1));
        let mut paths: Vec<String> = receiver.received().into_iter().map(|r| r.path).collect();
        paths.sort();
        assert_eq!(paths, ["/dotted", "/named"]);
        let dead = dead(&app).await;
        assert!(
            dead[0]
                .1
                .starts_with("host '127.0.0.1' is a loopback address"),
            "listing a name does not list its address: {dead:?}"
        );
        app.stop().await;
    }

    pub(super) async fn connectors_and_smtp_on_local_names_are_refused_unless_allow_listed(
        db: TestDb,
    ) {
        let platform = Receiver::start().await;
        let smtp = SmtpServer::start();
        let port = platform.url.rsplit(':').next().unwrap().to_owned();
        let rules = "version: 1\nrules:\n  - id: pause\n    on: [claim.created]\n    actions:\n      - {type: pause_strategy, platform: mapped}\n      - {type: pause_strategy, platform: named}\n      - {type: email, to: agent@example.com, subject: s, text: t}\n";
        let connector = |base_url: String| ConnectorConfig {
            base_url,
            token: None,
            pause_path: "/claims/{claim}/pause".into(),
            resume_path: "/claims/{claim}/resume".into(),
            retry: Default::default(),
        };
        let configure = |c: &mut Config| {
            let connectors = &mut c.actions.connectors;
            connectors.insert(
                "mapped".into(),
                connector(format!("http://[::ffff:127.0.0.1]:{port}/v1")),
            );
            connectors.insert(
                "named".into(),
                connector(format!("http://localhost:{port}/v1")),
            );
            c.actions.email.host = Some("localhost".into());
            c.actions.email.port = Some(smtp.port);
            c.actions.email.tls = SmtpTls::None;
            c.actions.email.from = Some("alerts@example.com".into());
        };
        let (first, _first_dir) = spawn(&db, rules, configure).await;
        let app = first;
        post_claim(&app, "C-1").await;
        assert_eq!(wait_actions_settled(&app.store, 3).await, (0, 0, 3));
        let mut errors: Vec<String> = dead(&app).await.into_iter().map(|(_, e)| e).collect();
        errors.sort();
        assert!(
            errors[0].starts_with("SMTP server: host 'localhost' resolves to "),
            "{errors:?}"
        );
        assert!(
            errors[1]
                .starts_with("connector mapped: host '::ffff:127.0.0.1' is a loopback address"),
            "{errors:?}"
        );
        assert!(
            errors[2].starts_with("host 'localhost' resolves to "),
            "{errors:?}"
        );
        assert!(platform.received().is_empty());
        assert!(smtp.mails.lock().unwrap().is_empty());
        app.stop().await;

        // Listed: the named connector and the SMTP server (connected to by its checked
        // address) are reached; the other spelling of 127.0.0.1 is still refused.
        let (listed, _dir) = spawn(&db, rules, |c| {
            configure(c);
            c.actions.allowed_hosts = vec!["localhost".into()];
        })
        .await;
        let app = listed;
        post_claim(&app, "C-2").await;
        assert_eq!(wait_actions_settled(&app.store, 6).await, (0, 2, 4));
        smtp.wait_for(1).await;
        let requests = platform.wait_for(1).await;
        assert_eq!(requests[0].path, "/v1/claims/C-2/pause");
        let dead = dead(&app).await;
        assert_eq!(
            dead.len(),
            4,
            "three from before, the mapped connector again: {dead:?}"
        );
        app.stop().await;
    }

    /// The attack of issue 10 on `rules/email_unsubscribe.yaml`: an account of `42/delete?x=`
    /// must not steer the request to another path. Each hostile value stays one path segment;
    /// `| safe` writes it raw.
    pub(super) async fn hostile_values_arrive_percent_encoded_in_the_request_path(db: TestDb) {
        let receiver = Receiver::start().await;
        let base = &receiver.url;
        let rules = format!(
            "version: 1\nrules:\n  - id: prefs\n    on: [email.unsubscribe_requested]\n    actions:\n      - type: webhook\n        method: PUT\n        url: \"{base}/api/accounts/{{{{ event.subject.account }}}}/preferences/email\"\n  - id: raw\n    on: [email.unsubscribe_requested]\n    actions:\n      - type: webhook\n        url: \"{base}/raw/{{{{ event.subject.account | safe }}}}\"\n"
        );
        let (app, _dir) = spawn(&db, &rules, |c| {
            c.actions.allowed_hosts = vec!["127.0.0.1".into()];
        })
        .await;
        let values = [
            ("42/delete?x=", "42%2Fdelete%3Fx%3D"),
            ("a b#c", "a%20b%23c"),
            ("../../admin", "..%2F..%2Fadmin"),
            ("%2e%2e", "%252e%252e"),
            ("Müller & Söhne", "M%C3%BCller%20%26%20S%C3%B6hne"),
        ];
        for (i, (value, _)) in values.iter().enumerate() {
            let event = json!({"type": "email.unsubscribe_requested", "source_event_id": format!("u-{i}"), "subject": {"account": value}});
            let (status, body) = app.post("/v1/events", event.to_string()).await;
            assert_eq!(status, 201, "{body}");
        }
        // `| safe` sends three raw: not `../../admin` nor `%2e%2e`, which would move the path.
        let requests = receiver.wait_for(values.len() + 3).await;
        let paths: Vec<(String, String)> =
            requests.into_iter().map(|r| (r.method, r.path)).collect();
        for (value, encoded) in values {
            let expected = (
                "PUT".to_owned(),
                format!("/api/accounts/{encoded}/preferences/email"),
            );
            assert!(paths.contains(&expected), "{value}: {paths:?}");
        }
        assert!(
            paths.contains(&("POST".to_owned(), "/raw/42/delete".to_owned())),
            "| safe writes the value raw: {paths:?}"
        );
        // `.` and `..` are unreserved, so encoding leaves them, and URL parsing would resolve
        // them (`/api/accounts/../preferences/email` is `/api/preferences/email`): refused.
        for (i, value) in ["..", "."].iter().enumerate() {
            let event = json!({"type": "email.unsubscribe_requested", "source_event_id": format!("dot-{i}"), "subject": {"account": value}});
            let (status, body) = app.post("/v1/events", event.to_string()).await;
            assert_eq!(status, 201, "{body}");
        }
        app.wait_processed().await;
        let (_, failed) = app.get("/v1/evaluations?outcome=failed&rule=prefs").await;
        let errors: Vec<&str> = failed["evaluations"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["error"].as_str().unwrap())
            .collect();
        assert_eq!(errors.len(), 2, "{failed}");
        assert!(
            errors
                .iter()
                .all(|e| e.contains("a value in a URL may not be '.' or '..'")),
            "{errors:?}"
        );
        assert_eq!(
            receiver.received().len(),
            values.len() + 3,
            "nothing more was sent"
        );
        app.stop().await;
    }

    /// Every stored text an action or evaluation leaves: payloads, rendered actions, errors,
    /// replies.
    async fn stored_text(db: &TestDb) -> String {
        let queries = [
            "SELECT CAST(payload AS TEXT) FROM actions",
            "SELECT COALESCE(last_error, '') FROM actions",
            "SELECT COALESCE(error, '') || COALESCE(reply, '') FROM attempts",
            "SELECT CAST(actions AS TEXT) || COALESCE(error, '') FROM evaluations",
        ];
        let mut text = String::new();
        for query in queries {
            let rows: Vec<String> = if db.url.starts_with("sqlite") {
                let pool = sqlx::SqlitePool::connect(&db.url).await.unwrap();
                let rows = sqlx::query_scalar(query).fetch_all(&pool).await.unwrap();
                pool.close().await;
                rows
            } else {
                let pool = sqlx::PgPool::connect(&db.url).await.unwrap();
                let rows = sqlx::query_scalar(query).fetch_all(&pool).await.unwrap();
                pool.close().await;
                rows
            };
            text += &rows.join("\n");
            text += "\n";
        }
        text
    }

    /// `${secret:NAME}` in a header: the target gets the value, everything stored or answered
    /// keeps the reference; an unset secret leaves the action dead saying so; an event value
    /// cannot write a reference into a header.
    pub(super) async fn secrets_in_headers_reach_the_target_and_are_stored_only_as_references(
        db: TestDb,
    ) {
        const VALUE: &str = "tok-5ecret-Value";
        let receiver = Receiver::start().await;
        let secrets = tempfile::tempdir().unwrap();
        std::fs::write(
            secrets.path().join("SIGNALBOX_TEST_CRM_TOKEN"),
            format!("{VALUE}\n"),
        )
        .unwrap();
        let base = &receiver.url;
        let rules = format!(
            "version: 1\nrules:\n  - id: crm\n    on: [claim.created]\n    actions:\n      - type: webhook\n        url: \"{base}/crm\"\n        headers: {{ Authorization: \"Bearer ${{secret:SIGNALBOX_TEST_CRM_TOKEN}}\", X-Claim: \"{{{{ event.subject.claim }}}}\" }}\n      - type: webhook\n        url: \"{base}/unset\"\n        headers: {{ X-Key: \"${{secret:SIGNALBOX_TEST_UNSET_SECRET}}\" }}\n  - id: steal\n    on: [claim.created]\n    actions:\n      - type: webhook\n        url: \"{base}/steal\"\n        headers: {{ X-Account: \"{{{{ event.subject.account }}}}\" }}\n"
        );
        let (app, _dir) = spawn(&db, &rules, |c| {
            c.actions.allowed_hosts = vec!["127.0.0.1".into()];
            c.actions.secrets_dir = Some(secrets.path().to_owned());
        })
        .await;
        let event = json!({"type": "claim.created", "source_event_id": "s-1", "subject": {"claim": "C-1", "account": "${secret:SIGNALBOX_TEST_CRM_TOKEN}"}});
        let (status, body) = app.post("/v1/events", event.to_string()).await;
        assert_eq!(status, 201, "{body}");
        assert_eq!(wait_actions_settled(&app.store, 2).await, (0, 1, 1));
        let requests = receiver.received();
        assert_eq!(requests.len(), 1, "the stealing rule sent nothing");
        assert_eq!(requests[0].path, "/crm");
        assert_eq!(
            requests[0].headers["authorization"],
            format!("Bearer {VALUE}")
        );
        assert_eq!(requests[0].headers["x-claim"], "C-1");
        let dead = dead(&app).await;
        assert_eq!(
            dead[0].1,
            "secret 'SIGNALBOX_TEST_UNSET_SECRET' is not set (environment variable SIGNALBOX_SECRET_SIGNALBOX_TEST_UNSET_SECRET or file SIGNALBOX_TEST_UNSET_SECRET in actions.secrets_dir)"
        );

        let stored = stored_text(&db).await;
        assert!(!stored.contains(VALUE), "{stored}");
        assert!(
            stored.contains("Bearer ${secret:SIGNALBOX_TEST_CRM_TOKEN}"),
            "{stored}"
        );
        assert!(
            stored.contains("a value may not write a secret reference"),
            "the stealing rule failed, saying why: {stored}"
        );
        let event_id = body["id"].as_str().unwrap().to_owned();
        for path in [
            "/v1/evaluations".to_owned(),
            format!("/v1/events/{event_id}/evaluations"),
            format!("/v1/events/{event_id}"),
        ] {
            let (status, answer) = app.get(&path).await;
            assert_eq!(status, 200, "{path}: {answer}");
            let answer = answer.to_string();
            assert!(!answer.contains(VALUE), "{path}: {answer}");
        }
        let (_, evaluations) = app.get(&format!("/v1/events/{event_id}/evaluations")).await;
        assert!(
            evaluations
                .to_string()
                .contains("Bearer ${secret:SIGNALBOX_TEST_CRM_TOKEN}"),
            "{evaluations}"
        );
        app.stop().await;

        let delivered = app_action(&db, "/crm").await;
        let output = std::process::Command::new(env!("CARGO_BIN_EXE_signalbox"))
            .args(["actions", "show", &delivered])
            .env("SIGNALBOX_DATABASE_URL", &db.url)
            .output()
            .unwrap();
        let out = String::from_utf8_lossy(&output.stdout).into_owned()
            + &*String::from_utf8_lossy(&output.stderr);
        assert!(output.status.success(), "{out}");
        assert!(out.contains("delivered"), "{out}");
        assert!(!out.contains(VALUE), "{out}");
    }

    /// The id of the action whose target path is `path`.
    async fn app_action(db: &TestDb, path: &str) -> String {
        let query = "SELECT id FROM actions WHERE CAST(payload AS TEXT) LIKE $1";
        let pattern = format!("%{path}\"%");
        if db.url.starts_with("sqlite") {
            let pool = sqlx::SqlitePool::connect(&db.url).await.unwrap();
            sqlx::query_scalar(query)
                .bind(pattern)
                .fetch_one(&pool)
                .await
                .unwrap()
        } else {
            let pool = sqlx::PgPool::connect(&db.url).await.unwrap();
            sqlx::query_scalar(query)
                .bind(pattern)
                .fetch_one(&pool)
                .await
                .unwrap()
        }
    }
}
