//! Stress and conservation: nothing is lost, nothing runs twice, under load and faults.
//!
//! 8 producers enqueue unique ids while 2 tasks flap `defer_on`, `resume_on` and `cancel_on`
//! signals at random (plain, keyed, with TTLs), a controller changes the concurrency and
//! pauses/resumes, and handlers fail (1%), panic (1%), yield or sleep briefly. At the end every
//! id has exactly one outcome and `stats()` agrees.
//!
//! Every chaos run also has a liveness [`Watchdog`]: a monitor thread that fails the test if
//! work sits in the queue behind an open gate with a free slot for longer than a moment (a
//! slot that slept through a wake-up; issue 8, bug A).
//!
//! * `BACKPRESSURE_STRESS_ITEMS` sets the number of items (default 100,000);
//! * `BACKPRESSURE_STRESS_SEED` replays a run (the seed is printed when a run fails).
//!
//! The large run: `BACKPRESSURE_STRESS_ITEMS=1000000 cargo test --release -p backpressure
//! --test stress`.

mod common;

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Once};
use std::time::{Duration, Instant};

use backpressure::{Coordinator, MaxDefer, Sink, Stats, WorkContext};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

const PRODUCERS: u64 = 8;
const DEFAULT_ITEMS: u64 = 100_000;
const PANIC_MESSAGE: &str = "stress: injected panic";

/// How an id ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
enum End {
    Completed = 1,
    Failed = 2,
    Panicked = 3,
    Skipped = 4,
    Returned = 5,
}

fn items() -> u64 {
    std::env::var("BACKPRESSURE_STRESS_ITEMS")
        .ok()
        .and_then(|v| v.trim().replace('_', "").parse().ok())
        .unwrap_or(DEFAULT_ITEMS)
}

fn seed() -> u64 {
    match std::env::var("BACKPRESSURE_STRESS_SEED") {
        Ok(v) => v
            .trim()
            .parse()
            .expect("BACKPRESSURE_STRESS_SEED must be a u64"),
        Err(_) => rand::random(),
    }
}

/// Prints the seed if the test panics, so the run can be replayed.
struct SeedReport {
    test: &'static str,
    seed: u64,
    items: u64,
}

impl Drop for SeedReport {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!(
                "{} failed: replay with BACKPRESSURE_STRESS_SEED={} BACKPRESSURE_STRESS_ITEMS={}",
                self.test, self.seed, self.items
            );
        }
    }
}

/// Keeps the 1% injected handler panics off stderr; every other panic is reported as usual.
fn quiet_injected_panics() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let default = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let injected = info
                .payload()
                .downcast_ref::<&str>()
                .is_some_and(|m| *m == PANIC_MESSAGE);
            if !injected {
                default(info);
            }
        }));
    });
}

