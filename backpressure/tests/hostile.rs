//! Hostile use through the public API only: several runtimes at once (current-thread and a
//! 6-worker multi-thread one on a small machine), std threads raising and retracting levelled
//! and TTL'd signals while producers enqueue, futures and tasks dropped before their first
//! poll, runtimes dropped mid-flight, payloads and items whose `Drop` panics, churn of the
//! concurrency, of pause/resume and of levels, and liveness watchdogs over chaos runs: work
//! never sits behind a gate that lets it run, and a held head never outlives its `max_defer`
//! for lack of a timer (issue 10: held slots no longer re-check periodically).
//!
//! Real time is used only where a multi-thread runtime forces it; waits are polls with a
//! deadline, never sleeps as synchronisation.

mod common;

use std::sync::atomic::{AtomicBool, AtomicU8, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Once};
use std::time::{Duration, Instant};

use backpressure::{
    error::TryEnqueueError, Coordinator, Level, MaxDefer, RaiseOptions, Sink, Stats, WorkContext,
};
use futures_util::FutureExt;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

fn multi_thread() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(6)
        .enable_all()
        .build()
        .unwrap()
}

fn current_thread() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// Polls `condition` until it holds; panics with `what` and the last stats after `limit`.
fn wait_until<T: Send + 'static>(
    what: &str,
    limit: Duration,
    coordinator: &Coordinator<T>,
    mut condition: impl FnMut(&Stats) -> bool,
) {
    let start = Instant::now();
    loop {
        let stats = coordinator.stats();
        if condition(&stats) {
            return;
        }
        assert!(
            start.elapsed() < limit,
            "{what}: not reached within {limit:?}: {stats:?}"
        );
        // A polling period, not synchronisation.
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// Fails a test that runs for longer than `limit` (a hang must not stall the whole run).
async fn within<F: std::future::Future>(what: &str, limit: Duration, future: F) -> F::Output {
    match tokio::time::timeout(limit, future).await {
        Ok(output) => output,
        Err(_) => panic!("{what} did not finish within {limit:?}"),
    }
}

/// Hides the panic messages of the panics these tests inject on purpose.
fn quiet_injected_panics() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let default = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let payload = info.payload();
            let injected = payload.is::<Bomb>()
                || payload
                    .downcast_ref::<&str>()
                    .is_some_and(|m| m.starts_with("hostile:"))
                || payload
                    .downcast_ref::<String>()
                    .is_some_and(|m| m.starts_with("hostile:"));
            if !injected {
                default(info);
            }
        }));
    });
}

/// Counts the items running right now and the most ever seen at once.
#[derive(Default)]
struct Running {
    now: AtomicUsize,
    max: AtomicUsize,
}

impl Running {
    fn enter(self: &Arc<Self>) -> RunningGuard {
        let now = self.now.fetch_add(1, Ordering::SeqCst) + 1;
        self.max.fetch_max(now, Ordering::SeqCst);
        RunningGuard(Arc::clone(self))
    }

    /// Forgets the maximum so far (it becomes what runs now).
    fn reset_max(&self) {
        self.max
            .store(self.now.load(Ordering::SeqCst), Ordering::SeqCst);
    }

    fn max(&self) -> usize {
        self.max.load(Ordering::SeqCst)
    }
}

struct RunningGuard(Arc<Running>);

impl Drop for RunningGuard {
    fn drop(&mut self) {
        self.0.now.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Which ids ran, each at most once.
struct Book(Vec<AtomicU8>);

impl Book {
    fn new(items: usize) -> Arc<Self> {
        Arc::new(Self((0..items).map(|_| AtomicU8::new(0)).collect()))
    }

    fn ran(&self, id: u64) {
        let before = self.0[id as usize].fetch_add(1, Ordering::SeqCst);
        assert_eq!(before, 0, "item {id} ran twice");
    }

    fn count(&self) -> usize {
        self.0
            .iter()
            .filter(|c| c.load(Ordering::SeqCst) == 1)
            .count()
    }
}

/// `enqueued` = every outcome + what is still queued.
fn assert_conserved(stats: &Stats) {
    let ended = stats.completed + stats.failed + stats.panicked + stats.skipped + stats.returned;
    assert_eq!(
        stats.enqueued,
        ended + stats.queued as u64 + stats.active as u64,
        "items lost or counted twice: {stats:?}"
    );
}

/// The liveness watchdog: a std thread sampling `stats()` that fails if "queued > 0,
/// `active < limit`, not paused" lasts for longer than `window` of real time with no
/// progress (nothing started or ended).
///
/// Tolerant of a loaded machine: suspect time only counts while the sampler itself runs
/// regularly (samples at most 5 ms apart), and once a stretch exceeds `window` the watchdog
/// checks that the runtime is responsive (a probe task spawned on it completes) and that the
/// stretch then goes on for another `window` with no progress. A slot that slept through its
/// wake-up stays asleep however responsive the runtime is; a slot whose worker thread was
/// merely descheduled by the OS makes progress once the probe shows the runtime runs again.
struct Liveness {
    stop: Arc<AtomicBool>,
    thread: std::thread::JoinHandle<Result<(u64, Duration), String>>,
}

impl Liveness {
    fn start<T: Send + 'static>(
        coordinator: &Coordinator<T>,
        runtime: &tokio::runtime::Runtime,
        window: Duration,
    ) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let (coordinator, stop) = (coordinator.clone(), Arc::clone(&stop));
            let runtime = runtime.handle().clone();
            std::thread::spawn(move || watch(&coordinator, &runtime, &stop, window))
        };
        Self { stop, thread }
    }

    fn stop(self) -> Duration {
        self.stop.store(true, Ordering::SeqCst);
        match self.thread.join().expect("liveness thread") {
            Ok((samples, worst)) => {
                eprintln!("liveness: {samples} samples, longest suspect stretch {worst:?}");
                worst
            }
            Err(stuck) => panic!("{stuck}"),
        }
    }
}

