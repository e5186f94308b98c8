//! Shares and levels round towards holding: a watermark's thresholds on small queues, and a
//! tiny positive level that must not become a full stop (DESIGN §6, "Levels round safely").

use std::sync::Arc;
use std::time::Duration;

use backpressure::{
    policy::Watermark, Coordinator, Level, MaxDefer, RaiseOptions, Sink, WorkContext,
};
use tokio::sync::Semaphore;

const BACKLOG: &str = "backpressure.indexer.backlog";

/// Lets every task that can run do so (current-thread runtime, paused clock).
async fn settle() {
    for _ in 0..64 {
        tokio::task::yield_now().await;
    }
}

/// A worker of one slot whose handler waits for a permit of `release`, watched by
/// `watermark`.
fn indexer(
    sink: &Sink,
    capacity: usize,
    watermark: Watermark,
    release: &Arc<Semaphore>,
) -> Coordinator<usize> {
    let release = Arc::clone(release);
    Coordinator::builder()
        .sink(sink.clone())
        .name("indexer")
        .concurrency(1)
        .capacity(capacity)
        .no_defer()
        .policy(watermark.hold_for(Duration::from_secs(5)))
        .build(move |_: usize, _: WorkContext| {
            let release = Arc::clone(&release);
            async move { release.acquire().await.unwrap().forget() }
        })
        .unwrap()
}

/// Fills `indexer` with one running item and `queued` waiting ones, then waits out
/// `hold_for`.
async fn fill(indexer: &Coordinator<usize>, queued: usize) {
    indexer.enqueue(0).await.unwrap();
    settle().await;
    indexer.enqueue_many(1..=queued).await.unwrap();
    settle().await;
    assert_eq!(indexer.stats().queued, queued);
    tokio::time::advance(Duration::from_secs(5)).await;
    settle().await;
}

#[tokio::test(start_paused = true)]
async fn a_full_small_queue_raises_with_the_default_high() {
    for capacity in 1..=4 {
        let sink = Sink::new();
        let release = Arc::new(Semaphore::new(0));
        let indexer = indexer(&sink, capacity, Watermark::new(BACKLOG), &release);
        fill(&indexer, capacity).await;
        assert!(
            sink.is_raised(BACKLOG),
            "capacity {capacity}, full: ceil(0.8 × {capacity}) is reached"
        );
        release.add_permits(capacity + 1);
    }
}

#[tokio::test(start_paused = true)]
async fn high_0_85_of_10_raises_at_depth_9_and_not_at_8() {
    for (queued, raises) in [(8, false), (9, true)] {
        let sink = Sink::new();
        let release = Arc::new(Semaphore::new(0));
        let watermark = Watermark::new(BACKLOG).high(0.85);
        let indexer = indexer(&sink, 10, watermark, &release);
        fill(&indexer, queued).await;
        assert_eq!(sink.is_raised(BACKLOG), raises, "depth {queued}");
        release.add_permits(queued + 1);
    }
}

#[tokio::test(start_paused = true)]
async fn the_signal_is_retracted_at_floor_of_low_times_capacity() {
    let sink = Sink::new();
    let release = Arc::new(Semaphore::new(0));
    // Capacity 10, low 0.5: retracted at depth 5, still raised at 6.
    let indexer = indexer(&sink, 10, Watermark::new(BACKLOG).low(0.5), &release);
    fill(&indexer, 10).await;
    assert!(sink.is_raised(BACKLOG));
    release.add_permits(4);
    settle().await;
    assert_eq!(indexer.stats().queued, 6);
    assert!(sink.is_raised(BACKLOG), "6 is above floor(0.5 × 10)");
    release.add_permits(1);
    settle().await;
    assert_eq!(indexer.stats().queued, 5);
    assert!(!sink.is_raised(BACKLOG), "5 is floor(0.5 × 10)");
    release.add_permits(100);
}

#[test]
fn a_positive_level_never_rounds_to_stop() {
    for value in [0.0004, 0.0001, f64::MIN_POSITIVE] {
        let level = Level::new(value).unwrap();
        assert_ne!(level, Level::STOP, "{value}");
        assert_eq!(level.per_mille(), 1, "{value}: the smallest step");
    }
    assert_eq!(Level::new(0.0).unwrap(), Level::STOP);
    assert_eq!(
        Level::new(0.0015).unwrap().per_mille(),
        2,
        "otherwise the nearest"
    );
}

#[tokio::test(start_paused = true)]
async fn a_level_of_0_0004_lets_one_item_run() {
    let sink = Sink::new();
    let release = Arc::new(Semaphore::new(0));
    let permits = Arc::clone(&release);
    let worker = Coordinator::builder()
        .sink(sink.clone())
        .concurrency(10)
        .defer_on("backpressure.db")
        .max_defer(MaxDefer::Never)
        .build(move |_: u32, _: WorkContext| {
            let permits = Arc::clone(&permits);
            async move { permits.acquire().await.unwrap().forget() }
        })
        .unwrap();
    let level = Level::new(0.0004).unwrap();
    sink.raise_with("backpressure.db", RaiseOptions::new().level(level))
        .unwrap();
    worker.enqueue_many(0..5).await.unwrap();
    settle().await;
    let stats = worker.stats();
    assert_eq!(
        (stats.active, stats.queued, stats.limit),
        (1, 4, 1),
        "{stats:?}"
    );
    release.add_permits(100);
}