/// A fast, well-mixed hash of (seed, id), so each id's fate is fixed by the seed.
fn mix(seed: u64, id: u64) -> u64 {
    let mut z = seed ^ id.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Concurrency as seen by the handlers themselves, checked against the largest concurrency
/// that can be in effect. The controller raises `ceiling` before growing the coordinator and
/// lowers it only once `stats().active` shows that no more than the new value run (after a
/// shrink, running items finish first; no item starts until fewer than the new value run).
#[derive(Debug, Default)]
struct Tracker {
    running: usize,
    ceiling: usize,
    max_seen: usize,
    violations: Vec<(usize, usize)>,
}

/// Everything the handlers, callbacks and checks share.
struct Book {
    seed: u64,
    ends: Vec<AtomicU8>,
    /// (id, first outcome, second outcome) for every id that ended twice.
    doubles: Mutex<Vec<(u64, u8, u8)>>,
    tracker: Mutex<Tracker>,
    /// Handlers that saw the shutdown token fire.
    saw_cancel: AtomicU64,
    /// Set when the shutdown sentinel handler starts.
    sentinel: tokio::sync::Notify,
    sentinel_id: Option<u64>,
    sentinel_saw_cancel: AtomicBool,
}

impl Book {
    fn new(seed: u64, items: u64, concurrency: usize, sentinel_id: Option<u64>) -> Arc<Self> {
        Arc::new(Self {
            seed,
            ends: (0..items).map(|_| AtomicU8::new(0)).collect(),
            doubles: Mutex::new(Vec::new()),
            tracker: Mutex::new(Tracker {
                ceiling: concurrency,
                ..Tracker::default()
            }),
            saw_cancel: AtomicU64::new(0),
            sentinel: tokio::sync::Notify::new(),
            sentinel_id,
            sentinel_saw_cancel: AtomicBool::new(false),
        })
    }

    fn end(&self, id: u64, end: End) {
        let slot = &self.ends[usize::try_from(id).expect("id fits usize")];
        if let Err(previous) =
            slot.compare_exchange(0, end as u8, Ordering::SeqCst, Ordering::SeqCst)
        {
            self.doubles.lock().unwrap().push((id, previous, end as u8));
        }
    }

    fn start(&self) {
        let mut t = self.tracker.lock().unwrap();
        t.running += 1;
        t.max_seen = t.max_seen.max(t.running);
        if t.running > t.ceiling {
            let v = (t.running, t.ceiling);
            t.violations.push(v);
        }
    }

    fn finish(&self) {
        self.tracker.lock().unwrap().running -= 1;
    }

    fn count(&self, end: End) -> u64 {
        self.ends
            .iter()
            .filter(|e| e.load(Ordering::SeqCst) == end as u8)
            .count() as u64
    }
}

/// Decrements the handler's running count however the handler ends (including a panic).
struct Running<'a>(&'a Book);

impl Drop for Running<'_> {
    fn drop(&mut self) {
        self.0.finish();
    }
}

async fn handle(book: Arc<Book>, id: u64, ctx: WorkContext) -> Result<(), String> {
    book.start();
    let _running = Running(&book);
    if book.sentinel_id == Some(id) {
        // Held until shutdown cancels it: proves running handlers see the token fire.
        book.sentinel.notify_one();
        ctx.cancelled().await;
        book.sentinel_saw_cancel.store(true, Ordering::SeqCst);
        book.saw_cancel.fetch_add(1, Ordering::SeqCst);
        book.end(id, End::Completed);
        return Ok(());
    }
    let fate = mix(book.seed, id);
    match fate % 100 {
        0 => {
            book.end(id, End::Failed);
            return Err(format!("injected failure for {id}"));
        }
        1 => {
            book.end(id, End::Panicked);
            std::panic::panic_any(PANIC_MESSAGE);
        }
        _ => {}
    }
    // Simulated work: mostly a yield or two, sometimes a brief sleep.
    if (fate >> 8) & 63 == 0 {
        tokio::select! {
            () = ctx.cancelled() => {
                book.saw_cancel.fetch_add(1, Ordering::SeqCst);
            }
            () = tokio::time::sleep(Duration::from_micros(500)) => {}
        }
    } else {
        for _ in 0..(fate >> 16) % 3 {
            tokio::task::yield_now().await;
        }
    }
    book.end(id, End::Completed);
    Ok(())
}

fn build(sink: &Sink, book: &Arc<Book>, concurrency: usize) -> Coordinator<u64> {
    let on_skip = Arc::clone(book);
    let in_handler = Arc::clone(book);
    Coordinator::builder()
        .sink(sink.clone())
        .concurrency(concurrency)
        .capacity(256)
        .defer_on("backpressure.*")
        .resume_on("override.*")
        .cancel_on("cancel.*")
        .defer_check_interval(Duration::from_millis(1))
        .max_defer(MaxDefer::Attempts(3))
        .on_skip(move |id: u64| on_skip.end(id, End::Skipped))
        .build(move |id: u64, ctx: WorkContext| handle(Arc::clone(&in_handler), id, ctx))
        .expect("valid configuration")
}

