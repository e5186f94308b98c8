//! Counters.

use serde::Serialize;

/// A consistent snapshot of a coordinator's counters.
///
/// Taken under the coordinator's lock, so at every observable moment
/// `enqueued == completed + failed + panicked + skipped + returned + queued + active +
/// retry_waiting` ([`is_consistent`](Self::is_consistent)). `completed`, `failed`,
/// `panicked` and `skipped` count final outcomes: an attempt that is retried is counted in
/// `retried` instead.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct Stats {
    /// Items waiting in the queue.
    pub queued: usize,
    /// Queued items held back right now by the gate (all of `queued` while it is not fully
    /// open).
    pub deferred: usize,
    /// Items whose handler (or skip callback) is running.
    pub active: usize,
    /// Items ever accepted.
    pub enqueued: u64,
    /// Handlers that returned `()` or `Ok(())`.
    pub completed: u64,
    /// Items whose last attempt returned `Err` or ran past the `timeout`.
    pub failed: u64,
    /// Items whose last attempt panicked.
    pub panicked: u64,
    /// Items skipped because a `cancel_on` signal was active.
    pub skipped: u64,
    /// Items started anyway after being held for `max_defer`.
    pub defer_timeouts: u64,
    /// Items handed back by `shutdown`: unstarted, waiting for a retry, or (with
    /// `retry(...)`) cut short by it and failed.
    pub returned: u64,
    /// Failed attempts that were retried (each item's every retry counts).
    pub retried: u64,
    /// Items whose last attempt failed (or whose failure was permanent), handed to the
    /// dead-letter callback or buffer; also counted in `failed` or `panicked`.
    pub dead_lettered: u64,
    /// Attempts that ran past the worker's `timeout` (retried or final).
    pub timed_out: u64,
    /// Starts delayed by the worker's [`rate`](crate::limit::Rate) (each item once).
    pub rate_limited: u64,
    /// Whether the worker's rate holds the head's start right now.
    pub rate_holding: bool,
    /// The worker's permits of its `global_concurrency` in this process (limit, granted,
    /// in use), if it has one.
    pub permits: Option<crate::connector::PermitCounts>,
    /// Items waiting for their retry's instant.
    pub retry_waiting: usize,
    /// Times a held slot woke up to look at the gate again: a signal or control change that
    /// could open it, or the head's `max_defer` deadline. There are no periodic re-checks, so
    /// a coordinator held by an unchanging signal adds nothing here.
    pub gate_rechecks: u64,
    /// The configured number of concurrent slots.
    pub concurrency: usize,
    /// How many items may run at once right now: `concurrency` while the gate is open, 0
    /// while it is closed (paused, or a `defer_on` signal raised at full stop), and
    /// `max(1, floor(concurrency × level))` while the lowest active `defer_on` signal has a
    /// [`Level`](crate::Level) between 0 and 1.
    /// [`Coordinator::held_by`](crate::Coordinator::held_by) names the signal that sets it.
    pub limit: usize,
    /// Whether the gate is fully open: `limit == concurrency` (no deferring signal, not
    /// paused).
    pub gate_open: bool,
    /// Whether the coordinator is paused.
    pub paused: bool,
    /// Whether intake is closed.
    pub closed: bool,
}

impl Stats {
    /// Whether the accounting invariant holds (it always should).
    pub fn is_consistent(&self) -> bool {
        self.enqueued
            == self.completed
                + self.failed
                + self.panicked
                + self.skipped
                + self.returned
                + self.queued as u64
                + self.active as u64
                + self.retry_waiting as u64
    }
}
