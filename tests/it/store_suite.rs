//! The store's promises, on both backends: dedupe, exclusive leases, resumption.

use std::collections::BTreeSet;

crate::on_both_backends!(cases:
    duplicates_in_one_batch_are_stored_once,
    claims_are_exclusive_until_the_lease_expires,
    concurrent_claimers_never_take_the_same_event,
    throttled_evaluations_plan_nothing_and_attempts_move_actions_on,
    an_action_is_retaken_once_its_lease_expires,
    failing_events_are_retried_then_parked_until_put_back,
    an_event_that_never_finishes_is_parked,
    events_out_of_attempts_are_never_taken_again,
    strategy_states_answer_which_claims_are_paused,
    pruning_removes_what_is_past_retention_and_nothing_else,
    token_uses_past_retention_are_pruned_in_batches,
    history_finds_a_subjects_events_in_a_window,
    history_queries_use_the_subject_indexes,
    checks_are_armed_with_the_evaluation_and_resolved_once,
    delayed_actions_wait_and_a_later_event_cancels_them,
    subject_state_is_written_with_the_completion_and_expires,
    schedule_state_never_moves_back,
    a_pending_check_keeps_its_event_and_resolved_checks_go,
);

/// Every migration exists for both dialects under the same number and name.
#[test]
fn migration_folders_match() {
    let names = |dir: &str| -> BTreeSet<String> {
        std::fs::read_dir(format!("{}/migrations/{dir}", env!("CARGO_MANIFEST_DIR")))
            .expect("migrations folder")
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect()
    };
    let sqlite = names("sqlite");
    assert!(!sqlite.is_empty());
    assert_eq!(sqlite, names("postgres"));
}

mod cases {
    use std::collections::BTreeSet;

    use chrono::{Duration, Utc};
    use signalbox::config::StoreConfig;
    use signalbox::normalize::{Event, EventId};
    use signalbox::store::{Completion, Ingest, NewDelivery, Store, Stored};

    use crate::support::{TestDb, event_json};

    /// Processing attempts before an event is parked.
    const ATTEMPTS: u32 = 5;

    async fn open(db: &TestDb) -> Store {
        Store::open(&db.url, &StoreConfig::default())
            .await
            .expect("store opens")
    }

    fn event(source_event_id: &str) -> Event {
        signalbox::normalize::canonical::parse_body(
            event_json(source_event_id).as_bytes(),
            Utc::now(),
        )
        .unwrap()
        .remove(0)
    }

    fn ingest(events: Vec<Event>) -> Ingest {
        let delivery = NewDelivery {
            id: NewDelivery::new_id(),
            source: "api".into(),
            received_at: Utc::now(),
            headers: serde_json::json!({}),
            body: bytes::Bytes::from_static(b"{}"),
            verification: "unsigned",
            reason: None,
            body_size: None,
            token: None,
        };
        Ingest { delivery, events }
    }

    /// Events completed with no rule evaluations.
    fn unevaluated(ids: &[EventId]) -> Vec<Completion> {
        ids.iter()
            .map(|id| Completion::new(id.clone(), Vec::new()))
            .collect()
    }

    async fn seed(store: &Store, n: usize) -> Vec<EventId> {
        let events: Vec<Event> = (0..n).map(|i| event(&format!("e-{i}"))).collect();
        let ids = events.iter().map(|e| e.id.clone()).collect();
        store.insert_batch(&[ingest(events)]).await.unwrap();
        ids
    }

    pub(super) async fn duplicates_in_one_batch_are_stored_once(db: TestDb) {
        let store = open(&db).await;
        let first = event("same");
        let results = store
            .insert_batch(&[
                ingest(vec![first.clone()]),
                ingest(vec![event("same"), event("other")]),
            ])
            .await
            .unwrap();
        assert_eq!(results[0], vec![Stored::New(first.id.clone())]);
        assert_eq!(results[1][0], Stored::Duplicate(first.id.clone()));
        assert!(matches!(results[1][1], Stored::New(_)));
        assert_eq!(store.count_events().await.unwrap(), (2, 0));
        store.close().await;
    }

    pub(super) async fn claims_are_exclusive_until_the_lease_expires(db: TestDb) {
        let store = open(&db).await;
        let ids = seed(&store, 10).await;
        let now = Utc::now();
        let lease = now + Duration::seconds(30);

        let a = store
            .claim_pending("a", 6, now, lease, ATTEMPTS)
            .await
            .unwrap();
        let a_ids: Vec<EventId> = a.iter().map(|e| e.event.id.clone()).collect();
        assert_eq!(a_ids, ids[..6], "the oldest events first, in order");
        let b = store
            .claim_pending("b", 100, now, lease, ATTEMPTS)
            .await
            .unwrap();
        assert_eq!(b.len(), 4, "b gets only what a does not hold");
        assert!(
            store
                .claim_pending("b", 100, now, lease, ATTEMPTS)
                .await
                .unwrap()
                .is_empty()
        );

        assert_eq!(
            store
                .complete("b", &unevaluated(&a_ids), now)
                .await
                .unwrap(),
            0,
            "b cannot complete a's events"
        );
        let b_ids: Vec<EventId> = b.iter().map(|e| e.event.id.clone()).collect();
        assert_eq!(
            store
                .complete("b", &unevaluated(&b_ids), now)
                .await
                .unwrap(),
            4
        );

        // a died: once its lease has expired, b takes its events.
        let later = lease + Duration::seconds(1);
        let retaken = store
            .claim_pending("b", 100, later, later + Duration::seconds(30), ATTEMPTS)
            .await
            .unwrap();
        assert_eq!(
            retaken
                .iter()
                .map(|e| e.event.id.clone())
                .collect::<Vec<_>>(),
            a_ids
        );
        assert_eq!(
            store
                .complete("a", &unevaluated(&a_ids), later)
                .await
                .unwrap(),
            0,
            "a lost its lease"
        );
        assert_eq!(
            store
                .complete("b", &unevaluated(&a_ids), later)
                .await
                .unwrap(),
            6
        );
        assert_eq!(store.count_events().await.unwrap(), (0, 10));
        store.close().await;
    }

