//! Hostile tests of retries (issue 22), public API only, paused time: user code that panics
//! where the engine calls it (an error's `Display`, the `Drop` of the kept copy, the
//! dead-letter callback), extreme durations (jitter bounds, `Duration::MAX` backoffs,
//! timeouts equal to the work), requeueing into a full or closed queue, and a million
//! waiting retries that must wake nothing.

mod common;

use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use backpressure::retry::{DeadLetter, Failure, Retry};
use backpressure::{Coordinator, MaxDefer, Sink, WorkContext};
use common::{consistent, within};
use tokio::time::{sleep, Instant};

const LIMIT: Duration = Duration::from_secs(3600);

fn exact(attempts: u32, backoff_ms: u64) -> Retry {
    Retry::new(attempts)
        .backoff(Duration::from_millis(backoff_ms))
        .jitter(0.0)
}

/// An error whose `Display` panics.
struct Unprintable;

impl fmt::Display for Unprintable {
    fn fmt(&self, _: &mut fmt::Formatter<'_>) -> fmt::Result {
        panic!("injected: Display panics")
    }
}

#[tokio::test(start_paused = true)]
async fn an_error_whose_display_panics_is_a_retried_panic() {
    common::verdicts::quiet_panics();
    let coordinator = Coordinator::builder()
        .sink(Sink::new())
        .concurrency(1)
        .retry(exact(2, 100))
        .build(|_: u32, _: WorkContext| async { Err::<(), _>(Unprintable) })
        .unwrap();
    coordinator.enqueue_many([1, 2]).await.unwrap();
    within(LIMIT, "drain", coordinator.drain()).await;
    let stats = consistent(coordinator.stats());
    assert_eq!(
        (stats.retried, stats.panicked, stats.dead_lettered),
        (2, 2, 2)
    );
    let records = coordinator.dead_letter_records();
    assert!(records[0].error.contains("Display panics"), "{records:?}");
}

/// An item whose copies (made for retries) panic when dropped: the original does not.
#[derive(Debug)]
struct Touchy {
    copy: bool,
}

impl Clone for Touchy {
    fn clone(&self) -> Self {
        Self { copy: true }
    }
}

impl Drop for Touchy {
    fn drop(&mut self) {
        if self.copy && !std::thread::panicking() {
            panic!("injected: the kept copy panics in Drop");
        }
    }
}

/// A successful attempt drops the copy kept for a retry: its `Drop` panicking must neither
/// turn the success into a panic nor kill the slot (the next items still run).
#[tokio::test(start_paused = true)]
async fn a_kept_copy_that_panics_in_drop_after_a_success_loses_nothing() {
    common::verdicts::quiet_panics();
    let runs = Arc::new(AtomicUsize::new(0));
    let r = Arc::clone(&runs);
    let coordinator = Coordinator::builder()
        .sink(Sink::new())
        .concurrency(1)
        .retry(exact(2, 100))
        .build(move |_: Touchy, _: WorkContext| {
            r.fetch_add(1, Ordering::SeqCst);
            async {}
        })
        .unwrap();
    for _ in 0..3 {
        coordinator.enqueue(Touchy { copy: false }).await.unwrap();
    }
    within(LIMIT, "drain", coordinator.drain()).await;
    assert_eq!(runs.load(Ordering::SeqCst), 3, "the slot died");
    let stats = consistent(coordinator.stats());
    assert_eq!((stats.completed, stats.panicked), (3, 0), "{stats:?}");
}

/// An item whose `Clone` panics: the copy for a retry is made before the handler runs.
#[derive(Debug)]
struct Uncopyable;

impl Clone for Uncopyable {
    fn clone(&self) -> Self {
        panic!("injected: Clone panics")
    }
}

