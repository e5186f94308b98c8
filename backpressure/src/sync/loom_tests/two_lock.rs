//! Loom models of the coordinator's two-lock queue (`coordinator/intake.rs`): producers push
//! into the intake under its own lock, slots take from the run-ahead under the state's lock
//! and move the whole intake over when the run-ahead is empty. Two wake-up paths cross the
//! two locks and are modelled here with the crate's own [`IdleSlots`] and [`Space`]:
//!
//! - idle slots, woken by pushes: a slot that finds both halves empty registers under the
//!   intake's lock (held inside the state's, as `Shared::step` and `Shared::refill` do), so
//!   a push after it sees it idle;
//! - producers waiting for space, woken by takes: the Dekker pair of [`Space`] (a producer
//!   counts itself waiting, then looks at the queue again once registered; a slot takes, then
//!   looks at the waiting count).
//!
//! A slot keeps the item it takes (a handler that never returns), so a slot or producer left
//! asleep with work it could do is a deadlock, which loom reports.

use loom::sync::Mutex;
use loom::thread;

use super::NotifyOne;
use crate::sync::{IdleSlots, Ordering, Space};

/// The two halves of the queue, each under its own lock, plus the shared counts and the two
/// `Notify`s (`wake` for slots, `space` for producers).
struct TwoLock {
    /// The state's lock: the run-ahead's length.
    state: Mutex<usize>,
    /// The intake's lock: its length and the idle slots.
    intake: Mutex<(usize, IdleSlots)>,
    counts: Space,
    wake: NotifyOne,
    space: NotifyOne,
    capacity: usize,
}

/// How a slot that took an item looks for waiting producers.
#[derive(Clone, Copy, PartialEq, Eq)]
enum TakeOrder {
    /// `Space::taken`: count the take, then read the waiting count.
    TakeThenLook,
    /// Read the waiting count first, then count the take (wrong: a producer counting itself in between, and then
    /// seeing the queue still full, sleeps with nobody to wake it).
    LookThenTake,
}

impl TwoLock {
    fn new(slots: usize, producers: usize, capacity: usize, queued: usize) -> Self {
        let counts = Space::default();
        for _ in 0..queued {
            counts.pushed();
        }
        Self {
            state: Mutex::new(0),
            intake: Mutex::new((queued, IdleSlots::default())),
            counts,
            wake: NotifyOne::new(slots),
            space: NotifyOne::new(producers),
            capacity,
        }
    }

    /// `Shared::try_push` under the intake's lock; `waiting` as `enqueue`'s guard keeps it.
    /// Returns whether the item was pushed.
    fn try_push(&self, waiting: &mut bool) -> bool {
        let mut intake = self.intake.lock().unwrap();
        let pushed = self.counts.has_room(self.capacity);
        if pushed {
            intake.0 += 1;
            self.counts.pushed();
            if intake.1.wake_one() {
                self.wake.notify_one();
            }
        }
        match (*waiting, !pushed) {
            (false, true) => self.counts.wait(),
            (true, false) => {
                self.counts.stop_waiting();
            }
            _ => {}
        }
        *waiting = !pushed;
        pushed
    }

    /// `Coordinator::enqueue`: try, register, try again, sleep.
    fn enqueue(&self, id: usize) {
        let mut waiting = false;
        loop {
            if self.try_push(&mut waiting) {
                return;
            }
            self.space.register(id);
            if self.try_push(&mut waiting) {
                // The registration may hold a wake-up now; tokio hands it on when the
                // `Notified` drops, which only costs a spare look here.
                return;
            }
            self.space.sleep(id);
        }
    }

    /// A slot, as `run_slot` + `Shared::step` + `Shared::refill` + `take_head`: returns once it
    /// has taken an item (which it keeps).
    fn slot(&self, id: usize, order: TakeOrder) {
        let mut waiting = false;
        loop {
            let mut run_ahead = self.state.lock().unwrap();
            if std::mem::take(&mut waiting) {
                self.intake.lock().unwrap().1.unpark();
            }
            if *run_ahead == 0 {
                let mut intake = self.intake.lock().unwrap();
                if intake.0 == 0 {
                    intake.1.park();
                    self.wake.register(id);
                    waiting = true;
                    drop(intake);
                    drop(run_ahead);
                    self.wake.sleep(id);
                    continue;
                }
                *run_ahead = std::mem::take(&mut intake.0);
            }
            *run_ahead -= 1;
            let wake_producer = match order {
                TakeOrder::TakeThenLook => self.counts.taken(1),
                TakeOrder::LookThenTake => {
                    let waiting = self.counts.waiting.fetch_add(0, Ordering::AcqRel) > 0;
                    let taken = self.counts.taken.load(Ordering::Relaxed);
                    self.counts.taken.store(taken + 1, Ordering::Release);
                    waiting
                }
            };
            drop(run_ahead);
            // `Effects::perform`, after release.
            if wake_producer {
                self.space.notify_one();
            }
            return;
        }
    }
}

fn check(preemptions: usize, model: impl Fn() + Send + Sync + 'static) {
    let mut builder = loom::model::Builder::new();
    builder.preemption_bound = Some(preemptions);
    builder.check(model);
}

