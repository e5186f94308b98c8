//! Loom models of the gate's wake protocol and of the idle-slot wake-up protocol (see the
//! parent module's docs and [`IdleSlots`]).
//!
//! Run with `RUSTFLAGS="--cfg backpressure_loom" cargo test -p backpressure --lib --release
//! sync::loom_tests` (the exact line is in `docs/loom.md`).
//!
//! The atomics are the crate's own [`ActiveCount`] and [`Epoch`] (loom atomics under this cfg)
//! and the slot's decision is the crate's own [`register_then_recheck`]. tokio's `Notify` is
//! not loom-aware, so [`Broadcast`] models the one property of `Notify::notify_waiters` that
//! the protocol relies on: a `Notified` created before a `notify_waiters` call is woken by it.
//! tokio implements that with a call counter captured when the `Notified` is created; so does
//! the model. The sink's lock is a loom `Mutex`: the sink flips a count under its lock and
//! wakes the listeners once it has released it (no waker runs under the lock).

use std::collections::VecDeque;

use loom::sync::atomic::AtomicBool;
use loom::sync::{Arc, Condvar, Mutex};
use loom::thread;

use super::{
    register_then_recheck, ActiveCount, AtomicUsize, Epoch, HeldSlots, IdleSlots, Look, Ordering,
};
use crate::Level;

mod quota_grants;
mod two_lock;

/// `tokio::sync::Notify`'s `notify_waiters` semantics: a registration captures the number of
/// `notify_waiters` calls so far, and sleeping returns once that number has moved on.
struct Broadcast {
    calls: Mutex<u64>,
    changed: Condvar,
}

impl Broadcast {
    fn new() -> Self {
        Self {
            calls: Mutex::new(0),
            changed: Condvar::new(),
        }
    }

    fn register(&self) -> u64 {
        *self.calls.lock().unwrap()
    }

    fn notify_waiters(&self) {
        *self.calls.lock().unwrap() += 1;
        self.changed.notify_all();
    }

    fn sleep(&self, registered: u64) {
        let mut calls = self.calls.lock().unwrap();
        while *calls == registered {
            calls = self.changed.wait(calls).unwrap();
        }
    }
}

/// A coordinator's gate inputs plus a sink's lock and a slot's wake-up, as in the crate:
/// `Gate::is_open` is "not paused, and not (a `defer_on` match without a `resume_on` match)".
struct Model {
    sink_lock: Mutex<()>,
    defer: ActiveCount,
    resume: ActiveCount,
    paused: AtomicBool,
    epoch: Epoch,
    wake: Broadcast,
}

impl Model {
    fn new(defer: usize, resume: usize, paused: bool) -> Self {
        Self {
            sink_lock: Mutex::new(()),
            defer: ActiveCount::new(defer),
            resume: ActiveCount::new(resume),
            paused: AtomicBool::new(paused),
            epoch: Epoch::new(),
            wake: Broadcast::new(),
        }
    }

    fn gate_open(&self) -> bool {
        // As `Gate::signals_hold` and `Gate::is_open`.
        let signals_hold = self.defer.is_active() && !self.resume.is_active();
        !self.paused.load(Ordering::SeqCst) && !signals_hold
    }

    /// `Sink::retract` / expiry of the last name matching `defer_on`: flip, then wake.
    fn retract_defer(&self) {
        let flipped = {
            let _sink = self.sink_lock.lock().unwrap();
            self.defer.decrement()
        };
        if flipped {
            self.wake.notify_waiters();
        }
    }

    /// `Sink::raise` of a new name matching `defer_on`.
    fn raise_defer(&self) {
        let flipped = {
            let _sink = self.sink_lock.lock().unwrap();
            self.defer.increment()
        };
        if flipped {
            self.wake.notify_waiters();
        }
    }

    /// `Sink::raise` of a name matching `resume_on`.
    fn raise_resume(&self) {
        let flipped = {
            let _sink = self.sink_lock.lock().unwrap();
            self.resume.increment()
        };
        if flipped {
            self.wake.notify_waiters();
        }
    }

    /// `Coordinator::resume`: store, bump the epoch, wake (`Shared::wake_all_slots`).
    fn resume(&self) {
        self.paused.store(false, Ordering::SeqCst);
        self.epoch.bump();
        self.wake.notify_waiters();
    }

    /// A held slot, as `run_slot` + `wait` (without the safety re-check timer, which would
    /// hide a lost wake-up): read the epoch, look at the gate, and if it is closed register,
    /// re-check and sleep. Returns once it sees the gate open, i.e. once it may start an
    /// item. Loom reports a deadlock if it sleeps with nobody left to wake it.
    fn slot_until_open(&self) {
        loop {
            let epoch = self.epoch.current();
            let gate_open = self.gate_open();
            if gate_open {
                return;
            }
            let look = Look {
                epoch,
                gate: gate_open,
            };
            let mut registered = None;
            let may_sleep = register_then_recheck(
                look,
                &self.epoch,
                || self.gate_open(),
                || registered = Some(self.wake.register()),
            );
            if may_sleep {
                if let Some(registered) = registered {
                    self.wake.sleep(registered);
                }
            }
        }
    }
}