/// Raises and retracts signals at random until `stop`.
async fn flap(sink: Sink, seed: u64, who: u64, stop: Arc<AtomicBool>) -> u64 {
    let mut rng = StdRng::seed_from_u64(seed ^ (who + 1).wrapping_mul(0xA076_1D64_78BD_642F));
    let mut actions = 0;
    let key = |rng: &mut StdRng| format!("flapper{who}-{}", rng.random_range(0..3));
    while !stop.load(Ordering::SeqCst) {
        let name = format!("backpressure.s{}", rng.random_range(0..4));
        let ttl = Duration::from_micros(rng.random_range(200..3_000));
        let result = match rng.random_range(0..1_000) {
            0..=99 => sink.raise(&name).map(drop),
            100..=199 => sink.raise_keyed(&name, &key(&mut rng)).map(drop),
            200..=299 => sink.raise_for(&name, ttl).map(drop),
            300..=399 => sink.raise_keyed_for(&name, &key(&mut rng), ttl).map(drop),
            400..=599 => sink.retract(&name).map(drop),
            600..=749 => sink.retract_keyed(&name, &key(&mut rng)).map(drop),
            750..=799 => sink.retract_matching("backpressure.*").map(drop),
            800..=849 => sink.raise_for("override.go", ttl).map(drop),
            850..=899 => sink.retract("override.go").map(drop),
            // Skipping is much faster than running, so even a short `cancel_on` window
            // skips many items: keep it rare.
            900 => sink
                .raise_for("cancel.now", Duration::from_micros(300))
                .map(drop),
            901..=939 => sink.retract("cancel.now").map(drop),
            940..=949 => {
                sink.clear();
                Ok(())
            }
            _ => {
                let _ = sink.snapshot();
                Ok(())
            }
        };
        result.expect("flapper uses valid names");
        actions += 1;
        // Pacing, not synchronisation: let the slots make progress between flips.
        if rng.random_bool(0.5) {
            tokio::time::sleep(Duration::from_micros(rng.random_range(100..1_000))).await;
        } else {
            tokio::task::yield_now().await;
        }
    }
    actions
}

/// Changes the concurrency and pauses/resumes at random until `stop`; keeps the tracker's
/// ceiling sound (see [`Tracker`]).
async fn control(
    coordinator: Coordinator<u64>,
    book: Arc<Book>,
    seed: u64,
    initial: usize,
    stop: Arc<AtomicBool>,
) -> (u64, u64) {
    let mut rng = StdRng::seed_from_u64(seed ^ 0xC0FF_EE00);
    let mut target = initial;
    let (mut changes, mut pauses) = (0, 0);
    while !stop.load(Ordering::SeqCst) {
        if rng.random_bool(0.1) {
            coordinator.pause();
            pauses += 1;
            tokio::time::sleep(Duration::from_micros(rng.random_range(100..1_500))).await;
            coordinator.resume();
        } else {
            let next = rng.random_range(1..=8);
            if next > target {
                let mut t = book.tracker.lock().unwrap();
                t.ceiling = t.ceiling.max(next);
            }
            coordinator.set_concurrency(next).expect("non-zero");
            target = next;
            changes += 1;
        }
        tokio::time::sleep(Duration::from_micros(rng.random_range(200..2_000))).await;
        lower_ceiling(&coordinator, &book, target);
    }
    (changes, pauses)
}

/// Once no more than `target` items run, no more than `target` ever will (until it grows).
fn lower_ceiling(coordinator: &Coordinator<u64>, book: &Book, target: usize) {
    let mut t = book.tracker.lock().unwrap();
    if coordinator.stats().active <= target {
        t.ceiling = target;
    }
}

