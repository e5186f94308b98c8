//! Property test of verdicts over random schedules, under paused time: 2–4 workers (some
//! owning a breaker on one of two shared names, capacities from 1, with or without
//! `max_defer`), all deferring on `backpressure.*`, driven by a random mix of enqueues
//! (asking a flaky downstream, failing, panicking, slow calls that may run past
//! `probe_timeout`), a plain signal raised and retracted on top of the verdicts, `cancel_on`
//! skips, the downstream's health flipping, drains and shutdowns mid-verdict.
//!
//! Checked: (a) once the plain signal and the skips are gone and the downstream is healthy,
//! every worker empties within a bound; (b) at most `probes` items run as probes (started
//! while the verdict is half-open, not given back) per half-open period of a verdict, across
//! all holders; (c) when `drain()` or `shutdown()` returns, the owner's verdict is gone;
//! (d) every stats snapshot is consistent; (e) every accepted item is run, skipped or handed
//! back exactly once.

mod common;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use backpressure::{
    policy::Breaker, Coordinator, MaxDefer, Phase, SignalEventKind, Sink, Subscription, WorkContext,
};
use futures_util::{FutureExt, StreamExt};
use proptest::prelude::*;
use proptest::test_runner::{Config, RngSeed};
use tokio::time::sleep;

const CALL: Duration = Duration::from_millis(10);
const MAX_OPEN_FOR: Duration = Duration::from_millis(800);
const PROBE_TIMEOUT: Duration = Duration::from_millis(30);
const PLAIN: &str = "backpressure.plain";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Call {
    Ask,
    Fail,
    Panic,
    /// Five calls long: past `probe_timeout`.
    Slow,
}

type Item = (u64, Call);

#[derive(Debug, Clone)]
struct Spec {
    /// The breaker's signal (0 or 1), `open_for` in ms and probes; `None` for a peer.
    breaker: Option<(u8, u64, u32)>,
    concurrency: usize,
    capacity: usize,
    max_defer: bool,
}

#[derive(Debug, Clone)]
enum Op {
    Enqueue(usize, Call, usize),
    Plain(bool),
    Cancel(usize, bool),
    Healthy(bool),
    Wait(u64),
    Drain(usize),
    Shutdown(usize),
}

/// What the handlers and the sink's events tell, in one order.
#[derive(Debug, Clone)]
enum Rec {
    /// The verdict keyed `key` changed phase (`half_open`, or not).
    Phase { key: Arc<str>, half_open: bool },
    /// Item `id` started while the verdicts keyed `keys` were half-open: their probe.
    Start { id: u64, keys: Vec<Arc<str>> },
    /// Item `id` ended cut short by its worker's shutdown: its probes went back.
    GivenBack { id: u64 },
}

/// Shared by the handlers and the test.
struct Recorder {
    sink: Sink,
    events: Mutex<Subscription>,
    recs: Mutex<Vec<Rec>>,
    ran: Mutex<Vec<u64>>,
    skipped: Mutex<Vec<u64>>,
    violations: Mutex<Vec<String>>,
    healthy: AtomicBool,
}

impl Recorder {
    fn new(sink: &Sink) -> Arc<Self> {
        Arc::new(Self {
            sink: sink.clone(),
            events: Mutex::new(sink.subscribe()),
            recs: Mutex::default(),
            ran: Mutex::default(),
            skipped: Mutex::default(),
            violations: Mutex::default(),
            healthy: AtomicBool::new(false),
        })
    }

    fn violation(&self, what: String) {
        self.violations.lock().unwrap().push(what);
    }

    /// Moves every event already sent into the record (they are sent as transitions happen).
    fn pump(&self) {
        let mut events = self.events.lock().unwrap();
        while let Some(Some(event)) = events.next().now_or_never() {
            let event = match event {
                Ok(event) => event,
                Err(lagged) => return self.violation(format!("{lagged}")),
            };
            let Some(key) = event.key.clone() else {
                continue;
            };
            // A policy change, or a probe handed back, leaves the entry as it is.
            if matches!(
                event.kind,
                SignalEventKind::PolicyChanged | SignalEventKind::ProbeReturned
            ) || !event.name.starts_with("backpressure.s")
            {
                continue;
            }
            let live = matches!(
                event.kind,
                SignalEventKind::Raised | SignalEventKind::LevelChanged
            );
            let half_open = live && event.phase == Some(Phase::HalfOpen);
            self.recs
                .lock()
                .unwrap()
                .push(Rec::Phase { key, half_open });
        }
    }

