//! The dispatcher: leases due actions, delivers them (at most `workers` at once, and at most
//! `per_target` to any one target), records each attempt, and schedules retries.
//!
//! Several instances on one PostgreSQL share the work: leases are taken with
//! `FOR UPDATE SKIP LOCKED`, and an instance that dies leaves its actions to be retaken when
//! their lease expires. At shutdown, deliveries in flight finish and record; actions leased but
//! not started are released.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use chrono::Utc;

use crate::clock::SharedClock;
use tokio::sync::{Notify, Semaphore, watch};
use tokio::task::JoinSet;
use tracing::Instrument;

use crate::actions::retry::next_delay;
use crate::actions::{ActionsConfig, Delivery, Executors, Outcome, Payload};
use crate::handoff::{self, Handoff, Inbox};
use crate::store::{ActionRow, AttemptOutcome, NewAttempt, NextStep, Store};

pub struct Dispatcher {
    store: Store,
    /// Finished attempts go to one recorder, which stores all that are waiting in one
    /// transaction (as ingestion's writer does), then answers each.
    recorder: tokio::sync::mpsc::Sender<Finished>,
    executors: Arc<Executors>,
    config: ActionsConfig,
    owner: String,
    /// Notified when new actions are planned and left in the store.
    planned: Arc<Notify>,
    /// Actions planned leased to this dispatcher, handed over in memory.
    inbox: Arc<Inbox<Handed>>,
    handoff: Arc<Handoff<Handed>>,
    targets: Mutex<HashMap<String, Arc<Semaphore>>>,
    clock: SharedClock,
    /// Whether `run` started once (a restart after a panic keeps what it holds).
    started: std::sync::atomic::AtomicBool,
}

/// An action handed over as it was planned, leased to the dispatcher until `until_ms`.
pub struct Handed {
    pub row: ActionRow,
    pub until_ms: i64,
}

/// A handed-over action whose lease ends sooner than this (or half the lease, if shorter) is
/// left to be retaken from the store, rather than delivered twice.
const LEASE_MARGIN_MS: i64 = 5_000;

impl Dispatcher {
    pub fn new(
        store: Store,
        executors: Arc<Executors>,
        config: ActionsConfig,
        planned: Arc<Notify>,
        clock: SharedClock,
    ) -> Arc<Self> {
        let owner = format!("dsp_{}", uuid::Uuid::now_v7().simple());
        let (recorder, queue) = tokio::sync::mpsc::channel(1024);
        tokio::spawn(record(store.clone(), owner.clone(), queue, clock.clone()));
        // As many as it delivers at once: a handed-over action starts within one delivery.
        let (handoff, inbox) = handoff::channel(&owner, config.lease, config.workers);
        Arc::new(Self {
            store,
            recorder,
            executors,
            config,
            owner,
            planned,
            inbox,
            handoff,
            targets: Mutex::new(HashMap::new()),
            clock,
            started: std::sync::atomic::AtomicBool::new(false),
        })
    }

    /// Where the processor hands the actions it plans that are due now.
    pub fn handoff(&self) -> Arc<Handoff<Handed>> {
        self.handoff.clone()
    }

