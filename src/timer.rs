//! Work the clock brings: the deadlines of pending `unless:` checks and the ticks of scheduled
//! rules. Each becomes an internal event (source `signalbox`), stored under a dedupe key of
//! its own (`deadline:<check>`, `schedule:<rule>:<tick>`), so it happens once across every
//! instance sharing the store, however many race for it; the processor then evaluates it like
//! any other event. Delayed actions need nothing here: they are outbox rows due later.
//!
//! Receives the rule set in force and the store's pending checks; hands events to the store
//! (and wakes the processor).

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{Notify, watch};

use crate::clock::SharedClock;
use crate::normalize::Event;
use crate::rules::live::LiveRules;
use crate::rules::simulate::{deadline_event, tick_event};
use crate::store::{CheckStatus, Ingest, NewDelivery, Store, StoreError, Stored};

/// Deadlines taken per round.
const BATCH: u32 = 256;

/// How late a tick may run under `missed: skip`: a tick found later than this after its time
/// (the engine was down) is skipped.
pub const GRACE: Duration = Duration::from_secs(60);

pub struct Timer {
    store: Store,
    rules: Arc<LiveRules>,
    clock: SharedClock,
    stored: Arc<Notify>,
    poll: Duration,
}

impl Timer {
    pub fn new(
        store: Store,
        rules: Arc<LiveRules>,
        clock: SharedClock,
        stored: Arc<Notify>,
        poll: Duration,
    ) -> Arc<Self> {
        Arc::new(Self {
            store,
            rules,
            clock,
            stored,
            poll,
        })
    }

    /// Runs rounds every `poll` until `shutdown` turns true.
    pub async fn run(self: Arc<Self>, mut shutdown: watch::Receiver<bool>) {
        while !*shutdown.borrow() {
            match self.round().await {
                Ok(n) if n > 0 => self.stored.notify_one(),
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "timer round failed; trying again"),
            }
            tokio::select! {
                _ = tokio::time::sleep(self.poll) => {}
                _ = shutdown.changed() => {}
            }
        }
    }

    /// Stores the events that came due: deadlines, then ticks. Returns how many.
    pub async fn round(&self) -> Result<usize, StoreError> {
        Ok(self.deadlines().await? + self.ticks().await?)
    }

    async fn deadlines(&self) -> Result<usize, StoreError> {
        let now = self.clock.now();
        let due = self.store.due_checks(now, BATCH).await?;
        let mut stored = 0;
        for check in due {
            let subject = match self.store.get_event(&check.event_id).await? {
                Some(first) => first.event.subject,
                None => Default::default(),
            };
            let event = deadline_event(
                &check.id,
                &check.rule_id,
                &check.event_id,
                check.deadline,
                subject,
            );
            let id = self.store_internal(event).await?;
            self.store
                .resolve_checks(&[check.id.as_str()], CheckStatus::Fired, &id, now)
                .await?;
            stored += 1;
        }
        Ok(stored)
    }

    async fn ticks(&self) -> Result<usize, StoreError> {
        let now = self.clock.now();
        let rules = self.rules.current();
        let mut stored = 0;
        for (rule, scheduled) in rules.scheduled() {
            let last = match self.store.schedule_state(&rule.id).await? {
                Some((written, last)) if written == scheduled.written => last,
                // New, or its schedule changed: it counts from now.
                _ => {
                    self.store
                        .set_schedule_state(&rule.id, &scheduled.written, now, now)
                        .await?;
                    continue;
                }
            };
            let Some(next) = scheduled.schedule.next_after(last) else {
                continue;
            };
            if next > now {
                continue;
            }
            match scheduled.schedule.due(last, now, scheduled.missed, GRACE) {
                Some(tick) => {
                    self.store_internal(tick_event(&rule.id, tick)).await?;
                    self.store
                        .set_schedule_state(&rule.id, &scheduled.written, tick, now)
                        .await?;
                    stored += 1;
                }
                None => {
                    tracing::info!(rule_id = %rule.id, since = %last, "skipping the ticks missed while the engine was down (missed: skip)");
                    self.store
                        .set_schedule_state(&rule.id, &scheduled.written, now, now)
                        .await?;
                }
            }
        }
        Ok(stored)
    }

    /// Stores an internal event once (its dedupe key), returning its id.
    async fn store_internal(&self, event: Event) -> Result<String, StoreError> {
        let now = self.clock.now();
        let delivery = NewDelivery::internal(now, &event.data);
        let stored = self
            .store
            .insert_batch(&[Ingest {
                delivery,
                events: vec![event],
            }])
            .await?;
        Ok(stored
            .first()
            .and_then(|s| s.first())
            .map(|s| match s {
                Stored::New(id) | Stored::Duplicate(id) => id.to_string(),
            })
            .unwrap_or_default())
    }
}
