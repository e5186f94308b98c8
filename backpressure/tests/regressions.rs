//! Regression tests for issue 8, through the public API only: each test reproduces one of the
//! bugs the issue reports and fails (or hangs, under a timeout that fails it) on the code
//! before the fix.
//!
//! * A — an idle slot is never woken for a queued item (a multi-thread race);
//! * B — slot tasks dropped before their first poll are never accounted;
//! * C — TTL expiry depends on the runtime that first raised a TTL;
//! * D — a panic payload (or skipped item, or skip callback leftover) whose `Drop` panics
//!   kills the slot;
//! * E — a handler that re-enqueues through a [`WeakCoordinator`] does not keep the
//!   coordinator alive.
//!
//! A and C need real time (a multi-thread runtime cannot pause its clock); their budgets and
//! limits are generous so that a loaded machine does not make them flaky. The others run on a
//! paused clock, where a timeout is reached at once when nothing can progress.
//!
//! `BACKPRESSURE_REGRESSION_A_SECS` sets A's real-time budget (default 3 s).

mod common;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Barrier, Once, OnceLock};
use std::time::{Duration, Instant};

use backpressure::{
    error::{EnqueueError, TryEnqueueError},
    Coordinator, MaxDefer, SignalEventKind, Sink, WeakCoordinator, WorkContext,
};
use common::until;
use futures_util::StreamExt;

/// A panic payload whose `Drop` panics in turn.
struct Bomb;

impl Drop for Bomb {
    fn drop(&mut self) {
        panic!("regressions: a Bomb's Drop panics");
    }
}

/// A panic payload whose `Drop` panics with another `ChainBomb`, for ever.
struct ChainBomb(u64);

impl Drop for ChainBomb {
    fn drop(&mut self) {
        std::panic::panic_any(ChainBomb(self.0 + 1));
    }
}

/// Keeps the panics these tests provoke off stderr; every other panic is reported as usual.
fn quiet_expected_panics() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let default = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let payload = info.payload();
            let expected = payload.is::<Bomb>()
                || payload.is::<ChainBomb>()
                || payload
                    .downcast_ref::<&str>()
                    .is_some_and(|m| m.starts_with("regressions: "));
            if !expected {
                default(info);
            }
        }));
    });
}

fn current_thread(paused: bool) -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .start_paused(paused)
        .build()
        .expect("a current-thread runtime")
}

fn multi_thread(workers: usize) -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers)
        .enable_all()
        .build()
        .expect("a multi-thread runtime")
}

/// Awaits `fut`, failing the test instead of hanging if it does not finish within `limit`.
async fn within<F: std::future::Future>(limit: Duration, what: &str, fut: F) -> F::Output {
    match tokio::time::timeout(limit, fut).await {
        Ok(output) => output,
        Err(_) => panic!("{what} did not happen within {limit:?}"),
    }
}

// ---------------------------------------------------------------------------------------------
// A. An idle slot must be woken for every queued item.
// ---------------------------------------------------------------------------------------------

/// What the A stress enqueues.
enum Work {
    /// Burst filler: a yield.
    Burst,
    /// Waits on the shared barrier, then reports its round.
    Meet(u64),
}

const A_CONCURRENCY: usize = 4;
const A_PUSHERS: usize = 4;

fn a_budget() -> Duration {
    let secs = std::env::var("BACKPRESSURE_REGRESSION_A_SECS")
        .ok()
        .and_then(|v| v.trim().parse::<f64>().ok())
        .unwrap_or(3.0);
    Duration::from_secs_f64(secs)
}