    pub(super) async fn concurrent_claimers_never_take_the_same_event(db: TestDb) {
        let store = open(&db).await;
        let ids: BTreeSet<EventId> = seed(&store, 300).await.into_iter().collect();
        let worker = |owner: &'static str| {
            let store = store.clone();
            tokio::spawn(async move {
                let mut taken = Vec::new();
                loop {
                    let now = Utc::now();
                    let batch = store
                        .claim_pending(owner, 7, now, now + Duration::seconds(60), ATTEMPTS)
                        .await
                        .unwrap();
                    if batch.is_empty() {
                        return taken;
                    }
                    let batch_ids: Vec<EventId> = batch.into_iter().map(|e| e.event.id).collect();
                    assert_eq!(
                        store
                            .complete(owner, &unevaluated(&batch_ids), now)
                            .await
                            .unwrap(),
                        batch_ids.len() as u64
                    );
                    taken.extend(batch_ids);
                }
            })
        };
        let (a, b, c) = tokio::join!(worker("a"), worker("b"), worker("c"));
        let all: Vec<EventId> = [a.unwrap(), b.unwrap(), c.unwrap()].concat();
        assert_eq!(all.len(), 300, "no event taken twice");
        assert_eq!(
            all.into_iter().collect::<BTreeSet<_>>(),
            ids,
            "every event taken"
        );
        store.close().await;
    }

    fn fired(rule: &str, key: Option<&str>) -> signalbox::store::NewEvaluation {
        use signalbox::store::{NewAction, NewEvaluation, ThrottleGate, Verdict};
        let action = serde_json::json!({"type": "emit", "event_type": "claim.escalated"});
        NewEvaluation {
            rule_id: rule.into(),
            rule_version: "v1".into(),
            verdict: Verdict::Fired {
                actions: serde_json::json!([action]),
                planned: vec![NewAction {
                    kind: "emit",
                    target: "emit".into(),
                    payload: serde_json::json!({"version": "1", "action": action}),
                    due: None,
                    cancel: None,
                }],
                throttle: key.map(|key| ThrottleGate {
                    key: key.into(),
                    window: std::time::Duration::from_secs(3600),
                }),
            },
            logs: serde_json::json!([]),
            duration_us: 1,
        }
    }

    pub(super) async fn throttled_evaluations_plan_nothing_and_attempts_move_actions_on(
        db: TestDb,
    ) {
        use signalbox::store::{
            ActionStatus, AttemptOutcome, EvaluationOutcome, NewAttempt, NextStep,
        };
        let store = open(&db).await;
        let ids = seed(&store, 2).await;
        let now = Utc::now();
        store
            .claim_pending("a", 10, now, now + Duration::seconds(60), ATTEMPTS)
            .await
            .unwrap();
        let processed = vec![
            Completion::new(ids[0].clone(), vec![fired("notify", Some("C-1"))]),
            Completion::new(ids[1].clone(), vec![fired("notify", Some("C-1"))]),
        ];
        assert_eq!(store.complete("a", &processed, now).await.unwrap(), 2);
        let outcomes = |records: Vec<signalbox::store::EvaluationRecord>| {
            records.iter().map(|r| r.outcome).collect::<Vec<_>>()
        };
        assert_eq!(
            outcomes(store.evaluations_for_event(ids[0].as_str()).await.unwrap()),
            [EvaluationOutcome::Fired]
        );
        assert_eq!(
            outcomes(store.evaluations_for_event(ids[1].as_str()).await.unwrap()),
            [EvaluationOutcome::Throttled],
            "the same key within the window is throttled"
        );
        let actions = store.list_actions(None, None, 10).await.unwrap();
        assert_eq!(actions.len(), 1, "a throttled evaluation plans nothing");
        assert_eq!(actions[0].status, ActionStatus::Pending);

        // Leased, attempted (retry later), then out of attempts: dead; `retry` puts it back.
        let now_ms = now.timestamp_millis();
        let leased = store
            .claim_due_actions("d", 10, now_ms, now_ms + 60_000, &["emit"])
            .await
            .unwrap();
        assert_eq!(leased.len(), 1);
        assert!(
            store
                .claim_due_actions("e", 10, now_ms, now_ms + 60_000, &["emit"])
                .await
                .unwrap()
                .is_empty(),
            "a leased action is not taken twice"
        );
        let attempt = |next, outcome| NewAttempt {
            action_id: &leased[0].id,
            attempt: 1,
            started_at: now,
            duration_ms: 3,
            outcome,
            status_code: None,
            reply: None,
            error: Some("store busy"),
            next,
        };
        assert_eq!(
            store
                .record_attempts(
                    "e",
                    &[attempt(
                        NextStep::RetryAt(now_ms + 1000),
                        AttemptOutcome::Retry
                    )],
                    now
                )
                .await
                .unwrap(),
            [false],
            "only the lease holder records"
        );
        assert_eq!(
            store
                .record_attempts(
                    "d",
                    &[attempt(
                        NextStep::RetryAt(now_ms + 1000),
                        AttemptOutcome::Retry
                    )],
                    now
                )
                .await
                .unwrap(),
            [true]
        );
        assert!(
            store
                .claim_due_actions("d", 10, now_ms + 999, now_ms + 60_000, &["emit"])
                .await
                .unwrap()
                .is_empty(),
            "not due before its next attempt"
        );
        let retaken = store
            .claim_due_actions("d", 10, now_ms + 1000, now_ms + 60_000, &["emit"])
            .await
            .unwrap();
        assert_eq!((retaken.len(), retaken[0].attempts), (1, 1));
        let mut dead = attempt(NextStep::Dead, AttemptOutcome::Failed);
        dead.attempt = 2;
        store.record_attempts("d", &[dead], now).await.unwrap();
        let attempts = store.attempts(&leased[0].id).await.unwrap();
        assert_eq!(
            attempts.iter().map(|a| a.outcome).collect::<Vec<_>>(),
            [AttemptOutcome::Retry, AttemptOutcome::Failed]
        );
        assert_eq!(
            store
                .list_actions(Some(ActionStatus::Dead), None, 10)
                .await
                .unwrap()
                .len(),
            1
        );
        assert_eq!(
            store
                .retry_actions(None, Some("notify"), now)
                .await
                .unwrap(),
            1
        );
        let back = store.list_actions(None, None, 10).await.unwrap();
        assert_eq!(
            (back[0].status, back[0].attempts),
            (ActionStatus::Pending, 0)
        );
        store.close().await;
    }

    pub(super) async fn an_action_is_retaken_once_its_lease_expires(db: TestDb) {
        use signalbox::store::{AttemptOutcome, NewAttempt, NextStep};
        let store = open(&db).await;
        let ids = seed(&store, 1).await;
        let now = Utc::now();
        store
            .claim_pending("a", 10, now, now + Duration::seconds(60), ATTEMPTS)
            .await
            .unwrap();
        let processed = vec![Completion::new(ids[0].clone(), vec![fired("notify", None)])];
        store.complete("a", &processed, now).await.unwrap();

        // Instance d takes the action for 60 s, then dies without recording an attempt.
        let now_ms = now.timestamp_millis();
        let lease_ms = 60_000;
        let taken = store
            .claim_due_actions("d", 10, now_ms, now_ms + lease_ms, &["emit"])
            .await
            .unwrap();
        assert_eq!(taken.len(), 1);
        assert!(
            store
                .claim_due_actions(
                    "e",
                    10,
                    now_ms + lease_ms - 1,
                    now_ms + 2 * lease_ms,
                    &["emit"]
                )
                .await
                .unwrap()
                .is_empty(),
            "held while the lease lasts"
        );
        let retaken = store
            .claim_due_actions(
                "e",
                10,
                now_ms + lease_ms + 1,
                now_ms + 2 * lease_ms,
                &["emit"],
            )
            .await
            .unwrap();
        assert_eq!(
            retaken.iter().map(|a| &a.id).collect::<Vec<_>>(),
            [&taken[0].id],
            "e retakes it once d's lease has expired"
        );
        let done = |attempt| NewAttempt {
            action_id: &taken[0].id,
            attempt,
            started_at: now,
            duration_ms: 3,
            outcome: AttemptOutcome::Delivered,
            status_code: Some(200),
            reply: None,
            error: None,
            next: NextStep::Delivered,
        };
        assert_eq!(
            store.record_attempts("d", &[done(1)], now).await.unwrap(),
            [false],
            "the old holder's late result is not recorded"
        );
        assert_eq!(
            store.record_attempts("e", &[done(1)], now).await.unwrap(),
            [true]
        );
        assert_eq!(store.attempts(&taken[0].id).await.unwrap().len(), 1);
        store.close().await;
    }

    pub(super) async fn failing_events_are_retried_then_parked_until_put_back(db: TestDb) {
        use signalbox::store::{EventFailure, EventFilter, EventState};
        let store = open(&db).await;
        let ids = seed(&store, 2).await;
        let now = Utc::now();
        let lease = |t| t + Duration::seconds(30);
        let first = store
            .claim_pending("a", 10, now, lease(now), 2)
            .await
            .unwrap();
        assert_eq!(first.iter().map(|c| c.attempt).collect::<Vec<_>>(), [1, 1]);
        store
            .complete("a", &unevaluated(&ids[1..]), now)
            .await
            .unwrap();
        let retry_at = now + Duration::seconds(5);
        let failure = |retry_at| EventFailure {
            id: &ids[0],
            error: "cannot store its evaluations",
            retry_at,
        };
        assert_eq!(
            store
                .fail_events("b", &[failure(Some(retry_at))])
                .await
                .unwrap(),
            0,
            "only the lease holder records a failure"
        );
        assert_eq!(
            store
                .fail_events("a", &[failure(Some(retry_at))])
                .await
                .unwrap(),
            1
        );
        let early = retry_at - Duration::milliseconds(1);
        assert!(
            store
                .claim_pending("a", 10, early, lease(early), 2)
                .await
                .unwrap()
                .is_empty(),
            "not taken before its retry time"
        );
        let again = store
            .claim_pending("a", 10, retry_at, lease(retry_at), 2)
            .await
            .unwrap();
        assert_eq!(
            again
                .iter()
                .map(|c| (c.event.id.clone(), c.attempt))
                .collect::<Vec<_>>(),
            [(ids[0].clone(), 2)]
        );
        store.fail_events("a", &[failure(None)]).await.unwrap();
        let failed_filter = EventFilter {
            state: Some(EventState::Failed),
            limit: 10,
            max_bytes: usize::MAX,
            ..Default::default()
        };
        let failed = store.list_events(&failed_filter).await.unwrap().items;
        assert_eq!(failed.len(), 1);
        let failure_of = failed[0].failure.as_ref().expect("the reason is kept");
        assert_eq!(
            (
                failed[0].event.id.clone(),
                failure_of.attempts,
                failure_of.error.as_str(),
                failure_of.retry_at
            ),
            (ids[0].clone(), 2, "cannot store its evaluations", None)
        );
        let later = retry_at + Duration::hours(1);
        assert!(
            store
                .claim_pending("a", 10, later, lease(later), 2)
                .await
                .unwrap()
                .is_empty(),
            "a parked event is not taken"
        );
        assert_eq!(store.retry_events(&[]).await.unwrap(), 1);
        let back = store
            .claim_pending("a", 10, later, lease(later), 2)
            .await
            .unwrap();
        assert_eq!(
            back.iter()
                .map(|c| (c.event.id.clone(), c.attempt))
                .collect::<Vec<_>>(),
            [(ids[0].clone(), 1)],
            "retried from its first attempt"
        );
        // A round that failed for the store's sake gives its events back uncounted.
        assert_eq!(store.give_back("a").await.unwrap(), 1);
        let again = store
            .claim_pending("b", 10, later, lease(later), 2)
            .await
            .unwrap();
        assert_eq!(
            again.iter().map(|c| c.attempt).collect::<Vec<_>>(),
            [1],
            "the given-back lease is not an attempt"
        );
        store.close().await;
    }

    /// An event that stops the engine every time it is processed (so no failure is ever
    /// recorded) is parked once it has been taken `max_attempts` times.
    pub(super) async fn an_event_that_never_finishes_is_parked(db: TestDb) {
        let store = open(&db).await;
        let ids = seed(&store, 1).await;
        let now = taken_twice_by_dying_instances(&store, 1).await;
        assert!(
            store
                .claim_pending("b", 10, now, now + Duration::seconds(30), 2)
                .await
                .unwrap()
                .is_empty()
        );
        let failed = parked(&store).await;
        assert_eq!(failed.len(), 1);
        assert_eq!(failed[0].event.id, ids[0]);
        assert!(
            failed[0]
                .failure
                .as_ref()
                .unwrap()
                .error
                .contains("the engine stopped while processing it"),
            "{:?}",
            failed[0].failure
        );
        store.close().await;
    }

    /// The `n` seeded events claimed twice (`max_attempts` 2), each time by an instance that
    /// dies; returns a time at which the second lease has run out.
    async fn taken_twice_by_dying_instances(store: &Store, n: usize) -> chrono::DateTime<Utc> {
        let mut now = Utc::now();
        for attempt in 1..=2 {
            let taken = store
                .claim_pending("a", 10, now, now + Duration::seconds(30), 2)
                .await
                .unwrap();
            assert_eq!(
                taken.iter().map(|c| c.attempt).collect::<Vec<_>>(),
                vec![attempt; n]
            );
            // The instance dies; its lease runs out.
            now += Duration::seconds(31);
        }
        now
    }

    /// The events parked as failed, newest first.
    async fn parked(store: &Store) -> Vec<signalbox::store::StoredEvent> {
        use signalbox::store::{EventFilter, EventState};
        let failed = EventFilter {
            state: Some(EventState::Failed),
            limit: 10,
            max_bytes: usize::MAX,
            ..Default::default()
        };
        store.list_events(&failed).await.unwrap().items
    }

    /// A claim parks the events out of attempts among those it would take, and never takes
    /// one beyond them: two poison events and claims of one at a time stop the engine no more.
    pub(super) async fn events_out_of_attempts_are_never_taken_again(db: TestDb) {
        let store = open(&db).await;
        let ids = seed(&store, 2).await;
        let now = taken_twice_by_dying_instances(&store, 2).await;
        for _ in 0..2 {
            let taken = store
                .claim_pending("b", 1, now, now + Duration::seconds(30), 2)
                .await
                .unwrap();
            assert!(taken.is_empty(), "taken a third time: {taken:?}");
        }
        let failed = parked(&store).await;
        let mut parked: Vec<_> = failed.iter().map(|e| e.event.id.clone()).collect();
        parked.sort();
        assert_eq!(parked, ids, "both parked, one per claim");
        store.close().await;
    }

    pub(super) async fn strategy_states_answer_which_claims_are_paused(db: TestDb) {
        let store = open(&db).await;
        let now = Utc::now();
        store
            .set_strategy_state(
                "receeve",
                "C-1",
                true,
                "pause_rule",
                Some("sms failed"),
                now,
            )
            .await
            .unwrap();
        store
            .set_strategy_state("amili", "C-2", true, "pause_rule", None, now)
            .await
            .unwrap();
        store
            .set_strategy_state("amili", "C-2", false, "resume_rule", None, now)
            .await
            .unwrap();
        assert_eq!(
            store.strategy_paused_by("receeve", "C-1").await.unwrap(),
            Some("pause_rule".to_owned())
        );
        assert_eq!(
            store.strategy_paused_by("amili", "C-2").await.unwrap(),
            None
        );
        assert_eq!(
            store.paused_claims(&["C-1", "C-2", "C-3"]).await.unwrap(),
            [("receeve".to_owned(), "C-1".to_owned())]
        );
        store.close().await;
    }

    /// A delivery received at `at`, refused (with a reason) or not, carrying `events`.
    fn delivery_at(at: chrono::DateTime<Utc>, refused: bool, events: Vec<Event>) -> Ingest {
        let mut ingest = ingest(events);
        ingest.delivery.received_at = at;
        if refused {
            ingest.delivery.verification = "rejected";
            ingest.delivery.reason = Some("signature rejected: no".into());
        }
        ingest
    }

    /// Two instances prune at once (on PostgreSQL; a SQLite file has one engine): together they
    /// remove what is past retention, each row once, in batches of 4, and nothing else.
    pub(super) async fn pruning_removes_what_is_past_retention_and_nothing_else(db: TestDb) {
        use signalbox::store::retention::{PASS_BUDGET, Pruned, RetentionConfig};
        use signalbox::store::{AttemptOutcome, EventState, NewAttempt, NextStep};
        let store = open(&db).await;
        let now = Utc::now();
        let ago = |days: i64| now - Duration::days(days);

        // Old (200 days) events: processed with nothing planned, processed with a delivered
        // action, processed with an action still to retry, and one still pending; and a
        // processed event of yesterday with a delivered action.
        let mut events: Vec<Event> = ["bare", "finished", "retrying", "pending", "recent"]
            .iter()
            .map(|id| event(id))
            .collect();
        for e in &mut events[..4] {
            e.received_at = ago(200);
        }
        events[4].received_at = ago(1);
        let ids: Vec<EventId> = events.iter().map(|e| e.id.clone()).collect();
        let recent = events.pop().unwrap();
        let mut batch = vec![
            delivery_at(ago(200), false, events),
            delivery_at(ago(1), false, vec![recent]),
        ];
        // Past retention: 9 more accepted deliveries (31 days: duplicates, say) and 10 refused
        // ones (8 days). Within: 2 refused (6 days) and 1 accepted (29 days).
        batch.extend((0..9).map(|_| delivery_at(ago(31), false, Vec::new())));
        batch.extend((0..10).map(|_| delivery_at(ago(8), true, Vec::new())));
        batch.extend((0..2).map(|_| delivery_at(ago(6), true, Vec::new())));
        batch.push(delivery_at(ago(29), false, Vec::new()));
        store.insert_batch(&batch).await.unwrap();

        let claimed = store
            .claim_pending("a", 10, now, now + Duration::seconds(60), ATTEMPTS)
            .await
            .unwrap();
        assert_eq!(claimed.len(), 5);
        let (bare, finished, retrying, pending, recent) =
            (&ids[0], &ids[1], &ids[2], &ids[3], &ids[4]);
        let old = vec![
            Completion::new(bare.clone(), Vec::new()),
            Completion::new(finished.clone(), vec![fired("notify", None)]),
            Completion::new(retrying.clone(), vec![fired("notify", None)]),
        ];
        assert_eq!(store.complete("a", &old, ago(200)).await.unwrap(), 3);
        let yesterday = vec![Completion::new(recent.clone(), vec![fired("notify", None)])];
        assert_eq!(store.complete("a", &yesterday, ago(1)).await.unwrap(), 1);
        let now_ms = now.timestamp_millis();
        let actions = store
            .claim_due_actions("d", 10, now_ms, now_ms + 60_000, &["emit"])
            .await
            .unwrap();
        assert_eq!(actions.len(), 3);
        let action_of = |event: &EventId| {
            actions
                .iter()
                .find(|a| a.event_id == event.as_str())
                .unwrap()
                .id
                .clone()
        };
        for (event, next, at) in [
            (finished, NextStep::Delivered, ago(200)),
            (retrying, NextStep::RetryAt(now_ms + 60_000), ago(200)),
            (recent, NextStep::Delivered, ago(1)),
        ] {
            let id = action_of(event);
            let attempt = NewAttempt {
                action_id: &id,
                attempt: 1,
                started_at: at,
                duration_ms: 3,
                outcome: if next == NextStep::Delivered {
                    AttemptOutcome::Delivered
                } else {
                    AttemptOutcome::Retry
                },
                status_code: None,
                reply: None,
                error: None,
                next,
            };
            assert_eq!(
                store.record_attempts("d", &[attempt], at).await.unwrap(),
                [true]
            );
        }

        let config = RetentionConfig {
            batch_size: 4,
            ..RetentionConfig::default()
        };
        let pruned = if store.is_shared() {
            let other = open(&db).await;
            let (a, b) = tokio::join!(
                store.prune(&config, now, PASS_BUDGET),
                other.prune(&config, now, PASS_BUDGET)
            );
            other.close().await;
            let (a, b) = (a.unwrap(), b.unwrap());
            let mut sum = a;
            for (table, n) in b.removed {
                *sum.removed.entry(table).or_default() += n;
            }
            sum
        } else {
            store.prune(&config, now, PASS_BUDGET).await.unwrap()
        };
        let expected: Pruned = Pruned {
            removed: [
                ("deliveries", 10),
                ("rejected_deliveries", 10),
                ("events", 2),
                ("evaluations", 1),
                ("actions", 1),
                ("attempts", 1),
            ]
            .into_iter()
            .collect(),
            more: false,
        };
        assert_eq!(pruned, expected);

        for gone in [bare, finished] {
            assert!(store.get_event(gone.as_str()).await.unwrap().is_none());
        }
        let kept = store.get_event(pending.as_str()).await.unwrap().unwrap();
        assert_eq!(kept.state, EventState::Pending, "a pending event stays");
        assert_eq!(
            kept.delivery_id, None,
            "its delivery is gone: only the link"
        );
        let kept = store.get_event(retrying.as_str()).await.unwrap().unwrap();
        assert_eq!(kept.state, EventState::Processed);
        assert_eq!(
            store
                .evaluations_for_event(retrying.as_str())
                .await
                .unwrap()
                .len(),
            1,
            "an event with an action still to retry keeps everything"
        );
        assert_eq!(store.attempts(&action_of(retrying)).await.unwrap().len(), 1);
        let kept = store.get_event(recent.as_str()).await.unwrap().unwrap();
        assert!(kept.delivery_id.is_some(), "inside retention");
        assert_eq!(store.attempts(&action_of(recent)).await.unwrap().len(), 1);
        assert_eq!(
            store
                .list_actions(None, None, 10)
                .await
                .unwrap()
                .iter()
                .map(|a| a.event_id.as_str())
                .collect::<BTreeSet<_>>(),
            [retrying.as_str(), recent.as_str()].into_iter().collect()
        );
        let left = store
            .list_deliveries(None, None, 100, usize::MAX)
            .await
            .unwrap()
            .items;
        assert_eq!(
            left.iter()
                .map(|d| d.received_at.date_naive())
                .collect::<BTreeSet<_>>(),
            [ago(1), ago(6), ago(29)]
                .iter()
                .map(|t| t.date_naive())
                .collect(),
            "{left:?}"
        );
        assert_eq!(left.len(), 4);

        // Nothing more to do; later, with shorter retentions for evaluations, actions and
        // attempts, those of yesterday's event go before it.
        assert_eq!(
            store.prune(&config, now, PASS_BUDGET).await.unwrap(),
            Pruned::default()
        );
        let hour = std::time::Duration::from_secs(3600);
        let short = RetentionConfig {
            evaluations: Some(hour),
            actions: Some(hour),
            attempts: Some(hour),
            ..config
        };
        let pruned = store.prune(&short, now, PASS_BUDGET).await.unwrap();
        assert_eq!(
            pruned.removed,
            [("evaluations", 2), ("actions", 1), ("attempts", 1)]
                .into_iter()
                .collect(),
            "the retrying action and its attempt stay"
        );
        assert!(store.get_event(recent.as_str()).await.unwrap().is_some());
        store.close().await;
    }

    pub(super) async fn token_uses_past_retention_are_pruned_in_batches(db: TestDb) {
        use signalbox::store::TokenUse;
        use signalbox::store::retention::{PASS_BUDGET, RetentionConfig};
        let store = Store::open(&db.url, &StoreConfig::default()).await.unwrap();
        let now = Utc::now();
        for days in [400, 380, 370, 10] {
            store
                .record_token_use(&TokenUse {
                    at: now - Duration::days(days),
                    token: format!("t{days}"),
                    method: "POST".into(),
                    path: "/v1/events/x/retry".into(),
                    status: 200,
                })
                .await
                .unwrap();
        }
        let config = RetentionConfig {
            batch_size: 2,
            ..RetentionConfig::default()
        };
        let pruned = store.prune(&config, now, PASS_BUDGET).await.unwrap();
        assert_eq!(pruned.removed.get("token_uses"), Some(&3), "{pruned:?}");
        let left: Vec<String> = store
            .token_uses(10)
            .await
            .unwrap()
            .into_iter()
            .map(|u| u.token)
            .collect();
        assert_eq!(left, ["t10"], "inside retention (365 days)");
        store.close().await;
    }

    // Time-based rules: history, checks, delayed and cancelled actions, subject state,
    // schedules.

    /// An event of `kind` about these references, occurred at `at`.
    fn about(
        id: &str,
        kind: &str,
        claim: Option<&str>,
        account: Option<&str>,
        debtor: Option<&str>,
        at: chrono::DateTime<Utc>,
    ) -> Event {
        let mut e = event(id);
        e.kind = signalbox::normalize::EventType::parse(kind).unwrap();
        e.subject = signalbox::normalize::Subject {
            claim: claim.map(Into::into),
            account: account.map(Into::into),
            debtor: debtor.map(Into::into),
            ..Default::default()
        };
        e.occurred_at = at;
        e
    }

    fn t0() -> chrono::DateTime<Utc> {
        "2026-11-01T00:00:00Z".parse().unwrap()
    }

    fn hours(h: i64) -> chrono::DateTime<Utc> {
        t0() + Duration::hours(h)
    }

    /// Claims every pending event for `a` at `now`.
    async fn claim_all(store: &Store, now: chrono::DateTime<Utc>) {
        store
            .claim_pending("a", 100, now, now + Duration::seconds(60), ATTEMPTS)
            .await
            .unwrap();
    }

    pub(super) async fn history_finds_a_subjects_events_in_a_window(db: TestDb) {
        use signalbox::store::{HistoryQuery, StoreError};
        let store = open(&db).await;
        let broken = "promise_to_pay.broken";
        let events = vec![
            about(
                "h1",
                broken,
                Some("C-1"),
                Some("A-1"),
                Some("D-1"),
                hours(1),
            ),
            about(
                "h2",
                "payment.received",
                Some("C-1"),
                Some("A-1"),
                Some("D-1"),
                hours(2),
            ),
            about(
                "h3",
                broken,
                Some("C-1"),
                Some("A-1"),
                Some("D-1"),
                hours(3),
            ),
            about(
                "h4",
                broken,
                Some("C-2"),
                Some("A-1"),
                Some("D-2"),
                hours(3),
            ),
            about("h5", broken, Some("C-2"), None, Some("D-2"), hours(4)),
            about("h6", "sms.failed", None, Some("A-2"), None, hours(2)),
        ];
        let ids: Vec<EventId> = events.iter().map(|e| e.id.clone()).collect();
        store.insert_batch(&[ingest(events)]).await.unwrap();
        // One processed, the rest pending: history covers events in any state.
        claim_all(&store, Utc::now()).await;
        store
            .complete("a", &unevaluated(&ids[..1]), Utc::now())
            .await
            .unwrap();
        let types = [broken.to_owned()];
        let ids = &ids;
        let found = |key, value, types, after, until, limit| {
            let store = store.clone();
            async move {
                let q = HistoryQuery {
                    key,
                    value,
                    types,
                    after,
                    until,
                    limit,
                };
                let events = store.history(&q).await.unwrap();
                events
                    .iter()
                    .map(|e| ids.iter().position(|id| *id == e.id).unwrap() + 1)
                    .collect::<Vec<_>>()
            }
        };
        assert_eq!(
            found("claim", Some("C-1"), &types, hours(0), hours(3), 10).await,
            [3, 1],
            "newest first, of the types asked"
        );
        assert_eq!(
            found("claim", Some("C-1"), &types, hours(1), hours(3), 10).await,
            [3],
            "after is exclusive"
        );
        assert_eq!(
            found("claim", Some("C-1"), &[], hours(0), hours(2), 10).await,
            [2, 1],
            "until is inclusive; no types: any type"
        );
        assert_eq!(
            found("claim", Some("C-1"), &[], hours(0), hours(9), 2).await,
            [3, 2],
            "at most limit, the newest"
        );
        assert_eq!(
            found("claim", None, &types, hours(0), hours(3), 10).await,
            [4, 3, 1],
            "any claim; the same time: the later id first"
        );
        assert_eq!(
            found("account", Some("A-1"), &[], hours(0), hours(9), 10).await,
            [4, 3, 2, 1]
        );
        assert_eq!(
            found("account", None, &[], hours(0), hours(9), 10).await,
            [4, 3, 6, 2, 1],
            "every event with an account"
        );
        assert_eq!(
            found("debtor", Some("D-2"), &types, hours(0), hours(9), 10).await,
            [5, 4]
        );
        assert!(
            found("claim", Some("C-3"), &[], hours(0), hours(9), 10)
                .await
                .is_empty()
        );
        assert!(
            found("claim", Some("C-1"), &[], hours(3), hours(3), 10)
                .await
                .is_empty(),
            "an empty window"
        );
        let q = HistoryQuery {
            key: "invoice",
            value: Some("I-1"),
            types: &[],
            after: hours(0),
            until: hours(9),
            limit: 10,
        };
        assert!(matches!(
            store.history(&q).await,
            Err(StoreError::Invalid(_))
        ));
        let history = store
            .history(&HistoryQuery {
                key: "debtor",
                value: Some("D-2"),
                ..q
            })
            .await
            .unwrap();
        assert_eq!(history.len(), 2);
        assert_eq!(history[0].subject.claim.as_deref(), Some("C-2"));
        assert_eq!(history[0].data, serde_json::json!({"note": "test"}));
        assert_eq!(
            history[0].payload,
            serde_json::Value::Null,
            "no raw payload"
        );
        store.close().await;
    }

    /// The history query of each key uses that key's index (with enough rows, analysed, that
    /// PostgreSQL prefers an index to reading the table).
    pub(super) async fn history_queries_use_the_subject_indexes(db: TestDb) {
        use signalbox::store::HistoryQuery;
        let store = open(&db).await;
        let kinds = ["promise_to_pay.broken", "payment.received", "sms.failed"];
        let events: Vec<Event> = (0..3000)
            .map(|i| {
                let (claim, account, debtor) = (
                    format!("C-{i}"),
                    format!("A-{}", i / 3),
                    format!("D-{}", i / 9),
                );
                about(
                    &format!("x{i}"),
                    kinds[i % 3],
                    Some(&claim),
                    Some(&account),
                    Some(&debtor),
                    hours(i as i64 % 48),
                )
            })
            .collect();
        store.insert_batch(&[ingest(events)]).await.unwrap();
        if store.is_shared() {
            let pool = sqlx::PgPool::connect(&db.url).await.unwrap();
            sqlx::query("ANALYZE events").execute(&pool).await.unwrap();
            pool.close().await;
        }
        let types = [kinds[0].to_owned()];
        for (key, value) in [("claim", "C-7"), ("account", "A-7"), ("debtor", "D-7")] {
            for types in [&types[..], &[]] {
                let q = HistoryQuery {
                    key,
                    value: Some(value),
                    types,
                    after: hours(0),
                    until: hours(48),
                    limit: 100,
                };
                let plan = store.explain_history(&q).await.unwrap();
                println!("{} {key} types={types:?}:\n{plan}", store.backend_name());
                assert!(
                    plan.contains(&format!("events_{key}_history")),
                    "{key}: {plan}"
                );
            }
        }
        store.close().await;
    }

    fn waiting(
        rule: &str,
        subject_ref: &str,
        deadline: chrono::DateTime<Utc>,
    ) -> signalbox::store::NewEvaluation {
        use signalbox::store::{NewCheck, NewEvaluation, Verdict};
        NewEvaluation {
            rule_id: rule.into(),
            rule_version: "v1".into(),
            verdict: Verdict::Waiting {
                check: NewCheck {
                    subject_ref: subject_ref.into(),
                    awaits: vec!["payment.received".into(), "promise_to_pay.created".into()],
                    deadline,
                },
            },
            logs: serde_json::json!([]),
            duration_us: 1,
        }
    }

    /// Completes `event` for owner `a` with `evaluations` and `effects`: how many completed.
    async fn complete_with(
        store: &Store,
        owner: &str,
        event: &EventId,
        evaluations: Vec<signalbox::store::NewEvaluation>,
        effects: signalbox::store::Effects,
        now: chrono::DateTime<Utc>,
    ) -> u64 {
        let completion = Completion {
            event: event.clone(),
            evaluations,
            effects,
            rule_set: None,
        };
        store.complete(owner, &[completion], now).await.unwrap()
    }

    pub(super) async fn checks_are_armed_with_the_evaluation_and_resolved_once(db: TestDb) {
        use signalbox::store::{CheckStatus, Effects, EvaluationOutcome, StoreError};
        let store = open(&db).await;
        let ids = seed(&store, 3).await;
        let now = Utc::now();
        claim_all(&store, now).await;
        let hour = Duration::hours(1);
        let (a, b) = (now + hour, now + hour * 2);
        store
            .complete(
                "a",
                &[
                    Completion::new(ids[0].clone(), vec![waiting("no_payment", "claim:C-1", a)]),
                    Completion::new(ids[1].clone(), vec![waiting("no_payment", "claim:C-2", b)]),
                ],
                now,
            )
            .await
            .unwrap();
        let evaluations = store.evaluations_for_event(ids[0].as_str()).await.unwrap();
        assert_eq!(evaluations.len(), 1);
        assert_eq!(evaluations[0].outcome, EvaluationOutcome::Waiting);
        assert_eq!(evaluations[0].actions, serde_json::json!([]));

        let pending = store
            .list_checks(Some(CheckStatus::Pending), None, 10)
            .await
            .unwrap();
        assert_eq!(pending.len(), 2);
        let first = &pending[1];
        assert!(first.id.starts_with("chk_"), "{}", first.id);
        assert_eq!(
            (
                first.rule_id.as_str(),
                first.event_id.as_str(),
                first.subject_ref.as_str(),
                first.deadline.timestamp_millis(),
                first.status,
                first.resolved_by.as_deref()
            ),
            (
                "no_payment",
                ids[0].as_str(),
                "claim:C-1",
                a.timestamp_millis(),
                CheckStatus::Pending,
                None
            )
        );
        assert_eq!(first.awaits, ["payment.received", "promise_to_pay.created"]);
        let second = pending[0].id.clone();

        let for_ = |refs: &[&str], kind: &str| {
            let store = store.clone();
            let refs: Vec<String> = refs.iter().map(|r| r.to_string()).collect();
            let kind = kind.to_owned();
            async move {
                store
                    .pending_checks_for(&refs, &kind, 10)
                    .await
                    .unwrap()
                    .into_iter()
                    .map(|c| c.id)
                    .collect::<Vec<_>>()
            }
        };
        assert_eq!(
            for_(&["claim:C-1"], "payment.received").await,
            [first.id.as_str()]
        );
        assert_eq!(
            for_(&["account:A-1", "claim:C-1"], "promise_to_pay.created").await,
            [first.id.as_str()]
        );
        assert!(
            for_(&["claim:C-1"], "sms.failed").await.is_empty(),
            "not awaited"
        );
        assert!(for_(&["claim:C-3"], "payment.received").await.is_empty());
        assert!(for_(&[], "payment.received").await.is_empty());

        let due = |at| {
            let store = store.clone();
            async move {
                store
                    .due_checks(at, 10)
                    .await
                    .unwrap()
                    .into_iter()
                    .map(|c| c.id)
                    .collect::<Vec<_>>()
            }
        };
        assert!(due(now).await.is_empty());
        assert_eq!(due(a).await, [first.id.as_str()], "due at its deadline");
        assert_eq!(
            due(b).await,
            [first.id.clone(), second.clone()],
            "earliest deadline first"
        );

        // The third event satisfies the first check, in its completion; not while another
        // instance holds its lease.
        let satisfy = Effects {
            resolve_checks: vec![(first.id.clone(), CheckStatus::Satisfied)],
            ..Effects::default()
        };
        assert_eq!(
            complete_with(&store, "b", &ids[2], Vec::new(), satisfy.clone(), now).await,
            0
        );
        assert_eq!(
            store.get_check(&first.id).await.unwrap().unwrap().status,
            CheckStatus::Pending,
            "a lost lease writes no effects"
        );
        assert_eq!(
            complete_with(&store, "a", &ids[2], Vec::new(), satisfy, now).await,
            1
        );
        let satisfied = store.get_check(&first.id).await.unwrap().unwrap();
        assert_eq!(
            (satisfied.status, satisfied.resolved_by.as_deref()),
            (CheckStatus::Satisfied, Some(ids[2].as_str()))
        );
        assert_eq!(
            store
                .resolve_checks(&[first.id.as_str()], CheckStatus::Fired, "evt_deadline", b)
                .await
                .unwrap(),
            0,
            "resolved once"
        );
        assert_eq!(due(b).await, [second.as_str()]);

        // The second fires at its deadline, once.
        for expected in [1, 0] {
            assert_eq!(
                store
                    .resolve_checks(&[second.as_str()], CheckStatus::Fired, "evt_deadline", b)
                    .await
                    .unwrap(),
                expected
            );
        }
        let fired = store.get_check(&second).await.unwrap().unwrap();
        assert_eq!(
            (
                fired.status,
                fired.resolved_by.as_deref(),
                fired.updated_at.timestamp_millis()
            ),
            (
                CheckStatus::Fired,
                Some("evt_deadline"),
                b.timestamp_millis()
            )
        );
        assert!(matches!(
            store
                .resolve_checks(&[second.as_str()], CheckStatus::Pending, "x", b)
                .await,
            Err(StoreError::Invalid(_))
        ));
        assert!(
            store
                .list_checks(Some(CheckStatus::Pending), None, 10)
                .await
                .unwrap()
                .is_empty()
        );
        assert_eq!(
            store
                .list_checks(None, Some("no_payment"), 10)
                .await
                .unwrap()
                .len(),
            2
        );
        assert_eq!(
            store
                .list_checks(None, Some("no_payment"), 1)
                .await
                .unwrap()[0]
                .id,
            second,
            "newest first"
        );
        assert!(
            store
                .list_checks(None, Some("other"), 10)
                .await
                .unwrap()
                .is_empty()
        );
        assert!(store.get_check("chk_none").await.unwrap().is_none());
        store.close().await;
    }

    /// A fired evaluation of `rule` planning `planned`.
    fn fired_with(
        rule: &str,
        planned: Vec<signalbox::store::NewAction>,
    ) -> signalbox::store::NewEvaluation {
        use signalbox::store::Verdict;
        let mut evaluation = fired(rule, None);
        let Verdict::Fired { planned: p, .. } = &mut evaluation.verdict else {
            unreachable!()
        };
        *p = planned;
        evaluation
    }

    fn emit(
        due: Option<chrono::DateTime<Utc>>,
        cancel: Option<(&str, &[&str])>,
    ) -> signalbox::store::NewAction {
        signalbox::store::NewAction {
            kind: "emit",
            target: "emit".into(),
            payload: serde_json::json!({"version": "1"}),
            due,
            cancel: cancel.map(|(subject_ref, types)| signalbox::store::CancelOn {
                subject_ref: subject_ref.into(),
                types: types.iter().map(|t| t.to_string()).collect(),
            }),
        }
    }

    pub(super) async fn delayed_actions_wait_and_a_later_event_cancels_them(db: TestDb) {
        use signalbox::store::{ActionStatus, AttemptOutcome, Effects, NewAttempt, NextStep};
        let store = open(&db).await;
        let ids = seed(&store, 2).await;
        let now = Utc::now();
        claim_all(&store, now).await;
        let later = now + Duration::minutes(10);
        let paid: &[&str] = &["payment.received"];
        let planned = vec![
            emit(Some(later), Some(("claim:C-1", paid))),
            emit(None, Some(("claim:C-1", &[]))),
            emit(Some(later), None),
            emit(Some(later), Some(("claim:C-1", paid))),
        ];
        store
            .complete(
                "a",
                &[Completion::new(
                    ids[0].clone(),
                    vec![fired_with("remind", planned)],
                )],
                now,
            )
            .await
            .unwrap();
        let mut listed = store.list_actions(None, None, 10).await.unwrap();
        listed.reverse();
        let act: Vec<String> = listed.iter().map(|a| a.id.clone()).collect();
        assert_eq!(act.len(), 4);

        let (now_ms, later_ms) = (now.timestamp_millis(), later.timestamp_millis());
        let claim = |at_ms: i64| {
            let store = store.clone();
            async move {
                store
                    .claim_due_actions("d", 10, at_ms, at_ms + 3_600_000, &["emit"])
                    .await
                    .unwrap()
                    .into_iter()
                    .map(|a| a.id)
                    .collect::<Vec<_>>()
            }
        };
        assert_eq!(
            claim(now_ms).await,
            [act[1].clone()],
            "only the one due now"
        );
        assert!(
            claim(later_ms - 1).await.is_empty(),
            "the others wait for their time"
        );

        let cancellable = store
            .cancellable_actions(&["account:A-1".into(), "claim:C-1".into()], 10)
            .await
            .unwrap();
        assert_eq!(
            cancellable,
            [
                (
                    act[0].clone(),
                    "claim:C-1".to_owned(),
                    vec!["payment.received".to_owned()]
                ),
                (
                    act[3].clone(),
                    "claim:C-1".to_owned(),
                    vec!["payment.received".to_owned()]
                )
            ],
            "pending ones with a cancelling subject (the one in flight is not)"
        );
        assert!(
            store
                .cancellable_actions(&["claim:C-2".into()], 10)
                .await
                .unwrap()
                .is_empty()
        );

        // An operator cancels the first and the one in flight: only the pending one changes.
        assert_eq!(
            store
                .cancel_actions(
                    &[act[0].as_str(), act[1].as_str()],
                    "cancelled by operator",
                    now
                )
                .await
                .unwrap(),
            1
        );
        // A later event cancels the fourth, in its completion.
        let effects = Effects {
            cancel_actions: vec![act[3].clone()],
            ..Effects::default()
        };
        assert_eq!(
            complete_with(&store, "a", &ids[1], Vec::new(), effects, now).await,
            1
        );
        let status = |id: &str| {
            let store = store.clone();
            let id = id.to_owned();
            async move {
                let a = store
                    .list_actions(None, None, 10)
                    .await
                    .unwrap()
                    .into_iter()
                    .find(|a| a.id == id)
                    .unwrap();
                (a.status, a.last_error)
            }
        };
        assert_eq!(
            status(&act[0]).await,
            (
                ActionStatus::Cancelled,
                Some("cancelled by operator".into())
            )
        );
        assert_eq!(status(&act[1]).await.0, ActionStatus::InFlight);
        assert_eq!(
            status(&act[3]).await,
            (
                ActionStatus::Cancelled,
                Some(format!("cancelled by event {}", ids[1]))
            )
        );
        assert_eq!(
            claim(later_ms).await,
            [act[2].clone()],
            "cancelled ones are never taken"
        );
        assert!(
            store
                .cancellable_actions(&["claim:C-1".into()], 10)
                .await
                .unwrap()
                .is_empty(),
            "cancelled ones are no longer cancellable"
        );

        // Delivered and dead ones are not cancelled; dead ones are listed for digests.
        let attempt = |i: usize, next| NewAttempt {
            action_id: &act[i],
            attempt: 1,
            started_at: later,
            duration_ms: 3,
            outcome: if next == NextStep::Delivered {
                AttemptOutcome::Delivered
            } else {
                AttemptOutcome::Failed
            },
            status_code: None,
            reply: None,
            error: None,
            next,
        };
        let died = later + Duration::seconds(5);
        store
            .record_attempts("d", &[attempt(1, NextStep::Delivered)], later)
            .await
            .unwrap();
        store
            .record_attempts("d", &[attempt(2, NextStep::Dead)], died)
            .await
            .unwrap();
        assert_eq!(
            store
                .cancel_actions(&[act[1].as_str(), act[2].as_str()], "too late", died)
                .await
                .unwrap(),
            0
        );
        assert_eq!(status(&act[1]).await.0, ActionStatus::Delivered);
        let dead = |after, until| {
            let store = store.clone();
            async move {
                store
                    .dead_actions_between(after, until, 10)
                    .await
                    .unwrap()
                    .into_iter()
                    .map(|a| a.id)
                    .collect::<Vec<_>>()
            }
        };
        assert_eq!(
            dead(later, died).await,
            [act[2].clone()],
            "until is inclusive"
        );
        assert!(
            dead(died, died + Duration::hours(1)).await.is_empty(),
            "after is exclusive"
        );
        assert!(dead(now, later).await.is_empty());
        store.close().await;
    }

    fn set(
        subject_ref: &str,
        name: &str,
        value: Option<serde_json::Value>,
        expires_at: Option<chrono::DateTime<Utc>>,
        rule: &str,
    ) -> signalbox::store::StateWrite {
        signalbox::store::StateWrite {
            subject_ref: subject_ref.into(),
            name: name.into(),
            value,
            expires_at,
            rule_id: rule.into(),
        }
    }

    pub(super) async fn subject_state_is_written_with_the_completion_and_expires(db: TestDb) {
        use serde_json::json;
        use signalbox::store::retention::{PASS_BUDGET, RetentionConfig};
        use signalbox::store::{Effects, StateEntry};
        let store = open(&db).await;
        let ids = seed(&store, 4).await;
        let now = Utc::now();
        claim_all(&store, now).await;
        let hour = Duration::hours(1);
        let state = |writes| Effects {
            state: writes,
            ..Effects::default()
        };
        let read = |refs: &[&str], at| {
            let store = store.clone();
            let refs: Vec<String> = refs.iter().map(|r| r.to_string()).collect();
            async move {
                store
                    .subject_state(&refs, at)
                    .await
                    .unwrap()
                    .into_iter()
                    .map(|e| (e.subject_ref, e.name, e.value, e.rule_id))
                    .collect::<Vec<_>>()
            }
        };
        let entry =
            |r: &str, n: &str, v, rule: &str| (r.to_owned(), n.to_owned(), v, rule.to_owned());
        let writes = vec![
            set("claim:C-1", "tier", Some(json!("gold")), None, "r1"),
            set(
                "claim:C-1",
                "reminders",
                Some(json!(1)),
                Some(now + hour),
                "r1",
            ),
            set(
                "account:A-1",
                "last",
                Some(json!({"at": "x"})),
                Some(now + hour),
                "r1",
            ),
        ];
        // Not written while another instance holds the event.
        assert_eq!(
            complete_with(&store, "b", &ids[0], Vec::new(), state(writes.clone()), now).await,
            0
        );
        assert!(read(&["claim:C-1"], now).await.is_empty());
        assert_eq!(
            complete_with(&store, "a", &ids[0], Vec::new(), state(writes), now).await,
            1
        );
        assert_eq!(
            read(&["claim:C-1"], now).await,
            [
                entry("claim:C-1", "reminders", json!(1), "r1"),
                entry("claim:C-1", "tier", json!("gold"), "r1")
            ]
        );
        let full = store
            .subject_state(&["account:A-1".into()], now)
            .await
            .unwrap();
        assert_eq!(
            full,
            [StateEntry {
                subject_ref: "account:A-1".into(),
                name: "last".into(),
                value: json!({"at": "x"}),
                expires_at: Some(
                    chrono::DateTime::from_timestamp_millis((now + hour).timestamp_millis())
                        .unwrap()
                ),
                rule_id: "r1".into(),
            }]
        );

        // Overwritten by another rule (with a later expiry), then removed.
        let two = vec![set(
            "claim:C-1",
            "reminders",
            Some(json!(2)),
            Some(now + hour * 2),
            "r2",
        )];
        complete_with(&store, "a", &ids[1], Vec::new(), state(two), now).await;
        let gone = vec![set("claim:C-1", "tier", None, None, "r2")];
        complete_with(&store, "a", &ids[2], Vec::new(), state(gone), now).await;
        assert_eq!(
            read(&["claim:C-1", "account:A-1", "claim:C-1"], now).await,
            [
                entry("claim:C-1", "reminders", json!(2), "r2"),
                entry("account:A-1", "last", json!({"at": "x"}), "r1")
            ],
            "by subject in the order asked, each once"
        );
        // Expired entries are not seen, and retention removes them.
        let mid = now + hour + Duration::minutes(30);
        assert_eq!(
            read(&["claim:C-1", "account:A-1"], mid).await,
            [entry("claim:C-1", "reminders", json!(2), "r2")]
        );
        assert!(
            read(&["claim:C-1", "account:A-1"], now + hour * 2)
                .await
                .is_empty(),
            "expired at its time"
        );
        let config = RetentionConfig::default();
        let pruned = store.prune(&config, mid, PASS_BUDGET).await.unwrap();
        assert_eq!(pruned.removed.get("subject_state"), Some(&1), "{pruned:?}");
        // Bounded per subject.
        let many: Vec<_> = (0..120)
            .map(|i| set("claim:C-9", &format!("n{i:03}"), Some(json!(i)), None, "r"))
            .collect();
        complete_with(&store, "a", &ids[3], Vec::new(), state(many), now).await;
        assert_eq!(read(&["claim:C-9"], now).await.len(), 100);
        let pruned = store
            .prune(&config, now + hour * 3, PASS_BUDGET)
            .await
            .unwrap();
        assert_eq!(pruned.removed.get("subject_state"), Some(&1), "{pruned:?}");
        assert!(
            read(&["claim:C-1", "account:A-1"], now).await.is_empty(),
            "pruned, not only hidden"
        );
        store.close().await;
    }

    pub(super) async fn schedule_state_never_moves_back(db: TestDb) {
        let store = open(&db).await;
        let now = Utc::now();
        let state = |rule: &'static str| {
            let store = store.clone();
            async move { store.schedule_state(rule).await.unwrap() }
        };
        assert_eq!(state("digest").await, None);
        store
            .set_schedule_state("digest", "every 1h", hours(2), now)
            .await
            .unwrap();
        assert_eq!(
            state("digest").await,
            Some(("every 1h".to_owned(), hours(2)))
        );
        store
            .set_schedule_state("digest", "every 1h", hours(1), now)
            .await
            .unwrap();
        assert_eq!(
            state("digest").await,
            Some(("every 1h".to_owned(), hours(2))),
            "a slower instance's earlier tick does not win"
        );
        store
            .set_schedule_state("digest", "every 1h", hours(3), now)
            .await
            .unwrap();
        assert_eq!(
            state("digest").await,
            Some(("every 1h".to_owned(), hours(3)))
        );
        store
            .set_schedule_state("digest", "every 2h", hours(1), now)
            .await
            .unwrap();
        assert_eq!(
            state("digest").await,
            Some(("every 2h".to_owned(), hours(1))),
            "a changed schedule starts anew"
        );
        assert_eq!(state("other").await, None);
        store.close().await;
    }

    /// Retention keeps an event whose check is pending, and removes resolved checks: past
    /// retention by themselves, or with their event. A cancelled action is finished.
    pub(super) async fn a_pending_check_keeps_its_event_and_resolved_checks_go(db: TestDb) {
        use signalbox::store::CheckStatus;
        use signalbox::store::retention::{PASS_BUDGET, Pruned, RetentionConfig};
        let store = open(&db).await;
        let now = Utc::now();
        let ago = |days: i64| now - Duration::days(days);
        let mut old: Vec<Event> = ["pending", "fired", "satisfied", "cancelled"]
            .iter()
            .map(|id| event(id))
            .collect();
        for e in &mut old {
            e.received_at = ago(200);
        }
        let mut recent = event("recent");
        recent.received_at = ago(1);
        let ids: Vec<EventId> = old.iter().chain([&recent]).map(|e| e.id.clone()).collect();
        store
            .insert_batch(&[
                delivery_at(ago(200), false, old),
                delivery_at(ago(1), false, vec![recent]),
            ])
            .await
            .unwrap();
        claim_all(&store, now).await;
        let deadline = ago(199);
        let arm = |i: usize| {
            Completion::new(
                ids[i].clone(),
                vec![waiting("no_payment", "claim:C-1", deadline)],
            )
        };
        store
            .complete(
                "a",
                &[
                    arm(0),
                    arm(1),
                    arm(2),
                    Completion::new(
                        ids[3].clone(),
                        vec![fired_with("remind", vec![emit(Some(ago(190)), None)])],
                    ),
                ],
                ago(200),
            )
            .await
            .unwrap();
        store.complete("a", &[arm(4)], ago(1)).await.unwrap();
        let check_of = |i: usize| {
            let store = store.clone();
            let event = ids[i].clone();
            async move {
                store
                    .list_checks(None, None, 100)
                    .await
                    .unwrap()
                    .into_iter()
                    .find(|c| c.event_id == event.as_str())
                    .map(|c| c.id)
            }
        };
        let resolve = |i: usize, status, at| {
            let store = store.clone();
            async move {
                let id = check_of(i).await.unwrap();
                assert_eq!(
                    store
                        .resolve_checks(&[id.as_str()], status, "evt_x", at)
                        .await
                        .unwrap(),
                    1
                );
            }
        };
        resolve(1, CheckStatus::Fired, ago(199)).await;
        resolve(2, CheckStatus::Satisfied, ago(1)).await;
        resolve(4, CheckStatus::Fired, ago(1)).await;
        let action = store.list_actions(None, None, 10).await.unwrap()[0]
            .id
            .clone();
        assert_eq!(
            store
                .cancel_actions(&[action.as_str()], "operator", ago(195))
                .await
                .unwrap(),
            1
        );

        let config = RetentionConfig::default();
        let pruned = store.prune(&config, now, PASS_BUDGET).await.unwrap();
        let expected = Pruned {
            removed: [
                ("checks", 2),
                ("events", 3),
                ("evaluations", 3),
                ("actions", 1),
                ("deliveries", 1),
            ]
            .into_iter()
            .collect(),
            more: false,
        };
        assert_eq!(pruned, expected);
        assert!(
            store.get_event(ids[0].as_str()).await.unwrap().is_some(),
            "its check is pending"
        );
        assert!(check_of(0).await.is_some());
        assert_eq!(
            store
                .evaluations_for_event(ids[0].as_str())
                .await
                .unwrap()
                .len(),
            1
        );
        for gone in &ids[1..4] {
            assert!(store.get_event(gone.as_str()).await.unwrap().is_none());
        }
        assert!(check_of(1).await.is_none() && check_of(2).await.is_none());
        assert!(
            store.get_event(ids[4].as_str()).await.unwrap().is_some(),
            "inside retention"
        );
        assert!(check_of(4).await.is_some(), "resolved yesterday: kept");
        assert!(store.list_actions(None, None, 10).await.unwrap().is_empty());

        // Once its check resolves, the old event goes, the check with it.
        resolve(0, CheckStatus::Cancelled, now).await;
        let pruned = store.prune(&config, now, PASS_BUDGET).await.unwrap();
        assert_eq!(
            pruned.removed,
            [("checks", 1), ("events", 1), ("evaluations", 1)]
                .into_iter()
                .collect()
        );
        assert!(store.get_event(ids[0].as_str()).await.unwrap().is_none());
        store.close().await;
    }
}
