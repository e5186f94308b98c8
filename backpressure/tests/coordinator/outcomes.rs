//! Outcomes: errors and panics counted, the work context, consistent stats.

use super::*;

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
            seen_in.push((n, ctx.id().get()));
            async {}
        })
        .unwrap();
    assert!(coordinator.sink().same_sink(&sink));
    coordinator.enqueue_many([10, 20, 30]).await.unwrap();
    // The id `enqueue` returns is the one the handler sees.
    let last = coordinator.enqueue(40).await.unwrap();
    coordinator.drain().await;
    assert_eq!(
        seen.get(),
        vec![(10, 0), (20, 1), (30, 2), (40, last.get())]
    );
    assert_eq!(last.get(), 3);
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
    until("item 0 runs", || ran.get(), |ran| ran.len() == 1).await;
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
    until("two run", check, |s| s.active == 2).await;
    for _ in 0..4 {
        release.add_permits(1);
        let before = check();
        until("one more finishes", check, |s| {
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