fn watch<T: Send + 'static>(
    coordinator: &Coordinator<T>,
    runtime: &tokio::runtime::Handle,
    stop: &AtomicBool,
    window: Duration,
) -> Result<(u64, Duration), String> {
    let mut samples = 0;
    let mut worst = Duration::ZERO;
    // Suspect time accumulated since the last progress, the progress it started from, and
    // whether the runtime was seen responsive during it.
    let mut suspect: Option<(Duration, (u64, usize), bool)> = None;
    let mut last = Instant::now();
    while !stop.load(Ordering::SeqCst) {
        let stats = coordinator.stats();
        let now = Instant::now();
        let gap = now - last;
        last = now;
        samples += 1;
        let progress = (
            stats.completed + stats.failed + stats.panicked + stats.skipped + stats.returned,
            stats.active,
        );
        let stuck = stats.queued > 0 && stats.active < stats.limit && !stats.paused;
        suspect = match suspect {
            Some((held, then, probed)) if stuck && then == progress => {
                // Only time during which the sampler ran regularly counts.
                let held = held + gap.min(Duration::from_millis(5));
                worst = worst.max(held);
                if held > window && !probed {
                    // Long enough to suspect a lost wake-up: make sure the runtime runs
                    // tasks at all, then give the slots another window.
                    if !common::responsive(runtime, Duration::from_secs(10)) {
                        return Err(format!(
                            "liveness: the runtime ran no task for 10 s: {stats:?}"
                        ));
                    }
                    eprintln!(
                        "liveness: suspect stretch of {held:?} (runtime responsive), \
                         watching another {window:?}: {stats:?}"
                    );
                    last = Instant::now();
                    Some((window, then, true))
                } else if held > 2 * window {
                    return Err(format!(
                        "liveness: queued work, a free slot under the limit and no progress \
                         for {held:?}, the runtime responsive: {stats:?}"
                    ));
                } else {
                    Some((held, then, probed))
                }
            }
            _ if stuck => Some((Duration::ZERO, progress, false)),
            _ => None,
        };
        // A sampling period, not synchronisation.
        std::thread::sleep(Duration::from_micros(500));
    }
    Ok((samples, worst))
}

fn level(per_mille: u16) -> Level {
    Level::from_per_mille(per_mille)
}

/// A std thread raising and retracting levelled, keyed and TTL'd signals matching
/// `backpressure.*` until `stop`; returns the number of operations.
fn flapper(
    sink: Sink,
    seed: u64,
    stop: Arc<AtomicBool>,
    stops: bool,
) -> std::thread::JoinHandle<u64> {
    std::thread::spawn(move || {
        let mut rng = StdRng::seed_from_u64(seed);
        let mut ops = 0;
        while !stop.load(Ordering::SeqCst) {
            let name = format!("backpressure.hostile{}", rng.random_range(0..3));
            let key = format!("k{}", rng.random_range(0..3));
            // Mostly levels from 0.1; a full stop now and then if allowed.
            let per_mille = if stops && rng.random_bool(0.2) {
                0
            } else {
                rng.random_range(100..=1000)
            };
            let mut options = RaiseOptions::new().level(level(per_mille));
            match rng.random_range(0..6) {
                0 => {
                    sink.raise_with(&name, options.key(key)).unwrap();
                }
                1 => {
                    let ttl = Duration::from_micros(rng.random_range(200..3000));
                    options = options.ttl(ttl);
                    sink.raise_with(&name, options).unwrap();
                }
                2 => {
                    let ttl = Duration::from_micros(rng.random_range(200..3000));
                    sink.raise_with(&name, options.key(key).ttl(ttl)).unwrap();
                }
                3 => {
                    sink.retract_keyed(&name, &key).unwrap();
                }
                4 => {
                    sink.retract(&name).unwrap();
                }
                _ => std::thread::yield_now(),
            }
            ops += 1;
            if ops % 64 == 0 {
                // Let the gate stay open (or at one level) for a moment now and then.
                std::thread::sleep(Duration::from_micros(rng.random_range(0..500)));
            }
        }
        ops
    })
}

// ---------------------------------------------------------------------------------------------
// Runtimes, threads and dropped futures
// ---------------------------------------------------------------------------------------------

