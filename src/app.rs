//! Wires the engine together: store, writer, processor, dispatcher, retention job and HTTP
//! server. `main` and the tests
//! both start the engine through [`start`].

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::sync::{Notify, watch};
use tokio::task::JoinHandle;

use crate::actions::Executors;
use crate::api::{AppState, Limits, public_router, router};
use crate::auth::Tokens;
use crate::clock::{SharedClock, SystemClock};
use crate::config::Config;
use crate::health::Health;
use crate::outbox::worker::Dispatcher;
use crate::processor::Processor;
use crate::providers::Registry;
use crate::rules::live::LiveRules;
use crate::store::writer::Writer;
use crate::store::{Store, StoreError};

/// A running engine.
pub struct App {
    /// Where the management listener listens (useful when bound to port 0).
    pub addr: SocketAddr,
    /// Where the public listener listens, if there is one (`public_listen`).
    pub public_addr: Option<SocketAddr>,
    pub store: Store,
    pub rules: Arc<LiveRules>,
    shutdown: watch::Sender<bool>,
    server: JoinHandle<std::io::Result<()>>,
    public_server: Option<JoinHandle<std::io::Result<()>>>,
    writer: JoinHandle<()>,
    processor: JoinHandle<()>,
    dispatcher: JoinHandle<()>,
    pruner: JoinHandle<()>,
    timer: JoinHandle<()>,
    watcher: JoinHandle<()>,
}

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    #[error("the rules have problems:\n{}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n"))]
    Rules(Vec<crate::rules::RuleError>),
    #[error("actions: {0}")]
    Actions(String),
    #[error("cannot read the listening address: {0}")]
    Listener(std::io::Error),
    #[error("cannot listen on {addr} (public_listen): {source}")]
    PublicListener {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error(
        "the API would answer anyone on {0} without a token: create one (`signalbox tokens create NAME --role admin`) or list some under `tokens:` in the config, listen on 127.0.0.1, or set `allow_unauthenticated: true` if something in front of Signalbox checks who calls"
    )]
    Unprotected(SocketAddr),
    #[error("http server failed: {0}")]
    Server(std::io::Error),
    #[error("a task of the engine failed: {0}")]
    Task(#[from] tokio::task::JoinError),
}

/// Opens the store (migrating it) and starts serving on `listener`.
pub async fn start(config: &Config, listener: TcpListener) -> Result<App, AppError> {
    let store = Store::open(&config.database_url, &config.store).await?;
    start_with_store(config, listener, store, SystemClock::shared()).await
}

/// Starts serving with an already opened store, on `clock` (tests pass a manual one).
pub async fn start_with_store(
    config: &Config,
    listener: TcpListener,
    store: Store,
    clock: SharedClock,
) -> Result<App, AppError> {
    let addr = listener.local_addr().map_err(AppError::Listener)?;
    // Before anything counts: what is counted before the recorder exists is lost.
    crate::metrics::handle();
    let providers = Registry::from_config(&config.sources)?;
    // Broken rule files never stop intake: the last good set runs, or evaluation waits.
    let rules = LiveRules::start(
        &config.rules_dir,
        clock.clone(),
        config.rule_tests_must_pass,
        &store,
        config.calendars()?,
    )
    .await;
    let status = rules.status();
    if status.rules == 0 {
        tracing::warn!(dir = %config.rules_dir.display(), "no rules: events are stored and processed, nothing fires");
    } else {
        tracing::info!(dir = %config.rules_dir.display(), rules = status.rules, files = status.files, "rules loaded");
    }
    let tokens = Arc::new(Tokens::load(&config.tokens, store.clone(), clock.clone()).await?);
    if tokens.open() {
        if !addr.ip().is_loopback() && !config.allow_unauthenticated {
            return Err(AppError::Unprotected(addr));
        }
        tracing::warn!(%addr, "no API tokens: every endpoint of the management listener answers without a token (create one with `signalbox tokens create`)");
    }
    let public =
        match config.public_listen {
            Some(public) => Some(TcpListener::bind(public).await.map_err(|source| {
                AppError::PublicListener {
                    addr: public,
                    source,
                }
            })?),
            None => None,
        };
    let public_addr = match &public {
        Some(listener) => Some(listener.local_addr().map_err(AppError::Listener)?),
        None => None,
    };
    let (shutdown, shutdown_rx) = watch::channel(false);
    let health = Arc::new(Health::default());
    let stored = Arc::new(Notify::new());
    let planned = Arc::new(Notify::new());
    let executors = Executors::new(
        store.clone(),
        config.actions.clone(),
        stored.clone(),
        clock.clone(),
    )
    .map_err(AppError::Actions)?;
    let dispatcher = Dispatcher::new(
        store.clone(),
        Arc::new(executors),
        config.actions.clone(),
        planned,
        clock.clone(),
    );
    let timer = crate::timer::Timer::new(
        store.clone(),
        rules.clone(),
        clock.clone(),
        stored.clone(),
        config.processing.poll_interval,
    );
    let timer = {
        let shutdown = shutdown_rx.clone();
        supervise("timer", health.clone(), shutdown_rx.clone(), move || {
            timer.clone().run(shutdown.clone())
        })
    };
    let processor = Processor::new(
        store.clone(),
        rules.clone(),
        config.processing.clone(),
        stored.clone(),
        Some(&dispatcher),
        clock.clone(),
        health.clone(),
    );
    // Stages hand their work on in memory: ingestion to the processor, the processor to the
    // dispatcher (crate::handoff); the store is the record they recover from.
    let (writer, writer_task) = Writer::spawn(
        store.clone(),
        stored,
        Some(processor.intake()),
        health.clone(),
    );
    let processor = {
        let shutdown = shutdown_rx.clone();
        supervise(
            "processor",
            health.clone(),
            shutdown_rx.clone(),
            move || processor.clone().run(shutdown.clone()),
        )
    };
    let dispatcher = {
        let shutdown = shutdown_rx.clone();
        supervise(
            "dispatcher",
            health.clone(),
            shutdown_rx.clone(),
            move || dispatcher.clone().run(shutdown.clone()),
        )
    };
    let pruner = {
        let (store, retention, clock) = (store.clone(), config.retention.clone(), clock.clone());
        let shutdown = shutdown_rx.clone();
        supervise(
            "retention",
            health.clone(),
            shutdown_rx.clone(),
            move || {
                crate::store::retention::run(
                    store.clone(),
                    retention.clone(),
                    clock.clone(),
                    shutdown.clone(),
                )
            },
        )
    };
    let watcher = rules.clone().watch(store.clone(), shutdown_rx.clone());

    let state = AppState {
        store: store.clone(),
        writer,
        providers: Arc::new(providers),
        rules: rules.clone(),
        limits: Limits::new(&config.server, config.max_body_bytes),
        clock,
        health,
        max_lag: config.processing.max_lag,
        rejections: Arc::new(crate::api::rejections::Rejections::new(
            &config.retention.rejected,
        )),
        tokens,
        metrics_token: config.metrics.token_hash(),
    };
    let public_server = public.map(|listener| {
        tokio::spawn(crate::api::serve(
            listener,
            // Its own ingestion budget and request limit: what anyone on the internet holds
            // there never starves the management listener's ingestion.
            public_router(AppState {
                limits: Limits::new(&config.server, config.max_body_bytes),
                ..state.clone()
            }),
            config.server.clone(),
            shutdown_rx.clone(),
        ))
    });
    let server = tokio::spawn(crate::api::serve(
        listener,
        router(state),
        config.server.clone(),
        shutdown_rx,
    ));
    tracing::info!(%addr, store = store.backend_name(), "signalbox listening (management: API, webhooks)");
    if let Some(public) = public_addr {
        tracing::info!(addr = %public, "public listener: POST /webhooks/{{source}} and /healthz, /readyz only");
    }
    let metrics = if config.metrics.token.is_some() {
        ""
    } else {
        ", GET /metrics"
    };
    tracing::info!(
        "open without a token: POST /webhooks/{{source}} (each platform's signature checked), GET /healthz, GET /readyz{metrics}, GET /api/v1/openapi.json, the console's files (/console/)"
    );
    Ok(App {
        addr,
        public_addr,
        public_server,
        store,
        rules,
        shutdown,
        server,
        writer: writer_task,
        processor,
        dispatcher,
        pruner,
        timer,
        watcher,
    })
}

