//! Counted pattern watches: how a coordinator's gate checks the sink in O(1).
//!
//! For every distinct pattern that some coordinator watches, the sink keeps a [`Watch`]: the
//! number of active signal names that match it. The count is updated when a name becomes
//! active or inactive (raise, retract, expiry), so "is any matching signal active?" is one
//! atomic load, whatever the number of active signals. Coordinators watching the same pattern
//! share one count, so a raise costs one match per distinct pattern, not per coordinator.

use std::sync::{Arc, Weak};

use backpressure_pattern::Pattern;
use tokio::sync::Notify;

use super::core::Shared;
use crate::sync::ActiveCount;

/// The live count of active signal names matching one pattern.
#[derive(Debug)]
pub(crate) struct Watch {
    pattern: Pattern,
    active: ActiveCount,
}

impl Watch {
    pub(super) fn new(pattern: Pattern, active: usize) -> Self {
        Self {
            pattern,
            active: ActiveCount::new(active),
        }
    }

    pub(super) fn pattern(&self) -> &Pattern {
        &self.pattern
    }

    /// Whether at least one active signal matches. O(1).
    pub(crate) fn is_active(&self) -> bool {
        self.active.is_active()
    }

    /// Records that a matching name became active; returns whether the watch went from
    /// inactive to active. Called with the sink's lock held.
    pub(super) fn increment(&self) -> bool {
        self.active.increment()
    }

    /// Records that a matching name became inactive; returns whether the watch went from
    /// active to inactive. Called with the sink's lock held.
    pub(super) fn decrement(&self) -> bool {
        self.active.decrement()
    }
}

/// One watch with the notifiers to wake when it flips.
#[derive(Debug)]
pub(super) struct WatchEntry {
    pub(super) watch: Arc<Watch>,
    pub(super) listeners: Vec<Arc<Notify>>,
}

impl WatchEntry {
    pub(super) fn wake(&self) {
        for listener in &self.listeners {
            listener.notify_waiters();
        }
    }
}

/// A registration of a listener on a watch; dropping it unregisters.
#[derive(Debug)]
pub(crate) struct WatchHandle {
    watch: Arc<Watch>,
    listener: Arc<Notify>,
    sink: Weak<Shared>,
}

impl WatchHandle {
    pub(super) fn new(watch: Arc<Watch>, listener: Arc<Notify>, sink: Weak<Shared>) -> Self {
        Self {
            watch,
            listener,
            sink,
        }
    }

    /// Whether at least one active signal matches the watched pattern. O(1).
    pub(crate) fn is_active(&self) -> bool {
        self.watch.is_active()
    }
}

impl Drop for WatchHandle {
    fn drop(&mut self) {
        if let Some(sink) = self.sink.upgrade() {
            sink.detach(&self.watch, &self.listener);
        }
    }
}
