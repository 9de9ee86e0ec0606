//! The durable processing stage: takes pending events in arrival order, hands each to the next
//! stage, and marks it processed only once that stage's work is committed.
//!
//! Receives events from the store (stored by ingestion, which notifies), leases them so that
//! several instances sharing PostgreSQL never process one event at the same time, and after a
//! crash resumes from whatever is still pending. Each event is evaluated against the rule set
//! in force, and marked processed in the same transaction that records its evaluations.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{Notify, watch};

use crate::actions::Payload;
use crate::actions::retry::{RetryConfig, RetryPatch, next_delay};
use crate::clock::SharedClock;
use crate::handoff::{self, Handoff, Inbox};
use crate::health::Health;
use crate::normalize::Event;
use crate::normalize::EventId;
use crate::outbox::worker::{Dispatcher, Handed};
use crate::rules::facts::{PendingCheck, Query};
use crate::rules::live::LiveRules;
use crate::rules::{Evaluation, Outcome};
use crate::store::writer::Intake;
use crate::store::{
    ActionHandoff, CancelOn, CheckStatus, ClaimedEvent, Completion, Effects, EventFailure,
    HistoryQuery, NewAction, NewCheck, NewEvaluation, StateWrite, Store, StoreError, ThrottleGate,
    Verdict,
};
use chrono::{DateTime, Utc};

/// The processing stage (`processing:` in the config file).
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(try_from = "ProcessingFile")]
pub struct ProcessingConfig {
    /// Events taken per processing round. Default 256.
    pub batch_size: u32,
    /// How long an instance holds events it took before another instance may take them
    /// (matters after a crash on a shared PostgreSQL). Default 30s.
    pub lease: Duration,
    /// How often to look for pending events when nothing signals new ones (picks up events
    /// stored by other instances). Default 1s.
    pub poll_interval: Duration,
    /// How often an event whose processing fails is tried again before it is parked as
    /// `failed`, and how long between tries. Default 5 attempts, 1s doubling to 5m.
    pub retry: RetryConfig,
    /// How long an event may wait for processing before `/readyz` says processing is
    /// stalled. Default 1m.
    pub max_lag: Duration,
}

impl Default for ProcessingConfig {
    fn default() -> Self {
        Self {
            batch_size: 256,
            lease: Duration::from_secs(30),
            poll_interval: Duration::from_secs(1),
            retry: RetryConfig {
                max_attempts: 5,
                initial_delay: Duration::from_secs(1),
                max_delay: Duration::from_secs(300),
                ..RetryConfig::default()
            },
            max_lag: Duration::from_secs(60),
        }
    }
}

/// `processing:` as written, with the numeric keys `lease` and `poll_interval` replace.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct ProcessingFile {
    batch_size: Option<u32>,
    #[serde(default, with = "humantime_serde")]
    lease: Option<Duration>,
    lease_seconds: Option<u64>,
    #[serde(default, with = "humantime_serde")]
    poll_interval: Option<Duration>,
    poll_interval_ms: Option<u64>,
    retry: Option<RetryPatch>,
    #[serde(default, with = "humantime_serde")]
    max_lag: Option<Duration>,
}

impl TryFrom<ProcessingFile> for ProcessingConfig {
    type Error = String;

    fn try_from(file: ProcessingFile) -> Result<Self, String> {
        use crate::config::duration::{Unit, either};
        let default = Self::default();
        Ok(Self {
            batch_size: file.batch_size.unwrap_or(default.batch_size),
            lease: either(
                "lease",
                file.lease,
                "lease_seconds",
                file.lease_seconds,
                Unit::Seconds,
            )?
            .unwrap_or(default.lease),
            poll_interval: either(
                "poll_interval",
                file.poll_interval,
                "poll_interval_ms",
                file.poll_interval_ms,
                Unit::Millis,
            )?
            .unwrap_or(default.poll_interval),
            retry: file.retry.unwrap_or_default().over(default.retry),
            max_lag: file.max_lag.unwrap_or(default.max_lag),
        })
    }
}

