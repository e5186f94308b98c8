//! The signal gate: defer / resume / cancel, max_defer, TTL expiry, shared patterns.

use super::*;

#[tokio::test(start_paused = true)]
async fn items_are_held_while_raised_and_all_run_after_retract() {
    let sink = Sink::new();
    let (coordinator, log) = recording(&sink, 1, MaxDefer::default());
    sink.raise("backpressure.downstream").unwrap();
    let t0 = Instant::now();
    assert_eq!(coordinator.enqueue_many(0..5).await.unwrap(), 5);
    settle().await;

    let stats = consistent(coordinator.stats());
    assert_eq!((stats.queued, stats.deferred, stats.active), (5, 5, 0));
    assert_eq!((stats.enqueued, stats.completed), (5, 0));
    assert!(!stats.gate_open);
    assert!(log.get().is_empty());
    assert_eq!(Instant::now(), t0, "settling must not move the clock");

    sink.retract("backpressure.downstream").unwrap();
    coordinator.drain().await;
    assert_eq!(log.get(), vec![0, 1, 2, 3, 4]);
    let stats = consistent(coordinator.stats());
    assert_eq!((stats.completed, stats.queued, stats.deferred), (5, 0, 0));
    assert_eq!(stats.defer_timeouts, 0);
    assert!(stats.gate_open);
}

#[tokio::test(start_paused = true)]
async fn retract_wakes_held_work_without_waiting_for_a_recheck() {
    let sink = Sink::new();
    let (started_tx, mut started) = mpsc::unbounded_channel();
    let coordinator = Coordinator::builder()
        .sink(sink.clone())
        .build(move |_: u32, _| {
            started_tx.send(Instant::now()).unwrap();
            async {}
        })
        .unwrap();
    sink.raise("backpressure.downstream").unwrap();
    coordinator.enqueue(1).await.unwrap();
    settle().await;
    assert!(started.try_recv().is_err());

    let retracted_at = Instant::now();
    sink.retract("backpressure.downstream").unwrap();
    let started_at = recv(&mut started).await.unwrap();
    // No 50 ms polling: the start happens without the (paused) clock moving at all.
    assert_eq!(started_at, retracted_at);
}

#[tokio::test(start_paused = true)]
async fn idle_slots_start_a_new_item_at_once() {
    let (started_tx, mut started) = mpsc::unbounded_channel();
    let coordinator = Coordinator::builder()
        .sink(Sink::new())
        .build(move |n: u32, _| {
            started_tx.send((n, Instant::now())).unwrap();
            async {}
        })
        .unwrap();
    // Every slot has looked at the empty queue and gone to sleep.
    settle().await;
    for n in 0..3 {
        let enqueued_at = Instant::now();
        coordinator.enqueue(n).await.unwrap();
        assert_eq!(recv(&mut started).await, Some((n, enqueued_at)));
        settle().await;
    }
    let stats = consistent(coordinator.stats());
    assert_eq!((stats.completed, stats.queued), (3, 0));
}

#[tokio::test(start_paused = true)]
async fn only_signals_matching_defer_on_hold_work() {
    let sink = Sink::new();
    let log = Log::default();
    let seen = log.clone();
    let coordinator = Coordinator::builder()
        .sink(sink.clone())
        .concurrency(1)
        .defer_on("db.slow, cache.?")
        .max_defer(MaxDefer::Never)
        .build(move |n: u32, _| {
            seen.push(n);
            async {}
        })
        .unwrap();

    // Not matching: `backpressure.*` is not in this coordinator's list, `cache.?` is one char.
    sink.raise("backpressure.downstream").unwrap();
    sink.raise("cache.12").unwrap();
    coordinator.enqueue(0).await.unwrap();
    until("item 0 runs", || log.get(), |log| log.len() == 1).await;

    // The second item of the list matches.
    sink.raise("cache.1").unwrap();
    coordinator.enqueue(1).await.unwrap();
    settle().await;
    assert_eq!(log.get(), vec![0]);
    assert_eq!(consistent(coordinator.stats()).deferred, 1);

    // Still held while the first item of the list matches too.
    sink.raise("db.slow").unwrap();
    sink.retract("cache.1").unwrap();
    settle().await;
    assert_eq!(log.get(), vec![0]);

    sink.retract("db.slow").unwrap();
    until("item 1 runs", || log.get(), |log| log.len() == 2).await;
    assert_eq!(log.get(), vec![0, 1]);
}

