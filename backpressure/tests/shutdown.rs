//! Closing intake, draining, shutting down and dropping: nothing is lost, every item ends in
//! exactly one counted outcome.

mod common;

use std::sync::Arc;
use std::time::Duration;

use backpressure::{
    error::{EnqueueError, TryEnqueueError},
    Coordinator, MaxDefer, Sink, WorkContext,
};
use common::{consistent, recv, settle, until, within, Log};
use tokio::sync::{mpsc, Semaphore};

/// A coordinator whose handlers each wait for one permit of `release`, and report their
/// item on `started` when they begin.
fn blocking(
    sink: &Sink,
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
        .sink(sink.clone())
        .concurrency(concurrency)
        .max_defer(MaxDefer::Never)
        .build(move |n: u32, _| {
            started_tx.send(n).unwrap();
            let release = Arc::clone(&release_in);
            async move { release.acquire().await.unwrap().forget() }
        })
        .unwrap();
    (coordinator, release, started)
}

#[tokio::test]
async fn complete_closes_intake_but_queued_items_still_run() {
    let sink = Sink::new();
    let (coordinator, release, _started) = blocking(&sink, 1);
    coordinator.enqueue_many(0..3).await.unwrap();

    assert!(coordinator.complete(), "intake was open");
    assert!(!coordinator.complete(), "intake was already closed");
    assert!(consistent(coordinator.stats()).closed);

    let err = coordinator.enqueue(99).await.unwrap_err();
    assert_eq!(err, EnqueueError(99));
    assert!(err.to_string().contains("closed"), "{err}");
    assert_eq!(err.into_inner(), 99);
    match coordinator.try_enqueue(98) {
        Err(err @ TryEnqueueError::Closed(_)) => {
            assert!(!err.is_full());
            assert_eq!(err.into_inner(), 98);
        }
        other => panic!("expected Closed, got {other:?}"),
    }
    assert_eq!(consistent(coordinator.stats()).enqueued, 3);

    release.add_permits(3);
    coordinator.drain().await;
    let stats = consistent(coordinator.stats());
    assert_eq!((stats.completed, stats.enqueued), (3, 3));
}

#[tokio::test(start_paused = true)]
async fn drain_waits_for_every_queued_and_running_item() {
    let sink = Sink::new();
    let (coordinator, release, mut started) = blocking(&sink, 2);
    coordinator.enqueue_many(0..5).await.unwrap();
    assert_eq!(recv(&mut started).await, Some(0));

    let drain = tokio::spawn({
        let c = coordinator.clone();
        async move { c.drain().await }
    });
    for finished in 0..5 {
        settle().await;
        assert!(
            !drain.is_finished(),
            "drain returned with {finished} of 5 done"
        );
        consistent(coordinator.stats());
        release.add_permits(1);
    }
    drain.await.unwrap();
    let stats = consistent(coordinator.stats());
    assert_eq!(
        (stats.completed, stats.queued, stats.active, stats.closed),
        (5, 0, 0, true)
    );
}

#[tokio::test(start_paused = true)]
async fn drain_under_a_raised_signal_waits_for_the_retract() {
    let sink = Sink::new();
    let (coordinator, release, _started) = blocking(&sink, 2);
    release.add_permits(10);
    sink.raise("backpressure.downstream").unwrap();
    coordinator.enqueue_many(0..3).await.unwrap();
    let drain = tokio::spawn({
        let c = coordinator.clone();
        async move { c.drain().await }
    });
    tokio::time::sleep(Duration::from_secs(3_600)).await;
    assert!(!drain.is_finished());
    assert_eq!(consistent(coordinator.stats()).deferred, 3);

    sink.retract("backpressure.downstream").unwrap();
    drain.await.unwrap();
    assert_eq!(consistent(coordinator.stats()).completed, 3);
}

