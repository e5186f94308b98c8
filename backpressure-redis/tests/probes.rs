//! Probes across processes (DESIGN §6, "Probes and other verdicts"): a worker held in one
//! process by another process's half-open breaker verdict supplies the probe when the
//! breaker's owner is idle; its outcome decides the breaker; the fleet starts at most
//! `probes` of them; a probe that ends unused goes back and another process takes it.
//!
//! Each "process" is a sink with its own bridge and instance on one real redis-server
//! (skipped without one). Real time: the waits are generous upper bounds.

mod common;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use backpressure::policy::{Breaker, BreakerState, PolicyState};
use backpressure::{Coordinator, MaxDefer, Phase, Sink, Stats, WorkContext};
use backpressure_redis::{connect, Bridge, Config, Status};
use common::{redis, until, wait_until, RedisServer};

const WAIT: Duration = Duration::from_secs(30);
const OPEN_FOR: Duration = Duration::from_millis(300);
const SIGNAL: &str = "backpressure.smtp";

/// The downstream every process calls: failing or healthy, and how many calls it took.
#[derive(Clone, Default)]
struct Downstream {
    failing: Arc<AtomicBool>,
    calls: Arc<AtomicUsize>,
}

impl Downstream {
    fn call(&self) -> Result<(), String> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        if self.failing.load(Ordering::SeqCst) {
            Err("relay refused".into())
        } else {
            Ok(())
        }
    }
}

async fn process(server: &RedisServer, namespace: &str, instance: &str) -> (Sink, Bridge) {
    let sink = Sink::new();
    let config = Config::new(server.url())
        .namespace(namespace)
        .instance(instance)
        .lease(Duration::from_secs(2))
        .reconnect_max_delay(Duration::from_millis(200));
    let bridge = connect(sink.clone(), config).await.expect("connect");
    assert_eq!(bridge.status(), Status::Synced);
    (sink, bridge)
}

/// A worker that defers on `backpressure.*` and calls `downstream`; `hang` makes every call
/// wait until shutdown cancels it.
fn worker(
    sink: &Sink,
    breaker: Option<Breaker>,
    downstream: &Downstream,
    hang: bool,
) -> Coordinator<()> {
    let downstream = downstream.clone();
    let mut builder = Coordinator::builder()
        .sink(sink.clone())
        .name(if breaker.is_some() { "owner" } else { "peer" })
        .concurrency(2)
        .defer_on("backpressure.*")
        .max_defer(MaxDefer::Never);
    if let Some(breaker) = breaker {
        builder = builder.policy(breaker);
    }
    builder
        .build(move |(): (), ctx: WorkContext| {
            let downstream = downstream.clone();
            async move {
                if hang {
                    ctx.cancellation_token().cancelled().await;
                    return Ok(());
                }
                downstream.call()
            }
        })
        .unwrap()
}

fn breaker() -> Breaker {
    Breaker::error_rate(SIGNAL)
        .consecutive_failures(1)
        .open_for(OPEN_FOR)
        .jitter(0.0)
        .probes(1)
        .ttl(Duration::from_secs(3))
}

fn breaker_state(owner: &Coordinator<()>) -> PolicyState {
    owner.policies()[0].state
}

/// Opens the owner's breaker with one failed call and waits until `peers` mirror its open
/// verdict.
async fn open_the_breaker(owner: &Coordinator<()>, downstream: &Downstream, peers: &[&Sink]) {
    downstream.failing.store(true, Ordering::SeqCst);
    owner.enqueue(()).await.unwrap();
    let open = PolicyState::Breaker(BreakerState::Open);
    let seen = until(WAIT, || breaker_state(owner), |s| *s == open).await;
    assert_eq!(seen, open);
    for sink in peers {
        let mirrored = wait_until(sink, WAIT, |s| {
            s.snapshot()
                .iter()
                .any(|e| &*e.name == SIGNAL && e.phase == Some(Phase::Open))
        });
        assert!(
            mirrored.await,
            "the open verdict, with its phase, reached the peer"
        );
    }
}

