//! The coordinator: builder checks, the signal gate (defer / resume / cancel / max-defer),
//! pausing, the bounded queue, concurrency and outcome accounting.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use backpressure::{
    BuildError, Coordinator, CoordinatorConfig, MaxDefer, PatternError, Sink, TryEnqueueError,
    WorkContext,
};
use common::{consistent, recv, settle, until, within, Log};
use futures_util::FutureExt;
use tokio::sync::{mpsc, Semaphore};
use tokio::time::Instant;

/// A coordinator on `sink` that records every item it runs, in start order.
fn recording(sink: &Sink, concurrency: usize, max_defer: MaxDefer) -> (Coordinator<u32>, Log<u32>) {
    let log = Log::default();
    let seen = log.clone();
    let coordinator = Coordinator::builder()
        .sink(sink.clone())
        .concurrency(concurrency)
        .max_defer(max_defer)
        .build(move |n: u32, _ctx: WorkContext| {
            seen.push(n);
            async {}
        })
        .unwrap();
    (coordinator, log)
}

// ---------------------------------------------------------------------------------------
// Builder

#[tokio::test]
async fn builder_defaults_follow_the_seed() {
    let coordinator = Coordinator::<u32>::builder()
        .sink(Sink::new())
        .build(|_, _| async {})
        .unwrap();
    assert_eq!(coordinator.config(), &CoordinatorConfig::default());
    let config = coordinator.config();
    assert_eq!(config.concurrency, 4);
    assert_eq!(config.capacity, 200);
    assert_eq!(config.defer_on.as_deref(), Some("backpressure.*"));
    assert_eq!(config.defer_check_interval, Duration::from_millis(50));
    assert_eq!(
        config.max_defer.resolve(config.defer_check_interval),
        Some(Duration::from_secs(10))
    );
    let stats = consistent(coordinator.stats());
    assert_eq!(stats.concurrency, 4);
    assert!(stats.gate_open && !stats.paused && !stats.closed);
    assert_eq!(stats.enqueued, 0);

    // Without an explicit sink, the coordinator watches the global sink "default".
    let on_default = Coordinator::<u32>::builder()
        .build(|_, _| async {})
        .unwrap();
    assert!(on_default.sink().same_sink(&backpressure::sink("default")));
}

#[tokio::test]
async fn builder_rejects_zero_values_naming_the_option() {
    fn err(builder: backpressure::CoordinatorBuilder<u8>) -> BuildError {
        builder
            .sink(Sink::new())
            .build(|_, _| async {})
            .unwrap_err()
    }
    let cases = [
        (
            err(Coordinator::builder().concurrency(0)),
            BuildError::ZeroConcurrency,
            "`concurrency`",
        ),
        (
            err(Coordinator::builder().capacity(0)),
            BuildError::ZeroCapacity,
            "`capacity`",
        ),
        (
            err(Coordinator::builder().defer_check_interval(Duration::ZERO)),
            BuildError::ZeroCheckInterval,
            "`defer_check_interval`",
        ),
        (
            err(Coordinator::builder().max_defer_attempts(0)),
            BuildError::ZeroMaxDefer,
            "`max_defer`",
        ),
        (
            err(Coordinator::builder().max_defer(MaxDefer::After(Duration::ZERO))),
            BuildError::ZeroMaxDefer,
            "`max_defer`",
        ),
    ];
    for (got, expected, field) in cases {
        assert_eq!(got, expected);
        let message = got.to_string();
        assert!(
            message.contains(field) && message.contains('0'),
            "{message}"
        );
    }
    // The same checks apply to a whole config.
    let config = CoordinatorConfig {
        capacity: 0,
        ..CoordinatorConfig::default()
    };
    assert_eq!(
        err(Coordinator::builder().config(config)),
        BuildError::ZeroCapacity
    );
}

