//! Hostile tests of retries, dead letters and timeouts (issue 22), through the public API
//! only, under paused time: bad days a user will have (breakers on both sides, owners gone
//! while retries wait, pauses, tiny capacities, panicking user code, huge durations) and
//! what each must still guarantee: nothing lost, nothing run twice, every snapshot
//! consistent, no drain left hanging.

mod common;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use backpressure::policy::Breaker;
use backpressure::retry::{DeadLetter, Retry};
use backpressure::{Coordinator, Sink, WorkContext};
use common::{consistent, within};
use tokio::time::{sleep, Instant};

const LIMIT: Duration = Duration::from_secs(3600);

/// A retry of `attempts` with exact delays of `backoff_ms`, doubling.
fn exact(attempts: u32, backoff_ms: u64) -> Retry {
    Retry::new(attempts)
        .backoff(Duration::from_millis(backoff_ms))
        .jitter(0.0)
}

/// A worker of concurrency `n` whose every attempt fails, counting them.
fn always_failing(retry: Retry, n: usize, runs: &Arc<AtomicUsize>) -> Coordinator<u32> {
    let runs = Arc::clone(runs);
    Coordinator::builder()
        .sink(Sink::new())
        .concurrency(n)
        .retry(retry)
        .build(move |_: u32, _: WorkContext| {
            runs.fetch_add(1, Ordering::SeqCst);
            async { Err::<(), _>("down") }
        })
        .unwrap()
}

#[tokio::test(start_paused = true)]
async fn attempts_1_keeps_dead_letters_without_retrying() {
    let runs = Arc::new(AtomicUsize::new(0));
    let coordinator = always_failing(Retry::new(1), 2, &runs);
    let ids = [
        coordinator.enqueue(1).await.unwrap(),
        coordinator.enqueue(2).await.unwrap(),
    ];
    within(LIMIT, "drain", coordinator.drain()).await;
    let stats = consistent(coordinator.stats());
    assert_eq!(
        (stats.retried, stats.failed, stats.dead_lettered),
        (0, 2, 2)
    );
    assert_eq!(runs.load(Ordering::SeqCst), 2, "one run each");
    let records = coordinator.dead_letter_records();
    let got: Vec<_> = records.iter().map(|r| (r.id, r.attempts)).collect();
    assert_eq!(got, [(ids[0], 1), (ids[1], 1)]);
}

#[tokio::test(start_paused = true)]
async fn a_buffer_of_one_keeps_the_newest_and_counts_the_evicted() {
    let coordinator = Coordinator::builder()
        .sink(Sink::new())
        .concurrency(1)
        .retry(Retry::new(1))
        .dead_letters(1)
        .build(|_: u32, _: WorkContext| async { Err::<(), _>("down") })
        .unwrap();
    let mut last = None;
    for n in 0..5 {
        last = Some(coordinator.enqueue(n).await.unwrap());
    }
    within(LIMIT, "drain", coordinator.drain()).await;
    assert_eq!(coordinator.dead_letter_counts(), (1, 4));
    assert_eq!(coordinator.dead_letter_records()[0].id, last.unwrap());
    let stats = consistent(coordinator.stats());
    assert_eq!((stats.dead_lettered, stats.failed), (5, 5));
}