    /// The kinds this dispatcher delivers.
    pub fn kinds(&self) -> Vec<&'static str> {
        self.executors.kinds()
    }

    /// Notified when actions are planned and left in the store.
    pub fn planned(&self) -> Arc<Notify> {
        self.planned.clone()
    }

    fn target_permit(&self, target: &str) -> Arc<Semaphore> {
        let mut targets = self.targets.lock().expect("target map is never poisoned");
        targets
            .entry(target.to_owned())
            .or_insert_with(|| Arc::new(Semaphore::new(self.config.per_target)))
            .clone()
    }

    /// Delivers until `shutdown` turns true. Handed-over actions start first; the store is
    /// asked when something says it holds due actions (planned but not handed over, a retry
    /// come due, an expired lease), and at least every `poll_interval`.
    pub async fn run(self: Arc<Self>, mut shutdown: watch::Receiver<bool>) {
        let first_start = !self.started.swap(true, std::sync::atomic::Ordering::SeqCst);
        if first_start && !self.store.is_shared() {
            // One instance owns a SQLite file: actions in flight there belong to a process
            // that died (delivering them, or before it started them). Deliver them again now.
            match self.store.release_actions(&self.owner, true).await {
                Ok(0) => {}
                Ok(n) => tracing::info!(actions = n, "resuming actions leased by a previous run"),
                Err(e) => tracing::warn!(error = %e, "cannot release previous action leases"),
            }
        }
        let kinds = self.executors.kinds();
        let mut in_flight = JoinSet::new();
        let mut look_in_store = true;
        let mut looked = tokio::time::Instant::now();
        while !*shutdown.borrow() {
            let free = self.config.workers.saturating_sub(in_flight.len());
            let handed = self.inbox.take(free).await;
            let free = free - handed.len();
            self.start(handed, &mut in_flight);
            // Claim in batches: when a quarter of the slots are free (or all are), not after each
            // delivery, so the store is asked a few times per batch rather than once per action.
            let worth_claiming = free > 0
                && (in_flight.is_empty() || free >= self.config.workers.div_ceil(4))
                && (look_in_store || looked.elapsed() >= self.config.poll_interval);
            if worth_claiming {
                looked = tokio::time::Instant::now();
                let now = self.clock.now_ms();
                let lease_until =
                    now + i64::try_from(self.config.lease.as_millis()).unwrap_or(i64::MAX / 2);
                match self
                    .store
                    .claim_due_actions(&self.owner, free, now, lease_until, &kinds)
                    .await
                {
                    Ok(actions) => {
                        // A full claim: more may be due.
                        look_in_store = actions.len() == free;
                        for action in actions {
                            self.spawn(delivery(action), &mut in_flight);
                        }
                        if look_in_store {
                            continue;
                        }
                    }
                    Err(e) => tracing::warn!(error = %e, "cannot take due actions"),
                }
            }
            let free = self.config.workers.saturating_sub(in_flight.len());
            tokio::select! {
                handed = self.inbox.wait(free), if free > 0 => self.start(handed, &mut in_flight),
                _ = self.planned.notified() => look_in_store = true,
                _ = tokio::time::sleep(self.config.poll_interval) => look_in_store = true,
                Some(_) = in_flight.join_next(), if !in_flight.is_empty() => {}
                _ = shutdown.changed() => {}
            }
        }
        while in_flight.join_next().await.is_some() {}
        // Handed-over actions not started are in flight in the store, leased to us: give them back.
        drop(self.inbox.take(usize::MAX).await);
        if let Err(e) = self.store.release_actions(&self.owner, false).await {
            tracing::warn!(error = %e, "cannot release leased actions at shutdown; their leases expire by themselves");
        }
    }

    /// Starts delivering handed-over actions whose lease still has time.
    fn start(self: &Arc<Self>, handed: Vec<Handed>, in_flight: &mut JoinSet<()>) {
        let now = self.clock.now_ms();
        let half_lease = i64::try_from(self.config.lease.as_millis() / 2).unwrap_or(i64::MAX);
        let margin = LEASE_MARGIN_MS.min(half_lease);
        for Handed { row, until_ms } in handed {
            if until_ms - margin > now {
                self.spawn(delivery(row), in_flight);
            }
        }
    }

    fn spawn(self: &Arc<Self>, action: Delivery, in_flight: &mut JoinSet<()>) {
        // Every line of the delivery carries its action, event and rule.
        let span = tracing::info_span!(
            "action",
            action_id = %action.id,
            event_id = %action.event_id,
            rule_id = %action.rule_id
        );
        let this = self.clone();
        in_flight.spawn(async move { this.deliver(action).await }.instrument(span));
    }

    async fn deliver(&self, action: Delivery) {
        let permit = self.target_permit(&action.target);
        let Ok(_turn) = permit.acquire_owned().await else {
            return;
        };
        let started_at = self.clock.now();
        let started = Instant::now();
        let outcome = self.executors.execute(&action).await;
        let elapsed = started.elapsed();
        metrics::histogram!(crate::metrics::ACTION_ATTEMPT_DURATION, "kind" => action.kind.clone())
            .record(elapsed.as_secs_f64());
        let duration_ms = i64::try_from(elapsed.as_millis()).unwrap_or(i64::MAX);
        let attempts = action.attempts + 1;
        let next = match &outcome {
            Outcome::Delivered { .. } => NextStep::Delivered,
            Outcome::Failed { .. } => NextStep::Dead,
            Outcome::Retry { not_before, .. } => match next_delay(
                self.executors.retry_policy(&action),
                attempts,
                *not_before,
                fastrand::f64(),
            ) {
                Some(delay) => NextStep::RetryAt(
                    self.clock.now_ms() + i64::try_from(delay.as_millis()).unwrap_or(i64::MAX / 2),
                ),
                None => NextStep::Dead,
            },
        };
        // The action's span carries its ids (at info, so it is on whenever these lines are);
        // the warning names them itself, to keep them under a filter of `warn`.
        match &outcome {
            Outcome::Delivered { .. } => {
                tracing::debug!(kind = %action.kind, attempts, "action delivered")
            }
            Outcome::Retry { reason, .. } if next != NextStep::Dead => {
                // The reason (a target's or SMTP server's reply may quote an address) is in the
                // attempt's record; INFO carries ids.
                tracing::info!(kind = %action.kind, attempts, "delivery failed, will retry");
                tracing::debug!(reason = %reason, "delivery failed")
            }
            other => {
                tracing::warn!(action_id = %action.id, kind = %action.kind, rule_id = %action.rule_id, attempts, reason = other.error().unwrap_or_default(), "action dead")
            }
        }
        let (reply, recorded) = tokio::sync::oneshot::channel();
        if self
            .recorder
            .send(Finished {
                action,
                started_at,
                duration_ms,
                outcome,
                next,
                reply,
            })
            .await
            .is_err()
        {
            return tracing::error!(
                "the attempt recorder stopped; the lease expires and the action is retried"
            );
        }
        match recorded.await {
            Ok(Ok(true)) => {}
            Ok(Ok(false)) => tracing::warn!(
                "lost the lease on an action while delivering; another instance has it"
            ),
            Ok(Err(e)) => {
                tracing::error!(error = %e, "cannot record an attempt; the lease expires and the action is retried")
            }
            Err(_) => tracing::error!(
                "the attempt recorder stopped; the lease expires and the action is retried"
            ),
        }
    }
}