#[tokio::test]
async fn builder_names_the_option_holding_a_bad_pattern() {
    let build = |builder: backpressure::CoordinatorBuilder<u8>| {
        builder
            .sink(Sink::new())
            .build(|_, _| async {})
            .unwrap_err()
    };
    let cases = [
        (
            build(Coordinator::builder().defer_on("backpressure.*,,db.*")),
            "defer_on",
            PatternError::EmptyItem { index: 1 },
        ),
        (
            build(Coordinator::builder().resume_on("")),
            "resume_on",
            PatternError::Empty,
        ),
        (
            build(Coordinator::builder().cancel_on("shut down")),
            "cancel_on",
            PatternError::BadChar {
                item: "shut down".into(),
                ch: ' ',
                at: 4,
            },
        ),
    ];
    for (got, field, source) in cases {
        let message = got.to_string();
        assert!(
            message.contains(&format!("`{field}`")) && message.contains(&source.to_string()),
            "{message}"
        );
        assert_eq!(got, BuildError::Pattern { field, source });
    }
}

#[test]
fn building_outside_a_runtime_is_an_error() {
    let err = Coordinator::<u8>::builder()
        .sink(Sink::new())
        .build(|_, _| async {})
        .unwrap_err();
    assert_eq!(err, BuildError::NoRuntime);
    assert!(err.to_string().contains("tokio runtime"));
}

// ---------------------------------------------------------------------------------------
// The gate

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
    until("item 0 runs", || log.len() == 1).await;

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
    until("item 1 runs", || log.len() == 2).await;
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
    until("all items run", || log.len() == 4).await;
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
    until("the override releases item 0", || log.len() == 1).await;
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
    until("item 0 runs", || ran.len() == 1).await;

    sink.raise("shutdown.maintenance").unwrap();
    coordinator.enqueue_many(1..=4).await.unwrap();
    until("items are skipped", || skipped.len() == 4).await;
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

// ---------------------------------------------------------------------------------------
// Pause / resume

#[tokio::test(start_paused = true)]
async fn pause_holds_work_past_max_defer_and_resume_starts_it_at_once() {
    let sink = Sink::new();
    let log = Log::default();
    let seen = log.clone();
    let coordinator = Coordinator::builder()
        .sink(sink.clone())
        .concurrency(2)
        .defer_check_interval(Duration::from_millis(10))
        .max_defer_attempts(2)
        .build(move |n: u32, _| {
            seen.push(n);
            async {}
        })
        .unwrap();
    coordinator.pause();
    assert!(coordinator.is_paused());
    coordinator.enqueue_many(0..3).await.unwrap();
    // Far past max_defer (20 ms): pausing is not subject to it.
    tokio::time::sleep(Duration::from_secs(10)).await;
    let stats = consistent(coordinator.stats());
    assert!(log.get().is_empty());
    assert!(stats.paused && !stats.gate_open);
    assert_eq!((stats.deferred, stats.defer_timeouts), (3, 0));

    // A defer signal coming and going does not undo the pause.
    sink.raise("backpressure.downstream").unwrap();
    sink.retract("backpressure.downstream").unwrap();
    settle().await;
    assert!(log.get().is_empty());

    let t = Instant::now();
    coordinator.resume();
    assert!(!coordinator.is_paused());
    until("all items run", || log.len() == 3).await;
    assert_eq!(Instant::now(), t, "resume wakes held slots at once");
    coordinator.drain().await;
    let stats = consistent(coordinator.stats());
    assert_eq!((stats.completed, stats.defer_timeouts), (3, 0));
}

#[tokio::test(start_paused = true)]
async fn pause_lets_running_items_finish() {
    let release = Arc::new(Semaphore::new(0));
    let release_in = Arc::clone(&release);
    let coordinator = Coordinator::builder()
        .sink(Sink::new())
        .concurrency(1)
        .build(move |_: u32, _| {
            let release = Arc::clone(&release_in);
            async move { release.acquire().await.unwrap().forget() }
        })
        .unwrap();
    coordinator.enqueue_many(0..2).await.unwrap();
    until("item 0 runs", || coordinator.stats().active == 1).await;
    coordinator.pause();
    release.add_permits(1);
    until("item 0 completes", || coordinator.stats().completed == 1).await;
    settle().await;
    let stats = consistent(coordinator.stats());
    assert_eq!((stats.active, stats.queued), (0, 1));
    coordinator.resume();
    release.add_permits(1);
    coordinator.drain().await;
    assert_eq!(consistent(coordinator.stats()).completed, 2);
}

