//! Signed webhooks of each platform over HTTP, on both backends.

crate::on_both_backends!(cases:
    signed_delivery_of_each_platform_is_stored_once_as_its_canonical_event,
    bad_signatures_are_401_recorded_and_not_processed,
    a_platform_without_a_secret_is_refused_with_how_to_configure_it,
    unknown_and_future_types_are_stored_not_rejected,
    bemmbo_per_type_endpoints_name_the_type,
);

mod cases {
    use std::collections::BTreeMap;

    use base64::Engine;
    use base64::engine::general_purpose::STANDARD as BASE64;
    use serde_json::{Value, json};
    use signalbox::config::{Config, Secret, SourceConfig};
    use signalbox::providers::signature::hmac_sha256;
    use signalbox::providers::{PLATFORMS, Scheme};

    use crate::providers::fixtures;
    use crate::support::{TestApp, TestDb, test_config};

    const SVIX_SECRET: &str = "whsec_c2lnbmFsYm94LXRlc3Qtc2VjcmV0";

    fn scheme(source: &str) -> Scheme {
        signalbox::providers::platform(source)
            .expect("a platform")
            .scheme
    }

    /// The secret each platform signs with in these tests: `<name>-secret`, or a Svix one.
    fn secret(source: &str) -> String {
        match scheme(source) {
            Scheme::Svix { .. } => SVIX_SECRET.to_owned(),
            _ => format!("{source}-secret"),
        }
    }

    fn config(db: &TestDb) -> Config {
        let mut config = test_config(db);
        config.sources = PLATFORMS
            .iter()
            .map(|p| {
                let settings = SourceConfig {
                    secrets: vec![Secret::new(secret(p.name))],
                    ..SourceConfig::default()
                };
                (p.name.to_owned(), settings)
            })
            .collect::<BTreeMap<_, _>>();
        config
    }

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

    /// The request a platform would send: a fixture's body and headers, signed its way.
    fn signed(source: &str, case: &str) -> (Vec<u8>, Vec<(String, String)>) {
        let (body, headers) = fixture(source, case);
        sign(source, body, headers)
    }