/// Concurrency 4, `MaxDefer::Never`, no signals, a runtime with 6 workers; 4 std threads push
/// short bursts with `try_enqueue`; between bursts, as soon as `queued + active == 0`, 4 items
/// whose handlers all wait on one 4-party barrier are enqueued. The 4 slots are idle then, so
/// they must all start, and the barrier must open. Before the fix one slot could sleep with
/// work in the queue (`queued: 1, active: 3, gate_open: true` for ever), so the rendezvous
/// never happened; the timeout is the failure signal.
#[test]
fn a_idle_slots_are_woken_for_every_queued_item() {
    let runtime = multi_thread(6);
    let barrier = Arc::new(tokio::sync::Barrier::new(A_CONCURRENCY));
    let (met_tx, met_rx) = mpsc::channel::<u64>();
    let coordinator = {
        let barrier = Arc::clone(&barrier);
        let _context = runtime.enter();
        Coordinator::builder()
            .sink(Sink::new())
            .concurrency(A_CONCURRENCY)
            .capacity(64)
            .max_defer(MaxDefer::Never)
            .build(move |work: Work, _ctx: WorkContext| {
                let barrier = Arc::clone(&barrier);
                let met = met_tx.clone();
                async move {
                    match work {
                        Work::Burst => tokio::task::yield_now().await,
                        Work::Meet(round) => {
                            barrier.wait().await;
                            let _ = met.send(round);
                        }
                    }
                }
            })
            .expect("valid configuration")
    };

    // Pushers: each round, every pusher pushes a short burst, then all meet `done`.
    let go = Arc::new(Barrier::new(A_PUSHERS + 1));
    let done = Arc::new(Barrier::new(A_PUSHERS + 1));
    let stop = Arc::new(AtomicBool::new(false));
    let pushers: Vec<_> = (0..A_PUSHERS)
        .map(|who| {
            let (coordinator, go, done, stop) = (
                coordinator.clone(),
                Arc::clone(&go),
                Arc::clone(&done),
                Arc::clone(&stop),
            );
            std::thread::spawn(move || {
                let mut round = 0_usize;
                loop {
                    go.wait();
                    if stop.load(Ordering::SeqCst) {
                        return;
                    }
                    // Bursts of 1 to 6 items, different per pusher and round.
                    for _ in 0..1 + (round * 7 + who * 3) % 6 {
                        let mut work = Work::Burst;
                        loop {
                            match coordinator.try_enqueue(work) {
                                Ok(_) => break,
                                Err(TryEnqueueError::Full(back)) => {
                                    work = back;
                                    std::thread::yield_now();
                                }
                                Err(TryEnqueueError::Closed(_)) => {
                                    panic!("intake closed during the stress")
                                }
                            }
                        }
                    }
                    round += 1;
                    done.wait();
                }
            })
        })
        .collect();

    let budget = a_budget();
    let start = Instant::now();
    // Generous real-time limits (a loaded machine can keep the workers off the CPU for a
    // while): a healthy round takes microseconds, and a slot that slept through its wake-up
    // sleeps for ever (idle slots never re-check), so the limit only bounds the failure.
    let limit = Duration::from_secs(30);
    let mut rounds = 0_u64;
    let result = (|| -> Result<(), String> {
        while start.elapsed() < budget {
            go.wait();
            done.wait();
            // Every burst item is queued: wait for the slots to go idle.
            let quiet_since = Instant::now();
            loop {
                let stats = coordinator.stats();
                if stats.queued + stats.active == 0 {
                    break;
                }
                if quiet_since.elapsed() > limit {
                    return Err(format!(
                        "round {rounds}: burst items were not all started within {limit:?}: \
                         {stats:?}"
                    ));
                }
                std::thread::yield_now();
            }
            // The rendezvous: four items for four idle slots.
            for _ in 0..A_CONCURRENCY {
                if coordinator.try_enqueue(Work::Meet(rounds)).is_err() {
                    return Err(format!("round {rounds}: the rendezvous item was refused"));
                }
            }
            for _ in 0..A_CONCURRENCY {
                match met_rx.recv_timeout(limit) {
                    Ok(round) if round == rounds => {}
                    Ok(round) => return Err(format!("round {rounds}: met {round}")),
                    Err(_) => {
                        return Err(format!(
                            "round {rounds}: the {A_CONCURRENCY} idle slots did not all start \
                             a rendezvous item within {limit:?}, a slot sleeps with work \
                             queued: {:?}",
                            coordinator.stats()
                        ))
                    }
                }
            }
            rounds += 1;
        }
        Ok(())
    })();

    // Release the pushers whatever happened, then report.
    stop.store(true, Ordering::SeqCst);
    go.wait();
    for pusher in pushers {
        pusher.join().expect("pusher thread");
    }
    eprintln!("A: {rounds} rounds in {:?}", start.elapsed());
    if let Err(failure) = result {
        panic!("{failure}");
    }
    assert!(rounds > 0, "no round ran within {budget:?}");
    let stats = coordinator.stats();
    assert!(stats.is_consistent(), "{stats:?}");
    assert_eq!((stats.failed, stats.panicked), (0, 0), "{stats:?}");
    drop(coordinator);
    drop(runtime);
}