/// A retract racing with a slot going to sleep never leaves the slot asleep while the gate is
/// open.
#[test]
fn retract_racing_with_a_sleeping_slot_is_never_lost() {
    loom::model(|| {
        let model = Arc::new(Model::new(1, 0, false));
        let sink = {
            let model = Arc::clone(&model);
            thread::spawn(move || model.retract_defer())
        };
        model.slot_until_open();
        sink.join().unwrap();
        assert!(model.gate_open());
        assert_eq!(model.defer.get(), 0);
    });
}

/// Two slots waiting on one gate are both woken by one retract.
#[test]
fn one_retract_wakes_every_held_slot() {
    loom::model(|| {
        let model = Arc::new(Model::new(1, 0, false));
        let other_slot = {
            let model = Arc::clone(&model);
            thread::spawn(move || {
                model.slot_until_open();
            })
        };
        let sink = {
            let model = Arc::clone(&model);
            thread::spawn(move || model.retract_defer())
        };
        model.slot_until_open();
        other_slot.join().unwrap();
        sink.join().unwrap();
    });
}

/// A `resume_on` raise opens the gate while the `defer_on` match stays.
#[test]
fn resume_signal_racing_with_a_sleeping_slot_is_never_lost() {
    loom::model(|| {
        let model = Arc::new(Model::new(1, 0, false));
        let sink = {
            let model = Arc::clone(&model);
            thread::spawn(move || model.raise_resume())
        };
        model.slot_until_open();
        sink.join().unwrap();
        assert_eq!((model.defer.get(), model.resume.get()), (1, 1));
    });
}

/// `Coordinator::resume` (the epoch path) racing with a slot going to sleep.
#[test]
fn resume_racing_with_a_sleeping_slot_is_never_lost() {
    loom::model(|| {
        let model = Arc::new(Model::new(0, 0, true));
        let control = {
            let model = Arc::clone(&model);
            thread::spawn(move || model.resume())
        };
        model.slot_until_open();
        control.join().unwrap();
    });
}

/// A raise and a retract of different names matching one pattern, racing with a slot: the
/// count never goes negative (`decrement` asserts it), ends where the operations say, and the
/// slot wakes once the last matching name is gone.
#[test]
fn counts_never_go_negative_and_the_last_retract_wakes() {
    // Four threads of operations: bound the preemptions so the model finishes in seconds.
    let mut builder = loom::model::Builder::new();
    builder.preemption_bound = Some(2);
    builder.check(|| {
        // One name active; a second is raised and then both are retracted, by two threads
        // that each own one name (as keyed raisers do).
        let model = Arc::new(Model::new(1, 0, false));
        let raiser = {
            let model = Arc::clone(&model);
            thread::spawn(move || {
                model.raise_defer();
                model.retract_defer();
            })
        };
        let retracter = {
            let model = Arc::clone(&model);
            thread::spawn(move || model.retract_defer())
        };
        model.slot_until_open();
        raiser.join().unwrap();
        retracter.join().unwrap();
        assert_eq!(model.defer.get(), 0);
        assert!(model.gate_open());
    });
}

/// The slot's decision alone, without sleeping: `Some(registration)` if it would sleep.
fn decide(model: &Model, recheck: bool) -> Option<u64> {
    let epoch = model.epoch.current();
    let gate_open = model.gate_open();
    if gate_open {
        return None;
    }
    let mut registered = None;
    let may_sleep = if recheck {
        register_then_recheck(
            Look {
                epoch,
                gate: gate_open,
            },
            &model.epoch,
            || model.gate_open(),
            || registered = Some(model.wake.register()),
        )
    } else {
        registered = Some(model.wake.register());
        true
    };
    registered.filter(|_| may_sleep)
}

/// Whether a slot that registered at `registered` and went to sleep would be stuck: the gate
/// is open and no `notify_waiters` came after its registration.
fn stuck(model: &Model, registered: Option<u64>) -> bool {
    registered.is_some_and(|registered| model.gate_open() && model.wake.register() == registered)
}

/// The same race as the first test, checked without sleeping: after the retract, a slot
/// that decided to sleep always has a wake-up pending.
#[test]
fn a_slot_that_decides_to_sleep_always_has_a_wake_up_pending() {
    loom::model(|| {
        let model = Arc::new(Model::new(1, 0, false));
        let sink = {
            let model = Arc::clone(&model);
            thread::spawn(move || model.retract_defer())
        };
        let decision = decide(&model, true);
        sink.join().unwrap();
        assert!(!stuck(&model, decision));
    });
}

