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
use tokio::sync::{Notify, Semaphore, watch};
use tokio::task::JoinSet;

use super::retry::next_delay;
use super::{OutboxAction, Outcome};
use crate::actions::Executors;
use crate::config::ActionsConfig;
use crate::store::{NextStep, Store};

pub struct Dispatcher {
    store: Store,
    executors: Arc<Executors>,
    config: ActionsConfig,
    owner: String,
    /// Notified when new actions are planned.
    planned: Arc<Notify>,
    targets: Mutex<HashMap<String, Arc<Semaphore>>>,
}

impl Dispatcher {
    pub fn new(
        store: Store,
        executors: Arc<Executors>,
        config: ActionsConfig,
        planned: Arc<Notify>,
    ) -> Arc<Self> {
        let owner = format!("dsp_{}", uuid::Uuid::now_v7().simple());
        Arc::new(Self {
            store,
            executors,
            config,
            owner,
            planned,
            targets: Mutex::new(HashMap::new()),
        })
    }

    fn target_permit(&self, target: &str) -> Arc<Semaphore> {
        let mut targets = self.targets.lock().expect("target map is never poisoned");
        targets
            .entry(target.to_owned())
            .or_insert_with(|| Arc::new(Semaphore::new(self.config.per_target)))
            .clone()
    }

    pub async fn run(self: Arc<Self>, mut shutdown: watch::Receiver<bool>) {
        let kinds = self.executors.kinds();
        let mut in_flight = JoinSet::new();
        while !*shutdown.borrow() {
            let free = self.config.workers.saturating_sub(in_flight.len());
            let mut claimed = 0;
            if free > 0 {
                let now = Utc::now().timestamp_millis();
                let lease_until =
                    now + i64::try_from(self.config.lease.as_millis()).unwrap_or(i64::MAX / 2);
                match self
                    .store
                    .claim_due_actions(&self.owner, free, now, lease_until, &kinds)
                    .await
                {
                    Ok(actions) => {
                        claimed = actions.len();
                        for action in actions {
                            let this = self.clone();
                            in_flight.spawn(async move { this.deliver(action).await });
                        }
                    }
                    Err(e) => tracing::warn!(error = %e, "cannot take due actions"),
                }
            }
            if claimed == free && free > 0 {
                continue; // more may be due
            }
            tokio::select! {
                _ = self.planned.notified() => {}
                _ = tokio::time::sleep(self.config.poll_interval) => {}
                Some(_) = in_flight.join_next(), if !in_flight.is_empty() => {}
                _ = shutdown.changed() => {}
            }
        }
        while in_flight.join_next().await.is_some() {}
        if let Err(e) = self.store.release_actions(&self.owner).await {
            tracing::warn!(error = %e, "cannot release leased actions at shutdown; their leases expire by themselves");
        }
    }

    async fn deliver(&self, action: OutboxAction) {
        let permit = self.target_permit(&action.target);
        let Ok(_turn) = permit.acquire_owned().await else {
            return;
        };
        let started_at = Utc::now();
        let started = Instant::now();
        let outcome = self.executors.execute(&action).await;
        let duration_ms = i64::try_from(started.elapsed().as_millis()).unwrap_or(i64::MAX);
        let attempts = action.attempts + 1;
        let next = match &outcome {
            Outcome::Delivered { .. } => NextStep::Delivered,
            Outcome::Failed { .. } => NextStep::Dead,
            Outcome::Retry { not_before, .. } => match next_delay(
                self.executors.retry_policy(&action.kind, &action),
                attempts,
                *not_before,
                fastrand::f64(),
            ) {
                Some(delay) => NextStep::RetryAt(
                    Utc::now().timestamp_millis()
                        + i64::try_from(delay.as_millis()).unwrap_or(i64::MAX / 2),
                ),
                None => NextStep::Dead,
            },
        };
        match &outcome {
            Outcome::Delivered { .. } => {
                tracing::debug!(action_id = %action.id, kind = %action.kind, attempts, "action delivered")
            }
            Outcome::Retry { reason, .. } if next != NextStep::Dead => {
                tracing::info!(action_id = %action.id, kind = %action.kind, attempts, reason = %reason, "delivery failed, will retry")
            }
            other => {
                tracing::warn!(action_id = %action.id, kind = %action.kind, rule_id = %action.rule_id, attempts, reason = other.error().unwrap_or_default(), "action dead")
            }
        }
        match self
            .store
            .record_attempt(
                &self.owner,
                &action,
                started_at,
                duration_ms,
                &outcome,
                next,
            )
            .await
        {
            Ok(true) => {}
            Ok(false) => {
                tracing::warn!(action_id = %action.id, "lost the lease on an action while delivering; another instance has it")
            }
            Err(e) => {
                tracing::error!(action_id = %action.id, error = %e, "cannot record an attempt; the lease expires and the action is retried")
            }
        }
    }
}