// ---------------------------------------------------------------------------------------------
// B. Slot tasks dropped before their first poll give their slot back.
// ---------------------------------------------------------------------------------------------

fn b_build(ran: &Arc<AtomicUsize>, concurrency: usize) -> Coordinator<u32> {
    let ran = Arc::clone(ran);
    Coordinator::builder()
        .sink(Sink::new())
        .concurrency(concurrency)
        .capacity(1)
        .build(move |_: u32, _ctx: WorkContext| {
            ran.fetch_add(1, Ordering::SeqCst);
            async {}
        })
        .expect("valid configuration")
}

/// What a user of a coordinator whose slots can never run must see, on another runtime:
/// `drain` returns, intake is closed (`try_enqueue` and `enqueue` on a full queue hand the
/// item back at once), and `shutdown` returns what is still queued.
async fn b_check_dead(coordinator: &Coordinator<u32>, queued: Vec<u32>) {
    let limit = Duration::from_secs(3_600);
    within(
        limit,
        "drain of a coordinator whose slots cannot run",
        coordinator.drain(),
    )
    .await;
    let stats = coordinator.stats();
    assert!(
        stats.closed,
        "intake stays open with no slot to run it: {stats:?}"
    );
    assert!(stats.is_consistent(), "{stats:?}");
    assert!(matches!(
        coordinator.try_enqueue(7),
        Err(TryEnqueueError::Closed(7))
    ));
    // The queue is full (capacity 1) if an item is still queued: `enqueue` must not wait.
    let refused = within(
        limit,
        "enqueue on a closed coordinator",
        coordinator.enqueue(8),
    )
    .await;
    assert!(matches!(refused, Err(EnqueueError(8))));
    let returned = within(limit, "shutdown", coordinator.shutdown()).await;
    assert_eq!(returned, queued);
    assert!(coordinator.stats().is_consistent());
}

/// The coordinator is built on a current-thread runtime that is dropped before it ever runs
/// the slots. Before the fix the slots stayed counted as live: `drain` hung, intake stayed
/// open and accepted items nothing would run.
#[test]
fn b_slots_dropped_before_their_first_poll_close_intake() {
    let ran = Arc::new(AtomicUsize::new(0));
    let first = current_thread(false);
    let coordinator = {
        let _context = first.enter();
        b_build(&ran, 2)
    };
    coordinator
        .try_enqueue(1)
        .map_err(|_| "refused")
        .expect("intake is open while the slots exist");
    drop(first);

    current_thread(true).block_on(b_check_dead(&coordinator, vec![1]));
    assert_eq!(ran.load(Ordering::SeqCst), 0);
}

