//! Who may probe a half-open verdict (DESIGN §6, "Probes and other verdicts"), under paused
//! time: a half-open holder probes past verdicts that are half-open too, never past an open
//! one or a plain signal; a holder with no policy of its own supplies the probe of an idle
//! owner; a skipped probe gives its probe back; `max_defer` never forces work past a
//! breaker's verdict.

mod common;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use backpressure::{
    policy::{Breaker, BreakerState, PolicyState},
    Coordinator, MaxDefer, Phase, RaiseOptions, SignalEventKind, Sink, Stats, WorkContext,
};
use futures_util::{FutureExt, StreamExt};
use tokio::time::{sleep, Instant};

/// How long one call to the downstream takes: a probe's duration.
const CALL: Duration = Duration::from_millis(10);
const OPEN_FOR: Duration = Duration::from_millis(200);

/// The downstream every worker calls: healthy or failing, and how many calls it saw while
/// any verdict was raised on the sink.
#[derive(Clone)]
struct Downstream {
    healthy: Arc<AtomicBool>,
    under_verdict: Arc<AtomicUsize>,
    sink: Sink,
}

impl Downstream {
    fn new(sink: &Sink) -> Self {
        Self {
            healthy: Arc::new(AtomicBool::new(false)),
            under_verdict: Arc::new(AtomicUsize::new(0)),
            sink: sink.clone(),
        }
    }

    fn recover(&self) {
        self.healthy.store(true, Ordering::SeqCst);
    }

    async fn call(&self) -> Result<(), &'static str> {
        if self.sink.snapshot().iter().any(|e| e.phase.is_some()) {
            self.under_verdict.fetch_add(1, Ordering::SeqCst);
        }
        sleep(CALL).await;
        if self.healthy.load(Ordering::SeqCst) {
            Ok(())
        } else {
            Err("relay refused")
        }
    }
}

/// A breaker on `signal` that opens on one failure, for `OPEN_FOR` (no jitter), with
/// `probes` probes.
fn breaker(signal: &str, probes: u32) -> Breaker {
    Breaker::error_rate(signal)
        .consecutive_failures(1)
        .open_for(OPEN_FOR)
        .jitter(0.0)
        .probes(probes)
        .ttl(Duration::from_secs(3))
}

/// A worker calling `downstream`, deferring on `backpressure.*`.
fn worker(
    sink: &Sink,
    name: &str,
    concurrency: usize,
    breaker: Option<Breaker>,
    downstream: &Downstream,
) -> Coordinator<()> {
    let downstream = downstream.clone();
    let mut builder = Coordinator::builder()
        .sink(sink.clone())
        .name(name)
        .concurrency(concurrency)
        .defer_on("backpressure.*")
        .cancel_on(format!("cancel.{name}"))
        .max_defer(MaxDefer::Never);
    if let Some(breaker) = breaker {
        builder = builder.policy(breaker);
    }
    builder
        .build(move |(): (), _: WorkContext| {
            let downstream = downstream.clone();
            async move { downstream.call().await }
        })
        .unwrap()
}

fn stats(worker: &Coordinator<()>) -> Stats {
    common::consistent(worker.stats())
}

fn state(worker: &Coordinator<()>) -> PolicyState {
    worker.policies()[0].state
}

const CLOSED: PolicyState = PolicyState::Breaker(BreakerState::Closed);
const OPEN: PolicyState = PolicyState::Breaker(BreakerState::Open);
const HALF_OPEN: PolicyState = PolicyState::Breaker(BreakerState::HalfOpen);

