//! `global_concurrency` through the connector API, with a hand-driven connector: a worker
//! starts only with a permit granted to its process, puts it back when the attempt ends,
//! and waits (without polling) for a grant.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use backpressure::error::BuildError;
use backpressure::{Coordinator, Sink, WorkContext};
use tokio::sync::Semaphore;

fn worker(
    sink: &Sink,
    running: &Arc<AtomicUsize>,
    peak: &Arc<AtomicUsize>,
    gate: &Arc<Semaphore>,
) -> Coordinator<u32> {
    let (running, peak, gate) = (Arc::clone(running), Arc::clone(peak), Arc::clone(gate));
    Coordinator::builder()
        .sink(sink.clone())
        .name("mailer")
        .concurrency(4)
        .global_concurrency(3)
        .build(move |_: u32, _: WorkContext| {
            let (running, peak, gate) =
                (Arc::clone(&running), Arc::clone(&peak), Arc::clone(&gate));
            async move {
                let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                peak.fetch_max(now, Ordering::SeqCst);
                gate.acquire().await.unwrap().forget();
                running.fetch_sub(1, Ordering::SeqCst);
            }
        })
        .unwrap()
}

#[tokio::test]
async fn an_unconnected_sink_refuses_global_concurrency() {
    let err = Coordinator::<u8>::builder()
        .sink(Sink::new())
        .global_concurrency(3)
        .build(|_, _: WorkContext| async {})
        .unwrap_err();
    assert_eq!(err, BuildError::GlobalConcurrencyNeedsBridge);
    assert!(
        err.to_string().contains("backpressure_redis::connect"),
        "{err}"
    );
}

#[tokio::test(start_paused = true)]
async fn items_start_only_with_a_granted_permit_and_wake_on_a_grant() {
    let sink = Sink::new();
    sink.serve_permits();
    let (running, peak) = (Arc::default(), Arc::default());
    let finish = Arc::new(Semaphore::new(0));
    let coordinator = worker(&sink, &running, &peak, &finish);
    let permits = sink
        .permit_pools()
        .pop()
        .expect("the worker keeps its permits on the sink");
    assert_eq!((permits.worker(), permits.limit()), ("mailer", 3));
    coordinator.enqueue_many(0..6).await.unwrap();
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(running.load(Ordering::SeqCst), 0, "no permit, no start");
    assert!(
        permits.counts().wanted,
        "the connector is told a start waits"
    );

    permits.grant(1);
    tokio::time::sleep(Duration::from_millis(10)).await;
    assert_eq!(running.load(Ordering::SeqCst), 1, "one grant, one start");
    permits.grant(1);
    tokio::time::sleep(Duration::from_millis(10)).await;
    assert_eq!(running.load(Ordering::SeqCst), 2);
    let stats = coordinator.stats().permits.unwrap();
    assert_eq!((stats.granted, stats.in_use, stats.limit), (2, 2, 3));

    // A finished item's permit goes to the next item of this process.
    finish.add_permits(6);
    coordinator.drain().await;
    assert_eq!(coordinator.stats().completed, 6);
    assert_eq!(peak.load(Ordering::SeqCst), 2, "never more than granted");
    assert_eq!(permits.counts().in_use, 0);
    assert_eq!(
        permits.revoke_all(),
        2,
        "unused permits go back to the connector"
    );
}

/// A start that takes a freed permit while more items wait still tells the connector that
/// a start waits: before the fix it cleared `wanted` and the held slots slept until a grant
/// that never came, so a busy process never held more permits than it had when its first
/// item ended, though the fleet had room.
#[tokio::test(start_paused = true)]
async fn a_start_on_a_freed_permit_leaves_the_next_start_wanting() {
    let sink = Sink::new();
    sink.serve_permits();
    let (running, peak) = (Arc::default(), Arc::default());
    let finish = Arc::new(Semaphore::new(0));
    let coordinator = worker(&sink, &running, &peak, &finish);
    let permits = sink.permit_pools().pop().unwrap();
    coordinator.enqueue_many(0..6).await.unwrap();
    tokio::time::sleep(Duration::from_millis(10)).await;
    permits.grant(1);
    tokio::time::sleep(Duration::from_millis(10)).await;
    assert_eq!(running.load(Ordering::SeqCst), 1);
    assert!(permits.counts().wanted);

    // The first item ends; the next takes its permit; four more wait.
    finish.add_permits(1);
    tokio::time::sleep(Duration::from_millis(10)).await;
    assert_eq!(coordinator.stats().completed, 1);
    assert_eq!(running.load(Ordering::SeqCst), 1);
    assert!(
        permits.counts().wanted,
        "the connector is told the next start waits"
    );
    permits.grant(1);
    tokio::time::sleep(Duration::from_millis(10)).await;
    assert_eq!(running.load(Ordering::SeqCst), 2, "and the grant is used");
    finish.add_permits(6);
    coordinator.drain().await;
    assert_eq!(coordinator.stats().completed, 6);
}

#[tokio::test(start_paused = true)]
async fn held_by_names_the_permits_then_the_rate() {
    use backpressure::limit::Rate;
    use backpressure::HeldBy;
    let sink = Sink::new();
    sink.serve_permits();
    let coordinator = Coordinator::builder()
        .sink(sink.clone())
        .name("limited")
        .concurrency(2)
        .global_concurrency(2)
        .rate(Rate::new(1, Duration::from_secs(60)))
        .build(|_: u32, _: WorkContext| async {})
        .unwrap();
    coordinator.enqueue_many(0..3).await.unwrap();
    tokio::time::sleep(Duration::from_millis(1)).await;
    assert!(
        matches!(coordinator.held_by(), Some(HeldBy::Permits(c)) if c.wanted && c.granted == 0)
    );
    sink.permit_pools()[0].grant(2);
    tokio::time::sleep(Duration::from_millis(1)).await;
    // One start, then the rate holds the next for a minute.
    assert_eq!(coordinator.stats().completed, 1);
    assert_eq!(coordinator.held_by(), Some(HeldBy::Rate));
    assert!(coordinator.stats().rate_holding);
    coordinator.pause();
    assert_eq!(coordinator.held_by(), Some(HeldBy::Paused));
    coordinator.resume();
    sink.raise("backpressure.relay").unwrap();
    assert_eq!(
        coordinator.held_by().unwrap().describe(),
        "backpressure.relay"
    );
}

#[tokio::test(start_paused = true)]
async fn a_drained_worker_says_it_is_closed_and_wakes_the_connector() {
    let sink = Sink::new();
    sink.serve_permits();
    let (running, peak) = (Arc::default(), Arc::default());
    let coordinator = worker(&sink, &running, &peak, &Arc::new(Semaphore::new(0)));
    let permits = sink.permit_pools().pop().unwrap();
    assert!(!permits.is_closed());
    let woken = tokio::spawn({
        let permits = permits.clone();
        async move { permits.changed().await }
    });
    tokio::task::yield_now().await;
    coordinator.drain().await;
    assert!(
        permits.is_closed(),
        "no new work: the connector keeps no permit unused"
    );
    tokio::time::timeout(Duration::from_secs(1), woken)
        .await
        .expect("the connector is woken")
        .unwrap();
}