/// Two coordinators on one sink, one on a 6-worker runtime and one on a current-thread
/// runtime driven by its own std thread; three std threads (no runtime) raise and retract
/// levelled, keyed and TTL'd signals while producers enqueue into both. `MaxDefer::Never`:
/// every start depends on a wake-up. Nothing is lost, nothing runs twice, no more than the
/// concurrency runs at once, and both drain once the signals are cleared.
#[test]
fn std_threads_flapping_signals_across_two_runtimes_lose_nothing() {
    const ITEMS_MULTI: usize = 100_000;
    const ITEMS_CURRENT: usize = 20_000;
    let sink = Sink::new();
    let stop = Arc::new(AtomicBool::new(false));

    let multi = multi_thread();
    let (book, running) = (Book::new(ITEMS_MULTI), Arc::new(Running::default()));
    let coordinator = {
        let _guard = multi.enter();
        let (book, running) = (Arc::clone(&book), Arc::clone(&running));
        Coordinator::<u64>::builder()
            .sink(sink.clone())
            .concurrency(8)
            .capacity(64)
            .max_defer(MaxDefer::Never)
            .build(move |id, _ctx: WorkContext| {
                let (book, running) = (Arc::clone(&book), Arc::clone(&running));
                async move {
                    let _running = running.enter();
                    book.ran(id);
                    tokio::task::yield_now().await;
                }
            })
            .unwrap()
    };
    let liveness = Liveness::start(&coordinator, &multi, Duration::from_millis(50));

    // The current-thread coordinator lives entirely on its own thread.
    let other = {
        let (sink, stop) = (sink.clone(), Arc::clone(&stop));
        std::thread::spawn(move || {
            current_thread().block_on(async move {
                let book = Book::new(ITEMS_CURRENT);
                let ran = Arc::clone(&book);
                let coordinator = Coordinator::<u64>::builder()
                    .sink(sink.clone())
                    .concurrency(3)
                    .capacity(16)
                    .max_defer(MaxDefer::Never)
                    .build(move |id, _ctx: WorkContext| {
                        ran.ran(id);
                        async {}
                    })
                    .unwrap();
                for id in 0..ITEMS_CURRENT as u64 {
                    coordinator.enqueue(id).await.unwrap();
                }
                // Wait for the flappers to stop and the signals to be cleared.
                while !stop.load(Ordering::SeqCst) || sink.any_matching("backpressure.*").unwrap() {
                    tokio::time::sleep(Duration::from_millis(1)).await;
                }
                within(
                    "the current-thread drain",
                    Duration::from_secs(10),
                    coordinator.drain(),
                )
                .await;
                let stats = coordinator.stats();
                assert_eq!(stats.completed, ITEMS_CURRENT as u64, "{stats:?}");
                assert_eq!(book.count(), ITEMS_CURRENT);
            });
        })
    };

    let flappers: Vec<_> = (0..3)
        .map(|seed| flapper(sink.clone(), seed, Arc::clone(&stop), true))
        .collect();
    multi.block_on(async {
        let producers: Vec<_> = (0..4u64)
            .map(|p| {
                let coordinator = coordinator.clone();
                tokio::spawn(async move {
                    for id in (p..ITEMS_MULTI as u64).step_by(4) {
                        coordinator.enqueue(id).await.unwrap();
                    }
                })
            })
            .collect();
        for producer in producers {
            within("a producer", Duration::from_secs(20), producer)
                .await
                .unwrap();
        }
    });
    stop.store(true, Ordering::SeqCst);
    let ops: u64 = flappers.into_iter().map(|f| f.join().unwrap()).sum();
    sink.clear();
    multi.block_on(within(
        "the multi-thread drain",
        Duration::from_secs(10),
        coordinator.drain(),
    ));
    liveness.stop();
    other.join().unwrap();

    let stats = coordinator.stats();
    assert_eq!(stats.completed, ITEMS_MULTI as u64, "{stats:?}");
    assert_eq!(book.count(), ITEMS_MULTI);
    assert!(
        running.max() <= 8,
        "{} ran at once on 8 slots",
        running.max()
    );
    assert!(ops > 0);
}

/// `enqueue` futures dropped before their first poll, and after one poll while waiting for
/// room, leave no trace: nothing is enqueued for them, and the one producer still waiting
/// gets its room when the queue moves.
#[tokio::test(flavor = "current_thread")]
async fn enqueue_futures_dropped_before_or_after_their_first_poll_leave_no_trace() {
    let sink = Sink::new();
    sink.raise("backpressure.hold").unwrap();
    let coordinator = Coordinator::<u64>::builder()
        .sink(sink.clone())
        .concurrency(1)
        .capacity(2)
        .max_defer(MaxDefer::Never)
        .build(|_, _ctx: WorkContext| async {})
        .unwrap();
    coordinator.try_enqueue(0).unwrap();
    coordinator.try_enqueue(1).unwrap();
    for id in 10..14 {
        // Never polled.
        drop(coordinator.enqueue(id));
        // Polled once (the queue is full, so it waits), then dropped.
        assert!(coordinator.enqueue(id + 10).now_or_never().is_none());
    }
    let waiter = {
        let coordinator = coordinator.clone();
        tokio::spawn(async move { coordinator.enqueue(99).await })
    };
    tokio::task::yield_now().await;
    sink.retract("backpressure.hold").unwrap();
    within("the waiting producer", Duration::from_secs(5), waiter)
        .await
        .unwrap()
        .unwrap();
    within("drain", Duration::from_secs(5), coordinator.drain()).await;
    let stats = coordinator.stats();
    assert_eq!((stats.enqueued, stats.completed), (3, 3), "{stats:?}");
}

