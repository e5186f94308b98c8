//! Shared pieces of the hostile probe suites (`hostile_probes_*.rs`): a "process" (a sink
//! with its own bridge and instance), a breaker owner, peers whose every started item is
//! reported to the test and waits for the test's verdict, and waits on breaker states and
//! mirrored phases. Included by each suite with `mod hostile_probes_kit;` next to `mod common;`.
#![allow(dead_code, unreachable_pub)]

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use backpressure::policy::{Breaker, BreakerState, PolicyState};
use backpressure::{Coordinator, MaxDefer, Phase, Sink, Stats, WorkContext};
use backpressure_redis::{connect, Bridge, Config, Status};
use tokio::sync::{mpsc, oneshot};

use crate::common::{until, wait_until};

/// The upper bound of every real-time wait (a failure message says what was waited for).
pub const WAIT: Duration = Duration::from_secs(30);
/// The breaker's signal; every worker defers on `backpressure.*`.
pub const SIGNAL: &str = "backpressure.smtp";
/// Short, so a test sees several half-open periods.
pub const OPEN_FOR: Duration = Duration::from_millis(300);
/// The lease of every bridge (short, so lapses are quick).
pub const LEASE: Duration = Duration::from_secs(2);

/// A bridge config for `instance` in `namespace` at `url`.
pub fn config(url: &str, namespace: &str, instance: &str) -> Config {
    Config::new(url)
        .namespace(namespace)
        .instance(instance)
        .lease(LEASE)
        .reconnect_max_delay(Duration::from_millis(200))
}

/// A sink with its own bridge, synced.
pub async fn process(url: &str, namespace: &str, instance: &str) -> (Sink, Bridge) {
    let sink = Sink::new();
    let bridge = connect(sink.clone(), config(url, namespace, instance))
        .await
        .expect("connect");
    assert_eq!(bridge.status(), Status::Synced);
    (sink, bridge)
}

/// A breaker that opens on one failure, half-opens after [`OPEN_FOR`] (no jitter).
pub fn breaker(probes: u32, probe_timeout: Duration) -> Breaker {
    Breaker::error_rate(SIGNAL)
        .consecutive_failures(1)
        .open_for(OPEN_FOR)
        .max_open_for(OPEN_FOR * 4)
        .jitter(0.0)
        .probes(probes)
        .probe_timeout(probe_timeout)
        .ttl(Duration::from_secs(3))
}

/// The breaker's owner: its items fail while `failing` is set.
pub fn owner(sink: &Sink, breaker: Breaker, failing: &Arc<AtomicBool>) -> Coordinator<()> {
    let failing = Arc::clone(failing);
    Coordinator::builder()
        .sink(sink.clone())
        .name("owner")
        .concurrency(2)
        .defer_on("backpressure.*")
        .max_defer(MaxDefer::Never)
        .policy(breaker)
        .build(move |(): (), _ctx: WorkContext| {
            let failing = failing.load(Ordering::SeqCst);
            async move {
                if failing {
                    Err("relay refused".to_owned())
                } else {
                    Ok(())
                }
            }
        })
        .unwrap()
}

/// One item started somewhere in the fleet; it runs until the test answers it (or the
/// test drops it: a success).
#[derive(Debug)]
pub struct Start {
    /// Which peer started it.
    pub peer: usize,
    answer: oneshot::Sender<bool>,
}

impl Start {
    /// The item succeeds.
    pub fn succeed(self) {
        let _ = self.answer.send(false);
    }

    /// The item fails.
    pub fn fail(self) {
        let _ = self.answer.send(true);
    }
}

/// Where the peers report their starts.
pub type Starts = mpsc::UnboundedSender<Start>;

/// A peer worker (no policy) deferring on `backpressure.*` whose every item reports its
/// start on `starts` and waits for the test's answer (cut short by shutdown: a success).
pub fn peer(sink: &Sink, index: usize, concurrency: usize, starts: &Starts) -> Coordinator<()> {
    let starts = starts.clone();
    Coordinator::builder()
        .sink(sink.clone())
        .name("peer")
        .concurrency(concurrency)
        .defer_on("backpressure.*")
        .max_defer(MaxDefer::Never)
        .build(move |(): (), ctx: WorkContext| {
            let (answer, verdict) = oneshot::channel();
            let _ = starts.send(Start {
                peer: index,
                answer,
            });
            async move {
                let failed = tokio::select! {
                    v = verdict => v.unwrap_or(false),
                    () = ctx.cancellation_token().cancelled() => false,
                };
                if failed {
                    Err("relay refused".to_owned())
                } else {
                    Ok(())
                }
            }
        })
        .unwrap()
}

/// The breaker state of `owner`'s only policy.
pub fn state(owner: &Coordinator<()>) -> PolicyState {
    owner.policies()[0].state
}

/// Waits until `owner`'s breaker is in `want`; asserts it got there.
pub async fn reaches(owner: &Coordinator<()>, want: BreakerState, what: &str) {
    let want = PolicyState::Breaker(want);
    let seen = until(WAIT, || state(owner), |s| *s == want).await;
    assert_eq!(seen, want, "{what}");
}