pub struct Processor {
    store: Store,
    rules: Arc<LiveRules>,
    config: ProcessingConfig,
    /// This instance's lease owner name: `ins_<uuidv7>`, new at every start.
    owner: String,
    stored: Arc<Notify>,
    /// Events the writer stored leased to this processor, handed over in memory.
    inbox: Arc<Inbox<ClaimedEvent>>,
    intake: Arc<Handoff<ClaimedEvent>>,
    /// Where planned actions due now go, leased, and the kinds that dispatcher delivers.
    dispatch: Option<Arc<Handoff<Handed>>>,
    kinds: Vec<&'static str>,
    /// Notified when evaluations planned actions left in the store, to wake the dispatcher.
    planned: Arc<Notify>,
    clock: SharedClock,
    health: Arc<Health>,
}

impl Processor {
    /// A processor whose planned actions go to `dispatcher` (without one, they wait in the
    /// store for whichever dispatcher claims them).
    pub fn new(
        store: Store,
        rules: Arc<LiveRules>,
        config: ProcessingConfig,
        stored: Arc<Notify>,
        dispatcher: Option<&Dispatcher>,
        clock: SharedClock,
        health: Arc<Health>,
    ) -> Arc<Self> {
        let owner = format!("ins_{}", uuid::Uuid::now_v7().simple());
        // Two rounds of events: one being processed, one waiting.
        let capacity = usize::try_from(config.batch_size)
            .unwrap_or(256)
            .saturating_mul(2);
        let (intake, inbox) = handoff::channel(&owner, config.lease, capacity);
        Arc::new(Self {
            store,
            rules,
            config,
            owner,
            stored,
            inbox,
            intake,
            dispatch: dispatcher.map(Dispatcher::handoff),
            kinds: dispatcher.map(Dispatcher::kinds).unwrap_or_default(),
            planned: dispatcher.map(Dispatcher::planned).unwrap_or_default(),
            clock,
            health,
        })
    }

    /// Where the writer hands the events it stores to this processor.
    pub fn intake(&self) -> Intake {
        let rules = self.rules.clone();
        Intake {
            handoff: self.intake.clone(),
            clock: self.clock.clone(),
            open: Arc::new(move || rules.in_force()),
        }
    }

    /// Processes until `shutdown` turns true, finishing the round in hand, then gives back its
    /// leases so another instance (or the next start) takes those events at once.
    ///
    /// Events handed over by the writer come first; the store is looked at when something
    /// says it holds events for us (the writer had no room, another instance or the timer
    /// stored some, a round filled up), and at least every `poll_interval`.
    pub async fn run(self: Arc<Self>, mut shutdown: watch::Receiver<bool>) {
        if !self.store.is_shared() {
            // One instance owns a SQLite file: leases left in it belong to a process that died.
            match self.store.release_leases(None).await {
                Ok(0) => {}
                Ok(n) => tracing::info!(events = n, "resuming events leased by a previous run"),
                Err(e) => tracing::warn!(error = %e, "cannot release previous leases"),
            }
        }
        let batch = usize::try_from(self.config.batch_size)
            .unwrap_or(256)
            .max(1);
        let mut backoff = Duration::from_millis(100);
        let mut look_in_store = true;
        let mut looked = tokio::time::Instant::now();
        while !*shutdown.borrow() {
            let mut taken = Ok(0);
            if self.rules.in_force() {
                let handed = self.inbox.take(batch).await;
                if !handed.is_empty() {
                    taken = self.work(handed).await;
                }
            }
            if taken.is_ok() && (look_in_store || looked.elapsed() >= self.config.poll_interval) {
                looked = tokio::time::Instant::now();
                taken = match self.round().await {
                    Ok(n) => {
                        // A full round: more may be waiting. Otherwise the store is drained
                        // of what the writer left there, and it may hand events over again.
                        look_in_store = n >= batch;
                        if !look_in_store && self.rules.in_force() {
                            self.intake.left_in_store(false);
                        }
                        taken.map(|m| m + n)
                    }
                    Err(e) => Err(e),
                };
            }
            match taken {
                Ok(n) if n > 0 => {
                    backoff = Duration::from_millis(100);
                    continue;
                }
                Ok(_) => {}
                Err(e) => {
                    self.health.wrote(Err(e.to_string()));
                    tracing::warn!(error = %e, retry_in_ms = backoff.as_millis() as u64, "processing round failed");
                    tokio::select! {
                        _ = tokio::time::sleep(backoff) => {}
                        _ = shutdown.changed() => {}
                    }
                    backoff = (backoff * 2).min(Duration::from_secs(10));
                    look_in_store = true;
                    continue;
                }
            }
            tokio::select! {
                handed = self.inbox.wait(batch), if self.rules.in_force() => {
                    if let Err(e) = self.work(handed).await {
                        self.health.wrote(Err(e.to_string()));
                        tracing::warn!(error = %e, "processing round failed");
                        look_in_store = true;
                    }
                }
                _ = self.stored.notified() => look_in_store = true,
                _ = tokio::time::sleep(self.config.poll_interval) => look_in_store = true,
                _ = shutdown.changed() => {}
            }
        }
        // What is still leased to this processor was handed over and never tried (the round
        // in hand finished): give it back without counting an attempt.
        drop(self.inbox.take(usize::MAX).await);
        if let Err(e) = self.store.give_back(&self.owner).await {
            tracing::warn!(error = %e, "cannot release leases at shutdown; they expire by themselves");
        }
    }