/// The model is strong enough to catch the bug it guards against: a slot that sleeps without
/// comparing after registering misses a retract that lands between its look and its
/// registration, and loom finds that interleaving.
#[test]
#[should_panic(expected = "lost wake-up")]
fn sleeping_without_the_recheck_loses_the_wake_up() {
    loom::model(|| {
        let model = Arc::new(Model::new(1, 0, false));
        let sink = {
            let model = Arc::clone(&model);
            thread::spawn(move || model.retract_defer())
        };
        let decision = decide(&model, false);
        sink.join().unwrap();
        assert!(!stuck(&model, decision), "lost wake-up");
    });
}

// ---------------------------------------------------------------------------------------------
// The idle-slot protocol: pushes wake slots that sleep because the queue was empty.
// ---------------------------------------------------------------------------------------------

/// `tokio::sync::Notify`'s `notify_one` semantics, the ones the idle-slot protocol relies on:
/// a `notify_one` wakes one registered waiter (the longest registered, as tokio does) and,
/// with no waiter registered, stores a single permit that the next registration consumes.
/// Permits do not add up: two `notify_one` calls with nobody registered wake one waiter.
pub(super) struct NotifyOne {
    state: Mutex<NotifyState>,
    changed: Condvar,
}

struct NotifyState {
    /// Registered waiters not yet notified, oldest first.
    waiters: VecDeque<usize>,
    /// The stored permit.
    permit: bool,
    /// Per waiter: notified and not yet awake.
    notified: Vec<bool>,
}

impl NotifyOne {
    pub(super) fn new(waiters: usize) -> Self {
        Self {
            state: Mutex::new(NotifyState {
                waiters: VecDeque::new(),
                permit: false,
                notified: vec![false; waiters],
            }),
            changed: Condvar::new(),
        }
    }

    /// `Notified::enable`: registers `waiter`, or consumes the stored permit.
    pub(super) fn register(&self, waiter: usize) {
        let mut state = self.state.lock().unwrap();
        if std::mem::take(&mut state.permit) {
            state.notified[waiter] = true;
        } else {
            state.waiters.push_back(waiter);
        }
    }

    pub(super) fn notify_one(&self) {
        let mut state = self.state.lock().unwrap();
        match state.waiters.pop_front() {
            Some(waiter) => {
                state.notified[waiter] = true;
                self.changed.notify_all();
            }
            None => state.permit = true,
        }
    }

    /// Awaiting the registered `Notified`.
    pub(super) fn sleep(&self, waiter: usize) {
        let mut state = self.state.lock().unwrap();
        while !state.notified[waiter] {
            state = self.changed.wait(state).unwrap();
        }
        state.notified[waiter] = false;
    }
}

/// When an idle slot registers for a wake-up.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Registration {
    /// Under the coordinator's lock, as `Shared::step` does since issue 8.
    UnderTheLock,
    /// After releasing the lock: the protocol before issue 8 (bug A).
    AfterTheLock,
}

/// The coordinator's lock with the queue and the crate's own [`IdleSlots`], plus the slots'
/// `Notify`.
struct Queue {
    state: Mutex<QueueState>,
    wake: NotifyOne,
    registration: Registration,
}

struct QueueState {
    items: usize,
    idle: IdleSlots,
}

impl Queue {
    fn new(slots: usize, registration: Registration) -> Self {
        Self {
            state: Mutex::new(QueueState {
                items: 0,
                idle: IdleSlots::default(),
            }),
            wake: NotifyOne::new(slots),
            registration,
        }
    }

    /// `Shared::try_push`: push, and `notify_one` under the lock if `IdleSlots` says so.
    fn push(&self) {
        let mut state = self.state.lock().unwrap();
        state.items += 1;
        if state.idle.wake_one() {
            self.wake.notify_one();
        }
    }

    /// A slot, as `run_slot` + `Shared::step`: look under the lock (accounting for a wake-up
    /// first if it waited); take an item if there is one, else park, register and sleep until
    /// notified. Once it has an item it keeps it (as a handler waiting on a barrier does), so
    /// every item needs a slot of its own: a slot left asleep with an item queued is a
    /// deadlock, which loom reports.
    fn slot(&self, id: usize) {
        let mut waiting = false;
        loop {
            let mut state = self.state.lock().unwrap();
            if std::mem::take(&mut waiting) {
                state.idle.unpark();
            }
            if state.items > 0 {
                state.items -= 1;
                return;
            }
            state.idle.park();
            waiting = true;
            match self.registration {
                Registration::UnderTheLock => {
                    self.wake.register(id);
                    drop(state);
                }
                Registration::AfterTheLock => {
                    drop(state);
                    self.wake.register(id);
                }
            }
            self.wake.sleep(id);
        }
    }
}