/// Slot tasks spawned on a runtime that is dropped before it ever polls them (both at build
/// and after `set_concurrency`) still give their slots back: intake closes, `drain` returns
/// and `shutdown` hands the queued items back.
#[test]
fn slot_tasks_dropped_before_their_first_poll_close_intake() {
    let sink = Sink::new();
    let doomed = current_thread();
    let coordinator = {
        let _guard = doomed.enter();
        Coordinator::<u64>::builder()
            .sink(sink.clone())
            .concurrency(2)
            .build(|_, _ctx: WorkContext| async {})
            .unwrap()
    };
    coordinator.try_enqueue(1).unwrap();
    coordinator.set_concurrency(5).unwrap();
    drop(doomed);
    let stats = coordinator.stats();
    assert!(
        stats.closed,
        "no slot can ever run, yet intake is open: {stats:?}"
    );
    assert!(matches!(
        coordinator.try_enqueue(2),
        Err(TryEnqueueError::Closed(2))
    ));
    // Growing again spawns onto a dead runtime: still nothing hangs.
    coordinator.set_concurrency(7).unwrap();
    current_thread().block_on(async {
        within("drain", Duration::from_secs(5), coordinator.drain()).await;
        let returned = within("shutdown", Duration::from_secs(5), coordinator.shutdown()).await;
        assert_eq!(returned, vec![1]);
    });
    let stats = coordinator.stats();
    assert_eq!((stats.active, stats.queued, stats.returned), (0, 0, 1));
    assert_conserved(&stats);
}

/// A 6-worker runtime dropped while items run, others are held by a level and a TTL'd signal
/// is pending: every item is accounted for afterwards, intake is closed, `shutdown` on
/// another runtime returns what never started; and the sink keeps expiring TTLs on time for a
/// new coordinator on a live runtime (its reaper is not the dead runtime's).
#[test]
fn a_runtime_dropped_mid_flight_settles_every_item_and_expiry_goes_on() {
    const ITEMS: u64 = 40;
    let sink = Sink::new();
    let runtime = multi_thread();
    let coordinator = {
        let _guard = runtime.enter();
        Coordinator::<u64>::builder()
            .sink(sink.clone())
            .concurrency(8)
            .capacity(ITEMS as usize)
            .max_defer(MaxDefer::Never)
            .build(|id, _ctx: WorkContext| async move {
                // Long enough to be running when the runtime goes.
                tokio::time::sleep(Duration::from_millis(200 + id)).await;
            })
            .unwrap()
    };
    runtime.block_on(async {
        // Half the slots may run; a TTL'd stop is pending beyond the drop.
        sink.raise_with("backpressure.half", RaiseOptions::new().level(level(500)))
            .unwrap();
        sink.raise_for("backpressure.later", Duration::from_secs(3600))
            .unwrap();
        sink.retract("backpressure.later").unwrap();
        for id in 0..ITEMS {
            coordinator.try_enqueue(id).unwrap();
        }
    });
    wait_until(
        "four items running",
        Duration::from_secs(10),
        &coordinator,
        |s| s.active == 4,
    );
    sink.raise_for("backpressure.ttl", Duration::from_millis(30))
        .unwrap();
    drop(runtime);

    let stats = coordinator.stats();
    assert!(stats.closed, "{stats:?}");
    assert_eq!(stats.active, 0, "{stats:?}");
    assert_conserved(&stats);
    let queued = stats.queued;
    let returned = current_thread().block_on(async {
        within("shutdown", Duration::from_secs(5), coordinator.shutdown()).await
    });
    assert_eq!(returned.len(), queued);
    assert_conserved(&coordinator.stats());

    // A new coordinator on a live runtime: held by the TTL'd signal (re-raised with a short
    // TTL from this runtime) and released by its expiry, in real time, well before any
    // `max_defer`.
    sink.retract("backpressure.half").unwrap();
    current_thread().block_on(async {
        let started = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&started);
        let fresh = Coordinator::<u64>::builder()
            .sink(sink.clone())
            .concurrency(1)
            .max_defer(MaxDefer::Never)
            .build(move |_, _ctx: WorkContext| {
                flag.store(true, Ordering::SeqCst);
                async {}
            })
            .unwrap();
        sink.raise_for("backpressure.ttl", Duration::from_millis(30))
            .unwrap();
        let raised = Instant::now();
        fresh.try_enqueue(1).unwrap();
        within("the TTL'd hold", Duration::from_secs(5), fresh.drain()).await;
        assert!(started.load(Ordering::SeqCst));
        assert!(raised.elapsed() >= Duration::from_millis(25));
    });
}

// ---------------------------------------------------------------------------------------------
// Hostile payloads
// ---------------------------------------------------------------------------------------------

/// A panic payload whose `Drop` panics again, with another `Bomb`, `0` times more.
struct Bomb(u32);

impl Drop for Bomb {
    fn drop(&mut self) {
        if self.0 > 0 && !std::thread::panicking() {
            std::panic::panic_any(Bomb(self.0 - 1));
        }
    }
}

/// An item whose `Drop` panics while armed.
struct Grenade {
    kind: u8,
    armed: bool,
}

impl Grenade {
    fn disarm(&mut self) {
        self.armed = false;
    }
}

impl Drop for Grenade {
    fn drop(&mut self) {
        if self.armed && !std::thread::panicking() {
            panic!("hostile: a dropped item exploded");
        }
    }
}