/// Two owners, each with its own breaker on `signals`, both deferring on `backpressure.*`:
/// both open on a failure, hold three items each, and the downstream recovers. Returns how
/// long after opening both had completed everything.
async fn two_owners_recover(signals: [&str; 2]) -> Duration {
    let sink = Sink::new();
    let downstream = Downstream::new(&sink);
    let a = worker(&sink, "a", 2, Some(breaker(signals[0], 1)), &downstream);
    let b = worker(&sink, "b", 2, Some(breaker(signals[1], 1)), &downstream);
    a.enqueue(()).await.unwrap();
    b.enqueue(()).await.unwrap();
    sleep(CALL).await;
    common::settle().await;
    let opened = Instant::now();
    assert_eq!((state(&a), state(&b)), (OPEN, OPEN));
    a.enqueue_many(vec![(); 3]).await.unwrap();
    b.enqueue_many(vec![(); 3]).await.unwrap();
    downstream.recover();

    sleep(OPEN_FOR / 2).await;
    assert_eq!((stats(&a).completed, stats(&b).completed), (0, 0));
    // Both go half-open at `OPEN_FOR`; one probe past both verdicts closes both.
    sleep(OPEN_FOR / 2 + CALL + CALL).await;
    common::settle().await;
    assert_eq!(
        (state(&a), state(&b)),
        (CLOSED, CLOSED),
        "{:?}",
        sink.snapshot()
    );
    let took = opened.elapsed();
    // The rest of the held items follow at once (two slots each).
    sleep(2 * CALL).await;
    common::settle().await;
    assert_eq!((stats(&a).completed, stats(&b).completed), (3, 3));
    assert!(sink.snapshot().is_empty());
    took
}

#[tokio::test(start_paused = true)]
async fn two_breakers_holding_each_other_recover_within_open_for_and_one_probe() {
    let took = two_owners_recover(["backpressure.a", "backpressure.b"]).await;
    assert!(took <= OPEN_FOR + 4 * CALL, "{took:?}");
}

#[tokio::test(start_paused = true)]
async fn two_breakers_on_one_signal_name_recover_within_open_for_and_one_probe() {
    let took = two_owners_recover(["backpressure.smtp", "backpressure.smtp"]).await;
    assert!(took <= OPEN_FOR + 4 * CALL, "{took:?}");
}

/// An owner whose breaker opened on one failure, and an idle peer without policies that
/// holds five items on the owner's verdict.
async fn idle_owner(
    probes: u32,
    peer_concurrency: usize,
) -> (Sink, Downstream, [Coordinator<()>; 2]) {
    let sink = Sink::new();
    let downstream = Downstream::new(&sink);
    let owner = worker(
        &sink,
        "owner",
        1,
        Some(breaker("backpressure.smtp", probes)),
        &downstream,
    );
    let peer = worker(&sink, "peer", peer_concurrency, None, &downstream);
    owner.enqueue(()).await.unwrap();
    sleep(CALL).await;
    common::settle().await;
    assert_eq!(state(&owner), OPEN);
    peer.enqueue_many(vec![(); 5]).await.unwrap();
    common::settle().await;
    assert_eq!(stats(&peer).queued, 5);
    (sink, downstream, [owner, peer])
}

#[tokio::test(start_paused = true)]
async fn a_held_peer_supplies_the_probe_of_an_idle_owner() {
    let (sink, downstream, [owner, peer]) = idle_owner(1, 1).await;
    downstream.recover();
    sleep(OPEN_FOR + CALL + CALL).await;
    common::settle().await;
    assert_eq!(state(&owner), CLOSED, "{:?}", sink.snapshot());
    assert!(!sink.is_raised("backpressure.smtp"));
    // The peer's first item was the probe; the rest follow at once.
    sleep(4 * CALL).await;
    common::settle().await;
    assert_eq!(stats(&peer).completed, 5);
}

#[tokio::test(start_paused = true)]
async fn a_peer_probe_into_a_failing_downstream_reopens_and_the_peer_stays_held() {
    let probes = 2;
    let (sink, _downstream, [owner, peer]) = idle_owner(probes, 4).await;
    sleep(OPEN_FOR + CALL + CALL).await;
    common::settle().await;
    assert_eq!(state(&owner), OPEN, "the probe failed: reopened");
    let peer_stats = stats(&peer);
    assert!(peer_stats.failed >= 1 && peer_stats.failed <= u64::from(probes));
    assert_eq!(peer_stats.active, 0);
    // Reopened for twice as long: nothing more starts meanwhile.
    sleep(2 * OPEN_FOR - 3 * CALL).await;
    common::settle().await;
    assert_eq!(
        stats(&peer).failed,
        peer_stats.failed,
        "the peer stays held"
    );
    assert_eq!(stats(&peer).queued, 5 - peer_stats.failed as usize);
    assert!(sink.is_raised("backpressure.smtp"));
}

