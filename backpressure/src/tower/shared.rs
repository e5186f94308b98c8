//! What a layer and every service it makes share: the sink's counted watch on one pattern.

use std::fmt;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use backpressure_pattern::Pattern;
use tokio::sync::Notify;
use tokio::time::Instant;

use super::{HoldError, HoldMode};
use crate::sink::{Sink, WatchHandle};

/// What a layer and all its services share.
pub(super) struct Shared {
    sink: Sink,
    pub(super) pattern: Pattern,
    pub(super) mode: HoldMode,
    /// Notified by the sink whenever the watch flips (and on other changes that concern it).
    pub(super) changed: Arc<Notify>,
    /// Registered on first use, so that it happens inside the runtime that drives the
    /// services: the sink then expires TTL entries on that runtime too.
    watch: OnceLock<WatchHandle>,
}

impl Shared {
    /// The state of a new layer; the watch is registered on first use.
    pub(super) fn new(sink: &Sink, pattern: Pattern, mode: HoldMode) -> Self {
        Self {
            sink: sink.clone(),
            pattern,
            mode,
            changed: Arc::new(Notify::new()),
            watch: OnceLock::new(),
        }
    }

    /// Whether a matching signal is raised. O(1).
    pub(super) fn is_raised(&self) -> bool {
        self.watch
            .get_or_init(|| self.sink.watch(self.pattern.clone(), &self.changed))
            .is_active()
    }

    /// The rejection for a request called now, or `None` if no matching signal is raised.
    /// Scans the sink's snapshot only when the O(1) check says a signal is raised.
    pub(super) fn rejection(&self) -> Option<HoldError> {
        if !self.is_raised() {
            return None;
        }
        let matching: Vec<_> = self
            .sink
            .snapshot()
            .into_iter()
            .filter(|active| self.pattern.matches(&active.name))
            .collect();
        // Retracted between the check and the snapshot: nothing to reject for.
        let signal = Arc::clone(&matching.first()?.name);
        let now = Instant::now();
        let retry_after = matching
            .iter()
            .map(|active| {
                active
                    .expires_at
                    .map(|at| at.saturating_duration_since(now))
            })
            .try_fold(Duration::ZERO, |latest, left| Some(latest.max(left?)));
        Some(HoldError::Rejected {
            signal,
            retry_after,
        })
    }
}

impl fmt::Debug for Shared {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HoldLayer")
            .field("pattern", &self.pattern)
            .field("mode", &self.mode)
            .finish_non_exhaustive()
    }
}
