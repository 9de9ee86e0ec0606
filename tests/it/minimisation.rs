//! What is kept of what senders send, over HTTP on both backends: stored headers are an
//! allow-list, refused deliveries keep a prefix of their body within a limit per address,
//! stored reasons quote no values, and an Amili replay with a new key is a duplicate.

crate::on_both_backends!(cases:
    stored_headers_are_an_allow_list,
    refused_deliveries_are_bounded_per_address,
    stored_refusal_reasons_keep_no_values_from_the_body,
    an_amili_replay_with_a_new_idempotency_key_is_a_duplicate,
);

mod cases {
    use serde_json::Value;
    use signalbox::clock::ManualClock;
    use signalbox::config::{Config, Secret, SourceConfig};
    use signalbox::providers::signature::hmac_sha256;
    use signalbox::store::StoredDelivery;

    use crate::providers::fixtures;
    use crate::support::{TestApp, TestDb, test_config};

    fn config(db: &TestDb) -> Config {
        let mut config = test_config(db);
        for source in ["hubpay", "amili"] {
            let settings = SourceConfig {
                secrets: vec![Secret::new(format!("{source}-secret"))],
                ..SourceConfig::default()
            };
            config.sources.insert(source.into(), settings);
        }
        config
    }

    fn signature(source: &str, body: &[u8]) -> String {
        hex::encode(hmac_sha256(format!("{source}-secret").as_bytes(), &[body]))
    }