/// A leased row as its kind's executor takes it: the stored payload read once, here.
fn delivery(row: ActionRow) -> Delivery {
    Delivery {
        action: Payload::decode(&row.payload),
        id: row.id,
        event_id: row.event_id,
        rule_id: row.rule_id,
        kind: row.kind,
        target: row.target,
        attempts: row.attempts,
    }
}

/// A finished attempt on its way to the recorder.
struct Finished {
    action: Delivery,
    started_at: chrono::DateTime<Utc>,
    duration_ms: i64,
    outcome: Outcome,
    next: NextStep,
    reply: tokio::sync::oneshot::Sender<Result<bool, Arc<crate::store::StoreError>>>,
}

impl Finished {
    fn record(&self) -> NewAttempt<'_> {
        let (outcome, reply) = match &self.outcome {
            Outcome::Delivered { reply, .. } => (AttemptOutcome::Delivered, reply.as_deref()),
            Outcome::Retry { .. } => (AttemptOutcome::Retry, None),
            Outcome::Failed { .. } => (AttemptOutcome::Failed, None),
        };
        metrics::counter!(
            "signalbox_action_attempts_total",
            "kind" => self.action.kind.clone(),
            "outcome" => outcome.as_str()
        )
        .increment(1);
        NewAttempt {
            action_id: &self.action.id,
            attempt: i64::from(self.action.attempts) + 1,
            started_at: self.started_at,
            duration_ms: self.duration_ms,
            outcome,
            status_code: self.outcome.status().map(i64::from),
            reply,
            error: self.outcome.error(),
            next: self.next,
        }
    }
}

/// Records every finished attempt waiting, in one transaction, then answers each. Ends when
/// the dispatcher (and every delivery holding a sender) is gone.
async fn record(
    store: Store,
    owner: String,
    mut queue: tokio::sync::mpsc::Receiver<Finished>,
    clock: SharedClock,
) {
    let mut batch = Vec::new();
    while queue.recv_many(&mut batch, 512).await > 0 {
        let attempts: Vec<NewAttempt<'_>> = batch.iter().map(Finished::record).collect();
        let result = store.record_attempts(&owner, &attempts, clock.now()).await;
        drop(attempts);
        match result {
            Ok(recorded) => {
                for (finished, ok) in batch.drain(..).zip(recorded) {
                    let end = match finished.next {
                        NextStep::Delivered => Some("delivered"),
                        NextStep::Dead => Some("dead"),
                        NextStep::RetryAt(_) => None,
                    };
                    if let Some(outcome) = end.filter(|_| ok) {
                        metrics::counter!(
                            "signalbox_actions_finished_total",
                            "kind" => finished.action.kind.clone(),
                            "outcome" => outcome
                        )
                        .increment(1);
                    }
                    let _ = finished.reply.send(Ok(ok));
                }
            }
            Err(e) => {
                let e = Arc::new(e);
                for finished in batch.drain(..) {
                    let _ = finished.reply.send(Err(e.clone()));
                }
            }
        }
    }
}