/// Handlers panic with payloads whose `Drop` panics (a few times, or for ever), drop items
/// whose `Drop` panics, and items skipped by `cancel_on` explode when dropped (no callback)
/// or hand a `Bomb` to the skip callback's panic: no slot is lost, intake stays open and the
/// next ordinary item runs.
#[test]
fn panicking_payloads_and_items_never_cost_a_slot() {
    quiet_injected_panics();
    const EACH: u8 = 6;
    current_thread().block_on(async {
        let sink = Sink::new();
        let build = |callback: bool| {
            let builder = Coordinator::<Grenade>::builder()
                .sink(sink.clone())
                .concurrency(2)
                .cancel_on("hostile.cancel");
            let builder = if callback {
                builder.on_skip(|mut item: Grenade| {
                    item.disarm();
                    std::panic::panic_any(Bomb(2));
                })
            } else {
                builder
            };
            builder
                .build(|mut item: Grenade, _ctx: WorkContext| async move {
                    match item.kind {
                        0 => {
                            item.disarm();
                            std::panic::panic_any(Bomb(3));
                        }
                        1 => {
                            item.disarm();
                            std::panic::panic_any(Bomb(u32::MAX));
                        }
                        2 => drop(item),
                        _ => item.disarm(),
                    }
                })
                .unwrap()
        };
        for callback in [false, true] {
            let coordinator = build(callback);
            for kind in 0..3 {
                for _ in 0..EACH {
                    let item = Grenade { kind, armed: true };
                    coordinator
                        .enqueue(item)
                        .await
                        .unwrap_or_else(|_| panic!("closed"));
                }
            }
            within("the handler bombs", Duration::from_secs(5), async {
                while coordinator.stats().panicked < 3 * u64::from(EACH) {
                    tokio::task::yield_now().await;
                }
            })
            .await;
            sink.raise("hostile.cancel").unwrap();
            for _ in 0..EACH {
                let item = Grenade {
                    kind: 3,
                    armed: true,
                };
                coordinator
                    .enqueue(item)
                    .await
                    .unwrap_or_else(|_| panic!("closed"));
            }
            within("the skips", Duration::from_secs(5), async {
                while coordinator.stats().skipped < u64::from(EACH) {
                    tokio::task::yield_now().await;
                }
            })
            .await;
            sink.retract("hostile.cancel").unwrap();
            let stats = coordinator.stats();
            assert!(!stats.closed, "{stats:?}");
            assert_eq!(stats.concurrency, 2);
            coordinator
                .enqueue(Grenade {
                    kind: 3,
                    armed: true,
                })
                .await
                .unwrap_or_else(|_| panic!("closed"));
            within("drain", Duration::from_secs(5), coordinator.drain()).await;
            let stats = coordinator.stats();
            assert_eq!(
                (stats.panicked, stats.skipped, stats.completed),
                (3 * u64::from(EACH), u64::from(EACH), 1),
                "{stats:?}"
            );
        }
    });
}

// ---------------------------------------------------------------------------------------------
// Churn
// ---------------------------------------------------------------------------------------------

/// A std thread changes the concurrency between 1 and 16 hundreds of times while producers
/// enqueue: every item runs once, never more than 16 at once, and once the churn stops at 3
/// (and the items started under a larger size have finished) at most 3 run at once.
#[test]
fn concurrency_churn_loses_nothing_and_settles_at_the_final_size() {
    const ITEMS: usize = 100_000;
    const MORE: usize = 300;
    let runtime = multi_thread();
    let (book, running) = (Book::new(ITEMS + MORE), Arc::new(Running::default()));
    let coordinator = {
        let _guard = runtime.enter();
        let (book, running) = (Arc::clone(&book), Arc::clone(&running));
        Coordinator::<u64>::builder()
            .sink(Sink::new())
            .concurrency(4)
            .capacity(32)
            .build(move |id, _ctx: WorkContext| {
                let (book, running) = (Arc::clone(&book), Arc::clone(&running));
                async move {
                    let _running = running.enter();
                    book.ran(id);
                    tokio::task::yield_now().await;
                }
            })
            .unwrap()
    };
    let liveness = Liveness::start(&coordinator, &runtime, Duration::from_millis(50));
    let stop = Arc::new(AtomicBool::new(false));
    let churn = {
        let (coordinator, stop) = (coordinator.clone(), Arc::clone(&stop));
        std::thread::spawn(move || {
            let mut rng = StdRng::seed_from_u64(7);
            let mut changes = 0;
            while !stop.load(Ordering::SeqCst) || changes < 200 {
                coordinator
                    .set_concurrency(rng.random_range(1..=16))
                    .unwrap();
                changes += 1;
                std::thread::sleep(Duration::from_micros(rng.random_range(0..300)));
            }
            coordinator.set_concurrency(3).unwrap();
            changes
        })
    };
    runtime.block_on(async {
        for id in 0..ITEMS as u64 {
            within("enqueue", Duration::from_secs(10), coordinator.enqueue(id))
                .await
                .unwrap();
        }
    });
    stop.store(true, Ordering::SeqCst);
    let changes = churn.join().unwrap();
    assert!(running.max() <= 16);
    wait_until(
        "the old items done",
        Duration::from_secs(10),
        &coordinator,
        |s| s.active <= 3,
    );
    running.reset_max();
    runtime.block_on(async {
        for id in ITEMS as u64..(ITEMS + MORE) as u64 {
            coordinator.enqueue(id).await.unwrap();
        }
        within("drain", Duration::from_secs(10), coordinator.drain()).await;
    });
    liveness.stop();
    let stats = coordinator.stats();
    assert_eq!(stats.concurrency, 3);
    assert_eq!(stats.completed, (ITEMS + MORE) as u64, "{stats:?}");
    assert_eq!(book.count(), ITEMS + MORE);
    assert!(
        running.max() <= 3,
        "{} ran at once on 3 slots",
        running.max()
    );
    assert!(changes >= 200, "only {changes} concurrency changes");
}

