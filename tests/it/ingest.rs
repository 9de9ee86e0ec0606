//! Ingestion over HTTP, on both backends: what an integration team sees.

crate::on_both_backends!(cases:
    canonical_event_is_stored_processed_and_read_back,
    redelivery_is_acknowledged_as_duplicate,
    batches_as_array_and_ndjson,
    bad_input_is_refused_with_a_reason_and_stores_no_event,
    oversized_body_is_413,
    unknown_source_is_404,
    canonical_webhook_adapter_stores_events,
    concurrent_posts_are_stored_exactly_once,
    store_down_is_503_and_not_ready,
    hostile_bodies_never_cause_a_server_error,
);

mod cases {
    use futures::future::join_all;
    use serde_json::{Value, json};
    use signalbox::providers::PLATFORMS;

    use crate::support::{TestApp, TestDb, event_json, test_config};

    pub(super) async fn canonical_event_is_stored_processed_and_read_back(db: TestDb) {
        let app = TestApp::spawn(test_config(&db)).await;
        let (status, receipt) = app.post("/v1/events", event_json("m-1")).await;
        assert_eq!(status, 201, "{receipt}");
        assert_eq!(receipt["status"], "stored");
        let id = receipt["id"].as_str().unwrap().to_owned();
        assert!(id.starts_with("evt_"), "{id}");

        app.wait_processed().await;
        let (status, event) = app.get(&format!("/v1/events/{id}")).await;
        assert_eq!(status, 200);
        assert_eq!(event["id"], id.as_str());
        assert_eq!(event["type"], "promise_to_pay.expired");
        assert_eq!(event["source"], "receeve");
        assert_eq!(event["source_event_id"], "m-1");
        assert_eq!(event["occurred_at"], "2026-11-20T08:00:00Z");
        assert_eq!(event["subject"], json!({"claim": "C-1", "account": "A-1"}));
        assert_eq!(
            event["amount"],
            json!({"value": "192.38", "currency": "EUR"})
        );
        assert_eq!(event["data"], json!({"note": "test"}));
        assert_eq!(
            event["payload"]["subject"]["claim"], "C-1",
            "the original payload is kept"
        );
        assert_eq!(event["state"], "processed");
        assert!(event["delivery_id"].as_str().unwrap().starts_with("dlv_"));

        let (status, list) = app
            .get("/v1/events?type=promise_to_pay.expired&limit=10")
            .await;
        assert_eq!(status, 200);
        assert_eq!(list["events"].as_array().unwrap().len(), 1);
        let (status, missing) = app.get("/v1/events/evt_nope").await;
        assert_eq!(
            (status, missing["code"].as_str()),
            (404, Some("event_not_found"))
        );
        app.stop().await;
    }

    pub(super) async fn redelivery_is_acknowledged_as_duplicate(db: TestDb) {
        let app = TestApp::spawn(test_config(&db)).await;
        let (_, first) = app.post("/v1/events", event_json("m-2")).await;
        let (status, second) = app.post("/v1/events", event_json("m-2")).await;
        assert_eq!(status, 200);
        assert_eq!(second["status"], "duplicate");
        assert_eq!(
            second["id"], first["id"],
            "a duplicate names the event already stored"
        );

        // Without a source_event_id the content is the dedupe key.
        let body = r#"{"type":"claim.created","subject":{"claim":"C-7"}}"#;
        assert_eq!(app.post("/v1/events", body).await.0, 201);
        assert_eq!(app.post("/v1/events", body).await.1["status"], "duplicate");
        let (pending, processed) = app.wait_processed().await;
        assert_eq!(pending + processed, 2);
        app.stop().await;
    }

