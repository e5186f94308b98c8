//! The producers' half of the coordinator's queue: pushes land in the [`Intake`] under a lock
//! of its own, so producers and slots do not contend on one lock for every item.
//!
//! The queue is a two-lock queue. Producers push at the back of the intake under the intake's
//! lock; slots take from the front of the run-ahead (`State::items`) under the state's lock,
//! and when the run-ahead is empty a slot moves the whole intake into it at once (a swap of
//! the two buffers, under both locks). The run-ahead is always older than the intake, so items
//! start in the order they were enqueued, and both halves are shared by every slot, so no
//! item waits behind a busy slot. Lock order: the state's lock, then the intake's; a producer
//! takes only the intake's, except when a watermark policy or the metrics' gauges need the
//! slots' half too.
//!
//! What both sides must see, the number of queued items and of producers waiting for space,
//! is in [`Space`](crate::sync::Space). Anything that must see the whole queue at once
//! ([`stats`](Shared::stats), closing, `shutdown`'s give-back) holds both locks.

use std::collections::VecDeque;

use super::state::{Queued, Shared, State};
use super::telemetry::Enqueued;
use crate::error::TryEnqueueError;
use crate::sync::{lock, IdleSlots};

/// What producers touch, under the intake's lock.
pub(super) struct Intake<T> {
    /// Items pushed since a slot last moved the intake into the run-ahead, oldest first.
    pub(super) items: VecDeque<Queued<T>>,
    /// Whether intake is closed (set together with `State::closed`, under both locks).
    pub(super) closed: bool,
    next_id: u64,
    /// Items ever accepted.
    pub(super) enqueued: u64,
    /// Slots waiting for an item to arrive, and the wake-ups sent to them: kept here because
    /// a push decides whether to wake one, and a slot registers under this lock when it finds
    /// both halves of the queue empty.
    pub(super) idle: IdleSlots,
}

impl<T> Default for Intake<T> {
    fn default() -> Self {
        Self {
            items: VecDeque::new(),
            closed: false,
            next_id: 0,
            enqueued: 0,
            idle: IdleSlots::default(),
        }
    }
}

impl<T> Shared<T> {
    /// Pushes an item if there is room. `waiting` tracks whether this producer is counted
    /// among those waiting for space; it is `None` for a producer that will not wait when the
    /// queue is full.
    pub(super) fn try_push(
        &self,
        item: T,
        waiting: Option<&mut bool>,
    ) -> Result<(), TryEnqueueError<T>> {
        let trace = Enqueued::capture(self.stamp_items);
        let mut state = self.push_sees_state.then(|| self.lock());
        let mut intake = lock(&self.intake);
        let result = if intake.closed {
            Err(TryEnqueueError::Closed(item))
        } else if !self.space_count.has_room(self.config.capacity) {
            Err(TryEnqueueError::Full(item))
        } else {
            let id = intake.next_id;
            intake.next_id += 1;
            intake.enqueued += 1;
            intake.items.push_back(Queued { id, item, trace });
            self.space_count.pushed();
            if intake.idle.wake_one() {
                self.wake.notify_one();
            }
            if let Some(state) = state.as_mut() {
                self.update_gauges(state);
                self.queue_changed_with(state, Some(&intake));
            }
            Ok(())
        };
        if let Some(waiting) = waiting {
            let now_waiting = matches!(result, Err(TryEnqueueError::Full(_)));
            match (*waiting, now_waiting) {
                (false, true) => self.space_count.wait(),
                (true, false) => {
                    self.space_count.stop_waiting();
                }
                _ => {}
            }
            *waiting = now_waiting;
        }
        drop(intake);
        drop(state);
        if result.is_ok() {
            self.meters.enqueued();
        }
        result
    }

    /// Forgets a producer that stopped waiting (its `enqueue` future was dropped).
    pub(super) fn abandon_wait(&self) {
        if self.space_count.stop_waiting() > 0 {
            // It may have consumed a wake-up meant for the others.
            self.space().notify_one();
        }
    }

    /// Moves the intake into the empty run-ahead, or, if the intake is empty too, calls
    /// `empty` with the intake still locked (so that a slot registers for a wake-up before
    /// any producer can push). Returns `None` when items were moved.
    pub(super) fn refill<R>(
        &self,
        state: &mut State<T>,
        empty: impl FnOnce(&mut Intake<T>) -> R,
    ) -> Option<R> {
        debug_assert!(
            state.items.is_empty(),
            "only an empty run-ahead is refilled"
        );
        let mut intake = lock(&self.intake);
        if intake.items.is_empty() {
            return Some(empty(&mut intake));
        }
        std::mem::swap(&mut state.items, &mut intake.items);
        None
    }

    /// Tells a watermark policy about the queue; `intake` is the intake if the caller holds
    /// its lock (otherwise it is locked to find the oldest item if the run-ahead is empty).
    pub(super) fn queue_changed_with(&self, state: &State<T>, intake: Option<&Intake<T>>) {
        if !self.watch_queue {
            return;
        }
        let len = self.space_count.queued();
        let at = |q: &Queued<T>| q.trace.as_ref().map(|t| t.at());
        let oldest = match (state.items.front(), intake) {
            (Some(head), _) => at(head),
            (None, Some(intake)) => intake.items.front().and_then(at),
            (None, None) => lock(&self.intake).items.front().and_then(at),
        };
        self.policies.queue_changed(len, oldest);
    }
}
