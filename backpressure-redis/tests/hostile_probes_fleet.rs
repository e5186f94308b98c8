//! Hostile tests of probes across processes, the fleet's side (DESIGN §6 "Probes and other
//! verdicts"): whatever the schedule, the whole fleet starts at most the breaker's `probes`
//! items per half-open period; a verdict flapping open → half-open → open leaves nobody
//! asking forever; two owners of breakers on one signal, each held by the other's verdict,
//! recover together once the downstream is healthy.
//!
//! Each "process" is a sink with its own bridge and instance on one real redis-server
//! (skipped without one). `probe_timeout` is long (a minute) wherever a test checks
//! liveness, so a recovery that only a probe timeout would bring fails the test instead of
//! passing late.

mod common;
mod hostile_probes_kit;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use backpressure::policy::BreakerState;
use backpressure::{Coordinator, Phase, Sink};
use backpressure_redis::Bridge;
use common::{redis, until, RedisServer};
use hostile_probes_kit::*;
use tokio::sync::mpsc;

/// Long enough that no test here can pass through a probe timeout.
const NO_TIMEOUT: Duration = Duration::from_secs(60);
/// How long the fleet is watched for a start it must not make.
const QUIET: Duration = Duration::from_millis(500);

/// An owner and `peers` peer processes on `namespace`.
struct Fleet {
    owner: Coordinator<()>,
    failing: Arc<AtomicBool>,
    owner_sink: Sink,
    sinks: Vec<Sink>,
    peers: Vec<Coordinator<()>>,
    _bridges: Vec<Bridge>,
}

async fn fleet(
    server: &RedisServer,
    namespace: &str,
    probes: u32,
    concurrency: &[usize],
    starts: &Starts,
) -> Fleet {
    let (owner_sink, owner_bridge) = process(&server.url(), namespace, "owner-process").await;
    let failing = Arc::new(AtomicBool::new(false));
    let owner = owner(&owner_sink, breaker(probes, NO_TIMEOUT), &failing);
    let mut bridges = vec![owner_bridge];
    let (mut sinks, mut peers) = (Vec::new(), Vec::new());
    for (index, concurrency) in concurrency.iter().enumerate() {
        let (sink, bridge) = process(&server.url(), namespace, &format!("peer-{index}")).await;
        peers.push(peer(&sink, index, *concurrency, starts));
        sinks.push(sink);
        bridges.push(bridge);
    }
    Fleet {
        owner,
        failing,
        owner_sink,
        sinks,
        peers,
        _bridges: bridges,
    }
}

impl Fleet {
    async fn open(&self) {
        let sinks: Vec<&Sink> = self.sinks.iter().collect();
        open_the_breaker(&self.owner, &self.failing, &sinks).await;
    }

    fn peer_refs(&self) -> Vec<&Coordinator<()>> {
        self.peers.iter().collect()
    }
}

/// Collects one half-open period's probes: the `expected` ones (each within [`WAIT`]),
/// then any more within [`QUIET`] (which is the bug this looks for).
async fn one_period(starts: &mut mpsc::UnboundedReceiver<Start>, expected: usize) -> Vec<Start> {
    let mut period = Vec::new();
    while period.len() < expected {
        match next_start(starts, WAIT).await {
            Some(start) => period.push(start),
            None => break,
        }
    }
    period.extend(starts_within(starts, QUIET).await);
    period
}

/// Answers a period's probes with success one at a time; after each but the last, nothing
/// new may start (the breaker's `started` count does not go down on a success).
async fn succeed_one_by_one(
    starts: &mut mpsc::UnboundedReceiver<Start>,
    period: Vec<Start>,
    seed: u64,
) {
    let last = period.len();
    for (i, start) in period.into_iter().enumerate() {
        start.succeed();
        if i + 1 < last {
            let extra = next_start(starts, Duration::from_millis(200)).await;
            assert!(
                extra.is_none(),
                "seed {seed}: a probe started after {} of {last} successes: {extra:?}",
                i + 1
            );
        }
    }
}