    pub(super) async fn batches_as_array_and_ndjson(db: TestDb) {
        let app = TestApp::spawn(test_config(&db)).await;
        let array = format!("[{},{}]", event_json("b-1"), event_json("b-2"));
        let (status, receipt) = app.post("/v1/events", array).await;
        assert_eq!(status, 200, "{receipt}");
        assert_eq!(
            (receipt["stored"].as_u64(), receipt["duplicates"].as_u64()),
            (Some(2), Some(0))
        );

        let ndjson = format!("{}\n{}\n", event_json("b-2"), event_json("b-3"));
        let (status, receipt) = app.post("/v1/events", ndjson).await;
        assert_eq!(status, 200, "{receipt}");
        assert_eq!(
            (receipt["stored"].as_u64(), receipt["duplicates"].as_u64()),
            (Some(1), Some(1))
        );
        let statuses: Vec<&str> = receipt["events"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["status"].as_str().unwrap())
            .collect();
        assert_eq!(statuses, ["duplicate", "stored"]);
        app.stop().await;
    }

    pub(super) async fn bad_input_is_refused_with_a_reason_and_stores_no_event(db: TestDb) {
        let app = TestApp::spawn(test_config(&db)).await;
        let cases: &[(&str, u16, &str, &str)] = &[
            (
                "{\"type\": \"a.b\",\n \"subject\": {",
                400,
                "malformed_json",
                "line 2 column",
            ),
            ("not json", 400, "malformed_json", "at line 1 column"),
            ("", 400, "invalid_event", "empty body"),
            (
                r#"{"type":"Payment Received"}"#,
                400,
                "invalid_event",
                "type: event type 'Payment Received' must be snake_case",
            ),
            (
                r#"{"type":"a.b","amount":{"value":"lots"}}"#,
                400,
                "invalid_event",
                "amount.value:",
            ),
            (
                r#"[{"type":"a.b"},{"tpye":"a.b"}]"#,
                400,
                "invalid_event",
                "item 1: tpye: unknown field `tpye`, expected one of `type`",
            ),
        ];
        for (body, status, code, message) in cases {
            let (got, answer) = app.post("/v1/events", *body).await;
            assert_eq!(got, *status, "{body}: {answer}");
            assert_eq!(answer["code"], *code, "{body}: {answer}");
            assert!(
                answer["message"].as_str().unwrap().contains(message),
                "{body}: {answer}"
            );
        }
        assert_eq!(
            app.store.count_events().await.unwrap(),
            (0, 0),
            "a refused batch stores nothing, not even its valid items"
        );
        app.stop().await;
    }

    pub(super) async fn oversized_body_is_413(db: TestDb) {
        let mut config = test_config(&db);
        config.max_body_bytes = 1024;
        let app = TestApp::spawn(config).await;
        let big = json!({"type": "a.b", "data": {"blob": "x".repeat(2000)}}).to_string();
        let (status, answer) = app.post("/v1/events", big.clone()).await;
        assert_eq!(status, 413);
        assert_eq!(answer["code"], "payload_too_large");
        assert_eq!(app.post("/webhooks/canonical", big).await.0, 413);
        assert_eq!(
            app.post("/v1/events", event_json("small")).await.0,
            201,
            "bodies under the limit pass"
        );
        app.stop().await;
    }

    pub(super) async fn unknown_source_is_404(db: TestDb) {
        let app = TestApp::spawn(test_config(&db)).await;
        let (status, answer) = app.post("/webhooks/nobody", "{}").await;
        assert_eq!(status, 404);
        assert_eq!(answer["code"], "unknown_source");
        // The platforms: canonical events have their own route, behind an ingest token.
        let mut known: Vec<&str> = PLATFORMS.iter().map(|p| p.name).collect();
        known.sort_unstable();
        let message = answer["message"].as_str().unwrap();
        assert!(
            message.contains(&format!("known sources: {}", known.join(", "))),
            "{message}"
        );
        app.stop().await;
    }

    pub(super) async fn canonical_webhook_adapter_stores_events(db: TestDb) {
        let app = TestApp::spawn(test_config(&db)).await;
        let (status, receipt) = app.post("/webhooks/canonical", event_json("w-1")).await;
        assert_eq!(status, 201, "{receipt}");
        assert_eq!(
            app.post("/webhooks/canonical", event_json("w-1")).await.1["status"],
            "duplicate"
        );
        let (_, event) = app
            .get(&format!("/v1/events/{}", receipt["id"].as_str().unwrap()))
            .await;
        assert_eq!(event["source_event_id"], "w-1");
        app.stop().await;
    }