/// A `Clone` that panics must not kill the slot: an item that cannot be copied cannot be
/// retried, so it is not run but dead-lettered at once (counted as a panic, nothing lost);
/// the next items are looked at, drain returns.
#[tokio::test(start_paused = true)]
async fn a_clone_that_panics_does_not_kill_the_slot() {
    common::verdicts::quiet_panics();
    let runs = Arc::new(AtomicUsize::new(0));
    let r = Arc::clone(&runs);
    let coordinator = Coordinator::builder()
        .sink(Sink::new())
        .concurrency(1)
        .retry(exact(2, 100))
        .build(move |_: Uncopyable, _: WorkContext| {
            r.fetch_add(1, Ordering::SeqCst);
            async {}
        })
        .unwrap();
    for _ in 0..3 {
        coordinator.enqueue(Uncopyable).await.unwrap();
    }
    within(LIMIT, "drain", coordinator.drain()).await;
    let stats = consistent(coordinator.stats());
    assert_eq!(stats.completed + stats.panicked, 3, "{stats:?}");
    assert!(!stats.closed || stats.queued == 0, "{stats:?}");
    assert_eq!(
        (stats.dead_lettered, runs.load(Ordering::SeqCst)),
        (3, 0),
        "{stats:?}"
    );
    let records = coordinator.dead_letter_records();
    assert!(
        records.iter().all(|r| r.permanent && r.attempts == 0),
        "{records:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn a_panicking_dead_letter_callback_is_contained() {
    common::verdicts::quiet_panics();
    let calls = Arc::new(AtomicUsize::new(0));
    let c = Arc::clone(&calls);
    let coordinator = Coordinator::builder()
        .sink(Sink::new())
        .concurrency(1)
        .retry(Retry::new(1))
        .on_dead_letter(move |_: DeadLetter<u32>| {
            c.fetch_add(1, Ordering::SeqCst);
            panic!("injected: the callback panics");
        })
        .build(|_: u32, _: WorkContext| async { Err::<(), _>("down") })
        .unwrap();
    coordinator.enqueue_many([1, 2, 3]).await.unwrap();
    within(LIMIT, "drain", coordinator.drain()).await;
    assert_eq!(calls.load(Ordering::SeqCst), 3, "every letter reached it");
    let stats = consistent(coordinator.stats());
    assert_eq!((stats.dead_lettered, stats.failed), (3, 3));
}

/// Jitter 0.5 with a fixed seed: each delay within ±50% of its base (1, 2, 4, 8 s), and the
/// same seed gives the same delays.
#[tokio::test(start_paused = true)]
async fn jittered_delays_stay_within_their_bounds_and_repeat_with_a_seed() {
    async fn gaps(seed: u64) -> Vec<Duration> {
        let at = Arc::new(Mutex::new(Vec::new()));
        let a = Arc::clone(&at);
        let retry = Retry::new(5)
            .backoff(Duration::from_secs(1))
            .max_backoff(Duration::from_secs(100))
            .jitter(0.5)
            .jitter_seed(seed);
        let coordinator = Coordinator::builder()
            .sink(Sink::new())
            .retry(retry)
            .build(move |_: u32, _: WorkContext| {
                a.lock().unwrap().push(Instant::now());
                async { Err::<(), _>("down") }
            })
            .unwrap();
        coordinator.enqueue(1).await.unwrap();
        within(LIMIT, "drain", coordinator.drain()).await;
        let at = at.lock().unwrap();
        at.windows(2).map(|w| w[1] - w[0]).collect()
    }
    let first = gaps(7).await;
    assert_eq!(first.len(), 4);
    for (n, gap) in first.iter().enumerate() {
        let base = Duration::from_secs(1 << n);
        assert!(
            *gap >= base / 2 && *gap <= base * 3 / 2,
            "delay {n}: {gap:?} outside ±50% of {base:?}"
        );
    }
    assert_eq!(gaps(7).await, first, "the seed repeats the delays");
    assert_ne!(gaps(8).await, first, "another seed draws others");
}

/// `backoff = max_backoff = Duration::MAX` (with and without jitter): building, failing and
/// scheduling the retry must not panic; the retry waits (practically forever) and shutdown
/// hands it back.
#[tokio::test(start_paused = true)]
async fn huge_backoffs_do_not_panic() {
    for jitter in [0.0, 0.1, 1.0] {
        let coordinator = Coordinator::builder()
            .sink(Sink::new())
            .retry(
                Retry::new(3)
                    .backoff(Duration::MAX)
                    .max_backoff(Duration::MAX)
                    .multiplier(1e300)
                    .jitter(jitter),
            )
            .build(|_: u32, _: WorkContext| async { Err::<(), _>("down") })
            .unwrap();
        coordinator.enqueue(1).await.unwrap();
        sleep(Duration::from_secs(86_400)).await;
        let stats = consistent(coordinator.stats());
        assert_eq!(
            (stats.retry_waiting, stats.panicked, stats.failed),
            (1, 0, 0),
            "jitter {jitter}: {stats:?}"
        );
        let back = within(LIMIT, "shutdown", coordinator.shutdown()).await;
        assert_eq!(back, [1], "jitter {jitter}");
    }
}

/// A handler that ignores its token: cancelled at the deadline, dropped after the grace
/// (a tenth of the timeout), dead-lettered as timed out.
#[tokio::test(start_paused = true)]
async fn a_handler_ignoring_its_token_is_dropped_after_the_grace() {
    let dropped_at = Arc::new(Mutex::new(None));
    let d = Arc::clone(&dropped_at);
    struct OnDrop(Arc<Mutex<Option<Instant>>>);
    impl Drop for OnDrop {
        fn drop(&mut self) {
            *self.0.lock().unwrap() = Some(Instant::now());
        }
    }
    let coordinator = Coordinator::builder()
        .sink(Sink::new())
        .timeout(Duration::from_secs(2))
        .retry(Retry::new(1))
        .build(move |_: u32, _: WorkContext| {
            let guard = OnDrop(Arc::clone(&d));
            async move {
                let _guard = guard;
                sleep(Duration::from_secs(3600)).await;
            }
        })
        .unwrap();
    let start = Instant::now();
    coordinator.enqueue(1).await.unwrap();
    within(LIMIT, "drain", coordinator.drain()).await;
    let dropped = dropped_at.lock().unwrap().expect("the future was dropped");
    assert_eq!(dropped - start, Duration::from_millis(2200));
    let stats = consistent(coordinator.stats());
    assert_eq!(
        (stats.timed_out, stats.failed, stats.dead_lettered),
        (1, 1, 1)
    );
    assert_eq!(
        coordinator.dead_letter_records()[0].error,
        "timed out after 2s"
    );
}

/// Work that takes exactly the timeout: finished at the deadline, it is a success.
#[tokio::test(start_paused = true)]
async fn work_taking_exactly_the_timeout_completes() {
    let coordinator = Coordinator::builder()
        .sink(Sink::new())
        .timeout(Duration::from_secs(2))
        .retry(Retry::new(1))
        .build(|_: u32, _: WorkContext| async {
            sleep(Duration::from_secs(2)).await;
            Ok::<(), Failure<&str>>(())
        })
        .unwrap();
    coordinator.enqueue(1).await.unwrap();
    within(LIMIT, "drain", coordinator.drain()).await;
    let stats = consistent(coordinator.stats());
    assert_eq!((stats.completed, stats.timed_out), (1, 0), "{stats:?}");
}

/// Requeueing dead letters into a queue with room for one: one goes, the other stays kept;
/// into a closed queue: none goes, both stay kept, nothing is lost.
#[tokio::test(start_paused = true)]
async fn requeue_into_a_full_or_closed_queue_keeps_what_does_not_fit() {
    let fail = Arc::new(AtomicBool::new(true));
    let f = Arc::clone(&fail);
    let coordinator = Coordinator::builder()
        .sink(Sink::new())
        .concurrency(1)
        .capacity(2)
        .retry(Retry::new(1))
        .build(move |_: u32, _: WorkContext| {
            let fail = f.load(Ordering::SeqCst);
            async move {
                if fail {
                    Err("down")
                } else {
                    Ok(())
                }
            }
        })
        .unwrap();
    coordinator.enqueue_many([1, 2]).await.unwrap();
    common::settle().await;
    assert_eq!(coordinator.dead_letter_counts(), (2, 0));
    coordinator.pause();
    coordinator.try_enqueue(3).unwrap();
    assert_eq!(coordinator.requeue_dead_letters(), 1, "room for one");
    assert_eq!(coordinator.dead_letter_counts(), (1, 0));
    assert_eq!(coordinator.dead_letter_records()[0].attempts, 1);
    consistent(coordinator.stats());
    fail.store(false, Ordering::SeqCst);
    coordinator.resume();
    within(LIMIT, "drain", coordinator.drain()).await;
    assert_eq!(coordinator.requeue_dead_letters(), 0, "closed");
    let (kept, evicted) = coordinator.dead_letter_counts();
    assert_eq!((kept, evicted), (1, 0));
    let stats = consistent(coordinator.stats());
    assert_eq!((stats.enqueued, stats.completed, stats.failed), (4, 2, 2));
    assert_eq!(
        within(LIMIT, "shutdown", coordinator.shutdown())
            .await
            .len(),
        1
    );
}

fn waiting_items() -> u32 {
    std::env::var("BACKPRESSURE_RETRY_WAITING")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000)
}

