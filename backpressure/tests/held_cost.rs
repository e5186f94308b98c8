//! While work is held, nothing wakes up on a timer: the only timer is the head item's
//! `max_defer` deadline, one per coordinator, and it fires exactly at the deadline.

use std::time::Duration;

use backpressure::{Coordinator, MaxDefer, Sink, Stats};
use tokio::sync::mpsc;
use tokio::time::Instant;

fn consistent(stats: Stats) -> Stats {
    assert!(stats.is_consistent(), "{stats:?}");
    stats
}

#[tokio::test(start_paused = true)]
async fn sixteen_held_slots_sleep_for_an_hour_without_a_single_wake_up() {
    let sink = Sink::new();
    let coordinator = Coordinator::builder()
        .sink(sink.clone())
        .concurrency(16)
        .max_defer(MaxDefer::Never)
        .build(|_: u32, _| async {})
        .unwrap();
    sink.raise("backpressure.downstream").unwrap();
    for n in 0..32 {
        coordinator.enqueue(n).await.unwrap();
    }
    tokio::time::sleep(Duration::from_secs(3_600)).await;
    let stats = consistent(coordinator.stats());
    assert_eq!((stats.deferred, stats.gate_rechecks), (32, 0), "{stats:?}");

    sink.retract("backpressure.downstream").unwrap();
    coordinator.drain().await;
    assert_eq!(consistent(coordinator.stats()).completed, 32);
}

#[tokio::test(start_paused = true)]
async fn a_held_head_starts_at_its_max_defer_deadline_exactly_and_once() {
    let sink = Sink::new();
    let (started_tx, mut started) = mpsc::unbounded_channel();
    let coordinator = Coordinator::builder()
        .sink(sink.clone())
        .concurrency(4)
        // An interval that does not divide the deadline: the start must not be rounded to it.
        .defer_check_interval(Duration::from_millis(300))
        .max_defer(MaxDefer::After(Duration::from_secs(10)))
        .build(move |n: u32, _| {
            let started_tx = started_tx.clone();
            async move {
                started_tx.send((n, Instant::now())).unwrap();
                // Keeps its slot, so the next head waits for a slot too.
                std::future::pending::<()>().await;
            }
        })
        .unwrap();
    sink.raise("backpressure.downstream").unwrap();
    let held_at = Instant::now();
    coordinator.enqueue(0).await.unwrap();
    coordinator.enqueue(1).await.unwrap();

    let (first, at) = started.recv().await.unwrap();
    assert_eq!((first, at - held_at), (0, Duration::from_secs(10)));
    let stats = consistent(coordinator.stats());
    assert_eq!(
        (stats.defer_timeouts, stats.active, stats.queued),
        (1, 1, 1)
    );

    // The next head gets its own 10 s, counted from when it became the head.
    let (second, second_at) = started.recv().await.unwrap();
    assert_eq!((second, second_at - at), (1, Duration::from_secs(10)));
    let stats = consistent(coordinator.stats());
    assert_eq!((stats.defer_timeouts, stats.active), (2, 2));
    // Held slots woke for the timer and its hand-over only (twice per head), not on an
    // interval: 20 s at a 300 ms interval would be 66 re-checks per slot.
    assert!(stats.gate_rechecks <= 4, "{stats:?}");
}

#[tokio::test(start_paused = true)]
async fn a_ttl_on_the_holding_signal_releases_work_at_the_expiry_instant() {
    let sink = Sink::new();
    let (started_tx, mut started) = mpsc::unbounded_channel();
    let coordinator = Coordinator::builder()
        .sink(sink.clone())
        .concurrency(8)
        .max_defer(MaxDefer::Never)
        .build(move |n: u32, _| {
            started_tx.send((n, Instant::now())).unwrap();
            async {}
        })
        .unwrap();
    let raised_at = Instant::now();
    sink.raise_for("backpressure.busy", Duration::from_millis(1_234))
        .unwrap();
    coordinator.enqueue(7).await.unwrap();
    let (n, at) = started.recv().await.unwrap();
    assert_eq!((n, at - raised_at), (7, Duration::from_millis(1_234)));
    assert_eq!(consistent(coordinator.stats()).defer_timeouts, 0);
}
