//! `backpressure::testing::Timeline` (feature `test-util`): exact lines under paused time.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use backpressure::retry::Retry;
use backpressure::testing::Timeline;
use backpressure::{Coordinator, Level, RaiseOptions, Sink, WorkContext};

/// The README's example test.
#[tokio::test(start_paused = true)]
async fn sending_waits_for_the_relay_and_resumes_when_it_recovers() {
    let sink = Sink::new();
    let timeline = Timeline::new();
    timeline.watch(&sink);
    let mailer = Coordinator::builder()
        .sink(sink.clone())
        .concurrency(1)
        .build(timeline.wrap(|_to: String, _ctx: WorkContext| async move {
            tokio::time::sleep(Duration::from_millis(250)).await;
        }))
        .unwrap();

    sink.raise("backpressure.smtp").unwrap();
    mailer.enqueue("ada".to_owned()).await.unwrap();
    mailer.enqueue("grace".to_owned()).await.unwrap();
    tokio::time::sleep(Duration::from_secs(1)).await;
    sink.retract("backpressure.smtp").unwrap();
    mailer.drain().await;

    assert_eq!(
        timeline.lines(),
        [
            "0.000s raised backpressure.smtp",
            "1.000s retracted backpressure.smtp",
            "1.000s #0 started",
            "1.250s #0 completed",
            "1.250s #1 started",
            "1.500s #1 completed",
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn retries_show_their_attempt_and_how_each_ended() {
    let sink = Sink::new();
    let timeline = Timeline::new();
    let calls = Arc::new(AtomicU32::new(0));
    let counted = Arc::clone(&calls);
    let worker = Coordinator::builder()
        .sink(sink)
        .retry(Retry::new(3).backoff(Duration::from_secs(1)).jitter(0.0))
        .build(timeline.wrap(move |_: u8, _ctx: WorkContext| {
            let call = counted.fetch_add(1, Ordering::SeqCst);
            async move {
                tokio::time::sleep(Duration::from_millis(250)).await;
                match call {
                    0 => Err("relay refused".to_owned()),
                    1 => panic!("relay hung up"),
                    _ => Ok(()),
                }
            }
        }))
        .unwrap();

    worker.enqueue(7).await.unwrap();
    worker.drain().await;
    assert_eq!(
        timeline.lines(),
        [
            "0.000s #0 started",
            "0.250s #0 failed",
            "1.250s #0 started (attempt 2)",
            "1.500s #0 panicked",
            "3.500s #0 started (attempt 3)",
            "3.750s #0 completed",
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn keys_levels_expiry_and_a_cut_short_item_are_written_out() {
    let sink = Sink::new();
    let timeline = Timeline::new();
    timeline.watch(&sink);
    let worker = Coordinator::builder()
        .sink(sink.clone())
        .timeout(Duration::from_secs(2))
        .build(timeline.wrap(|_: u8, _ctx: WorkContext| async move {
            tokio::time::sleep(Duration::from_secs(60)).await;
        }))
        .unwrap();

    tokio::time::advance(Duration::from_millis(500)).await;
    let level = RaiseOptions::new()
        .key("replica-2")
        .level(Level::new(0.5).unwrap())
        .ttl(Duration::from_secs(1));
    sink.raise_with("backpressure.db", level).unwrap();
    worker.enqueue(1).await.unwrap();
    timeline.note("enqueued");
    worker.drain().await;

    assert_eq!(
        timeline.take(),
        [
            "0.500s raised backpressure.db [replica-2] level 0.5",
            "0.500s enqueued",
            "0.500s #0 started",
            "1.500s expired backpressure.db [replica-2] level 0.5",
            // Its 2 s timeout fires its token at 2.5 s; it ignores it and is dropped after
            // the grace (a tenth of the timeout).
            "2.700s #0 cut short",
        ]
    );
    assert!(timeline.lines().is_empty(), "take leaves it empty");
}