/// Two producers each push one item while two idle slots go to sleep: both items are picked
/// up, whatever the interleaving.
fn two_producers_two_idle_slots(registration: Registration) {
    // Four threads: bound the preemptions so the model finishes in seconds (the lost wake-up
    // of the old protocol needs two).
    let mut builder = loom::model::Builder::new();
    builder.preemption_bound = Some(3);
    builder.check(move || {
        // Leaked rather than shared through a loom `Arc`: when loom reports the deadlock of
        // the old protocol it unwinds the blocked threads, and a loom `Arc` dropped during
        // that cleanup aborts the process instead of failing the test.
        let queue: &'static Queue = Box::leak(Box::new(Queue::new(2, registration)));
        let threads = [
            thread::spawn(move || queue.slot(1)),
            thread::spawn(move || queue.push()),
            thread::spawn(move || queue.push()),
        ];
        queue.slot(0);
        for thread in threads {
            thread.join().unwrap();
        }
        assert_eq!(
            queue.state.lock().unwrap().items,
            0,
            "an item was left queued"
        );
    });
}

/// Issue 8, bug A: with slots registering under the coordinator's lock, every push reaches a
/// registered slot or one that will look again, so no item is left with a slot asleep.
#[test]
fn idle_slots_registered_under_the_lock_pick_up_every_item() {
    two_producers_two_idle_slots(Registration::UnderTheLock);
}

/// The model catches bug A: slots that register after releasing the lock let two pushes fold
/// into one stored permit while `IdleSlots` counts two wake-ups; one slot takes the permit
/// and an item, the other sleeps for ever with the second item queued.
#[test]
#[should_panic(expected = "deadlock")]
fn idle_slots_registered_after_the_lock_lose_a_wake_up() {
    two_producers_two_idle_slots(Registration::AfterTheLock);
}

// ---------------------------------------------------------------------------------------------
// Held slots without a periodic re-check (issue 10): levels, expiry and the `max_defer` timer.
// ---------------------------------------------------------------------------------------------

/// `tokio::sync::Notify` with both kinds of wake-up, as the coordinator's `wake` uses it: held
/// slots are woken by the sink's `notify_waiters` and by a `notify_one` handing the `max_defer`
/// timer over, on one `Notify`.
///
/// The semantics modelled are tokio's: `notified()` captures the number of `notify_waiters`
/// calls so far, and the future completes once that number moves on, enabled or not;
/// `enable()` completes it at once if that number has moved or a stored permit is there (and
/// consumes the permit), and otherwise puts it on the waiter list; `notify_one` wakes the
/// longest-enabled waiter, or stores a single permit (permits do not add up); `notify_waiters`
/// wakes every enabled waiter and empties the list. A `Notified` dropped after a `notify_one`
/// reached it hands that wake-up on (tokio does so in its `Drop`); here the slot always
/// consumes it instead, which is the same to the protocol.
struct TokioNotify {
    state: Mutex<TokioNotifyState>,
    changed: Condvar,
}

struct TokioNotifyState {
    /// `notify_waiters` calls so far.
    calls: u64,
    /// Enabled waiters not yet woken, oldest first.
    waiters: VecDeque<usize>,
    permit: bool,
    /// Per waiter: woken and not yet awake.
    notified: Vec<bool>,
}

/// A slot's `Notified`: the `notify_waiters` count when it was created.
#[derive(Clone, Copy)]
struct Notified {
    waiter: usize,
    created: u64,
}

impl TokioNotify {
    fn new(waiters: usize) -> Self {
        Self {
            state: Mutex::new(TokioNotifyState {
                calls: 0,
                waiters: VecDeque::new(),
                permit: false,
                notified: vec![false; waiters],
            }),
            changed: Condvar::new(),
        }
    }

    /// `Notify::notified`.
    fn notified(&self, waiter: usize) -> Notified {
        Notified {
            waiter,
            created: self.state.lock().unwrap().calls,
        }
    }

    /// `Notified::enable`.
    fn enable(&self, notified: Notified) {
        let mut state = self.state.lock().unwrap();
        // A `notify_waiters` since creation completes it without touching the permit.
        if state.calls != notified.created || std::mem::take(&mut state.permit) {
            state.notified[notified.waiter] = true;
        } else if !state.waiters.contains(&notified.waiter) {
            state.waiters.push_back(notified.waiter);
        }
    }

    fn notify_one(&self) {
        let mut state = self.state.lock().unwrap();
        match state.waiters.pop_front() {
            Some(waiter) => {
                state.notified[waiter] = true;
                self.changed.notify_all();
            }
            None => state.permit = true,
        }
    }

