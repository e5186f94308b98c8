//! The order in which due retries held by the gate start once it opens (paused time).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use backpressure::retry::Retry;
use backpressure::{Coordinator, MaxDefer, Sink, WorkContext};

/// Two items fail their first attempt 0.5 s apart, so their retries come due 0.5 s apart;
/// both are due (and held by a raised signal) when it is retracted. A queue runs what is
/// due first: the retry due earlier should start first.
///
/// Found while writing examples/retries.rs: each timer wake-up put its due retries at the
/// head of the queue, so a later batch overtook an earlier one still held there, and the
/// latest-due retry started first (in the example, the item whose probe failed was the head
/// again at the next half-open and probed twice while the others waited). Due retries now
/// join behind those already at the head.
#[tokio::test(start_paused = true)]

async fn held_due_retries_start_earliest_due_first() {
    let sink = Sink::new();
    let starts = Arc::new(Mutex::new(Vec::new()));
    let log = Arc::clone(&starts);
    let coordinator = Coordinator::builder()
        .sink(sink.clone())
        .concurrency(1)
        .max_defer(MaxDefer::Never)
        .retry(Retry::new(2).backoff(Duration::from_secs(1)).jitter(0.0))
        .build(move |n: u32, ctx: WorkContext| {
            let log = Arc::clone(&log);
            async move {
                log.lock().unwrap().push((n, ctx.attempt()));
                if ctx.attempt() == 1 {
                    Err("first attempts fail")
                } else {
                    Ok(())
                }
            }
        })
        .unwrap();
    coordinator.enqueue(1).await.unwrap(); // fails at 0 s, due at 1 s
    tokio::time::sleep(Duration::from_millis(500)).await;
    coordinator.enqueue(2).await.unwrap(); // fails at 0.5 s, due at 1.5 s
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(coordinator.stats().retry_waiting, 2);
    sink.raise("backpressure.downstream").unwrap();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let stats = coordinator.stats();
    assert_eq!(
        (stats.retry_waiting, stats.queued),
        (0, 2),
        "both due and held"
    );
    sink.retract("backpressure.downstream").unwrap();
    coordinator.drain().await;
    let second: Vec<u32> = (starts.lock().unwrap().iter())
        .filter(|(_, attempt)| *attempt == 2)
        .map(|(n, _)| *n)
        .collect();
    assert_eq!(second, [1, 2], "the retry due first starts first");
}
