//! SQLite with a full disk (`store.sqlite_max_bytes`, SQLite's `max_page_count`, stands in for
//! the disk): no 2xx for an event that was not committed, and recovery once space is freed,
//! without a restart.

use serde_json::json;

use crate::support::{TestApp, sqlite_db, test_config};

/// Fills the database file (through a connection of the test's, which has no size limit)
/// until at most `free` bytes are left under the engine's limit.
async fn fill(url: &str, limit: u64, free: u64) -> sqlx::SqlitePool {
    let pool = sqlx::SqlitePool::connect(url).await.unwrap();
    sqlx::query("CREATE TABLE ballast (b BLOB)")
        .execute(&pool)
        .await
        .unwrap();
    loop {
        let pages: i64 = sqlx::query_scalar("PRAGMA page_count")
            .fetch_one(&pool)
            .await
            .unwrap();
        let used = pages as u64 * 4096;
        if used + free >= limit {
            break;
        }
        let chunk = (limit - free - used).min(1 << 20) as i64;
        sqlx::query("INSERT INTO ballast VALUES (zeroblob($1))")
            .bind(chunk)
            .execute(&pool)
            .await
            .unwrap();
    }
    pool
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_never_gets_a_2xx_and_recovers_without_restart() {
    let db = sqlite_db().await.unwrap();
    let limit = 8 << 20;
    let mut config = test_config(&db);
    config.store.sqlite_max_bytes = Some(limit);
    let app = TestApp::spawn(config.clone()).await;
    let ballast = fill(&db.url, limit, 256 << 10).await;

    let note = "x".repeat(8 << 10);
    let mut acknowledged = Vec::new();
    let mut refused = 0;
    for i in 0..60 {
        let event = json!({"type": "claim.created", "source_event_id": format!("f-{i}"), "data": {"note": note}});
        let (status, body) = app.post("/v1/events", event.to_string()).await;
        match status {
            201 => acknowledged.push(body["id"].as_str().unwrap().to_owned()),
            503 => {
                assert_eq!(body["code"], "store_unavailable", "{body}");
                refused += 1;
            }
            other => panic!("answered {other}: {body}"),
        }
    }
    assert!(
        !acknowledged.is_empty() && refused > 0,
        "the disk filled up: {} stored, {refused} refused",
        acknowledged.len()
    );
    let (status, ready) = app.get("/readyz").await;
    assert_eq!(
        status, 503,
        "not ready while nothing can be written: {ready}"
    );

    // Space comes back: the store writes again without a restart.
    sqlx::query("DROP TABLE ballast")
        .execute(&ballast)
        .await
        .unwrap();
    ballast.close().await;
    // Ready again by itself: the next probe write succeeds. Under load a background write
    // that failed while the disk was full may be reported first, so ask until it is (at most
    // 30 s: a wait for the engine, not for a window).
    let mut ready = (0, serde_json::Value::Null);
    for _ in 0..300 {
        ready = app.get("/readyz").await;
        if ready.0 == 200 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(ready.0, 200, "ready again by itself: {}", ready.1);
    let event = json!({"type": "claim.created", "source_event_id": "after"});
    let (status, body) = app.post("/v1/events", event.to_string()).await;
    assert_eq!(status, 201, "{body}");
    acknowledged.push(body["id"].as_str().unwrap().to_owned());

    // Every acknowledged event is there, also after a restart.
    app.stop().await;
    let app = TestApp::spawn(config).await;
    for id in &acknowledged {
        let (status, _) = app.get(&format!("/v1/events/{id}")).await;
        assert_eq!(status, 200, "{id} was acknowledged but is not stored");
    }
    app.stop().await;
}