    fn notify_waiters(&self) {
        let mut state = self.state.lock().unwrap();
        state.calls += 1;
        while let Some(waiter) = state.waiters.pop_front() {
            state.notified[waiter] = true;
        }
        self.changed.notify_all();
    }

    /// Whether the future is complete; completing it consumes the wake-up.
    fn take(state: &mut TokioNotifyState, notified: Notified) -> bool {
        let woken = std::mem::take(&mut state.notified[notified.waiter]);
        if woken || state.calls != notified.created {
            state.waiters.retain(|w| *w != notified.waiter);
            return true;
        }
        false
    }

    /// Awaiting the `Notified` (enabled or not).
    fn wait(&self, notified: Notified) {
        let mut state = self.state.lock().unwrap();
        while !Self::take(&mut state, notified) {
            state = self.changed.wait(state).unwrap();
        }
    }

    /// `select!` between the `Notified` and the deadline: returns whether a wake-up came
    /// first. Time is not modelled as running while threads are blocked, so the deadline
    /// always passes if no wake-up is there yet; the `Notified` is then dropped, leaving the
    /// waiter list.
    fn wait_until_deadline(&self, notified: Notified) -> bool {
        let mut state = self.state.lock().unwrap();
        if Self::take(&mut state, notified) {
            return true;
        }
        state.waiters.retain(|w| *w != notified.waiter);
        false
    }
}

/// One `defer_on` watch of a sink, as `sink/watch.rs` keeps it: the active count (the crate's
/// [`ActiveCount`]), the lowest level of the matching entries (published in an atomic, as
/// `Watch::min_level`), and the entries' levels under the sink's lock.
struct WatchModel {
    /// The sink's lock and the levels of the active matching entries, one per name.
    entries: Mutex<Vec<(u8, Level)>>,
    active: ActiveCount,
    min_level: AtomicUsize,
}

impl WatchModel {
    fn new(entries: &[(u8, Level)]) -> Self {
        let lowest = entries.iter().map(|(_, l)| *l).min().unwrap_or(Level::FULL);
        Self {
            entries: Mutex::new(entries.to_vec()),
            active: ActiveCount::new(entries.len()),
            min_level: AtomicUsize::new(usize::from(lowest.per_mille())),
        }
    }

    fn min_level(&self) -> Level {
        let per_mille = self.min_level.load(Ordering::SeqCst);
        Level::from_per_mille(u16::try_from(per_mille).unwrap_or(u16::MAX))
    }

    /// `Entries::raise` / `Entries::remove` → `update_watches` for the entry of name `name`,
    /// now at `level` (`None`: retracted or expired). As the crate does: under the sink's
    /// lock, publish the new lowest level *first*, then flip the count; once the lock is
    /// released, wake the listeners if the level rose or the count flipped
    /// (`WatchEntry::relevel`, `Watch::increment` / `decrement`, `WatchEntry::wake`, the
    /// sink's `Locked` guard).
    fn set(&self, name: u8, level: Option<Level>, wake: &TokioNotify) {
        let mut entries = self.entries.lock().unwrap();
        let lowest =
            |entries: &[(u8, Level)]| entries.iter().map(|(_, l)| *l).min().unwrap_or(Level::FULL);
        let before = lowest(&entries);
        let existed = entries.iter().any(|(n, _)| *n == name);
        entries.retain(|(n, _)| *n != name);
        if let Some(level) = level {
            entries.push((name, level));
        }
        let after = lowest(&entries);
        if after != before {
            self.min_level
                .store(usize::from(after.per_mille()), Ordering::SeqCst);
        }
        let mut woken = after > before;
        match (existed, level.is_some()) {
            (false, true) => woken |= self.active.increment(),
            (true, false) => woken |= self.active.decrement(),
            _ => {}
        }
        drop(entries);
        if woken {
            wake.notify_waiters();
        }
    }
}

/// `coordinator/gate.rs`'s `Answer`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Answer {
    Open,
    Closed,
    Limited(Level),
}

impl Answer {
    fn limit(self, concurrency: usize) -> usize {
        match self {
            Answer::Open => concurrency,
            Answer::Closed => 0,
            Answer::Limited(level) => level.limit(concurrency),
        }
    }
}

/// How a model slot compares the gate after registering, and when its `Notified` is created.
///
/// `run_slot` has two defences against a change that lands between its look and its sleep:
/// the `Notified` is created *before* the look (tokio's `notify_waiters` completes every
/// `Notified` created before the call, enabled or not), and after enabling it the slot
/// compares the gate's whole answer with the look's. Either alone is enough: the models
/// check each without the other.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Recheck {
    /// As `coordinator/slot.rs`: `Notified` created before the look, whole answer compared.
    Answer,
    /// `Notified` created only when registering (after the look), whole answer compared.
    LateNotified,
    /// `Notified` created when registering, and only "may everything run" compared (the
    /// `gate_open` of `Stats`): blind to a level change.
    LateNotifiedOpenOnly,
}