async fn produce(
    coordinator: Coordinator<u64>,
    book: Arc<Book>,
    producer: u64,
    items: u64,
) -> Vec<u64> {
    let mut refused = Vec::new();
    let mut id = producer;
    while id < items {
        let result = if mix(book.seed, id) & 15 == 0 {
            match coordinator.try_enqueue(id) {
                Ok(accepted) => Ok(accepted),
                Err(backpressure::error::TryEnqueueError::Full(id)) => {
                    coordinator.enqueue(id).await
                }
                Err(backpressure::error::TryEnqueueError::Closed(id)) => {
                    Err(backpressure::error::EnqueueError(id))
                }
            }
        } else {
            coordinator.enqueue(id).await
        };
        if let Err(backpressure::error::EnqueueError(back)) = result {
            assert_eq!(back, id, "the refused item is handed back");
            // Intake closed (shutdown): this id and every later one were never enqueued.
            refused.extend((id..items).step_by(PRODUCERS as usize));
            break;
        }
        id += PRODUCERS;
    }
    refused
}

/// Checks the final accounting; `refused` ids were never enqueued.
fn check(book: &Book, stats: &Stats, items: u64, refused: &[u64], returned: &[u64]) {
    let doubles = book.doubles.lock().unwrap().clone();
    assert!(
        doubles.is_empty(),
        "{} ids ended twice, e.g. (id, first, second) = {:?}",
        doubles.len(),
        &doubles[..doubles.len().min(5)]
    );
    for &id in returned {
        book.end(id, End::Returned);
    }
    let doubles = book.doubles.lock().unwrap().clone();
    assert!(
        doubles.is_empty(),
        "returned ids that also ran: {:?}",
        &doubles[..doubles.len().min(5)]
    );
    let mut is_refused = vec![false; items as usize];
    for &id in refused {
        is_refused[id as usize] = true;
    }
    let mut missing = Vec::new();
    let mut ghost = Vec::new();
    for (id, end) in book.ends.iter().enumerate() {
        match (end.load(Ordering::SeqCst), is_refused[id]) {
            (0, false) => missing.push(id),
            (0, true) => {}
            (_, true) => ghost.push(id),
            (_, false) => {}
        }
    }
    assert!(
        missing.is_empty(),
        "{} enqueued ids have no outcome, e.g. {:?}",
        missing.len(),
        &missing[..missing.len().min(10)]
    );
    assert!(
        ghost.is_empty(),
        "{} refused ids have an outcome, e.g. {:?}",
        ghost.len(),
        &ghost[..ghost.len().min(10)]
    );
    let enqueued = items - refused.len() as u64;
    assert!(stats.is_consistent(), "inconsistent stats {stats:?}");
    assert_eq!(stats.enqueued, enqueued, "{stats:?}");
    assert_eq!((stats.queued, stats.active), (0, 0), "{stats:?}");
    assert_eq!(stats.completed, book.count(End::Completed), "{stats:?}");
    assert_eq!(stats.failed, book.count(End::Failed), "{stats:?}");
    assert_eq!(stats.panicked, book.count(End::Panicked), "{stats:?}");
    assert_eq!(stats.skipped, book.count(End::Skipped), "{stats:?}");
    assert_eq!(stats.returned, book.count(End::Returned), "{stats:?}");
    assert_eq!(stats.returned, returned.len() as u64, "{stats:?}");
    let tracker = book.tracker.lock().unwrap();
    assert!(
        tracker.violations.is_empty(),
        "concurrency exceeded: (running, allowed) = {:?}",
        &tracker.violations[..tracker.violations.len().min(10)]
    );
    assert_eq!(tracker.running, 0);
}

/// How long work may sit behind an open gate with a free slot before the watchdog suspects a
/// lost wake-up. A healthy slot is woken in microseconds; the margin keeps a loaded 2-core
/// machine (the sampling thread or a runtime worker descheduled for a while) from failing the
/// test.
const STUCK_FOR: Duration = Duration::from_millis(50);
/// The stuck condition must also hold in at least this many consecutive samples, so that a
/// sampling thread descheduled across the whole window does not count as evidence.
const STUCK_SAMPLES: u32 = 20;
/// The watchdog's sampling period.
const SAMPLE_EVERY: Duration = Duration::from_micros(500);
/// How long a probe task may take to run before the runtime counts as not running at all.
const PROBE_LIMIT: Duration = Duration::from_secs(30);

