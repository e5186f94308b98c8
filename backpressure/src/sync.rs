//! Synchronisation primitives used by the crate, in one place so that a model checker can
//! swap them, and the gate's wake protocol built on them.
//!
//! In the crate's own test build with `RUSTFLAGS="--cfg backpressure_loom"`, the atomics come
//! from loom and the models in `sync/loom_tests.rs` check the protocol below (see
//! `docs/loom.md`). Only those tests may run in such a build: loom atomics panic outside a
//! loom model. A crate-specific cfg is used because tokio itself reacts to `--cfg loom`.
//!
//! # The wake protocol
//!
//! Two kinds of change open a closed gate: a sink flips an [`ActiveCount`] (a retract or an
//! expiry makes the last matching name inactive, or a `resume_on` name becomes active), or the
//! coordinator bumps its [`Epoch`] (resume, close, shutdown, a concurrency change). Either
//! side makes its change *first* and then calls `Notify::notify_waiters`.
//!
//! A slot reads the epoch and the gate during its look at the state ([`Look`]). If it has to
//! wait, it registers for wake-ups and only then compares again
//! ([`register_then_recheck`]); it sleeps only if nothing changed. A change that lands before
//! the registration is seen by the comparison, one that lands after it wakes the slot, so no
//! wake-up is lost.
//!
//! # Effects after the lock
//!
//! No user code runs while one of the crate's locks is held: `tracing` subscribers, metrics
//! recorders, subscribers' and producers' wakers may call back into the sink or the
//! coordinator, and `parking_lot` locks are not re-entrant. A transition records what it must
//! tell the world in an [`Outbox`] under the lock and performs it after release
//! ([`drain_outbox`]); one thread at a time performs, in the order recorded.

use std::collections::VecDeque;
use std::future::Future;

use tokio::time::Instant;

#[cfg(all(test, backpressure_loom))]
pub(crate) use loom::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
pub(crate) use parking_lot::{Mutex, MutexGuard};
#[cfg(not(all(test, backpressure_loom)))]
pub(crate) use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};

#[cfg(all(test, backpressure_loom))]
mod loom_tests;

/// Locks `mutex`.
///
/// `parking_lot`'s mutex rather than `std`'s: the coordinator's critical sections are a few
/// dozen nanoseconds, and under contention between a producer and slots on different runtime
/// threads its adaptive spinning keeps tokio worker threads out of the kernel (the bench
/// measured 3.5x the dispatch throughput of `std::sync::Mutex`). It does not poison: no
/// user code runs while a lock is held, so a panic cannot leave the data half-updated.
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock()
}

/// The number of active signal names matching one watched pattern.
///
/// Changed only with the sink's lock held; read without it by gates. Whoever gets `true`
/// back from [`increment`](Self::increment) or [`decrement`](Self::decrement) (a flip) must
/// wake the watch's listeners afterwards.
#[derive(Debug)]
pub(crate) struct ActiveCount(AtomicUsize);

impl ActiveCount {
    pub(crate) fn new(active: usize) -> Self {
        Self(AtomicUsize::new(active))
    }

    /// Whether at least one matching name is active. O(1).
    pub(crate) fn is_active(&self) -> bool {
        self.0.load(Ordering::SeqCst) > 0
    }

    /// A matching name became active; returns whether the count went from zero to one.
    pub(crate) fn increment(&self) -> bool {
        self.0.fetch_add(1, Ordering::SeqCst) == 0
    }

    /// A matching name became inactive; returns whether the count went from one to zero.
    pub(crate) fn decrement(&self) -> bool {
        let previous = self.0.fetch_sub(1, Ordering::SeqCst);
        debug_assert!(previous > 0, "watch count went negative");
        previous == 1
    }

    /// The current count (for tests and models).
    #[cfg(all(test, backpressure_loom))]
    pub(crate) fn get(&self) -> usize {
        self.0.load(Ordering::SeqCst)
    }
}

/// A coordinator's control epoch, bumped after every coordinator-side change that held slots
/// must see (pause, resume, close, shutdown, concurrency).
#[derive(Debug)]
pub(crate) struct Epoch(AtomicU64);

impl Epoch {
    pub(crate) fn new() -> Self {
        Self(AtomicU64::new(0))
    }

    pub(crate) fn current(&self) -> u64 {
        self.0.load(Ordering::SeqCst)
    }