#[tokio::test]
async fn drain_of_an_idle_coordinator_returns_at_once_and_can_repeat() {
    let coordinator = Coordinator::builder()
        .sink(Sink::new())
        .build(|_: u32, _| async {})
        .unwrap();
    coordinator.drain().await;
    coordinator.drain().await;
    let stats = consistent(coordinator.stats());
    assert!(stats.closed);
    assert_eq!(stats.enqueued, 0);
    assert_eq!(coordinator.shutdown().await, Vec::<u32>::new());
}

#[tokio::test(start_paused = true)]
async fn closing_releases_a_producer_waiting_for_space_with_its_item() {
    let sink = Sink::new();
    sink.raise("backpressure.downstream").unwrap();
    let small = Coordinator::builder()
        .sink(sink.clone())
        .capacity(1)
        .max_defer(MaxDefer::Never)
        .build(|_: String, _| async {})
        .unwrap();
    small.enqueue("first".to_owned()).await.unwrap();
    let producer = tokio::spawn({
        let c = small.clone();
        async move { c.enqueue("second".to_owned()).await }
    });
    settle().await;
    assert!(
        !producer.is_finished(),
        "the queue is full, enqueue must wait"
    );

    small.complete();
    let err = producer.await.unwrap().unwrap_err();
    assert_eq!(err.into_inner(), "second");
    assert_eq!(consistent(small.stats()).enqueued, 1);
    let back = small.shutdown().await;
    assert_eq!(back, vec!["first".to_owned()]);
}

#[tokio::test(start_paused = true)]
async fn enqueue_many_hands_back_the_refused_item_and_the_rest_in_order() {
    let sink = Sink::new();
    sink.raise("backpressure.downstream").unwrap();
    let coordinator = Coordinator::builder()
        .sink(sink.clone())
        .capacity(2)
        .max_defer(MaxDefer::Never)
        .build(|_: u32, _| async {})
        .unwrap();
    let producer = tokio::spawn({
        let c = coordinator.clone();
        async move { c.enqueue_many(0..6).await }
    });
    until(
        "two items are queued",
        || coordinator.stats(),
        |s| s.enqueued == 2,
    )
    .await;
    settle().await;
    assert!(!producer.is_finished());

    coordinator.complete();
    let EnqueueError(rest) = producer.await.unwrap().unwrap_err();
    assert_eq!(rest, vec![2, 3, 4, 5]);
    assert_eq!(coordinator.shutdown().await, vec![0, 1]);
    let stats = consistent(coordinator.stats());
    assert_eq!((stats.enqueued, stats.returned), (2, 2));

    // Already closed: everything comes back.
    let EnqueueError(all) = coordinator.enqueue_many(vec![7, 8]).await.unwrap_err();
    assert_eq!(all, vec![7, 8]);
}

#[tokio::test(start_paused = true)]
async fn shutdown_returns_exactly_the_unstarted_items_and_cancels_running_ones() {
    let sink = Sink::new();
    let (started_tx, mut started) = mpsc::unbounded_channel();
    let cancelled = Log::default();
    let cancelled_in = cancelled.clone();
    let coordinator = Coordinator::builder()
        .sink(sink.clone())
        .concurrency(2)
        .build(move |n: u32, ctx: WorkContext| {
            started_tx.send(n).unwrap();
            let cancelled = cancelled_in.clone();
            async move {
                ctx.cancelled().await;
                assert!(ctx.is_cancelled());
                // Some clean-up after the cancellation, which shutdown must wait for.
                for _ in 0..10 {
                    tokio::task::yield_now().await;
                }
                cancelled.push(n);
            }
        })
        .unwrap();
    coordinator.enqueue_many(0..7).await.unwrap();
    assert_eq!(recv(&mut started).await, Some(0));
    assert_eq!(recv(&mut started).await, Some(1));
    settle().await;
    let stats = consistent(coordinator.stats());
    assert_eq!((stats.active, stats.queued), (2, 5));

    // Handlers only return once cancelled: without the cancellation this would hang.
    let returned = within(Duration::from_secs(60), "shutdown", coordinator.shutdown()).await;
    assert_eq!(
        returned,
        vec![2, 3, 4, 5, 6],
        "unstarted items, in queue order"
    );
    let mut cancelled = cancelled.get();
    cancelled.sort_unstable();
    assert_eq!(
        cancelled,
        vec![0, 1],
        "running handlers saw the cancellation"
    );
    assert!(
        started.try_recv().is_err(),
        "nothing started during shutdown"
    );

    let stats = consistent(coordinator.stats());
    assert_eq!((stats.enqueued, stats.completed, stats.returned), (7, 2, 5));
    assert_eq!((stats.active, stats.queued), (0, 0));
    assert!(stats.closed);
    assert_eq!(coordinator.enqueue(9).await, Err(EnqueueError(9)));
    // A second shutdown has nothing left to return.
    assert!(coordinator.shutdown().await.is_empty());
    assert_eq!(consistent(coordinator.stats()).returned, 5);
}