/// A std thread pauses and resumes hundreds of times while producers enqueue: everything runs
/// once the churn ends resumed; and while paused (once running items are done) nothing
/// starts.
#[test]
fn pause_resume_churn_loses_nothing_and_a_pause_holds() {
    const ITEMS: usize = 100_000;
    let runtime = multi_thread();
    let book = Book::new(ITEMS + 10);
    let coordinator = {
        let _guard = runtime.enter();
        let book = Arc::clone(&book);
        Coordinator::<u64>::builder()
            .sink(Sink::new())
            .concurrency(6)
            .capacity(32)
            .max_defer(MaxDefer::After(Duration::from_millis(5)))
            .build(move |id, _ctx: WorkContext| {
                book.ran(id);
                async {}
            })
            .unwrap()
    };
    let liveness = Liveness::start(&coordinator, &runtime, Duration::from_millis(50));
    let stop = Arc::new(AtomicBool::new(false));
    let churn = {
        let (coordinator, stop) = (coordinator.clone(), Arc::clone(&stop));
        std::thread::spawn(move || {
            let mut rng = StdRng::seed_from_u64(11);
            let mut flips = 0;
            while !stop.load(Ordering::SeqCst) || flips < 200 {
                coordinator.pause();
                std::thread::sleep(Duration::from_micros(rng.random_range(0..300)));
                coordinator.resume();
                std::thread::sleep(Duration::from_micros(rng.random_range(0..300)));
                flips += 1;
            }
            flips
        })
    };
    runtime.block_on(async {
        for id in 0..ITEMS as u64 {
            within("enqueue", Duration::from_secs(10), coordinator.enqueue(id))
                .await
                .unwrap();
        }
    });
    stop.store(true, Ordering::SeqCst);
    assert!(churn.join().unwrap() >= 200);
    wait_until(
        "everything ran",
        Duration::from_secs(10),
        &coordinator,
        |s| s.completed == ITEMS as u64,
    );

    // A pause holds (no `max_defer` while paused), for as long as we look.
    coordinator.pause();
    wait_until("idle", Duration::from_secs(5), &coordinator, |s| {
        s.active == 0
    });
    for id in ITEMS as u64..ITEMS as u64 + 10 {
        coordinator.try_enqueue(id).unwrap();
    }
    let look = Instant::now();
    while look.elapsed() < Duration::from_millis(30) {
        let stats = coordinator.stats();
        assert_eq!(
            stats.completed, ITEMS as u64,
            "started while paused: {stats:?}"
        );
        std::thread::sleep(Duration::from_millis(1));
    }
    coordinator.resume();
    runtime.block_on(within(
        "drain",
        Duration::from_secs(10),
        coordinator.drain(),
    ));
    liveness.stop();
    let stats = coordinator.stats();
    assert_eq!(stats.completed, ITEMS as u64 + 10, "{stats:?}");
    assert_eq!(
        stats.defer_timeouts, 0,
        "a pause is not a deferral: {stats:?}"
    );
}