#[tokio::test(start_paused = true)]
async fn no_defer_ignores_signals() {
    let sink = Sink::new();
    let log = Log::default();
    let seen = log.clone();
    let coordinator = Coordinator::builder()
        .sink(sink.clone())
        .no_defer()
        .build(move |n: u32, _| {
            seen.push(n);
            async {}
        })
        .unwrap();
    sink.raise("backpressure.downstream").unwrap();
    coordinator.enqueue_many(0..3).await.unwrap();
    coordinator.drain().await;
    assert_eq!(log.len(), 3);
    assert!(consistent(coordinator.stats()).gate_open);
}

#[tokio::test(start_paused = true)]
async fn keyed_signal_holds_until_every_key_is_retracted() {
    let sink = Sink::new();
    let (coordinator, log) = recording(&sink, 2, MaxDefer::Never);
    sink.raise_keyed("backpressure.db", "replica-1").unwrap();
    sink.raise_keyed("backpressure.db", "replica-2").unwrap();
    coordinator.enqueue_many(0..4).await.unwrap();
    settle().await;

    sink.retract_keyed("backpressure.db", "replica-1").unwrap();
    settle().await;
    assert!(
        log.get().is_empty(),
        "one raiser recovering must not release work"
    );
    assert_eq!(consistent(coordinator.stats()).deferred, 4);

    sink.retract_keyed("backpressure.db", "replica-2").unwrap();
    until("all items run", || log.get(), |log| log.len() == 4).await;
    coordinator.drain().await;
    assert_eq!(consistent(coordinator.stats()).completed, 4);
}

#[tokio::test(start_paused = true)]
async fn resume_on_overrides_defer_on_while_it_is_raised() {
    let sink = Sink::new();
    let log = Log::default();
    let seen = log.clone();
    let coordinator = Coordinator::builder()
        .sink(sink.clone())
        .concurrency(1)
        .resume_on("override.*")
        .max_defer(MaxDefer::Never)
        .build(move |n: u32, _| {
            seen.push(n);
            async {}
        })
        .unwrap();
    sink.raise("backpressure.downstream").unwrap();
    coordinator.enqueue(0).await.unwrap();
    settle().await;
    assert!(log.get().is_empty());

    let t = Instant::now();
    sink.raise("override.operator").unwrap();
    until(
        "the override releases item 0",
        || log.get(),
        |log| log.len() == 1,
    )
    .await;
    assert_eq!(
        Instant::now(),
        t,
        "the resume signal wakes the slot at once"
    );
    assert!(consistent(coordinator.stats()).gate_open);

    // Once the override goes, the defer signal holds work again.
    sink.retract("override.operator").unwrap();
    coordinator.enqueue(1).await.unwrap();
    settle().await;
    assert_eq!(log.get(), vec![0]);
    let stats = consistent(coordinator.stats());
    assert!(!stats.gate_open);
    assert_eq!(stats.deferred, 1);

    // A resume signal alone (no defer signal) changes nothing.
    sink.retract("backpressure.downstream").unwrap();
    sink.raise("override.operator").unwrap();
    coordinator.drain().await;
    assert_eq!(log.get(), vec![0, 1]);
}

#[tokio::test(start_paused = true)]
async fn cancel_on_skips_items_hands_them_to_the_callback_and_counts_them() {
    let sink = Sink::new();
    let ran = Log::default();
    let skipped = Log::default();
    let (ran_in, skipped_in) = (ran.clone(), skipped.clone());
    let coordinator = Coordinator::builder()
        .sink(sink.clone())
        .concurrency(1)
        .cancel_on("shutdown.*")
        .on_skip(move |n: u32| skipped_in.push(n))
        .build(move |n: u32, _| {
            ran_in.push(n);
            async {}
        })
        .unwrap();

    coordinator.enqueue(0).await.unwrap();
    until("item 0 runs", || ran.get(), |ran| ran.len() == 1).await;

    sink.raise("shutdown.maintenance").unwrap();
    coordinator.enqueue_many(1..=4).await.unwrap();
    until(
        "items are skipped",
        || skipped.get(),
        |skipped| skipped.len() == 4,
    )
    .await;
    assert_eq!(skipped.get(), vec![1, 2, 3, 4], "skipped in queue order");
    assert_eq!(ran.get(), vec![0], "skipped items never reach the handler");
    let stats = consistent(coordinator.stats());
    assert_eq!((stats.skipped, stats.completed, stats.queued), (4, 1, 0));

    sink.retract("shutdown.maintenance").unwrap();
    coordinator.enqueue(5).await.unwrap();
    coordinator.drain().await;
    assert_eq!(ran.get(), vec![0, 5]);
    let stats = consistent(coordinator.stats());
    assert_eq!((stats.skipped, stats.completed), (4, 2));
}

