//! The real `signalbox serve` binary under hostile load: memory stays bounded under concurrent
//! maximum-size batches and large list requests (peak RSS read from `/proc/<pid>/status`); idle
//! and slow connections are closed while real requests are answered; SIGTERM stops it with
//! such connections open.

use std::process::{Child, Command};
use std::time::Duration;

/// A port free at the moment of asking (the child binds it right after).
/// A `signalbox serve` process on a loopback port with its own SQLite file and empty rules.
pub(crate) struct Binary {
    pub child: Child,
    pub base: String,
    pub addr: std::net::SocketAddr,
    pub db_url: String,
    _dir: tempfile::TempDir,
}

impl Binary {
    pub(crate) async fn start(config_yaml: &str) -> Self {
        crate::support::init();
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("rules")).unwrap();
        let db_url = format!("sqlite://{}", dir.path().join("signalbox.db").display());
        let (child, port) = crate::support::spawn_engine(dir.path(), &db_url, config_yaml);
        let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
        let binary = Self {
            child,
            base: format!("http://{addr}"),
            addr,
            db_url,
            _dir: dir,
        };
        crate::support::wait_healthy(&binary.base).await;
        binary
    }

    /// The engine's store, opened alongside it.
    pub(crate) async fn store(&self) -> signalbox::store::Store {
        signalbox::store::Store::open(&self.db_url, &Default::default())
            .await
            .expect("the engine's store opens")
    }

    /// Peak resident memory of the process so far, in MiB (`VmHWM`).
    pub(crate) fn peak_rss_mib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .expect("the engine is running");
        let kib: u64 = status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .expect("VmHWM in /proc/<pid>/status");
        kib / 1024
    }
}

impl Drop for Binary {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A JSON array of canonical events, each carrying `note` bytes of data, just under `max` bytes.
fn batch(prefix: &str, note: usize, max: usize) -> String {
    let filler = "x".repeat(note);
    let mut body = String::from("[");
    for i in 0.. {
        let event = serde_json::json!({
            "type": "payment.received",
            "source_event_id": format!("{prefix}-{i}"),
            "subject": { "claim": format!("C-{i}") },
            "data": { "note": filler },
        })
        .to_string();
        if body.len() + event.len() + 2 > max {
            break;
        }
        if i > 0 {
            body.push(',');
        }
        body.push_str(&event);
    }
    body.push(']');
    body
}

/// A client that opens a connection per request: the engine closes kept-alive connections
/// after `server.idle_timeout`, and a pooled one reused just then would fail the request.
fn fresh_connections() -> reqwest::Client {
    reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .build()
        .unwrap()
}

/// 32 senders post maximum-size (1 MiB) batches at once, two rounds, at the default limits.
/// Unbounded (before `server.ingest_bytes_in_flight`; the same load, debug build), peak RSS
/// went from 35 to 618 MiB (701 MiB with four rounds); now about 8 batches are in flight at
/// once and it stays at 190 to 240 MiB, hence the 400 MiB bound. Every batch answered 2xx is
/// stored; the others are answered 503 with `Retry-After`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_maximum_size_batches_keep_peak_memory_bounded() {
    let engine = Binary::start("{}\n").await;
    let client = fresh_connections();
    let mut stored = 0;
    let mut statuses = std::collections::BTreeMap::<u16, usize>::new();
    for round in 0..2 {
        let posts: Vec<_> = (0..32)
            .map(|sender| {
                let (client, base) = (client.clone(), engine.base.clone());
                tokio::spawn(async move {
                    let body = batch(&format!("r{round}-s{sender}"), 200, 1 << 20);
                    let response = client
                        .post(format!("{base}/v1/events"))
                        .body(body)
                        .send()
                        .await
                        .unwrap_or_else(|e| panic!("{e:?}"));
                    let status = response.status().as_u16();
                    let retry_after = response.headers().get("retry-after").cloned();
                    let answer: serde_json::Value = response.json().await.unwrap();
                    (status, retry_after, answer)
                })
            })
            .collect();
        for post in posts {
            let (status, retry_after, answer) = post.await.unwrap();
            *statuses.entry(status).or_default() += 1;
            match status {
                200 => stored += answer["stored"].as_i64().unwrap(),
                503 => {
                    assert_eq!(answer["code"], "overloaded", "{answer}");
                    assert_eq!(retry_after.unwrap(), "1");
                }
                other => panic!("{other}: {answer}"),
            }
        }
    }
    let peak = engine.peak_rss_mib();
    eprintln!("batches: peak {peak} MiB, statuses {statuses:?}");
    assert!(statuses.contains_key(&503), "{statuses:?}");
    assert!(peak < 400, "peak RSS {peak} MiB");
    let (pending, processed) = engine.store().await.count_events().await.unwrap();
    assert_eq!(
        pending + processed,
        stored,
        "a 2xx means stored; nothing else is"
    );
}

