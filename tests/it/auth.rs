//! API tokens and roles, over HTTP on both backends: every route without a token, with each
//! role, with a token limited to other sources; stored tokens and their revocation; the public
//! listener.

crate::on_both_backends!(cases:
    every_route_answers_only_a_token_of_its_role,
    a_posted_event_claims_a_platform_only_with_a_token_naming_it,
    stored_tokens_are_hashed_usable_and_revocable,
    what_a_token_did_is_recorded,
    the_public_listener_serves_only_signed_platform_webhooks,
    revoking_every_token_closes_the_api_rather_than_opening_it,
    bodies_held_on_the_public_listener_do_not_starve_the_management_one,
    the_openapi_document_matches_the_routes_their_roles_and_the_docs,
    the_open_api_refuses_pages_of_other_sites_and_rebound_names,
);

mod cases {
    use std::time::Duration;

    use serde_json::{Value, json};
    use signalbox::auth::{Role, TokenConfig};
    use signalbox::clock::{Clock, ManualClock};
    use signalbox::config::{Config, Secret, SourceConfig};

    use crate::support::{TestApp, TestDb, event_json, test_config};

    /// A test token: name, text, roles, the sources it may claim.
    type TestToken = (
        &'static str,
        &'static str,
        &'static [Role],
        Option<&'static [&'static str]>,
    );

    /// Tokens of the config: one per role, and ingest tokens limited to sources.
    pub(crate) const TOKENS: &[TestToken] = &[
        (
            "ingest",
            "tok-ingest-0123456789abcdef",
            &[Role::Ingest],
            None,
        ),
        (
            "ingest-receeve",
            "tok-ingest-receeve-0123456789",
            &[Role::Ingest],
            Some(&["receeve"]),
        ),
        (
            "ingest-crm",
            "tok-ingest-crm-0123456789abcd",
            &[Role::Ingest],
            Some(&["crm"]),
        ),
        ("read", "tok-read-0123456789abcdefgh", &[Role::Read], None),
        (
            "operate",
            "tok-operate-0123456789abcdef",
            &[Role::Operate],
            None,
        ),
        (
            "admin",
            "tok-admin-0123456789abcdefgh",
            &[Role::Admin],
            None,
        ),
    ];

    pub(crate) fn token(name: &str) -> &'static str {
        TOKENS.iter().find(|t| t.0 == name).expect("a test token").1
    }

    pub(crate) fn with_tokens(mut config: Config) -> Config {
        config.tokens = TOKENS
            .iter()
            .map(|(name, text, roles, sources)| TokenConfig {
                name: (*name).into(),
                token: Secret::new((*text).into()),
                roles: roles.to_vec(),
                sources: sources.map(|s| s.iter().map(|s| s.to_string()).collect()),
            })
            .collect();
        config
    }

    async fn call(
        app: &TestApp,
        method: &str,
        path: &str,
        bearer: Option<&str>,
        body: Option<String>,
    ) -> (u16, Value, Option<String>) {
        call_at(&app.client, &app.base, method, path, bearer, body).await
    }

    async fn call_at(
        client: &reqwest::Client,
        base: &str,
        method: &str,
        path: &str,
        bearer: Option<&str>,
        body: Option<String>,
    ) -> (u16, Value, Option<String>) {
        let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let mut request = client.request(method, format!("{base}{path}"));
        if let Some(token) = bearer {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request
                .header("content-type", "application/json")
                .body(body);
        }
        let response = request.send().await.expect("request sent");
        let status = response.status().as_u16();
        let challenge = response
            .headers()
            .get("www-authenticate")
            .map(|v| v.to_str().unwrap().to_owned());
        let body = response.json().await.unwrap_or(Value::Null);
        (status, body, challenge)
    }

    /// Without tokens the API is open to this machine's programs, not to the web pages a
    /// browser here loads: a cross-site post (a page's form or fetch) and a request under a
    /// rebound name are refused, and store nothing.
    pub(super) async fn the_open_api_refuses_pages_of_other_sites_and_rebound_names(db: TestDb) {
        let app = TestApp::spawn(test_config(&db)).await;
        let post = |origin: Option<&'static str>, host: Option<String>| {
            let app = &app;
            async move {
                let mut request = app
                    .client
                    .post(format!("{}/api/v1/events", app.base))
                    .header("content-type", "text/plain")
                    .body(event_json("csrf-1"));
                if let Some(origin) = origin {
                    request = request.header("origin", origin);
                }
                if let Some(host) = host {
                    request = request.header("host", host);
                }
                let response = request.send().await.unwrap();
                let status = response.status().as_u16();
                (
                    status,
                    response.json::<Value>().await.unwrap_or(Value::Null),
                )
            }
        };
        let (status, refused) = post(Some("https://evil.example"), None).await;
        assert_eq!(status, 403, "{refused}");
        assert!(
            refused["message"]
                .as_str()
                .unwrap()
                .contains("configure a token"),
            "{refused}"
        );
        let port = app.base.rsplit(':').next().unwrap().to_owned();
        let (status, _) = post(None, Some(format!("rebind.evil.example:{port}"))).await;
        assert_eq!(status, 403);
        let (_, listed) = app.get("/api/v1/events").await;
        assert_eq!(listed["events"], json!([]), "nothing was stored");
        let answer = app
            .client
            .get(format!("{}/api/v1/events", app.base))
            .send()
            .await
            .unwrap();
        assert_eq!(answer.headers()["x-content-type-options"], "nosniff");
        // The console's own page (same origin) and programs (no Origin) are answered.
        let same = app.base.clone().leak();
        let (status, stored) = post(Some(same), None).await;
        assert_eq!(status, 201, "{stored}");
        app.stop().await;
    }

    /// `/api/v1/openapi.json` (no token) lists every route: each answers 401 without a
    /// token, 403 with a token of another role, and is there with one of the role its
    /// security names; docs/api.md lists the same routes.
    pub(super) async fn the_openapi_document_matches_the_routes_their_roles_and_the_docs(
        db: TestDb,
    ) {
        let app = TestApp::spawn(with_tokens(test_config(&db))).await;
        let (status, document, _) = call(&app, "GET", "/api/v1/openapi.json", None, None).await;
        assert_eq!(status, 200, "{document}");
        assert!(document["openapi"].as_str().unwrap().starts_with("3."));
        assert_eq!(document["servers"][0]["url"], "/api/v1");
        let mut documented = std::collections::BTreeSet::new();
        let mut operations = std::collections::BTreeSet::new();
        for (path, item) in document["paths"].as_object().unwrap() {
            let url = format!(
                "/api/v1{}",
                path.split('/')
                    .map(|part| if part.starts_with('{') { "x" } else { part })
                    .collect::<Vec<_>>()
                    .join("/")
            );
            for (method, operation) in item.as_object().unwrap() {
                let method = method.to_uppercase();
                // Client generators name a call by its operation id: one per operation.
                let id = operation["operationId"].as_str().unwrap().to_owned();
                assert!(operations.insert(id.clone()), "operation id {id} twice");
                for refusal in ["4XX", "5XX"] {
                    let body = &operation["responses"][refusal]["content"]["application/json"];
                    assert!(
                        body["schema"].is_object(),
                        "{id}: no {refusal} answer: {operation}"
                    );
                }
                let body = (method != "GET").then(|| "{}".to_owned());
                let (status, _, _) = call(&app, &method, &url, None, body.clone()).await;
                assert_eq!(status, 401, "{method} {url} without a token");
                documented.insert(format!("{method} {path}"));
                // A route of no role (`whoami`) answers any known token.
                let Some(role) = operation["security"][0]["token"][0].as_str() else {
                    let (status, _, _) =
                        call(&app, &method, &url, Some(token("ingest")), body).await;
                    assert_eq!(status, 200, "{method} {url} with any token");
                    continue;
                };
                let other = match role {
                    "read" => "ingest",
                    "admin" => "operate",
                    _ => "read",
                };
                let (status, _, _) =
                    call(&app, &method, &url, Some(token(other)), body.clone()).await;
                assert_eq!(
                    status, 403,
                    "{method} {url} ({role}) with a token of {other}"
                );
                let (status, answer, _) = call(&app, &method, &url, Some(token(role)), body).await;
                assert!(
                    ![401, 403, 405].contains(&status) && answer["code"] != "not_found",
                    "{method} {url} with a token of {role}: {status} {answer}"
                );
            }
        }
        let docs =
            std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/api.md")).unwrap();
        let listed: std::collections::BTreeSet<String> = docs
            .lines()
            .filter_map(|line| {
                let (method, rest) = line.strip_prefix("| `")?.split_once(' ')?;
                let path = rest.split(['`', '?']).next()?;
                let path = path
                    .strip_prefix("/api/v1")
                    .or_else(|| path.strip_prefix("/v1"))?;
                (path != "/openapi.json").then(|| format!("{method} {path}"))
            })
            .collect();
        assert_eq!(listed, documented, "docs/api.md and the OpenAPI document");
        app.stop().await;
    }

    pub(super) async fn every_route_answers_only_a_token_of_its_role(db: TestDb) {
        let app = TestApp::spawn(with_tokens(test_config(&db))).await;
        let (status, stored, _) = call(
            &app,
            "POST",
            "/v1/events",
            Some(token("ingest-receeve")),
            Some(event_json("auth-1")),
        )
        .await;
        assert_eq!(status, 201, "{stored}");
        let id = stored["id"].as_str().unwrap_or_default().to_owned();
        let canonical = || {
            Some(
                json!({"type": "claim.created", "source": "crm", "subject": {"claim": "C-9"}})
                    .to_string(),
            )
        };
        // (method, path, body, the role it needs)
        let routes: Vec<(&str, String, Option<String>, Role)> = vec![
            ("POST", "/v1/events".into(), canonical(), Role::Ingest),
            (
                "POST",
                "/webhooks/canonical".into(),
                canonical(),
                Role::Ingest,
            ),
            ("GET", "/v1/events".into(), None, Role::Read),
            ("GET", format!("/v1/events/{id}"), None, Role::Read),
            (
                "GET",
                format!("/v1/events/{id}/evaluations"),
                None,
                Role::Read,
            ),
            ("GET", "/v1/deliveries".into(), None, Role::Read),
            ("GET", "/v1/unknown-types".into(), None, Role::Read),
            ("GET", "/v1/evaluations".into(), None, Role::Read),
            ("GET", "/v1/rules/status".into(), None, Role::Read),
            (
                "POST",
                "/v1/rules/validate".into(),
                Some(json!({"yaml": "version: 1\nid: x\non: [claim.created]\nactions: [{type: emit, event_type: x.noted}]\n"}).to_string()),
                Role::Read,
            ),
            (
                "POST",
                "/v1/backtest".into(),
                Some(json!({"from": "2026-11-01", "to": "2026-11-02"}).to_string()),
                Role::Read,
            ),
            (
                "POST",
                format!("/v1/events/{id}/retry"),
                None,
                Role::Operate,
            ),
            ("GET", "/v1/actions".into(), None, Role::Read),
            ("GET", "/v1/actions/act_none".into(), None, Role::Read),
            (
                "POST",
                "/v1/actions/act_none/retry".into(),
                None,
                Role::Operate,
            ),
            ("POST", "/v1/actions/retry".into(), None, Role::Operate),
            (
                "POST",
                "/v1/replay".into(),
                Some(json!({"event_id": id}).to_string()),
                Role::Operate,
            ),
            ("GET", "/v1/tokens".into(), None, Role::Admin),
            ("GET", "/v1/token-uses".into(), None, Role::Admin),
            (
                "POST",
                "/v1/tokens".into(),
                Some(json!({"name": "made-by-test", "roles": ["read"]}).to_string()),
                Role::Admin,
            ),
            (
                "DELETE",
                "/v1/tokens/made-by-test".into(),
                None,
                Role::Admin,
            ),
        ];
        for (method, path, body, needs) in &routes {
            let (status, answer, challenge) = call(&app, method, path, None, body.clone()).await;
            assert_eq!(status, 401, "{method} {path} without a token: {answer}");
            assert_eq!(answer["code"], "unauthorized", "{method} {path}");
            assert_eq!(challenge.as_deref(), Some("Bearer"), "{method} {path}");
            let (status, answer, _) = call(
                &app,
                method,
                path,
                Some("sbt_not-a-known-token"),
                body.clone(),
            )
            .await;
            assert_eq!(
                status, 401,
                "{method} {path} with an unknown token: {answer}"
            );
            for (name, text, roles, _) in TOKENS {
                let granted = roles.iter().any(|r| {
                    *r == *needs
                        || *r == Role::Admin
                        || (*r == Role::Operate && *needs == Role::Read)
                });
                let (status, answer, _) = call(&app, method, path, Some(text), body.clone()).await;
                if granted {
                    // An ingest token limited to other sources has the role; its refusal is
                    // about the event's source (the next case).
                    let about_sources = answer["message"]
                        .as_str()
                        .is_some_and(|m| m.contains("may not post events from source"));
                    assert!(
                        status != 401 && (status != 403 || about_sources),
                        "{method} {path} with '{name}' is allowed: {status} {answer}"
                    );
                } else {
                    assert_eq!(status, 403, "{method} {path} with '{name}': {answer}");
                    assert_eq!(answer["code"], "forbidden");
                    assert!(
                        answer["message"]
                            .as_str()
                            .unwrap()
                            .contains(&format!("does not have the '{}' role", needs.name())),
                        "{answer}"
                    );
                }
            }
        }
        // Refusals are counted for Prometheus.
        let metrics = app
            .client
            .get(format!("{}/metrics", app.base))
            .bearer_auth(token("read"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert!(
            metrics.contains("signalbox_api_refused_total{reason=\"forbidden\"}"),
            "{metrics}"
        );
        // Health answers anyone.
        for path in ["/healthz", "/readyz"] {
            let (status, _, _) = call(&app, "GET", path, None, None).await;
            assert!(status == 200 || status == 503, "{path}: {status}");
        }
        app.stop().await;
    }

    pub(super) async fn a_posted_event_claims_a_platform_only_with_a_token_naming_it(db: TestDb) {
        let app = TestApp::spawn(with_tokens(test_config(&db))).await;
        // Posts, as the token `who`, an event claiming `source` (a new one each time).
        async fn post_as(app: &TestApp, path: &str, who: &str, source: &str) -> (u16, Value) {
            let event = json!({"type": "promise_to_pay.expired", "source": source, "source_event_id": format!("{path}-{who}-{source}"), "subject": {"claim": "C-1"}});
            let (status, answer, _) =
                call(app, "POST", path, Some(token(who)), Some(event.to_string())).await;
            (status, answer)
        }
        for path in ["/v1/events", "/webhooks/canonical"] {
            // Any ingest token may post its own sources, not a platform's or the engine's.
            for (who, source) in [
                ("ingest", "receeve"),
                ("ingest", "signalbox"),
                ("ingest-crm", "receeve"),
                ("ingest-crm", "erp"),
                ("ingest-receeve", "crm"),
            ] {
                let (status, answer) = post_as(&app, path, who, source).await;
                assert_eq!(status, 403, "{path}: '{who}' claiming '{source}': {answer}");
                assert!(
                    answer["message"]
                        .as_str()
                        .unwrap()
                        .contains(&format!("may not post events from source '{source}'")),
                    "{answer}"
                );
            }
            for (who, source) in [
                ("ingest", "crm"),
                ("ingest-crm", "crm"),
                ("ingest-receeve", "receeve"),
            ] {
                let (status, answer) = post_as(&app, path, who, source).await;
                assert_eq!(status, 201, "{path}: '{who}' claiming '{source}': {answer}");
            }
        }
        // The refused events were not stored; the refusals were, with the token that tried.
        let (_, events, _) = call(&app, "GET", "/v1/events", Some(token("read")), None).await;
        let sources: Vec<&str> = events["events"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["source"].as_str().unwrap())
            .collect();
        assert_eq!(sources.len(), 6, "{events}");
        assert!(sources.iter().all(|s| *s == "crm" || *s == "receeve"));
        let (_, deliveries, _) = call(
            &app,
            "GET",
            "/v1/deliveries?verification=rejected",
            Some(token("read")),
            None,
        )
        .await;
        let refused = deliveries["deliveries"].as_array().unwrap();
        assert_eq!(refused.len(), 10, "{deliveries}");
        assert!(
            refused
                .iter()
                .any(|d| d["token"] == "ingest-crm" && d["events"] == 0),
            "{deliveries}"
        );
        app.stop().await;
    }

    pub(super) async fn stored_tokens_are_hashed_usable_and_revocable(db: TestDb) {
        let clock = ManualClock::starting_now();
        let app = TestApp::spawn_with_clock(with_tokens(test_config(&db)), clock.clone()).await;
        // Created through the API by an admin: the text is answered once.
        let (status, made, _) = call(
            &app,
            "POST",
            "/v1/tokens",
            Some(token("admin")),
            Some(json!({"name": "grafana", "roles": ["read"]}).to_string()),
        )
        .await;
        assert_eq!(status, 201, "{made}");
        let text = made["token"].as_str().unwrap().to_owned();
        assert!(text.starts_with("sbt_"), "{text}");
        let (status, _, _) = call(&app, "GET", "/v1/events", Some(&text), None).await;
        assert_eq!(status, 200);
        let (status, _, _) = call(
            &app,
            "POST",
            "/v1/events",
            Some(&text),
            Some(event_json("x")),
        )
        .await;
        assert_eq!(status, 403, "a read token does not post");
        // Only the hash is kept.
        let stored = app.store.list_tokens().await.unwrap();
        let grafana = stored.iter().find(|t| t.name == "grafana").unwrap();
        assert_ne!(grafana.hash, text);
        assert_eq!(grafana.hash, hex::encode(signalbox::auth::hash(&text)));
        let listing = call(&app, "GET", "/v1/tokens", Some(token("admin")), None)
            .await
            .1;
        assert!(!listing.to_string().contains(&text), "{listing}");
        assert!(!listing.to_string().contains(&grafana.hash), "{listing}");
        // A name is taken once.
        let (status, again, _) = call(
            &app,
            "POST",
            "/v1/tokens",
            Some(token("admin")),
            Some(json!({"name": "grafana", "roles": ["admin"]}).to_string()),
        )
        .await;
        assert_eq!(status, 400, "{again}");
        // Revoked through the API: refused at once by this engine.
        let (status, _, _) = call(
            &app,
            "DELETE",
            "/v1/tokens/grafana",
            Some(token("admin")),
            None,
        )
        .await;
        assert_eq!(status, 200);
        let (status, _, _) = call(&app, "GET", "/v1/events", Some(&text), None).await;
        assert_eq!(status, 401);
        // Made elsewhere (the CLI, another instance): known once the tokens are read again,
        // every 5 s of the engine's clock.
        let other = signalbox::auth::create(
            &app.store,
            "from-cli",
            vec![Role::Operate],
            None,
            &[],
            clock.now(),
        )
        .await
        .unwrap();
        clock.advance(Duration::from_secs(6));
        let (status, _, _) = call(&app, "GET", "/v1/events", Some(&other), None).await;
        assert_eq!(status, 200, "an operate token reads");
        app.store
            .revoke_token("from-cli", clock.now())
            .await
            .unwrap();
        let (status, _, _) = call(&app, "GET", "/v1/events", Some(&other), None).await;
        assert_eq!(status, 200, "until the tokens are read again");
        clock.advance(Duration::from_secs(6));
        let (status, _, _) = call(&app, "GET", "/v1/events", Some(&other), None).await;
        assert_eq!(
            status, 401,
            "revoked elsewhere, refused after the next read"
        );
        app.stop().await;
    }

    pub(super) async fn what_a_token_did_is_recorded(db: TestDb) {
        let app = TestApp::spawn(with_tokens(test_config(&db))).await;
        let (_, stored, _) = call(
            &app,
            "POST",
            "/v1/events",
            Some(token("ingest-receeve")),
            Some(event_json("who-1")),
        )
        .await;
        let id = stored["id"].as_str().unwrap_or_default().to_owned();
        let (status, _, _) = call(
            &app,
            "POST",
            &format!("/v1/events/{id}/retry"),
            Some(token("operate")),
            None,
        )
        .await;
        assert_eq!(status, 200);
        let uses = app.store.token_uses(10).await.unwrap();
        assert!(
            uses.iter().any(|u| u.token == "operate"
                && u.method == "POST"
                && u.path == format!("/v1/events/{id}/retry")
                && u.status == 200),
            "{uses:?}"
        );
        let (_, deliveries, _) =
            call(&app, "GET", "/v1/deliveries", Some(token("read")), None).await;
        assert_eq!(
            deliveries["deliveries"][0]["token"], "ingest-receeve",
            "{deliveries}"
        );
        app.stop().await;
    }

    /// An engine started with one stored admin token: revoking it leaves nothing allowed, not
    /// everything (an open API would let anyone make an admin token).
    pub(super) async fn revoking_every_token_closes_the_api_rather_than_opening_it(db: TestDb) {
        let store = signalbox::store::Store::open(&db.url, &Default::default())
            .await
            .unwrap();
        let admin = signalbox::auth::create(
            &store,
            "only-admin",
            vec![Role::Admin],
            None,
            &[],
            chrono::Utc::now(),
        )
        .await
        .unwrap();
        store.close().await;
        let app = TestApp::spawn(test_config(&db)).await;
        let (status, _, _) = call(&app, "GET", "/v1/events", None, None).await;
        assert_eq!(status, 401, "a stored token closes the API");
        let (status, _, _) =
            call(&app, "DELETE", "/v1/tokens/only-admin", Some(&admin), None).await;
        assert_eq!(status, 200);
        let (status, answer, _) = call(&app, "GET", "/v1/events", None, None).await;
        assert_eq!(status, 401, "{answer}");
        let (status, answer, _) = call(
            &app,
            "POST",
            "/v1/tokens",
            None,
            Some(json!({"name": "intruder", "roles": ["admin"]}).to_string()),
        )
        .await;
        assert_eq!(status, 401, "{answer}");
        let (status, answer, _) = call(&app, "GET", "/v1/events", Some(&admin), None).await;
        assert_eq!(status, 401);
        assert!(
            answer["message"]
                .as_str()
                .unwrap()
                .contains("every token was revoked"),
            "{answer}"
        );
        app.stop().await;
    }

    /// Anyone on the internet can open requests announcing a large body and send none: they
    /// spend the public listener's ingestion budget, not the management listener's.
    pub(super) async fn bodies_held_on_the_public_listener_do_not_starve_the_management_one(
        db: TestDb,
    ) {
        use tokio::io::AsyncWriteExt;
        let mut config = with_tokens(test_config(&db));
        config.public_listen = Some("127.0.0.1:0".parse().unwrap());
        config.server.ingest_bytes_in_flight = Some(config.max_body_bytes);
        let app = TestApp::spawn(config).await;
        let public = app.app.as_ref().unwrap().public_addr.unwrap();
        let announce = format!(
            "POST /webhooks/hubpay HTTP/1.1\r\nhost: x\r\ncontent-length: {}\r\n\r\n",
            1 << 20
        );
        let mut held = tokio::net::TcpStream::connect(public).await.unwrap();
        held.write_all(announce.as_bytes()).await.unwrap();
        // The public budget is spent: the next announced body there is refused at once ...
        let public_base = format!("http://{public}");
        let mut refused = false;
        for _ in 0..100 {
            // A probe that took the budget first had the held request refused: announce again.
            let mut answer = [0_u8; 64];
            if held.try_read(&mut answer).is_ok_and(|n| n > 0) {
                held = tokio::net::TcpStream::connect(public).await.unwrap();
                held.write_all(announce.as_bytes()).await.unwrap();
            }
            let response = app
                .client
                .post(format!("{public_base}/webhooks/hubpay"))
                .body(vec![b' '; 1 << 20])
                .send()
                .await
                .unwrap();
            if response.status().as_u16() == 503 {
                refused = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert!(refused, "the held body spends the public listener's budget");
        // ... while the management listener still takes events.
        let (status, answer, _) = call(
            &app,
            "POST",
            "/v1/events",
            Some(token("ingest-receeve")),
            Some(event_json("while-held")),
        )
        .await;
        assert_eq!(status, 201, "{answer}");
        drop(held);
        app.stop().await;
    }

    /// Amili signs the body with HMAC-SHA256, hex, in `X-Webhook-Signature`.
    fn amili_delivery(id: &str) -> (String, String) {
        let body = json!({"id": id, "type": "CASE_UPDATED", "data": {"caseId": "K-1"}}).to_string();
        let signature = hex::encode(signalbox::providers::signature::hmac_sha256(
            b"amili-secret",
            &[body.as_bytes()],
        ));
        (body, signature)
    }

    pub(super) async fn the_public_listener_serves_only_signed_platform_webhooks(db: TestDb) {
        let mut config = with_tokens(test_config(&db));
        config.public_listen = Some("127.0.0.1:0".parse().unwrap());
        config.sources.insert(
            "amili".into(),
            SourceConfig {
                secrets: vec![Secret::new("amili-secret".into())],
                ..SourceConfig::default()
            },
        );
        let app = TestApp::spawn(config).await;
        let public = format!("http://{}", app.app.as_ref().unwrap().public_addr.unwrap());
        let client = &app.client;
        // Nothing of the API, with or without a token.
        for (method, path) in [
            ("GET", "/v1/events"),
            ("POST", "/v1/events"),
            ("POST", "/webhooks/canonical"),
            ("GET", "/v1/deliveries"),
            ("GET", "/v1/tokens"),
            ("GET", "/v1/rules/status"),
        ] {
            for bearer in [None, Some(token("admin"))] {
                let (status, answer, _) = call_at(
                    client,
                    &public,
                    method,
                    path,
                    bearer,
                    Some(event_json("p-1")),
                )
                .await;
                assert_eq!(
                    status, 404,
                    "{method} {path} on the public listener: {answer}"
                );
            }
        }
        // Signed platform webhooks, and health.
        let (body, signature) = amili_delivery("amili-public-1");
        let response = client
            .post(format!("{public}/webhooks/amili"))
            .header("x-webhook-signature", signature)
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status().as_u16(), 201);
        let (status, _, _) = call_at(
            client,
            &public,
            "POST",
            "/webhooks/amili",
            None,
            Some("{}".into()),
        )
        .await;
        assert_eq!(status, 401, "unsigned: refused");
        let (status, _, _) = call_at(client, &public, "GET", "/healthz", None, None).await;
        assert_eq!(status, 200);
        let (status, _, _) = call_at(client, &public, "GET", "/readyz", None, None).await;
        assert!(status == 200 || status == 503);
        // The management listener still has it all.
        let (status, events, _) = call(&app, "GET", "/v1/events", Some(token("read")), None).await;
        assert_eq!(status, 200);
        assert_eq!(events["events"][0]["source"], "amili", "{events}");
        app.stop().await;
    }
}

/// `serve` will not answer the world without tokens: on an address other than loopback it
/// refuses to start, and says how to fix it.
#[test]
fn serve_refuses_an_unprotected_api_on_a_non_loopback_address() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}", dir.path().join("open.db").display());
    let (ok, output) =
        crate::support::signalbox(&["serve", "--listen", "0.0.0.0:0", "--database-url", &db]);
    assert!(!ok, "{output}");
    assert!(
        output.contains("would answer anyone on 0.0.0.0")
            && output.contains("signalbox tokens create"),
        "{output}"
    );
}