/// `set_concurrency(3)` on a coordinator whose runtime is gone spawns slots that tokio drops
/// unpolled. Before the fix they stayed counted as live: with an item still queued, `drain`
/// hung although nothing could ever run it.
#[test]
fn b_set_concurrency_after_the_runtime_is_gone_does_not_count_phantom_slots() {
    let ran = Arc::new(AtomicUsize::new(0));
    let first = current_thread(false);
    let coordinator = {
        let _context = first.enter();
        b_build(&ran, 1)
    };
    // The slot runs once on the first runtime, so it is a real, polled task...
    first.block_on(async {
        coordinator.enqueue(0).await.map_err(|_| "refused").unwrap();
        until(
            "the first item ran",
            || coordinator.stats(),
            |s| s.completed == 1,
        )
        .await;
    });
    // ... then an item is queued that it will never run, and its runtime goes away.
    coordinator
        .try_enqueue(1)
        .map_err(|_| "refused")
        .expect("intake is open while the slot exists");
    drop(first);
    coordinator.set_concurrency(3).expect("valid concurrency");
    assert_eq!(coordinator.stats().concurrency, 3);

    current_thread(true).block_on(b_check_dead(&coordinator, vec![1]));
    assert_eq!(ran.load(Ordering::SeqCst), 1);
}

/// The racy form: `set_concurrency(8)` immediately followed by dropping a multi-thread
/// runtime. Whatever tokio did with the new slot tasks (ran them, or dropped them unpolled),
/// the coordinator ends closed and `drain` returns.
#[test]
fn b_set_concurrency_racing_with_a_multi_thread_runtime_shutdown() {
    for round in 0..20 {
        let ran = Arc::new(AtomicUsize::new(0));
        let runtime = multi_thread(2);
        let coordinator = {
            let _context = runtime.enter();
            b_build(&ran, 1)
        };
        coordinator.set_concurrency(8).expect("valid concurrency");
        drop(runtime);
        current_thread(true).block_on(async {
            within(
                Duration::from_secs(3_600),
                "drain after the slots' runtime shut down",
                coordinator.drain(),
            )
            .await;
        });
        let stats = coordinator.stats();
        assert!(stats.closed, "round {round}: {stats:?}");
        assert!(stats.is_consistent(), "round {round}: {stats:?}");
        assert!(matches!(
            coordinator.try_enqueue(1),
            Err(TryEnqueueError::Closed(1))
        ));
    }
}

// ---------------------------------------------------------------------------------------------
// C. TTL expiry does not depend on the runtime that first raised a TTL.
// ---------------------------------------------------------------------------------------------

/// The scenario on a live multi-thread runtime, once a TTL was raised from a helper
/// runtime that is kept alive but never driven again: a held item must start when its 20 ms
/// `defer_on` TTL runs out (not at the 60 s safety re-check), and a subscriber must see the
/// `Expired` event of a 10 ms TTL. Real time; the limits (30 s, generous for a loaded
/// machine) are far below the 60 s re-check and far above the TTLs.
fn c_expiry_on_a_live_runtime(sink: &Sink, live: &tokio::runtime::Runtime) {
    let limit = Duration::from_secs(30);
    live.block_on(async {
        let mut events = sink.subscribe();
        let (started_tx, mut started_rx) = tokio::sync::mpsc::unbounded_channel();
        let coordinator = Coordinator::builder()
            .sink(sink.clone())
            .concurrency(1)
            .defer_on("backpressure.*")
            .max_defer(MaxDefer::Never)
            .defer_check_interval(Duration::from_secs(60))
            .build(move |(): (), _ctx: WorkContext| {
                let _ = started_tx.send(Instant::now());
                async {}
            })
            .expect("valid configuration");
        sink.raise_for("backpressure.busy", Duration::from_millis(20))
            .unwrap();
        let enqueued = Instant::now();
        coordinator.enqueue(()).await.unwrap();
        let started = within(
            limit,
            "the held item starting once its 20 ms TTL ran out",
            started_rx.recv(),
        )
        .await
        .expect("the handler ran");
        let held = started.duration_since(enqueued);
        assert!(held < limit, "held for {held:?}");
        assert!(!sink.is_raised("backpressure.busy"));
        assert_eq!(coordinator.stats().defer_timeouts, 0);

        sink.raise_for("other.short", Duration::from_millis(10))
            .unwrap();
        within(limit, "an Expired event for a 10 ms TTL", async {
            loop {
                let event = events
                    .next()
                    .await
                    .expect("the sink is alive")
                    .expect("no lag");
                if event.kind == SignalEventKind::Expired && &*event.name == "other.short" {
                    return;
                }
            }
        })
        .await;
        within(limit, "drain", coordinator.drain()).await;
    });
}