// ---------------------------------------------------------------------------------------
// The bounded queue

#[tokio::test(start_paused = true)]
async fn full_queue_makes_enqueue_wait_and_try_enqueue_hand_the_item_back() {
    let sink = Sink::new();
    let (coordinator, log) = {
        let log = Log::default();
        let seen = log.clone();
        let c = Coordinator::builder()
            .sink(sink.clone())
            .concurrency(1)
            .capacity(2)
            .max_defer(MaxDefer::Never)
            .build(move |n: String, _| {
                seen.push(n);
                async {}
            })
            .unwrap();
        (c, log)
    };
    sink.raise("backpressure.downstream").unwrap();
    coordinator.enqueue("a".to_owned()).await.unwrap();
    coordinator.try_enqueue("b".to_owned()).unwrap();

    let err = coordinator.try_enqueue("c".to_owned()).unwrap_err();
    assert!(err.is_full());
    assert!(err.to_string().contains("full"), "{err}");
    assert!(matches!(&err, TryEnqueueError::Full(item) if item == "c"));
    assert_eq!(err.into_inner(), "c");

    // `enqueue` waits while the queue is full...
    let waiting = coordinator.enqueue("c".to_owned());
    tokio::pin!(waiting);
    assert!(waiting.as_mut().now_or_never().is_none());
    // ...for as long as it stays full (an hour of paused time here)...
    let gave_up = tokio::time::timeout(
        Duration::from_secs(3_600),
        coordinator.enqueue("d".to_owned()),
    )
    .await;
    assert!(gave_up.is_err());
    // ...and a dropped wait enqueued nothing.
    let stats = consistent(coordinator.stats());
    assert_eq!((stats.enqueued, stats.queued), (2, 2));

    // Retracting frees a place, which the waiting producer takes.
    sink.retract("backpressure.downstream").unwrap();
    waiting.await.unwrap();
    coordinator.drain().await;
    assert_eq!(log.get(), vec!["a", "b", "c"]);
    assert_eq!(consistent(coordinator.stats()).enqueued, 3);
}

#[tokio::test(start_paused = true)]
async fn waiting_producers_each_get_in_as_space_frees() {
    let sink = Sink::new();
    let (coordinator, log) = {
        let log = Log::default();
        let seen = log.clone();
        let c = Coordinator::builder()
            .sink(sink.clone())
            .concurrency(1)
            .capacity(1)
            .max_defer(MaxDefer::Never)
            .build(move |n: u32, _| {
                seen.push(n);
                async {}
            })
            .unwrap();
        (c, log)
    };
    sink.raise("backpressure.downstream").unwrap();
    coordinator.enqueue(0).await.unwrap();
    let producers: Vec<_> = (1..=3)
        .map(|n| {
            let c = coordinator.clone();
            tokio::spawn(async move { c.enqueue(n).await })
        })
        .collect();
    settle().await;
    assert!(producers.iter().all(|p| !p.is_finished()));
    assert_eq!(consistent(coordinator.stats()).enqueued, 1);

    sink.retract("backpressure.downstream").unwrap();
    for producer in producers {
        within(Duration::from_secs(60), "a waiting producer", producer)
            .await
            .unwrap()
            .unwrap();
    }
    coordinator.drain().await;
    let mut ran = log.get();
    assert_eq!(ran[0], 0);
    ran.sort_unstable();
    assert_eq!(ran, vec![0, 1, 2, 3]);
}