/// How a slot that gives up the `max_defer` timer treats the other held slots.
#[derive(Clone, Copy, PartialEq, Eq)]
enum HandOver {
    /// `HeldSlots::hand_over` says when to `notify_one`, as `Shared::step` does.
    NotifyOne,
    /// Nobody is told (the bug the hand-over guards against).
    Forgotten,
}

/// A coordinator's state under its lock, as `coordinator/state.rs` keeps it for held slots
/// (`coordinator/step.rs` changes it).
struct CoordState {
    items: usize,
    active: usize,
    /// The crate's own held-slot bookkeeping.
    held: HeldSlots,
    head_held_since: Option<u64>,
    /// Model time; it moves only when the timer's holder sleeps until its deadline.
    now: u64,
    defer_timeouts: usize,
    /// Slots currently sleeping (or about to) with the timer, counted independently of
    /// `HeldSlots` to check it.
    timer_holders: usize,
}

/// A coordinator with one `defer_on` watch: `run_slot` + `Shared::step` + `wait`, with the
/// crate's [`HeldSlots`], [`Epoch`], [`register_then_recheck`] and [`Level::limit`].
struct Coord {
    watch: WatchModel,
    epoch: Epoch,
    wake: TokioNotify,
    state: Mutex<CoordState>,
    /// The number of slots (`set_concurrency` is not modelled).
    target: usize,
    /// `max_defer`, in model time units; `None` is `MaxDefer::Never`.
    max_defer: Option<u64>,
    recheck: Recheck,
    hand_over: HandOver,
}

/// What a slot decided in one look (`Step`).
enum Step {
    Started,
    Exit,
    Wait { deadline: Option<u64>, gate: Answer },
}

impl Coord {
    #[allow(clippy::too_many_arguments)]
    fn new(
        entries: &[(u8, Level)],
        slots: usize,
        target: usize,
        items: usize,
        active: usize,
        max_defer: Option<u64>,
        recheck: Recheck,
        hand_over: HandOver,
    ) -> &'static Self {
        // Leaked rather than shared through a loom `Arc`: when loom reports a deadlock it
        // unwinds the blocked threads, and a loom `Arc` dropped during that cleanup aborts the
        // process instead of failing a `should_panic` test.
        Box::leak(Box::new(Self {
            watch: WatchModel::new(entries),
            epoch: Epoch::new(),
            wake: TokioNotify::new(slots),
            state: Mutex::new(CoordState {
                items,
                active,
                held: HeldSlots::default(),
                head_held_since: None,
                now: 0,
                defer_timeouts: 0,
                timer_holders: 0,
            }),
            target,
            max_defer,
            recheck,
            hand_over,
        }))
    }

    /// `Gate::answer` (no pause, no `resume_on`): a handful of separate atomic loads.
    fn answer(&self) -> Answer {
        if !self.watch.active.is_active() {
            return Answer::Open;
        }
        match self.watch.min_level() {
            Level::STOP => Answer::Closed,
            Level::FULL => Answer::Open,
            level => Answer::Limited(level),
        }
    }

    /// `Shared::step` for a slot whose previous wait was `timer` (`None`: it was not held).
    fn step(&self, waiting: &mut Option<bool>) -> Step {
        let mut state = self.state.lock().unwrap();
        // `stop_waiting`.
        let had_timer = match waiting.take() {
            Some(timer) => {
                state.held.release(timer);
                if timer {
                    state.timer_holders -= 1;
                }
                timer
            }
            None => false,
        };
        let step = self.decide(&mut state, waiting);
        // Two timers, or a timer flag without its holder, are bugs whatever happens next.
        assert!(
            state.timer_holders <= 1,
            "two slots hold the max_defer timer"
        );
        assert_eq!(
            state.held.timer_armed(),
            state.timer_holders == 1,
            "the timer flag disagrees with the slots"
        );
        let has_timer = *waiting == Some(true);
        if self.hand_over == HandOver::NotifyOne && state.held.hand_over(had_timer, has_timer) {
            self.wake.notify_one();
        }
        step
    }

    /// `Shared::decide` + `hold` + `take_head`, for a queue that no producer refills.
    fn decide(&self, state: &mut CoordState, waiting: &mut Option<bool>) -> Step {
        if state.items == 0 {
            return Step::Exit;
        }
        let gate = self.answer();
        if state.active >= gate.limit(self.target) {
            let deadline = match self.max_defer {
                None => None,
                Some(limit) => {
                    let now = state.now;
                    let deadline = *state.head_held_since.get_or_insert(now) + limit;
                    if deadline <= now {
                        state.defer_timeouts += 1;
                        state.head_held_since = None;
                        state.items -= 1;
                        state.active += 1;
                        return Step::Started;
                    }
                    Some(deadline)
                }
            };
            let timer = state.held.hold(deadline.is_some());
            if timer {
                state.timer_holders += 1;
            }
            *waiting = Some(timer);
            return Step::Wait {
                deadline: deadline.filter(|_| timer),
                gate,
            };
        }
        state.head_held_since = None;
        state.items -= 1;
        state.active += 1;
        Step::Started
    }

    /// A slot, as `run_slot`: loop over looks until it starts an item (which it keeps, as a
    /// handler that runs for longer than anything here does) or finds nothing left. Loom
    /// reports a deadlock if it sleeps with nobody left to wake it.
    fn slot(&self, id: usize) {
        let mut waiting = None;
        loop {
            let early = (self.recheck == Recheck::Answer).then(|| self.wake.notified(id));
            let epoch = self.epoch.current();
            match self.step(&mut waiting) {
                Step::Started | Step::Exit => return,
                Step::Wait { deadline, gate } => self.wait(id, early, epoch, deadline, gate),
            }
        }
    }

    /// `coordinator/slot.rs`'s `wait`.
    fn wait(
        &self,
        id: usize,
        early: Option<Notified>,
        epoch: u64,
        deadline: Option<u64>,
        gate: Answer,
    ) {
        let target = self.target;
        let same = || match self.recheck {
            Recheck::Answer | Recheck::LateNotified => self.answer() == gate,
            Recheck::LateNotifiedOpenOnly => {
                (self.answer().limit(target) >= target) == (gate.limit(target) >= target)
            }
        };
        let notified = early.unwrap_or_else(|| self.wake.notified(id));
        let may_sleep = register_then_recheck(
            // The model's own comparison (which the variants below vary): "still the same"
            // must read `true`, as it did at the look.
            Look { epoch, gate: true },
            &self.epoch,
            same,
            || self.wake.enable(notified),
        );
        if !may_sleep {
            return;
        }
        match deadline {
            None => self.wake.wait(notified),
            Some(deadline) => {
                if !self.wake.wait_until_deadline(notified) {
                    // The deadline passed while it slept.
                    let mut state = self.state.lock().unwrap();
                    state.now = state.now.max(deadline);
                }
            }
        }
    }

    /// After every thread is done: every item started, nobody is left held, no timer armed.
    fn check_end(&self) -> usize {
        let state = self.state.lock().unwrap();
        assert_eq!(state.items, 0, "an item was left queued");
        assert_eq!(state.held.held(), 0);
        assert!(!state.held.timer_armed());
        assert_eq!(state.timer_holders, 0);
        state.defer_timeouts
    }
}