/// The helper runtime raised its TTL on another thread (the scenario, with the
/// helper on a thread of its own). Before the fix its reaper, spawned on the undriven helper,
/// was the sink's only one: the held item started at the safety re-check.
#[test]
fn c_ttl_expiry_does_not_depend_on_an_undriven_runtime() {
    let sink = Sink::new();
    let helper = {
        let sink = sink.clone();
        std::thread::spawn(move || {
            let helper = current_thread(false);
            helper.block_on(async {
                sink.raise_for("other.helper", Duration::from_millis(1))
                    .unwrap();
            });
            helper
        })
        .join()
        .expect("helper thread")
    };
    // `helper` stays alive, never driven again.
    let live = multi_thread(2);
    c_expiry_on_a_live_runtime(&sink, &live);
    drop(live);
    drop(helper);
}

/// The same, with the helper runtime driven from the very thread that later drives the live
/// runtime (`block_on` on one, then `block_on` on the other, as a `main` might do).
///
/// Still fails after the fix of bd1e7f3: `ensure_reaper` remembers reapers per *thread*, and
/// this thread's entry (the reaper on the undriven helper) stays alive, so no reaper is ever
/// started on the live runtime; the item starts at the safety re-check.
#[test]
fn c_ttl_expiry_does_not_depend_on_an_undriven_runtime_used_from_the_same_thread() {
    let sink = Sink::new();
    let helper = current_thread(false);
    helper.block_on(async {
        sink.raise_for("other.helper", Duration::from_millis(1))
            .unwrap();
    });
    // `helper` stays alive, never driven again.
    let live = multi_thread(2);
    c_expiry_on_a_live_runtime(&sink, &live);
    drop(live);
    drop(helper);
}

// ---------------------------------------------------------------------------------------------
// D. Panic payloads, skipped items and skip-callback leftovers whose `Drop` panics.
// ---------------------------------------------------------------------------------------------

/// An item that can carry a `Drop` that panics with a [`Bomb`] payload.
struct Item {
    id: u32,
    bomb_on_drop: bool,
}

impl Item {
    fn plain(id: u32) -> Self {
        Self {
            id,
            bomb_on_drop: false,
        }
    }

    fn bomb(id: u32) -> Self {
        Self {
            id,
            bomb_on_drop: true,
        }
    }
}

impl Drop for Item {
    fn drop(&mut self) {
        if std::mem::take(&mut self.bomb_on_drop) {
            std::panic::panic_any(Bomb);
        }
    }
}

/// How a D handler ends for each item id.
#[derive(Clone, Copy)]
enum Payload {
    Bomb,
    ChainBomb,
}

fn d_build(
    sink: &Sink,
    panics: &[(u32, Payload)],
    on_skip: Option<Box<dyn Fn(Item) + Send + Sync>>,
) -> (Coordinator<Item>, tokio::sync::mpsc::UnboundedReceiver<u32>) {
    let (done_tx, done_rx) = tokio::sync::mpsc::unbounded_channel();
    let panics = panics.to_vec();
    let mut builder = Coordinator::builder()
        .sink(sink.clone())
        .concurrency(1)
        .cancel_on("cancel.*");
    if let Some(on_skip) = on_skip {
        builder = builder.on_skip(on_skip);
    }
    let coordinator = builder
        .build(move |item: Item, _ctx: WorkContext| {
            let done = done_tx.clone();
            let payload = panics.iter().find(|(id, _)| *id == item.id).map(|p| p.1);
            async move {
                tokio::task::yield_now().await;
                match payload {
                    Some(Payload::Bomb) => std::panic::panic_any(Bomb),
                    Some(Payload::ChainBomb) => std::panic::panic_any(ChainBomb(0)),
                    None => {
                        let _ = done.send(item.id);
                    }
                }
            }
        })
        .expect("valid configuration");
    (coordinator, done_rx)
}

