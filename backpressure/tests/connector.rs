//! The connector API (`backpressure::connector`): a verdict mirrored from elsewhere, with a
//! probe source of the connector's own, is probed by the workers it holds here; a probe is
//! claimed on a local verdict on someone else's behalf. Paused time.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use backpressure::connector::ProbeSource;
use backpressure::policy::{Breaker, BreakerState, PolicyState};
use backpressure::{Coordinator, MaxDefer, Phase, RaiseOptions, Sink, WorkContext};
use tokio::time::sleep;

const MIRRORED: &str = "backpressure.smtp";
const KEY: &str = "other-process/mailer";

/// A source that hands out its probes only once told to (as a remote owner's grant would),
/// and records what came back.
#[derive(Debug, Default)]
struct Granted {
    left: AtomicUsize,
    asked: AtomicUsize,
    outcomes: Mutex<Vec<(u64, bool)>>,
    given_back: Mutex<Vec<u64>>,
}

impl ProbeSource for Granted {
    fn available(&self) -> bool {
        self.asked.fetch_add(1, Ordering::SeqCst);
        self.left.load(Ordering::SeqCst) > 0
    }
    fn claim(&self) -> Option<u64> {
        let left = self.left.load(Ordering::SeqCst);
        (left > 0).then(|| {
            self.left.store(left - 1, Ordering::SeqCst);
            left as u64
        })
    }
    fn finished(&self, ticket: u64, failed: bool, _elapsed: Duration) {
        self.outcomes.lock().unwrap().push((ticket, failed));
    }
    fn give_back(&self, ticket: u64) {
        self.given_back.lock().unwrap().push(ticket);
        self.left.fetch_add(1, Ordering::SeqCst);
    }
}

fn mirror(sink: &Sink, phase: Phase, source: Option<Arc<Granted>>) {
    let mut options = RaiseOptions::new().key(KEY).phase(phase);
    if let Some(source) = source {
        options = options.probe_source(source);
    }
    sink.raise_with(MIRRORED, options).unwrap();
}

fn held_worker(sink: &Sink, fail: bool) -> (Coordinator<()>, Arc<AtomicUsize>) {
    let runs = Arc::new(AtomicUsize::new(0));
    let counted = Arc::clone(&runs);
    let worker = Coordinator::builder()
        .sink(sink.clone())
        .name("newsletter")
        .defer_on("backpressure.*")
        .max_defer(MaxDefer::Never)
        .build(move |(): (), _: WorkContext| {
            counted.fetch_add(1, Ordering::SeqCst);
            async move {
                sleep(Duration::from_millis(10)).await;
                if fail {
                    Err("relay refused")
                } else {
                    Ok(())
                }
            }
        })
        .unwrap();
    (worker, runs)
}

#[tokio::test(start_paused = true)]
async fn a_mirrored_half_open_verdict_is_probed_once_its_source_grants_a_probe() {
    let sink = Sink::new();
    let source = Arc::new(Granted::default());
    mirror(&sink, Phase::HalfOpen, Some(Arc::clone(&source)));
    let (worker, runs) = held_worker(&sink, true);
    worker.enqueue_many(vec![(); 3]).await.unwrap();
    common::settle().await;
    assert_eq!(runs.load(Ordering::SeqCst), 0, "no probe granted yet");
    assert!(
        source.asked.load(Ordering::SeqCst) >= 1,
        "the held worker asked"
    );

    // The owner grants one: the connector says so, and exactly one item runs as the probe.
    source.left.store(1, Ordering::SeqCst);
    sink.probes_available(MIRRORED);
    sleep(Duration::from_millis(50)).await;
    common::settle().await;
    assert_eq!(runs.load(Ordering::SeqCst), 1);
    assert_eq!(*source.outcomes.lock().unwrap(), vec![(1, true)]);
    assert_eq!(worker.stats().queued, 2, "the others stay held");
}

#[tokio::test(start_paused = true)]
async fn a_mirrored_verdict_without_a_source_or_open_lets_nothing_pass() {
    let sink = Sink::new();
    let source = Arc::new(Granted::default());
    source.left.store(5, Ordering::SeqCst);
    // Open, with a source: the source is ignored (only half-open verdicts hand out probes).
    mirror(&sink, Phase::Open, Some(Arc::clone(&source)));
    let (worker, runs) = held_worker(&sink, false);
    worker.enqueue(()).await.unwrap();
    sleep(Duration::from_secs(60)).await;
    common::settle().await;
    assert_eq!(runs.load(Ordering::SeqCst), 0);
    assert!(sink.claim_probe(MIRRORED, Some(KEY)).is_none());
    // Half-open without a source: nobody could decide it.
    mirror(&sink, Phase::HalfOpen, None);
    sleep(Duration::from_secs(60)).await;
    common::settle().await;
    assert_eq!(runs.load(Ordering::SeqCst), 0);
    assert!(sink.claim_probe(MIRRORED, Some(KEY)).is_none());
}

#[tokio::test(start_paused = true)]
async fn a_probe_claimed_for_someone_else_decides_a_local_breaker_and_comes_back_if_dropped() {
    let sink = Sink::new();
    let owner = Coordinator::builder()
        .sink(sink.clone())
        .name("mailer")
        .defer_on("backpressure.*")
        .policy(
            Breaker::error_rate(MIRRORED)
                .consecutive_failures(1)
                .open_for(Duration::from_millis(200))
                .jitter(0.0)
                .probes(1),
        )
        .build(|(): (), _: WorkContext| async { Err::<(), _>("relay refused") })
        .unwrap();
    owner.enqueue(()).await.unwrap();
    common::settle().await;
    sleep(Duration::from_millis(250)).await;
    common::settle().await;
    let state = || owner.policies()[0].state;
    assert_eq!(state(), PolicyState::Breaker(BreakerState::HalfOpen));

    // A ticket dropped unused hands the probe back: it can be claimed again.
    let ticket = sink.claim_probe(MIRRORED, Some("mailer")).expect("a probe");
    assert!(
        sink.claim_probe(MIRRORED, Some("mailer")).is_none(),
        "only one"
    );
    drop(ticket);
    let ticket = sink
        .claim_probe(MIRRORED, Some("mailer"))
        .expect("given back");
    // Its success closes the owner's breaker, though the owner sent nothing.
    ticket.finish(false, Duration::from_millis(5));
    common::settle().await;
    assert_eq!(state(), PolicyState::Breaker(BreakerState::Closed));
    assert!(!sink.is_raised(MIRRORED));
}
