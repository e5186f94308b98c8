//! The queue's two halves (the intake producers push into, and the run-ahead slots take from,
//! moved over whole when the run-ahead runs empty): items in either half are queued for
//! `stats()`, the gate is checked before every start from the run-ahead, and every give-back
//! path returns both halves, oldest first.
//!
//! The halves are not visible through the API; each test builds the split the same way: a
//! slot of concurrency 1 finishes an item while more are pushed, so its next look moves what
//! was pushed into the run-ahead and starts the first of it, and later pushes land in the
//! intake.

mod common;

use std::sync::Arc;
use std::time::Duration;

use backpressure::{Coordinator, MaxDefer, Sink, WorkContext};
use common::{consistent, recv, settle, until, within, Log};
use tokio::sync::{mpsc, Semaphore};

/// One slot whose handler reports its item on `started` and then waits for one permit.
fn one_blocking_slot(
    sink: &Sink,
) -> (
    Coordinator<u32>,
    Arc<Semaphore>,
    mpsc::UnboundedReceiver<u32>,
) {
    let release = Arc::new(Semaphore::new(0));
    let release_in = Arc::clone(&release);
    let (started_tx, started) = mpsc::unbounded_channel();
    let coordinator = Coordinator::builder()
        .sink(sink.clone())
        .concurrency(1)
        .max_defer(MaxDefer::Never)
        .build(move |n: u32, _| {
            started_tx.send(n).unwrap();
            let release = Arc::clone(&release_in);
            async move { release.acquire().await.unwrap().forget() }
        })
        .unwrap();
    (coordinator, release, started)
}

/// Leaves item 1 running, item 2 in the run-ahead and items 3 and 4 in the intake.
async fn split(
    coordinator: &Coordinator<u32>,
    release: &Semaphore,
    started: &mut mpsc::UnboundedReceiver<u32>,
) {
    coordinator.enqueue(0).await.unwrap();
    assert_eq!(recv(started).await, Some(0));
    coordinator.enqueue_many([1, 2]).await.unwrap();
    release.add_permits(1);
    assert_eq!(
        recv(started).await,
        Some(1),
        "the slot moved 1 and 2 and started 1"
    );
    coordinator.enqueue_many([3, 4]).await.unwrap();
    let stats = consistent(coordinator.stats());
    assert_eq!((stats.completed, stats.active, stats.queued), (1, 1, 3));
}

#[tokio::test]
async fn shutdown_returns_both_halves_of_the_queue_in_order_and_starts_neither() {
    let sink = Sink::new();
    let (coordinator, release, mut started) = one_blocking_slot(&sink);
    split(&coordinator, &release, &mut started).await;

    let shutdown = tokio::spawn({
        let coordinator = coordinator.clone();
        async move { coordinator.shutdown().await }
    });
    until(
        "shutdown closed intake",
        || coordinator.stats(),
        |s| s.closed,
    )
    .await;
    // Item 1 ends only now, after shutdown began: its slot must start nothing more, not the
    // run-ahead's 2 either.
    release.add_permits(1);
    let returned = within(Duration::from_secs(30), "shutdown", shutdown)
        .await
        .unwrap();
    assert_eq!(returned, vec![2, 3, 4], "run-ahead first, then the intake");
    assert!(started.try_recv().is_err(), "nothing started after item 1");
    let stats = consistent(coordinator.stats());
    assert_eq!((stats.completed, stats.returned, stats.queued), (2, 3, 0));
}

#[tokio::test]
async fn a_signal_raised_between_two_items_of_the_run_ahead_holds_the_second() {
    let sink = Sink::new();
    let log = Log::default();
    let (seen, raiser) = (log.clone(), sink.clone());
    let coordinator = Coordinator::builder()
        .sink(sink.clone())
        .concurrency(1)
        .max_defer(MaxDefer::Never)
        .build(move |n: u32, _ctx: WorkContext| {
            seen.push(n);
            if n == 0 {
                raiser.raise("backpressure.downstream").unwrap();
            }
            async {}
        })
        .unwrap();
    // Pushed before the slot first runs: its first look moves all four into the run-ahead.
    coordinator.enqueue_many(0..4).await.unwrap();
    settle().await;
    assert_eq!(
        log.get(),
        vec![0],
        "the signal raised by item 0 holds item 1"
    );
    let stats = consistent(coordinator.stats());
    assert_eq!((stats.completed, stats.active, stats.queued), (1, 0, 3));
    assert_eq!(stats.deferred, 3);

    sink.retract("backpressure.downstream").unwrap();
    settle().await;
    assert_eq!(log.get(), vec![0, 1, 2, 3], "resumed in queue order");
    assert_eq!(consistent(coordinator.stats()).completed, 4);
}

#[test]
fn dropping_the_runtime_keeps_both_halves_counted_and_shutdown_returns_them() {
    let sink = Sink::new();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let (coordinator, release, _started) = runtime.block_on(async {
        let (coordinator, release, mut started) = one_blocking_slot(&sink);
        split(&coordinator, &release, &mut started).await;
        (coordinator, release, started)
    });
    // The slot task is dropped mid-item: item 1 counts as failed, the queue stays counted.
    drop(runtime);
    let stats = consistent(coordinator.stats());
    assert_eq!((stats.completed, stats.failed, stats.active), (1, 1, 0));
    assert_eq!(stats.queued, 3, "nothing queued is lost with the runtime");
    assert!(stats.closed, "the last slot gone closes intake");

    let other = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let returned = other.block_on(async {
        within(Duration::from_secs(30), "shutdown", coordinator.shutdown()).await
    });
    assert_eq!(returned, vec![2, 3, 4], "run-ahead first, then the intake");
    let stats = consistent(coordinator.stats());
    assert_eq!((stats.returned, stats.queued), (3, 0));
    drop(release);
}
