//! The HTTP server: an accept loop handing each connection to hyper's HTTP/1 server with the
//! bounds of `server:` on it. (`axum::serve` has neither timeouts nor a connection limit.)
//!
//! - At most `max_connections` are served at once. Up to a quarter as many more are accepted
//!   and answered `503 {"code":"overloaded"}` with `Retry-After: 1` and `Connection: close`
//!   (`GET /healthz` with 200), so a sender beyond the limit is told to back off instead of
//!   waiting for a slot until it times out. Beyond those, the loop accepts nothing until a slot
//!   frees (the listen backlog holds further connections).
//! - hyper closes a connection whose request headers are not complete within
//!   `header_read_timeout` of the server starting to wait for them.
//! - A kept-alive connection with no request for `idle_timeout` after a response is closed.
//! - On shutdown: no more accepting; each connection finishes the request in hand and closes
//!   (idle ones at once); whatever is still open after `shutdown_timeout` is closed.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore, watch};
use tokio::time::Instant;
use tower::ServiceExt;

use super::limits::ServerConfig;

/// Where the server is in its life; connections watch it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Serving,
    /// Finish the request in hand, then close.
    Draining,
    /// Close now.
    Closing,
}

/// Serves `router` on `listener` until `shutdown` turns true, then stops as described above.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    config: ServerConfig,
    mut shutdown: watch::Receiver<bool>,
) -> std::io::Result<()> {
    let slots = u32::try_from(config.max_connections).unwrap_or(u32::MAX);
    let connections = Arc::new(Semaphore::new(slots as usize));
    let overflow = Arc::new(Semaphore::new(overflow_slots(slots as usize)));
    let (phase, phase_rx) = watch::channel(Phase::Serving);
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(config.header_read_timeout);
    let mut refusing = http.clone();
    refusing
        .keep_alive(false)
        .header_read_timeout(config.header_read_timeout.min(REFUSED_HEAD_WAIT));
    loop {
        // A slot to serve in if one is free, else one to refuse in; neither: wait for one.
        let slot = tokio::select! {
            biased;
            () = stopped(&mut shutdown) => break,
            slot = connections.clone().acquire_owned() => Slot::Serve(slot.expect("the semaphore is never closed")),
            slot = overflow.clone().acquire_owned() => Slot::Refuse(slot.expect("the semaphore is never closed")),
        };
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    accept_failed(&e).await;
                    continue;
                }
            },
            () = stopped(&mut shutdown) => break,
        };
        // A connection may have closed while this one was awaited.
        let slot = match slot {
            Slot::Refuse(spare) => match connections.clone().try_acquire_owned() {
                Ok(slot) => {
                    drop(spare);
                    Slot::Serve(slot)
                }
                Err(_) => Slot::Refuse(spare),
            },
            serve => serve,
        };
        match slot {
            Slot::Serve(slot) => {
                tokio::spawn(connection(
                    http.clone(),
                    stream,
                    peer,
                    router.clone(),
                    config.idle_timeout,
                    phase_rx.clone(),
                    slot,
                ));
            }
            Slot::Refuse(slot) => {
                tokio::spawn(refuse(refusing.clone(), stream, slot));
            }
        }
    }
    drop(listener);
    let _ = phase.send(Phase::Draining);
    // Every slot back means every connection has closed.
    if tokio::time::timeout(config.shutdown_timeout, connections.acquire_many(slots))
        .await
        .is_err()
    {
        tracing::warn!(
            open = slots as usize - connections.available_permits(),
            "closing connections still open after server.shutdown_timeout"
        );
        let _ = phase.send(Phase::Closing);
        let _ = connections.acquire_many(slots).await;
    }
    Ok(())
}

/// What an accepted connection holds: a slot to be served in, or one to be refused in.
enum Slot {
    Serve(OwnedSemaphorePermit),
    Refuse(OwnedSemaphorePermit),
}

/// How many connections beyond `max_connections` are answered 503 at once: a quarter more,
/// at least one. Each holds a descriptor for one short exchange (bounded by
/// [`REFUSED_HEAD_WAIT`] and [`REFUSED_DRAIN_WAIT`]).
fn overflow_slots(max_connections: usize) -> usize {
    (max_connections / 4).max(1)
}

/// The longest a refused connection waits for its request head (`header_read_timeout` if
/// shorter), so refused connections also end soon after the server stops.
const REFUSED_HEAD_WAIT: Duration = Duration::from_secs(5);

/// After answering a refused connection, how long what its sender still sends (the rest of
/// a body) is read and dropped before closing, and how many bytes at most: closing with
/// unread bytes would send a reset, which may reach the sender before the answer does.
const REFUSED_DRAIN_WAIT: Duration = Duration::from_secs(1);
const REFUSED_DRAIN_BYTES: usize = 64 * 1024;