/// The real binary: a token from the config and one made with `signalbox tokens create`,
/// each allowed what its role allows and no more.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_engine_binary_takes_config_and_cli_tokens() {
    crate::support::init();
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("rules")).unwrap();
    let db = format!("sqlite://{}", dir.path().join("tokens.db").display());
    let (ok, created) = crate::support::signalbox(&[
        "tokens",
        "create",
        "ops",
        "--role",
        "operate",
        "--database-url",
        &db,
    ]);
    assert!(ok, "{created}");
    let ops = created
        .lines()
        .find(|l| l.starts_with("sbt_"))
        .expect("the token is printed")
        .to_owned();
    let (ok, listed) = crate::support::signalbox(&["tokens", "list", "--database-url", &db]);
    assert!(
        ok && listed.contains("ops") && listed.contains("operate"),
        "{listed}"
    );
    assert!(
        !listed.contains(&ops),
        "the token's text is never shown again: {listed}"
    );
    let config =
        "tokens:\n  - name: reader\n    token: reader-token-0123456789abcdef\n    roles: [read]\n";
    let (child, port) = crate::support::spawn_engine(dir.path(), &db, config);
    let _engine = KillOnDrop(child);
    let base = format!("http://127.0.0.1:{port}");
    crate::support::wait_healthy(&base).await;
    let client = reqwest::Client::new();
    let status = |request: reqwest::RequestBuilder| async move {
        request.send().await.unwrap().status().as_u16()
    };
    let events = format!("{base}/v1/events");
    assert_eq!(status(client.get(&events)).await, 401);
    assert_eq!(
        status(
            client
                .get(&events)
                .bearer_auth("reader-token-0123456789abcdef")
        )
        .await,
        200
    );
    assert_eq!(status(client.get(&events).bearer_auth(&ops)).await, 200);
    assert_eq!(
        status(
            client
                .post(&events)
                .bearer_auth("reader-token-0123456789abcdef")
                .body(crate::support::event_json("bin-1"))
        )
        .await,
        403
    );
    assert_eq!(
        status(client.get(format!("{base}/v1/tokens")).bearer_auth(&ops)).await,
        403,
        "operate is not admin"
    );
}

/// Stops the engine however the test ends.
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