#[tokio::test(start_paused = true)]
async fn a_cancel_on_skip_is_never_retried() {
    let sink = Sink::new();
    let runs = Arc::new(AtomicUsize::new(0));
    let skipped = Arc::new(AtomicUsize::new(0));
    let (r, s) = (Arc::clone(&runs), Arc::clone(&skipped));
    let coordinator = Coordinator::builder()
        .sink(sink.clone())
        .cancel_on("cancel.me")
        .retry(exact(4, 1000))
        .on_skip(move |_: u32| {
            s.fetch_add(1, Ordering::SeqCst);
        })
        .build(move |_: u32, _: WorkContext| {
            r.fetch_add(1, Ordering::SeqCst);
            async { Err::<(), _>("down") }
        })
        .unwrap();
    // One skipped outright; one failed once, then skipped when its retry comes due.
    sink.raise("cancel.me").unwrap();
    coordinator.enqueue(1).await.unwrap();
    common::settle().await;
    sink.retract("cancel.me").unwrap();
    coordinator.enqueue(2).await.unwrap();
    common::settle().await;
    assert_eq!(runs.load(Ordering::SeqCst), 1);
    sink.raise("cancel.me").unwrap();
    sleep(Duration::from_secs(30)).await;
    within(LIMIT, "drain", coordinator.drain()).await;
    let stats = consistent(coordinator.stats());
    assert_eq!(
        (stats.skipped, stats.retried, stats.dead_lettered),
        (2, 1, 0)
    );
    assert_eq!(runs.load(Ordering::SeqCst), 1, "a skip never runs again");
    assert_eq!(skipped.load(Ordering::SeqCst), 2);
}

#[tokio::test(start_paused = true)]
async fn a_due_retry_waits_for_resume() {
    let runs = Arc::new(AtomicUsize::new(0));
    let coordinator = always_failing(exact(2, 1000), 1, &runs);
    coordinator.enqueue(1).await.unwrap();
    common::settle().await;
    coordinator.pause();
    sleep(Duration::from_secs(10)).await;
    let stats = consistent(coordinator.stats());
    assert_eq!((stats.queued, stats.retry_waiting), (1, 0), "{stats:?}");
    assert_eq!(runs.load(Ordering::SeqCst), 1, "no retry while paused");
    coordinator.resume();
    within(LIMIT, "drain", coordinator.drain()).await;
    assert_eq!(runs.load(Ordering::SeqCst), 2);
    assert_eq!(consistent(coordinator.stats()).dead_lettered, 1);
}

/// Capacity 1 with concurrency 4: the waiting retry holds the only place, so never more
/// than one item is in the coordinator, and a producer waiting in `enqueue` gets in once
/// the item's final outcome frees it.
#[tokio::test(start_paused = true)]
async fn capacity_1_with_concurrency_4_runs_one_item_at_a_time() {
    let running = Arc::new(AtomicUsize::new(0));
    let most = Arc::new(AtomicUsize::new(0));
    let (r, m) = (Arc::clone(&running), Arc::clone(&most));
    let coordinator = Coordinator::builder()
        .sink(Sink::new())
        .concurrency(4)
        .capacity(1)
        .retry(exact(3, 100))
        .build(move |n: u32, ctx: WorkContext| {
            let (r, m) = (Arc::clone(&r), Arc::clone(&m));
            async move {
                m.fetch_max(r.fetch_add(1, Ordering::SeqCst) + 1, Ordering::SeqCst);
                sleep(Duration::from_millis(10)).await;
                r.fetch_sub(1, Ordering::SeqCst);
                if ctx.attempt() < 3 && n.is_multiple_of(2) {
                    Err("again")
                } else {
                    Ok(())
                }
            }
        })
        .unwrap();
    let producer = coordinator.clone();
    let produce = tokio::spawn(async move {
        for n in 0..20 {
            producer.enqueue(n).await.unwrap();
            consistent(producer.stats());
        }
    });
    within(LIMIT, "the producer", produce).await.unwrap();
    within(LIMIT, "drain", coordinator.drain()).await;
    let stats = consistent(coordinator.stats());
    assert_eq!((stats.completed, stats.retried), (20, 20));
    assert_eq!(most.load(Ordering::SeqCst), 1);
}

