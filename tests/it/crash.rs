//! A real `signalbox serve` process is killed with SIGKILL while senders post to it; after a
//! restart every acknowledged event is there, exactly once, and gets processed.

use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::support::{TestDb, event_json};

crate::on_both_backends!(cases: kill_9_loses_no_acknowledged_event);

/// A port free at the moment of asking (the child binds it right after).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

struct Engine {
    child: Child,
    base: String,
}

impl Engine {
    async fn start(db: &TestDb, dir: &std::path::Path) -> Self {
        let port = free_port();
        let config = dir.join("signalbox.yaml");
        // A short lease so PostgreSQL hands the dead instance's events over quickly.
        std::fs::write(
            &config,
            "processing:\n  lease_seconds: 1\n  poll_interval_ms: 100\n",
        )
        .unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_signalbox"))
            .args([
                "serve",
                "--listen",
                &format!("127.0.0.1:{port}"),
                "--config",
            ])
            .arg(&config)
            .env("SIGNALBOX_DATABASE_URL", &db.url)
            .env("SIGNALBOX_RULES_DIR", dir.join("rules"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("engine binary starts");
        // Owned by `Engine` at once, so a failed start still kills and reaps the child.
        let engine = Self {
            child,
            base: format!("http://127.0.0.1:{port}"),
        };
        let client = reqwest::Client::new();
        for _ in 0..200 {
            if client
                .get(format!("{}/healthz", engine.base))
                .send()
                .await
                .is_ok()
            {
                return engine;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("engine did not answer /healthz within 10 s");
    }
}

impl Drop for Engine {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

mod cases {
    use super::*;

    pub async fn kill_9_loses_no_acknowledged_event(db: TestDb) {
        let dir = tempfile::tempdir().unwrap();
        let mut engine = Engine::start(&db, dir.path()).await;
        let acked: Arc<Mutex<Vec<(String, String)>>> = Arc::default();
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(5))
            .build()
            .unwrap();

        // 8 senders, each posting at most 2,000 events, stop at the first failed request.
        let senders: Vec<_> = (0..8)
            .map(|sender| {
                let (client, base, acked) = (client.clone(), engine.base.clone(), acked.clone());
                tokio::spawn(async move {
                    for i in 0..2000 {
                        let key = format!("k9-{sender}-{i}");
                        let Ok(response) = client
                            .post(format!("{base}/v1/events"))
                            .body(event_json(&key))
                            .send()
                            .await
                        else {
                            return;
                        };
                        if response.status() != 201 {
                            return;
                        }
                        let Ok(receipt) = response.json::<serde_json::Value>().await else {
                            return;
                        };
                        acked
                            .lock()
                            .unwrap()
                            .push((key, receipt["id"].as_str().unwrap().to_owned()));
                    }
                })
            })
            .collect();
        while acked.lock().unwrap().len() < 300 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        engine.child.kill().expect("SIGKILL");
        engine.child.wait().unwrap();
        for sender in senders {
            sender.await.unwrap();
        }
        let acked = acked.lock().unwrap().clone();
        assert!(acked.len() >= 300);

        let engine = Engine::start(&db, dir.path()).await;
        let store = signalbox::store::Store::open(&db.url, &Default::default())
            .await
            .unwrap();
        let (pending, processed) = crate::support::wait_processed(&store).await;
        assert_eq!(pending, 0);
        assert!(
            processed >= acked.len() as i64,
            "processed {processed} of {} acknowledged",
            acked.len()
        );
        for (key, id) in &acked {
            let event = store
                .get_event(id)
                .await
                .unwrap()
                .unwrap_or_else(|| panic!("acknowledged event {key} ({id}) lost"));
            assert_eq!(&event.event.source_event_id, key);
        }
        // A sender retrying after the crash is told the event is already there.
        let (key, id) = &acked[acked.len() - 1];
        let response = client
            .post(format!("{}/v1/events", engine.base))
            .body(event_json(key))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        assert_eq!(
            response.json::<serde_json::Value>().await.unwrap()["id"],
            id.as_str()
        );
        store.close().await;
    }
}