    pub(super) async fn concurrent_posts_are_stored_exactly_once(db: TestDb) {
        let app = TestApp::spawn(test_config(&db)).await;
        let post_all =
            || join_all((0..200).map(|i| app.post("/v1/events", event_json(&format!("c-{i}")))));
        let first = post_all().await;
        assert!(
            first
                .iter()
                .all(|(status, r)| *status == 201 && r["status"] == "stored"),
            "{first:?}"
        );
        let second = post_all().await;
        assert!(
            second
                .iter()
                .all(|(status, r)| *status == 200 && r["status"] == "duplicate")
        );
        // The same event posted by many senders at the same moment is stored once.
        let racing = join_all((0..50).map(|_| app.post("/v1/events", event_json("race")))).await;
        let stored: Vec<&Value> = racing
            .iter()
            .filter(|(s, _)| *s == 201)
            .map(|(_, r)| &r["id"])
            .collect();
        assert_eq!(stored.len(), 1, "{racing:?}");
        assert!(racing.iter().all(|(_, r)| r["id"] == *stored[0]));

        let (pending, processed) = app.wait_processed().await;
        assert_eq!((pending, processed), (0, 201));
        app.stop().await;
    }

    pub(super) async fn store_down_is_503_and_not_ready(db: TestDb) {
        let app = TestApp::spawn(test_config(&db)).await;
        assert_eq!(app.get("/readyz").await.0, 200);
        app.store.close().await;
        let (status, answer) = app.post("/v1/events", event_json("down")).await;
        assert_eq!(status, 503, "{answer}");
        assert_eq!(answer["code"], "store_unavailable");
        let (status, ready) = app.get("/readyz").await;
        assert_eq!(status, 503);
        assert_eq!(ready["store"]["ok"], false);
        assert_eq!(
            app.get("/healthz").await.0,
            200,
            "the process itself is alive"
        );
    }

    pub(super) async fn hostile_bodies_never_cause_a_server_error(db: TestDb) {
        let app = TestApp::spawn(test_config(&db)).await;
        let mut bodies: Vec<Vec<u8>> = vec![
            "[".repeat(10_000).into_bytes(),
            b"{\"type\":\"a.b\",\"occurred_at\":\"yesterday\"}".to_vec(),
            b"{\"type\":\"a.b\",\"amount\":{\"value\":1e400}}".to_vec(),
            b"{\"type\":\"a.b\",\"source_event_id\":\"\"}".to_vec(),
            b"{\"type\":\"a.b\",\"subject\":{\"claim\":{\"id\":5}}}".to_vec(),
            vec![0xff, 0xfe, 0x00, 0x7b],
            b"null".to_vec(),
            b"[1,2,3]".to_vec(),
            b"{}\n{}\n".to_vec(),
        ];
        let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
        for len in [1, 7, 64, 512, 4096] {
            bodies.push(
                (0..len)
                    .map(|_| {
                        seed ^= seed << 13;
                        seed ^= seed >> 7;
                        seed ^= seed << 17;
                        (seed >> 24) as u8
                    })
                    .collect(),
            );
        }
        for body in bodies {
            for path in ["/v1/events", "/webhooks/canonical"] {
                let (status, answer) = app.post(path, body.clone()).await;
                assert!(
                    (400..500).contains(&status),
                    "{path} {:?}: {status} {answer}",
                    String::from_utf8_lossy(&body[..body.len().min(40)])
                );
                assert!(
                    answer["code"].is_string() && answer["message"].is_string(),
                    "{answer}"
                );
            }
        }
        assert_eq!(app.store.count_events().await.unwrap(), (0, 0));
        app.stop().await;
    }
}