    fn sign(
        source: &str,
        body: Vec<u8>,
        mut headers: Vec<(String, String)>,
    ) -> (Vec<u8>, Vec<(String, String)>) {
        let secret = secret(source);
        match scheme(source) {
            Scheme::PayloadHmac => {
                #[derive(serde::Deserialize)]
                struct Raw<'a> {
                    #[serde(borrow)]
                    payload: &'a serde_json::value::RawValue,
                }
                let raw: Raw = serde_json::from_slice(&body).unwrap();
                let signature = hex::encode(hmac_sha256(
                    secret.as_bytes(),
                    &[raw.payload.get().as_bytes()],
                ));
                let body = format!(
                    "{{\"payload\": {}, \"signature\": \"{signature}\"}}",
                    raw.payload.get()
                )
                .into_bytes();
                (body, headers)
            }
            Scheme::Svix { .. } => {
                let key = BASE64.decode(secret.trim_start_matches("whsec_")).unwrap();
                let id = headers
                    .iter()
                    .find(|(k, _)| k == "svix-id")
                    .unwrap()
                    .1
                    .clone();
                let ts = chrono::Utc::now().timestamp().to_string();
                let sig = BASE64.encode(hmac_sha256(
                    &key,
                    &[id.as_bytes(), b".", ts.as_bytes(), b".", &body],
                ));
                headers.retain(|(k, _)| k != "svix-timestamp");
                headers.push(("svix-timestamp".into(), ts));
                headers.push(("svix-signature".into(), format!("v1,{sig}")));
                (body, headers)
            }
            Scheme::BodyHmac { default_header } => {
                headers.push((
                    default_header.to_ascii_lowercase(),
                    hex::encode(hmac_sha256(secret.as_bytes(), &[&body])),
                ));
                (body, headers)
            }
        }
    }

    async fn deliver(
        app: &TestApp,
        path: &str,
        (body, headers): &(Vec<u8>, Vec<(String, String)>),
    ) -> (u16, Value) {
        let mut request = app
            .client
            .post(format!("{}{path}", app.base))
            .body(body.clone());
        for (k, v) in headers {
            request = request.header(k, v);
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    const ONE_PER_PLATFORM: &[(&str, &str, &str)] = &[
        (
            "receeve",
            "event.promiseToPay.expired",
            "promise_to_pay.expired",
        ),
        ("amili", "CASE_UPDATED", "case.updated"),
        (
            "bemmbo",
            "invoice_reconciled_to_payments",
            "invoice.reconciled",
        ),
        (
            "hubpay",
            "v1.collection.payment_request.payment.failed",
            "payment.failed",
        ),
        ("b54", "invoice.declined", "invoice.declined"),
    ];

    pub(super) async fn signed_delivery_of_each_platform_is_stored_once_as_its_canonical_event(
        db: TestDb,
    ) {
        let app = TestApp::spawn(config(&db)).await;
        for (source, case, kind) in ONE_PER_PLATFORM {
            let request = signed(source, case);
            let (status, receipt) = deliver(&app, &format!("/webhooks/{source}"), &request).await;
            assert_eq!(status, 201, "{source}: {receipt}");
            assert_eq!(receipt["type"], *kind);
            let (_, event) = app
                .get(&format!("/v1/events/{}", receipt["id"].as_str().unwrap()))
                .await;
            assert_eq!(event["source"], *source);
            assert_eq!(event["type"], *kind);
            assert_eq!(
                event["payload"],
                serde_json::from_slice::<Value>(&request.0).unwrap(),
                "{source}: original payload kept"
            );

            let (status, again) = deliver(&app, &format!("/webhooks/{source}"), &request).await;
            assert_eq!(
                (status, again["status"].as_str()),
                (200, Some("duplicate")),
                "{source}: redelivery"
            );
            assert_eq!(again["id"], receipt["id"]);
        }
        let (pending, processed) = app.wait_processed().await;
        assert_eq!((pending, processed), (0, ONE_PER_PLATFORM.len() as _));
        let (_, deliveries) = app.get("/v1/deliveries?verification=verified").await;
        assert_eq!(
            deliveries["deliveries"].as_array().unwrap().len(),
            2 * ONE_PER_PLATFORM.len(),
            "every delivery is recorded, duplicates too"
        );
        app.stop().await;
    }

    pub(super) async fn bad_signatures_are_401_recorded_and_not_processed(db: TestDb) {
        let app = TestApp::spawn(config(&db)).await;
        for (source, case, _) in ONE_PER_PLATFORM {
            let (mut body, headers) = signed(source, case);
            let at = body.iter().rposition(|b| b.is_ascii_digit()).unwrap();
            body[at] = if body[at] == b'9' { b'8' } else { b'9' };
            let (status, answer) = deliver(
                &app,
                &format!("/webhooks/{source}"),
                &(body, headers.clone()),
            )
            .await;
            assert_eq!(status, 401, "{source}: tampered body");
            assert_eq!(answer["code"], "invalid_signature");

            let (body, _) = fixture(source, case);
            let (status, answer) =
                deliver(&app, &format!("/webhooks/{source}"), &(body, Vec::new())).await;
            assert_eq!(status, 401, "{source}: no signature: {answer}");
        }
        assert_eq!(
            app.store.count_events().await.unwrap(),
            (0, 0),
            "nothing refused becomes an event"
        );
        let (_, rejected) = app.get("/v1/deliveries?verification=rejected").await;
        let rejected = rejected["deliveries"].as_array().unwrap().clone();
        assert_eq!(rejected.len(), 2 * ONE_PER_PLATFORM.len());
        assert!(
            rejected.iter().all(|d| d["events"] == 0
                && d["reason"]
                    .as_str()
                    .unwrap()
                    .starts_with("signature rejected: ")),
            "{rejected:?}"
        );
        app.stop().await;
    }

    pub(super) async fn a_platform_without_a_secret_is_refused_with_how_to_configure_it(
        db: TestDb,
    ) {
        let mut config = config(&db);
        config.sources.remove("hubpay");
        config.sources.insert(
            "b54".into(),
            SourceConfig {
                unsigned: true,
                ..SourceConfig::default()
            },
        );
        let app = TestApp::spawn(config).await;
        let (body, _) = fixture("hubpay", "v1.collection.payment_request.created");
        let (status, answer) = deliver(&app, "/webhooks/hubpay", &(body, Vec::new())).await;
        assert_eq!(status, 401);
        assert!(
            answer["message"]
                .as_str()
                .unwrap()
                .contains("set sources.hubpay.secrets (or sources.hubpay.unsigned: true)"),
            "{answer}"
        );

        let (body, _) = fixture("b54", "invoice.paid");
        assert_eq!(
            deliver(&app, "/webhooks/b54", &(body, Vec::new())).await.0,
            201,
            "unsigned by explicit choice"
        );
        let (_, unsigned) = app.get("/v1/deliveries?verification=unsigned").await;
        assert_eq!(unsigned["deliveries"].as_array().unwrap().len(), 1);
        app.stop().await;
    }

    pub(super) async fn unknown_and_future_types_are_stored_not_rejected(db: TestDb) {
        let mut config = config(&db);
        config.sources.insert(
            "amili".into(),
            SourceConfig {
                unsigned: true,
                ..SourceConfig::default()
            },
        );
        let app = TestApp::spawn(config).await;
        let post = |body: Value| {
            let app = &app;
            async move {
                deliver(
                    app,
                    "/webhooks/amili",
                    &(body.to_string().into_bytes(), Vec::new()),
                )
                .await
            }
        };
        let (status, receipt) = post(json!({"id": "a-1", "eventType": "INVOICE_DISPUTED", "timeStamp": "2026-01-01T00:00:00Z", "data": {"orgId": "o-1"}})).await;
        assert_eq!(status, 201, "{receipt}");
        assert_eq!(receipt["type"], "unknown");
        assert_eq!(
            post(json!({"id": "a-2", "type": "INVOICE_DISPUTED"}))
                .await
                .0,
            201
        );
        let (_, event) = app
            .get(&format!("/v1/events/{}", receipt["id"].as_str().unwrap()))
            .await;
        assert_eq!(event["source_type"], "INVOICE_DISPUTED");
        assert_eq!(event["subject"]["organization"], "o-1");
        let (_, unknown) = app.get("/v1/unknown-types").await;
        assert_eq!(
            unknown["unknown_types"][0]["source_type"],
            "INVOICE_DISPUTED"
        );
        assert_eq!(unknown["unknown_types"][0]["count"], 2);

        // A future version of a known Receeve type keeps its canonical type.
        let (body, headers) = fixture("receeve", "event.strategy.paused");
        let body = String::from_utf8(body)
            .unwrap()
            .replace("event.strategy.paused.v1", "event.strategy.paused.v3");
        let (status, receipt) = deliver(
            &app,
            "/webhooks/receeve",
            &sign("receeve", body.into_bytes(), headers),
        )
        .await;
        assert_eq!(status, 201, "{receipt}");
        assert_eq!(receipt["type"], "strategy.paused");
        app.stop().await;
    }

    pub(super) async fn bemmbo_per_type_endpoints_name_the_type(db: TestDb) {
        let mut config = config(&db);
        config.sources.insert(
            "bemmbo".into(),
            SourceConfig {
                unsigned: true,
                ..SourceConfig::default()
            },
        );
        let app = TestApp::spawn(config).await;
        let body = json!({"customerId": "c-1", "debt": 0, "status": "NO_DEBT", "updatedAt": "2026-11-01T00:00:00Z"}).to_string().into_bytes();
        let headers = vec![("svix-id".to_owned(), "msg_1".to_owned())];
        let (status, receipt) = deliver(
            &app,
            "/webhooks/bemmbo/customer_debt_status_changed",
            &(body.clone(), headers),
        )
        .await;
        assert_eq!(status, 201, "{receipt}");
        assert_eq!(receipt["type"], "customer.debt_status_changed");
        assert_eq!(receipt["source_event_id"], "msg_1");
        let (status, receipt) = deliver(
            &app,
            "/webhooks/bemmbo",
            &(body, vec![("svix-id".into(), "msg_2".into())]),
        )
        .await;
        assert_eq!(
            (status, receipt["type"].as_str()),
            (201, Some("customer.debt_status_changed")),
            "recognised by shape"
        );
        app.stop().await;
    }
}
