//! Benchmark harness: every figure is measured against a baseline in the same process and run,
//! with repetitions interleaved and medians reported.
//!
//! ```text
//! cargo run --release --example bench             # default: longer, steadier figures
//! cargo run --release --example bench -- --quick  # under a minute on 2 cores
//! ```
//!
//! The closing lines (`throughput_ratio: ...` and so on) are a contract read by other tooling;
//! see `docs/performance.md` for what each one measures and how.
//!
//! Memory is measured with a counting global allocator (a thin wrapper around
//! `std::alloc::System`), which is why this example, unlike the library, contains `unsafe`.

use std::alloc::{GlobalAlloc, Layout, System};
use std::hint::black_box;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use backpressure::{Coordinator, Level, RaiseOptions, Sink, WorkContext};
use tokio::sync::{mpsc, Semaphore};
use tracing_subscriber::filter::LevelFilter;
use tracing_subscriber::layer::{Identity, SubscriberExt};
use tracing_subscriber::util::SubscriberInitExt;

mod matrix;
mod pools;
mod rates;
mod resume;
mod retries;
mod stream;

// ---------------------------------------------------------------------------------------------
// Counting allocator (for bytes per queued item).

struct Counting;

static ALLOCATED: AtomicUsize = AtomicUsize::new(0);