/// Two workers deferring on one downstream's breaker signal, each owning a breaker on it,
/// both with failing items waiting for retries: while a verdict is open nothing starts (due
/// retries wait in the queue), and once the downstream heals everything completes.
#[tokio::test(start_paused = true)]
async fn two_workers_with_breakers_on_one_signal_retry_only_through_the_verdict() {
    let sink = Sink::new();
    let healthy = Arc::new(AtomicBool::new(false));
    let starts_while_open = Arc::new(AtomicUsize::new(0));
    let workers: Vec<Coordinator<u32>> = (0..2)
        .map(|i| {
            let (healthy, open) = (Arc::clone(&healthy), Arc::clone(&starts_while_open));
            let probe = sink.clone();
            Coordinator::builder()
                .sink(sink.clone())
                .name(format!("w{i}"))
                .concurrency(2)
                .defer_on("backpressure.down")
                .policy(
                    Breaker::error_rate("backpressure.down")
                        .consecutive_failures(1)
                        .open_for(Duration::from_secs(2))
                        .jitter(0.0)
                        .probes(1),
                )
                .retry(exact(4, 500))
                .build(move |_: u32, _: WorkContext| {
                    let open_now = probe.snapshot().iter().any(|e| {
                        &*e.name == "backpressure.down"
                            && e.phase == Some(backpressure::Phase::Open)
                    });
                    open.fetch_add(usize::from(open_now), Ordering::SeqCst);
                    let ok = healthy.load(Ordering::SeqCst);
                    async move {
                        sleep(Duration::from_millis(10)).await;
                        if ok {
                            Ok(())
                        } else {
                            Err("unhealthy")
                        }
                    }
                })
                .unwrap()
        })
        .collect();
    for worker in &workers {
        worker.enqueue_many(0..3).await.unwrap();
    }
    sleep(Duration::from_secs(3)).await;
    for worker in &workers {
        let stats = consistent(worker.stats());
        assert!(stats.retried > 0, "{stats:?}");
    }
    healthy.store(true, Ordering::SeqCst);
    for worker in &workers {
        within(LIMIT, "drain", worker.drain()).await;
        let stats = consistent(worker.stats());
        assert_eq!(stats.completed + stats.dead_lettered, 3, "{stats:?}");
    }
    assert_eq!(
        starts_while_open.load(Ordering::SeqCst),
        0,
        "an attempt started while a verdict on its downstream was open"
    );
}

#[tokio::test(start_paused = true)]
async fn drain_waits_for_waiting_retries_and_shutdown_hands_them_back() {
    let runs = Arc::new(AtomicUsize::new(0));
    let drained = always_failing(exact(3, 1000), 2, &runs);
    drained.enqueue_many([1, 2]).await.unwrap();
    let start = Instant::now();
    within(LIMIT, "drain", drained.drain()).await;
    // Failures at 0, 1, 3 s: the last attempt ends at 3 s.
    assert_eq!(start.elapsed(), Duration::from_secs(3));
    assert_eq!(runs.load(Ordering::SeqCst), 6);
    assert_eq!(consistent(drained.stats()).dead_lettered, 2);

    let runs = Arc::new(AtomicUsize::new(0));
    let shut = always_failing(exact(3, 1000), 2, &runs);
    shut.enqueue_many([1, 2]).await.unwrap();
    common::settle().await;
    let mut back = within(LIMIT, "shutdown", shut.shutdown()).await;
    back.sort_unstable();
    assert_eq!(back, [1, 2]);
    let stats = consistent(shut.stats());
    assert_eq!((stats.returned, stats.retry_waiting), (2, 0));
    sleep(Duration::from_secs(10)).await;
    assert_eq!(
        runs.load(Ordering::SeqCst),
        2,
        "nothing runs after shutdown"
    );
}

/// `shutdown_after` while retries wait past the grace: what finished is done, the waiting
/// retries are handed back, at the grace.
#[tokio::test(start_paused = true)]
async fn shutdown_after_hands_back_retries_due_past_its_grace() {
    let runs = Arc::new(AtomicUsize::new(0));
    let coordinator = always_failing(exact(3, 10_000), 2, &runs);
    coordinator.enqueue_many([1, 2]).await.unwrap();
    let start = Instant::now();
    let back = within(
        LIMIT,
        "shutdown_after",
        coordinator.shutdown_after(Duration::from_secs(5)),
    )
    .await;
    assert_eq!(start.elapsed(), Duration::from_secs(5));
    assert_eq!(back.len(), 2);
    let stats = consistent(coordinator.stats());
    assert_eq!((stats.returned, stats.retried), (2, 2));
}