/// Liveness watchdog: samples `stats()` from a thread of its own (real time, independent of
/// the runtime under test) and records a failure if `queued > 0 && gate_open && active <
/// concurrency` persists with no item finishing while the runtime demonstrably runs tasks.
/// Once the condition has held for [`STUCK_FOR`] (and [`STUCK_SAMPLES`] samples), the
/// watchdog spawns a probe task on the runtime and waits for it to run: a worker that was
/// merely descheduled by the OS makes progress once the runtime runs again, a slot that
/// slept through its wake-up stays asleep however responsive the runtime is. The stretch must
/// then go on for another [`STUCK_FOR`]. The timer restarts whenever the condition stops
/// holding or a progress counter moves. (The model: `hostile.rs`'s `Liveness`.)
struct Watchdog {
    stop: Arc<AtomicBool>,
    thread: std::thread::JoinHandle<Result<u64, String>>,
}

impl Watchdog {
    /// Starts watching `coordinator`, whose slots run on the current runtime.
    fn start(coordinator: &Coordinator<u64>) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let runtime = tokio::runtime::Handle::current();
        let thread = {
            let (coordinator, stop) = (coordinator.clone(), Arc::clone(&stop));
            std::thread::spawn(move || watch_liveness(&coordinator, &runtime, &stop))
        };
        Self { stop, thread }
    }

    /// Stops the watchdog; fails the test if it saw a stuck slot.
    fn stop(self) {
        self.stop.store(true, Ordering::SeqCst);
        match self.thread.join().expect("watchdog thread") {
            Ok(samples) => eprintln!("watchdog: {samples} samples, no stuck slot"),
            Err(stuck) => panic!("{stuck}"),
        }
    }
}

/// A stretch of samples in which work was stuck with no progress.
struct Suspect {
    since: Instant,
    progress: u64,
    samples: u32,
    /// Whether the runtime was seen running a probe task during the stretch.
    probed: bool,
}

fn watch_liveness(
    coordinator: &Coordinator<u64>,
    runtime: &tokio::runtime::Handle,
    stop: &AtomicBool,
) -> Result<u64, String> {
    let mut suspect: Option<Suspect> = None;
    let mut samples = 0;
    while !stop.load(Ordering::SeqCst) {
        let stats = coordinator.stats();
        samples += 1;
        let progress = stats.completed + stats.failed + stats.panicked + stats.skipped;
        let stuck = stats.queued > 0 && stats.gate_open && stats.active < stats.concurrency;
        suspect = match suspect {
            _ if !stuck => None,
            Some(mut s) if s.progress == progress => {
                s.samples += 1;
                let held = s.since.elapsed();
                if held >= STUCK_FOR && s.samples >= STUCK_SAMPLES {
                    if s.probed {
                        return Err(format!(
                            "liveness: work queued behind an open gate with a free slot and no \
                             progress for {held:?} ({} samples), the runtime responsive: \
                             {stats:?}",
                            s.samples
                        ));
                    }
                    // Long enough to suspect a lost wake-up: make sure the runtime runs tasks
                    // at all, then give the slots another window.
                    if !common::responsive(runtime, PROBE_LIMIT) {
                        return Err(format!(
                            "liveness: the runtime ran no task for {PROBE_LIMIT:?}: {stats:?}"
                        ));
                    }
                    eprintln!(
                        "liveness: suspect stretch of {held:?} (runtime responsive), watching \
                         another {STUCK_FOR:?}: {stats:?}"
                    );
                    s = Suspect {
                        since: Instant::now(),
                        samples: 0,
                        probed: true,
                        ..s
                    };
                }
                Some(s)
            }
            _ => Some(Suspect {
                since: Instant::now(),
                progress,
                samples: 1,
                probed: false,
            }),
        };
        // A sampling period, not synchronisation.
        std::thread::sleep(SAMPLE_EVERY);
    }
    Ok(samples)
}

