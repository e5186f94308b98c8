//! The producers' transitions on the two-lock queue (see [`intake`](super::intake)): a push, a
//! waiting producer given up, and the slots' refill of the run-ahead from the intake.

use super::intake::{Intake, Queued};
use super::item_id::ItemId;
use super::state::{Shared, State};
use super::telemetry::Enqueued;
use crate::error::TryEnqueueError;
use crate::retry::DeadLetter;
use crate::sync::lock;

impl<T> Shared<T> {
    /// Pushes an item if there is room. `waiting` tracks whether this producer is counted
    /// among those waiting for space; it is `None` for a producer that will not wait when the
    /// queue is full.
    pub(super) fn try_push(
        &self,
        item: T,
        waiting: Option<&mut bool>,
    ) -> Result<ItemId, TryEnqueueError<T>> {
        self.push_as(item, waiting, None)
    }

    /// Puts a dead letter back into the queue under its id, with a fresh set of attempts,
    /// if there is room; hands it back otherwise.
    pub(super) fn requeue(&self, letter: DeadLetter<T>) -> Result<(), DeadLetter<T>> {
        let DeadLetter { item, record } = letter;
        let origin = (record.id.0, Enqueued::requeued(record.first_enqueued_at));
        match self.push_as(item, None, Some(origin)) {
            Ok(_) => Ok(()),
            Err(refused) => Err(DeadLetter {
                item: refused.into_inner(),
                record,
            }),
        }
    }

    /// A push: a new item (`origin` `None`: the next id), or one that had an id before.
    fn push_as(
        &self,
        item: T,
        waiting: Option<&mut bool>,
        origin: Option<(u64, Box<Enqueued>)>,
    ) -> Result<ItemId, TryEnqueueError<T>> {
        let (given, trace) = match origin {
            Some((id, trace)) => (Some(id), Some(trace)),
            None => (None, Enqueued::capture(self.stamp_items)),
        };
        let mut state = self.push_sees_state.then(|| self.lock());
        let mut intake = lock(&self.intake);
        let result = if intake.closed {
            Err(TryEnqueueError::Closed(item))
        } else if !self.space_count.has_room(self.config.capacity) {
            Err(TryEnqueueError::Full(item))
        } else {
            let id = given.unwrap_or_else(|| {
                intake.next_id += 1;
                intake.next_id - 1
            });
            let mut trace = trace;
            if let Some(trace) = trace.as_mut() {
                trace.set_id(id);
            }
            intake.items.push_back(Queued { item, trace });
            self.space_count.pushed();
            if intake.idle.wake_one() {
                self.wake.notify_one();
            }
            if let Some(state) = state.as_mut() {
                self.update_gauges(state);
                self.queue_changed_with(state, Some(&intake));
            }
            Ok(ItemId(id))
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