/// Eight clients list 1000 events at once, each event about 100 KB, twice. Unbounded (all 600
/// events with raw payloads, a 60 MB answer each), peak RSS went from about 70 to 1154-1216
/// MiB; now each page stops past `server.max_page_bytes` (1 MiB) and it stays at 80 to 90 MiB,
/// hence the 250 MiB bound.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_list_requests_keep_peak_memory_bounded() {
    let engine = Binary::start("{}\n").await;
    let client = fresh_connections();
    for chunk in 0..30 {
        let body = batch(&format!("big-{chunk}"), 50_000, 1 << 20);
        let response = client
            .post(format!("{}/v1/events", engine.base))
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
    }
    let seeded = engine.peak_rss_mib();
    let mut sizes = Vec::new();
    for _ in 0..2 {
        let lists: Vec<_> = (0..8)
            .map(|_| {
                let (client, base) = (client.clone(), engine.base.clone());
                tokio::spawn(async move {
                    let response = client
                        .get(format!("{base}/v1/events?limit=1000"))
                        .send()
                        .await
                        .expect("answered");
                    assert_eq!(response.status(), 200);
                    let page = response.bytes().await.unwrap();
                    let json: serde_json::Value = serde_json::from_slice(&page).unwrap();
                    assert!(json["next_before"].is_string(), "more follow");
                    page.len()
                })
            })
            .collect();
        for list in lists {
            sizes.push(list.await.unwrap());
        }
    }
    let peak = engine.peak_rss_mib();
    eprintln!("lists: after seeding {seeded} MiB, peak {peak} MiB, page bytes {sizes:?}");
    assert!(
        sizes.iter().all(|&n| n < (1 << 20) + 100_000),
        "a page passes 1 MiB by at most one event: {sizes:?}"
    );
    assert!(peak < 250, "peak RSS {peak} MiB");
}

