//! Counted pattern watches: how a coordinator's gate checks the sink in O(1).
//!
//! For every distinct pattern that some coordinator watches, the sink keeps a [`Watch`]: the
//! number of active signal names that match it. The count is updated when a name becomes
//! active or inactive (raise, retract, expiry), so "is any matching signal active?" is one
//! atomic load, whatever the number of active signals. Coordinators watching the same pattern
//! share one count, so a raise costs one match per distinct pattern, not per coordinator.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use backpressure_pattern::Pattern;
use tokio::sync::Notify;

use super::level::Level;
use crate::sync::{ActiveCount, AtomicUsize, Ordering};

/// The live count of active signal names matching one pattern, and the lowest level among
/// the matching entries.
#[derive(Debug)]
pub(crate) struct Watch {
    pattern: Pattern,
    active: ActiveCount,
    /// The lowest level (per mille) among active matching entries; [`Level::FULL`] when
    /// there are none. Written under the sink's lock, read without it.
    min_level: AtomicUsize,
}

impl Watch {
    pub(super) fn new(pattern: Pattern, active: usize, min_level: Level) -> Self {
        Self {
            pattern,
            active: ActiveCount::new(active),
            min_level: AtomicUsize::new(usize::from(min_level.per_mille())),
        }
    }

    /// The lowest level among the active matching entries ([`Level::FULL`] if none). O(1).
    pub(crate) fn min_level(&self) -> Level {
        let per_mille = self.min_level.load(Ordering::SeqCst);
        Level::from_per_mille(u16::try_from(per_mille).unwrap_or(u16::MAX))
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

    /// Traces that `signal` closed the gate of coordinators watching this pattern. Called
    /// with the sink's lock released.
    pub(super) fn closed_by(&self, signal: &str, sink: &str) {
        tracing::info!(
            sink,
            pattern = %self.pattern,
            signal,
            "backpressure gate closed: `{signal}` holds work watching `{}`",
            self.pattern
        );
    }

    /// Traces that `signal`, the last one matching this pattern, went away after `held`.
    /// Called with the sink's lock released.
    pub(super) fn opened_by(&self, signal: &str, sink: &str, held: Option<Duration>) {
        tracing::info!(
            sink,
            pattern = %self.pattern,
            signal,
            held_ms = held.map(|held| held.as_millis() as u64),
            "backpressure gate opened: `{signal}` was the last signal matching `{}`",
            self.pattern
        );
    }
}

/// One watch with the notifiers to wake when it flips, and the levels of its matching
/// entries (kept under the sink's lock).
#[derive(Debug)]
pub(super) struct WatchEntry {
    pub(super) watch: Arc<Watch>,
    pub(super) listeners: Vec<Arc<Notify>>,
    /// How many active matching entries have each level.
    levels: BTreeMap<Level, usize>,
    /// Since when a matching name has been active, for the "gate opened" trace.
    closed_since: Option<tokio::time::Instant>,
}

impl WatchEntry {
    pub(super) fn new(
        watch: Arc<Watch>,
        listener: Arc<Notify>,
        levels: BTreeMap<Level, usize>,
    ) -> Self {
        Self {
            watch,
            listeners: vec![listener],
            levels,
            closed_since: None,
        }
    }

    /// The first matching name became active: coordinators watching this pattern hold.
    pub(super) fn closed(&mut self) {
        // The clock is read only for a listener: raise and retract stay clock-free otherwise.
        self.closed_since =
            tracing::level_enabled!(tracing::Level::INFO).then(tokio::time::Instant::now);
    }

    /// The last matching name became inactive: returns for how long the pattern held work,
    /// if the clock was read when it closed.
    pub(super) fn opened(&mut self) -> Option<Duration> {
        self.closed_since.take().map(|since| since.elapsed())
    }

    /// The lowest level among `levels`, as published by [`Watch::min_level`].
    pub(super) fn lowest(levels: &BTreeMap<Level, usize>) -> Level {
        levels.keys().next().copied().unwrap_or(Level::FULL)
    }

    /// A matching entry became active at `added`, or left `removed`, or both (a level
    /// change). Publishes the new lowest level; returns whether it rose, which lets more work
    /// start, so the listeners must be woken.
    pub(super) fn relevel(&mut self, removed: Option<Level>, added: Option<Level>) -> bool {
        let before = Self::lowest(&self.levels);
        if let Some(level) = removed {
            if let Some(count) = self.levels.get_mut(&level) {
                *count -= 1;
                if *count == 0 {
                    self.levels.remove(&level);
                }
            }
        }
        if let Some(level) = added {
            *self.levels.entry(level).or_default() += 1;
        }
        let after = Self::lowest(&self.levels);
        if after != before {
            self.watch
                .min_level
                .store(usize::from(after.per_mille()), Ordering::SeqCst);
        }
        after > before
    }

    /// Queues the listeners for a wake-up once the sink's lock is released.
    pub(super) fn wake(&self, wakes: &mut Vec<Arc<Notify>>) {
        wakes.extend(self.listeners.iter().cloned());
    }
}
