//! `rate(..., shared = true)` through the connector API, with a hand-driven connector: a
//! worker starts only on a token its connector granted, waits (no timer, no polling) for a
//! grant when it has none, lets unused tokens lapse at their deadline, and tells the
//! connector when a start waits or the worker closes.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use backpressure::connector::RateTokens;
use backpressure::error::BuildError;
use backpressure::limit::Rate;
use backpressure::{Coordinator, HeldBy, Sink, WorkContext};
use tokio::time::Instant;

fn fleet_rate() -> Rate {
    Rate::new(100, Duration::from_secs(1)).shared()
}

fn worker(sink: &Sink, started: &Arc<AtomicUsize>) -> Coordinator<u32> {
    let started = Arc::clone(started);
    Coordinator::builder()
        .sink(sink.clone())
        .name("relay")
        .concurrency(4)
        .rate(fleet_rate())
        .build(move |_: u32, _: WorkContext| {
            started.fetch_add(1, Ordering::SeqCst);
            async {}
        })
        .unwrap()
}

fn served() -> (Sink, Arc<AtomicUsize>, Coordinator<u32>, RateTokens) {
    let sink = Sink::new();
    sink.serve_rates();
    let started = Arc::new(AtomicUsize::new(0));
    let coordinator = worker(&sink, &started);
    let tokens = sink
        .rate_pools()
        .pop()
        .expect("the worker keeps its tokens on the sink");
    (sink, started, coordinator, tokens)
}

/// Lets the runtime run what is ready (paused time: nothing else moves).
async fn settle() {
    tokio::time::sleep(Duration::from_millis(1)).await;
}

#[tokio::test]
async fn an_unconnected_sink_refuses_a_shared_rate() {
    let err = Coordinator::<u8>::builder()
        .sink(Sink::new())
        .rate(fleet_rate())
        .build(|_, _: WorkContext| async {})
        .unwrap_err();
    assert_eq!(err, BuildError::SharedRateNeedsBridge);
    assert!(
        err.to_string().contains("backpressure_redis::connect"),
        "{err}"
    );
    // A sink that serves permits but not rates is refused too; a local rate needs nothing.
    let sink = Sink::new();
    sink.serve_permits();
    let local = Coordinator::<u8>::builder()
        .sink(sink)
        .rate(Rate::new(100, Duration::from_secs(1)))
        .build(|_, _: WorkContext| async {});
    assert!(local.is_ok());
}

#[tokio::test(start_paused = true)]
async fn items_start_only_on_granted_tokens_and_a_grant_wakes_them() {
    let (_sink, started, coordinator, tokens) = served();
    assert_eq!((tokens.worker(), tokens.rate()), ("relay", fleet_rate()));
    let asked = tokio::spawn({
        let tokens = tokens.clone();
        async move { tokens.changed().await }
    });
    coordinator.enqueue_many(0..10).await.unwrap();
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(
        started.load(Ordering::SeqCst),
        0,
        "no token, no start, however long"
    );
    assert!(asked.is_finished(), "the connector was told a start waits");
    assert!(tokens.counts().wanted);
    assert_eq!(coordinator.held_by(), Some(HeldBy::Rate));
    assert!(coordinator.stats().rate_holding);

    tokens.grant(3, Instant::now() + Duration::from_secs(1));
    settle().await;
    assert_eq!(
        started.load(Ordering::SeqCst),
        3,
        "three tokens, three starts"
    );
    let counts = tokens.counts();
    assert_eq!(
        (counts.available, counts.spent, counts.wanted),
        (0, 3, true)
    );
    tokens.grant(7, Instant::now() + Duration::from_secs(1));
    coordinator.drain().await;
    assert_eq!(started.load(Ordering::SeqCst), 10);
    let stats = coordinator.stats();
    assert_eq!(
        stats.rate_limited, 2,
        "the first item and the fourth waited for a grant"
    );
    assert!(stats.is_consistent());
}

#[tokio::test(start_paused = true)]
async fn unused_tokens_lapse_at_their_deadline() {
    let (_sink, started, coordinator, tokens) = served();
    tokens.grant(5, Instant::now() + Duration::from_millis(100));
    coordinator.enqueue(1).await.unwrap();
    settle().await;
    assert_eq!(started.load(Ordering::SeqCst), 1);
    tokio::time::sleep(Duration::from_millis(200)).await;
    coordinator.enqueue(2).await.unwrap();
    settle().await;
    assert_eq!(started.load(Ordering::SeqCst), 1, "the four left lapsed");
    let counts = tokens.counts();
    assert_eq!(
        (counts.available, counts.lapsed, counts.wanted),
        (0, 4, true)
    );
}

#[tokio::test(start_paused = true)]
async fn a_held_gate_spends_no_token_and_closing_tells_the_connector() {
    let (sink, started, coordinator, tokens) = served();
    sink.raise("backpressure.relay").unwrap();
    let coordinator = {
        drop(coordinator);
        let started = Arc::clone(&started);
        Coordinator::builder()
            .sink(sink.clone())
            .name("relay2")
            .defer_on("backpressure.*")
            .rate(fleet_rate())
            .build(move |_: u32, _: WorkContext| {
                started.fetch_add(1, Ordering::SeqCst);
                async {}
            })
            .unwrap()
    };
    let tokens2 = sink.rate_pools().pop().unwrap();
    assert_eq!(tokens2.worker(), "relay2");
    tokens2.grant(2, Instant::now() + Duration::from_secs(60));
    coordinator.enqueue_many(0..2).await.unwrap();
    settle().await;
    assert_eq!(started.load(Ordering::SeqCst), 0);
    assert_eq!(
        tokens2.counts().spent,
        0,
        "the signal holds before the rate is asked"
    );
    sink.retract("backpressure.relay").unwrap();
    settle().await;
    assert_eq!(started.load(Ordering::SeqCst), 2);

    assert!(!tokens2.is_closed());
    let told = tokio::spawn({
        let tokens2 = tokens2.clone();
        async move { tokens2.changed().await }
    });
    coordinator.drain().await;
    settle().await;
    assert!(tokens2.is_closed() && told.is_finished());
    assert!(
        tokens.is_closed(),
        "a dropped worker's tokens are closed too"
    );
}