/// Sends SIGTERM and waits (at most 30 s) for the process to exit; its exit status.
async fn terminate(engine: &mut Binary) -> std::process::ExitStatus {
    let pid = engine.child.id().to_string();
    let sent = Command::new("kill").args(["-TERM", &pid]).status().unwrap();
    assert!(sent.success(), "kill -TERM {pid}");
    for _ in 0..600 {
        if let Some(status) = engine.child.try_wait().unwrap() {
            return status;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the engine did not stop within 30 s of SIGTERM");
}

/// Opens `n` connections that send nothing.
async fn idle_connections(addr: std::net::SocketAddr, n: usize) -> Vec<tokio::net::TcpStream> {
    let mut streams = Vec::new();
    for _ in 0..n {
        streams.push(tokio::net::TcpStream::connect(addr).await.unwrap());
    }
    streams
}

/// Opens `n` slowloris connections: a request head sent a line at a time, never finished,
/// each line as soon as the previous was written, until the server closes the connection.
async fn slowloris(addr: std::net::SocketAddr, n: usize) -> Vec<tokio::task::JoinHandle<()>> {
    use tokio::io::AsyncWriteExt;
    let mut tasks = Vec::new();
    for _ in 0..n {
        let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
        stream
            .write_all(b"POST /v1/events HTTP/1.1\r\nHost: 127.0.0.1\r\n")
            .await
            .unwrap();
        tasks.push(tokio::spawn(async move {
            for i in 0.. {
                let line = format!("X-Slow-{i}: a\r\n");
                if stream.write_all(line.as_bytes()).await.is_err() {
                    return;
                }
                // One header line per 50 ms, as slowloris does, so it never completes.
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }));
    }
    tasks
}

/// Connections beyond `server.max_connections` (16): 40 idle, 16 slowloris and 8 with a body
/// that stops. Short timeouts (200 ms) make the engine close each of them; a legitimate
/// request made meanwhile is answered, and so is a kept-alive connection's second request
/// before it idles out. Before the limits, every such connection stayed open for good and,
/// past the descriptor limit, no request was answered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_and_slow_connections_are_closed_and_real_requests_answered() {
    use crate::limits::{partial_request, post_head, read_until_closed};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let engine = Binary::start(
        "server:\n  max_connections: 16\n  header_read_timeout: 200ms\n  idle_timeout: 200ms\n  body_read_timeout: 200ms\n",
    )
    .await;
    let mut idle = idle_connections(engine.addr, 40).await;
    let slow = slowloris(engine.addr, 16).await;
    let mut stalled_bodies = Vec::new();
    for _ in 0..8 {
        stalled_bodies.push(partial_request(engine.addr, &post_head(500), b"{\"type\"").await);
    }

    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .pool_max_idle_per_host(0)
        .build()
        .unwrap();
    // While every slot is held, a request is told at once to come back (503, Retry-After),
    // as a sender does; the short timeouts free slots soon.
    let mut refused = 0;
    let response = loop {
        let response = client
            .post(format!("{}/v1/events", engine.base))
            .body(crate::support::event_json("legit-1"))
            .send()
            .await
            .expect("a real request is answered despite the idle and slow connections");
        if response.status() != 503 || refused == 100 {
            break response;
        }
        assert_eq!(response.headers()["retry-after"], "1");
        refused += 1;
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(response.status(), 201);

    for stream in &mut idle {
        let (status, text) = read_until_closed(stream).await;
        assert!(status.is_none() || status == Some(408), "{text}");
    }
    for task in slow {
        tokio::time::timeout(Duration::from_secs(30), task)
            .await
            .expect("the server closes slowloris connections")
            .unwrap();
    }
    for stream in &mut stalled_bodies {
        // 408 when served and timed out, 503 when beyond the limit and refused at once.
        let (status, text) = read_until_closed(stream).await;
        assert!(matches!(status, Some(408 | 503)), "{text}");
    }

    // A kept-alive connection: two requests, then closed by the server once idle.
    let mut kept = tokio::net::TcpStream::connect(engine.addr).await.unwrap();
    for _ in 0..2 {
        kept.write_all(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            .await
            .unwrap();
        let mut buf = [0u8; 1024];
        let n = kept.read(&mut buf).await.unwrap();
        assert!(
            buf[..n].starts_with(b"HTTP/1.1 200"),
            "kept alive between requests"
        );
    }
    let (status, rest) = read_until_closed(&mut kept).await;
    assert_eq!(
        status, None,
        "closed after idle_timeout with nothing more: {rest}"
    );
}

/// A connection beyond `server.max_connections` (4, all held by idle connections under long
/// timeouts) is answered at once: 503 `overloaded` with `Retry-After: 1`, then closed, and
/// counted; `/healthz` there is answered 200. Before, it waited in the listen backlog until the sender timed out. Once a slot
/// frees, the next connection is served.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_beyond_the_limit_is_answered_503_at_once_not_left_waiting() {
    use crate::limits::{post_head, read_until_closed};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let engine = Binary::start(
        "server:\n  max_connections: 4\n  header_read_timeout: 1h\n  idle_timeout: 1h\n",
    )
    .await;
    // Four kept-alive connections, each shown to be served (a refused one is answered 503
    // and closed: the start's health check may still hold its slot for a moment).
    let mut idle = Vec::new();
    for _ in 0..100 {
        if idle.len() == 4 {
            break;
        }
        let mut stream = tokio::net::TcpStream::connect(engine.addr).await.unwrap();
        stream
            .write_all(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            .await
            .unwrap();
        let mut buf = [0u8; 1024];
        let n = stream.read(&mut buf).await.unwrap();
        if buf[..n].starts_with(b"HTTP/1.1 200") {
            idle.push(stream);
        }
    }
    assert_eq!(idle.len(), 4, "four connections served and kept open");

    let body = crate::support::event_json("over-the-limit");
    let mut extra = tokio::net::TcpStream::connect(engine.addr).await.unwrap();
    extra
        .write_all(post_head(body.len()).as_bytes())
        .await
        .unwrap();
    extra.write_all(body.as_bytes()).await.unwrap();
    let (status, text) = read_until_closed(&mut extra).await;
    assert_eq!(status, Some(503), "{text}");
    let head = text.to_ascii_lowercase();
    assert!(head.contains("retry-after: 1\r\n"), "{text}");
    assert!(head.contains("connection: close\r\n"), "{text}");
    assert!(text.contains(r#""code":"overloaded""#), "{text}");
    // A liveness probe beyond the limit still hears that the process is alive.
    let mut probe = tokio::net::TcpStream::connect(engine.addr).await.unwrap();
    probe
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        .await
        .unwrap();
    let (status, text) = read_until_closed(&mut probe).await;
    assert_eq!(status, Some(200), "{text}");
    assert!(
        text.to_ascii_lowercase().contains("connection: close\r\n"),
        "{text}"
    );

    // One slot frees: the next connection is served, and nothing of the refused one was stored.
    drop(idle.pop());
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap();
    let mut served = None;
    for _ in 0..100 {
        // The engine may not have seen the close yet: then this one is refused too.
        let response = client
            .get(format!("{}/metrics", engine.base))
            .send()
            .await
            .unwrap();
        if response.status() == 200 {
            served = Some(response.text().await.unwrap());
            break;
        }
        assert_eq!(response.status(), 503);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let metrics = served.expect("served once a slot freed");
    let refused: u64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("signalbox_connections_refused_total "))
        .expect("the refusal is counted")
        .parse()
        .unwrap();
    assert!(refused >= 1, "{metrics}");
    let (pending, processed) = engine.store().await.count_events().await.unwrap();
    assert_eq!(pending + processed, 0, "the refused request stored nothing");
}

/// SIGTERM stops the engine with connections open: idle ones (closed at once, default
/// settings), and slow ones under long timeouts (closed after `server.shutdown_timeout`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_stops_the_engine_with_idle_and_slow_connections_open() {
    use crate::limits::{partial_request, post_head};
    let mut engine = Binary::start("{}\n").await;
    let _idle = idle_connections(engine.addr, 50).await;
    // Wait until the engine answers, so the idle connections are accepted before SIGTERM.
    let client = reqwest::Client::new();
    let health = client.get(format!("{}/healthz", engine.base)).send().await;
    assert_eq!(health.unwrap().status(), 200);
    assert!(terminate(&mut engine).await.success());

    let mut engine = Binary::start(
        "server:\n  header_read_timeout: 1h\n  idle_timeout: 1h\n  body_read_timeout: 1h\n  shutdown_timeout: 200ms\n",
    )
    .await;
    let _idle = idle_connections(engine.addr, 20).await;
    let _slow = slowloris(engine.addr, 10).await;
    let _stalled = partial_request(engine.addr, &post_head(500), b"{").await;
    let health = client.get(format!("{}/healthz", engine.base)).send().await;
    assert_eq!(health.unwrap().status(), 200);
    assert!(terminate(&mut engine).await.success());
}