    /// Takes one batch of pending events from the store and processes it. Returns how many
    /// were taken.
    ///
    /// An event whose processing fails (its records cannot be stored, say) fails alone: the
    /// batch is completed without it, and it is tried again later, then parked as `failed`.
    pub async fn round(&self) -> Result<usize, StoreError> {
        if !self.rules.in_force() {
            // The rules folder was broken at start and no good set was ever recorded: events
            // wait, stored, until the folder is fixed.
            return Ok(0);
        }
        let now = self.clock.now();
        let lease = chrono::Duration::from_std(self.config.lease).unwrap_or(chrono::Duration::MAX);
        let claimed = self
            .store
            .claim_pending(
                &self.owner,
                self.config.batch_size,
                now,
                now.checked_add_signed(lease)
                    .unwrap_or(chrono::DateTime::<chrono::Utc>::MAX_UTC),
                self.config.retry.max_attempts,
            )
            .await?;
        if claimed.is_empty() {
            return Ok(0);
        }
        self.work(claimed).await
    }

    /// Processes events this processor leases (claimed, or handed over by the writer).
    async fn work(&self, leased: Vec<ClaimedEvent>) -> Result<usize, StoreError> {
        match self.process(leased).await {
            // The store went away mid-round: give the events back without counting this as
            // one of their attempts (the store's trouble is not theirs).
            Err(e) if e.is_unavailable() => {
                if let Err(again) = self.store.give_back(&self.owner).await {
                    tracing::warn!(error = %again, "cannot give back leased events; their leases expire by themselves");
                }
                Err(e)
            }
            other => other,
        }
    }