impl App {
    /// Stops accepting requests, answers those in flight (storing what they carry), finishes the
    /// processing round in hand, and closes the store.
    pub async fn stop(self) -> Result<(), AppError> {
        let _ = self.shutdown.send(true);
        let served = self.server.await?;
        let public = match self.public_server {
            Some(server) => server.await?,
            None => Ok(()),
        };
        // The server dropped its writer handles: the writer drains its queue and ends.
        self.writer.await?;
        self.processor.await?;
        // Deliveries in flight finish and are recorded; leased ones not started are released.
        self.dispatcher.await?;
        // A pass in hand finishes its batch; the next one is not started.
        self.pruner.await?;
        self.timer.await?;
        self.watcher.await?;
        self.store.close().await;
        tracing::info!("signalbox stopped");
        served.and(public).map_err(AppError::Server)
    }
}

/// Runs the loop `make` builds until it returns (at shutdown). A loop that panics is logged,
/// counted in `health` (so `/readyz` shows it), and started again after a pause that grows
/// while it keeps dying.
fn supervise<F, Fut>(
    name: &'static str,
    health: Arc<Health>,
    mut shutdown: watch::Receiver<bool>,
    make: F,
) -> JoinHandle<()>
where
    F: Fn() -> Fut + Send + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    tokio::spawn(async move {
        let mut pause = std::time::Duration::from_millis(100);
        loop {
            health.loop_started(name);
            let Err(e) = tokio::spawn(make()).await else {
                health.loop_ended(name);
                return;
            };
            health.loop_died(name);
            tracing::error!(task = name, error = %e, retry_in_ms = pause.as_millis() as u64, "background loop died; starting it again");
            tokio::select! {
                _ = tokio::time::sleep(pause) => {}
                _ = shutdown.wait_for(|stop| *stop) => return,
            }
            pause = (pause * 2).min(std::time::Duration::from_secs(10));
        }
    })
}

/// Runs until `shutdown` completes, then stops gracefully.
pub async fn run(
    config: &Config,
    listener: TcpListener,
    shutdown: impl Future<Output = ()>,
) -> Result<(), AppError> {
    let app = start(config, listener).await?;
    shutdown.await;
    tracing::info!("shutting down");
    app.stop().await
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU32, Ordering};

    use super::*;

    /// A loop that panics is started again, and its death is counted; one that returns ends.
    #[tokio::test(start_paused = true)]
    async fn a_loop_that_dies_is_restarted_and_counted() {
        let health = Arc::new(Health::default());
        let (_stop, shutdown) = watch::channel(false);
        let runs = Arc::new(AtomicU32::new(0));
        let counted = runs.clone();
        let task = supervise("test", health.clone(), shutdown, move || {
            let run = counted.fetch_add(1, Ordering::SeqCst);
            async move {
                if run < 2 {
                    panic!("run {run} dies");
                }
            }
        });
        task.await.unwrap();
        assert_eq!(runs.load(Ordering::SeqCst), 3);
        let state = health.loops()["test"];
        assert_eq!((state.running, state.restarts), (false, 2));
    }
}