/// One random schedule: 3–5 peers of random concurrency, `probes` 1 or 3, items enqueued
/// at random moments while the verdict is open and half-open, random probe outcomes for
/// two periods, then success.
async fn random_schedule(server: &RedisServer, seed: u64) {
    let mut rng = Rng::new(seed);
    let peers = 3 + rng.below(3) as usize;
    let probes = [1, 3][rng.below(2) as usize];
    let concurrency: Vec<usize> = (0..peers).map(|_| 1 + rng.below(3) as usize).collect();
    let (tx, mut starts) = mpsc::unbounded_channel();
    let namespace = format!("hp-fleet-{seed}");
    let fleet = fleet(server, &namespace, probes, &concurrency, &tx).await;
    fleet.open().await;
    let plan: Vec<(usize, u64)> = (0..peers * 3)
        .map(|_| (rng.below(peers as u64) as usize, rng.below(60)))
        .collect();
    let total = plan.len() as u64;
    let producers: Vec<Coordinator<()>> = fleet.peers.clone();
    tokio::spawn(async move {
        for (peer, delay_ms) in plan {
            tokio::time::sleep(Duration::from_millis(delay_ms)).await;
            producers[peer].enqueue(()).await.unwrap();
        }
    });
    let (mut begun, mut failed) = (0u64, 0u64);
    for cycle in 0.. {
        let expected = (probes as u64).min(total - begun) as usize;
        let mut period = one_period(&mut starts, expected).await;
        begun += period.len() as u64;
        assert!(
            period.len() <= probes as usize,
            "seed {seed} ({peers} peers, probes {probes}), period {cycle}: {} probes \
             started in the fleet: {:?}",
            period.len(),
            period.iter().map(|s| s.peer).collect::<Vec<_>>()
        );
        assert_eq!(
            period.len(),
            expected,
            "seed {seed}: period {cycle} starved"
        );
        if cycle < 2 && rng.below(2) == 0 {
            let failing = period.swap_remove(rng.below(period.len() as u64) as usize);
            failing.fail();
            failed += 1;
            reaches(&fleet.owner, BreakerState::Open, "a failed probe reopens").await;
            period.into_iter().for_each(Start::succeed); // of an ended period: ignored
            continue;
        }
        succeed_one_by_one(&mut starts, period, seed).await;
        reaches(&fleet.owner, BreakerState::Closed, "the probes closed it").await;
        break;
    }
    let done = complete_all(&mut starts, &fleet.peer_refs(), total - failed).await;
    assert_eq!(
        done,
        total - failed,
        "seed {seed}: every held item ran once closed"
    );
    assert!(!fleet.owner_sink.is_raised(SIGNAL));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_fleet_starts_at_most_probes_per_half_open_period_over_random_schedules() {
    let Some(server) = redis("the_fleet_starts_at_most_probes_per_half_open_period") else {
        return;
    };
    for seed in [11, 23, 42] {
        random_schedule(&server, seed).await;
    }
}

/// `probes(3)` with five single-slot peers, all held before the verdict half-opens: exactly
/// three start, the other two are denied until the period ends.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_probes_among_five_peers_start_exactly_three() {
    let Some(server) = redis("three_probes_among_five_peers_start_exactly_three") else {
        return;
    };
    let (tx, mut starts) = mpsc::unbounded_channel();
    let fleet = fleet(&server, "hp-five", 3, &[1; 5], &tx).await;
    fleet.open().await;
    for peer in &fleet.peers {
        peer.enqueue_many(vec![(); 2]).await.unwrap();
    }
    let period = one_period(&mut starts, 3).await;
    assert_eq!(period.len(), 3, "{:?}", period);
    succeed_one_by_one(&mut starts, period, 0).await;
    reaches(
        &fleet.owner,
        BreakerState::Closed,
        "three successes close it",
    )
    .await;
    assert_eq!(complete_all(&mut starts, &fleet.peer_refs(), 10).await, 10);
}

