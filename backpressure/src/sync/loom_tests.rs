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
//! the model. The sink's lock is a loom `Mutex`, as the sink holds its lock while it flips a
//! count and wakes the listeners.

use std::collections::VecDeque;

use loom::sync::atomic::AtomicBool;
use loom::sync::{Arc, Condvar, Mutex};
use loom::thread;

use super::{register_then_recheck, ActiveCount, Epoch, IdleSlots, Look, Ordering};

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
        let _sink = self.sink_lock.lock().unwrap();
        if self.defer.decrement() {
            self.wake.notify_waiters();
        }
    }

    /// `Sink::raise` of a new name matching `defer_on`.
    fn raise_defer(&self) {
        let _sink = self.sink_lock.lock().unwrap();
        if self.defer.increment() {
            self.wake.notify_waiters();
        }
    }

    /// `Sink::raise` of a name matching `resume_on`.
    fn raise_resume(&self) {
        let _sink = self.sink_lock.lock().unwrap();
        if self.resume.increment() {
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
            let look = Look { epoch, gate_open };
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
            Look { epoch, gate_open },
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
struct NotifyOne {
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
    fn new(waiters: usize) -> Self {
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
    fn register(&self, waiter: usize) {
        let mut state = self.state.lock().unwrap();
        if std::mem::take(&mut state.permit) {
            state.notified[waiter] = true;
        } else {
            state.waiters.push_back(waiter);
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

    /// Awaiting the registered `Notified`.
    fn sleep(&self, waiter: usize) {
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