#[tokio::test(start_paused = true)]
async fn skipping_works_without_a_callback_and_survives_a_panicking_callback() {
    let sink = Sink::new();
    sink.raise("cancel.all").unwrap();

    let plain = Coordinator::builder()
        .sink(sink.clone())
        .cancel_on("cancel.*")
        .build(|_: u32, _| async { unreachable!("a skipped item must not run") as () })
        .unwrap();
    plain.enqueue_many(0..3).await.unwrap();
    plain.drain().await;
    let stats = consistent(plain.stats());
    assert_eq!((stats.skipped, stats.panicked, stats.completed), (3, 0, 0));

    let received = Log::default();
    let received_in = received.clone();
    let panicky = Coordinator::builder()
        .sink(sink.clone())
        .concurrency(1)
        .cancel_on("cancel.*")
        .on_skip(move |n: u32| {
            received_in.push(n);
            if n == 0 {
                panic!("skip callback failed");
            }
        })
        .build(|_: u32, _| async {})
        .unwrap();
    panicky.enqueue_many(0..3).await.unwrap();
    panicky.drain().await;
    assert_eq!(received.get(), vec![0, 1, 2], "the slot survived the panic");
    let stats = consistent(panicky.stats());
    assert_eq!((stats.skipped, stats.panicked), (3, 0));
}

#[tokio::test(start_paused = true)]
async fn cancel_on_does_not_bypass_a_closed_gate() {
    let sink = Sink::new();
    let skipped = Log::default();
    let skipped_in = skipped.clone();
    let coordinator = Coordinator::builder()
        .sink(sink.clone())
        .cancel_on("cancel.*")
        .max_defer(MaxDefer::Never)
        .on_skip(move |n: u32| skipped_in.push(n))
        .build(|_: u32, _| async {})
        .unwrap();
    sink.raise("backpressure.downstream").unwrap();
    sink.raise("cancel.all").unwrap();
    coordinator.enqueue_many(0..2).await.unwrap();
    settle().await;
    assert!(skipped.get().is_empty());
    assert_eq!(consistent(coordinator.stats()).deferred, 2);
    sink.retract("backpressure.downstream").unwrap();
    coordinator.drain().await;
    assert_eq!(skipped.len(), 2);
    assert_eq!(consistent(coordinator.stats()).skipped, 2);
}

#[tokio::test(start_paused = true)]
async fn max_defer_attempts_starts_held_items_anyway_and_counts_them() {
    let sink = Sink::new();
    let (started_tx, mut started) = mpsc::unbounded_channel();
    let coordinator = Coordinator::builder()
        .sink(sink.clone())
        .concurrency(1)
        .defer_check_interval(Duration::from_millis(10))
        .max_defer_attempts(5)
        .build(move |n: u32, _| {
            started_tx.send((n, Instant::now())).unwrap();
            async {}
        })
        .unwrap();
    sink.raise("backpressure.downstream").unwrap();
    let t0 = Instant::now();
    coordinator.enqueue_many(0..2).await.unwrap();

    let limit = Duration::from_millis(50);
    let interval = Duration::from_millis(10);
    let (first, first_at) = recv(&mut started).await.unwrap();
    assert_eq!(first, 0);
    let waited = first_at - t0;
    assert!(
        waited >= limit && waited < limit + interval,
        "item 0 started after {waited:?}, expected interval × attempts = {limit:?}"
    );
    assert_eq!(consistent(coordinator.stats()).defer_timeouts, 1);

    // The next head of the queue waits its own max_defer.
    let (second, second_at) = recv(&mut started).await.unwrap();
    assert_eq!(second, 1);
    let waited = second_at - first_at;
    assert!(
        waited >= limit && waited < limit + interval,
        "item 1 started {waited:?} after item 0"
    );
    coordinator.drain().await;
    let stats = consistent(coordinator.stats());
    assert_eq!((stats.defer_timeouts, stats.completed), (2, 2));
    assert!(sink.is_raised("backpressure.downstream"));
}

#[tokio::test(start_paused = true)]
async fn a_pause_restarts_the_max_defer_clock() {
    let sink = Sink::new();
    let (started_tx, mut started) = mpsc::unbounded_channel();
    let coordinator = Coordinator::builder()
        .sink(sink.clone())
        .concurrency(1)
        .defer_check_interval(Duration::from_millis(10))
        .max_defer_attempts(5)
        .build(move |n: u32, _| {
            started_tx.send((n, Instant::now())).unwrap();
            async {}
        })
        .unwrap();
    sink.raise("backpressure.downstream").unwrap();
    coordinator.enqueue(7).await.unwrap();
    // Held by the signal for 40 of its 50 ms, then paused for longer than the limit.
    tokio::time::advance(Duration::from_millis(40)).await;
    coordinator.pause();
    settle().await;
    tokio::time::advance(Duration::from_millis(100)).await;
    settle().await;
    assert_eq!(consistent(coordinator.stats()).completed, 0);

    let resumed_at = Instant::now();
    coordinator.resume();
    let (item, started_at) = recv(&mut started).await.unwrap();
    assert_eq!(item, 7);
    let waited = started_at - resumed_at;
    assert!(
        waited >= Duration::from_millis(50),
        "the signal held the item only {waited:?} after the pause; max_defer is 50 ms"
    );
    assert_eq!(consistent(coordinator.stats()).defer_timeouts, 1);
}