// SAFETY: every method forwards to `System` with the caller's arguments unchanged; the only
// addition is a relaxed counter of live bytes.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let p = System.alloc(layout);
        if !p.is_null() {
            ALLOCATED.fetch_add(layout.size(), Ordering::Relaxed);
        }
        p
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        let p = System.alloc_zeroed(layout);
        if !p.is_null() {
            ALLOCATED.fetch_add(layout.size(), Ordering::Relaxed);
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        System.dealloc(ptr, layout);
        ALLOCATED.fetch_sub(layout.size(), Ordering::Relaxed);
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let p = System.realloc(ptr, layout, new_size);
        if !p.is_null() {
            ALLOCATED.fetch_sub(layout.size(), Ordering::Relaxed);
            ALLOCATED.fetch_add(new_size, Ordering::Relaxed);
        }
        p
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn allocated() -> usize {
    ALLOCATED.load(Ordering::Relaxed)
}

// ---------------------------------------------------------------------------------------------
// Settings.

#[derive(Debug, Clone, Copy)]
struct Settings {
    quick: bool,
    /// Items per throughput repetition.
    throughput_items: u64,
    /// Interleaved repetitions of each throughput variant.
    throughput_reps: usize,
    /// Resume-latency trials for the coordinator.
    resume_trials: usize,
    /// Resume-latency trials for the model of the original (each takes ~50 ms).
    model_trials: usize,
    /// Interleaved rounds the resume trials are split into.
    resume_rounds: usize,
    /// Idle-CPU windows per variant (2 s each; five variants, interleaved).
    idle_windows: usize,
    /// Gate decisions timed per repetition.
    gate_calls: u64,
    /// Interleaved repetitions of the gate and raise/retract measurements.
    gate_reps: usize,
    /// Items per repetition of the per-item dispatch measurement.
    dispatch_items: u64,
    /// Raise+retract pairs timed per repetition (divided by watchers / 10 for large counts).
    raise_pairs: usize,
}

impl Settings {
    fn from_args() -> Self {
        let quick = std::env::args().skip(1).any(|a| a == "--quick");
        if quick {
            Self {
                quick,
                throughput_items: 200_000,
                throughput_reps: 21,
                resume_trials: 200,
                model_trials: 20,
                resume_rounds: 4,
                idle_windows: 3,
                gate_calls: 1_000_000,
                gate_reps: 5,
                dispatch_items: 100_000,
                raise_pairs: 20_000,
            }
        } else {
            Self {
                quick,
                throughput_items: 1_000_000,
                throughput_reps: 21,
                resume_trials: 2_000,
                model_trials: 60,
                resume_rounds: 10,
                idle_windows: 5,
                gate_calls: 5_000_000,
                gate_reps: 9,
                dispatch_items: 300_000,
                raise_pairs: 50_000,
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Small statistics helpers.

fn median(values: &[f64]) -> f64 {
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    if v.is_empty() {
        return f64::NAN;
    }
    let mid = v.len() / 2;
    if v.len() % 2 == 1 {
        v[mid]
    } else {
        (v[mid - 1] + v[mid]) / 2.0
    }
}

/// Median of the element-wise ratios `a[i] / b[i]` (each pair measured back to back).
fn median_ratio(a: &[f64], b: &[f64]) -> f64 {
    let ratios: Vec<f64> = a.iter().zip(b).map(|(x, y)| x / y).collect();
    median(&ratios)
}

/// Nearest-rank percentile of sorted values.
fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// Tiny deterministic PRNG (xorshift64*), for retract phases in the original's model.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

// ---------------------------------------------------------------------------------------------
// Process CPU time.

/// Process CPU time in nanoseconds and the number of times a thread was put on a CPU: the
/// sums over every thread of the first and third fields of `/proc/self/task/*/schedstat`
/// (on-CPU nanoseconds, timeslices run). A thread that sleeps and is woken starts a new
/// timeslice, so the second figure counts thread wake-ups. Threads that exited during the
/// window are not counted, which is why the tokio runtime's blocking pool is not used here.
fn schedstat_totals() -> Option<(u64, u64)> {
    let (mut ns, mut slices) = (0u64, 0u64);
    for entry in std::fs::read_dir("/proc/self/task").ok()? {
        let path = entry.ok()?.path().join("schedstat");
        let text = std::fs::read_to_string(path).ok()?;
        let mut fields = text.split_whitespace();
        ns += fields.next()?.parse::<u64>().ok()?;
        slices += fields.nth(1)?.parse::<u64>().ok()?;
    }
    Some((ns, slices))
}

/// Process CPU time (utime + stime) in clock ticks from `/proc/self/stat`.
fn cpu_ticks_stat() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the parenthesised command name; utime and stime are fields 14 and 15.
    let rest = &text[text.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(utime + stime)
}

/// Linux's `USER_HZ`: `/proc/<pid>/stat` reports CPU time in 1/100 s on every mainstream
/// architecture.
const TICKS_PER_SEC: u64 = 100;

#[derive(Debug, Clone, Copy)]
struct CpuSample {
    schedstat_ns: Option<u64>,
    /// Timeslices run by all threads (thread wake-ups), from schedstat.
    slices: Option<u64>,
    ticks: Option<u64>,
}

impl CpuSample {
    fn now() -> Self {
        let totals = schedstat_totals();
        Self {
            schedstat_ns: totals.map(|t| t.0),
            slices: totals.map(|t| t.1),
            ticks: cpu_ticks_stat(),
        }
    }

    /// Thread wake-ups (timeslices started) since `earlier`.
    fn slices_since(&self, earlier: &CpuSample) -> Option<u64> {
        Some(self.slices?.saturating_sub(earlier.slices?))
    }

    /// CPU milliseconds since `earlier`: from schedstat when available, else from ticks.
    fn ms_since(&self, earlier: &CpuSample) -> (f64, &'static str) {
        match (self.schedstat_ns, earlier.schedstat_ns) {
            (Some(a), Some(b)) => (a.saturating_sub(b) as f64 / 1e6, "schedstat"),
            _ => match (self.ticks, earlier.ticks) {
                (Some(a), Some(b)) => (
                    (a.saturating_sub(b) * 1000 / TICKS_PER_SEC) as f64,
                    "/proc/self/stat",
                ),
                _ => (f64::NAN, "unavailable"),
            },
        }
    }

    fn ticks_ms_since(&self, earlier: &CpuSample) -> Option<u64> {
        Some(self.ticks?.saturating_sub(earlier.ticks?) * 1000 / TICKS_PER_SEC)
    }
}

fn rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

// ---------------------------------------------------------------------------------------------
// 1. Dispatch throughput.

const DEFER: &str = "backpressure.downstream";
const CONCURRENCY: usize = 4;
const CAPACITY: usize = 1024;

/// The no-op handler body both sides run.
async fn noop(item: u64) {
    black_box(item);
}

/// Items through a coordinator: one producer task awaiting `enqueue`, then `drain`.
async fn coordinator_throughput(n: u64) -> f64 {
    let coordinator = Coordinator::builder()
        .sink(Sink::new())
        .concurrency(CONCURRENCY)
        .capacity(CAPACITY)
        .build(|item: u64, _ctx: WorkContext| noop(item))
        .expect("valid coordinator");
    let start = Instant::now();
    for i in 0..n {
        coordinator.enqueue(i).await.expect("intake open");
    }
    coordinator.drain().await;
    let elapsed = start.elapsed();
    assert_eq!(coordinator.stats().completed, n);
    n as f64 / elapsed.as_secs_f64()
}

/// The hand-written equivalent: a bounded mpsc channel of the same capacity and 4 worker
/// tasks sharing the receiver behind a `tokio::sync::Mutex` (tokio's mpsc has a single
/// receiver, so this is how 4 workers share it without another crate).
async fn baseline_throughput(n: u64) -> f64 {
    let (tx, rx) = mpsc::channel::<u64>(CAPACITY);
    let rx = Arc::new(tokio::sync::Mutex::new(rx));
    let workers: Vec<_> = (0..CONCURRENCY)
        .map(|_| {
            let rx = Arc::clone(&rx);
            tokio::spawn(async move {
                let mut done = 0u64;
                loop {
                    let item = rx.lock().await.recv().await;
                    match item {
                        Some(item) => {
                            noop(item).await;
                            done += 1;
                        }
                        None => return done,
                    }
                }
            })
        })
        .collect();
    let start = Instant::now();
    for i in 0..n {
        tx.send(i).await.expect("receiver alive");
    }
    drop(tx);
    let mut done = 0;
    for worker in workers {
        done += worker.await.expect("worker ran");
    }
    let elapsed = start.elapsed();
    assert_eq!(done, n);
    n as f64 / elapsed.as_secs_f64()
}

std::thread_local! {
    /// The guard of the subscriber set as this thread's default (traced runtime threads only).
    static TRACE_GUARD: std::cell::RefCell<Option<Box<dyn std::any::Any>>> =
        const { std::cell::RefCell::new(None) };
}

/// [`coordinator_throughput`] with a `tracing` subscriber listening at `level` (INFO or DEBUG):
/// the registry (span storage) behind that `LevelFilter` and a layer that does nothing, so each item
/// pays what the library does when someone listens (the `backpressure.item` span, the
/// enqueue-time capture) and nothing a particular output adds.
///
/// The subscriber is the default of every thread of a runtime of its own (same number of
/// workers as the main one), built for this repetition and warmed up with `n / 10` items,
/// untimed. It runs on a plain thread, which the calling worker of the main runtime joins
/// (nothing else runs there meanwhile). Afterwards the global max level is put back to OFF,
/// so the other variants run exactly as with no subscriber at all (checked).
fn traced_throughput(n: u64, level: LevelFilter) -> f64 {
    std::thread::scope(|scope| {
        scope
            .spawn(move || {
                let subscriber = Arc::new(
                    tracing_subscriber::registry()
                        .with(level)
                        .with(Identity::new()),
                );
                let on_start = Arc::clone(&subscriber);
                let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
                let rt = tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(threads)
                    .enable_all()
                    .on_thread_start(move || {
                        let guard = Arc::clone(&on_start).set_default();
                        TRACE_GUARD.with(|g| *g.borrow_mut() = Some(Box::new(guard)));
                    })
                    .on_thread_stop(|| TRACE_GUARD.with(|g| drop(g.borrow_mut().take())))
                    .build()
                    .expect("runtime");
                let rate = rt.block_on(async move {
                    tokio::spawn(async move {
                        assert_eq!(LevelFilter::current(), level);
                        coordinator_throughput(n / 10).await;
                        coordinator_throughput(n).await
                    })
                    .await
                    .expect("traced throughput task")
                });
                drop(rt);
                drop(subscriber);
                // Registering a subscriber recomputes the global max level from the live
                // ones; the traced one is gone, this one is off.
                for _ in 0..1_000 {
                    drop(
                        tracing_subscriber::registry()
                            .with(LevelFilter::OFF)
                            .set_default(),
                    );
                    if LevelFilter::current() == LevelFilter::OFF {
                        return rate;
                    }
                    std::thread::sleep(Duration::from_millis(1));
                }
                panic!("the traced runtime's subscriber outlived it");
            })
            .join()
            .expect("traced throughput thread")
    })
}

// ---------------------------------------------------------------------------------------------
// 2. Resume latency.

/// Items enqueued per resume trial.
const RESUME_ITEMS: u32 = 4;

/// What handlers record: when the first of a trial's items started, and how many finished.
struct Recorder {
    base: Instant,
    first_start_ns: AtomicU64,
    /// [`thread_tag`] of the thread the first handler started on.
    first_start_thread: AtomicU64,
    done: Semaphore,
}

/// A small number naming the current thread (`ThreadId::as_u64` is unstable).
fn thread_tag() -> u64 {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    thread_local! {
        static TAG: u64 = NEXT.fetch_add(1, Ordering::Relaxed);
    }
    TAG.with(|tag| *tag)
}

impl Recorder {
    fn new() -> Arc<Self> {
        Arc::new(Self {
            base: Instant::now(),
            first_start_ns: AtomicU64::new(0),
            first_start_thread: AtomicU64::new(0),
            done: Semaphore::new(0),
        })
    }

    fn now_ns(&self) -> u64 {
        self.base.elapsed().as_nanos() as u64 + 1
    }

    /// Called as the first thing a handler does.
    fn started(&self) {
        let now = self.now_ns();
        if self
            .first_start_ns
            .compare_exchange(0, now, Ordering::SeqCst, Ordering::SeqCst)
            .is_ok()
        {
            self.first_start_thread
                .store(thread_tag(), Ordering::SeqCst);
        }
    }

    fn finished(&self) {
        self.done.add_permits(1);
    }

    async fn wait_all(&self, n: u32) {
        self.done
            .acquire_many(n)
            .await
            .expect("semaphore open")
            .forget();
    }

    /// Microseconds from `t0_ns` to the first start, and resets for the next trial.
    fn take_latency_us(&self, t0_ns: u64) -> f64 {
        let t1 = self.first_start_ns.swap(0, Ordering::SeqCst);
        assert!(t1 != 0, "no handler started");
        t1.saturating_sub(t0_ns) as f64 / 1e3
    }
}

struct CoordinatorResume {
    sink: Sink,
    coordinator: Coordinator<u32>,
    recorder: Arc<Recorder>,
    /// Trials in which a handler started before the retract (the gate failed to hold).
    leaks: usize,
}

impl CoordinatorResume {
    fn new() -> Self {
        let sink = Sink::new();
        let recorder = Recorder::new();
        let rec = Arc::clone(&recorder);
        let coordinator = Coordinator::builder()
            .sink(sink.clone())
            .concurrency(CONCURRENCY)
            .capacity(CAPACITY)
            .build(move |item: u32, _ctx: WorkContext| {
                let rec = Arc::clone(&rec);
                async move {
                    rec.started();
                    black_box(item);
                    rec.finished();
                }
            })
            .expect("valid coordinator");
        Self {
            sink,
            coordinator,
            recorder,
            leaks: 0,
        }
    }

    async fn trial(&mut self, rng: &mut Rng) -> f64 {
        self.sink.raise(DEFER).expect("valid name");
        for i in 0..RESUME_ITEMS {
            self.coordinator.enqueue(i).await.expect("intake open");
        }
        // Let every slot see the items, find the gate closed and park.
        tokio::time::sleep(Duration::from_micros(200 + rng.below(800))).await;
        if self.recorder.first_start_ns.load(Ordering::SeqCst) != 0 {
            self.leaks += 1;
            self.recorder.first_start_ns.store(0, Ordering::SeqCst);
        }
        let t0 = self.recorder.now_ns();
        self.sink.retract(DEFER).expect("valid name");
        self.recorder.wait_all(RESUME_ITEMS).await;
        self.recorder.take_latency_us(t0)
    }
}

/// A faithful model of the original's dispatcher: one loop reads an item from a bounded
/// channel, then, while a signal matching the defer pattern is in the sink (checked by
/// scanning it, as the original's `Sense` does), sleeps `defer_check_interval` (50 ms) and
/// re-checks, up to 200 attempts; then it waits for one of 4 concurrency slots and starts the
/// body on its own task.
struct OriginalModel {
    sink: Sink,
    tx: Option<mpsc::Sender<u32>>,
    dispatcher: tokio::task::JoinHandle<()>,
    rechecks: Arc<AtomicU64>,
}

const ORIGINAL_CHECK_INTERVAL: Duration = Duration::from_millis(50);
const ORIGINAL_MAX_ATTEMPTS: u32 = 200;

impl OriginalModel {
    fn new(capacity: usize, recorder: Option<Arc<Recorder>>) -> Self {
        let sink = Sink::new();
        let (tx, mut rx) = mpsc::channel::<u32>(capacity);
        let rechecks = Arc::new(AtomicU64::new(0));
        let slots = Arc::new(Semaphore::new(CONCURRENCY));
        let dispatcher = {
            let sink = sink.clone();
            let rechecks = Arc::clone(&rechecks);
            tokio::spawn(async move {
                while let Some(item) = rx.recv().await {
                    let mut attempts = 0;
                    while attempts < ORIGINAL_MAX_ATTEMPTS
                        && sink.any_matching("backpressure.*").expect("valid pattern")
                    {
                        tokio::time::sleep(ORIGINAL_CHECK_INTERVAL).await;
                        rechecks.fetch_add(1, Ordering::Relaxed);
                        attempts += 1;
                    }
                    let permit = Arc::clone(&slots)
                        .acquire_owned()
                        .await
                        .expect("semaphore open");
                    let rec = recorder.clone();
                    tokio::spawn(async move {
                        if let Some(rec) = &rec {
                            rec.started();
                        }
                        black_box(item);
                        if let Some(rec) = &rec {
                            rec.finished();
                        }
                        drop(permit);
                    });
                }
            })
        };
        Self {
            sink,
            tx: Some(tx),
            dispatcher,
            rechecks,
        }
    }

    fn sender(&self) -> &mpsc::Sender<u32> {
        self.tx.as_ref().expect("open")
    }

    async fn trial(&self, recorder: &Recorder, rng: &mut Rng) -> f64 {
        self.sink.raise(DEFER).expect("valid name");
        for i in 0..RESUME_ITEMS {
            self.sender().send(i).await.expect("dispatcher alive");
        }
        // Retract at a random phase of the 50 ms polling cycle.
        tokio::time::sleep(Duration::from_micros(1_000 + rng.below(50_000))).await;
        let t0 = recorder.now_ns();
        self.sink.retract(DEFER).expect("valid name");
        recorder.wait_all(RESUME_ITEMS).await;
        recorder.take_latency_us(t0)
    }

    async fn close(mut self) {
        self.tx = None;
        self.dispatcher.abort();
        let _ = self.dispatcher.await;
    }
}

struct ResumeResult {
    coordinator_us: Vec<f64>,
    model_us: Vec<f64>,
    leaks: usize,
}

async fn resume_latency(s: Settings) -> ResumeResult {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut ours = CoordinatorResume::new();
    let model_recorder = Recorder::new();
    let model = OriginalModel::new(CAPACITY, Some(Arc::clone(&model_recorder)));
    let mut coordinator_us = Vec::with_capacity(s.resume_trials);
    let mut model_us = Vec::with_capacity(s.model_trials);
    // Warm up both paths once.
    ours.trial(&mut rng).await;
    for round in 0..s.resume_rounds {
        let share =
            |total: usize| total / s.resume_rounds + usize::from(round < total % s.resume_rounds);
        for _ in 0..share(s.resume_trials) {
            coordinator_us.push(ours.trial(&mut rng).await);
        }
        for _ in 0..share(s.model_trials) {
            model_us.push(model.trial(&model_recorder, &mut rng).await);
        }
    }
    model.close().await;
    let leaks = ours.leaks;
    drop(ours.coordinator.shutdown().await);
    coordinator_us.sort_by(f64::total_cmp);
    model_us.sort_by(f64::total_cmp);
    ResumeResult {
        coordinator_us,
        model_us,
        leaks,
    }
}

/// One held slot: a coordinator of concurrency 1, one item queued behind a raised signal.
struct OneSlotResume {
    sink: Sink,
    coordinator: Coordinator<u32>,
    recorder: Arc<Recorder>,
    leaks: usize,
    /// In-runtime trials whose handler started on another thread than the one that retracted.
    other_thread: usize,
}

impl OneSlotResume {
    /// Must be called inside the runtime the slot is to run on.
    fn new() -> Self {
        let sink = Sink::new();
        let recorder = Recorder::new();
        let rec = Arc::clone(&recorder);
        let coordinator = Coordinator::builder()
            .sink(sink.clone())
            .concurrency(1)
            .capacity(CAPACITY)
            .build(move |item: u32, _ctx: WorkContext| {
                let rec = Arc::clone(&rec);
                async move {
                    rec.started();
                    black_box(item);
                    rec.finished();
                }
            })
            .expect("valid coordinator");
        Self {
            sink,
            coordinator,
            recorder,
            leaks: 0,
            other_thread: 0,
        }
    }

    fn hold_one(&self) {
        self.sink.raise(DEFER).expect("valid name");
        self.coordinator.try_enqueue(0).expect("room in the queue");
    }

    fn check_leak(&mut self) {
        if self.recorder.first_start_ns.load(Ordering::SeqCst) != 0 {
            self.leaks += 1;
            self.recorder.first_start_ns.store(0, Ordering::SeqCst);
        }
    }

    /// Retract from a task on the runtime (the common case: application code in tokio).
    async fn trial(&mut self, rng: &mut Rng) -> f64 {
        self.hold_one();
        tokio::time::sleep(Duration::from_micros(200 + rng.below(800))).await;
        self.check_leak();
        let tag = thread_tag();
        let t0 = self.recorder.now_ns();
        self.sink.retract(DEFER).expect("valid name");
        self.recorder.wait_all(1).await;
        if self.recorder.first_start_thread.load(Ordering::SeqCst) != tag {
            self.other_thread += 1;
        }
        self.recorder.take_latency_us(t0)
    }

    /// Retract from a thread outside the runtime: the slot must be woken on a worker thread,
    /// a cross-thread wake-up by construction.
    fn trial_external(&mut self, handle: &tokio::runtime::Handle, rng: &mut Rng) -> f64 {
        self.hold_one();
        std::thread::sleep(Duration::from_micros(200 + rng.below(800)));
        self.check_leak();
        let t0 = self.recorder.now_ns();
        self.sink.retract(DEFER).expect("valid name");
        handle.block_on(self.recorder.wait_all(1));
        self.recorder.take_latency_us(t0)
    }
}

struct OneSlotResult {
    /// Sorted latencies, retract from a task on the runtime.
    in_runtime_us: Vec<f64>,
    /// Sorted latencies, retract from a thread outside the runtime.
    external_us: Vec<f64>,
    other_thread: usize,
    leaks: usize,
}

/// Resume latency of a single held slot on its own 2-worker multi-thread runtime, in
/// interleaved rounds of in-runtime and external retracts.
fn one_slot_resume(s: Settings) -> OneSlotResult {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let handle = rt.handle().clone();
    let mut rng = Rng(0x2545_f491_4f6c_dd1d);
    let mut state = rt.block_on(async { OneSlotResume::new() });
    let mut in_runtime_us = Vec::with_capacity(s.resume_trials);
    let mut external_us = Vec::with_capacity(s.resume_trials);
    // Warm up both paths once.
    state.trial_external(&handle, &mut rng);
    for round in 0..s.resume_rounds {
        let share = s.resume_trials / s.resume_rounds
            + usize::from(round < s.resume_trials % s.resume_rounds);
        let (back, samples, back_rng) = rt
            .block_on(handle.spawn(async move {
                let mut samples = Vec::with_capacity(share);
                for _ in 0..share {
                    samples.push(state.trial(&mut rng).await);
                }
                (state, samples, rng)
            }))
            .expect("trial task");
        state = back;
        rng = back_rng;
        in_runtime_us.extend(samples);
        for _ in 0..share {
            external_us.push(state.trial_external(&handle, &mut rng));
        }
    }
    rt.block_on(async {
        drop(state.coordinator.shutdown().await);
    });
    in_runtime_us.sort_by(f64::total_cmp);
    external_us.sort_by(f64::total_cmp);
    OneSlotResult {
        in_runtime_us,
        external_us,
        other_thread: state.other_thread,
        leaks: state.leaks,
    }
}

// ---------------------------------------------------------------------------------------------
// 3. Idle cost while deferred.

const IDLE_QUEUED: u32 = 10_000;
const IDLE_WINDOW: Duration = Duration::from_secs(2);

struct IdleSample {
    cpu_ms: f64,
    cpu_source: &'static str,
    ticks_ms: Option<u64>,
    rechecks: u64,
    /// Thread wake-ups in the window (timeslices started, all threads).
    wakeups: Option<u64>,
}

async fn idle_window(rechecks: impl Fn() -> u64) -> IdleSample {
    // Let everything settle into its waiting state first.
    tokio::time::sleep(Duration::from_millis(100)).await;
    let before = CpuSample::now();
    let rechecks_before = rechecks();
    tokio::time::sleep(IDLE_WINDOW).await;
    let after = CpuSample::now();
    let (cpu_ms, cpu_source) = after.ms_since(&before);
    IdleSample {
        cpu_ms,
        cpu_source,
        ticks_ms: after.ticks_ms_since(&before),
        rechecks: rechecks() - rechecks_before,
        wakeups: after.slices_since(&before),
    }
}

async fn idle_coordinator() -> IdleSample {
    let sink = Sink::new();
    sink.raise(DEFER).expect("valid name");
    let coordinator = Coordinator::builder()
        .sink(sink.clone())
        .concurrency(CONCURRENCY)
        .capacity(IDLE_QUEUED as usize)
        .build(|item: u32, _ctx: WorkContext| async move {
            black_box(item);
        })
        .expect("valid coordinator");
    for i in 0..IDLE_QUEUED {
        coordinator.enqueue(i).await.expect("intake open");
    }
    let sample = idle_window(|| coordinator.stats().gate_rechecks).await;
    let stats = coordinator.stats();
    assert_eq!(
        stats.completed, 0,
        "the gate let work through while deferred"
    );
    assert_eq!(stats.queued, IDLE_QUEUED as usize);
    let returned = coordinator.shutdown().await;
    assert_eq!(returned.len(), IDLE_QUEUED as usize);
    sample
}

/// The floor: the same window with nothing deferred at all (an idle runtime, and the cost of
/// reading the CPU counters).
async fn idle_empty() -> IdleSample {
    idle_window(|| 0).await
}

/// A held workload: `coordinators` coordinators on one sink, each with `slots` slots and
/// `items` items queued behind the raised signal, default `max_defer` (200 × 50 ms = 10 s,
/// well beyond the window).
#[derive(Debug, Clone, Copy)]
struct Held {
    coordinators: usize,
    slots: usize,
    items: u32,
}

const HELD_1X4: Held = Held {
    coordinators: 1,
    slots: 4,
    items: 8,
};
const HELD_100X16: Held = Held {
    coordinators: 100,
    slots: 16,
    items: 32,
};

async fn idle_held(held: Held) -> IdleSample {
    let sink = Sink::new();
    sink.raise(DEFER).expect("valid name");
    let mut coordinators = Vec::with_capacity(held.coordinators);
    for _ in 0..held.coordinators {
        let coordinator = Coordinator::builder()
            .sink(sink.clone())
            .concurrency(held.slots)
            .capacity(held.items as usize)
            .build(|item: u32, _ctx: WorkContext| async move {
                black_box(item);
            })
            .expect("valid coordinator");
        for i in 0..held.items {
            coordinator.enqueue(i).await.expect("intake open");
        }
        coordinators.push(coordinator);
    }
    let sample = idle_window(|| coordinators.iter().map(|c| c.stats().gate_rechecks).sum()).await;
    for coordinator in &coordinators {
        let stats = coordinator.stats();
        assert_eq!(
            stats.completed, 0,
            "the gate let work through while deferred"
        );
        assert_eq!(stats.queued, held.items as usize);
    }
    for coordinator in coordinators {
        let returned = coordinator.shutdown().await;
        assert_eq!(returned.len(), held.items as usize);
    }
    sample
}

async fn idle_model() -> IdleSample {
    let model = OriginalModel::new(IDLE_QUEUED as usize, None);
    model.sink.raise(DEFER).expect("valid name");
    for i in 0..IDLE_QUEUED {
        model.sender().send(i).await.expect("dispatcher alive");
    }
    let rechecks = Arc::clone(&model.rechecks);
    let sample = idle_window(|| rechecks.load(Ordering::Relaxed)).await;
    model.close().await;
    sample
}

// ---------------------------------------------------------------------------------------------
// 4. Gate check cost vs active signals; raise+retract cost vs watchers.

const SIGNAL_COUNTS: [usize; 3] = [0, 10, 1_000];

fn raise_unrelated(sink: &Sink, n: usize) {
    for i in 0..n {
        sink.raise(&format!("unrelated.signal{i}"))
            .expect("valid name");
    }
}

/// Entries of the levelled row: keyed entries of one name that the coordinators' default
/// `defer_on` (`backpressure.*`) matches, at levels spread from 0.2 to 0.9.
const LEVELLED_ENTRIES: usize = 1_000;
const LEVELLED_NAME: &str = "backpressure.x";

fn raise_levelled(sink: &Sink, n: usize) {
    for i in 0..n {
        let level = Level::new(0.2 + 0.7 * i as f64 / (n.max(2) - 1) as f64).expect("in range");
        let options = RaiseOptions::new().key(format!("k{i}")).level(level);
        sink.raise_with(LEVELLED_NAME, options).expect("valid name");
    }
}

/// The gate decision through the public API: `stats().gate_open` evaluates the same
/// gate answer (`Gate::answer`, then the limit it allows) a slot evaluates before starting
/// an item, under the same lock. The figure is therefore an upper bound on the decision (it
/// includes the lock and the snapshot). `open` is what the gate must say every time.
fn gate_decision_ns(coordinator: &Coordinator<u64>, calls: u64, open: bool) -> f64 {
    let start = Instant::now();
    let mut opened = 0u64;
    for _ in 0..calls {
        opened += u64::from(black_box(coordinator.stats()).gate_open);
    }
    let elapsed = start.elapsed();
    assert_eq!(
        opened,
        if open { calls } else { 0 },
        "the gate must be open with unrelated signals, limited with levelled ones"
    );
    elapsed.as_nanos() as f64 / calls as f64
}

/// The original's decision: scan the sink for a matching signal (`any_matching`).
fn scan_decision_ns(sink: &Sink, calls: u64) -> f64 {
    let start = Instant::now();
    let mut held = 0u64;
    for _ in 0..calls {
        held += u64::from(sink.any_matching("backpressure.*").expect("valid pattern"));
    }
    let elapsed = start.elapsed();
    assert_eq!(held, 0);
    elapsed.as_nanos() as f64 / calls as f64
}

/// Per item, the whole path a slot takes: enqueue, gate decision, start, finish.
async fn dispatch_ns(sink: &Sink, items: u64) -> f64 {
    let coordinator = Coordinator::builder()
        .sink(sink.clone())
        .concurrency(CONCURRENCY)
        .capacity(CAPACITY)
        .build(|item: u64, _ctx: WorkContext| noop(item))
        .expect("valid coordinator");
    let start = Instant::now();
    for i in 0..items {
        coordinator.enqueue(i).await.expect("intake open");
    }
    coordinator.drain().await;
    let elapsed = start.elapsed();
    assert_eq!(coordinator.stats().completed, items);
    elapsed.as_nanos() as f64 / items as f64
}

struct GateResult {
    /// Per signal count: median ns of the gate decision, of the original's scan, of dispatch;
    /// `decision_ns` and `dispatch_ns` have one more row, the levelled sink (index 3).
    decision_ns: Vec<f64>,
    scan_ns: Vec<f64>,
    dispatch_ns: Vec<f64>,
}

async fn gate_cost(s: Settings) -> GateResult {
    let mut sinks: Vec<Sink> = SIGNAL_COUNTS
        .iter()
        .map(|&n| {
            let sink = Sink::new();
            raise_unrelated(&sink, n);
            sink
        })
        .collect();
    let levelled = Sink::new();
    raise_levelled(&levelled, LEVELLED_ENTRIES);
    sinks.push(levelled);
    let coordinators: Vec<Coordinator<u64>> = sinks
        .iter()
        .map(|sink| {
            Coordinator::builder()
                .sink(sink.clone())
                .concurrency(CONCURRENCY)
                .capacity(CAPACITY)
                .build(|item: u64, _ctx: WorkContext| noop(item))
                .expect("valid coordinator")
        })
        .collect();
    tokio::task::yield_now().await;
    // The lowest level, 0.2 of 4 slots, lets one item run at a time.
    let limited = coordinators[SIGNAL_COUNTS.len()].stats();
    assert_eq!((limited.gate_open, limited.limit), (false, 1));
    let k = SIGNAL_COUNTS.len();
    let (mut decision, mut scan, mut dispatch) =
        (vec![vec![]; k + 1], vec![vec![]; k], vec![vec![]; k + 1]);
    let scan_calls = (s.gate_calls / 50).max(1_000);
    for rep in 0..s.gate_reps {
        for j in 0..=k {
            // Rotate the order so that no row always runs first.
            let i = (j + rep) % (k + 1);
            decision[i].push(gate_decision_ns(&coordinators[i], s.gate_calls, i < k));
            // The original's scan has no levels: it would stop at the first match.
            if i < k {
                scan[i].push(scan_decision_ns(&sinks[i], scan_calls));
            }
            dispatch[i].push(dispatch_ns(&sinks[i], s.dispatch_items).await);
        }
    }
    GateResult {
        decision_ns: decision.iter().map(|v| median(v)).collect(),
        scan_ns: scan.iter().map(|v| median(v)).collect(),
        dispatch_ns: dispatch.iter().map(|v| median(v)).collect(),
    }
}

const WATCHER_COUNTS: [usize; 4] = [0, 1, 100, 1_000];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Patterns {
    /// Every coordinator has its own pattern (each matches the raised signal).
    Distinct,
    /// Every coordinator watches `backpressure.*`.
    Shared,
}

struct Watched {
    sink: Sink,
    _coordinators: Vec<Coordinator<u64>>,
}

fn watched_sink(watchers: usize, patterns: Patterns) -> Watched {
    let sink = Sink::new();
    let coordinators = (0..watchers)
        .map(|i| {
            let defer_on = match patterns {
                Patterns::Distinct => format!("backpressure.*, watcher{i}.*"),
                Patterns::Shared => "backpressure.*".to_string(),
            };
            Coordinator::builder()
                .sink(sink.clone())
                .concurrency(1)
                .capacity(16)
                .defer_on(defer_on)
                .build(|item: u64, _ctx: WorkContext| noop(item))
                .expect("valid coordinator")
        })
        .collect();
    Watched {
        sink,
        _coordinators: coordinators,
    }
}

/// Caller-side cost of one `raise` + `retract` pair (each flips every watch and notifies
/// every watcher); the woken slots re-park, untimed, between pairs.
async fn raise_retract_ns(watched: &Watched, pairs: usize) -> f64 {
    let mut total = Duration::ZERO;
    for _ in 0..pairs {
        let start = Instant::now();
        watched.sink.raise(DEFER).expect("valid name");
        watched.sink.retract(DEFER).expect("valid name");
        total += start.elapsed();
        tokio::task::yield_now().await;
    }
    total.as_nanos() as f64 / pairs as f64
}

struct RaiseResult {
    /// (watchers, patterns, median ns per raise+retract pair)
    rows: Vec<(usize, Patterns, f64)>,
}

async fn raise_cost(s: Settings) -> RaiseResult {
    let mut setups = Vec::new();
    for &w in &WATCHER_COUNTS {
        for patterns in [Patterns::Distinct, Patterns::Shared] {
            if w == 0 && patterns == Patterns::Shared {
                continue;
            }
            setups.push((w, patterns, watched_sink(w, patterns)));
        }
    }
    // Let every slot park.
    for _ in 0..4 {
        tokio::task::yield_now().await;
    }
    let mut samples = vec![Vec::new(); setups.len()];
    for rep in 0..s.gate_reps {
        for j in 0..setups.len() {
            let i = (j + rep) % setups.len();
            let (w, _, watched) = &setups[i];
            let pairs = (s.raise_pairs / (1 + w / 10)).max(50);
            samples[i].push(raise_retract_ns(watched, pairs).await);
        }
    }
    RaiseResult {
        rows: setups
            .iter()
            .zip(&samples)
            .map(|((w, p, _), v)| (*w, *p, median(v)))
            .collect(),
    }
}

/// Nanoseconds a pair of back-to-back `Instant::now()` calls measures: what one timed
/// call adds to every per-call sample.
fn clock_pair_ns() -> f64 {
    let start = Instant::now();
    black_box(start.elapsed()).as_nanos() as f64
}

struct RetractResult {
    /// Median ns of one `retract` call, raw (clock overhead included).
    watched_raw_ns: f64,
    /// The same with no coordinator on the sink.
    unwatched_raw_ns: f64,
    /// Gate re-checks per retract: how many held slots each retract woke.
    rechecks_per_retract: f64,
    /// Median ns of an empty timed region.
    clock_ns: f64,
}

/// The `retract` call alone, timed call by call: one coordinator (4 slots) watching, its
/// slots held on queued items when the signal goes (the retract flips the watch and
/// notifies the coordinator, whose woken slots run the items afterwards, untimed); and the
/// same call on a sink nobody watches. Current-thread runtime, so no woken slot runs while
/// the call is timed.
async fn retract_cost(s: Settings) -> RetractResult {
    let sink = Sink::new();
    let coordinator = Coordinator::builder()
        .sink(sink.clone())
        .concurrency(CONCURRENCY)
        .capacity(CAPACITY)
        .build(|item: u64, _ctx: WorkContext| noop(item))
        .expect("valid coordinator");
    let bare = Sink::new();
    let (mut watched, mut unwatched, mut clock) = (
        Vec::with_capacity(s.raise_pairs),
        Vec::with_capacity(s.raise_pairs),
        Vec::with_capacity(s.raise_pairs),
    );
    let mut expected = 0u64;
    for i in 0..s.raise_pairs {
        sink.raise(DEFER).expect("valid name");
        for _ in 0..CONCURRENCY {
            coordinator
                .try_enqueue(i as u64)
                .expect("room in the queue");
        }
        expected += CONCURRENCY as u64;
        // Let the slots see the items, find the gate closed and park on it.
        for _ in 0..4 {
            tokio::task::yield_now().await;
        }
        let start = Instant::now();
        sink.retract(DEFER).expect("valid name");
        watched.push(start.elapsed().as_nanos() as f64);
        while coordinator.stats().completed < expected {
            tokio::task::yield_now().await;
        }

        bare.raise(DEFER).expect("valid name");
        let start = Instant::now();
        bare.retract(DEFER).expect("valid name");
        unwatched.push(start.elapsed().as_nanos() as f64);
        clock.push(clock_pair_ns());
    }
    let rechecks = coordinator.stats().gate_rechecks;
    drop(coordinator.shutdown().await);
    RetractResult {
        rechecks_per_retract: rechecks as f64 / s.raise_pairs as f64,
        watched_raw_ns: median(&watched),
        unwatched_raw_ns: median(&unwatched),
        clock_ns: median(&clock),
    }
}

// ---------------------------------------------------------------------------------------------
// 5. Memory per queued item.

const MEMORY_ITEMS: u64 = 1_000_000;

struct MemoryResult {
    coordinator_bytes: f64,
    coordinator_rss_bytes: Option<f64>,
    mpsc_bytes: f64,
    mpsc_rss_bytes: Option<f64>,
}

fn per_item(before: usize, after: usize) -> f64 {
    after.saturating_sub(before) as f64 / MEMORY_ITEMS as f64
}

fn rss_per_item(before: Option<u64>, after: Option<u64>) -> Option<f64> {
    Some(after?.saturating_sub(before?) as f64 * 1024.0 / MEMORY_ITEMS as f64)
}

async fn memory() -> MemoryResult {
    // Coordinator: the gate is closed, so every item stays queued.
    let sink = Sink::new();
    sink.raise(DEFER).expect("valid name");
    let coordinator = Coordinator::builder()
        .sink(sink.clone())
        .concurrency(CONCURRENCY)
        .capacity(MEMORY_ITEMS as usize)
        .build(|item: u64, _ctx: WorkContext| noop(item))
        .expect("valid coordinator");
    tokio::task::yield_now().await;
    let (heap0, rss0) = (allocated(), rss_kib());
    for i in 0..MEMORY_ITEMS {
        coordinator.try_enqueue(i).expect("room in the queue");
    }
    let (heap1, rss1) = (allocated(), rss_kib());
    assert_eq!(coordinator.stats().queued, MEMORY_ITEMS as usize);
    let returned = coordinator.shutdown().await;
    assert_eq!(returned.len(), MEMORY_ITEMS as usize);
    drop(returned);
    drop(coordinator);

    // Baseline: a bounded tokio mpsc channel holding the same items.
    let (tx, rx) = mpsc::channel::<u64>(MEMORY_ITEMS as usize);
    let (heap2, rss2) = (allocated(), rss_kib());
    for i in 0..MEMORY_ITEMS {
        tx.try_send(i).expect("room in the channel");
    }
    let (heap3, rss3) = (allocated(), rss_kib());
    drop(rx);
    drop(tx);

    let size = std::mem::size_of::<u64>() as f64;
    MemoryResult {
        coordinator_bytes: per_item(heap0, heap1) - size,
        coordinator_rss_bytes: rss_per_item(rss0, rss1).map(|b| b - size),
        mpsc_bytes: per_item(heap2, heap3) - size,
        mpsc_rss_bytes: rss_per_item(rss2, rss3).map(|b| b - size),
    }
}

// ---------------------------------------------------------------------------------------------
// The attribute-generated `enqueue`.

/// The same no-op job declared with the attribute; the generated `enqueue` goes through the
/// global registry started by `backpressure::start()`.
#[backpressure::backpressure_worker(sink = "bench", concurrency = 4, capacity = 1024)]
async fn bench_noop(item: u64) {
    black_box(item);
}

/// Items through the generated `bench_noop::enqueue`, then `drain_all`. Each repetition
/// starts the global runtime and shuts it down afterwards (outside the timed part).
async fn macro_throughput(n: u64) -> Option<f64> {
    let runtime = backpressure::start().expect("registry starts");
    let start = Instant::now();
    for i in 0..n {
        bench_noop::enqueue(i).await.expect("worker running");
    }
    runtime.drain_all().await;
    let elapsed = start.elapsed();
    let completed = runtime
        .worker(bench_noop::NAME)
        .map(|w| w.stats.completed)
        .expect("worker registered");
    assert_eq!(completed, n);
    runtime.shutdown().await;
    Some(n as f64 / elapsed.as_secs_f64())
}

// ---------------------------------------------------------------------------------------------
// Driver.

fn machine() -> String {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split(':').nth(1))
        .map_or("unknown CPU", str::trim)
        .to_string();
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    format!("{model}, {cores} cores, Linux {}", kernel.trim())
}

/// The 1-minute load average: other processes on the machine skew every timing.
fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|l| l.split_whitespace().next().map(str::to_string))
        .unwrap_or_else(|| "?".to_string())
}

fn fmt_opt(v: Option<f64>, digits: usize) -> String {
    v.map_or_else(|| "n/a".to_string(), |v| format!("{v:.digits$}"))
}

/// Idle-CPU windows, one vector per variant.
#[derive(Default)]
struct Idle {
    ours: Vec<IdleSample>,
    model: Vec<IdleSample>,
    empty: Vec<IdleSample>,
    held_1x4: Vec<IdleSample>,
    held_100x16: Vec<IdleSample>,
    /// 1,000,000 items waiting for a retry an hour away.
    retry_waiting: Vec<IdleSample>,
    /// 100,000 items deferred by a rate whose next start is an hour away.
    rate_deferred: Vec<IdleSample>,
    /// `rate_local_error_pct`, once per idle round.
    rate_error_pct: Vec<f64>,
}

fn median_of(samples: &[IdleSample], f: impl Fn(&IdleSample) -> f64) -> f64 {
    median(&samples.iter().map(f).collect::<Vec<_>>())
}

struct Throughput {
    coordinator: Vec<f64>,
    baseline: Vec<f64>,
    via_macro: Vec<f64>,
    /// The coordinator with a subscriber at INFO (multi-thread only; empty otherwise).
    traced: Vec<f64>,
    /// The same with a subscriber at DEBUG (multi-thread only; empty otherwise).
    traced_debug: Vec<f64>,
}

async fn throughput(s: Settings) -> Throughput {
    let n = s.throughput_items;
    // Warm-up, untimed.
    coordinator_throughput(n / 10).await;
    baseline_throughput(n / 10).await;
    macro_throughput(n / 10).await;
    let mut t = Throughput {
        coordinator: vec![],
        baseline: vec![],
        via_macro: vec![],
        traced: vec![],
        traced_debug: vec![],
    };
    for rep in 0..s.throughput_reps {
        // Rotate which variant goes first.
        for k in 0..5 {
            match (k + rep) % 5 {
                0 => t.coordinator.push(coordinator_throughput(n).await),
                1 => t.baseline.push(baseline_throughput(n).await),
                2 => t.via_macro.extend(macro_throughput(n).await),
                // Blocks this worker until the traced runtime is done (see the function).
                3 => t.traced.push(traced_throughput(n, LevelFilter::INFO)),
                _ => t
                    .traced_debug
                    .push(traced_throughput(n, LevelFilter::DEBUG)),
            }
        }
    }
    t
}

/// `--profile coordinator|macro|baseline|sharded|mpmc [current]`: runs one throughput variant repeatedly
/// and prints items/s, for `perf` / `callgrind`. Not part of the benchmark proper.
fn profile_mode(args: &[String]) -> bool {
    let Some(at) = args.iter().position(|a| a == "--profile") else {
        return false;
    };
    let variant = args
        .get(at + 1)
        .map_or("coordinator", String::as_str)
        .to_string();
    let current = args.iter().any(|a| a == "current");
    let rt = if current {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
    }
    .expect("runtime");
    rt.block_on(async move {
        tokio::spawn(async move {
            for _ in 0..5 {
                let n = 1_000_000;
                let v = match variant.as_str() {
                    "macro" => macro_throughput(n).await.unwrap_or(f64::NAN),
                    "baseline" => baseline_throughput(n).await,
                    "sharded" => pools::Pool::Sharded.run(matrix::SHAPES[0], n).await,
                    "mpmc" => pools::Pool::Mpmc.run(matrix::SHAPES[0], n).await,
                    _ => coordinator_throughput(n).await,
                };
                println!("{variant}: {v:.0} items/s");
            }
        })
        .await
        .expect("profile task");
    });
    true
}

/// The same three variants on a current-thread runtime: CPU cost per item without
/// cross-thread wake-ups (steadier than the multi-thread figures; informational).
async fn single_thread(s: Settings) -> Throughput {
    let n = s.throughput_items / 2;
    let mut t = Throughput {
        coordinator: vec![],
        baseline: vec![],
        via_macro: vec![],
        traced: vec![],
        traced_debug: vec![],
    };
    for rep in 0..s.throughput_reps.div_ceil(2) {
        for k in 0..3 {
            match (k + rep) % 3 {
                0 => t.coordinator.push(coordinator_throughput(n).await),
                1 => t.baseline.push(baseline_throughput(n).await),
                _ => t.via_macro.extend(macro_throughput(n).await),
            }
        }
    }
    t
}

/// `--pools [items] [reps]`: runs section 1c alone (default 200,000 items, 21 reps) and prints
/// its table and contract lines; for comparing builds quickly. Not part of the benchmark proper.
fn pools_mode(args: &[String]) -> bool {
    let Some(at) = args.iter().position(|a| a == "--pools") else {
        return false;
    };
    let arg = |k: usize, default: u64| {
        args.get(at + k)
            .and_then(|a| a.parse().ok())
            .unwrap_or(default)
    };
    let (n, reps) = (arg(1, 200_000), arg(2, 21) as usize);
    println!("load average at start: {}", loadavg());
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let m = rt.block_on(async move {
        tokio::spawn(matrix::run(n, reps))
            .await
            .expect("pools task")
    });
    m.report(n);
    println!("load average at end: {}", loadavg());
    let (a, b) = (
        m.ratio(0, pools::Pool::Sharded),
        m.ratio(0, pools::Pool::Mpmc),
    );
    println!("throughput_ratio_vs_sharded: {:.3}", a.median);
    println!("throughput_ratio_vs_mpmc: {:.3}", b.median);
    true
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if profile_mode(&args)
        || pools_mode(&args)
        || retries::retries_mode(&args)
        || rates::rates_mode(&args)
        || resume::resume_mode(&args)
    {
        return;
    }
    let s = Settings::from_args();
    let run_start = Instant::now();
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads)
        .enable_all()
        .build()
        .expect("runtime");
    let mode = if s.quick { "--quick" } else { "default" };
    println!("backpressure benchmark ({mode} mode)");
    println!("machine: {}", machine());
    println!("load average at start: {}", loadavg());
    println!("runtime: tokio multi-thread, {threads} workers (sections 1-3); current-thread (4-5)");
    println!();

    // Sections 1-3 run as tasks on the multi-thread runtime (producers included).
    let (tp, pools, intake, resume, idle) = rt.block_on(async move {
        tokio::spawn(async move {
            let tp = throughput(s).await;
            let pools = matrix::run(s.throughput_items, s.throughput_reps).await;
            let intake = stream::run(s.throughput_items, s.throughput_reps).await;
            let resume = resume_latency(s).await;
            let mut idle = Idle::default();
            for _ in 0..s.idle_windows {
                idle.ours.push(idle_coordinator().await);
                idle.model.push(idle_model().await);
                idle.empty.push(idle_empty().await);
                idle.held_1x4.push(idle_held(HELD_1X4).await);
                idle.held_100x16.push(idle_held(HELD_100X16).await);
                idle.retry_waiting.push(retries::idle_retry_waiting().await);
                idle.rate_deferred.push(rates::idle_rate_deferred().await);
                idle.rate_error_pct.push(rates::rate_error_pct().await);
            }
            (tp, pools, intake, resume, idle)
        })
        .await
        .expect("benchmark task")
    });
    drop(rt);

    // Section 2b on a runtime of its own with exactly 2 workers.
    let one_slot = one_slot_resume(s);
    // Section 2c, likewise on a 2-worker runtime of its own.
    let after_hold = resume::run(s.resume_trials);

    // Sections 4-5 on a current-thread runtime: a woken watcher runs only when the timing loop
    // yields, and nothing else allocates while memory is counted.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let (single, gate, raise, retract, mem, retry_bytes) = rt.block_on(async move {
        let single = single_thread(s).await;
        let gate = gate_cost(s).await;
        let raise = raise_cost(s).await;
        let retract = retract_cost(s).await;
        let mem = memory().await;
        let retry_bytes = retries::retry_waiting_bytes().await;
        (single, gate, raise, retract, mem, retry_bytes)
    });
    drop(rt);

    // ------------------------------------------------------------------ report
    let n = s.throughput_items;
    let coord = median(&tp.coordinator);
    let base = median(&tp.baseline);
    let ratio = median_ratio(&tp.coordinator, &tp.baseline);
    let via_macro = (!tp.via_macro.is_empty()).then(|| median(&tp.via_macro));
    let macro_ratio = (!tp.via_macro.is_empty()).then(|| median_ratio(&tp.via_macro, &tp.baseline));
    println!(
        "1. dispatch throughput ({n} items, no-op handler, concurrency {CONCURRENCY}, \
         capacity {CAPACITY}; median of {} interleaved reps; ratio = median of per-rep ratios)",
        s.throughput_reps
    );
    println!("   multi-thread runtime            items/s   vs baseline");
    println!("   coordinator enqueue      {coord:>12.0}   {ratio:>6.3}");
    println!(
        "   #[backpressure_worker]   {:>12}   {:>6}",
        fmt_opt(via_macro, 0),
        fmt_opt(macro_ratio, 3)
    );
    let traced = median(&tp.traced);
    let traced_ratio = median_ratio(&tp.traced, &tp.baseline);
    println!(
        "   coordinator, tracing INFO {traced:>11.0}   {traced_ratio:>6.3}   \
         ({:.3} of the coordinator without; registry + INFO filter + no-op layer)",
        median_ratio(&tp.traced, &tp.coordinator)
    );
    let traced_debug = median(&tp.traced_debug);
    let traced_debug_ratio = median_ratio(&tp.traced_debug, &tp.baseline);
    println!(
        "   coordinator, tracing DEBUG {traced_debug:>10.0}   {traced_debug_ratio:>6.3}   \
         ({:.3} of the coordinator without; registry + DEBUG filter + no-op layer)",
        median_ratio(&tp.traced_debug, &tp.coordinator)
    );
    println!("   baseline mpsc + 4 tasks  {base:>12.0}   (receiver shared via tokio Mutex)");
    let (sc, sb) = (median(&single.coordinator), median(&single.baseline));
    let sm = (!single.via_macro.is_empty()).then(|| median(&single.via_macro));
    println!(
        "   current-thread runtime ({} items, {} reps)   ns/item",
        n / 2,
        single.baseline.len()
    );
    println!(
        "   coordinator enqueue      {:>12.1}   {:>6.3}",
        1e9 / sc,
        median_ratio(&single.coordinator, &single.baseline)
    );
    println!(
        "   #[backpressure_worker]   {:>12}   {:>6}",
        fmt_opt(sm.map(|v| 1e9 / v), 1),
        fmt_opt(
            (!single.via_macro.is_empty())
                .then(|| median_ratio(&single.via_macro, &single.baseline)),
            3
        )
    );
    println!("   baseline mpsc + 4 tasks  {:>12.1}", 1e9 / sb);
    pools.report(n);
    intake.report();
    println!();

    let c = &resume.coordinator_us;
    let m = &resume.model_us;
    println!(
        "2. resume latency, retract -> first handler start ({} trials; original model {} trials)",
        c.len(),
        m.len()
    );
    println!(
        "   coordinator     p50 {:>9.1} us   p99 {:>9.1} us   max {:>9.1} us",
        percentile(c, 50.0),
        percentile(c, 99.0),
        percentile(c, 100.0)
    );
    println!(
        "   original model  p50 {:>9.1} us   p99 {:>9.1} us   max {:>9.1} us   (50 ms polling)",
        percentile(m, 50.0),
        percentile(m, 99.0),
        percentile(m, 100.0)
    );
    if resume.leaks > 0 {
        println!(
            "   WARNING: {} trials started work before the retract",
            resume.leaks
        );
    }
    let (one, ext) = (&one_slot.in_runtime_us, &one_slot.external_us);
    println!(
        "2b. one held slot (concurrency 1, 1 item), own 2-worker multi-thread runtime \
         ({} + {} interleaved trials)",
        one.len(),
        ext.len()
    );
    println!(
        "   retract in a task    p50 {:>9.1} us   p99 {:>9.1} us   max {:>9.1} us   \
         (started on another thread: {} of {})",
        percentile(one, 50.0),
        percentile(one, 99.0),
        percentile(one, 100.0),
        one_slot.other_thread,
        one.len()
    );
    println!(
        "   retract off-runtime  p50 {:>9.1} us   p99 {:>9.1} us   max {:>9.1} us   \
         (from a plain thread: a cross-thread wake by construction)",
        percentile(ext, 50.0),
        percentile(ext, 99.0),
        percentile(ext, 100.0)
    );
    if one_slot.leaks > 0 {
        println!(
            "   WARNING: {} trials started work before the retract",
            one_slot.leaks
        );
    }
    after_hold.report();
    println!();

    let (ours, model, empty) = (&idle.ours, &idle.model, &idle.empty);
    let idle_ms = median_of(ours, |x| x.cpu_ms);
    let idle_rechecks = median_of(ours, |x| x.rechecks as f64);
    let model_ms = median_of(model, |x| x.cpu_ms);
    let model_rechecks = median_of(model, |x| x.rechecks as f64);
    let empty_ms = median_of(empty, |x| x.cpu_ms);
    let held_1x4_ms = median_of(&idle.held_1x4, |x| x.cpu_ms);
    let held_100x16_ms = median_of(&idle.held_100x16, |x| x.cpu_ms);
    let wakeups = |v: &[IdleSample]| {
        let w: Vec<f64> = v
            .iter()
            .filter_map(|x| x.wakeups)
            .map(|w| w as f64)
            .collect();
        if w.is_empty() {
            "?".to_string()
        } else {
            format!("{:.0}", median(&w))
        }
    };
    // A 2 s window holds at most 2 s / 50 ms + 1 points of a 50 ms re-check grid.
    let grid = IDLE_WINDOW.as_millis() / 50 + 1;
    println!(
        "3. idle while deferred ({} s windows, CPU of all threads from {}; median of {} \
         interleaved windows each; wake-ups = threads put on a CPU, from schedstat)",
        IDLE_WINDOW.as_secs(),
        ours[0].cpu_source,
        ours.len()
    );
    println!(
        "                                           CPU ms   gate re-checks   thread wake-ups"
    );
    println!(
        "   idle runtime, nothing deferred      {empty_ms:>9.2}   {:>14}   {:>15}",
        "-",
        wakeups(empty)
    );
    for (name, held, v) in [
        ("held 1 x 4 slots, 8 queued      ", HELD_1X4, &idle.held_1x4),
        (
            "held 100 x 16 slots, 32 queued  ",
            HELD_100X16,
            &idle.held_100x16,
        ),
    ] {
        let periodic = (held.coordinators * held.slots) as u128 * grid;
        println!(
            "   {name}    {:>9.2}   {:>14}   {:>15}   (a 50 ms periodic re-check: {periodic})",
            median_of(v, |x| x.cpu_ms),
            median_of(v, |x| x.rechecks as f64),
            wakeups(v)
        );
    }
    println!(
        "   held 1 x 4 slots, {IDLE_QUEUED} queued      {idle_ms:>9.2}   {:>14}   {:>15}   \
         ({} ms by /proc/self/stat ticks)",
        idle_rechecks,
        wakeups(ours),
        ours[0].ticks_ms.map_or("?".into(), |t| t.to_string()),
    );
    println!(
        "   original model, {IDLE_QUEUED} queued        {model_ms:>9.2}   {:>14}   {:>15}   \
         (one dispatcher polling every 50 ms)",
        model_rechecks,
        wakeups(model)
    );
    let verdict = |ok: bool| if ok { "met" } else { "NOT MET" };
    let target_1x4 = held_1x4_ms <= empty_ms + 1.0;
    let target_100x16 = held_100x16_ms <= empty_ms + 2.0;
    println!(
        "   target held 1 x 4 <= idle runtime + 1 ms: {held_1x4_ms:.2} <= {:.2}: {}",
        empty_ms + 1.0,
        verdict(target_1x4)
    );
    println!(
        "   target held 100 x 16 <= idle runtime + 2 ms: {held_100x16_ms:.2} <= {:.2}: {}",
        empty_ms + 2.0,
        verdict(target_100x16)
    );
    let retry_ms = median_of(&idle.retry_waiting, |x| x.cpu_ms);
    println!(
        "   1,000,000 waiting for a retry     {retry_ms:>9.2}   {:>14}   {:>15}   \
         (due in 1 h; one timer task)",
        median_of(&idle.retry_waiting, |x| x.rechecks as f64),
        wakeups(&idle.retry_waiting)
    );
    println!(
        "   target retry-waiting 1,000,000 <= idle runtime + 2 ms: {retry_ms:.2} <= {:.2}: {}",
        empty_ms + 2.0,
        verdict(retry_ms <= empty_ms + 2.0)
    );
    let rate_ms = median_of(&idle.rate_deferred, |x| x.cpu_ms);
    println!(
        "   100,000 deferred by a rate        {rate_ms:>9.2}   {:>14}   {:>15}   \
         (next start in 1 h; one timer)",
        median_of(&idle.rate_deferred, |x| x.rechecks as f64),
        wakeups(&idle.rate_deferred)
    );
    println!(
        "   target rate-deferred <= idle runtime + 1 ms: {rate_ms:.2} <= {:.2}: {}",
        empty_ms + 1.0,
        verdict(rate_ms <= empty_ms + 1.0)
    );
    let rate_error = median(&idle.rate_error_pct);
    println!(
        "   rate accuracy: {} starts at {}/s, |achieved - expected| / expected = {rate_error:.3} %",
        rates::STARTS,
        rates::PER_SECOND
    );
    println!();

    println!(
        "4a. gate decision vs active signals: unrelated, then levelled (ns; median of {} reps)",
        s.gate_reps
    );
    println!("    signals   stats().gate_open   original scan   per-item dispatch");
    for (i, count) in SIGNAL_COUNTS.iter().enumerate() {
        println!(
            "    {count:>7}   {:>17.1}   {:>13.1}   {:>17.1}",
            gate.decision_ns[i], gate.scan_ns[i], gate.dispatch_ns[i]
        );
    }
    let lv = SIGNAL_COUNTS.len();
    println!(
        "    {LEVELLED_ENTRIES:>7}   {:>17.1}   {:>13}   {:>17.1}   (levelled: keyed `{LEVELLED_NAME}` \
         at 0.2..0.9, matched by defer_on; gate limited to 1 of {CONCURRENCY} slots)",
        gate.decision_ns[lv], "-", gate.dispatch_ns[lv]
    );
    for (what, ns) in [
        ("1,000 unrelated", gate.decision_ns[2]),
        ("1,000 levelled ", gate.decision_ns[lv]),
    ] {
        println!(
            "    target {what} within 2x of 0: {ns:.1} <= {:.1}: {}",
            2.0 * gate.decision_ns[0],
            verdict(ns <= 2.0 * gate.decision_ns[0])
        );
    }
    println!("4b. raise + retract pair, caller-side (ns; watchers have 1 slot each)");
    println!("    watchers   patterns    ns/pair");
    for (w, p, ns) in &raise.rows {
        let p = match p {
            Patterns::Distinct if *w == 0 => "-",
            Patterns::Distinct => "distinct",
            Patterns::Shared => "shared",
        };
        println!("    {w:>8}   {p:<8}  {ns:>9.0}");
    }
    let retract_ns = retract.watched_raw_ns - retract.clock_ns;
    println!(
        "4c. one retract call, timed alone (ns; median of {} calls; an empty timed region, \
         {:.0} ns, subtracted)",
        s.raise_pairs, retract.clock_ns
    );
    println!(
        "    1 coordinator (4 slots held) watching   {retract_ns:>7.0}   \
         ({:.2} gate re-checks per raise/enqueue/retract cycle)",
        retract.rechecks_per_retract
    );
    println!(
        "    nobody watching                         {:>7.0}",
        retract.unwatched_raw_ns - retract.clock_ns
    );
    println!();

    println!("5. memory per queued u64 beyond size_of::<u64>() ({MEMORY_ITEMS} queued)");
    println!(
        "   coordinator       {:>6.2} B (allocator)   {} B (RSS)",
        mem.coordinator_bytes,
        fmt_opt(mem.coordinator_rss_bytes, 2)
    );
    println!(
        "   tokio mpsc        {:>6.2} B (allocator)   {} B (RSS)",
        mem.mpsc_bytes,
        fmt_opt(mem.mpsc_rss_bytes, 2)
    );
    println!(
        "   waiting for retry {retry_bytes:>6.2} B (allocator; {} waiting, enqueued 1,024 at a \
         time; target <= 96 B: {})",
        retries::WAITING,
        verdict(retry_bytes <= 96.0)
    );
    println!();
    println!(
        "total run time: {:.1} s; load average at end: {} (above ~0.5 means other processes \
         competed for the cores)",
        run_start.elapsed().as_secs_f64(),
        loadavg()
    );
    println!();

    // ------------------------------------------------------------------ contract lines
    println!("throughput_ratio: {ratio:.3}");
    println!("throughput_ratio_tracing_info: {traced_ratio:.3}");
    println!("throughput_ratio_tracing_debug: {traced_debug_ratio:.3}");
    intake.contract_lines();
    // Shape 0 of section 1c: one producer, no-op handler.
    println!(
        "throughput_ratio_vs_sharded: {:.3}",
        pools.ratio(0, pools::Pool::Sharded).median
    );
    println!(
        "throughput_ratio_vs_mpmc: {:.3}",
        pools.ratio(0, pools::Pool::Mpmc).median
    );
    match macro_ratio {
        Some(v) => println!("macro_throughput_ratio: {v:.3}"),
        None => println!("macro_throughput_ratio: n/a"),
    }
    println!("resume_p50_us: {:.1}", percentile(c, 50.0));
    println!("resume_p99_us: {:.1}", percentile(c, 99.0));
    println!("resume_1slot_p50_us: {:.1}", percentile(one, 50.0));
    println!("resume_1slot_p99_us: {:.1}", percentile(one, 99.0));
    after_hold.contract_lines();
    println!("original_model_resume_p50_us: {:.1}", percentile(m, 50.0));
    println!("idle_cpu_ms: {idle_ms:.2}");
    println!("idle_runtime_cpu_ms: {empty_ms:.2}");
    println!("deferred_cpu_ms_1x4: {held_1x4_ms:.2}");
    println!("deferred_cpu_ms_100x16: {held_100x16_ms:.2}");
    println!("gate_check_ns_0: {:.1}", gate.decision_ns[0]);
    println!("gate_check_ns_1000: {:.1}", gate.decision_ns[2]);
    println!("gate_check_ns_levels_1000: {:.1}", gate.decision_ns[lv]);
    println!("retract_call_ns: {retract_ns:.0}");
    println!("bytes_per_queued_item: {:.2}", mem.coordinator_bytes);
    println!("retry_waiting_cpu_ms_1m: {retry_ms:.2}");
    println!("retry_waiting_bytes_per_item: {retry_bytes:.2}");
    println!("rate_wait_cpu_ms: {rate_ms:.2}");
    println!("rate_local_error_pct: {rate_error:.3}");
}