/// A million items waiting for their retry (due in an hour), on a worker whose slots are
/// also held by a raised signal: for 59 minutes of paused time nothing runs and no held
/// slot is woken (`gate_rechecks` stays); then every retry runs once the signal is gone.
#[tokio::test(start_paused = true)]
async fn a_million_waiting_retries_wake_nothing() {
    let n = waiting_items();
    let sink = Sink::new();
    let runs = Arc::new(AtomicUsize::new(0));
    let r = Arc::clone(&runs);
    let coordinator = Coordinator::builder()
        .sink(sink.clone())
        .concurrency(4)
        .max_defer(MaxDefer::Never)
        .capacity(n as usize + 1)
        .retry(exact(2, 3_600_000).max_backoff(Duration::from_secs(3600)))
        .build(move |i: u32, ctx: WorkContext| {
            r.fetch_add(1, Ordering::SeqCst);
            // The held item (`n`) succeeds at once; the others fail their first attempt.
            let fails = ctx.attempt() == 1 && i < n;
            async move {
                if fails {
                    Err("later")
                } else {
                    Ok(())
                }
            }
        })
        .unwrap();
    for i in 0..n {
        coordinator.try_enqueue(i).unwrap();
    }
    common::until(
        "every first attempt failed",
        || coordinator.stats(),
        |s| s.retry_waiting == n as usize,
    )
    .await;
    sink.raise("backpressure.held").unwrap();
    coordinator.try_enqueue(n).unwrap(); // one held item, so slots wait on the gate
    sleep(Duration::from_secs(1)).await;
    let before = consistent(coordinator.stats());
    let runs_before = runs.load(Ordering::SeqCst);
    sleep(Duration::from_secs(59 * 60)).await;
    let after = consistent(coordinator.stats());
    assert_eq!(runs.load(Ordering::SeqCst), runs_before, "something ran");
    assert_eq!(after.gate_rechecks, before.gate_rechecks, "held slots woke");
    assert_eq!(after.retry_waiting, n as usize);
    sink.retract("backpressure.held").unwrap();
    within(LIMIT, "drain", coordinator.drain()).await;
    let stats = consistent(coordinator.stats());
    assert_eq!(stats.completed, u64::from(n) + 1);
}