#[tokio::test(start_paused = true)]
async fn max_defer_as_a_duration() {
    let sink = Sink::new();
    let (started_tx, mut started) = mpsc::unbounded_channel();
    let coordinator = Coordinator::builder()
        .sink(sink.clone())
        .max_defer(MaxDefer::After(Duration::from_secs(2)))
        .build(move |_: u32, _| {
            started_tx.send(Instant::now()).unwrap();
            async {}
        })
        .unwrap();
    sink.raise("backpressure.downstream").unwrap();
    let t0 = Instant::now();
    coordinator.enqueue(0).await.unwrap();
    let waited = recv(&mut started).await.unwrap() - t0;
    assert!(
        waited >= Duration::from_secs(2) && waited < Duration::from_millis(2_050),
        "started after {waited:?}"
    );
    assert_eq!(consistent(coordinator.stats()).defer_timeouts, 1);
}

#[tokio::test(start_paused = true)]
async fn max_defer_never_holds_for_as_long_as_the_signal_stays() {
    let sink = Sink::new();
    let log = Log::default();
    let seen = log.clone();
    let coordinator = Coordinator::builder()
        .sink(sink.clone())
        .defer_check_interval(Duration::from_secs(1))
        .max_defer(MaxDefer::Never)
        .build(move |n: u32, _| {
            seen.push(n);
            async {}
        })
        .unwrap();
    sink.raise("backpressure.downstream").unwrap();
    coordinator.enqueue(0).await.unwrap();
    tokio::time::sleep(Duration::from_secs(3_600)).await;
    let stats = consistent(coordinator.stats());
    assert!(log.get().is_empty());
    assert_eq!((stats.deferred, stats.defer_timeouts), (1, 0));
    assert_eq!(stats.gate_rechecks, 0, "a held slot woke up: {stats:?}");

    sink.retract("backpressure.downstream").unwrap();
    coordinator.drain().await;
    assert_eq!(log.get(), vec![0]);
}

#[tokio::test(start_paused = true)]
async fn ttl_expiry_of_a_defer_signal_wakes_the_coordinator_promptly() {
    let sink = Sink::new();
    let (started_tx, mut started) = mpsc::unbounded_channel();
    let coordinator = Coordinator::builder()
        .sink(sink.clone())
        // So long that only the expiry itself can explain a start at 3 s.
        .defer_check_interval(Duration::from_secs(3_600))
        .max_defer(MaxDefer::Never)
        .build(move |_: u32, _| {
            started_tx.send(Instant::now()).unwrap();
            async {}
        })
        .unwrap();
    let t0 = Instant::now();
    sink.raise_for("backpressure.downstream", Duration::from_secs(3))
        .unwrap();
    coordinator.enqueue(0).await.unwrap();
    settle().await;
    assert_eq!(consistent(coordinator.stats()).deferred, 1);

    let waited = recv(&mut started).await.unwrap() - t0;
    assert!(
        waited >= Duration::from_secs(3) && waited < Duration::from_millis(3_002),
        "started {waited:?} after a 3 s TTL raise"
    );
    let stats = consistent(coordinator.stats());
    assert_eq!(stats.defer_timeouts, 0);
    assert!(!sink.is_raised("backpressure.downstream"));
}

#[tokio::test(start_paused = true)]
async fn coordinators_sharing_a_pattern_all_resume_and_drop_independently() {
    let sink = Sink::new();
    let (first, first_log) = recording(&sink, 1, MaxDefer::Never);
    let (second, second_log) = recording(&sink, 1, MaxDefer::Never);
    let (third, third_log) = recording(&sink, 1, MaxDefer::Never);
    sink.raise("backpressure.downstream").unwrap();
    for c in [&first, &second, &third] {
        c.enqueue(7).await.unwrap();
    }
    // Dropping one watcher of the shared pattern must not break the others.
    third.shutdown().await;
    drop(third);
    settle().await;
    assert!(first_log.get().is_empty() && second_log.get().is_empty());

    sink.retract("backpressure.downstream").unwrap();
    first.drain().await;
    second.drain().await;
    assert_eq!(first_log.get(), vec![7]);
    assert_eq!(second_log.get(), vec![7]);
    assert!(third_log.get().is_empty());
}
