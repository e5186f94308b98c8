//! Hostile tests of probes across processes under faults (DESIGN §6 "Probes and other
//! verdicts", §7): the owner's bridge reconnecting while a peer's claim is on its way, a
//! `FLUSHALL` during half-open, the owner's bridge going away while a peer's probe runs,
//! and a peer's probe hung past `probe_timeout`.
//!
//! Each "process" is a sink with its own bridge and instance on one real redis-server
//! (skipped without one); some owners reach it through the fault proxy.

mod common;
mod hostile_probes_kit;

use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

use backpressure::policy::BreakerState;
use backpressure::Phase;
use backpressure_redis::{connect, Bridge, Status};
use common::proxy::Proxy;
use common::{redis, wait_until};
use hostile_probes_kit::*;
use tokio::sync::mpsc;

/// Long enough that no liveness test here can pass through a probe timeout.
const NO_TIMEOUT: Duration = Duration::from_secs(60);

/// The owner's bridge loses its connection (a reset, its reconnect held in a black hole),
/// and a peer asks for a probe meanwhile: the claim is published while the owner is not
/// subscribed. The owner reconnects and resyncs; its idle breaker stays half-open (no
/// claim reached it, so no probe timeout runs). The peer must not be left asking forever.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_claim_lost_while_the_owner_reconnects_is_asked_again() {
    let Some(server) = redis("a_claim_lost_while_the_owner_reconnects_is_asked_again") else {
        return;
    };
    let proxy = Proxy::start(server.port).await;
    let namespace = "hp-lost-claim";
    // A long lease: the verdict must not lapse at the peer during the outage.
    let owner_sink = backpressure::Sink::new();
    let owner_config =
        config(&proxy.url(), namespace, "owner-process").lease(Duration::from_secs(8));
    let owner_bridge: Bridge = connect(owner_sink.clone(), owner_config).await.unwrap();
    let (peer_sink, _peer_bridge) = process(&server.url(), namespace, "peer-process").await;
    let mut tap = Tap::new(&server.url(), namespace);
    let failing = Arc::new(AtomicBool::new(false));
    let owner = owner(&owner_sink, breaker(1, NO_TIMEOUT), &failing);
    let (tx, mut starts) = mpsc::unbounded_channel();
    let peer = peer(&peer_sink, 0, 1, &tx);
    open_the_breaker(&owner, &failing, &[&peer_sink]).await;
    assert!(
        mirrors(&peer_sink, Phase::HalfOpen).await,
        "the peer mirrors half-open"
    );

    proxy.black_hole();
    proxy.reset();
    let down = owner_bridge
        .wait_for(WAIT, |s| matches!(s, Status::Disconnected { .. }))
        .await;
    assert!(matches!(down, Status::Disconnected { .. }), "{down:?}");
    peer.enqueue(()).await.unwrap();
    let claim = tap.next_op("C").await;
    assert!(claim.is_some(), "the peer asked the owner for a probe");
    proxy.forward();
    let up = owner_bridge.wait_for(WAIT, |s| *s == Status::Synced).await;
    assert_eq!(up, Status::Synced);
    assert_eq!(
        state(&owner),
        backpressure::policy::PolicyState::Breaker(BreakerState::HalfOpen)
    );

    // Several renewals of the verdict later, the peer must have its probe.
    let probe = next_start(&mut starts, Duration::from_secs(6)).await;
    assert!(
        probe.is_some(),
        "the peer is still held by the half-open verdict; probe messages seen: {:?}; peer {:?}",
        tap.drain(),
        peer.stats()
    );
    probe.unwrap().succeed();
    reaches(&owner, BreakerState::Closed, "the peer's probe closed it").await;
}

/// `FLUSHALL` while a peer's probe runs: both bridges resync and republish, the peer's probe
/// still decides the breaker, and a second peer denied meanwhile is not left asking.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flushall_during_half_open_keeps_the_probe_and_its_outcome() {
    let Some(server) = redis("flushall_during_half_open_keeps_the_probe_and_its_outcome") else {
        return;
    };
    let namespace = "hp-flush";
    let (owner_sink, _o) = process(&server.url(), namespace, "owner-process").await;
    let (b_sink, b_bridge) = process(&server.url(), namespace, "peer-b").await;
    let (c_sink, _c) = process(&server.url(), namespace, "peer-c").await;
    let failing = Arc::new(AtomicBool::new(false));
    let owner = owner(&owner_sink, breaker(1, NO_TIMEOUT), &failing);
    let (tx, mut starts) = mpsc::unbounded_channel();
    let b = peer(&b_sink, 0, 1, &tx);
    let c = peer(&c_sink, 1, 1, &tx);
    open_the_breaker(&owner, &failing, &[&b_sink, &c_sink]).await;
    b.enqueue(()).await.unwrap();
    let probe = next_start(&mut starts, WAIT).await.expect("B probes");
    c.enqueue(()).await.unwrap();
    assert!(
        next_start(&mut starts, Duration::from_millis(300))
            .await
            .is_none(),
        "C is denied while B's probe runs"
    );

    let resyncs = b_bridge.stats().resyncs;
    redis::cmd("FLUSHALL")
        .query::<()>(&mut server.raw())
        .unwrap();
    // Something must move the counter for the bridges to see the new epoch: the owner's
    // next renewal does (within lease / 3).
    let resynced = common::until(WAIT, || b_bridge.stats().resyncs, |n| *n > resyncs).await;
    assert!(resynced > resyncs, "B resynced after FLUSHALL");
    assert!(
        wait_until(&c_sink, WAIT, |s| s.is_raised(SIGNAL)).await,
        "the verdict is back in Redis and at C"
    );
    probe.succeed();
    reaches(
        &owner,
        BreakerState::Closed,
        "B's probe, after FLUSHALL, closed it",
    )
    .await;
    let done = complete_all(&mut starts, &[&b, &c], 2).await;
    assert_eq!(done, 2, "C ran once closed");
}

