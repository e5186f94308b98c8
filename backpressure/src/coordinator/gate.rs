//! The defer gate: may a slot start the next item now?

use std::sync::Arc;

use backpressure_pattern::Pattern;
use tokio::sync::Notify;

use crate::sink::WatchHandle;
use crate::sync::{AtomicBool, Ordering};
use crate::Sink;

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
    /// one of them flips between "some match active" and "none".
    pub(super) fn new(
        sink: &Sink,
        wake: &Arc<Notify>,
        defer_on: Option<Pattern>,
        resume_on: Option<Pattern>,
        cancel_on: Option<Pattern>,
    ) -> Self {
        let watch = |pattern: Option<Pattern>| pattern.map(|p| sink.watch(p, wake));
        Self {
            defer: watch(defer_on),
            resume: watch(resume_on),
            cancel: watch(cancel_on),
            paused: AtomicBool::new(false),
        }
    }

    /// Whether signals hold work back: a `defer_on` match is active and no `resume_on` match.
    pub(super) fn signals_hold(&self) -> bool {
        self.defer.as_ref().is_some_and(WatchHandle::is_active)
            && !self.resume.as_ref().is_some_and(WatchHandle::is_active)
    }

    pub(super) fn is_paused(&self) -> bool {
        self.paused.load(Ordering::SeqCst)
    }

    pub(super) fn set_paused(&self, paused: bool) {
        self.paused.store(paused, Ordering::SeqCst);
    }

    /// Whether a slot may start the next item.
    pub(super) fn is_open(&self) -> bool {
        !self.is_paused() && !self.signals_hold()
    }

    /// Whether items that would start must be skipped instead.
    pub(super) fn cancels(&self) -> bool {
        self.cancel.as_ref().is_some_and(WatchHandle::is_active)
    }
}
