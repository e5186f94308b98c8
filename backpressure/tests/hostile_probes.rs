//! Hostile tests of half-open verdicts and their probes through the public API, under paused
//! time (DESIGN §6, "Probes and other verdicts"): plain signals on top of half-open verdicts,
//! hung, panicking and racing probes, verdicts reopened while a probe runs, three peers
//! sharing three probes, and three breakers holding each other in a ring.

mod common;

use std::time::Duration;

use backpressure::{MaxDefer, Sink};
use common::verdicts::{
    breaker, open, state, worker, worker_with, Call, Downstream, CALL, CLOSED, HALF_OPEN, OPEN,
    OPEN_FOR,
};
use tokio::time::sleep;

const ALL: &str = "backpressure.*";

fn stats(worker: &backpressure::Coordinator<Call>) -> backpressure::Stats {
    common::consistent(worker.stats())
}

#[tokio::test(start_paused = true)]
async fn a_plain_signal_on_a_half_open_verdict_holds_the_owner_and_every_peer() {
    let sink = Sink::new();
    let downstream = Downstream::new(&sink);
    let owner = worker(
        &sink,
        "owner",
        2,
        ALL,
        Some(breaker("backpressure.smtp", 1)),
        &downstream,
    );
    let peer = worker(&sink, "peer", 2, ALL, None, &downstream);
    open(&owner).await;
    downstream.recover();
    owner.enqueue_many(vec![Call::Ask; 2]).await.unwrap();
    peer.enqueue_many(vec![Call::Ask; 2]).await.unwrap();
    sleep(OPEN_FOR / 2).await;
    sink.raise("backpressure.maintenance").unwrap();
    sleep(OPEN_FOR).await;
    common::settle().await;
    assert_eq!(state(&owner), HALF_OPEN);
    assert_eq!((stats(&owner).completed, stats(&peer).completed), (0, 0));
    assert_eq!(downstream.probes(), 0, "nobody probes past a plain signal");

    // The plain signal goes: one probe closes the breaker, everything follows.
    sink.retract("backpressure.maintenance").unwrap();
    sleep(4 * CALL).await;
    common::settle().await;
    assert_eq!(state(&owner), CLOSED);
    assert_eq!((stats(&owner).completed, stats(&peer).completed), (2, 2));
    assert_eq!(downstream.probes(), 1);
}

#[tokio::test(start_paused = true)]
async fn a_plain_signal_raised_at_the_instant_of_half_open_holds_the_probe() {
    let sink = Sink::new();
    let downstream = Downstream::new(&sink);
    let owner = worker(
        &sink,
        "owner",
        1,
        ALL,
        Some(breaker("backpressure.smtp", 1)),
        &downstream,
    );
    open(&owner).await;
    downstream.recover();
    owner.enqueue(Call::Ask).await.unwrap();
    // Up to the instant the breaker goes half-open, then raised in the same tick.
    sleep(OPEN_FOR - CALL).await;
    sink.raise("backpressure.maintenance").unwrap();
    sleep(OPEN_FOR).await;
    common::settle().await;
    assert_eq!((state(&owner), stats(&owner).completed), (HALF_OPEN, 0));
}

#[tokio::test(start_paused = true)]
async fn a_hung_probe_times_out_reopens_and_a_later_probe_closes() {
    let sink = Sink::new();
    let downstream = Downstream::new(&sink);
    let policy = breaker("backpressure.smtp", 1).probe_timeout(Duration::from_millis(100));
    let owner = worker(&sink, "owner", 2, ALL, Some(policy), &downstream);
    let peer = worker(&sink, "peer", 1, ALL, None, &downstream);
    open(&owner).await;
    downstream.recover();
    owner.enqueue(Call::Hang).await.unwrap();
    common::settle().await;
    sleep(OPEN_FOR).await;
    common::settle().await;
    assert_eq!((state(&owner), stats(&owner).active), (HALF_OPEN, 1));
    peer.enqueue_many(vec![Call::Ask; 3]).await.unwrap();
    sleep(Duration::from_millis(100)).await;
    common::settle().await;
    assert_eq!(state(&owner), OPEN, "the hung probe timed out");
    assert_eq!(stats(&peer).queued, 3, "nobody passes the reopened verdict");

    // Reopened for twice as long; then the peer's probe closes it, the hung call still runs.
    sleep(2 * OPEN_FOR + 2 * CALL).await;
    common::settle().await;
    assert_eq!(state(&owner), CLOSED, "{:?}", sink.snapshot());
    sleep(3 * CALL).await;
    assert_eq!(stats(&peer).completed, 3);
    assert_eq!(stats(&owner).active, 1);
    assert_eq!(owner.shutdown().await, vec![]);
    assert!(sink.snapshot().is_empty());
}