/// The owner's bridge shuts down while a peer's lent probe runs: its verdict leaves Redis,
/// the peer is not held (its other items run at once), and the probe's late outcome is
/// harmless.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_owners_bridge_gone_mid_probe_lets_the_peer_go() {
    let Some(server) = redis("the_owners_bridge_gone_mid_probe_lets_the_peer_go") else {
        return;
    };
    let namespace = "hp-owner-gone";
    let (owner_sink, owner_bridge) = process(&server.url(), namespace, "owner-process").await;
    let (peer_sink, _p) = process(&server.url(), namespace, "peer-process").await;
    let failing = Arc::new(AtomicBool::new(false));
    let owner = owner(&owner_sink, breaker(1, NO_TIMEOUT), &failing);
    let (tx, mut starts) = mpsc::unbounded_channel();
    let peer = peer(&peer_sink, 0, 2, &tx);
    open_the_breaker(&owner, &failing, &[&peer_sink]).await;
    peer.enqueue_many(vec![(); 3]).await.unwrap();
    let probe = next_start(&mut starts, WAIT)
        .await
        .expect("the peer probes");
    owner_bridge.shutdown().await;
    assert!(
        wait_until(&peer_sink, LEASE * 2, |s| !s.is_raised(SIGNAL)).await,
        "the verdict left the peer within a lease"
    );
    probe.succeed();
    assert_eq!(complete_all(&mut starts, &[&peer], 3).await, 3);
    assert_eq!(
        state(&owner),
        backpressure::policy::PolicyState::Breaker(BreakerState::HalfOpen),
        "the owner, cut off, never heard the outcome"
    );
}

/// A peer's lent probe hangs past `probe_timeout`: the owner's breaker reopens (the loan is
/// settled by the timeout), the next half-open period lends to another peer, whose success
/// closes it; the hung probe's late success is of an ended period and changes nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_remote_probe_hung_past_probe_timeout_reopens_and_another_peer_closes() {
    let Some(server) = redis("a_remote_probe_hung_past_probe_timeout_reopens") else {
        return;
    };
    let namespace = "hp-hung";
    let (owner_sink, _o) = process(&server.url(), namespace, "owner-process").await;
    let (b_sink, _b) = process(&server.url(), namespace, "peer-b").await;
    let (c_sink, _c) = process(&server.url(), namespace, "peer-c").await;
    let failing = Arc::new(AtomicBool::new(false));
    let owner = owner(
        &owner_sink,
        breaker(1, Duration::from_millis(700)),
        &failing,
    );
    let (tx, mut starts) = mpsc::unbounded_channel();
    let b = peer(&b_sink, 0, 1, &tx);
    let c = peer(&c_sink, 1, 1, &tx);
    open_the_breaker(&owner, &failing, &[&b_sink, &c_sink]).await;
    b.enqueue(()).await.unwrap();
    let hung = next_start(&mut starts, WAIT).await.expect("B probes");
    assert_eq!(hung.peer, 0);
    c.enqueue(()).await.unwrap();
    reaches(&owner, BreakerState::Open, "the hung probe timed out").await;
    let second = next_start(&mut starts, WAIT)
        .await
        .expect("C probes the next period");
    assert_eq!(second.peer, 1);
    hung.succeed(); // late, of an ended period
    assert!(
        next_start(&mut starts, Duration::from_millis(300))
            .await
            .is_none(),
        "a late outcome of an ended period lets nothing more start"
    );
    assert_eq!(
        state(&owner),
        backpressure::policy::PolicyState::Breaker(BreakerState::HalfOpen)
    );
    second.succeed();
    reaches(&owner, BreakerState::Closed, "C's probe closed it").await;
    assert_eq!(complete_all(&mut starts, &[&b, &c], 2).await, 2);
}
