//! Retries, dead letters, timeouts and what shutdown hands back, under paused time: exact
//! attempt instants, due retries held by the gate, nothing lost.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use backpressure::retry::{Failure, Retry};
use backpressure::{Coordinator, Sink, WorkContext};
use tokio::time::Instant;

type Log = Arc<Mutex<Vec<(u32, u32, Duration)>>>;

/// A worker whose item `n` fails its first `n` attempts, logging (item, attempt, when).
fn failing_first(sink: &Sink, retry: Retry, log: &Log, start: Instant) -> Coordinator<u32> {
    let log = Arc::clone(log);
    Coordinator::builder()
        .sink(sink.clone())
        .concurrency(2)
        .retry(retry)
        .build(move |n: u32, ctx: WorkContext| {
            let log = Arc::clone(&log);
            async move {
                let attempt = ctx.attempt();
                log.lock().unwrap().push((n, attempt, start.elapsed()));
                if attempt <= n {
                    Err(format!("attempt {attempt} of item {n} fails"))
                } else {
                    Ok(())
                }
            }
        })
        .unwrap()
}

#[tokio::test(start_paused = true)]
async fn attempts_run_after_exponential_backoff_capped_at_max_backoff() {
    let log = Log::default();
    let retry = Retry::new(6)
        .backoff(Duration::from_secs(1))
        .max_backoff(Duration::from_secs(5))
        .jitter(0.0);
    let coordinator = failing_first(&Sink::new(), retry, &log, Instant::now());
    coordinator.enqueue(4).await.unwrap();
    coordinator.drain().await;
    let at: Vec<_> = log.lock().unwrap().iter().map(|e| e.2.as_secs()).collect();
    // Failures after 0, 1, 3, 7 s; waits 1, 2, 4, then capped at 5.
    assert_eq!(at, [0, 1, 3, 7, 12]);
    let stats = coordinator.stats();
    assert_eq!((stats.completed, stats.retried, stats.failed), (1, 4, 0));
    assert!(stats.is_consistent(), "{stats:?}");
}

#[tokio::test(start_paused = true)]
async fn the_last_failure_is_a_dead_letter_that_can_be_requeued() {
    let log = Log::default();
    let retry = Retry::new(2).backoff(Duration::from_secs(1)).jitter(0.0);
    let coordinator = failing_first(&Sink::new(), retry, &log, Instant::now());
    let id = coordinator.enqueue(3).await.unwrap();
    tokio::time::sleep(Duration::from_secs(5)).await;
    let stats = coordinator.stats();
    assert_eq!(
        (stats.failed, stats.dead_lettered, stats.retried),
        (1, 1, 1)
    );
    assert!(stats.is_consistent(), "{stats:?}");
    let records = coordinator.dead_letter_records();
    assert_eq!(records.len(), 1);
    assert_eq!((records[0].id, records[0].attempts), (id, 2));
    assert_eq!(records[0].error, "attempt 2 of item 3 fails");
    // Requeued: a fresh set of two attempts (3 and 4 of the item's life are its 1 and 2).
    assert_eq!(coordinator.requeue_dead_letters(), 1);
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(coordinator.stats().dead_lettered, 2);
    assert_eq!(coordinator.stats().enqueued, 2);
    assert!(coordinator.stats().is_consistent());
}

#[tokio::test(start_paused = true)]
async fn a_permanent_failure_is_not_retried() {
    let coordinator = Coordinator::builder()
        .sink(Sink::new())
        .retry(Retry::new(5))
        .build(|_: u8, _: WorkContext| async { Err(Failure::permanent("bad address")) })
        .unwrap();
    coordinator.enqueue(1).await.unwrap();
    coordinator.drain().await;
    let stats = coordinator.stats();
    assert_eq!(
        (stats.retried, stats.dead_lettered, stats.failed),
        (0, 1, 1)
    );
    let dead = coordinator.take_dead_letters();
    assert!(dead[0].permanent);
    assert_eq!(dead[0].attempts, 1);
}

#[tokio::test(start_paused = true)]
async fn a_due_retry_waits_while_the_worker_is_held() {
    let sink = Sink::new();
    let log = Log::default();
    let start = Instant::now();
    let retry = Retry::new(3).backoff(Duration::from_secs(1)).jitter(0.0);
    let coordinator = failing_first(&sink, retry, &log, start);
    coordinator.enqueue(1).await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    // Due at 1 s; the downstream is held from 0.5 s to 10 s.
    tokio::time::sleep(Duration::from_millis(400)).await;
    sink.raise("backpressure.relay").unwrap();
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        log.lock().unwrap().len(),
        1,
        "the due retry must not start while held"
    );
    let stats = coordinator.stats();
    assert_eq!((stats.queued, stats.retry_waiting), (1, 0), "{stats:?}");
    tokio::time::sleep_until(start + Duration::from_secs(10)).await;
    sink.retract("backpressure.relay").unwrap();
    coordinator.drain().await;
    let at: Vec<_> = log.lock().unwrap().iter().map(|e| e.2).collect();
    assert_eq!(at, [Duration::ZERO, Duration::from_secs(10)]);
}