    /// Evaluates and completes leased events; returns how many there were.
    async fn process(&self, claimed: Vec<ClaimedEvent>) -> Result<usize, StoreError> {
        let taken = claimed.len();
        let attempts: std::collections::HashMap<EventId, u32> = claimed
            .iter()
            .map(|c| (c.event.id.clone(), c.attempt))
            .collect();
        let evaluated = self.evaluate(claimed).await?;
        let mut failures: Vec<(EventId, String)> = Vec::new();
        let mut processed = Vec::with_capacity(evaluated.len());
        for (id, result) in evaluated {
            match result {
                Ok(completion) => processed.push(completion),
                Err(error) => failures.push((id, error)),
            }
        }
        // Events whose completion the store refused (they fail alone, below).
        let mut refused = 0_u64;
        // Room in the dispatcher for the actions planned now, which go to it leased.
        let wanted = processed
            .iter()
            .flat_map(|c| &c.evaluations)
            .map(|e| match &e.verdict {
                Verdict::Fired { planned, .. } => planned.len(),
                _ => 0,
            })
            .sum();
        let now = self.clock.now();
        let room = match &self.dispatch {
            Some(dispatch) => dispatch.room(wanted),
            None => Vec::new(),
        };
        let handoff = self.dispatch.as_ref().map(|dispatch| ActionHandoff {
            lease: dispatch.lease(now.timestamp_millis()),
            kinds: &self.kinds,
            room: room.len(),
        });
        let mut handed = 0;
        let done = match self
            .store
            .complete_leasing(&self.owner, &processed, now, handoff)
            .await
        {
            Ok((done, actions)) => {
                self.health.wrote(Ok(()));
                handed = actions.len();
                let until_ms = handoff.map_or(0, |h| h.lease.until_ms);
                for (permit, row) in room.into_iter().zip(actions) {
                    permit.send(Handed { row, until_ms });
                }
                done
            }
            Err(e) if e.is_unavailable() => return Err(e),
            // Something in one event's records cannot be stored: complete them one by one,
            // so that it fails alone and the others go on.
            Err(e) => {
                tracing::warn!(error = %e, events = processed.len(), "completing a batch failed, completing one by one");
                let mut done = 0;
                for one in processed.chunks(1) {
                    match self
                        .store
                        .complete(&self.owner, one, self.clock.now())
                        .await
                    {
                        Ok(n) => done += n,
                        Err(e) if e.is_unavailable() => return Err(e),
                        Err(e) => {
                            refused += 1;
                            failures.push((
                                one[0].event.clone(),
                                format!("cannot store its evaluations: {e}"),
                            ));
                        }
                    }
                }
                done
            }
        };
        self.record_failures(&failures, &attempts).await?;
        // Actions planned but not handed over (delayed, of a kind delivered elsewhere, or
        // beyond the dispatcher's room) wait in the store.
        if wanted > handed {
            self.planned.notify_one();
        }
        if done + refused < processed.len() as u64 {
            tracing::warn!(
                taken,
                completed = done,
                "lost the lease on some events; another instance has them"
            );
        }
        Ok(taken)
    }