#[tokio::test(start_paused = true)]
async fn a_dropped_waiting_producer_passes_its_wake_up_on() {
    let sink = Sink::new();
    let (coordinator, log) = {
        let log = Log::default();
        let seen = log.clone();
        let c = Coordinator::builder()
            .sink(sink.clone())
            .concurrency(1)
            .capacity(1)
            .max_defer(MaxDefer::Never)
            .build(move |n: u32, _| {
                seen.push(n);
                async {}
            })
            .unwrap();
        (c, log)
    };
    sink.raise("backpressure.downstream").unwrap();
    coordinator.enqueue(0).await.unwrap();

    // Producer 1 starts waiting first, so it is first in line for the next free place.
    let mut first = Box::pin(coordinator.enqueue(1));
    assert!(first.as_mut().now_or_never().is_none());
    let second = tokio::spawn({
        let c = coordinator.clone();
        async move { c.enqueue(2).await }
    });
    settle().await;
    assert!(!second.is_finished());

    // A place frees up and its wake-up goes to producer 1, which gives up without using it.
    sink.retract("backpressure.downstream").unwrap();
    settle().await;
    sink.raise("backpressure.downstream").unwrap();
    drop(first);

    // Producer 2 must not be left waiting for space that is free.
    within(Duration::from_secs(60), "the remaining producer", second)
        .await
        .unwrap()
        .unwrap();
    sink.retract("backpressure.downstream").unwrap();
    coordinator.drain().await;
    assert_eq!(log.get(), vec![0, 2]);
    assert_eq!(consistent(coordinator.stats()).enqueued, 2);
}

// ---------------------------------------------------------------------------------------
// Concurrency

/// A handler body that tracks how many run at once.
#[derive(Clone, Default)]
struct Tracker {
    now: Arc<AtomicUsize>,
    max: Arc<AtomicUsize>,
}

impl Tracker {
    async fn run(&self) {
        let running = self.now.fetch_add(1, Ordering::SeqCst) + 1;
        self.max.fetch_max(running, Ordering::SeqCst);
        for _ in 0..5 {
            tokio::task::yield_now().await;
        }
        self.now.fetch_sub(1, Ordering::SeqCst);
    }

    fn max(&self) -> usize {
        self.max.load(Ordering::SeqCst)
    }
}