#[tokio::test(start_paused = true)]
async fn an_attempt_past_its_timeout_is_cancelled_then_retried() {
    let coordinator = Coordinator::builder()
        .sink(Sink::new())
        .timeout(Duration::from_secs(2))
        .retry(Retry::new(2).backoff(Duration::from_secs(1)).jitter(0.0))
        .build(|_: u8, ctx: WorkContext| async move {
            if ctx.attempt() == 1 {
                // Ignores its token: dropped after the grace.
                tokio::time::sleep(Duration::from_secs(3600)).await;
            }
        })
        .unwrap();
    let start = Instant::now();
    coordinator.enqueue(1).await.unwrap();
    coordinator.drain().await;
    let stats = coordinator.stats();
    assert_eq!((stats.timed_out, stats.retried, stats.completed), (1, 1, 1));
    // 2 s deadline + 0.2 s grace + 1 s backoff.
    assert_eq!(start.elapsed(), Duration::from_millis(3200));
}

#[tokio::test(start_paused = true)]
async fn shutdown_hands_back_retry_waiting_cut_short_and_dead_items() {
    let coordinator = Coordinator::builder()
        .sink(Sink::new())
        .concurrency(2)
        .retry(Retry::new(2).backoff(Duration::from_secs(60)).jitter(0.0))
        .build(|n: u32, ctx: WorkContext| async move {
            match n {
                0 => Err(Failure::from("fails, waits 60 s for its retry")),
                1 => Err(Failure::permanent("dead")),
                _ => {
                    ctx.cancelled().await;
                    Err(Failure::from("cut short"))
                }
            }
        })
        .unwrap();
    coordinator.enqueue_many([0, 1, 2]).await.unwrap();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let mut back = coordinator.shutdown().await;
    back.sort();
    assert_eq!(back, [0, 1, 2]);
    let stats = coordinator.stats();
    assert!(stats.is_consistent(), "{stats:?}");
    assert_eq!(
        (stats.retry_waiting, stats.returned, stats.dead_lettered),
        (0, 2, 1)
    );
    assert_eq!(stats.failed, 1, "only the dead letter's failure is final");
}

#[tokio::test(start_paused = true)]
async fn an_item_keeps_its_place_in_capacity_until_its_final_outcome() {
    let coordinator = Coordinator::builder()
        .sink(Sink::new())
        .concurrency(1)
        .capacity(1)
        .retry(Retry::new(2).backoff(Duration::from_secs(1)).jitter(0.0))
        .build(|_: u8, ctx: WorkContext| async move {
            if ctx.attempt() == 1 {
                Err("once")
            } else {
                Ok(())
            }
        })
        .unwrap();
    coordinator.enqueue(1).await.unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(coordinator.stats().retry_waiting, 1);
    assert!(
        coordinator.try_enqueue(2).is_err(),
        "the waiting retry holds the place"
    );
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(coordinator.stats().completed, 1);
    coordinator
        .try_enqueue(2)
        .expect("room after the final outcome");
}

#[tokio::test(start_paused = true)]
async fn a_dropped_coordinator_finishes_its_retries_and_its_slots_leave() {
    let done = Arc::new(tokio::sync::Notify::new());
    let seen = Arc::clone(&done);
    let marker = Arc::new(());
    let handler_alive = Arc::downgrade(&marker);
    let coordinator = Coordinator::builder()
        .sink(Sink::new())
        .concurrency(4)
        .retry(Retry::new(2).backoff(Duration::from_secs(1)).jitter(0.0))
        .build(move |_: u8, ctx: WorkContext| {
            let _held_by_the_handler = &marker;
            let seen = Arc::clone(&seen);
            async move {
                if ctx.attempt() == 1 {
                    return Err("once");
                }
                seen.notify_one();
                Ok(())
            }
        })
        .unwrap();
    coordinator.enqueue(1).await.unwrap();
    tokio::task::yield_now().await;
    drop(coordinator);
    // The retry still runs after the last handle is gone...
    tokio::time::timeout(Duration::from_secs(5), done.notified())
        .await
        .expect("the retry ran after the handle was dropped");
    // ...and then every slot leaves, freeing the handler.
    for _ in 0..20 {
        tokio::task::yield_now().await;
    }
    assert_eq!(handler_alive.strong_count(), 0, "idle slots stayed parked");
}