/// The ids the handler completes next, in order; fails instead of hanging.
async fn d_completed(done: &mut tokio::sync::mpsc::UnboundedReceiver<u32>, n: usize) -> Vec<u32> {
    let mut ids = Vec::new();
    for _ in 0..n {
        let id = within(
            Duration::from_secs(3_600),
            "the next item completing",
            done.recv(),
        )
        .await
        .expect("the coordinator is alive");
        ids.push(id);
    }
    ids
}

/// The slot survived: the coordinator is open, still has its one slot, and runs a new item.
async fn d_still_running(
    coordinator: &Coordinator<Item>,
    done: &mut tokio::sync::mpsc::UnboundedReceiver<u32>,
) {
    let stats = coordinator.stats();
    assert!(!stats.closed, "the slot died and intake closed: {stats:?}");
    assert_eq!(stats.concurrency, 1);
    assert!(stats.is_consistent(), "{stats:?}");
    assert!(coordinator.try_enqueue(Item::plain(99)).is_ok());
    assert_eq!(d_completed(done, 1).await, [99]);
}

/// A handler panics with `panic_any(Bomb)` where `Bomb`'s `Drop` panics; concurrency 1.
/// Before the fix the payload was dropped outside `catch_unwind`: the one slot died, intake
/// closed and the next items never ran.
#[tokio::test(start_paused = true)]
async fn d_panic_payload_whose_drop_panics_does_not_kill_the_slot() {
    quiet_expected_panics();
    let sink = Sink::new();
    let (coordinator, mut done) = d_build(&sink, &[(0, Payload::Bomb)], None);
    for id in 0..4 {
        assert!(coordinator.try_enqueue(Item::plain(id)).is_ok());
    }
    assert_eq!(d_completed(&mut done, 3).await, [1, 2, 3]);
    let stats = coordinator.stats();
    assert_eq!((stats.panicked, stats.completed), (1, 3), "{stats:?}");
    d_still_running(&coordinator, &mut done).await;
    coordinator.drain().await;
    assert_eq!(coordinator.stats().completed, 4);
}

/// A payload whose `Drop` panics with a payload whose `Drop` panics, for ever: the slot must
/// give up on it (leak it) rather than die. Before the fix this wedged the runtime thread
/// itself, so the scenario runs on a thread of its own under a real-time limit.
#[test]
fn d_panic_payload_that_keeps_panicking_when_dropped_does_not_kill_the_slot() {
    quiet_expected_panics();
    let (done_tx, done_rx) = mpsc::channel();
    std::thread::spawn(move || {
        current_thread(true).block_on(async {
            let sink = Sink::new();
            let (coordinator, mut done) = d_build(&sink, &[(1, Payload::ChainBomb)], None);
            for id in 0..3 {
                assert!(coordinator.try_enqueue(Item::plain(id)).is_ok());
            }
            assert_eq!(d_completed(&mut done, 2).await, [0, 2]);
            assert_eq!(coordinator.stats().panicked, 1);
            d_still_running(&coordinator, &mut done).await;
            coordinator.drain().await;
        });
        let _ = done_tx.send(());
    });
    let limit = Duration::from_secs(30);
    match done_rx.recv_timeout(limit) {
        Ok(()) => {}
        Err(mpsc::RecvTimeoutError::Disconnected) => panic!("the scenario failed (see above)"),
        Err(mpsc::RecvTimeoutError::Timeout) => panic!("the scenario hung for {limit:?}"),
    }
}

