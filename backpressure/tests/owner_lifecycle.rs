//! A verdict ends with its owner (DESIGN §6): once `drain()` or `shutdown()` returns, or the
//! last handle is gone, the owner's policies have retracted their signals and raise nothing
//! again, so the peers they held resume, even while someone still holds the owner's handle.

use std::sync::Arc;
use std::time::Duration;

use backpressure::{
    policy::{Breaker, BreakerState, PolicyState},
    Coordinator, MaxDefer, Sink, WorkContext,
};
use tokio::sync::Semaphore;

const SMTP: &str = "backpressure.smtp";

/// Lets every task that can run do so (current-thread runtime, paused clock).
async fn settle() {
    for _ in 0..64 {
        tokio::task::yield_now().await;
    }
}

/// What a scripted call does.
#[derive(Debug, Clone, Copy)]
enum Call {
    Fail,
    /// Waits for a permit of the owner's semaphore, then succeeds.
    Block,
}

/// The mailer: its breaker opens on its first failure and stays open a minute; it defers
/// on its own verdict.
fn mailer(sink: &Sink, release: &Arc<Semaphore>) -> Coordinator<Call> {
    let release = Arc::clone(release);
    Coordinator::builder()
        .sink(sink.clone())
        .name("mailer")
        .concurrency(2)
        .defer_on(SMTP)
        .max_defer(MaxDefer::Never)
        .policy(
            Breaker::error_rate(SMTP)
                .consecutive_failures(1)
                .open_for(Duration::from_secs(60))
                .probe_timeout(Duration::from_secs(10))
                .ttl(Duration::from_secs(15))
                .jitter(0.0),
        )
        .build(move |call: Call, _: WorkContext| {
            let release = Arc::clone(&release);
            async move {
                match call {
                    Call::Fail => Err("relay refused"),
                    Call::Block => {
                        release.acquire().await.unwrap().forget();
                        Ok(())
                    }
                }
            }
        })
        .unwrap()
}

/// A peer that defers on the mailer's verdict and keeps a clone of the mailer's handle (as
/// a registry, an admin endpoint or a handler would), or none.
fn peer(sink: &Sink, mailer: Option<&Coordinator<Call>>) -> Coordinator<u32> {
    let kept = mailer.cloned();
    Coordinator::builder()
        .sink(sink.clone())
        .name("digest")
        .defer_on(SMTP)
        .max_defer(MaxDefer::Never)
        .build(move |_: u32, _: WorkContext| {
            let _kept = kept.clone();
            async {}
        })
        .unwrap()
}

/// Opens the mailer's breaker and holds three of the peer's items behind it.
async fn open(mailer: &Coordinator<Call>, peer: &Coordinator<u32>, sink: &Sink) {
    mailer.enqueue(Call::Fail).await.unwrap();
    settle().await;
    assert_eq!(
        mailer.policies()[0].state,
        PolicyState::Breaker(BreakerState::Open)
    );
    peer.enqueue_many(0..3).await.unwrap();
    settle().await;
    assert_eq!(peer.stats().queued, 3);
    assert!(sink.is_raised(SMTP));
}

/// The verdict is gone, the peer runs what it held, and no timer of the closed owner raises
/// it again (its refresh, its half-open turn, a probe timeout: two minutes of them).
async fn released_for_good(peer: &Coordinator<u32>, sink: &Sink) {
    assert!(!sink.is_raised(SMTP), "{:?}", sink.snapshot());
    settle().await;
    assert_eq!(peer.stats().completed, 3);
    for _ in 0..120 {
        tokio::time::advance(Duration::from_secs(1)).await;
        settle().await;
        assert!(!sink.is_raised(SMTP), "{:?}", sink.snapshot());
    }
}

#[tokio::test(start_paused = true)]
async fn a_drained_owner_s_verdict_is_gone_when_drain_returns() {
    let sink = Sink::new();
    let release = Arc::new(Semaphore::new(0));
    let mailer = mailer(&sink, &release);
    // One call is still running when the breaker opens.
    mailer.enqueue(Call::Block).await.unwrap();
    settle().await;
    let peer = peer(&sink, Some(&mailer));
    open(&mailer, &peer, &sink).await;

    let draining = tokio::spawn({
        let mailer = mailer.clone();
        async move { mailer.drain().await }
    });
    settle().await;
    assert!(!draining.is_finished());
    assert!(sink.is_raised(SMTP), "still draining: the verdict holds");

    release.add_permits(1);
    settle().await;
    assert!(draining.is_finished());
    draining.await.unwrap();
    released_for_good(&peer, &sink).await;
}

#[tokio::test(start_paused = true)]
async fn a_shut_down_owner_s_verdict_is_gone_when_shutdown_returns() {
    let sink = Sink::new();
    let release = Arc::new(Semaphore::new(0));
    let mailer = mailer(&sink, &release);
    let peer = peer(&sink, Some(&mailer));
    open(&mailer, &peer, &sink).await;
    // Held behind its own verdict, then handed back.
    mailer.enqueue(Call::Block).await.unwrap();
    settle().await;

    let returned = mailer.shutdown().await;
    assert_eq!(returned.len(), 1);
    released_for_good(&peer, &sink).await;
}

#[tokio::test(start_paused = true)]
async fn a_dropped_owner_s_verdict_is_gone_at_once() {
    let sink = Sink::new();
    let release = Arc::new(Semaphore::new(0));
    let mailer = mailer(&sink, &release);
    let peer = peer(&sink, None);
    open(&mailer, &peer, &sink).await;
    drop(mailer);
    settle().await;
    released_for_good(&peer, &sink).await;
}
