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
    strategy_states_answer_which_claims_are_paused,
    pruning_removes_what_is_past_retention_and_nothing_else,
    token_uses_past_retention_are_pruned_in_batches,
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
            kind: None,
            source: None,
            state: Some(EventState::Failed),
            before: None,
            limit: 10,
            max_bytes: usize::MAX,
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
        use signalbox::store::{EventFilter, EventState};
        let store = open(&db).await;
        let ids = seed(&store, 1).await;
        let mut now = Utc::now();
        for attempt in 1..=2 {
            let taken = store
                .claim_pending("a", 10, now, now + Duration::seconds(30), 2)
                .await
                .unwrap();
            assert_eq!(
                taken.iter().map(|c| c.attempt).collect::<Vec<_>>(),
                [attempt]
            );
            // The instance dies; its lease runs out.
            now += Duration::seconds(31);
        }
        assert!(
            store
                .claim_pending("b", 10, now, now + Duration::seconds(30), 2)
                .await
                .unwrap()
                .is_empty()
        );
        let failed = store
            .list_events(&EventFilter {
                kind: None,
                source: None,
                state: Some(EventState::Failed),
                before: None,
                limit: 10,
                max_bytes: usize::MAX,
            })
            .await
            .unwrap()
            .items;
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
}