    /// Item `id` starts: called by the handler before its first `await`, so in the same poll
    /// as the slot's decision.
    fn started(&self, id: u64) {
        self.pump();
        self.ran.lock().unwrap().push(id);
        let keys = self
            .sink
            .snapshot()
            .into_iter()
            .filter(|entry| entry.phase == Some(Phase::HalfOpen))
            .filter_map(|entry| entry.key)
            .collect();
        self.recs.lock().unwrap().push(Rec::Start { id, keys });
    }

    /// A verdict keyed `key` is still raised: a violation of "a verdict ends with its owner".
    fn check_gone(&self, key: &str, after: &str) {
        let left: Vec<_> = self
            .sink
            .snapshot()
            .into_iter()
            .filter(|entry| entry.key.as_deref() == Some(key))
            .collect();
        if !left.is_empty() {
            self.violation(format!("{key}'s verdict outlived {after}: {left:?}"));
        }
    }
}

/// Records, when the handler's future ends (returns, panics or is dropped), whether the
/// item's worker cut it short.
struct Ending {
    recorder: Arc<Recorder>,
    id: u64,
    token: tokio_util::sync::CancellationToken,
}

impl Drop for Ending {
    fn drop(&mut self) {
        if self.token.is_cancelled() {
            let id = self.id;
            self.recorder
                .recs
                .lock()
                .unwrap()
                .push(Rec::GivenBack { id });
        }
    }
}

async fn call(call: Call, healthy: bool) -> Result<(), &'static str> {
    match call {
        Call::Slow => sleep(5 * CALL).await,
        _ => sleep(CALL).await,
    }
    match call {
        Call::Panic => panic!("injected probe panic"),
        Call::Fail => Err("refused"),
        _ if healthy => Ok(()),
        _ => Err("unhealthy"),
    }
}

fn build(i: usize, spec: &Spec, sink: &Sink, recorder: &Arc<Recorder>) -> Coordinator<Item> {
    let mut builder = Coordinator::builder()
        .sink(sink.clone())
        .name(format!("w{i}"))
        .concurrency(spec.concurrency)
        .capacity(spec.capacity)
        .defer_on("backpressure.*")
        .cancel_on(format!("cancel.w{i}"))
        .max_defer(if spec.max_defer {
            MaxDefer::After(Duration::from_millis(50))
        } else {
            MaxDefer::Never
        });
    if let Some((signal, open_for, probes)) = spec.breaker {
        builder = builder.policy(
            Breaker::error_rate(format!("backpressure.s{signal}"))
                .consecutive_failures(1)
                .open_for(Duration::from_millis(open_for))
                .max_open_for(MAX_OPEN_FOR)
                .probe_timeout(PROBE_TIMEOUT)
                .jitter(0.0)
                .probes(probes)
                .ttl(Duration::from_secs(3)),
        );
    }
    let skips = Arc::clone(recorder);
    let recorder = Arc::clone(recorder);
    builder
        .on_skip(move |(id, _): Item| skips.skipped.lock().unwrap().push(id))
        .build(move |(id, kind): Item, ctx: WorkContext| {
            recorder.started(id);
            let ending = Ending {
                recorder: Arc::clone(&recorder),
                id,
                token: ctx.cancellation_token().clone(),
            };
            let healthy = recorder.healthy.load(Ordering::SeqCst);
            async move {
                let _ending = ending;
                call(kind, healthy).await
            }
        })
        .unwrap()
}

/// The world one schedule runs in.
struct World {
    sink: Sink,
    specs: Vec<Spec>,
    workers: Vec<Coordinator<Item>>,
    recorder: Arc<Recorder>,
    /// Items accepted by `try_enqueue`, and those `shutdown` handed back.
    accepted: Vec<u64>,
    returned: Vec<u64>,
    shut_down: Vec<bool>,
    next_id: u64,
}

impl World {
    fn new(specs: Vec<Spec>) -> Self {
        let sink = Sink::new();
        let recorder = Recorder::new(&sink);
        let workers = specs
            .iter()
            .enumerate()
            .map(|(i, spec)| build(i, spec, &sink, &recorder))
            .collect();
        Self {
            shut_down: vec![false; specs.len()],
            sink,
            specs,
            workers,
            recorder,
            accepted: Vec::new(),
            returned: Vec::new(),
            next_id: 0,
        }
    }

