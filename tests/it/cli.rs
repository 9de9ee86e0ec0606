//! The operator's commands against a real store, and the CLI's manners: a closed pipe is not
//! a crash, and a command that reads the store never creates one.

use std::process::{Command, Stdio};

use chrono::{Duration, Utc};
use signalbox::config::StoreConfig;
use signalbox::store::{EventFailure, Ingest, NewDelivery, Store};

use crate::support::signalbox;

#[test]
fn a_closed_pipe_ends_the_listing_quietly() {
    // `signalbox events | head -1` once head has gone: the reader end is closed before the
    // command writes anything, so its very first line meets a closed pipe (a listing short
    // enough to fit the pipe's buffer would otherwise never notice).
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let output = Command::new(env!("CARGO_BIN_EXE_signalbox"))
        .arg("events")
        .stdout(writer)
        .stderr(Stdio::piped())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "exit {:?}: {stderr}",
        output.status
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[test]
fn commands_that_read_the_store_never_create_one() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("signalbox.db");
    let url = format!("sqlite://{}", db.display());
    for args in [
        vec!["actions", "--database-url", &url],
        vec!["events", "--state", "failed", "--database-url", &url],
    ] {
        let (ok, out) = signalbox(&args);
        assert!(!ok, "{out}");
        assert!(
            out.contains(&format!("no database at {}", db.display())),
            "{out}"
        );
        assert!(!db.exists(), "{args:?} created {}", db.display());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_events_are_listed_and_put_back() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("signalbox.db").display());
    let store = Store::open(&url, &StoreConfig::default()).await.unwrap();
    let event: signalbox::normalize::Event = serde_json::from_value(serde_json::json!({
        "id": signalbox::normalize::EventId::new().as_str(), "source": "api", "source_event_id": "f-1",
        "type": "claim.created", "occurred_at": "2026-11-20T08:00:00Z", "received_at": "2026-11-20T08:00:00Z"
    }))
    .unwrap();
    let id = event.id.clone();
    let delivery = NewDelivery {
        id: NewDelivery::new_id(),
        source: "api".into(),
        received_at: Utc::now(),
        headers: serde_json::json!({}),
        body: bytes::Bytes::new(),
        verification: "unsigned",
        reason: None,
        body_size: None,
        token: None,
    };
    store
        .insert_batch(&[Ingest {
            delivery,
            events: vec![event],
        }])
        .await
        .unwrap();
    let now = Utc::now();
    store
        .claim_pending("cli", 10, now, now + Duration::seconds(30), 1)
        .await
        .unwrap();
    let failure = EventFailure {
        id: &id,
        error: "cannot store its evaluations: value too long",
        retry_at: None,
    };
    store.fail_events("cli", &[failure]).await.unwrap();
    store.close().await;

    let (ok, out) = signalbox(&["events", "--state", "failed", "--database-url", &url]);
    assert!(ok, "{out}");
    assert!(out.contains(id.as_str()), "{out}");
    assert!(
        out.contains("cannot store its evaluations: value too long"),
        "{out}"
    );
    assert!(out.contains("signalbox events retry"), "{out}");
    let (ok, out) = signalbox(&["events", "retry", "--database-url", &url]);
    assert!(!ok && out.contains("--all"), "{out}");
    let (ok, out) = signalbox(&["events", "retry", id.as_str(), "--database-url", &url]);
    assert!(ok, "{out}");
    assert!(out.contains("1 failed event(s) put back"), "{out}");
    let (ok, out) = signalbox(&["events", "--state", "pending", "--database-url", &url]);
    assert!(ok && out.contains(id.as_str()), "{out}");
}

/// `try` on what happened: a stored event by id, and the JSON the API returns for it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn try_takes_a_stored_event_and_the_apis_json() {
    let db = crate::support::sqlite_db().await.unwrap();
    let app = crate::support::TestApp::spawn(crate::support::test_config(&db)).await;
    let body = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("examples/events/promise_to_pay_expired.json"),
    )
    .unwrap();
    let (status, receipt) = app.post("/v1/events", body).await;
    assert_eq!(status, 201, "{receipt}");
    let id = receipt["id"].as_str().unwrap().to_owned();
    app.wait_processed().await;
    let (_, stored) = app.get(&format!("/v1/events/{id}")).await;
    app.stop().await;

    let rules = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("rules");
    let rules = rules.to_str().unwrap();
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), stored.to_string()).unwrap();
    let path = file.path().to_str().unwrap();
    for args in [
        vec!["try", "--event", path, "--rules", rules],
        vec![
            "try",
            "--event-id",
            &id,
            "--database-url",
            &db.url,
            "--rules",
            rules,
        ],
    ] {
        let (ok, out) = signalbox(&args);
        assert!(ok, "{args:?}: {out}");
        assert!(
            out.contains("FIRES    promise_to_pay_expired_alert"),
            "{args:?}: {out}"
        );
        assert!(out.contains("Promise to pay PTP-9 expired"), "{out}");
    }
    let (ok, out) = signalbox(&[
        "try",
        "--event-id",
        "evt_nope",
        "--database-url",
        &db.url,
        "--rules",
        rules,
    ]);
    assert!(!ok && out.contains("no event with id 'evt_nope'"), "{out}");
}