    /// Evaluates a batch on a blocking thread (a slow script never stalls the async workers
    /// that answer HTTP), with the facts its rules read fetched first. Each event's result is
    /// its records, or why they could not be made.
    async fn evaluate(
        &self,
        claimed: Vec<ClaimedEvent>,
    ) -> Result<Vec<(EventId, Result<Completion, String>)>, StoreError> {
        // One rule set for the whole round: a reload never splits an event's evaluation.
        let rules = self.rules.current();
        let set_id: Arc<str> = rules.id().into();
        let now = self.clock.now();
        let events: Vec<&crate::normalize::Event> = claimed.iter().map(|c| &c.event).collect();
        let facts = Arc::new(crate::rules::facts::gather(&rules, &events, &self.store, now).await?);
        let clock = self.clock.clone();
        let ids: Vec<EventId> = claimed.iter().map(|c| c.event.id.clone()).collect();
        let evaluated = tokio::task::spawn_blocking(move || {
            claimed
                .iter()
                .map(|c| {
                    let event = &c.event;
                    // Every line of its processing carries the event's id (the rules' lines,
                    // at debug, their rule's too).
                    let _span = tracing::info_span!("event", event_id = %event.id).entered();
                    let one = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                        let processed = rules.process(event, clock.now(), &facts);
                        for e in &processed.evaluations {
                            let outcome = match &e.outcome {
                                Outcome::Fired { .. } => "fired",
                                Outcome::Waiting { .. } => "waiting",
                                Outcome::Skipped { .. } => "skipped",
                                Outcome::NotMatched { .. } => "not_matched",
                                Outcome::Failed { .. } => "failed",
                            };
                            metrics::counter!("signalbox_evaluations_total", "rule" => e.rule_id.clone(), "outcome" => outcome).increment(1);
                            match &e.outcome {
                                Outcome::Failed { error, line } => {
                                    metrics::counter!("signalbox_rule_failures_total", "rule" => e.rule_id.clone()).increment(1);
                                    tracing::warn!(event_id = %event.id, rule_id = %e.rule_id, line = ?line, error = %error, "rule failed");
                                }
                                Outcome::Fired { .. } => {
                                    metrics::counter!("signalbox_rule_fired_total", "rule" => e.rule_id.clone()).increment(1);
                                }
                                _ => {}
                            }
                        }
                        Completion {
                            event: event.id.clone(),
                            evaluations: processed.evaluations.iter().filter_map(record).collect(),
                            effects: effects(processed.effects),
                            rule_set: Some(set_id.clone()),
                        }
                    }));
                    (event.id.clone(), one.map_err(|_| "internal error while processing it (a bug in Signalbox; please report it)".to_owned()))
                })
                .collect::<Vec<_>>()
        })
        .await;
        Ok(evaluated.unwrap_or_else(|e| {
            tracing::error!(error = %e, "evaluating a batch failed");
            ids.into_iter()
                .map(|id| (id, Err("internal error while processing it".to_owned())))
                .collect()
        }))
    }

    /// Gives failed events back to be tried later, or parks those out of attempts.
    async fn record_failures(
        &self,
        failures: &[(EventId, String)],
        attempts: &std::collections::HashMap<EventId, u32>,
    ) -> Result<(), StoreError> {
        if failures.is_empty() {
            return Ok(());
        }
        let now = self.clock.now();
        let records: Vec<EventFailure<'_>> = failures
            .iter()
            .map(|(id, error)| {
                let attempt = attempts.get(id).copied().unwrap_or(u32::MAX);
                let retry_at = next_delay(&self.config.retry, attempt, None, fastrand::f64())
                    .and_then(|delay| chrono::Duration::from_std(delay).ok())
                    .map(|delay| now + delay);
                match retry_at {
                    Some(at) => tracing::warn!(event_id = %id, attempt, retry_at = %at, %error, "processing an event failed; trying again later"),
                    None => tracing::error!(event_id = %id, attempt, %error, "processing an event failed on every attempt; parked as failed"),
                }
                EventFailure {
                    id,
                    error,
                    retry_at,
                }
            })
            .collect();
        self.store.fail_events(&self.owner, &records).await?;
        Ok(())
    }
}

/// What the store keeps of an evaluation: fired (with its planned actions, frozen in their
/// versioned stored form, and its throttle gate) or failed. Rules that did not match or
/// skipped leave no record.
pub(crate) fn record(evaluation: &Evaluation) -> Option<NewEvaluation> {
    let verdict = match &evaluation.outcome {
        Outcome::Fired {
            actions,
            throttle,
            timing,
        } => Verdict::Fired {
            actions: serde_json::to_value(actions).expect("action configs serialize"),
            planned: actions
                .iter()
                .enumerate()
                .map(|(index, action)| {
                    let when = timing.get(index).cloned().unwrap_or_default();
                    NewAction {
                        kind: action.kind(),
                        target: action.target(),
                        payload: serde_json::to_value(Payload::current(action.stored()))
                            .expect("stored actions serialize"),
                        due: when.due,
                        cancel: when
                            .cancel
                            .map(|(subject_ref, types)| CancelOn { subject_ref, types }),
                    }
                })
                .collect(),
            throttle: throttle.as_ref().map(|(key, window)| ThrottleGate {
                key: key.clone(),
                window: *window,
            }),
        },
        Outcome::Failed { error, line } => Verdict::Failed {
            // An error may quote the author's text; NUL cannot be stored in PostgreSQL text.
            error: error.replace('\0', "\u{FFFD}"),
            line: line.map(|l| l as i64),
        },
        Outcome::Waiting {
            subject,
            awaits,
            deadline,
        } => Verdict::Waiting {
            check: NewCheck {
                subject_ref: subject.clone(),
                awaits: awaits.clone(),
                deadline: *deadline,
            },
        },
        Outcome::Skipped { .. } | Outcome::NotMatched { .. } => return None,
    };
    Some(NewEvaluation {
        rule_id: evaluation.rule_id.clone(),
        rule_version: evaluation.rule_version.clone(),
        verdict,
        logs: serde_json::to_value(&evaluation.logs).expect("strings serialize"),
        duration_us: i64::try_from(evaluation.duration.as_micros()).unwrap_or(i64::MAX),
    })
}