/// Answers the first request of a connection beyond `max_connections` at once with 503
/// `overloaded`, `Retry-After: 1` and `Connection: close` (nothing is routed, read or stored),
/// then closes it. `GET /healthz` is answered 200: the process is alive, only busy.
async fn refuse(
    http: hyper::server::conn::http1::Builder,
    stream: TcpStream,
    _slot: OwnedSemaphorePermit,
) {
    use axum::response::IntoResponse;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let service = hyper::service::service_fn(|request: hyper::Request<Incoming>| async move {
        let mut response =
            if request.method() == hyper::Method::GET && request.uri().path() == "/healthz" {
                super::health::healthz().await.into_response()
            } else {
                metrics::counter!("signalbox_connections_refused_total").increment(1);
                crate::error::ApiError::Overloaded {
                    what: "too many connections open",
                }
                .into_response()
            };
        response.headers_mut().insert(
            hyper::header::CONNECTION,
            hyper::header::HeaderValue::from_static("close"),
        );
        Ok::<_, std::convert::Infallible>(response)
    });
    let parts = match http
        .serve_connection(TokioIo::new(stream), service)
        .without_shutdown()
        .await
    {
        Ok(parts) => parts,
        Err(e) => {
            tracing::debug!(error = %e, "refused connection closed with an error");
            return;
        }
    };
    let mut stream = parts.io.into_inner();
    // The answer is complete (FIN); then what is still coming is read and dropped.
    let _ = stream.shutdown().await;
    let _ = tokio::time::timeout(REFUSED_DRAIN_WAIT, async {
        let mut buf = [0u8; 8192];
        let mut drained = parts.read_buf.len();
        while drained < REFUSED_DRAIN_BYTES {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => drained += n,
            }
        }
    })
    .await;
}

/// Errors of one connection (reset before accepted) are nothing; others (out of file
/// descriptors) are logged and waited out a little, so the loop does not spin.
async fn accept_failed(e: &std::io::Error) {
    use std::io::ErrorKind::{ConnectionAborted, ConnectionRefused, ConnectionReset};
    if matches!(
        e.kind(),
        ConnectionAborted | ConnectionRefused | ConnectionReset
    ) {
        return;
    }
    tracing::error!(error = %e, "cannot accept a connection");
    tokio::time::sleep(Duration::from_millis(100)).await;
}

/// Serves one connection until it ends, idles too long, or the server stops. Each request
/// carries the peer's address as `ConnectInfo<SocketAddr>` (what `api::ClientAddr` reads).
async fn connection(
    http: hyper::server::conn::http1::Builder,
    stream: TcpStream,
    peer: SocketAddr,
    router: Router,
    idle_timeout: Duration,
    mut phase: watch::Receiver<Phase>,
    _slot: OwnedSemaphorePermit,
) {
    let activity = Arc::new(Activity::default());
    let service = {
        let activity = activity.clone();
        hyper::service::service_fn(move |mut request: hyper::Request<Incoming>| {
            let in_flight = activity.begin();
            let router = router.clone();
            request.extensions_mut().insert(ConnectInfo(peer));
            async move {
                let response = router.oneshot(request.map(axum::body::Body::new)).await;
                drop(in_flight);
                response
            }
        })
    };
    let conn = http.serve_connection(TokioIo::new(stream), service);
    tokio::pin!(conn);
    let mut closing = false;
    loop {
        let idle_deadline = activity.idle_since().map(|since| since + idle_timeout);
        tokio::select! {
            result = conn.as_mut() => {
                if let Err(e) = result {
                    tracing::debug!(error = %e, "connection closed with an error");
                }
                return;
            }
            () = activity.changed.notified() => {}
            () = sleep_until(idle_deadline), if !closing => {
                conn.as_mut().graceful_shutdown();
                closing = true;
            }
            changed = phase.changed() => {
                let now = *phase.borrow_and_update();
                if changed.is_err() || now == Phase::Closing {
                    return;
                }
                if now == Phase::Draining && !closing {
                    conn.as_mut().graceful_shutdown();
                    closing = true;
                }
            }
        }
    }
}

async fn stopped(shutdown: &mut watch::Receiver<bool>) {
    let _ = shutdown.wait_for(|stop| *stop).await;
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}

/// Requests in flight on one connection, and since when it has been idle after a response.
#[derive(Default)]
struct Activity {
    state: Mutex<(usize, Option<Instant>)>,
    changed: Notify,
}

impl Activity {
    fn begin(self: &Arc<Self>) -> InFlight {
        {
            let mut state = self.state.lock().expect("no panic while held");
            state.0 += 1;
            state.1 = None;
        }
        self.changed.notify_one();
        InFlight(self.clone())
    }

    fn idle_since(&self) -> Option<Instant> {
        self.state.lock().expect("no panic while held").1
    }
}

/// A request being handled; dropping it (answered or cancelled) ends it.
struct InFlight(Arc<Activity>);

impl Drop for InFlight {
    fn drop(&mut self) {
        {
            let mut state = self.0.state.lock().expect("no panic while held");
            state.0 -= 1;
            if state.0 == 0 {
                state.1 = Some(Instant::now());
            }
        }
        self.0.changed.notify_one();
    }
}
