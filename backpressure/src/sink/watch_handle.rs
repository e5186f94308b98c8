//! A coordinator's registration on a watch: what its gate reads, and what unregisters it.

use std::sync::{Arc, Weak};

use backpressure_pattern::Pattern;
use tokio::sync::Notify;

use super::core::SinkCore;
use super::level::Level;
use super::watch::Watch;

/// A registration of a listener on a watch; dropping it unregisters.
#[derive(Debug)]
pub(crate) struct WatchHandle {
    watch: Arc<Watch>,
    listener: Arc<Notify>,
    sink: Weak<SinkCore>,
}

impl WatchHandle {
    pub(super) fn new(watch: Arc<Watch>, listener: Arc<Notify>, sink: Weak<SinkCore>) -> Self {
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

    /// The lowest level among the active matching entries ([`Level::FULL`] if none). O(1).
    pub(crate) fn min_level(&self) -> Level {
        self.watch.min_level()
    }

    /// How many matching entries at [`Level::STOP`] nothing passes: plain signals and open
    /// verdicts. O(1).
    pub(crate) fn hard(&self) -> usize {
        self.watch.hard()
    }

    /// Whether a matching verdict (open or half-open) is active. O(1).
    pub(crate) fn has_verdict(&self) -> bool {
        self.watch.verdicts() > 0
    }

    /// Bumped when a matching verdict goes half-open or gives a probe back. O(1).
    pub(crate) fn probe_generation(&self) -> u64 {
        self.watch.probe_generation()
    }

    /// The watched pattern.
    pub(crate) fn pattern(&self) -> &Pattern {
        self.watch.pattern()
    }
}

impl Drop for WatchHandle {
    fn drop(&mut self) {
        if let Some(sink) = self.sink.upgrade() {
            sink.detach(&self.watch, &self.listener);
        }
    }
}
