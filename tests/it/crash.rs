//! A real `signalbox serve` process is killed with SIGKILL while senders post to it; after a
//! restart every acknowledged event is there, exactly once, and gets processed. Killed while
//! delivering, every planned action still arrives; killed while a check and a delayed action
//! wait, both come due after the restart, once each.

use std::process::Child;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::support::{TestDb, event_json};

crate::on_both_backends!(cases:
    kill_9_loses_no_acknowledged_event,
    kill_9_while_delivering_then_restart_delivers_every_action,
    pending_checks_and_delayed_actions_survive_kill_9_and_fire_once,
);

/// A port free at the moment of asking (the child binds it right after).
struct Engine {
    child: Child,
    base: String,
}

impl Engine {
    async fn start(db: &TestDb, dir: &std::path::Path) -> Self {
        // A short lease so PostgreSQL hands the dead instance's events over quickly.
        Self::start_with(
            db,
            dir,
            "processing:\n  lease: 1s\n  poll_interval: 100ms\n",
        )
        .await
    }

    async fn start_with(db: &TestDb, dir: &std::path::Path, config_yaml: &str) -> Self {
        let (child, port) = crate::support::spawn_engine(dir, &db.url, config_yaml);
        // Owned by `Engine` at once, so a failed start still kills and reaps the child.
        let engine = Self {
            child,
            base: format!("http://127.0.0.1:{port}"),
        };
        crate::support::wait_healthy(&engine.base).await;
        engine
    }
}

impl Drop for Engine {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

mod cases {
    pub(super) use super::delivery_cases::kill_9_while_delivering_then_restart_delivers_every_action;
    pub(super) use super::time_cases::pending_checks_and_delayed_actions_survive_kill_9_and_fire_once;

    use super::*;