fn started(stats: &Stats) -> u64 {
    stats.completed + stats.failed + stats.panicked + stats.active as u64
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_in_another_process_supplies_the_probe_of_an_idle_owner() {
    let Some(server) = redis("a_peer_in_another_process_supplies_the_probe_of_an_idle_owner")
    else {
        return;
    };
    let (owner_sink, _a) = process(&server, "probes-idle", "owner-process").await;
    let (peer_sink, _b) = process(&server, "probes-idle", "peer-process").await;
    let downstream = Downstream::default();
    let owner = worker(&owner_sink, Some(breaker()), &downstream, false);
    let peer = worker(&peer_sink, None, &downstream, false);
    open_the_breaker(&owner, &downstream, &[&peer_sink]).await;
    peer.enqueue_many(vec![(); 5]).await.unwrap();
    assert_eq!(peer.stats().queued, 5, "held by the open verdict");

    // The relay recovers; the owner has nothing more to send.
    downstream.failing.store(false, Ordering::SeqCst);
    let done = until(WAIT, || peer.stats(), |s| s.completed == 5).await;
    assert_eq!(done.completed, 5, "{done:?}");
    assert_eq!(
        breaker_state(&owner),
        PolicyState::Breaker(BreakerState::Closed),
        "the peer's probe closed the owner's breaker"
    );
    assert_eq!(owner.stats().enqueued, 1, "the owner stayed idle");
    assert!(wait_until(&peer_sink, WAIT, |s| !s.is_raised(SIGNAL)).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_remote_probe_reopens_and_the_fleet_starts_at_most_probes() {
    let Some(server) = redis("a_failed_remote_probe_reopens_and_the_fleet_starts_at_most_probes")
    else {
        return;
    };
    let (owner_sink, _a) = process(&server, "probes-failing", "owner-process").await;
    let (b_sink, _b) = process(&server, "probes-failing", "peer-b").await;
    let (c_sink, _c) = process(&server, "probes-failing", "peer-c").await;
    let downstream = Downstream::default();
    let owner = worker(&owner_sink, Some(breaker()), &downstream, false);
    let b = worker(&b_sink, None, &downstream, false);
    let c = worker(&c_sink, None, &downstream, false);
    open_the_breaker(&owner, &downstream, &[&b_sink, &c_sink]).await;
    b.enqueue_many(vec![(); 5]).await.unwrap();
    c.enqueue_many(vec![(); 5]).await.unwrap();

    // Still failing: one of the peers probes, fails, and the breaker reopens.
    let probed = until(
        WAIT,
        || started(&b.stats()) + started(&c.stats()),
        |n| *n >= 1,
    )
    .await;
    assert_eq!(probed, 1);
    let reopened = until(
        WAIT,
        || (breaker_state(&owner), owner.policies()[0].counts.failures),
        |(state, _)| *state == PolicyState::Breaker(BreakerState::Open),
    )
    .await;
    assert_eq!(reopened.0, PolicyState::Breaker(BreakerState::Open));
    let (b_now, c_now) = (b.stats(), c.stats());
    assert_eq!(
        (
            b_now.failed + c_now.failed,
            started(&b_now) + started(&c_now)
        ),
        (1, 1),
        "one probe in the fleet, and its failure reopened the breaker: {b_now:?} {c_now:?}"
    );
    assert_eq!(b_now.queued + c_now.queued, 9, "the rest stay held");
    assert_eq!(
        downstream.calls.load(Ordering::SeqCst),
        2,
        "the owner's call and one probe"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_remote_probe_cut_short_goes_back_and_another_process_takes_it() {
    let Some(server) = redis("a_remote_probe_cut_short_goes_back_and_another_process_takes_it")
    else {
        return;
    };
    let (owner_sink, _a) = process(&server, "probes-back", "owner-process").await;
    let (b_sink, _b) = process(&server, "probes-back", "peer-b").await;
    let (c_sink, _c) = process(&server, "probes-back", "peer-c").await;
    let downstream = Downstream::default();
    let owner = worker(&owner_sink, Some(breaker()), &downstream, false);
    let hung = worker(&b_sink, None, &downstream, true);
    let c = worker(&c_sink, None, &downstream, false);
    open_the_breaker(&owner, &downstream, &[&b_sink, &c_sink]).await;
    downstream.failing.store(false, Ordering::SeqCst);

    // B takes the only probe and hangs; C, held too, is denied.
    hung.enqueue(()).await.unwrap();
    let probing = until(WAIT, || hung.stats(), |s| s.active == 1).await;
    assert_eq!(probing.active, 1, "{probing:?}");
    c.enqueue(()).await.unwrap();
    // B shuts down: its probe ends without an outcome and goes back to the owner, who
    // announces it; C asks again and probes.
    let report = hung.shutdown().await;
    assert!(report.is_empty());
    let done = until(WAIT, || c.stats(), |s| s.completed == 1).await;
    assert_eq!(done.completed, 1, "{done:?}");
    let closed = PolicyState::Breaker(BreakerState::Closed);
    assert_eq!(
        until(WAIT, || breaker_state(&owner), |s| *s == closed).await,
        closed
    );
}