/// The last handle dropped while retries wait: the slots and the retry timer live on and
/// run them to their end; a dead letter goes to the callback.
#[tokio::test(start_paused = true)]
async fn a_dropped_coordinator_still_finishes_its_waiting_retries() {
    let runs = Arc::new(AtomicUsize::new(0));
    let dead = Arc::new(Mutex::new(Vec::new()));
    let (r, d) = (Arc::clone(&runs), Arc::clone(&dead));
    let coordinator = Coordinator::builder()
        .sink(Sink::new())
        .retry(exact(3, 1000))
        .on_dead_letter(move |letter: DeadLetter<u32>| d.lock().unwrap().push(letter.item))
        .build(move |n: u32, ctx: WorkContext| {
            r.fetch_add(1, Ordering::SeqCst);
            async move {
                if n == 0 || ctx.attempt() < 2 {
                    Err("down")
                } else {
                    Ok(())
                }
            }
        })
        .unwrap();
    coordinator.enqueue_many([0, 1]).await.unwrap();
    common::settle().await;
    assert_eq!(coordinator.stats().retry_waiting, 2);
    drop(coordinator);
    sleep(Duration::from_secs(60)).await;
    // Item 0: three attempts, dead; item 1: two, completed.
    assert_eq!(runs.load(Ordering::SeqCst), 5);
    assert_eq!(*dead.lock().unwrap(), [0]);
}

/// An item whose `Drop` counts: whether a dropped coordinator's state is freed.
#[derive(Debug)]
struct Counted(Arc<AtomicUsize>);

impl Clone for Counted {
    fn clone(&self) -> Self {
        Self(Arc::clone(&self.0))
    }
}

impl Drop for Counted {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

/// The last handle dropped while a retry waits (concurrency 4: three slots idle, parked
/// while the retry was still to come): once the retry's last attempt ends, every slot
/// leaves and the coordinator is freed, its unreadable dead letter with it (its `Drop`
/// runs). Before the fix the idle slots were never woken to leave: four tasks, the state
/// and the dead letter were kept forever.
#[tokio::test(start_paused = true)]
async fn a_dropped_coordinator_is_freed_after_its_last_retry() {
    let drops = Arc::new(AtomicUsize::new(0));
    let runs = Arc::new(AtomicUsize::new(0));
    let r = Arc::clone(&runs);
    let coordinator = Coordinator::builder()
        .sink(Sink::new())
        .concurrency(4)
        .retry(exact(2, 1000))
        .build(move |_: Counted, _: WorkContext| {
            r.fetch_add(1, Ordering::SeqCst);
            async { Err::<(), _>("down") }
        })
        .unwrap();
    coordinator
        .enqueue(Counted(Arc::clone(&drops)))
        .await
        .unwrap();
    common::settle().await;
    drop(coordinator);
    sleep(Duration::from_secs(60)).await;
    assert_eq!(runs.load(Ordering::SeqCst), 2, "the retry still ran");
    // The original and two attempts' copies, the dead letter included.
    assert_eq!(
        drops.load(Ordering::SeqCst),
        3,
        "the coordinator was not freed"
    );
}

/// The same with a breaker: the owner's verdict must end with its last slot, not stay
/// raised on the shared sink because idle slots never leave.
#[tokio::test(start_paused = true)]
async fn a_dropped_coordinators_verdict_ends_after_its_last_retry() {
    let sink = Sink::new();
    let coordinator = Coordinator::builder()
        .sink(sink.clone())
        .name("owner")
        .concurrency(4)
        .policy(
            Breaker::error_rate("backpressure.down")
                .consecutive_failures(1)
                .open_for(Duration::from_millis(500))
                .jitter(0.0),
        )
        .retry(exact(2, 1000))
        .build(|_: u32, _: WorkContext| async { Err::<(), _>("down") })
        .unwrap();
    coordinator.enqueue(1).await.unwrap();
    common::settle().await;
    drop(coordinator);
    sleep(Duration::from_secs(600)).await;
    assert_eq!(
        sink.snapshot(),
        [],
        "the dropped owner's verdict outlived it"
    );
}