#[tokio::test(start_paused = true)]
async fn shutdown_under_a_raised_signal_returns_everything_and_starts_nothing() {
    let sink = Sink::new();
    let ran = Log::default();
    let ran_in = ran.clone();
    let coordinator = Coordinator::builder()
        .sink(sink.clone())
        .build(move |n: u32, _| {
            ran_in.push(n);
            async {}
        })
        .unwrap();
    sink.raise("backpressure.downstream").unwrap();
    coordinator.enqueue_many(0..4).await.unwrap();
    settle().await;
    assert_eq!(coordinator.shutdown().await, vec![0, 1, 2, 3]);
    // Retracting afterwards must not start any of them.
    sink.retract("backpressure.downstream").unwrap();
    settle().await;
    assert!(ran.get().is_empty());
    let stats = consistent(coordinator.stats());
    assert_eq!((stats.returned, stats.completed), (4, 0));
}

#[tokio::test(start_paused = true)]
async fn shutdown_of_a_paused_coordinator_returns_its_queue() {
    let coordinator = Coordinator::builder()
        .sink(Sink::new())
        .build(|_: u32, _| async {})
        .unwrap();
    coordinator.pause();
    coordinator.enqueue_many(0..3).await.unwrap();
    settle().await;
    assert_eq!(coordinator.shutdown().await, vec![0, 1, 2]);
    assert_eq!(consistent(coordinator.stats()).returned, 3);
}

#[tokio::test(start_paused = true)]
async fn shutdown_releases_producers_waiting_for_space() {
    let sink = Sink::new();
    sink.raise("backpressure.downstream").unwrap();
    let coordinator = Coordinator::builder()
        .sink(sink.clone())
        .capacity(1)
        .max_defer(MaxDefer::Never)
        .build(|_: u32, _| async {})
        .unwrap();
    coordinator.enqueue(0).await.unwrap();
    let producer = tokio::spawn({
        let c = coordinator.clone();
        async move { c.enqueue(1).await }
    });
    settle().await;
    assert!(!producer.is_finished());
    assert_eq!(coordinator.shutdown().await, vec![0]);
    assert_eq!(producer.await.unwrap(), Err(EnqueueError(1)));
    let stats = consistent(coordinator.stats());
    assert_eq!((stats.enqueued, stats.returned), (1, 1));
}