/// Whether `sink` mirrors some verdict on [`SIGNAL`] in `phase` within [`WAIT`].
pub async fn mirrors(sink: &Sink, phase: Phase) -> bool {
    wait_until(sink, WAIT, |s| {
        s.snapshot()
            .iter()
            .any(|e| &*e.name == SIGNAL && e.phase == Some(phase))
    })
    .await
}

/// Opens `owner`'s breaker with one failed call and waits until every sink of `peers` holds
/// its open verdict; the downstream is healthy again afterwards.
pub async fn open_the_breaker(owner: &Coordinator<()>, failing: &AtomicBool, peers: &[&Sink]) {
    failing.store(true, Ordering::SeqCst);
    owner.enqueue(()).await.unwrap();
    reaches(owner, BreakerState::Open, "one failure opens the breaker").await;
    failing.store(false, Ordering::SeqCst);
    for sink in peers {
        assert!(
            mirrors(sink, Phase::Open).await,
            "the open verdict reached a peer"
        );
    }
}

/// Items started (running or done).
pub fn started(stats: &Stats) -> u64 {
    stats.completed + stats.failed + stats.panicked + stats.active as u64
}

/// The next start within `window`, if any.
pub async fn next_start(
    starts: &mut mpsc::UnboundedReceiver<Start>,
    window: Duration,
) -> Option<Start> {
    tokio::time::timeout(window, starts.recv()).await.ok()?
}

/// Every start that arrives within `window` of the previous one.
pub async fn starts_within(
    starts: &mut mpsc::UnboundedReceiver<Start>,
    window: Duration,
) -> Vec<Start> {
    let mut seen = Vec::new();
    while let Some(start) = next_start(starts, window).await {
        seen.push(start);
    }
    seen
}

/// Answers every start with success until each coordinator of `peers` has completed
/// `total` items between them, at most [`WAIT`]; returns the items completed.
pub async fn complete_all(
    starts: &mut mpsc::UnboundedReceiver<Start>,
    peers: &[&Coordinator<()>],
    total: u64,
) -> u64 {
    let deadline = tokio::time::Instant::now() + WAIT;
    let done = || peers.iter().map(|p| p.stats().completed).sum::<u64>();
    while done() < total && tokio::time::Instant::now() < deadline {
        if let Some(start) = next_start(starts, Duration::from_millis(50)).await {
            start.succeed();
        }
    }
    done()
}

/// A tiny deterministic generator for the random schedules (xorshift64*).
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Self(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    pub fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) % n
    }
}

/// The probe channel of `namespace` (the crate's wire format: `bp:{ns}:probes`).
pub fn probe_channel(namespace: &str) -> String {
    format!("bp:{{{namespace}}}:probes")
}

/// Publishes `payload` on the probe channel of `namespace`, as anyone with access could.
pub fn publish_probe(url: &str, namespace: &str, payload: &[u8]) {
    let mut raw = redis::Client::open(url).unwrap().get_connection().unwrap();
    redis::cmd("PUBLISH")
        .arg(probe_channel(namespace))
        .arg(payload)
        .query::<i64>(&mut raw)
        .expect("publish");
}

/// Every message on the probe channel of a namespace, as a test sees it (a subscriber of
/// its own, on a thread; subscribed when [`Tap::new`] returns).
pub struct Tap {
    messages: mpsc::UnboundedReceiver<String>,
}

impl Tap {
    pub fn new(url: &str, namespace: &str) -> Self {
        let (tx, messages) = mpsc::unbounded_channel();
        let (ready_tx, ready) = std::sync::mpsc::channel();
        let (url, channel) = (url.to_owned(), probe_channel(namespace));
        std::thread::spawn(move || {
            let mut con = redis::Client::open(url).unwrap().get_connection().unwrap();
            let mut pubsub = con.as_pubsub();
            pubsub.subscribe(&channel).expect("subscribe");
            let _ = ready_tx.send(());
            // Ends when the server goes away or the test is over.
            while let Ok(message) = pubsub.get_message() {
                let payload: Vec<u8> = message.get_payload_bytes().to_vec();
                if tx
                    .send(String::from_utf8_lossy(&payload).into_owned())
                    .is_err()
                {
                    return;
                }
            }
        });
        ready
            .recv_timeout(Duration::from_secs(10))
            .expect("the tap subscribed");
        Self { messages }
    }

    /// Waits for a message whose op (second field) is `op`, at most [`WAIT`].
    pub async fn next_op(&mut self, op: &str) -> Option<String> {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let message = tokio::time::timeout_at(deadline, self.messages.recv())
                .await
                .ok()??;
            if message.split('|').nth(1) == Some(op) {
                return Some(message);
            }
        }
    }

    /// Every message received so far.
    pub fn drain(&mut self) -> Vec<String> {
        let mut seen = Vec::new();
        while let Ok(message) = self.messages.try_recv() {
            seen.push(message);
        }
        seen
    }
}