    /// Records a change; the caller then calls `notify_waiters`.
    pub(crate) fn bump(&self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

/// The idle-slot side of the wake-up protocol: which pushes must wake a slot sleeping
/// because the queue was empty.
///
/// Kept under the lock producers push under (the coordinator's intake lock, taken by a slot
/// inside the state's lock when it finds both halves of the queue empty). An idle slot
/// registers its `Notified` *while holding that lock* ([`park`](Self::park)), so every `notify_one` a push sends after it reaches a
/// registered waiter instead of being folded into tokio's single stored permit (permits do
/// not add up: two `notify_one` calls with nobody registered wake one slot). A push wakes a
/// slot only while fewer wake-ups are on their way than slots are idle
/// ([`wake_one`](Self::wake_one)): a slot already woken but not yet running will take an
/// item, so waking a second one for it is wasted work. Every slot that looks again after
/// waiting accounts for one wake-up ([`unpark`](Self::unpark), [`saw_wake_up`](Self::saw_wake_up)),
/// so `waking` never overstates the wake-ups in flight; it may understate them, which only
/// costs a spare wake-up.
#[derive(Debug, Default)]
pub(crate) struct IdleSlots {
    /// Slots registered to wait for an item.
    idle: usize,
    /// `notify_one` wake-ups sent that no slot has yet accounted for.
    waking: usize,
}

impl IdleSlots {
    /// A slot found the queue empty and registered for a wake-up under the lock.
    pub(crate) fn park(&mut self) {
        self.idle += 1;
    }

    /// A slot that waited for items looks again (woken, or its wait was cut short).
    pub(crate) fn unpark(&mut self) {
        self.idle -= 1;
        self.waking = self.waking.saturating_sub(1);
    }

    /// A slot that waited on the gate looks again: it may have taken a `notify_one` meant for
    /// an idle slot.
    pub(crate) fn saw_wake_up(&mut self) {
        self.waking = self.waking.saturating_sub(1);
    }

    /// An item was pushed: returns whether the caller must `notify_one` an idle slot.
    pub(crate) fn wake_one(&mut self) -> bool {
        let wake = self.idle > self.waking;
        if wake {
            self.waking += 1;
        }
        wake
    }
}

/// How many items are queued (the producers' intake and the slots' run-ahead together) and how
/// many producers wait for space: the producers' side of the coordinator's two-lock queue.
///
/// Producers push under the intake's lock and slots take under the state's lock, so neither
/// side sees the other's counts under its own lock; these atomics are what they share. Each
/// count has one writer at a time: `pushed` is stored only under the intake's lock and
/// `taken` only under the state's lock, so both are plain stores (no read-modify-write on the
/// hot path), and since only producers add to the queue, and only under the intake's lock,
/// it never holds more than its capacity (a stale `taken` only makes a push more cautious).
///
/// The wake-up protocol is a Dekker pair: a producer that found the queue full first counts
/// itself waiting ([`wait`](Self::wait)), then (registered for a wake-up) looks at the queue
/// again; a slot first takes ([`taken`](Self::taken)), then looks at `waiting`, so at least
/// one of them sees the other and a producer never sleeps on a queue with room and nobody to
/// wake it. The slot's look at `waiting` is a read-modify-write (`fetch_add(0)`), not a load:
/// the two read-modify-writes of `waiting` are then ordered, and whichever comes second reads
/// from the first, which carries the other side's write along (acquire/release; no reliance
/// on sequential consistency across two locations, which loom does not model). The loom
/// models in `sync/loom_tests/two_lock.rs` check it, and that looking before taking loses the
/// wake-up.
#[derive(Debug, Default)]
pub(crate) struct Space {
    /// Items ever pushed (stored under the intake's lock).
    pushed: AtomicU64,
    /// Items ever taken out of the queue: started, skipped or returned (stored under the
    /// state's lock).
    taken: AtomicU64,
    waiting: AtomicUsize,
    /// Places in `capacity` kept by items out of the queue until their final outcome
    /// (running, or waiting for a retry): only a worker with `retry(...)` keeps any.
    kept: AtomicUsize,
}

impl Space {
    /// Items queued, counting both halves of the queue: exact under both locks, and under
    /// either lock once intake is closed; otherwise a recent value.
    pub(crate) fn queued(&self) -> usize {
        let (pushed, taken) = self.totals();
        // At most the capacity, a `usize`.
        (pushed - taken) as usize
    }

    /// Items ever pushed and ever taken. Under the lock slots take under, `taken` is exact
    /// and `pushed` is the count at the moment of the read: a consistent snapshot (so
    /// [`Stats`](crate::Stats) needs no lock of the producers' side).
    pub(crate) fn totals(&self) -> (u64, u64) {
        // `taken` first: it can only lag `pushed` read after it, never pass it.
        let taken = self.taken.load(Ordering::Acquire);
        (self.pushed.load(Ordering::Acquire), taken)
    }

    /// Whether a push fits within `capacity` (called under the intake's lock).
    pub(crate) fn has_room(&self, capacity: usize) -> bool {
        self.queued() + self.kept.load(Ordering::Acquire) < capacity
    }

    /// `n` taken items keep their places (a worker with `retry(...)`), stored before the
    /// take so that a producer never sees room that is not there.
    pub(crate) fn keep(&self, n: usize) {
        self.kept.fetch_add(n, Ordering::AcqRel);
    }

    /// `n` kept places are given up (final outcomes): returns whether a producer waits for
    /// space and must be woken (the same pairing as [`taken`](Self::taken)).
    pub(crate) fn release_kept(&self, n: usize) -> bool {
        self.kept.fetch_sub(n, Ordering::AcqRel);
        self.waiting.fetch_add(0, Ordering::AcqRel) > 0
    }

    /// `n` kept places become queued items again (due retries, already counted by
    /// [`untake`](Self::untake)): no room is freed, nobody to wake.
    pub(crate) fn release_kept_quietly(&self, n: usize) {
        self.kept.fetch_sub(n, Ordering::AcqRel);
    }

    /// Items ever taken out of the queue (exact under the state's lock, where takes are
    /// stored).
    pub(crate) fn taken_total(&self) -> u64 {
        self.taken.load(Ordering::Acquire)
    }

    /// `n` items go back into the queue (due retries, under the state's lock).
    pub(crate) fn untake(&self, n: usize) {
        let taken = self.taken.load(Ordering::Relaxed);
        self.taken.store(taken - n as u64, Ordering::Release);
    }

    /// An item was pushed (under the intake's lock).
    pub(crate) fn pushed(&self) {
        let pushed = self.pushed.load(Ordering::Relaxed);
        self.pushed.store(pushed + 1, Ordering::Release);
    }

    /// `n` items left the queue (under the state's lock): returns whether a producer waits
    /// for space and must be woken.
    pub(crate) fn taken(&self, n: usize) -> bool {
        let taken = self.taken.load(Ordering::Relaxed);
        self.taken.store(taken + n as u64, Ordering::Release);
        self.waiting.fetch_add(0, Ordering::AcqRel) > 0
    }

    /// A producer found the queue full and will wait (it looks again once registered).
    pub(crate) fn wait(&self) {
        self.waiting.fetch_add(1, Ordering::AcqRel);
    }

    /// A producer stopped waiting; returns how many others still wait.
    pub(crate) fn stop_waiting(&self) -> usize {
        self.waiting.fetch_sub(1, Ordering::AcqRel) - 1
    }
}

/// The held-slot side of the wake-up protocol: how many slots wait on the gate, and whether
/// one of them holds the coordinator's `max_defer` timer.
///
/// Kept under the coordinator's lock. Held slots sleep until something can change the gate's
/// answer; the only timer is the head item's `max_defer` deadline, held by **one** slot per
/// coordinator. A slot that stops holding it while others are still held must wake one of
/// them ([`hand_over`](Self::hand_over)), which re-arms it on its next look. The loom models
/// in `sync/loom_tests.rs` check that no item stays held past its deadline for lack of a
/// timer.
#[derive(Debug, Default)]
pub(crate) struct HeldSlots {
    /// Slots waiting on the gate.
    held: usize,
    /// Whether one of them sleeps until the head's `max_defer` deadline.
    timer_armed: bool,
}

impl HeldSlots {
    /// A slot is held by the gate; `deadline` says whether a `max_defer` deadline applies.
    /// Returns whether this slot takes the timer (nobody else holds it).
    pub(crate) fn hold(&mut self, deadline: bool) -> bool {
        let timer = deadline && !self.timer_armed;
        self.timer_armed |= timer;
        self.held += 1;
        timer
    }

    /// A held slot looks again; `timer` says whether it held the timer.
    pub(crate) fn release(&mut self, timer: bool) {
        self.held -= 1;
        self.timer_armed &= !timer;
    }

    /// After a slot's look: whether it must `notify_one` another held slot to take the timer
    /// over, because it held the timer (`had_timer`) and no longer does (`has_timer`: it
    /// started an item, say, or left).
    pub(crate) fn hand_over(&self, had_timer: bool, has_timer: bool) -> bool {
        had_timer && !has_timer && self.held > 0
    }

    /// Slots waiting on the gate.
    pub(crate) fn held(&self) -> usize {
        self.held
    }

    /// Whether a held slot holds the `max_defer` timer.
    #[cfg(all(test, backpressure_loom))]
    pub(crate) fn timer_armed(&self) -> bool {
        self.timer_armed
    }
}

/// What a slot saw in the look that made it decide to wait: the epoch and the gate's answer
/// (`G`: the coordinator's `Answer`, or a plain "open?" in the simplest models).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Look<G> {
    /// The epoch, read *before* the look.
    pub(crate) epoch: u64,
    /// The gate's answer during the look.
    pub(crate) gate: G,
}

/// The slot's side of the wake protocol, after a look that decided to wait.
///
/// `register` must make the slot reachable by the next `notify_waiters` (with tokio: create
/// the `Notified` and enable it). Then the epoch and the gate are compared with the look.
/// Returns whether the slot may sleep on its registration; `false` means something changed
/// since the look and the slot must look again instead.
pub(crate) fn register_then_recheck<G: PartialEq>(
    look: Look<G>,
    epoch: &Epoch,
    gate: impl FnOnce() -> G,
    register: impl FnOnce(),
) -> bool {
    register();
    epoch.current() == look.epoch && gate() == look.gate
}

/// Waits for `notified` or, if there is one, until `deadline`, whichever comes first: how the
/// crate's tasks sleep (a slot holding the `max_defer` timer, a TTL reaper).
pub(crate) async fn notified_or_deadline(
    notified: impl Future<Output = ()>,
    deadline: Option<Instant>,
) {
    match deadline {
        None => notified.await,
        Some(deadline) => {
            tokio::select! {
                () = notified => {}
                () = tokio::time::sleep_until(deadline) => {}
            }
        }
    }
}

/// Effects recorded under a lock and performed after its release, in the order recorded, by
/// one thread at a time.
///
/// Kept under the lock it belongs to. The thread that finds nobody performing claims the
/// pending effects ([`claim`](Self::claim)) before releasing the lock and performs them, then
/// everything recorded meanwhile ([`drain_outbox`]); a transition that finds a performer at
/// work leaves its effects to it. So two transitions' effects are never reordered, and an
/// effect that calls back into the owner (which records more) only queues behind itself.
#[derive(Debug)]
pub(crate) struct Outbox<E> {
    pending: VecDeque<E>,
    /// Whether a thread is performing (it has claimed and will look again).
    draining: bool,
}

impl<E> Default for Outbox<E> {
    fn default() -> Self {
        Self {
            pending: VecDeque::new(),
            draining: false,
        }
    }
}

impl<E> Outbox<E> {
    /// Records an effect, after every one recorded before it.
    pub(crate) fn push(&mut self, effect: E) {
        self.pending.push_back(effect);
    }