/// What one run starts besides the producers.
struct Chaos {
    stop: Arc<AtomicBool>,
    flappers: Vec<tokio::task::JoinHandle<u64>>,
    controller: tokio::task::JoinHandle<(u64, u64)>,
}

impl Chaos {
    fn start(sink: &Sink, coordinator: &Coordinator<u64>, book: &Arc<Book>, seed: u64) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let flappers = (0..2)
            .map(|who| tokio::spawn(flap(sink.clone(), seed, who, Arc::clone(&stop))))
            .collect();
        let controller = tokio::spawn(control(
            coordinator.clone(),
            Arc::clone(book),
            seed,
            4,
            Arc::clone(&stop),
        ));
        Self {
            stop,
            flappers,
            controller,
        }
    }

    /// Stops the chaos; returns (signal flips, concurrency changes, pauses).
    async fn stop(self) -> (u64, u64, u64) {
        self.stop.store(true, Ordering::SeqCst);
        let mut flips = 0;
        for flapper in self.flappers {
            flips += flapper.await.expect("flapper task");
        }
        let (changes, pauses) = self.controller.await.expect("controller task");
        (flips, changes, pauses)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_item_ends_in_exactly_one_outcome_under_chaos() {
    quiet_injected_panics();
    let (seed, items) = (seed(), items());
    let _report = SeedReport {
        test: "every_item_ends_in_exactly_one_outcome_under_chaos",
        seed,
        items,
    };
    eprintln!("stress seed {seed}, {items} items");
    let sink = Sink::new();
    let book = Book::new(seed, items, 4, None);
    let coordinator = build(&sink, &book, 4);
    let watchdog = Watchdog::start(&coordinator);
    let chaos = Chaos::start(&sink, &coordinator, &book, seed);

    let producers: Vec<_> = (0..PRODUCERS)
        .map(|p| tokio::spawn(produce(coordinator.clone(), Arc::clone(&book), p, items)))
        .collect();
    for producer in producers {
        let refused = producer.await.expect("producer task");
        assert!(refused.is_empty(), "intake closed during the run");
    }
    let (flips, changes, pauses) = chaos.stop().await;

    // Open the gate for good and let everything finish.
    sink.clear();
    coordinator.resume();
    tokio::time::timeout(Duration::from_secs(120), coordinator.drain())
        .await
        .expect("drain finishes once the gate is open");
    watchdog.stop();
    let stats = coordinator.stats();
    check(&book, &stats, items, &[], &[]);
    let max_seen = book.tracker.lock().unwrap().max_seen;
    eprintln!(
        "{stats:?}\nflips {flips}, concurrency changes {changes}, pauses {pauses}, \
         max concurrency seen {max_seen}"
    );
    assert!(max_seen <= 8);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn shutdown_under_load_returns_or_processes_every_enqueued_item() {
    quiet_injected_panics();
    let (seed, items) = (seed(), items());
    let _report = SeedReport {
        test: "shutdown_under_load_returns_or_processes_every_enqueued_item",
        seed,
        items,
    };
    eprintln!("stress seed {seed}, {items} items");
    let sink = Sink::new();
    // Shut down when the item in the middle is running.
    let sentinel = items / 2;
    let book = Book::new(seed, items, 4, Some(sentinel));
    let coordinator = build(&sink, &book, 4);
    let watchdog = Watchdog::start(&coordinator);
    let chaos = Chaos::start(&sink, &coordinator, &book, seed);
    let sentinel_started = book.sentinel.notified();
    let producers: Vec<_> = (0..PRODUCERS)
        .map(|p| tokio::spawn(produce(coordinator.clone(), Arc::clone(&book), p, items)))
        .collect();

    // The sentinel might be skipped by a `cancel_on` signal instead; then shut down once
    // every producer is done.
    let all_produced = {
        let mut producers = producers;
        async move {
            let mut refused = Vec::new();
            for producer in producers.drain(..) {
                refused.extend(producer.await.expect("producer task"));
            }
            refused
        }
    };
    tokio::pin!(all_produced);
    let mut refused = None;
    tokio::select! {
        () = sentinel_started => {}
        r = &mut all_produced => refused = Some(r),
    }
    // Shutdown stops slots from starting queued items on purpose: watch until then.
    watchdog.stop();
    let returned = tokio::time::timeout(Duration::from_secs(120), coordinator.shutdown())
        .await
        .expect("shutdown finishes");
    let refused = match refused {
        Some(r) => r,
        None => all_produced.await,
    };
    let (flips, changes, pauses) = chaos.stop().await;

    let stats = coordinator.stats();
    assert!(stats.closed);
    if book.ends[sentinel as usize].load(Ordering::SeqCst) == End::Completed as u8 {
        assert!(
            book.sentinel_saw_cancel.load(Ordering::SeqCst),
            "the running sentinel saw the token fire"
        );
    }
    check(&book, &stats, items, &refused, &returned);
    eprintln!(
        "{stats:?}\nrefused {}, returned {}, handlers that saw the token {}, flips {flips}, \
         concurrency changes {changes}, pauses {pauses}",
        refused.len(),
        returned.len(),
        book.saw_cancel.load(Ordering::SeqCst)
    );
}

/// Drain with a raised `defer_on` signal and `max_defer` off waits for the retract.
#[tokio::test(start_paused = true)]
async fn drain_under_a_raised_signal_without_max_defer_waits_for_the_retract() {
    let sink = Sink::new();
    let ran = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&ran);
    let coordinator = Coordinator::builder()
        .sink(sink.clone())
        .max_defer(MaxDefer::Never)
        .build(move |_: u32, _ctx: WorkContext| {
            let counter = Arc::clone(&counter);
            async move {
                counter.fetch_add(1, Ordering::SeqCst);
            }
        })
        .unwrap();
    sink.raise("backpressure.downstream").unwrap();
    coordinator.enqueue_many(0..5).await.unwrap();

    // A virtual hour goes by: nothing starts, drain does not end.
    let held = tokio::time::timeout(Duration::from_secs(3600), coordinator.drain()).await;
    assert!(held.is_err(), "drain finished while the signal was raised");
    let stats = coordinator.stats();
    assert_eq!(ran.load(Ordering::SeqCst), 0);
    assert_eq!((stats.queued, stats.deferred, stats.completed), (5, 5, 0));
    assert_eq!(stats.defer_timeouts, 0);
    // Held slots sleep: at most the close woke each of them once; no periodic re-checks.
    assert!(
        stats.gate_rechecks <= stats.concurrency as u64,
        "held slots kept re-checking: {stats:?}"
    );

    sink.retract("backpressure.downstream").unwrap();
    coordinator.drain().await;
    let stats = coordinator.stats();
    assert_eq!((stats.completed, stats.defer_timeouts), (5, 0));
    assert_eq!(ran.load(Ordering::SeqCst), 5);
}

/// With the default `max_defer` (200 × 50 ms = 10 s) drain finishes under a raised signal
/// and every item that started anyway is counted as a defer timeout.
#[tokio::test(start_paused = true)]
async fn drain_under_a_raised_signal_with_default_max_defer_counts_timeouts() {
    let sink = Sink::new();
    let coordinator = Coordinator::builder()
        .sink(sink.clone())
        .build(|_: u32, _ctx: WorkContext| async {})
        .unwrap();
    sink.raise("backpressure.downstream").unwrap();
    coordinator.enqueue_many(0..3).await.unwrap();
    let start = tokio::time::Instant::now();
    coordinator.drain().await;
    let stats = coordinator.stats();
    assert!(sink.is_raised("backpressure.downstream"));
    assert!(
        start.elapsed() >= Duration::from_secs(10),
        "{:?}",
        start.elapsed()
    );
    assert_eq!((stats.completed, stats.defer_timeouts), (3, 3), "{stats:?}");
    assert!(stats.is_consistent());
}
