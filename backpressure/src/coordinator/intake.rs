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
//! (closing, `shutdown`'s give-back) holds both locks; `stats` reads the counts of
//! [`Space`](crate::sync::Space) under the state's lock, a consistent snapshot on its own. The producers' transitions
//! (push, a waiting producer given up) and a slot's refill are in [`push`](super::push).

use std::collections::VecDeque;

use super::telemetry::Enqueued;
use crate::sync::IdleSlots;

/// A queued item, in either half of the queue: the item and, only when someone listens or
/// the worker keeps per-item state, its trace. No id: an item without a trace is the
/// `n`-th taken out of the queue (it is FIFO), so its id is the queue's take count when it
/// is taken (see [`Taken`]); an item with one carries its id there.
pub(super) struct Queued<T> {
    pub(super) item: T,
    /// Captured at enqueue when a subscriber or metrics listen (and for every item of a
    /// worker with `retry(...)` or a `timeout`).
    pub(super) trace: Option<Box<Enqueued>>,
}

/// A queued item taken out of the queue to start, with its id.
pub(super) struct Taken<T> {
    pub(super) id: u64,
    pub(super) item: T,
    pub(super) trace: Option<Box<Enqueued>>,
}

/// What producers touch, under the intake's lock.
pub(super) struct Intake<T> {
    /// Items pushed since a slot last moved the intake into the run-ahead, oldest first.
    pub(super) items: VecDeque<Queued<T>>,
    /// Whether intake is closed (set together with `State::closed`, under both locks).
    pub(super) closed: bool,
    pub(super) next_id: u64,
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
            idle: IdleSlots::default(),
        }
    }
}