#[tokio::test(start_paused = true)]
async fn a_probe_that_panics_reopens_and_costs_no_slot() {
    common::verdicts::quiet_panics();
    let sink = Sink::new();
    let downstream = Downstream::new(&sink);
    let owner = worker(
        &sink,
        "owner",
        1,
        ALL,
        Some(breaker("backpressure.smtp", 1)),
        &downstream,
    );
    open(&owner).await;
    downstream.recover();
    owner.enqueue(Call::Panic).await.unwrap();
    owner.enqueue(Call::Ask).await.unwrap();
    sleep(OPEN_FOR + CALL).await;
    common::settle().await;
    assert_eq!((state(&owner), stats(&owner).panicked), (OPEN, 1));
    sleep(2 * OPEN_FOR + CALL).await;
    common::settle().await;
    assert_eq!((state(&owner), stats(&owner).completed), (CLOSED, 1));
}

#[tokio::test(start_paused = true)]
async fn a_peer_s_success_and_the_owner_s_failure_at_one_instant_reopen() {
    let sink = Sink::new();
    let downstream = Downstream::new(&sink);
    let owner = worker(
        &sink,
        "owner",
        1,
        ALL,
        Some(breaker("backpressure.smtp", 2)),
        &downstream,
    );
    let peer = worker(&sink, "peer", 1, ALL, None, &downstream);
    open(&owner).await;
    downstream.recover();
    owner.enqueue(Call::Fail).await.unwrap();
    peer.enqueue_many(vec![Call::Ask; 3]).await.unwrap();
    sleep(OPEN_FOR + CALL).await;
    common::settle().await;
    assert_eq!(downstream.probes(), 2, "both probes ran at once");
    assert_eq!(state(&owner), OPEN, "one failed probe reopens");
    sleep(2 * OPEN_FOR - 2 * CALL).await;
    common::settle().await;
    assert_eq!(
        stats(&peer).completed,
        1,
        "the peer stays held while reopened"
    );
    assert_eq!(stats(&peer).queued, 2);
}

#[tokio::test(start_paused = true)]
async fn a_probe_finishing_after_its_verdict_reopened_changes_nothing() {
    let sink = Sink::new();
    let downstream = Downstream::new(&sink);
    let owner = worker(
        &sink,
        "owner",
        1,
        ALL,
        Some(breaker("backpressure.smtp", 2)),
        &downstream,
    );
    let peer = worker(&sink, "peer", 1, ALL, None, &downstream);
    open(&owner).await;
    downstream.recover();
    owner.enqueue(Call::Fail).await.unwrap();
    peer.enqueue(Call::Slow).await.unwrap();
    peer.enqueue_many(vec![Call::Ask; 2]).await.unwrap();
    // Both probes start at half-open; the owner's fails first and reopens.
    sleep(OPEN_FOR + CALL).await;
    common::settle().await;
    assert_eq!(state(&owner), OPEN);
    // The slow probe succeeds afterwards, in the open period: it closes nothing.
    sleep(5 * CALL).await;
    common::settle().await;
    assert_eq!(stats(&peer).completed, 1);
    assert_eq!(
        state(&owner),
        OPEN,
        "a probe of an earlier half-open period"
    );
    assert_eq!(stats(&peer).queued, 2);
    // The next half-open period closes it with two fresh probes.
    sleep(2 * OPEN_FOR).await;
    common::settle().await;
    assert_eq!(state(&owner), CLOSED);
    assert_eq!(stats(&peer).completed, 3);
}