/// The owner's own items fail at once on every half-open period while a peer's claim may
/// be in flight: open → half-open → open, fast. Once the downstream recovers, everyone
/// completes (no claim of an ended period keeps a peer asking).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flapping_verdict_leaves_no_peer_asking_forever() {
    let Some(server) = redis("a_flapping_verdict_leaves_no_peer_asking_forever") else {
        return;
    };
    let (tx, mut starts) = mpsc::unbounded_channel();
    let fleet = fleet(&server, "hp-flap", 1, &[1, 2, 1], &tx).await;
    fleet.open().await;
    fleet.failing.store(true, Ordering::SeqCst);
    fleet.owner.enqueue_many(vec![(); 6]).await.unwrap();
    for peer in &fleet.peers {
        peer.enqueue_many(vec![(); 2]).await.unwrap();
    }
    // Four half-open periods: the owner's items and the peers' probes all fail.
    let flapping = {
        let starts = std::sync::Mutex::new(&mut starts);
        let fail_all = || {
            while let Ok(start) = starts.lock().unwrap().try_recv() {
                start.fail();
            }
            fleet.owner.stats().failed
        };
        until(WAIT, fail_all, |failures| *failures >= 4).await
    };
    assert!(flapping >= 4, "the verdict flapped: {flapping}");
    fleet.failing.store(false, Ordering::SeqCst);
    let total = 6;
    let done = complete_all(&mut starts, &fleet.peer_refs(), total).await;
    let stats: Vec<_> = fleet.peers.iter().map(Coordinator::stats).collect();
    let peer_failed: u64 = stats.iter().map(|s| s.failed).sum();
    assert_eq!(
        done + peer_failed,
        total,
        "every peer item ran (failed in the storm or completed after): {stats:?}, owner {:?}",
        state(&fleet.owner)
    );
    let owner_done = until(WAIT, || fleet.owner.stats(), |s| s.queued == 0).await;
    assert_eq!(owner_done.queued, 0, "{owner_done:?}");
}

/// One round of crossing verdicts on `namespace`: whether both workers completed their
/// held items within `recovery` of both breakers opening, with what was seen if not.
async fn crossing_round(server: &RedisServer, namespace: &str) -> Result<(), String> {
    let (a_sink, _a) = process(&server.url(), namespace, "process-a").await;
    let (b_sink, _b) = process(&server.url(), namespace, "process-b").await;
    let failing = Arc::new(AtomicBool::new(true));
    let a = owner(&a_sink, breaker(1, NO_TIMEOUT), &failing);
    let b = owner(&b_sink, breaker(1, NO_TIMEOUT), &failing);
    a.enqueue(()).await.unwrap();
    b.enqueue(()).await.unwrap();
    reaches(&a, BreakerState::Open, "A opens").await;
    reaches(&b, BreakerState::Open, "B opens").await;
    failing.store(false, Ordering::SeqCst);
    assert!(mirrors(&a_sink, Phase::Open).await && mirrors(&b_sink, Phase::Open).await);
    a.enqueue_many(vec![(); 3]).await.unwrap();
    b.enqueue_many(vec![(); 3]).await.unwrap();
    let recovery = Duration::from_secs(3);
    let done = until(
        recovery,
        || (a.stats().completed, b.stats().completed),
        |(a, b)| *a == 3 && *b == 3,
    )
    .await;
    if done == (3, 3) {
        return Ok(());
    }
    Err(format!(
        "{namespace}: not recovered within {recovery:?} with the downstream healthy: \
         A {:?} {:?}, B {:?} {:?}",
        state(&a),
        a.stats(),
        state(&b),
        b.stats()
    ))
}

/// Two processes each own a breaker on the same signal (`probes(1)`), each worker held by
/// its own verdict and the other's. Both go half-open together; the downstream is healthy.
/// Each worker needs a probe of both verdicts: when each lends its only probe to the other
/// before using it, both wait on a loan neither can use, until `probe_timeout` (here a
/// minute; 30 s by default). A race: about half the rounds hit it, so six are run.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crossing_verdicts_of_two_processes_recover_without_a_probe_timeout() {
    let Some(server) = redis("crossing_verdicts_of_two_processes_recover") else {
        return;
    };
    for round in 0..6 {
        let namespace = format!("hp-cross-{round}");
        if let Err(stalled) = crossing_round(&server, &namespace).await {
            panic!("round {round}: {stalled}");
        }
    }
}
