//! The defer gate: may a slot start the next item now?

use std::sync::Arc;

use backpressure_pattern::Pattern;
use tokio::sync::Notify;

use crate::sink::WatchHandle;
use crate::sync::{AtomicBool, Ordering};
use crate::{Level, Sink};

/// Whether, and how many, items may run at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Answer {
    /// No signal holds work back and the coordinator is not paused.
    Open,
    /// Paused, or a `defer_on` signal at [`Level::STOP`] is active (and no `resume_on`).
    Closed,
    /// Closed, and a verdict matching `defer_on` is active, so `max_defer` does not apply.
    /// Told apart from [`Closed`](Self::Closed) so that a slot that armed no `max_defer`
    /// timer notices the last verdict going before it went to sleep.
    ClosedByVerdict,
    /// Closed only by half-open verdicts: the head may start as a probe if every one of them
    /// has a probe left. The watch's probe generation, so that a slot that found no probe
    /// free notices one given back before it went to sleep.
    HalfOpen(u64),
    /// The lowest level among the active `defer_on` signals.
    Limited(Level),
}

impl Answer {
    /// How many items may run at once on `concurrency` slots.
    pub(super) fn limit(self, concurrency: usize) -> usize {
        match self {
            Answer::Open => concurrency,
            Answer::Closed | Answer::ClosedByVerdict | Answer::HalfOpen(_) => 0,
            Answer::Limited(level) => level.limit(concurrency),
        }
    }
}

/// The gate's inputs: three counted watches on the sink and the pause flag. Every check is a
/// handful of atomic loads, independent of how many signals are active.
#[derive(Debug)]
pub(super) struct Gate {
    defer: Option<WatchHandle>,
    resume: Option<WatchHandle>,
    cancel: Option<WatchHandle>,
    paused: AtomicBool,
}

impl Gate {
    /// Watches `sink` for the given patterns; `wake` is notified (`notify_waiters`) whenever
    /// one of them flips between "some match active" and "none". The `defer_on` watch is
    /// `worker`'s, for the gate traces.
    pub(super) fn new(
        sink: &Sink,
        wake: &Arc<Notify>,
        worker: &str,
        [defer_on, resume_on, cancel_on]: [Option<Pattern>; 3],
    ) -> Self {
        let watch = |pattern: Option<Pattern>| pattern.map(|p| sink.watch(p, wake));
        let worker: Arc<str> = worker.into();
        Self {
            defer: defer_on.map(|p| sink.watch_for(p, wake, Some(worker))),
            resume: watch(resume_on),
            cancel: watch(cancel_on),
            paused: AtomicBool::new(false),
        }
    }

    /// What the gate says right now. A handful of atomic loads, whatever the number of
    /// active signals.
    pub(super) fn answer(&self) -> Answer {
        if self.is_paused() {
            return Answer::Closed;
        }
        let Some(defer) = self.defer.as_ref().filter(|defer| defer.is_active()) else {
            return Answer::Open;
        };
        if self.resume.as_ref().is_some_and(WatchHandle::is_active) {
            return Answer::Open;
        }
        match defer.min_level() {
            Level::STOP if defer.hard() == 0 => Answer::HalfOpen(defer.probe_generation()),
            Level::STOP if defer.has_verdict() => Answer::ClosedByVerdict,
            Level::STOP => Answer::Closed,
            Level::FULL => Answer::Open,
            level => Answer::Limited(level),
        }
    }

    /// Whether a verdict (open or half-open) matching `defer_on` holds work back, which
    /// `max_defer` never forces items past. O(1).
    pub(super) fn held_by_verdict(&self) -> bool {
        self.defer.as_ref().is_some_and(WatchHandle::has_verdict)
    }

    /// The `defer_on` pattern, if any.
    pub(super) fn defer_pattern(&self) -> Option<&Pattern> {
        self.defer.as_ref().map(WatchHandle::pattern)
    }

    pub(super) fn is_paused(&self) -> bool {
        self.paused.load(Ordering::SeqCst)
    }

    pub(super) fn set_paused(&self, paused: bool) {
        self.paused.store(paused, Ordering::SeqCst);
    }

    /// Whether items that would start must be skipped instead.
    pub(super) fn cancels(&self) -> bool {
        self.cancel.as_ref().is_some_and(WatchHandle::is_active)
    }
}