/// Two producers each push one item into an empty queue while two idle slots go to sleep
/// across the two locks: both items are picked up, whatever the interleaving.
#[test]
fn idle_slots_across_the_two_locks_pick_up_every_item() {
    check(3, || {
        // Leaked, as in `loom_tests`: a loom `Arc` dropped while loom unwinds a deadlock
        // aborts the process.
        let queue: &'static TwoLock = Box::leak(Box::new(TwoLock::new(2, 2, 4, 0)));
        let threads = [
            thread::spawn(move || queue.slot(1, TakeOrder::TakeThenLook)),
            thread::spawn(move || queue.enqueue(0)),
            thread::spawn(move || queue.enqueue(1)),
        ];
        queue.slot(0, TakeOrder::TakeThenLook);
        for thread in threads {
            thread.join().unwrap();
        }
        assert_eq!(
            *queue.state.lock().unwrap(),
            0,
            "an item was left in the run-ahead"
        );
        assert_eq!(
            queue.intake.lock().unwrap().0,
            0,
            "an item was left in the intake"
        );
        assert_eq!(queue.counts.queued(), 0);
    });
}

/// A producer finds a queue of capacity 1 full while a slot takes its item: the producer
/// always gets its item in (and a second slot takes it), whatever the interleaving of the
/// Dekker pair.
fn producer_waiting_for_space(order: TakeOrder) {
    check(3, move || {
        let queue: &'static TwoLock = Box::leak(Box::new(TwoLock::new(2, 1, 1, 1)));
        let slot = thread::spawn(move || queue.slot(0, order));
        queue.enqueue(0);
        slot.join().unwrap();
        assert_eq!(queue.counts.queued(), 1, "the producer's item is queued");
        assert_eq!(queue.counts.waiting.load(Ordering::SeqCst), 0);
        queue.slot(1, order);
    });
}

#[test]
fn a_producer_waiting_for_space_is_woken_by_the_take_that_makes_room() {
    producer_waiting_for_space(TakeOrder::TakeThenLook);
}

/// The model catches the wrong order: a slot that reads the waiting count before it
/// decrements the queued count can miss a producer that counted itself in between and then
/// still saw the queue full; the producer sleeps with room in the queue.
#[test]
#[should_panic(expected = "deadlock")]
fn a_slot_that_looks_for_producers_before_taking_strands_one() {
    producer_waiting_for_space(TakeOrder::LookThenTake);
}

/// How a slot finishing a retrying worker's item gives up its kept place.
#[derive(Clone, Copy, PartialEq, Eq)]
enum ReleaseOrder {
    /// `Space::release_kept`: give the place up, then read the waiting count.
    ReleaseThenLook,
    /// Read the waiting count first, then give the place up (wrong, as `LookThenTake`).
    LookThenRelease,
}

impl TwoLock {
    /// A worker with `retry(...)` takes the queued item as `take_head` does (`keep`, then
    /// `taken`: the place stays counted, so no producer is woken), runs it, and at its final
    /// outcome gives the place up as `settle_attempt` does (under the state's lock, the
    /// producer's wake-up after release).
    fn retrying_slot(&self, order: ReleaseOrder) {
        let mut run_ahead = self.state.lock().unwrap();
        *run_ahead = std::mem::take(&mut self.intake.lock().unwrap().0);
        *run_ahead -= 1;
        self.counts.keep(1);
        let _ = self.counts.taken(1);
        drop(run_ahead);
        let state = self.state.lock().unwrap();
        let wake_producer = match order {
            ReleaseOrder::ReleaseThenLook => self.counts.release_kept(1),
            ReleaseOrder::LookThenRelease => {
                let waiting = self.counts.waiting.fetch_add(0, Ordering::AcqRel) > 0;
                self.counts.release_kept_quietly(1);
                waiting
            }
        };
        drop(state);
        if wake_producer {
            self.space.notify_one();
        }
    }
}

/// A queue of capacity 1 holding a retrying worker's item: the place stays kept while it
/// runs and is released at its final outcome, racing a producer waiting for space (the same
/// Dekker pair as `taken`): the producer always gets its item in.
fn producer_waiting_for_a_kept_place(order: ReleaseOrder) {
    check(3, move || {
        let queue: &'static TwoLock = Box::leak(Box::new(TwoLock::new(2, 1, 1, 1)));
        let slot = thread::spawn(move || queue.retrying_slot(order));
        queue.enqueue(0);
        slot.join().unwrap();
        assert_eq!(queue.counts.queued(), 1, "the producer's item is queued");
        assert_eq!(queue.counts.kept.load(Ordering::SeqCst), 0);
        assert_eq!(queue.counts.waiting.load(Ordering::SeqCst), 0);
    });
}

#[test]
fn a_producer_waiting_for_space_is_woken_when_a_kept_place_is_released() {
    producer_waiting_for_a_kept_place(ReleaseOrder::ReleaseThenLook);
}

/// The model catches the wrong order here too: reading the waiting count before giving the
/// place up strands a producer that counted itself in between.
#[test]
#[should_panic(expected = "deadlock")]
fn a_slot_that_looks_for_producers_before_releasing_its_place_strands_one() {
    producer_waiting_for_a_kept_place(ReleaseOrder::LookThenRelease);
}