    pub(super) async fn kill_9_loses_no_acknowledged_event(db: TestDb) {
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

mod delivery_cases {
    use std::collections::BTreeSet;

    use super::*;
    use crate::support::{Answer, Receiver};

    /// Every planned webhook reaches a target that dedupes by Idempotency-Key, even though the
    /// engine was killed with SIGKILL while delivering.
    pub(super) async fn kill_9_while_delivering_then_restart_delivers_every_action(db: TestDb) {
        let receiver = Receiver::start().await;
        // Slow answers keep deliveries in flight when the kill comes.
        receiver.answer(
            &[Answer {
                status: 200,
                retry_after: None,
                delay: Duration::from_millis(50),
            }; 400],
        );
        let dir = tempfile::tempdir().unwrap();
        crate::rules::write_rules(
            &dir.path().join("rules"),
            &[(
                "hook.yaml",
                &format!(
                    "version: 1\nid: hook\non: [promise_to_pay.expired]\nactions: [{{type: webhook, url: '{}/{{{{ event.source_event_id }}}}'}}]\n",
                    receiver.url
                ),
            )],
        );
        let config = "processing:\n  lease: 1s\n  poll_interval: 100ms\nactions:\n  lease: 1s\n  poll_interval: 100ms\n  workers: 8\n  webhook:\n    allowed_hosts: [127.0.0.1]\n    retry: { initial_delay: 100ms, max_delay: 1s, max_attempts: 20 }\n";
        let mut engine = Engine::start_with(&db, dir.path(), config).await;
        let client = reqwest::Client::new();
        for i in 0..200 {
            let response = client
                .post(format!("{}/v1/events", engine.base))
                .body(event_json(&format!("d-{i}")))
                .send()
                .await
                .unwrap();
            assert_eq!(response.status(), 201);
        }
        // Kill it once some deliveries are done and others are in flight.
        receiver.wait_for(20).await;
        engine.child.kill().expect("SIGKILL");
        engine.child.wait().unwrap();
        let before_restart = receiver.received().len();
        assert!(
            before_restart < 200,
            "the kill came before everything was delivered ({before_restart})"
        );

        let _engine = Engine::start_with(&db, dir.path(), config).await;
        let mut keys = BTreeSet::new();
        for _ in 0..600 {
            keys = receiver
                .received()
                .iter()
                .map(|r| r.headers["idempotency-key"].clone())
                .collect();
            if keys.len() == 200 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert_eq!(
            keys.len(),
            200,
            "every planned action delivered, each with its own stable key"
        );
        let paths: BTreeSet<String> = receiver.received().iter().map(|r| r.path.clone()).collect();
        assert_eq!(paths.len(), 200, "one action per event");
    }
}

mod time_cases {
    use std::time::Instant;

    use serde_json::{Value, json};

    use super::*;
    use crate::support::Receiver;

    const CONFIG: &str = "processing:\n  lease: 1s\n  poll_interval: 100ms\nactions:\n  lease: 1s\n  poll_interval: 100ms\n  webhook:\n    allowed_hosts: [127.0.0.1]\n    retry: { initial_delay: 100ms, max_delay: 1s, max_attempts: 20 }\n";

    /// Polls `done` every 50 ms for at most 30 s (a wait for work, not for a window).
    async fn until<F: std::future::Future<Output = bool>>(what: &str, mut done: impl FnMut() -> F) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if done().await {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("timed out after 30 s waiting until {what}");
    }

    async fn get(client: &reqwest::Client, url: String) -> Value {
        match client.get(url).send().await {
            Ok(response) if response.status() == 200 => response.json().await.unwrap_or_default(),
            _ => Value::Null,
        }
    }

    /// An `unless:` check and a delayed action (`at:`), both due about 2 s after the event,
    /// are stored when the engine is killed with SIGKILL before they come due. The restarted
    /// engine fires the check and runs the action, each exactly once.
    pub(super) async fn pending_checks_and_delayed_actions_survive_kill_9_and_fire_once(
        db: TestDb,
    ) {
        let receiver = Receiver::start().await;
        let dir = tempfile::tempdir().unwrap();
        let unkept = format!(
            "version: 1\nid: unkept\non: [promise_to_pay.created]\nunless:\n  event: payment.received\n  same: claim\n  from: \"{{{{ event.data.due }}}}\"\n  within: 0s\nactions:\n  - type: webhook\n    url: \"{}/unkept/{{{{ event.subject.claim }}}}\"\n",
            receiver.url
        );
        let remind = format!(
            "version: 1\nid: remind\non: [promise_to_pay.created]\nactions:\n  - type: webhook\n    url: \"{}/remind/{{{{ event.subject.claim }}}}\"\n    at: \"{{{{ event.data.due }}}}\"\n",
            receiver.url
        );
        crate::rules::write_rules(
            &dir.path().join("rules"),
            &[("unkept.yaml", &unkept), ("remind.yaml", &remind)],
        );
        let mut engine = Engine::start_with(&db, dir.path(), CONFIG).await;
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(5))
            .build()
            .unwrap();
        let due = (chrono::Utc::now() + chrono::Duration::seconds(2))
            .to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
        let event = json!({
            "type": "promise_to_pay.created", "source": "receeve", "source_event_id": "p-k9",
            "subject": {"claim": "C-9"}, "amount": {"value": "100.00", "currency": "EUR"},
            "data": {"due": due}
        });
        let response = client
            .post(format!("{}/v1/events", engine.base))
            .body(event.to_string())
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 201);

        // Kill it once both are stored and waiting (well before they come due, on a quiet
        // machine; a loaded one may get there late, and then the kill finds them mid-way).
        let base = engine.base.clone();
        until("the check is pending and the action planned", || {
            let (client, base) = (client.clone(), base.clone());
            async move {
                let checks = get(&client, format!("{base}/v1/checks?status=pending")).await;
                let actions = get(&client, format!("{base}/v1/actions?status=pending")).await;
                checks["checks"].as_array().is_some_and(|c| c.len() == 1)
                    && actions["actions"].as_array().is_some_and(|a| a.len() == 1)
            }
        })
        .await;
        let early = chrono::Utc::now() < due.parse::<chrono::DateTime<chrono::Utc>>().unwrap();
        engine.child.kill().expect("SIGKILL");
        engine.child.wait().unwrap();
        if !early {
            eprintln!("note: the machine is slow; the kill came after the due time");
        }

        let engine = Engine::start_with(&db, dir.path(), CONFIG).await;
        receiver.wait_for(2).await;
        // A few more poll rounds of the timer and the dispatcher: nothing runs twice.
        tokio::time::sleep(Duration::from_millis(500)).await;
        let mut paths: Vec<String> = receiver.received().into_iter().map(|r| r.path).collect();
        paths.sort();
        assert_eq!(paths, ["/remind/C-9", "/unkept/C-9"], "each exactly once");
        let base = engine.base.clone();
        until("the check is fired", || {
            let (client, base) = (client.clone(), base.clone());
            async move {
                let checks = get(&client, format!("{base}/v1/checks")).await;
                checks["checks"]
                    .as_array()
                    .is_some_and(|c| c.len() == 1 && c[0]["status"] == "fired")
            }
        })
        .await;
        let actions = get(&client, format!("{}/v1/actions", engine.base)).await;
        let statuses: Vec<&str> = actions["actions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a["status"].as_str().unwrap())
            .collect();
        assert_eq!(statuses, ["delivered", "delivered"], "{actions}");
    }
}
