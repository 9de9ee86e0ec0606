//! Group commit: requests hand their delivery to one writer task, which stores everything that
//! arrived while the previous transaction committed in one transaction, then answers each.
//!
//! SQLite allows one writer at a time, and a commit costs the same for one row or a thousand, so
//! batching is what turns thousands of concurrent requests a second into a few hundred commits.

use std::sync::Arc;

use tokio::sync::{Notify, mpsc, oneshot};

use super::{ClaimedEvent, Ingest, Store, StoreError, Stored};
use crate::clock::SharedClock;
use crate::handoff::Handoff;
use crate::health::Health;

/// Where the writer hands the events it stores: this instance's processor, through memory.
#[derive(Clone)]
pub struct Intake {
    pub handoff: Arc<Handoff<ClaimedEvent>>,
    pub clock: SharedClock,
    /// Whether the processor takes events now (the rules are in force).
    pub open: Arc<dyn Fn() -> bool + Send + Sync>,
}

/// Most deliveries stored in one transaction.
const MAX_BATCH: usize = 512;

type Reply = oneshot::Sender<Result<Vec<Stored>, Arc<StoreError>>>;

/// Handle to the writer task. Clone it into every request handler.
#[derive(Clone)]
pub struct Writer {
    tx: mpsc::Sender<(Ingest, Reply)>,
}

impl Writer {
    /// Starts the writer task. New events go to `intake` when it has room (leased to its
    /// processor, in the same insert); `stored` is notified after each commit that stored new
    /// events it had no room for.
    /// The task ends once every `Writer` handle is dropped and the queue is drained.
    /// On PostgreSQL several writer tasks share the queue, so their commits overlap.
    /// A writer task that panics is started again (the requests of its batch are answered
    /// 503: their senders retry); `health` counts it and learns whether writes succeed.
    pub fn spawn(
        store: Store,
        stored: Arc<Notify>,
        intake: Option<Intake>,
        health: Arc<Health>,
    ) -> (Self, tokio::task::JoinHandle<()>) {
        let (tx, rx) = mpsc::channel(MAX_BATCH * 4);
        let rx = Arc::new(tokio::sync::Mutex::new(rx));
        let tasks: Vec<_> = (0..store.parallel_writers())
            .map(|_| {
                let (store, rx, stored, intake, health) = (
                    store.clone(),
                    rx.clone(),
                    stored.clone(),
                    intake.clone(),
                    health.clone(),
                );
                tokio::spawn(async move {
                    health.loop_started("writer");
                    while let Err(e) = tokio::spawn(run(
                        store.clone(),
                        rx.clone(),
                        stored.clone(),
                        intake.clone(),
                        health.clone(),
                    ))
                    .await
                    {
                        health.loop_died("writer");
                        tracing::error!(error = %e, "writer task died; starting it again");
                        health.loop_started("writer");
                    }
                    health.loop_ended("writer");
                })
            })
            .collect();
        let task = tokio::spawn(async move {
            for task in tasks {
                if let Err(e) = task.await {
                    tracing::error!(error = %e, "writer task failed");
                }
            }
        });
        (Self { tx }, task)
    }

    /// Stores one delivery with its events; returns once committed (or failed).
    pub async fn store(&self, ingest: Ingest) -> Result<Vec<Stored>, Arc<StoreError>> {
        let (reply, answer) = oneshot::channel();
        let closed = || Arc::new(StoreError::Unavailable(sqlx::Error::PoolClosed));
        self.tx.send((ingest, reply)).await.map_err(|_| closed())?;
        answer.await.map_err(|_| closed())?
    }
}

type Queue = Arc<tokio::sync::Mutex<mpsc::Receiver<(Ingest, Reply)>>>;

async fn run(
    store: Store,
    rx: Queue,
    stored: Arc<Notify>,
    intake: Option<Intake>,
    health: Arc<Health>,
) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    let mut replies = Vec::with_capacity(MAX_BATCH);
    let mut jobs = Vec::with_capacity(MAX_BATCH);
    // Whoever holds the queue takes everything waiting; the others commit meanwhile.
    while rx.lock().await.recv_many(&mut jobs, MAX_BATCH).await > 0 {
        for (mut ingest, reply) in jobs.drain(..) {
            for event in &mut ingest.events {
                event.trim_to_stored_precision();
            }
            batch.push(ingest);
            replies.push(reply);
        }
        // Room for every event of the batch, or they are all left for the processor to claim.
        let wanted: usize = batch.iter().map(|i| i.events.len()).sum();
        let mut room = match &intake {
            Some(intake) if (intake.open)() => intake.handoff.room(wanted),
            _ => Vec::new(),
        };
        if room.len() < wanted {
            room.clear();
        }
        let lease = match &intake {
            Some(intake) if !room.is_empty() => Some(intake.handoff.lease(intake.clock.now_ms())),
            _ => None,
        };
        let inserted = store.insert_leased(&batch, lease).await;
        health.wrote(inserted.as_ref().map(|_| ()).map_err(ToString::to_string));
        if let Ok(results) = &inserted {
            crate::metrics::stored(&batch, results);
        }
        let mut handed_over = false;
        let results: Vec<Result<Vec<Stored>, Arc<StoreError>>> = match inserted {
            Ok(results) => {
                handed_over = lease.is_some();
                // The new events go to the processor; duplicates were processed already.
                let mut room = room.drain(..);
                for (ingest, stored) in batch.iter_mut().zip(&results) {
                    for (event, stored) in
                        std::mem::take(&mut ingest.events).into_iter().zip(stored)
                    {
                        if let (Stored::New(_), Some(permit)) = (stored, room.next()) {
                            permit.send(ClaimedEvent { event, attempt: 1 });
                        }
                    }
                }
                results.into_iter().map(Ok).collect()
            }
            // The database is away: every request of the batch gets 503 and its sender retries.
            Err(e @ StoreError::Unavailable(_)) => {
                tracing::warn!(error = %e, deliveries = batch.len(), "store unavailable, batch refused");
                let e = Arc::new(e);
                batch.iter().map(|_| Err(Arc::clone(&e))).collect()
            }
            // Something in one delivery failed: store the others one by one so it fails alone.
            Err(e) => {
                tracing::warn!(error = %e, deliveries = batch.len(), "storing a batch failed, storing one by one");
                let mut results = Vec::with_capacity(batch.len());
                for ingest in &batch {
                    let one = store.insert_batch(std::slice::from_ref(ingest)).await;
                    results.push(one.map(|mut r| r.remove(0)).map_err(Arc::new));
                }
                results
            }
        };
        drop(room);
        // New events that were not handed over wait in the store: wake the processor.
        let left_in_store = !handed_over
            && results
                .iter()
                .flatten()
                .flatten()
                .any(|s| matches!(s, Stored::New(_)));
        for (reply, result) in replies.drain(..).zip(results) {
            // The request may have gone (client hung up); what it sent is stored all the same.
            let _ = reply.send(result);
        }
        if left_in_store {
            if let Some(intake) = &intake {
                intake.handoff.left_in_store(true);
            }
            stored.notify_one();
        }
        batch.clear();
    }
}