#[tokio::test]
async fn concurrency_is_reached_but_never_exceeded() {
    let tracker = Tracker::default();
    let inner = tracker.clone();
    let coordinator = Coordinator::builder()
        .sink(Sink::new())
        .concurrency(3)
        .build(move |_: u32, _| {
            let tracker = inner.clone();
            async move { tracker.run().await }
        })
        .unwrap();
    coordinator.enqueue_many(0..40).await.unwrap();
    coordinator.drain().await;
    assert_eq!(tracker.max(), 3);
    assert_eq!(consistent(coordinator.stats()).completed, 40);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrency_is_never_exceeded_on_a_multi_thread_runtime() {
    let tracker = Tracker::default();
    let inner = tracker.clone();
    let coordinator = Coordinator::builder()
        .sink(Sink::new())
        .concurrency(3)
        .capacity(16)
        .build(move |_: u32, _| {
            let tracker = inner.clone();
            async move { tracker.run().await }
        })
        .unwrap();
    let observer = {
        let c = coordinator.clone();
        tokio::spawn(async move {
            loop {
                let stats = consistent(c.stats());
                assert!(stats.active <= 3, "{stats:?}");
                if stats.closed && stats.queued == 0 && stats.active == 0 {
                    return;
                }
                tokio::task::yield_now().await;
            }
        })
    };
    // Hang guard only (real time); nothing here depends on timing.
    within(Duration::from_secs(60), "enqueue and drain", async {
        coordinator.enqueue_many(0..500).await.unwrap();
        coordinator.drain().await;
    })
    .await;
    observer.await.unwrap();
    assert!(tracker.max() <= 3, "max concurrent was {}", tracker.max());
    assert_eq!(consistent(coordinator.stats()).completed, 500);
}

/// A coordinator whose handlers each wait for one permit of `release`, and report their
/// item on `started` when they begin.
fn blocking(
    concurrency: usize,
) -> (
    Coordinator<u32>,
    Arc<Semaphore>,
    mpsc::UnboundedReceiver<u32>,
) {
    let release = Arc::new(Semaphore::new(0));
    let release_in = Arc::clone(&release);
    let (started_tx, started) = mpsc::unbounded_channel();
    let coordinator = Coordinator::builder()
        .sink(Sink::new())
        .concurrency(concurrency)
        .build(move |n: u32, _| {
            started_tx.send(n).unwrap();
            let release = Arc::clone(&release_in);
            async move { release.acquire().await.unwrap().forget() }
        })
        .unwrap();
    (coordinator, release, started)
}

#[tokio::test(start_paused = true)]
async fn set_concurrency_grows_at_once_and_shrinks_as_items_finish() {
    let (coordinator, release, mut started) = blocking(1);
    coordinator.enqueue_many(0..8).await.unwrap();
    assert_eq!(recv(&mut started).await, Some(0));
    settle().await;
    assert_eq!(consistent(coordinator.stats()).active, 1);

    coordinator.set_concurrency(3).unwrap();
    assert_eq!(recv(&mut started).await, Some(1));
    assert_eq!(recv(&mut started).await, Some(2));
    settle().await;
    let stats = consistent(coordinator.stats());
    assert_eq!((stats.active, stats.concurrency, stats.queued), (3, 3, 5));

    // Shrink while three run: nothing new starts until fewer than one runs.
    coordinator.set_concurrency(1).unwrap();
    assert_eq!(consistent(coordinator.stats()).concurrency, 1);
    release.add_permits(1);
    until("one finishes", || coordinator.stats().completed == 1).await;
    settle().await;
    assert!(started.try_recv().is_err(), "started with 2 still running");
    release.add_permits(1);
    until("two finish", || coordinator.stats().completed == 2).await;
    settle().await;
    assert!(started.try_recv().is_err(), "started with 1 still running");
    assert_eq!(consistent(coordinator.stats()).active, 1);

    release.add_permits(1);
    assert_eq!(recv(&mut started).await, Some(3));
    settle().await;
    assert_eq!(consistent(coordinator.stats()).active, 1);

    // Growing again after a shrink starts new slots.
    coordinator.set_concurrency(2).unwrap();
    assert_eq!(recv(&mut started).await, Some(4));
    release.add_permits(100);
    coordinator.drain().await;
    let stats = consistent(coordinator.stats());
    assert_eq!((stats.completed, stats.active, stats.queued), (8, 0, 0));
}

#[tokio::test]
async fn set_concurrency_zero_is_an_error_and_changes_nothing() {
    let (coordinator, release, mut started) = blocking(2);
    assert_eq!(
        coordinator.set_concurrency(0),
        Err(BuildError::ZeroConcurrency)
    );
    assert_eq!(coordinator.stats().concurrency, 2);
    coordinator.enqueue_many(0..3).await.unwrap();
    assert_eq!(recv(&mut started).await, Some(0));
    assert_eq!(recv(&mut started).await, Some(1));
    release.add_permits(3);
    coordinator.drain().await;
    assert_eq!(consistent(coordinator.stats()).completed, 3);
}

// ---------------------------------------------------------------------------------------
// Outcomes

#[tokio::test]
async fn handler_errors_and_panics_are_counted_and_the_slot_keeps_working() {
    let ran = Log::default();
    let ran_in = ran.clone();
    // A single slot: if a panic killed it, nothing after the first panic would run.
    let coordinator = Coordinator::builder()
        .sink(Sink::new())
        .concurrency(1)
        .build(move |n: u32, _| {
            let ran = ran_in.clone();
            async move {
                tokio::task::yield_now().await;
                match n % 3 {
                    0 => {
                        ran.push(n);
                        Ok(())
                    }
                    1 => Err(format!("item {n} failed")),
                    _ => panic!("item {n} panicked"),
                }
            }
        })
        .unwrap();
    coordinator.enqueue_many(0..10).await.unwrap();
    coordinator.drain().await;
    assert_eq!(ran.get(), vec![0, 3, 6, 9]);
    let stats = consistent(coordinator.stats());
    assert_eq!(
        (stats.completed, stats.failed, stats.panicked, stats.active),
        (4, 3, 3, 0)
    );
}

#[tokio::test]
async fn a_handler_that_panics_before_returning_its_future_is_caught() {
    let coordinator = Coordinator::builder()
        .sink(Sink::new())
        .concurrency(1)
        .build(|n: u32, _| {
            if n == 1 {
                panic!("synchronous panic");
            }
            async {}
        })
        .unwrap();
    coordinator.enqueue_many(0..3).await.unwrap();
    coordinator.drain().await;
    let stats = consistent(coordinator.stats());
    assert_eq!((stats.completed, stats.panicked), (2, 1));
}

#[tokio::test]
async fn work_context_carries_intake_ids_and_the_sink() {
    let sink = Sink::new();
    let seen = Log::default();
    let seen_in = seen.clone();
    let expected_sink = sink.clone();
    let coordinator = Coordinator::builder()
        .sink(sink.clone())
        .concurrency(1)
        .build(move |n: u32, ctx: WorkContext| {
            assert!(ctx.sink().same_sink(&expected_sink));
            assert!(!ctx.is_cancelled());
            assert!(!ctx.cancellation_token().is_cancelled());
            seen_in.push((n, ctx.id()));
            async {}
        })
        .unwrap();
    assert!(coordinator.sink().same_sink(&sink));
    coordinator.enqueue_many([10, 20, 30]).await.unwrap();
    coordinator.enqueue(40).await.unwrap();
    coordinator.drain().await;
    assert_eq!(seen.get(), vec![(10, 0), (20, 1), (30, 2), (40, 3)]);
}

#[tokio::test(start_paused = true)]
async fn a_handler_raising_on_its_sink_holds_the_items_after_it() {
    let sink = Sink::new();
    let ran = Log::default();
    let ran_in = ran.clone();
    let coordinator = Coordinator::builder()
        .sink(sink.clone())
        .concurrency(1)
        .max_defer(MaxDefer::Never)
        .build(move |n: u32, ctx: WorkContext| {
            ran_in.push(n);
            if n == 0 {
                ctx.sink().raise("backpressure.self").unwrap();
            }
            async {}
        })
        .unwrap();
    coordinator.enqueue_many(0..3).await.unwrap();
    until("item 0 runs", || ran.len() == 1).await;
    settle().await;
    assert_eq!(ran.get(), vec![0]);
    let stats = consistent(coordinator.stats());
    assert_eq!((stats.completed, stats.deferred), (1, 2));
    sink.retract("backpressure.self").unwrap();
    coordinator.drain().await;
    assert_eq!(ran.get(), vec![0, 1, 2]);
}

#[tokio::test(start_paused = true)]
async fn stats_stay_consistent_at_every_step() {
    let sink = Sink::new();
    let release = Arc::new(Semaphore::new(0));
    let release_in = Arc::clone(&release);
    let skipped = Log::default();
    let skipped_in = skipped.clone();
    let coordinator = Coordinator::builder()
        .sink(sink.clone())
        .concurrency(2)
        .cancel_on("cancel.*")
        .max_defer(MaxDefer::Never)
        .on_skip(move |n: u32| skipped_in.push(n))
        .build(move |n: u32, _| {
            let release = Arc::clone(&release_in);
            async move {
                release.acquire().await.unwrap().forget();
                match n % 3 {
                    0 => Ok(()),
                    1 => Err("failed"),
                    _ => panic!("panicked"),
                }
            }
        })
        .unwrap();
    let check = || consistent(coordinator.stats());

    check();
    sink.raise("backpressure.downstream").unwrap();
    coordinator.enqueue_many(0..6).await.unwrap();
    settle().await;
    assert_eq!(check().deferred, 6);
    sink.retract("backpressure.downstream").unwrap();
    until("two run", || check().active == 2).await;
    for _ in 0..4 {
        release.add_permits(1);
        let before = check();
        until("one more finishes", || {
            let s = check();
            s.completed + s.failed + s.panicked > before.completed + before.failed + before.panicked
        })
        .await;
        check();
    }
    sink.raise("cancel.all").unwrap();
    release.add_permits(2);
    coordinator.enqueue_many(6..9).await.unwrap();
    coordinator.drain().await;
    let stats = check();
    assert_eq!(skipped.get(), vec![6, 7, 8]);
    assert_eq!(
        (
            stats.completed,
            stats.failed,
            stats.panicked,
            stats.skipped,
            stats.enqueued
        ),
        (2, 2, 2, 3, 9)
    );
}
