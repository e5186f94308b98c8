//! Pause and resume.

use super::*;

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
    until("all items run", || log.get(), |log| log.len() == 3).await;
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
    until("item 0 runs", || coordinator.stats(), |s| s.active == 1).await;
    coordinator.pause();
    release.add_permits(1);
    until(
        "item 0 completes",
        || coordinator.stats(),
        |s| s.completed == 1,
    )
    .await;
    settle().await;
    let stats = consistent(coordinator.stats());
    assert_eq!((stats.active, stats.queued), (0, 1));
    coordinator.resume();
    release.add_permits(1);
    coordinator.drain().await;
    assert_eq!(consistent(coordinator.stats()).completed, 2);
}