fn level(per_mille: u16) -> Level {
    Level::from_per_mille(per_mille)
}

/// Runs `model` over every interleaving with at most `preemptions` preemptions.
fn check(preemptions: usize, model: impl Fn() + Send + Sync + 'static) {
    let mut builder = loom::model::Builder::new();
    builder.preemption_bound = Some(preemptions);
    builder.check(model);
}

/// Issue 10: an expiry (the reaper removing the last `defer_on` entry; the same
/// `Entries::remove` as a retract) racing with a held slot going to sleep with **no deadline**
/// (`MaxDefer::Never`, and no periodic re-check): the slot starts the item.
#[test]
fn expiry_racing_with_a_slot_sleeping_without_a_deadline_is_never_lost() {
    check(3, || {
        let coord = Coord::new(
            &[(1, Level::STOP)],
            1,
            1,
            1,
            0,
            None,
            Recheck::Answer,
            HandOver::NotifyOne,
        );
        let reaper = thread::spawn(move || coord.watch.set(1, None, &coord.wake));
        coord.slot(0);
        reaper.join().unwrap();
        assert_eq!(coord.check_end(), 0);
    });
}

/// A level rising on the one active entry (0.25 → 0.5 on four slots: limit 1 → 2) while a slot
/// held by the limit (one item already running) goes to sleep without a deadline: the count
/// never flips, only the level moves, and the slot starts the item.
fn level_rise_wakes_a_slot_sleeping_without_a_deadline(recheck: Recheck) {
    check(3, move || {
        let coord = Coord::new(
            &[(1, level(250))],
            1,
            4,
            1,
            1,
            None,
            recheck,
            HandOver::NotifyOne,
        );
        let raiser = thread::spawn(move || coord.watch.set(1, Some(level(500)), &coord.wake));
        coord.slot(0);
        raiser.join().unwrap();
        coord.check_end();
    });
}

#[test]
fn level_rise_racing_with_a_slot_sleeping_without_a_deadline_is_never_lost() {
    level_rise_wakes_a_slot_sleeping_without_a_deadline(Recheck::Answer);
}