#[tokio::test(start_paused = true)]
async fn an_owner_busy_again_during_half_open_shares_the_probes_and_recovery_completes() {
    let probes = 2;
    let (sink, downstream, [owner, peer]) = idle_owner(probes, 4).await;
    downstream.recover();
    let seen_before = downstream.under_verdict.load(Ordering::SeqCst);
    // Half-open at `OPEN_FOR`: the peer's slots take both probes at once; the owner gets
    // busy half a call later and finds none left.
    sleep(OPEN_FOR + CALL / 2).await;
    assert_eq!(state(&owner), HALF_OPEN);
    owner.enqueue_many(vec![(); 3]).await.unwrap();
    // The peer's probes end one call after half-open: closed then, not later.
    sleep(CALL / 2 + Duration::from_millis(1)).await;
    common::settle().await;
    assert_eq!(state(&owner), CLOSED, "{:?}", sink.snapshot());
    let probed = downstream.under_verdict.load(Ordering::SeqCst) - seen_before;
    assert_eq!(probed, probes as usize, "calls while the verdict was up");
    sleep(5 * CALL).await;
    common::settle().await;
    assert_eq!((stats(&owner).completed, stats(&peer).completed), (3, 5));
}

#[tokio::test(start_paused = true)]
async fn a_probe_skipped_by_cancel_on_gives_its_probe_back() {
    let sink = Sink::new();
    let downstream = Downstream::new(&sink);
    let owner = worker(
        &sink,
        "owner",
        1,
        Some(breaker("backpressure.smtp", 1)),
        &downstream,
    );
    owner.enqueue(()).await.unwrap();
    sleep(CALL).await;
    common::settle().await;
    assert_eq!(state(&owner), OPEN);
    downstream.recover();
    // Held while open, then skipped as it starts as the probe.
    let mut events = sink.subscribe();
    sink.raise("cancel.owner").unwrap();
    owner.enqueue(()).await.unwrap();
    sleep(OPEN_FOR).await;
    common::settle().await;
    assert_eq!(stats(&owner).skipped, 1);
    assert_eq!(state(&owner), HALF_OPEN);
    // Announced, for connectors to pass on to other processes.
    let returned = std::iter::from_fn(|| events.next().now_or_never().flatten())
        .filter_map(Result::ok)
        .find(|e| e.kind == SignalEventKind::ProbeReturned)
        .expect("a ProbeReturned event");
    assert_eq!(
        (&*returned.name, returned.key.as_deref(), returned.phase),
        ("backpressure.smtp", Some("owner"), Some(Phase::HalfOpen))
    );

    // The probe came back: the next item probes at once, and the breaker closes.
    sink.retract("cancel.owner").unwrap();
    owner.enqueue(()).await.unwrap();
    sleep(CALL + CALL).await;
    common::settle().await;
    assert_eq!(stats(&owner).completed, 1);
    assert_eq!(state(&owner), CLOSED);
}

