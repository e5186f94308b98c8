//! Throttling levels: a raise with a level between 0 and 1 lets part of the work through.

use std::sync::Arc;
use std::time::Duration;

use backpressure::{
    Coordinator, Level, MaxDefer, RaiseOptions, SignalEventKind, Sink, Stats, WorkContext,
};
use futures_util::StreamExt;
use tokio::sync::Semaphore;

/// A coordinator of 10 slots whose handlers run until `release` hands them a permit.
fn blocked(sink: &Sink, release: &Arc<Semaphore>) -> Coordinator<u32> {
    let release = Arc::clone(release);
    Coordinator::builder()
        .sink(sink.clone())
        .concurrency(10)
        .capacity(1_000)
        .max_defer(MaxDefer::Never)
        .build(move |_: u32, _: WorkContext| {
            let release = Arc::clone(&release);
            async move {
                release.acquire().await.unwrap().forget();
            }
        })
        .unwrap()
}

fn level(value: f64) -> RaiseOptions {
    RaiseOptions::new().level(Level::new(value).unwrap())
}

/// Lets every runnable slot start what it may (paused current-thread runtime: a fixed number
/// of yields is deterministic, and no time passes).
async fn settle() {
    for _ in 0..50 {
        tokio::task::yield_now().await;
    }
}

fn consistent(stats: Stats) -> Stats {
    assert!(stats.is_consistent(), "{stats:?}");
    stats
}

#[tokio::test(start_paused = true)]
async fn a_level_of_0_3_on_ten_slots_runs_three_items() {
    let sink = Sink::new();
    let release = Arc::new(Semaphore::new(0));
    let coordinator = blocked(&sink, &release);
    sink.raise_with("backpressure.db", level(0.3)).unwrap();
    coordinator.enqueue_many(0..20).await.unwrap();
    settle().await;
    let stats = consistent(coordinator.stats());
    assert_eq!((stats.active, stats.limit, stats.queued), (3, 3, 17));
    assert!(!stats.gate_open);

    // One finishes: exactly one more starts.
    release.add_permits(1);
    settle().await;
    let stats = consistent(coordinator.stats());
    assert_eq!((stats.completed, stats.active, stats.queued), (1, 3, 16));
}

#[tokio::test(start_paused = true)]
async fn the_lowest_level_among_matching_entries_wins() {
    let sink = Sink::new();
    let release = Arc::new(Semaphore::new(0));
    let coordinator = blocked(&sink, &release);
    sink.raise_with("backpressure.db", level(0.5)).unwrap();
    sink.raise_with("backpressure.smtp", level(0.2)).unwrap();
    coordinator.enqueue_many(0..20).await.unwrap();
    settle().await;
    assert_eq!(consistent(coordinator.stats()).active, 2);

    // A tiny level still lets one item run.
    sink.raise_with("backpressure.smtp", level(0.05)).unwrap();
    let stats = consistent(coordinator.stats());
    assert_eq!(stats.limit, 1);
    // Lowering the level never cancels running work.
    assert_eq!(stats.active, 2);
}

#[tokio::test(start_paused = true)]
async fn raising_the_level_wakes_held_slots_at_once() {
    let sink = Sink::new();
    let release = Arc::new(Semaphore::new(0));
    let coordinator = blocked(&sink, &release);
    sink.raise_with("backpressure.db", level(0.2)).unwrap();
    coordinator.enqueue_many(0..20).await.unwrap();
    settle().await;
    assert_eq!(consistent(coordinator.stats()).active, 2);

    sink.raise_with("backpressure.db", level(0.6)).unwrap();
    settle().await;
    assert_eq!(consistent(coordinator.stats()).active, 6);

    sink.raise_with("backpressure.db", level(1.0)).unwrap();
    settle().await;
    let stats = consistent(coordinator.stats());
    assert_eq!((stats.active, stats.limit), (10, 10));
    assert!(stats.gate_open);
}

#[tokio::test(start_paused = true)]
async fn a_plain_raise_beside_a_levelled_one_stops_everything() {
    let sink = Sink::new();
    let release = Arc::new(Semaphore::new(0));
    let coordinator = blocked(&sink, &release);
    sink.raise_with("backpressure.db", level(0.5)).unwrap();
    sink.raise("backpressure.other").unwrap();
    coordinator.enqueue_many(0..20).await.unwrap();
    settle().await;
    assert_eq!(consistent(coordinator.stats()).active, 0);

    // Retracting the full stop leaves the level in force.
    sink.retract("backpressure.other").unwrap();
    settle().await;
    assert_eq!(consistent(coordinator.stats()).active, 5);
}

#[tokio::test(start_paused = true)]
async fn a_resume_signal_overrides_a_level() {
    let sink = Sink::new();
    let release = Arc::new(Semaphore::new(0));
    let release_in_handler = Arc::clone(&release);
    let coordinator = Coordinator::builder()
        .sink(sink.clone())
        .concurrency(4)
        .resume_on("backpressure.override")
        .build(move |_: u32, _: WorkContext| {
            let release = Arc::clone(&release_in_handler);
            async move { release.acquire().await.unwrap().forget() }
        })
        .unwrap();
    sink.raise_with("backpressure.db", level(0.25)).unwrap();
    coordinator.enqueue_many(0..8).await.unwrap();
    settle().await;
    assert_eq!(consistent(coordinator.stats()).active, 1);
    sink.raise("backpressure.override").unwrap();
    settle().await;
    assert_eq!(consistent(coordinator.stats()).active, 4);
}

#[tokio::test(start_paused = true)]
async fn levels_appear_in_snapshots_and_events() {
    let sink = Sink::new();
    let mut events = sink.subscribe();
    sink.raise_with(
        "backpressure.db",
        level(0.4).key("a").ttl(Duration::from_secs(5)),
    )
    .unwrap();
    sink.raise_with(
        "backpressure.db",
        level(0.7).key("a").ttl(Duration::from_secs(5)),
    )
    .unwrap();
    // Same level again: a refresh, no event.
    sink.raise_with(
        "backpressure.db",
        level(0.7).key("a").ttl(Duration::from_secs(5)),
    )
    .unwrap();
    let snapshot = sink.snapshot();
    assert_eq!(snapshot.len(), 1);
    assert_eq!(snapshot[0].level.per_mille(), 700);

    let raised = events.next().await.unwrap().unwrap();
    assert_eq!(
        (raised.kind, raised.level.per_mille()),
        (SignalEventKind::Raised, 400)
    );
    let changed = events.next().await.unwrap().unwrap();
    assert_eq!(
        (changed.kind, changed.level.per_mille()),
        (SignalEventKind::LevelChanged, 700)
    );
    tokio::time::advance(Duration::from_secs(6)).await;
    let expired = events.next().await.unwrap().unwrap();
    assert_eq!(
        (expired.kind, expired.level.per_mille()),
        (SignalEventKind::Expired, 700)
    );
}

#[test]
fn bad_levels_are_typed_errors() {
    for bad in [f64::NAN, -0.1, 1.01, f64::INFINITY] {
        let err = Level::new(bad).unwrap_err();
        assert!(
            err.to_string().contains("allowed: a number from 0 to 1"),
            "{err}"
        );
    }
    assert_eq!(Level::new(0.0).unwrap(), Level::STOP);
    assert_eq!(Level::new(1.0).unwrap(), Level::FULL);
    assert_eq!(Level::new(0.3).unwrap().limit(10), 3);
    assert_eq!(Level::new(0.05).unwrap().limit(10), 1);
}
