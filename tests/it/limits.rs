//! The engine's bounds, in process: request and ingestion-budget saturation answer 503 with
//! `Retry-After`, slow bodies 408, list pages stop at a byte budget and leave raw payloads out,
//! a target's endless answer is read only up to a limit, and stopping finishes requests in
//! flight while idle connections close.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

crate::on_both_backends!(cases:
    list_pages_stop_at_the_byte_budget_and_leave_payloads_out,
    deliveries_pages_stop_at_the_byte_budget_and_follow_next_before,
    a_target_answering_without_end_is_read_only_up_to_a_limit,
);

/// Sends a request's head (and the start of its body) and leaves the rest unsent.
pub(crate) async fn partial_request(
    addr: std::net::SocketAddr,
    head: &str,
    body_start: &[u8],
) -> TcpStream {
    let mut stream = TcpStream::connect(addr).await.expect("connects");
    stream.write_all(head.as_bytes()).await.unwrap();
    stream.write_all(body_start).await.unwrap();
    stream
}

/// A `POST /v1/events` head for a body of `length` bytes, closing after the answer.
pub(crate) fn post_head(length: usize) -> String {
    format!(
        "POST /v1/events HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: {length}\r\nConnection: close\r\n\r\n"
    )
}

/// Reads until the server closes the connection (at most 30 s): the status of the answer, if
/// one came, and the whole text.
pub(crate) async fn read_until_closed(stream: &mut TcpStream) -> (Option<u16>, String) {
    let mut text = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(30), async {
        let mut buf = [0u8; 4096];
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => text.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await;
    assert!(read.is_ok(), "the server did not close the connection");
    let text = String::from_utf8_lossy(&text).into_owned();
    let status = text
        .strip_prefix("HTTP/1.1 ")
        .and_then(|rest| rest.get(..3))
        .and_then(|code| code.parse().ok());
    (status, text)
}

/// Asks `path` until it answers `status` (at most 10 s); returns the response.
async fn wait_for_status(client: &reqwest::Client, url: &str, status: u16) -> reqwest::Response {
    for _ in 0..400 {
        let response = client.get(url).send().await.expect("answered");
        if response.status() == status {
            return response;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("{url} never answered {status}");
}

mod cases {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use serde_json::{Value, json};

    use crate::rules::write_rules;
    use crate::support::{TestApp, TestDb, test_config, wait_actions_settled};

    fn big_event(i: usize) -> String {
        json!({
            "type": "payment.received",
            "source_event_id": format!("big-{i}"),
            "subject": {"claim": format!("C-{i}")},
            "data": {"note": "x".repeat(1000)},
        })
        .to_string()
    }

    pub(super) async fn list_pages_stop_at_the_byte_budget_and_leave_payloads_out(db: TestDb) {
        let mut config = test_config(&db);
        config.server.max_page_bytes = 3000;
        let app = TestApp::spawn(config).await;
        let mut ids = Vec::new();
        for i in 0..10 {
            let (status, receipt) = app.post("/v1/events", big_event(i)).await;
            assert_eq!(status, 201);
            ids.push(receipt["id"].as_str().unwrap().to_owned());
        }
        app.wait_processed().await;
        let mut seen = Vec::new();
        let mut path = "/v1/events?limit=1000".to_owned();
        let mut pages = 0;
        loop {
            let (status, page) = app.get(&path).await;
            assert_eq!(status, 200, "{page}");
            pages += 1;
            let events = page["events"].as_array().unwrap();
            assert!(
                !events.is_empty() && events.len() <= 3,
                "about 1.1 KB each: a 3000-byte page passes its budget with the third, {}",
                events.len()
            );
            for event in events {
                assert!(event.get("payload").is_none(), "no raw payload in lists");
                assert_eq!(event["data"]["note"].as_str().unwrap().len(), 1000);
                let (_, mut one) = app
                    .get(&format!("/v1/events/{}", event["id"].as_str().unwrap()))
                    .await;
                assert!(
                    one["payload"].is_object(),
                    "one event's page keeps its payload"
                );
                // Nor what followed it (its delivery, evaluations and actions).
                for key in ["payload", "delivery", "evaluations", "actions"] {
                    one.as_object_mut().unwrap().remove(key);
                }
                assert_eq!(
                    event, &one,
                    "a listed event is the event's page without its payload"
                );
                seen.push(event["source_event_id"].as_str().unwrap().to_owned());
            }
            match &page["next_before"] {
                Value::String(next) => {
                    assert_eq!(next, events.last().unwrap()["id"].as_str().unwrap());
                    path = format!("/v1/events?limit=1000&before={next}");
                }
                Value::Null => break,
                other => panic!("next_before: {other}"),
            }
        }
        let expected: Vec<String> = (0..10).rev().map(|i| format!("big-{i}")).collect();
        assert_eq!(seen, expected, "every event once, newest first");
        assert!(pages >= 4, "{pages} pages");

        let (_, page) = app.get("/v1/events?limit=3").await;
        assert_eq!(page["events"].as_array().unwrap().len(), 3);
        assert!(
            page["next_before"].is_string(),
            "the count limit gives a cursor too"
        );
        let (_, page) = app.get("/v1/events?type=none.such").await;
        assert_eq!(page, json!({"events": [], "next_before": null}));

        let (_, one) = app.get(&format!("/v1/events/{}", ids[3])).await;
        assert_eq!(
            one["payload"]["source_event_id"], "big-3",
            "one event's page keeps its payload"
        );
        app.stop().await;
    }

    pub(super) async fn deliveries_pages_stop_at_the_byte_budget_and_follow_next_before(
        db: TestDb,
    ) {
        let mut config = test_config(&db);
        config.server.max_page_bytes = 400;
        let app = TestApp::spawn(config).await;
        for i in 0..6 {
            assert_eq!(app.post("/v1/events", big_event(i)).await.0, 201);
        }
        let mut ids = Vec::new();
        let mut path = "/v1/deliveries?limit=1000".to_owned();
        loop {
            let (status, page) = app.get(&path).await;
            assert_eq!(status, 200, "{page}");
            let deliveries = page["deliveries"].as_array().unwrap();
            assert!((1..=3).contains(&deliveries.len()), "{page}");
            for d in deliveries {
                assert_eq!(d["events"], 1);
                assert!(d.get("body").is_none(), "no raw body in lists");
                ids.push(d["id"].as_str().unwrap().to_owned());
            }
            match page["next_before"].as_str() {
                Some(next) => path = format!("/v1/deliveries?limit=1000&before={next}"),
                None => break,
            }
        }
        let mut sorted = ids.clone();
        sorted.sort();
        sorted.dedup();
        sorted.reverse();
        assert_eq!(ids, sorted, "newest first, each once");
        assert_eq!(ids.len(), 6);
        app.stop().await;
    }

    /// A webhook target answers 200 with a body that never ends: the attempt is recorded, with
    /// the status and the first 500 characters, once 64 KiB were read.
    pub(super) async fn a_target_answering_without_end_is_read_only_up_to_a_limit(db: TestDb) {
        let sent = Arc::new(AtomicUsize::new(0));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let counter = sent.clone();
        let target = axum::Router::new().fallback(move || {
            let counter = counter.clone();
            async move {
                let chunk = bytes::Bytes::from(vec![b'x'; 16 * 1024]);
                let endless = futures::stream::repeat_with(move || {
                    counter.fetch_add(chunk.len(), Ordering::Relaxed);
                    Ok::<_, std::convert::Infallible>(chunk.clone())
                });
                axum::body::Body::from_stream(endless)
            }
        });
        tokio::spawn(async move { axum::serve(listener, target).await.unwrap() });

        let dir = tempfile::tempdir().unwrap();
        write_rules(
            dir.path(),
            &[(
                "rules.yaml",
                &format!(
                    "version: 1\nid: notify\non: [claim.created]\nactions: [{{type: webhook, url: '{url}/hook', timeout: 60s}}]\n"
                ),
            )],
        );
        let mut config = test_config(&db);
        config.rules_dir = dir.path().to_owned();
        let app = TestApp::spawn(config).await;
        let (status, _) = app
            .post(
                "/v1/events",
                json!({"type": "claim.created", "source_event_id": "e-1", "subject": {"claim": "C-1"}})
                    .to_string(),
            )
            .await;
        assert_eq!(status, 201);
        assert_eq!(wait_actions_settled(&app.store, 1).await, (0, 1, 0));
        let action = &app.store.list_actions(None, None, 10).await.unwrap()[0];
        let attempts = app.store.attempts(&action.id).await.unwrap();
        assert_eq!(attempts.len(), 1, "{attempts:?}");
        assert_eq!(attempts[0].status_code, Some(200));
        assert_eq!(attempts[0].reply.as_deref(), Some("x".repeat(500).as_str()));
        // The target wrote what the socket buffers took, not without end: it stops once the
        // engine drops the connection. Loopback buffers hold a few MiB at most.
        let written = sent.load(Ordering::Relaxed);
        assert!(written < 64 << 20, "{written} bytes written by the target");
        app.stop().await;
    }
}

mod saturation {
    use super::*;
    use crate::support::{TestApp, event_json, sqlite_db, test_config};

    /// With one request slot taken by a request whose body is still coming, the next request
    /// is answered 503 `overloaded` with `Retry-After: 1`, `/healthz` still answers, and once
    /// the slow request is done (and answered 201) requests pass again.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn requests_beyond_the_limit_are_answered_503_with_retry_after() {
        let db = sqlite_db().await.unwrap();
        let mut config = test_config(&db);
        config.server.max_requests = 1;
        config.server.body_read_timeout = Duration::from_secs(60);
        let app = TestApp::spawn(config).await;
        let addr = app.app.as_ref().unwrap().addr;
        let body = event_json("slow-1");
        let (start, rest) = body.as_bytes().split_at(10);
        let mut slow = partial_request(addr, &post_head(body.len()), start).await;

        let url = format!("{}/v1/events", app.base);
        let refused = wait_for_status(&app.client, &url, 503).await;
        assert_eq!(refused.headers()["retry-after"], "1");
        let answer: serde_json::Value = refused.json().await.unwrap();
        assert_eq!(answer["code"], "overloaded", "{answer}");
        assert_eq!(app.get("/healthz").await.0, 200, "liveness is not limited");

        slow.write_all(rest).await.unwrap();
        let (status, text) = read_until_closed(&mut slow).await;
        assert_eq!(status, Some(201), "{text}");
        wait_for_status(&app.client, &url, 200).await;
        app.stop().await;
    }

    /// The ingestion budget is reserved from `Content-Length` before reading: while a slow
    /// 4000-byte body holds most of a 4096-byte budget, a 200-byte post is answered 503 at
    /// once and nothing of it is stored; afterwards it passes.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn spent_ingestion_budget_is_503_before_the_body_is_read() {
        let db = sqlite_db().await.unwrap();
        let mut config = test_config(&db);
        config.max_body_bytes = 4096;
        config.server.ingest_bytes_in_flight = Some(4096);
        config.server.body_read_timeout = Duration::from_secs(60);
        let app = TestApp::spawn(config).await;
        let addr = app.app.as_ref().unwrap().addr;
        let padded = serde_json::json!({
            "type": "payment.received", "source_event_id": "slow-big", "data": {"pad": "x".repeat(3900)}
        })
        .to_string();
        let (start, rest) = padded.as_bytes().split_at(10);
        let mut slow = partial_request(addr, &post_head(padded.len()), start).await;

        // Small posts pass until the slow one has reserved its size; then they are refused.
        let mut passed = 0;
        let answer = loop {
            assert!(passed < 400, "never refused");
            let (status, body) = app
                .post("/v1/events", event_json(&format!("small-{passed}")))
                .await;
            match status {
                201 => passed += 1,
                503 => break body,
                other => panic!("{other}: {body}"),
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        };
        assert_eq!(answer["code"], "overloaded");
        assert!(
            answer["message"]
                .as_str()
                .unwrap()
                .contains("request bodies in flight"),
            "{answer}"
        );
        let (_, deliveries) = app.get("/v1/deliveries").await;
        assert_eq!(
            deliveries["deliveries"].as_array().unwrap().len(),
            passed,
            "the refused post was not read, so not stored"
        );

        slow.write_all(rest).await.unwrap();
        let (status, text) = read_until_closed(&mut slow).await;
        assert_eq!(status, Some(201), "{text}");
        assert_eq!(
            app.post("/v1/events", event_json("small-last")).await.0,
            201
        );
        app.stop().await;
    }

    /// A body that stops coming is answered 408 `body_timeout` after `body_read_timeout`, the
    /// connection is closed, and nothing is stored.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_body_that_stops_coming_is_408() {
        let db = sqlite_db().await.unwrap();
        let mut config = test_config(&db);
        config.server.body_read_timeout = Duration::from_millis(200);
        let app = TestApp::spawn(config).await;
        let addr = app.app.as_ref().unwrap().addr;
        let body = event_json("never-finished");
        let mut slow = partial_request(addr, &post_head(body.len()), &body.as_bytes()[..10]).await;
        let (status, text) = read_until_closed(&mut slow).await;
        assert_eq!(status, Some(408), "{text}");
        assert!(text.contains("\"code\":\"body_timeout\""), "{text}");
        assert_eq!(app.store.count_events().await.unwrap(), (0, 0));
        app.stop().await;
    }

    /// `App::stop` answers the request in flight (its event is stored and acknowledged),
    /// closes idle connections at once, and returns.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn stop_answers_the_request_in_flight_and_closes_idle_connections() {
        let db = sqlite_db().await.unwrap();
        let mut config = test_config(&db);
        // One request slot, so a 503 shows the slow request is being handled.
        config.server.max_requests = 1;
        config.server.body_read_timeout = Duration::from_secs(60);
        let mut app = TestApp::spawn(config).await;
        let addr = app.app.as_ref().unwrap().addr;
        let mut idle = Vec::new();
        for _ in 0..5 {
            idle.push(TcpStream::connect(addr).await.unwrap());
        }
        // A kept-alive connection that has served one request.
        let mut kept = TcpStream::connect(addr).await.unwrap();
        kept.write_all(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            .await
            .unwrap();
        let mut buf = [0u8; 1024];
        let n = kept.read(&mut buf).await.unwrap();
        assert!(buf[..n].starts_with(b"HTTP/1.1 200"));
        idle.push(kept);

        let body = event_json("in-flight");
        let (start, rest) = body.as_bytes().split_at(10);
        let mut slow = partial_request(addr, &post_head(body.len()), start).await;
        wait_for_status(&app.client, &format!("{}/v1/events", app.base), 503).await;
        let stopping = tokio::spawn(app.app.take().unwrap().stop());
        for stream in &mut idle {
            read_until_closed(stream).await;
        }
        slow.write_all(rest).await.unwrap();
        let (status, text) = read_until_closed(&mut slow).await;
        assert_eq!(status, Some(201), "{text}");
        tokio::time::timeout(Duration::from_secs(30), stopping)
            .await
            .expect("stop returns")
            .unwrap()
            .expect("clean stop");
        let store = signalbox::store::Store::open(&db.url, &Default::default())
            .await
            .unwrap();
        let (pending, processed) = store.count_events().await.unwrap();
        assert_eq!(pending + processed, 1, "the acknowledged event is stored");
        store.close().await;
    }
}