/// The store's form of what an event's processing changes besides its evaluations.
fn effects(effects: crate::rules::Effects) -> Effects {
    Effects {
        state: effects
            .state
            .into_iter()
            .map(|w| StateWrite {
                subject_ref: w.subject,
                name: w.name,
                value: w.value,
                expires_at: w.expires_at,
                rule_id: w.rule_id,
            })
            .collect(),
        resolve_checks: effects
            .checks
            .into_iter()
            .map(|(id, end)| {
                let status = match end {
                    crate::rules::CheckEnd::Satisfied => CheckStatus::Satisfied,
                    crate::rules::CheckEnd::Cancelled => CheckStatus::Cancelled,
                };
                (id, status)
            })
            .collect(),
        cancel_actions: effects.cancelled,
    }
}

/// The rules' questions, answered by the store with indexed, bounded queries.
impl crate::rules::facts::Recall for Store {
    type Error = StoreError;

    async fn history(&self, query: &Query) -> Result<Vec<Event>, StoreError> {
        let (key, value) = match &query.key {
            Some((key, value)) => (key.name(), Some(value.as_str())),
            None => ("claim", None),
        };
        Store::history(
            self,
            &HistoryQuery {
                key,
                value,
                types: &query.types,
                after: query.after,
                until: query.until,
                limit: query.limit,
            },
        )
        .await
    }

    async fn dead_actions(
        &self,
        after: DateTime<Utc>,
        until: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<serde_json::Value>, StoreError> {
        Ok(self
            .dead_actions_between(after, until, limit)
            .await?
            .iter()
            .map(|a| serde_json::to_value(a).unwrap_or_default())
            .collect())
    }

    async fn history_many(
        &self,
        key: crate::rules::time::SubjectKey,
        values: &[&str],
        types: &[String],
        after: DateTime<Utc>,
        until: DateTime<Utc>,
        per_value: u32,
    ) -> Result<Vec<Event>, StoreError> {
        let mut found = Vec::new();
        // 500 subjects per statement (a batch has at most a few hundred).
        for chunk in values.chunks(500) {
            found.extend(
                Store::history_many(self, key.name(), chunk, types, after, until, per_value)
                    .await?,
            );
        }
        Ok(found)
    }

    async fn events(&self, ids: &[&str]) -> Result<Vec<Event>, StoreError> {
        let mut found = Vec::new();
        for chunk in ids.chunks(500) {
            found.extend(self.events_by_ids(chunk).await?);
        }
        Ok(found)
    }

    async fn pending_checks(
        &self,
        refs: &[String],
        kind: &str,
        limit: u32,
    ) -> Result<Vec<PendingCheck>, StoreError> {
        Ok(self
            .pending_checks_for(refs, kind, limit)
            .await?
            .into_iter()
            .map(|c| PendingCheck {
                id: c.id,
                rule_id: c.rule_id,
                event_id: c.event_id,
                subject: c.subject_ref,
                deadline: c.deadline,
            })
            .collect())
    }

    async fn state(
        &self,
        refs: &[String],
        now: DateTime<Utc>,
    ) -> Result<Vec<(String, String, serde_json::Value)>, StoreError> {
        Ok(self
            .subject_state(refs, now)
            .await?
            .into_iter()
            .map(|e| (e.subject_ref, e.name, e.value))
            .collect())
    }

    async fn cancellable(
        &self,
        refs: &[String],
        limit: u32,
    ) -> Result<Vec<(String, String, Vec<String>)>, StoreError> {
        self.cancellable_actions(refs, limit).await
    }

    async fn paused(&self, claims: &[&str]) -> Result<Vec<(String, String)>, StoreError> {
        Ok(self.paused_claims(claims).await?.into_iter().collect())
    }
}