/// Skipping runs user code too. (1) No skip callback: a skipped item whose `Drop` panics with
/// a `Bomb` payload. (2) A skip callback that panics with a `Bomb`, and one that drops a
/// bomb item. Before the fix each of these payloads was dropped outside `catch_unwind` and
/// killed the slot.
#[tokio::test(start_paused = true)]
async fn d_skipped_items_and_skip_callbacks_whose_leftovers_panic_do_not_kill_the_slot() {
    quiet_expected_panics();
    let sink = Sink::new();

    // (1) The item is dropped by the coordinator.
    let (coordinator, mut done) = d_build(&sink, &[], None);
    sink.raise("cancel.now").unwrap();
    assert!(coordinator.try_enqueue(Item::bomb(0)).is_ok());
    until(
        "the bomb item was skipped",
        || coordinator.stats(),
        |s| s.skipped == 1,
    )
    .await;
    sink.retract("cancel.now").unwrap();
    for id in 1..3 {
        assert!(coordinator.try_enqueue(Item::plain(id)).is_ok());
    }
    assert_eq!(d_completed(&mut done, 2).await, [1, 2]);
    assert_eq!(coordinator.stats().skipped, 1);
    d_still_running(&coordinator, &mut done).await;
    coordinator.drain().await;

    // (2) The callback panics with a Bomb (item 10), or drops a bomb item (item 11).
    let skipped = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&skipped);
    let on_skip = Box::new(move |item: Item| {
        counter.fetch_add(1, Ordering::SeqCst);
        if item.id == 10 {
            std::panic::panic_any(Bomb);
        }
        drop(item);
    });
    let (coordinator, mut done) = d_build(&sink, &[], Some(on_skip));
    sink.raise("cancel.now").unwrap();
    assert!(coordinator.try_enqueue(Item::plain(10)).is_ok());
    until(
        "item 10 was skipped",
        || coordinator.stats(),
        |s| s.skipped == 1,
    )
    .await;
    assert!(coordinator.try_enqueue(Item::bomb(11)).is_ok());
    until(
        "item 11 was skipped",
        || coordinator.stats(),
        |s| s.skipped == 2,
    )
    .await;
    sink.retract("cancel.now").unwrap();
    for id in 12..14 {
        assert!(coordinator.try_enqueue(Item::plain(id)).is_ok());
    }
    assert_eq!(d_completed(&mut done, 2).await, [12, 13]);
    assert_eq!(skipped.load(Ordering::SeqCst), 2);
    let stats = coordinator.stats();
    assert_eq!((stats.skipped, stats.panicked), (2, 0), "{stats:?}");
    d_still_running(&coordinator, &mut done).await;
    coordinator.drain().await;
}

// ---------------------------------------------------------------------------------------------
// E. A handler that re-enqueues through a WeakCoordinator does not keep it alive.
// ---------------------------------------------------------------------------------------------

/// An item that counts its drops.
struct Tracked {
    id: u32,
    drops: Arc<AtomicUsize>,
}

impl Drop for Tracked {
    fn drop(&mut self) {
        self.drops.fetch_add(1, Ordering::SeqCst);
    }
}

/// A coordinator whose handler re-enqueues `id + 1` after every id below 3 through a
/// [`WeakCoordinator`], reporting each id it runs. The returned token is held by the handler
/// only: it dies when the handler is freed.
fn e_build(
    drops: &Arc<AtomicUsize>,
) -> (
    Coordinator<Tracked>,
    tokio::sync::mpsc::UnboundedReceiver<u32>,
    std::sync::Weak<()>,
) {
    let me: Arc<OnceLock<WeakCoordinator<Tracked>>> = Arc::default();
    let handle = Arc::clone(&me);
    let token = Arc::new(());
    let alive = Arc::downgrade(&token);
    let (ran_tx, ran_rx) = tokio::sync::mpsc::unbounded_channel();
    let drops = Arc::clone(drops);
    let coordinator = Coordinator::builder()
        .sink(Sink::new())
        .concurrency(2)
        .capacity(16)
        .build(move |item: Tracked, _ctx: WorkContext| {
            let _token = &token;
            let me = handle.get().and_then(WeakCoordinator::upgrade);
            let ran = ran_tx.clone();
            let drops = Arc::clone(&drops);
            async move {
                if item.id < 3 {
                    if let Some(me) = me {
                        let next = Tracked {
                            id: item.id + 1,
                            drops,
                        };
                        assert!(me.try_enqueue(next).is_ok(), "follow-up refused");
                    }
                }
                let _ = ran.send(item.id);
            }
        })
        .expect("valid configuration");
    me.set(coordinator.downgrade()).expect("set once");
    (coordinator, ran_rx, alive)
}