/// A std thread moves the level of one signal (and of a keyed second entry) between 0.1 and
/// 1.0 while producers enqueue into 10 slots: never more than 10 run, `stats.active` never
/// exceeds `stats.concurrency`, and once the churn stops at 0.3 (and the items started under
/// a higher level have finished) at most `floor(10 × 0.3)` = 3 run at once.
#[test]
fn level_churn_never_exceeds_the_concurrency_and_settles_at_the_final_limit() {
    const ITEMS: usize = 100_000;
    const MORE: usize = 300;
    let sink = Sink::new();
    let runtime = multi_thread();
    let (book, running) = (Book::new(ITEMS + MORE), Arc::new(Running::default()));
    let coordinator = {
        let _guard = runtime.enter();
        let (book, running) = (Arc::clone(&book), Arc::clone(&running));
        Coordinator::<u64>::builder()
            .sink(sink.clone())
            .concurrency(10)
            .capacity(32)
            .max_defer(MaxDefer::Never)
            .build(move |id, _ctx: WorkContext| {
                let (book, running) = (Arc::clone(&book), Arc::clone(&running));
                async move {
                    let _running = running.enter();
                    book.ran(id);
                    tokio::task::yield_now().await;
                }
            })
            .unwrap()
    };
    let liveness = Liveness::start(&coordinator, &runtime, Duration::from_millis(50));
    let stop = Arc::new(AtomicBool::new(false));
    let churn = {
        let (sink, stop) = (sink.clone(), Arc::clone(&stop));
        std::thread::spawn(move || {
            let mut rng = StdRng::seed_from_u64(3);
            while !stop.load(Ordering::SeqCst) {
                let options = RaiseOptions::new().level(level(rng.random_range(100..=1000)));
                if rng.random_bool(0.7) {
                    sink.raise_with("backpressure.load", options).unwrap();
                } else if rng.random_bool(0.5) {
                    sink.raise_with("backpressure.load", options.key("second"))
                        .unwrap();
                } else {
                    sink.retract_keyed("backpressure.load", "second").unwrap();
                }
                std::thread::sleep(Duration::from_micros(rng.random_range(0..200)));
            }
            sink.retract_keyed("backpressure.load", "second").unwrap();
            sink.raise_with("backpressure.load", RaiseOptions::new().level(level(300)))
                .unwrap();
        })
    };
    let sampler = {
        let (coordinator, stop) = (coordinator.clone(), Arc::clone(&stop));
        std::thread::spawn(move || {
            let mut samples = 0u64;
            while !stop.load(Ordering::SeqCst) {
                let stats = coordinator.stats();
                assert!(stats.active <= stats.concurrency, "{stats:?}");
                assert!(stats.limit <= stats.concurrency, "{stats:?}");
                samples += 1;
                std::thread::sleep(Duration::from_micros(300));
            }
            samples
        })
    };
    runtime.block_on(async {
        for id in 0..ITEMS as u64 {
            within("enqueue", Duration::from_secs(10), coordinator.enqueue(id))
                .await
                .unwrap();
        }
    });
    stop.store(true, Ordering::SeqCst);
    churn.join().unwrap();
    assert!(sampler.join().unwrap() > 0);
    assert!(
        running.max() <= 10,
        "{} ran at once on 10 slots",
        running.max()
    );
    wait_until(
        "the final level",
        Duration::from_secs(10),
        &coordinator,
        |s| s.limit == 3 && s.active <= 3,
    );
    running.reset_max();
    runtime.block_on(async {
        for id in ITEMS as u64..(ITEMS + MORE) as u64 {
            coordinator.enqueue(id).await.unwrap();
            let stats = coordinator.stats();
            assert!(stats.active <= 3, "{stats:?}");
        }
        within("the last items", Duration::from_secs(10), async {
            while coordinator.stats().completed < (ITEMS + MORE) as u64 {
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        })
        .await;
    });
    liveness.stop();
    assert!(
        running.max() <= 3,
        "{} ran at once at level 0.3",
        running.max()
    );
    assert_eq!(book.count(), ITEMS + MORE);
    sink.retract("backpressure.load").unwrap();
}

// ---------------------------------------------------------------------------------------------
// Chaos with watchdogs
// ---------------------------------------------------------------------------------------------

/// Everything at once on a 6-worker runtime: three std threads flapping levelled, keyed and
/// TTL'd signals (full stops included), pause/resume churn, concurrency churn, four producer
/// tasks, handlers that yield, fail or panic. The liveness watchdog fails the run if "queued
/// work, `active < limit`, not paused" lasts ~50 ms with no progress; at the end every item
/// has exactly one outcome.
#[test]
fn chaos_with_a_liveness_watchdog() {
    quiet_injected_panics();
    const ITEMS: usize = 20_000;
    let sink = Sink::new();
    let runtime = multi_thread();
    let book = Book::new(ITEMS);
    let coordinator = {
        let _guard = runtime.enter();
        let book = Arc::clone(&book);
        Coordinator::<u64>::builder()
            .sink(sink.clone())
            .concurrency(8)
            .capacity(64)
            .max_defer(MaxDefer::After(Duration::from_millis(40)))
            .build(move |id, _ctx: WorkContext| {
                book.ran(id);
                async move {
                    match id % 100 {
                        0 => Err(format!("hostile: item {id} failed")),
                        1 => panic!("hostile: item {id} panicked"),
                        2..=9 => {
                            tokio::time::sleep(Duration::from_micros(200)).await;
                            Ok(())
                        }
                        _ => {
                            tokio::task::yield_now().await;
                            Ok(())
                        }
                    }
                }
            })
            .unwrap()
    };
    let liveness = Liveness::start(&coordinator, &runtime, Duration::from_millis(50));
    let stop = Arc::new(AtomicBool::new(false));
    let mut threads: Vec<_> = (0..3)
        .map(|seed| flapper(sink.clone(), 100 + seed, Arc::clone(&stop), true))
        .collect();
    {
        let (coordinator, stop) = (coordinator.clone(), Arc::clone(&stop));
        threads.push(std::thread::spawn(move || {
            let mut rng = StdRng::seed_from_u64(5);
            let mut ops = 0;
            while !stop.load(Ordering::SeqCst) {
                match rng.random_range(0..4) {
                    0 => coordinator.pause(),
                    1 => coordinator.resume(),
                    _ => coordinator
                        .set_concurrency(rng.random_range(1..=12))
                        .unwrap(),
                }
                ops += 1;
                std::thread::sleep(Duration::from_micros(rng.random_range(0..1000)));
            }
            coordinator.resume();
            coordinator.set_concurrency(8).unwrap();
            ops
        }));
    }
    runtime.block_on(async {
        let producers: Vec<_> = (0..4u64)
            .map(|p| {
                let coordinator = coordinator.clone();
                tokio::spawn(async move {
                    for id in (p..ITEMS as u64).step_by(4) {
                        coordinator.enqueue(id).await.unwrap();
                    }
                })
            })
            .collect();
        for producer in producers {
            within("a producer", Duration::from_secs(20), producer)
                .await
                .unwrap();
        }
    });
    stop.store(true, Ordering::SeqCst);
    for thread in threads {
        assert!(thread.join().unwrap() > 0);
    }
    sink.clear();
    runtime.block_on(within(
        "drain",
        Duration::from_secs(10),
        coordinator.drain(),
    ));
    liveness.stop();
    let stats = coordinator.stats();
    assert_eq!(book.count(), ITEMS);
    assert_eq!(
        stats.completed + stats.failed + stats.panicked,
        ITEMS as u64,
        "{stats:?}"
    );
    assert_eq!((stats.failed, stats.panicked), (200, 200), "{stats:?}");
    assert_conserved(&stats);
}

/// 16 slots, `MaxDefer::After(20 ms)`, a signal that stays raised: every item starts, each by
/// timeout, one head at a time, while the concurrency churns between 8 and 16 (slots holding
/// the timer leave, new ones arrive) and an unrelated signal flaps (no wake-up). Items run
/// for a while, so held slots and running slots mix and the timer changes hands among up to
/// 15 held slots. A lost hand-over would leave the next head held for ever.
#[test]
fn max_defer_chaos_starts_every_item_by_timeout() {
    const ITEMS: u64 = 40;
    const MAX_DEFER: Duration = Duration::from_millis(20);
    let sink = Sink::new();
    sink.raise("backpressure.hold").unwrap();
    let runtime = multi_thread();
    let starts = Arc::new(Mutex::new(Vec::new()));
    let coordinator = {
        let _guard = runtime.enter();
        let starts = Arc::clone(&starts);
        Coordinator::<u64>::builder()
            .sink(sink.clone())
            .concurrency(16)
            .capacity(ITEMS as usize)
            .max_defer(MaxDefer::After(MAX_DEFER))
            .build(move |id, _ctx: WorkContext| {
                starts.lock().unwrap().push(Instant::now());
                async move {
                    tokio::time::sleep(Duration::from_millis(10 + (id * 37) % 120)).await;
                }
            })
            .unwrap()
    };
    let began = Instant::now();
    for id in 0..ITEMS {
        coordinator.try_enqueue(id).unwrap();
    }
    let stop = Arc::new(AtomicBool::new(false));
    let churn = {
        let (coordinator, sink, stop) = (coordinator.clone(), sink.clone(), Arc::clone(&stop));
        std::thread::spawn(move || {
            let mut rng = StdRng::seed_from_u64(13);
            while !stop.load(Ordering::SeqCst) {
                coordinator
                    .set_concurrency(rng.random_range(8..=16))
                    .unwrap();
                sink.raise_keyed("backpressure.noise", "n").unwrap();
                sink.retract("backpressure.noise").unwrap();
                std::thread::sleep(Duration::from_millis(rng.random_range(1..15)));
            }
        })
    };
    // Each head waits its 20 ms after the previous start; 40 heads take ~0.8 s. A lost
    // hand-over stalls for ever; the bound is generous for a loaded machine.
    wait_until(
        "every item started by timeout",
        Duration::from_secs(20),
        &coordinator,
        |s| s.defer_timeouts == ITEMS,
    );
    stop.store(true, Ordering::SeqCst);
    churn.join().unwrap();
    let elapsed = began.elapsed();
    runtime.block_on(within(
        "drain",
        Duration::from_secs(10),
        coordinator.drain(),
    ));
    let stats = coordinator.stats();
    assert_eq!(stats.defer_timeouts, ITEMS, "{stats:?}");
    assert_eq!(stats.completed, ITEMS, "{stats:?}");
    // One deadline at a time: the heads cannot start faster than one per `max_defer`.
    assert!(
        elapsed >= MAX_DEFER * (ITEMS as u32) * 9 / 10,
        "{ITEMS} timeouts in {elapsed:?}"
    );
    assert_eq!(starts.lock().unwrap().len(), ITEMS as usize);
}

/// Under paused time: 8 slots, six items, long handlers, `max_defer` 20 ms and a signal that
/// stays raised: the heads start at exactly 20, 40, ..., 120 ms, each by timeout, the timer
/// handed from slot to slot; and while nothing is held any more, no slot wakes (the held
/// count of wake-ups stays put for an hour of virtual time).
#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn held_heads_start_exactly_at_their_deadlines_through_the_hand_over() {
    let sink = Sink::new();
    sink.raise("backpressure.hold").unwrap();
    let base = tokio::time::Instant::now();
    let starts = Arc::new(Mutex::new(Vec::new()));
    let seen = Arc::clone(&starts);
    let coordinator = Coordinator::<u64>::builder()
        .sink(sink.clone())
        .concurrency(8)
        .max_defer(MaxDefer::After(Duration::from_millis(20)))
        .build(move |_, _ctx: WorkContext| {
            seen.lock().unwrap().push(base.elapsed());
            async {
                tokio::time::sleep(Duration::from_secs(3600 * 24)).await;
            }
        })
        .unwrap();
    for id in 0..6 {
        coordinator.try_enqueue(id).unwrap();
    }
    within("six timeouts", Duration::from_secs(10), async {
        while coordinator.stats().defer_timeouts < 6 {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    })
    .await;
    let starts = starts.lock().unwrap().clone();
    let expected: Vec<Duration> = (1..=6).map(|k| Duration::from_millis(20 * k)).collect();
    assert_eq!(starts, expected);
    // Nothing queued: the two idle slots sleep without a timer.
    let rechecks = coordinator.stats().gate_rechecks;
    tokio::time::sleep(Duration::from_secs(3600)).await;
    let stats = coordinator.stats();
    assert_eq!(stats.gate_rechecks, rechecks, "{stats:?}");
    assert_eq!((stats.active, stats.queued), (6, 0));
}