    async fn apply(&mut self, op: &Op) {
        let n = self.workers.len();
        match *op {
            Op::Enqueue(i, kind, count) => {
                for _ in 0..count {
                    let id = self.next_id;
                    self.next_id += 1;
                    if self.workers[i % n].try_enqueue((id, kind)).is_ok() {
                        self.accepted.push(id);
                    }
                }
            }
            Op::Plain(true) => self.sink.raise(PLAIN).unwrap(),
            Op::Plain(false) => drop(self.sink.retract(PLAIN).unwrap()),
            Op::Cancel(i, true) => self.sink.raise(&format!("cancel.w{}", i % n)).unwrap(),
            Op::Cancel(i, false) => drop(self.sink.retract(&format!("cancel.w{}", i % n))),
            Op::Healthy(healthy) => self.recorder.healthy.store(healthy, Ordering::SeqCst),
            Op::Wait(ms) => sleep(Duration::from_millis(ms)).await,
            Op::Drain(i) => {
                let (worker, recorder) = (self.workers[i % n].clone(), Arc::clone(&self.recorder));
                tokio::spawn(async move {
                    worker.drain().await;
                    recorder.check_gone(&format!("w{}", i % n), "drain()");
                });
            }
            Op::Shutdown(i) => {
                let returned = self.workers[i % n].shutdown().await;
                self.recorder
                    .check_gone(&format!("w{}", i % n), "shutdown()");
                self.returned.extend(returned.into_iter().map(|(id, _)| id));
                self.shut_down[i % n] = true;
            }
        }
        self.recorder.pump();
        for worker in &self.workers {
            let stats = worker.stats();
            if !stats.is_consistent() {
                self.recorder
                    .violation(format!("inconsistent after {op:?}: {stats:?}"));
            }
        }
    }

    /// (a): everything held is released, the downstream is healthy; every worker empties
    /// within a bound of reopened periods (each queued failing item may reopen once).
    async fn settle_down(&self) -> Result<(), TestCaseError> {
        self.sink.retract(PLAIN).unwrap();
        self.sink.retract_matching("cancel.*").unwrap();
        self.recorder.healthy.store(true, Ordering::SeqCst);
        let failing = self.accepted.len() as u32;
        let bound = (failing + 2) * (MAX_OPEN_FOR + PROBE_TIMEOUT + 10 * CALL);
        let start = tokio::time::Instant::now();
        while start.elapsed() < bound {
            let busy = self.workers.iter().any(|w| {
                let stats = w.stats();
                stats.queued + stats.active > 0
            });
            if !busy {
                return Ok(());
            }
            sleep(CALL).await;
        }
        let stats: Vec<_> = self.workers.iter().map(Coordinator::stats).collect();
        Err(TestCaseError::fail(format!(
            "(a) not empty within {bound:?}: {stats:?}; signals {:?}",
            self.sink.snapshot()
        )))
    }
}

/// (b): per verdict key and half-open period, the probes that started and were not given
/// back, at most the owner's `probes`.
fn check_probes(recs: &[Rec], specs: &[Spec]) -> Result<(), TestCaseError> {
    let probes_of = |key: &str| -> u32 {
        let i: usize = key.trim_start_matches('w').parse().unwrap();
        specs[i].breaker.map_or(0, |(_, _, probes)| probes)
    };
    // key → (half-open now, period number)
    let mut phase: HashMap<Arc<str>, (bool, u32)> = HashMap::new();
    let mut counts: HashMap<(Arc<str>, u32), u32> = HashMap::new();
    let mut probed: HashMap<u64, Vec<(Arc<str>, u32)>> = HashMap::new();
    for rec in recs {
        match rec {
            Rec::Phase { key, half_open } => {
                let entry = phase.entry(Arc::clone(key)).or_insert((false, 0));
                if *half_open && !entry.0 {
                    entry.1 += 1;
                }
                entry.0 = *half_open;
            }
            Rec::Start { id, keys } => {
                for key in keys {
                    let (half_open, period) = phase.get(key).copied().unwrap_or((false, 0));
                    prop_assert!(
                        half_open,
                        "item {} probed {} not half-open in the log",
                        id,
                        key
                    );
                    *counts.entry((Arc::clone(key), period)).or_default() += 1;
                    probed
                        .entry(*id)
                        .or_default()
                        .push((Arc::clone(key), period));
                }
            }
            Rec::GivenBack { id } => {
                for at in probed.remove(id).unwrap_or_default() {
                    *counts.get_mut(&at).unwrap() -= 1;
                }
            }
        }
    }
    for ((key, period), count) in counts {
        prop_assert!(
            count <= probes_of(&key),
            "(b) {} probes of {}'s half-open period {}: {:?}",
            count,
            key,
            period,
            recs
        );
    }
    Ok(())
}

