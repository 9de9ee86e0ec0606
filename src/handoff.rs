//! Work handed from one stage to the next in memory.
//!
//! A stage that writes rows for the next one (the writer stores events for the processor, the
//! processor plans actions for the dispatcher) writes them leased to that stage and passes them
//! on through a bounded queue, so the next stage neither waits for a poll nor claims them from
//! the store. The store stays the durable record: rows in a queue when the process stops are
//! leased in the store, and are taken again once their lease expires (on SQLite, at the next
//! start). Room in the queue is taken before the rows are written, so a row written leased
//! always reaches its stage; without room, rows are written unleased and the next stage claims
//! them from the store, as a second instance would.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tokio::sync::{Mutex, mpsc};

use crate::store::Lease;

/// The sending side: who the rows are leased to, for how long, and the queue.
pub struct Handoff<T> {
    owner: String,
    lease: Duration,
    tx: mpsc::Sender<T>,
    /// Rows were left in the store for want of room: later ones wait behind them there too
    /// (so they are taken in order), until the next stage finds the store drained.
    backlog: AtomicBool,
}

/// The receiving side, shared so that a stage started again after a panic keeps its queue.
pub struct Inbox<T> {
    rx: Mutex<mpsc::Receiver<T>>,
}

/// A queue of `capacity` items from one stage to the stage `owner` names.
pub fn channel<T>(
    owner: &str,
    lease: Duration,
    capacity: usize,
) -> (Arc<Handoff<T>>, Arc<Inbox<T>>) {
    let (tx, rx) = mpsc::channel(capacity.max(1));
    (
        Arc::new(Handoff {
            owner: owner.to_owned(),
            lease,
            tx,
            backlog: AtomicBool::new(false),
        }),
        Arc::new(Inbox { rx: Mutex::new(rx) }),
    )
}

impl<T> Handoff<T> {
    /// Room for at most `wanted` items, taken now (what is not used is given back on drop);
    /// none while rows wait in the store for want of room.
    pub fn room(&self, wanted: usize) -> Vec<mpsc::Permit<'_, T>> {
        let n = wanted.min(self.tx.capacity());
        if n == 0 || self.backlog.load(Ordering::SeqCst) {
            return Vec::new();
        }
        self.tx
            .try_reserve_many(n)
            .map(Iterator::collect)
            .unwrap_or_default()
    }

    /// Rows were written to the store unleased for want of room (or were not): while they
    /// are there, nothing more is handed over.
    pub fn left_in_store(&self, left: bool) {
        self.backlog.store(left, Ordering::SeqCst);
    }

    /// The lease rows handed over now are written with.
    pub fn lease(&self, now_ms: i64) -> Lease<'_> {
        let lease_ms = i64::try_from(self.lease.as_millis()).unwrap_or(i64::MAX / 2);
        Lease {
            owner: &self.owner,
            until_ms: now_ms.saturating_add(lease_ms),
        }
    }
}

impl<T> Inbox<T> {
    /// Whatever is waiting, at most `limit`, without waiting.
    pub async fn take(&self, limit: usize) -> Vec<T> {
        let mut rx = self.rx.lock().await;
        let mut items = Vec::new();
        while items.len() < limit {
            match rx.try_recv() {
                Ok(item) => items.push(item),
                Err(_) => break,
            }
        }
        items
    }

    /// Waits for at least one item, then takes what is waiting, at most `limit`. Cancel
    /// safe: dropped before it returns, it has taken nothing. Never returns once every sender
    /// is gone and the queue is empty.
    pub async fn wait(&self, limit: usize) -> Vec<T> {
        let mut rx = self.rx.lock().await;
        let mut items = Vec::new();
        if rx.recv_many(&mut items, limit.max(1)).await == 0 {
            drop(rx);
            std::future::pending::<()>().await;
        }
        items
    }
}