/// The comparison alone (a `Notified` created only after the look) also catches the rise,
/// because it compares the level too.
#[test]
fn the_answer_recheck_alone_catches_a_level_rise() {
    level_rise_wakes_a_slot_sleeping_without_a_deadline(Recheck::LateNotified);
}

/// The model catches a recheck blind to the level: with the `Notified` created after the
/// look, comparing only "may everything run" (false at 0.25 and at 0.5 alike) misses a rise
/// that lands between the look and the registration, and the slot sleeps for ever with room
/// to run.
#[test]
#[should_panic(expected = "deadlock")]
fn a_recheck_blind_to_the_level_sleeps_through_a_level_rise() {
    level_rise_wakes_a_slot_sleeping_without_a_deadline(Recheck::LateNotifiedOpenOnly);
}

/// A retract of the *stopping* entry while a limiting one stays (STOP and 0.5 on two names):
/// the count goes 2 → 1 without flipping, the lowest level rises 0 → 0.5 (Closed →
/// Limited), and two slots held with no deadline both look again; the first takes the item
/// allowed (limit 2 of 4 with one running), the other exits on the empty queue.
#[test]
fn retract_that_only_raises_the_level_wakes_every_held_slot() {
    check(2, || {
        let coord = Coord::new(
            &[(1, Level::STOP), (2, level(500))],
            2,
            4,
            1,
            1,
            None,
            Recheck::Answer,
            HandOver::NotifyOne,
        );
        let other = thread::spawn(move || coord.slot(1));
        let sink = thread::spawn(move || coord.watch.set(1, None, &coord.wake));
        coord.slot(0);
        other.join().unwrap();
        sink.join().unwrap();
        coord.check_end();
    });
}

/// The `max_defer` timer handed over while a retract races: two held slots, two items, a
/// closed gate; a sink thread retracts entry 1 of `entries` (name, level per mille).
/// Whichever slot holds the timer starts the head at its deadline (or when the retract lets
/// it) and gives the timer up; the other, asleep without one, must be woken to take it over
/// and start the second item at *its* deadline. In every interleaving: both items start,
/// never two timers, the timer flag always matches its holder (checked in `step`), and a slot
/// asleep without the timer while the held head has no timer at all is a deadlock loom
/// reports. Returns the fewest and the most items started by timeout over all
/// interleavings.
fn timer_hand_over(hand_over: HandOver, entries: &'static [(u8, u16)]) -> (usize, usize) {
    use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
    let fewest = std::sync::Arc::new(AtomicUsize::new(usize::MAX));
    let most = std::sync::Arc::new(AtomicUsize::new(0));
    let (low, high) = (fewest.clone(), most.clone());
    check(3, move || {
        let entries: Vec<(u8, Level)> = entries.iter().map(|&(n, l)| (n, level(l))).collect();
        let coord = Coord::new(&entries, 2, 2, 2, 0, Some(10), Recheck::Answer, hand_over);
        let other = thread::spawn(move || coord.slot(1));
        let sink = thread::spawn(move || coord.watch.set(1, None, &coord.wake));
        coord.slot(0);
        other.join().unwrap();
        sink.join().unwrap();
        let timeouts = coord.check_end();
        low.fetch_min(timeouts, Relaxed);
        high.fetch_max(timeouts, Relaxed);
    });
    (fewest.load(Relaxed), most.load(Relaxed))
}

/// The retract removes one of two stopping entries: the gate stays closed (no flip, no
/// wake-up), so both items start by timeout, one after the other, through the hand-over.
#[test]
fn timer_hand_over_with_a_retract_that_keeps_the_gate_closed_starts_every_item() {
    assert_eq!(
        timer_hand_over(HandOver::NotifyOne, &[(1, 0), (2, 0)]),
        (2, 2)
    );
}

/// The retract removes the stopping entry and leaves a 0.25 one (limit 1 of 2): it wakes
/// every held slot (Closed -> Limited) while the timer may be changing hands; the second item
/// always needs the timer, the first may start under the new limit.
#[test]
fn timer_hand_over_racing_with_a_retract_to_a_level_starts_every_item() {
    assert_eq!(
        timer_hand_over(HandOver::NotifyOne, &[(1, 0), (2, 250)]),
        (1, 2)
    );
}

/// The retract opens the gate while the timer may be changing hands.
#[test]
fn timer_hand_over_racing_with_a_retract_that_opens_the_gate_starts_every_item() {
    assert_eq!(timer_hand_over(HandOver::NotifyOne, &[(1, 0)]), (0, 2));
}

/// The model catches a lost hand-over: a slot that gives the timer up without waking another
/// held slot leaves the second item held with nobody's deadline, and loom finds the deadlock.
#[test]
#[should_panic(expected = "deadlock")]
fn a_timer_given_up_without_a_wake_up_strands_the_held_item() {
    timer_hand_over(HandOver::Forgotten, &[(1, 0), (2, 0)]);
}