#[tokio::test(start_paused = true)]
async fn a_peer_probe_skipped_by_cancel_on_lets_another_holder_probe_at_once() {
    let sink = Sink::new();
    let downstream = Downstream::new(&sink);
    let owner = worker(
        &sink,
        "owner",
        1,
        Some(breaker("backpressure.smtp", 1)),
        &downstream,
    );
    // Two idle peers hold one item each; the first one's items are skipped by `cancel_on`.
    let skipping = worker(&sink, "skipping", 1, None, &downstream);
    let peer = worker(&sink, "peer", 1, None, &downstream);
    owner.enqueue(()).await.unwrap();
    sleep(CALL).await;
    common::settle().await;
    assert_eq!(state(&owner), OPEN);
    downstream.recover();
    sink.raise("cancel.skipping").unwrap();
    skipping.enqueue(()).await.unwrap();
    peer.enqueue(()).await.unwrap();
    sleep(OPEN_FOR + CALL + CALL).await;
    common::settle().await;
    // Whichever peer took the one probe first, the other peer's item ran as the probe (the
    // skipped one gave it back) and closed the breaker.
    assert_eq!(stats(&skipping).skipped, 1);
    assert_eq!(stats(&peer).completed, 1);
    assert_eq!(state(&owner), CLOSED);
}

#[tokio::test(start_paused = true)]
async fn max_defer_does_not_force_items_past_a_breaker_verdict_but_past_a_plain_signal() {
    let sink = Sink::new();
    let downstream = Downstream::new(&sink);
    let build = |name: &str, policy: Option<Breaker>| {
        let downstream = downstream.clone();
        let mut builder = Coordinator::builder()
            .sink(sink.clone())
            .name(name)
            .defer_on("backpressure.*")
            .max_defer(MaxDefer::After(Duration::from_millis(50)));
        if let Some(policy) = policy {
            builder = builder.policy(policy);
        }
        builder
            .build(move |(): (), _: WorkContext| {
                let downstream = downstream.clone();
                async move { downstream.call().await }
            })
            .unwrap()
    };
    let owner = build(
        "owner",
        Some(breaker("backpressure.smtp", 1).open_for(Duration::from_secs(1))),
    );
    owner.enqueue(()).await.unwrap();
    sleep(CALL).await;
    common::settle().await;
    assert_eq!(state(&owner), OPEN);
    let peer = build("peer", None);
    owner.enqueue(()).await.unwrap();
    peer.enqueue(()).await.unwrap();
    sleep(Duration::from_millis(500)).await;
    common::settle().await;
    for worker in [&owner, &peer] {
        let stats = stats(worker);
        assert_eq!((stats.queued, stats.defer_timeouts), (1, 0), "{stats:?}");
    }

    // A plain signal is still subject to `max_defer`.
    let plain = Sink::new();
    let held = Coordinator::builder()
        .sink(plain.clone())
        .defer_on("backpressure.*")
        .max_defer(MaxDefer::After(Duration::from_millis(50)))
        .build(|(): (), _: WorkContext| async {})
        .unwrap();
    plain.raise("backpressure.maintenance").unwrap();
    held.enqueue(()).await.unwrap();
    sleep(Duration::from_millis(100)).await;
    common::settle().await;
    let stats = stats(&held);
    assert_eq!((stats.completed, stats.defer_timeouts), (1, 1), "{stats:?}");
}

#[tokio::test(start_paused = true)]
async fn verdicts_show_their_phase_and_a_phase_change_is_an_event() {
    use futures_util::StreamExt;
    let sink = Sink::new();
    let mut events = sink.subscribe();
    let verdict = |phase| RaiseOptions::new().key("owner").phase(phase);
    sink.raise_with("backpressure.smtp", verdict(Phase::Open))
        .unwrap();
    sink.raise_with("backpressure.smtp", verdict(Phase::Open))
        .unwrap();
    sink.raise_with("backpressure.smtp", verdict(Phase::HalfOpen))
        .unwrap();
    sink.raise("backpressure.plain").unwrap();
    let phases: Vec<_> = sink.snapshot().iter().map(|e| e.phase).collect();
    assert_eq!(phases, [None, Some(Phase::HalfOpen)]);
    let mut seen = Vec::new();
    for _ in 0..3 {
        let event = events.next().await.unwrap().unwrap();
        seen.push((event.kind, event.phase));
    }
    use backpressure::SignalEventKind::{LevelChanged, Raised};
    assert_eq!(
        seen,
        [
            (Raised, Some(Phase::Open)),
            (LevelChanged, Some(Phase::HalfOpen)),
            (Raised, None)
        ]
    );
}
