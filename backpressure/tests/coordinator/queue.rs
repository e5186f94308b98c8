//! The bounded queue: waiting producers and `try_enqueue`.

use super::*;

#[tokio::test(start_paused = true)]
async fn full_queue_makes_enqueue_wait_and_try_enqueue_hand_the_item_back() {
    let sink = Sink::new();
    let (coordinator, log) = {
        let log = Log::default();
        let seen = log.clone();
        let c = Coordinator::builder()
            .sink(sink.clone())
            .concurrency(1)
            .capacity(2)
            .max_defer(MaxDefer::Never)
            .build(move |n: String, _| {
                seen.push(n);
                async {}
            })
            .unwrap();
        (c, log)
    };
    sink.raise("backpressure.downstream").unwrap();
    coordinator.enqueue("a".to_owned()).await.unwrap();
    coordinator.try_enqueue("b".to_owned()).unwrap();

    let err = coordinator.try_enqueue("c".to_owned()).unwrap_err();
    assert!(err.is_full());
    assert!(err.to_string().contains("full"), "{err}");
    assert!(matches!(&err, TryEnqueueError::Full(item) if item == "c"));
    assert_eq!(err.into_inner(), "c");

    // `enqueue` waits while the queue is full...
    let waiting = coordinator.enqueue("c".to_owned());
    tokio::pin!(waiting);
    assert!(waiting.as_mut().now_or_never().is_none());
    // ...for as long as it stays full (an hour of paused time here)...
    let gave_up = tokio::time::timeout(
        Duration::from_secs(3_600),
        coordinator.enqueue("d".to_owned()),
    )
    .await;
    assert!(gave_up.is_err());
    // ...and a dropped wait enqueued nothing.
    let stats = consistent(coordinator.stats());
    assert_eq!((stats.enqueued, stats.queued), (2, 2));

    // Retracting frees a place, which the waiting producer takes.
    sink.retract("backpressure.downstream").unwrap();
    waiting.await.unwrap();
    coordinator.drain().await;
    assert_eq!(log.get(), vec!["a", "b", "c"]);
    assert_eq!(consistent(coordinator.stats()).enqueued, 3);
}

#[tokio::test(start_paused = true)]
async fn waiting_producers_each_get_in_as_space_frees() {
    let sink = Sink::new();
    let (coordinator, log) = {
        let log = Log::default();
        let seen = log.clone();
        let c = Coordinator::builder()
            .sink(sink.clone())
            .concurrency(1)
            .capacity(1)
            .max_defer(MaxDefer::Never)
            .build(move |n: u32, _| {
                seen.push(n);
                async {}
            })
            .unwrap();
        (c, log)
    };
    sink.raise("backpressure.downstream").unwrap();
    coordinator.enqueue(0).await.unwrap();
    let producers: Vec<_> = (1..=3)
        .map(|n| {
            let c = coordinator.clone();
            tokio::spawn(async move { c.enqueue(n).await })
        })
        .collect();
    settle().await;
    assert!(producers.iter().all(|p| !p.is_finished()));
    assert_eq!(consistent(coordinator.stats()).enqueued, 1);

    sink.retract("backpressure.downstream").unwrap();
    for producer in producers {
        within(Duration::from_secs(60), "a waiting producer", producer)
            .await
            .unwrap()
            .unwrap();
    }
    coordinator.drain().await;
    let mut ran = log.get();
    assert_eq!(ran[0], 0);
    ran.sort_unstable();
    assert_eq!(ran, vec![0, 1, 2, 3]);
}

#[tokio::test(start_paused = true)]
async fn a_dropped_waiting_producer_passes_its_wake_up_on() {
    let sink = Sink::new();
    let (coordinator, log) = {
        let log = Log::default();
        let seen = log.clone();
        let c = Coordinator::builder()
            .sink(sink.clone())
            .concurrency(1)
            .capacity(1)
            .max_defer(MaxDefer::Never)
            .build(move |n: u32, _| {
                seen.push(n);
                async {}
            })
            .unwrap();
        (c, log)
    };
    sink.raise("backpressure.downstream").unwrap();
    coordinator.enqueue(0).await.unwrap();

    // Producer 1 starts waiting first, so it is first in line for the next free place.
    let mut first = Box::pin(coordinator.enqueue(1));
    assert!(first.as_mut().now_or_never().is_none());
    let second = tokio::spawn({
        let c = coordinator.clone();
        async move { c.enqueue(2).await }
    });
    settle().await;
    assert!(!second.is_finished());

    // A place frees up and its wake-up goes to producer 1, which gives up without using it.
    sink.retract("backpressure.downstream").unwrap();
    settle().await;
    sink.raise("backpressure.downstream").unwrap();
    drop(first);

    // Producer 2 must not be left waiting for space that is free.
    within(Duration::from_secs(60), "the remaining producer", second)
        .await
        .unwrap()
        .unwrap();
    sink.retract("backpressure.downstream").unwrap();
    coordinator.drain().await;
    assert_eq!(log.get(), vec![0, 2]);
    assert_eq!(consistent(coordinator.stats()).enqueued, 2);
}
