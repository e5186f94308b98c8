//! `enqueue_stream`: the stream is pulled only as the queue has room, and a close midway
//! hands back the refused item and leaves the rest of the stream unpulled.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use backpressure::{Coordinator, Sink, WorkContext};
use futures_util::StreamExt;

fn held_coordinator(sink: &Sink) -> Coordinator<u32> {
    Coordinator::builder()
        .sink(sink.clone())
        .capacity(2)
        .build(|_: u32, _: WorkContext| async {})
        .unwrap()
}

#[tokio::test(start_paused = true)]
async fn the_stream_is_pulled_only_as_the_queue_has_room() {
    let sink = Sink::new();
    sink.raise("backpressure.downstream").unwrap();
    let coordinator = held_coordinator(&sink);
    let pulled = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&pulled);
    let mut items = futures_util::stream::iter(0..100).inspect(move |_| {
        counter.fetch_add(1, Ordering::SeqCst);
    });
    let intake = {
        let coordinator = coordinator.clone();
        tokio::spawn(async move { coordinator.enqueue_stream(&mut items).await })
    };
    for _ in 0..100 {
        tokio::task::yield_now().await;
    }
    // Two queued, the third pulled and waiting for room: the other 97 untouched.
    assert_eq!(coordinator.stats().queued, 2);
    assert_eq!(pulled.load(Ordering::SeqCst), 3);

    sink.retract("backpressure.downstream").unwrap();
    assert_eq!(intake.await.unwrap().unwrap(), 100);
    coordinator.drain().await;
    assert_eq!(coordinator.stats().completed, 100);
}

#[tokio::test(start_paused = true)]
async fn a_close_midway_hands_back_the_refused_item_and_leaves_the_rest_in_the_stream() {
    let sink = Sink::new();
    sink.raise("backpressure.downstream").unwrap();
    let coordinator = held_coordinator(&sink);
    let mut items = futures_util::stream::iter(0..10);
    let intake = {
        let coordinator = coordinator.clone();
        tokio::spawn(async move {
            let result = coordinator.enqueue_stream(&mut items).await;
            (result, items.collect::<Vec<u32>>().await)
        })
    };
    for _ in 0..100 {
        tokio::task::yield_now().await;
    }
    let returned = coordinator.shutdown().await;
    let (result, rest) = intake.await.unwrap();
    let closed = result.unwrap_err();
    assert_eq!((closed.accepted, closed.item), (2, 2));
    assert_eq!(returned, vec![0, 1]);
    assert_eq!(rest, (3..10).collect::<Vec<_>>(), "nothing else was pulled");
}