    /// A fixture's body and headers.
    fn fixture(source: &str, case: &str) -> (Vec<u8>, Vec<(String, String)>) {
        let f = fixtures()
            .into_iter()
            .find(|f| f.source == source && f.case == case)
            .expect("fixture exists");
        let headers = f
            .headers
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_str().unwrap().to_owned()))
            .collect();
        (f.body, headers)
    }

    async fn post(app: &TestApp, path: &str, body: &[u8], headers: &[(String, String)]) -> Value {
        let mut request = app
            .client
            .post(format!("{}{path}", app.base))
            .body(body.to_vec());
        for (k, v) in headers {
            request = request.header(k, v);
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        let mut answer: Value = response.json().await.unwrap_or(Value::Null);
        answer["http_status"] = status.into();
        answer
    }

    /// The stored deliveries with one verification outcome, newest first.
    async fn deliveries(app: &TestApp, verification: Option<&str>) -> Vec<StoredDelivery> {
        let listed = app
            .store
            .list_deliveries(verification, None, 1000, usize::MAX)
            .await
            .unwrap()
            .items;
        let mut out = Vec::new();
        for d in listed {
            out.push(app.store.get_delivery(&d.id).await.unwrap().unwrap());
        }
        out
    }

    fn header_names(delivery: &StoredDelivery) -> Vec<String> {
        delivery
            .headers
            .as_object()
            .unwrap()
            .keys()
            .cloned()
            .collect()
    }

    pub(super) async fn stored_headers_are_an_allow_list(db: TestDb) {
        let app = TestApp::spawn(config(&db)).await;
        let (body, _) = fixture("hubpay", "v1.collection.payment_request.paid");
        let extra = |signature: String| {
            [
                ("content-type", "application/json".to_owned()),
                ("user-agent", "hubpay-webhooks/1".to_owned()),
                ("x-hubpay-signature", signature),
                ("x-api-key", "key-that-must-not-be-kept".to_owned()),
                ("cookie", "session=secret-session".to_owned()),
                ("authorization", "Bearer secret-token".to_owned()),
                ("x-debtor-email", "jane@example.com".to_owned()),
            ]
            .map(|(k, v)| (k.to_owned(), v))
        };
        let accepted = post(
            &app,
            "/webhooks/hubpay",
            &body,
            &extra(signature("hubpay", &body)),
        )
        .await;
        assert_eq!(accepted["http_status"], 201, "{accepted}");
        let refused = post(&app, "/webhooks/hubpay", &body, &extra("00ff".into())).await;
        assert_eq!(refused["http_status"], 401, "{refused}");

        let stored = deliveries(&app, None).await;
        assert_eq!(stored.len(), 2);
        for delivery in &stored {
            let names = header_names(delivery);
            assert_eq!(
                names,
                [
                    "content-length",
                    "content-type",
                    "user-agent",
                    "x-hubpay-signature"
                ],
                "{}: {names:?}",
                delivery.summary.verification
            );
            let text = delivery.headers.to_string();
            for secret in [
                "key-that-must-not",
                "secret-session",
                "secret-token",
                "jane@",
            ] {
                assert!(!text.contains(secret), "{text}");
            }
        }
        app.stop().await;
    }

    pub(super) async fn refused_deliveries_are_bounded_per_address(db: TestDb) {
        let mut config = config(&db);
        config.retention.rejected.per_address_per_minute = 5;
        config.retention.rejected.body_bytes = 64;
        let clock = ManualClock::starting_now();
        let app = TestApp::spawn_with_clock(config, clock.clone()).await;
        let body = format!("{{\"id\": \"{}\"}}", "x".repeat(1000)).into_bytes();
        let bad = [("x-hubpay-signature".to_owned(), "00ff".to_owned())];
        for _ in 0..12 {
            let answer = post(&app, "/webhooks/hubpay", &body, &bad).await;
            assert_eq!(
                answer["http_status"], 401,
                "every one is answered as before"
            );
            assert_eq!(answer["code"], "invalid_signature");
        }
        let stored = deliveries(&app, Some("rejected")).await;
        assert_eq!(stored.len(), 5, "at most 5 stored per address and minute");
        for delivery in &stored {
            assert_eq!(delivery.body, body[..64], "a prefix of the body");
            assert_eq!(delivery.summary.body_size, Some(body.len() as i64));
        }

        // The next minute, this address may store again.
        clock.advance(std::time::Duration::from_secs(61));
        post(&app, "/webhooks/hubpay", &body, &bad).await;
        assert_eq!(deliveries(&app, Some("rejected")).await.len(), 6);
        assert_eq!(app.store.count_events().await.unwrap(), (0, 0));
        app.stop().await;
    }

    pub(super) async fn stored_refusal_reasons_keep_no_values_from_the_body(db: TestDb) {
        let app = TestApp::spawn(config(&db)).await;
        let personal = "Jane Roe, born 1984-02-29";
        let bodies = [
            format!(r#"{{"type": "claim.created", "subject": "{personal}"}}"#),
            format!(r#"{{"type": "{personal}"}}"#),
            r#"{"type": "claim.created", "occurred_at": 19840229}"#.to_owned(),
            format!(r#"{{"type": "claim.created", "amount": {{"value": "{personal}"}}}}"#),
        ];
        for body in &bodies {
            let answer = post(&app, "/v1/events", body.as_bytes(), &[]).await;
            assert_eq!(answer["http_status"], 400, "{answer}");
            let message = answer["message"].as_str().unwrap();
            assert!(
                message.contains("Jane Roe") || message.contains("19840229"),
                "the sender is told what is wrong with its own data: {message}"
            );
        }
        let stored = deliveries(&app, None).await;
        assert_eq!(stored.len(), bodies.len());
        let reasons: Vec<&str> = stored
            .iter()
            .map(|d| d.summary.reason.as_deref().unwrap())
            .collect();
        for reason in &reasons {
            assert!(
                !reason.contains("Jane")
                    && !reason.contains("1984")
                    && !reason.contains("19840229"),
                "{reason}"
            );
        }
        assert!(
            reasons
                .iter()
                .any(|r| r.starts_with("subject: invalid type: a string, expected")),
            "where and what kind are kept: {reasons:?}"
        );
        let (_, listed) = app.get("/v1/deliveries").await;
        assert!(!listed.to_string().contains("Jane"), "{listed}");
        app.stop().await;
    }

    pub(super) async fn an_amili_replay_with_a_new_idempotency_key_is_a_duplicate(db: TestDb) {
        let app = TestApp::spawn(config(&db)).await;
        let (body, mut headers) = fixture("amili", "CASE");
        headers.push(("x-webhook-signature".into(), signature("amili", &body)));
        let first = post(&app, "/webhooks/amili", &body, &headers).await;
        assert_eq!(first["http_status"], 201, "{first}");

        // The same signed delivery, captured and sent again under a new IdempotencyKey.
        for (name, value) in headers.iter_mut() {
            if name.eq_ignore_ascii_case("idempotencykey") {
                *value = "idem-replayed-9999".into();
            }
        }
        let replay = post(&app, "/webhooks/amili", &body, &headers).await;
        assert_eq!(
            (replay["http_status"].as_u64(), replay["status"].as_str()),
            (Some(200), Some("duplicate")),
            "{replay}"
        );
        assert_eq!(replay["id"], first["id"]);
        assert_eq!(app.wait_processed().await, (0, 1), "processed once");
        app.stop().await;
    }
}
