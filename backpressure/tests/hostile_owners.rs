//! Hostile tests of owners that close mid-verdict, through the public API under paused time
//! (DESIGN §6, "A verdict ends with its owner" and "`max_defer` never forces work past a
//! breaker verdict"): drained while a peer's probe runs, shut down while half-open with its
//! own probe hanging, its last handle dropped while open with items queued, and what
//! `max_defer` does for a peer once the verdict that held it has gone while a plain signal
//! stays.

mod common;

use std::time::Duration;

use backpressure::{MaxDefer, Phase, RaiseOptions, Sink};
use common::verdicts::{
    breaker, open, state, worker, worker_with, Call, Downstream, CALL, HALF_OPEN, OPEN_FOR,
};
use tokio::time::sleep;

const ALL: &str = "backpressure.*";
const SMTP: &str = "backpressure.smtp";

fn stats(worker: &backpressure::Coordinator<Call>) -> backpressure::Stats {
    common::consistent(worker.stats())
}

/// No verdict is raised now, nor in the next two minutes.
async fn gone_for_good(sink: &Sink) {
    for _ in 0..120 {
        assert!(!sink.is_raised(SMTP), "{:?}", sink.snapshot());
        sleep(Duration::from_secs(1)).await;
    }
}

#[tokio::test(start_paused = true)]
async fn draining_an_idle_owner_while_a_peer_s_probe_runs_releases_the_peer() {
    let sink = Sink::new();
    let downstream = Downstream::new(&sink);
    let owner = worker(&sink, "owner", 1, ALL, Some(breaker(SMTP, 1)), &downstream);
    let peer = worker(&sink, "peer", 2, ALL, None, &downstream);
    open(&owner).await;
    downstream.recover();
    peer.enqueue(Call::Slow).await.unwrap();
    peer.enqueue_many(vec![Call::Ask; 3]).await.unwrap();
    sleep(OPEN_FOR + CALL).await;
    common::settle().await;
    assert_eq!((state(&owner), stats(&peer).active), (HALF_OPEN, 1));

    common::within(Duration::from_millis(1), "drain", owner.drain()).await;
    assert!(!sink.is_raised(SMTP));
    sleep(2 * CALL).await;
    common::settle().await;
    assert_eq!(
        stats(&peer).completed,
        2,
        "the peer's other slot runs at once"
    );
    gone_for_good(&sink).await;
    assert_eq!(stats(&peer).completed, 4);
}

#[tokio::test(start_paused = true)]
async fn shutting_down_an_owner_whose_own_probe_hangs_releases_the_peer() {
    let sink = Sink::new();
    let downstream = Downstream::new(&sink);
    let owner = worker(&sink, "owner", 1, ALL, Some(breaker(SMTP, 1)), &downstream);
    let peer = worker(&sink, "peer", 1, ALL, None, &downstream);
    open(&owner).await;
    downstream.recover();
    owner.enqueue(Call::Hang).await.unwrap();
    owner.enqueue(Call::Ask).await.unwrap();
    common::settle().await;
    peer.enqueue_many(vec![Call::Ask; 2]).await.unwrap();
    sleep(OPEN_FOR).await;
    common::settle().await;
    assert_eq!((state(&owner), stats(&owner).active), (HALF_OPEN, 1));
    assert_eq!(stats(&peer).queued, 2, "the owner's probe was the only one");

    let returned = common::within(CALL, "shutdown", owner.shutdown()).await;
    assert_eq!(returned, vec![Call::Ask]);
    assert!(!sink.is_raised(SMTP));
    sleep(3 * CALL).await;
    common::settle().await;
    assert_eq!(stats(&peer).completed, 2);
    gone_for_good(&sink).await;
}

#[tokio::test(start_paused = true)]
async fn an_owner_dropped_while_open_with_items_queued_releases_its_peer_after_them() {
    let sink = Sink::new();
    let downstream = Downstream::new(&sink);
    let owner = worker(&sink, "owner", 1, ALL, Some(breaker(SMTP, 1)), &downstream);
    let peer = worker(&sink, "peer", 1, ALL, None, &downstream);
    open(&owner).await;
    downstream.recover();
    owner.enqueue_many(vec![Call::Ask; 2]).await.unwrap();
    peer.enqueue_many(vec![Call::Ask; 2]).await.unwrap();
    drop(owner);
    common::settle().await;
    assert!(
        sink.is_raised(SMTP),
        "its queued items still run behind its verdict"
    );
    // Half-open at OPEN_FOR, one probe closes it; its slot leaves when the queue is empty.
    sleep(OPEN_FOR + 6 * CALL).await;
    common::settle().await;
    assert_eq!(stats(&peer).completed, 2);
    gone_for_good(&sink).await;
}

#[tokio::test(start_paused = true)]
async fn max_defer_applies_again_when_a_shut_down_owner_s_open_verdict_leaves_a_plain_signal() {
    let sink = Sink::new();
    let downstream = Downstream::new(&sink);
    downstream.recover();
    let owner = worker(
        &sink,
        "owner",
        1,
        ALL,
        Some(breaker(SMTP, 1).open_for(Duration::from_secs(60))),
        &downstream,
    );
    let max_defer = MaxDefer::After(Duration::from_millis(50));
    let peer = worker_with(&sink, "peer", 1, ALL, None, max_defer, &downstream);
    open(&owner).await;
    sink.raise("backpressure.maintenance").unwrap();
    peer.enqueue(Call::Ask).await.unwrap();
    sleep(Duration::from_millis(500)).await;
    common::settle().await;
    assert_eq!((stats(&peer).queued, stats(&peer).defer_timeouts), (1, 0));

    owner.shutdown().await;
    assert!(!sink.is_raised(SMTP));
    // Only the plain signal holds now: `max_defer` applies again.
    sleep(Duration::from_millis(50) + 2 * CALL).await;
    common::settle().await;
    let stats = stats(&peer);
    assert_eq!((stats.completed, stats.defer_timeouts), (1, 1), "{stats:?}");
}

#[tokio::test(start_paused = true)]
async fn max_defer_applies_again_when_a_raised_open_verdict_is_retracted_under_a_plain_signal() {
    let sink = Sink::new();
    let downstream = Downstream::new(&sink);
    downstream.recover();
    let max_defer = MaxDefer::After(Duration::from_millis(50));
    let peer = worker_with(&sink, "peer", 1, ALL, None, max_defer, &downstream);
    let verdict = RaiseOptions::new().key("elsewhere").phase(Phase::Open);
    sink.raise_with(SMTP, verdict).unwrap();
    sink.raise("backpressure.maintenance").unwrap();
    peer.enqueue(Call::Ask).await.unwrap();
    sleep(Duration::from_millis(500)).await;
    common::settle().await;
    assert_eq!(stats(&peer).defer_timeouts, 0);
    sink.retract_keyed(SMTP, "elsewhere").unwrap();
    sleep(Duration::from_millis(50) + 2 * CALL).await;
    common::settle().await;
    let stats = stats(&peer);
    assert_eq!((stats.completed, stats.defer_timeouts), (1, 1), "{stats:?}");
}