/// The follow-up chain runs through the weak handle; once the last user handle is gone,
/// intake closes (the queued items still run, then the slots leave and free the handler).
/// With a strong handle in the handler, intake never closed and the slots never left.
#[tokio::test(start_paused = true)]
async fn e_weak_coordinator_in_a_handler_re_enqueues_without_keeping_it_alive() {
    let drops = Arc::new(AtomicUsize::new(0));
    let (coordinator, mut ran, handler) = e_build(&drops);
    let weak = coordinator.downgrade();
    let item = |id| Tracked {
        id,
        drops: Arc::clone(&drops),
    };
    coordinator
        .enqueue(item(0))
        .await
        .map_err(|_| "refused")
        .unwrap();
    let mut chain = Vec::new();
    for _ in 0..4 {
        chain.push(
            within(Duration::from_secs(3_600), "the next follow-up", ran.recv())
                .await
                .unwrap(),
        );
    }
    assert_eq!(
        chain,
        [0, 1, 2, 3],
        "the handler re-enqueued through the weak handle"
    );

    // Items still queued when the last user handle goes.
    coordinator.pause();
    coordinator
        .enqueue_many((10..15).map(item))
        .await
        .map_err(|_| "refused")
        .unwrap();
    coordinator.resume();
    drop(coordinator);
    assert!(
        weak.upgrade().is_none(),
        "the handler keeps the coordinator alive"
    );
    until(
        "the slots leave and free the handler (strong count)",
        || handler.strong_count(),
        |count| *count == 0,
    )
    .await;
    let mut rest = Vec::new();
    while let Ok(id) = ran.try_recv() {
        rest.push(id);
    }
    rest.sort_unstable();
    assert_eq!(
        rest,
        [10, 11, 12, 13, 14],
        "queued items still run after the close"
    );
    assert_eq!(
        drops.load(Ordering::SeqCst),
        9,
        "every item was dropped once"
    );
    assert!(
        ran.recv().await.is_none(),
        "the handler (and its sender) is gone"
    );
}

/// Every user handle and the runtime are dropped while items are queued (paused): the
/// coordinator is freed and the queued items are dropped. With a strong handle captured by
/// the handler they leaked for ever.
#[test]
fn e_queued_items_are_dropped_when_the_last_handle_and_the_runtime_go() {
    let drops = Arc::new(AtomicUsize::new(0));
    let runtime = current_thread(true);
    let (coordinator, handler) = runtime.block_on(async {
        let (coordinator, mut ran, handler) = e_build(&drops);
        let item = |id| Tracked {
            id,
            drops: Arc::clone(&drops),
        };
        coordinator
            .enqueue(item(0))
            .await
            .map_err(|_| "refused")
            .unwrap();
        for expected in 0..4 {
            let id = within(Duration::from_secs(3_600), "the next follow-up", ran.recv()).await;
            assert_eq!(id, Some(expected));
        }
        coordinator.pause();
        coordinator
            .enqueue_many((10..15).map(item))
            .await
            .map_err(|_| "refused")
            .unwrap();
        assert_eq!(coordinator.stats().queued, 5);
        (coordinator, handler)
    });
    let weak = coordinator.downgrade();
    drop(coordinator);
    assert!(
        weak.upgrade().is_none(),
        "the handler keeps the coordinator alive"
    );
    drop(runtime);
    assert_eq!(
        drops.load(Ordering::SeqCst),
        9,
        "the 5 queued items were not dropped"
    );
    assert_eq!(handler.strong_count(), 0, "the handler leaked");
}