    /// Records an effect that supersedes every pending one (the latest gauge values, say).
    #[cfg_attr(not(feature = "metrics"), allow(dead_code))]
    pub(crate) fn replace(&mut self, effect: E) {
        self.pending.clear();
        self.pending.push_back(effect);
    }

    /// Before releasing the lock: the effects this thread must perform, if there are any and
    /// no other thread is performing.
    pub(crate) fn claim(&mut self) -> Option<VecDeque<E>> {
        if self.draining || self.pending.is_empty() {
            return None;
        }
        self.draining = true;
        Some(std::mem::take(&mut self.pending))
    }

    /// The performer looks again, handing back its emptied batch (whose buffer is reused):
    /// what was recorded meanwhile, or `None` (it stops).
    fn next_batch(&mut self, spent: VecDeque<E>) -> Option<VecDeque<E>> {
        if self.pending.is_empty() {
            self.draining = false;
            self.pending = spent;
            return None;
        }
        Some(std::mem::replace(&mut self.pending, spent))
    }
}

/// Performs a claimed `batch` with `mutex` released, then every batch recorded meanwhile,
/// until none is left. If `perform` panics, the rest of its batch is dropped and the claim
/// given up, so what is recorded later is still performed (by the next transition).
pub(crate) fn drain_outbox<S, E>(
    mutex: &Mutex<S>,
    outbox: fn(&mut S) -> &mut Outbox<E>,
    batch: VecDeque<E>,
    mut perform: impl FnMut(E),
) {
    /// Gives the claim up if `perform` unwinds.
    struct Claim<'a, S, E> {
        mutex: &'a Mutex<S>,
        outbox: fn(&mut S) -> &mut Outbox<E>,
    }
    impl<S, E> Drop for Claim<'_, S, E> {
        fn drop(&mut self) {
            if std::thread::panicking() {
                (self.outbox)(&mut lock(self.mutex)).draining = false;
            }
        }
    }
    let claim = Claim { mutex, outbox };
    let mut batch = Some(batch);
    while let Some(mut effects) = batch {
        effects.drain(..).for_each(&mut perform);
        batch = outbox(&mut lock(mutex)).next_batch(effects);
    }
    drop(claim);
}