#[tokio::test]
async fn every_item_ends_in_exactly_one_counted_outcome() {
    let sink = Sink::new();
    let skipped = Log::default();
    let skipped_in = skipped.clone();
    let release = Arc::new(Semaphore::new(0));
    let release_in = Arc::clone(&release);
    let coordinator = Coordinator::builder()
        .sink(sink.clone())
        .concurrency(1)
        .cancel_on("cancel.*")
        .on_skip(move |n: u32| skipped_in.push(n))
        .build(move |n: u32, _| {
            let release = Arc::clone(&release_in);
            async move {
                release.acquire().await.unwrap().forget();
                match n {
                    0 => Ok(()),
                    1 => Err("failed"),
                    _ => panic!("panicked"),
                }
            }
        })
        .unwrap();
    coordinator.enqueue_many(0..3).await.unwrap();
    release.add_permits(3);
    until(
        "three outcomes",
        || consistent(coordinator.stats()),
        |s| s.completed + s.failed + s.panicked == 3,
    )
    .await;
    sink.raise("cancel.now").unwrap();
    coordinator.enqueue_many(3..5).await.unwrap();
    until("two skips", || skipped.get(), |skipped| skipped.len() == 2).await;
    sink.retract("cancel.now").unwrap();
    coordinator.pause();
    coordinator.enqueue_many(5..8).await.unwrap();
    let returned = coordinator.shutdown().await;

    assert_eq!(returned, vec![5, 6, 7]);
    assert_eq!(skipped.get(), vec![3, 4]);
    let stats = consistent(coordinator.stats());
    assert_eq!(
        (
            stats.enqueued,
            stats.completed,
            stats.failed,
            stats.panicked,
            stats.skipped,
            stats.returned,
            stats.queued,
            stats.active
        ),
        (8, 1, 1, 1, 2, 3, 0, 0)
    );
}

#[tokio::test]
async fn dropping_the_last_handle_lets_queued_items_finish_and_slots_exit() {
    let (done_tx, mut done) = mpsc::unbounded_channel();
    let coordinator = Coordinator::builder()
        .sink(Sink::new())
        .concurrency(2)
        .build(move |n: u32, _| {
            let done = done_tx.clone();
            async move {
                tokio::task::yield_now().await;
                done.send(n).unwrap();
            }
        })
        .unwrap();
    coordinator.enqueue_many(0..5).await.unwrap();
    drop(coordinator);
    let mut finished = Vec::new();
    // The channel closes only when every slot has exited and dropped the handler.
    while let Some(n) = done.recv().await {
        finished.push(n);
    }
    finished.sort_unstable();
    assert_eq!(finished, vec![0, 1, 2, 3, 4]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn shutdown_under_load_on_a_multi_thread_runtime_loses_nothing() {
    let seen = Log::default();
    let seen_in = seen.clone();
    let coordinator = Coordinator::builder()
        .sink(Sink::new())
        .concurrency(4)
        .capacity(64)
        .build(move |n: u32, ctx: WorkContext| {
            let seen = seen_in.clone();
            async move {
                tokio::select! {
                    () = ctx.cancelled() => {}
                    () = tokio::task::yield_now() => {}
                }
                seen.push(n);
            }
        })
        .unwrap();
    let producer = tokio::spawn({
        let c = coordinator.clone();
        async move { c.enqueue_many(0..10_000).await }
    });
    until(
        "some items ran",
        || (seen.len(), coordinator.stats()),
        |(ran, _)| *ran >= 100,
    )
    .await;
    // A hang guard only (real time); the test does not depend on timing.
    let returned = within(Duration::from_secs(60), "shutdown", coordinator.shutdown()).await;
    let refused = match producer.await.unwrap() {
        Ok(_) => Vec::new(),
        Err(EnqueueError(rest)) => rest,
    };
    let stats = consistent(coordinator.stats());
    assert_eq!(stats.active, 0);
    assert_eq!(stats.returned as usize, returned.len());
    assert_eq!(stats.completed as usize, seen.len());

    // Every number is accounted for exactly once: ran, returned, or refused at intake.
    let mut all: Vec<u32> = seen.get();
    all.extend(&returned);
    all.extend(&refused);
    all.sort_unstable();
    assert_eq!(all, (0..10_000).collect::<Vec<_>>());
    // Returned items are in intake order.
    assert!(returned.windows(2).all(|w| w[0] < w[1]));
}