#[tokio::test(start_paused = true)]
async fn three_peers_share_three_probes_and_take_no_more() {
    let sink = Sink::new();
    let downstream = Downstream::new(&sink);
    let owner = worker(
        &sink,
        "owner",
        1,
        ALL,
        Some(breaker("backpressure.smtp", 3)),
        &downstream,
    );
    open(&owner).await;
    let peers: Vec<_> = (0..3)
        .map(|i| worker(&sink, &format!("peer{i}"), 2, ALL, None, &downstream))
        .collect();
    for peer in &peers {
        peer.enqueue_many(vec![Call::Ask; 3]).await.unwrap();
    }
    downstream.recover();
    sleep(OPEN_FOR + CALL / 2).await;
    common::settle().await;
    assert_eq!(state(&owner), HALF_OPEN);
    assert_eq!(downstream.probes(), 3, "three probes, no more");
    let running: usize = peers.iter().map(|peer| stats(peer).active).sum();
    assert_eq!(running, 3);
    sleep(CALL / 2).await;
    common::settle().await;
    assert_eq!(state(&owner), CLOSED);
    sleep(4 * CALL).await;
    common::settle().await;
    for peer in &peers {
        assert_eq!(stats(peer).completed, 3);
    }
    assert_eq!(downstream.probes(), 3);
}

#[tokio::test(start_paused = true)]
async fn three_breakers_holding_each_other_in_a_ring_all_recover() {
    let sink = Sink::new();
    let downstream = Downstream::new(&sink);
    // a waits on a and b, b on b and c, c on c and a; each opens for a different period.
    let ring = [("a", "b", 1), ("b", "c", 2), ("c", "a", 3)];
    let workers: Vec<_> = ring
        .iter()
        .map(|&(own, next, n)| {
            let defer_on = format!("backpressure.{own},backpressure.{next}");
            let policy = breaker(&format!("backpressure.{own}"), 1).open_for(OPEN_FOR * n);
            worker(&sink, own, 1, &defer_on, Some(policy), &downstream)
        })
        .collect();
    for worker in &workers {
        worker.enqueue(Call::Fail).await.unwrap();
    }
    sleep(CALL).await;
    common::settle().await;
    for worker in &workers {
        assert_eq!(state(worker), OPEN);
        worker.enqueue_many(vec![Call::Ask; 2]).await.unwrap();
    }
    downstream.recover();
    // The last one goes half-open at 3 × OPEN_FOR; a few probes later all are closed.
    sleep(3 * OPEN_FOR + 8 * CALL).await;
    common::settle().await;
    for worker in &workers {
        assert_eq!(state(worker), CLOSED, "{:?}", sink.snapshot());
        assert_eq!(stats(worker).completed, 2);
    }
}

#[tokio::test(start_paused = true)]
async fn max_defer_does_not_force_an_item_past_a_half_open_verdict_with_no_probe_left() {
    let sink = Sink::new();
    let downstream = Downstream::new(&sink);
    let max_defer = MaxDefer::After(Duration::from_millis(20));
    let policy = breaker("backpressure.smtp", 1).open_for(Duration::from_secs(1));
    let owner = worker_with(&sink, "owner", 2, ALL, Some(policy), max_defer, &downstream);
    // Its one probe hangs, so the half-open verdict has none left for the second item.
    open(&owner).await;
    owner.enqueue(Call::Hang).await.unwrap();
    owner.enqueue(Call::Ask).await.unwrap();
    sleep(Duration::from_secs(1)).await;
    common::settle().await;
    assert_eq!(state(&owner), HALF_OPEN);
    sleep(Duration::from_millis(500)).await;
    common::settle().await;
    let stats = stats(&owner);
    assert_eq!(
        (stats.active, stats.queued, stats.defer_timeouts),
        (1, 1, 0),
        "{stats:?}"
    );
    owner.shutdown().await;
}