/// (e): every accepted item ran, was skipped or was handed back, exactly once; and the
/// counters agree.
fn check_items(world: &World) -> Result<(), TestCaseError> {
    let recorder = &world.recorder;
    let mut seen: Vec<u64> = recorder.ran.lock().unwrap().clone();
    seen.extend(recorder.skipped.lock().unwrap().iter());
    seen.extend(&world.returned);
    seen.sort_unstable();
    let mut accepted = world.accepted.clone();
    accepted.sort_unstable();
    prop_assert_eq!(&seen, &accepted, "(e) items run, skipped or returned");
    let enqueued: u64 = world.workers.iter().map(|w| w.stats().enqueued).sum();
    prop_assert_eq!(enqueued, accepted.len() as u64);
    for worker in &world.workers {
        let stats = worker.stats();
        prop_assert!(
            stats.is_consistent() && stats.queued + stats.active == 0,
            "{:?}",
            stats
        );
    }
    Ok(())
}

async fn run(specs: Vec<Spec>, ops: Vec<Op>) -> Result<(), TestCaseError> {
    let mut world = World::new(specs);
    for op in &ops {
        world.apply(op).await;
    }
    world.settle_down().await?;
    // (c): drained now, each owner's verdict is gone when `drain` returns.
    for (i, worker) in world.workers.iter().enumerate() {
        let limit = Duration::from_secs(600);
        common::within(limit, "a final drain", worker.drain()).await;
        world
            .recorder
            .check_gone(&format!("w{i}"), "the final drain()");
    }
    sleep(Duration::from_secs(4)).await;
    prop_assert!(
        world.sink.snapshot().is_empty(),
        "{:?}",
        world.sink.snapshot()
    );
    world.recorder.pump();
    let violations = world.recorder.violations.lock().unwrap().clone();
    prop_assert!(violations.is_empty(), "{:?}", violations);
    check_probes(&world.recorder.recs.lock().unwrap(), &world.specs)?;
    check_items(&world)
}

fn spec() -> impl Strategy<Value = Spec> {
    (
        prop::option::weighted(0.7, (0u8..2, 100u64..400, 1u32..=3)),
        1usize..=3,
        1usize..=6,
        any::<bool>(),
    )
        .prop_map(|(breaker, concurrency, capacity, max_defer)| Spec {
            breaker,
            concurrency,
            capacity,
            max_defer,
        })
}

fn call_kind() -> impl Strategy<Value = Call> {
    prop_oneof![4 => Just(Call::Ask), 2 => Just(Call::Fail), 1 => Just(Call::Panic), 2 => Just(Call::Slow)]
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (0usize..4, call_kind(), 1usize..4).prop_map(|(i, c, n)| Op::Enqueue(i, c, n)),
        1 => any::<bool>().prop_map(Op::Plain),
        1 => (0usize..4, any::<bool>()).prop_map(|(i, on)| Op::Cancel(i, on)),
        2 => any::<bool>().prop_map(Op::Healthy),
        6 => (0u64..300).prop_map(Op::Wait),
        1 => (0usize..4).prop_map(Op::Drain),
        1 => (0usize..4).prop_map(Op::Shutdown),
    ]
}

proptest! {
    #![proptest_config(Config {
        cases: 512,
        rng_seed: RngSeed::Fixed(0x686f_7374_696c),
        failure_persistence: None,
        ..Config::default()
    })]

    #[test]
    fn verdicts_hold_their_invariants_over_random_schedules(
        specs in prop::collection::vec(spec(), 2..=4),
        ops in prop::collection::vec(op(), 5..40),
    ) {
        common::verdicts::quiet_panics();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .start_paused(true)
            .build()
            .expect("a runtime");
        runtime.block_on(run(specs, ops))?;
    }
}
