//! Counted pattern watches: how a coordinator's gate checks the sink in O(1).
//!
//! For every distinct pattern that some coordinator watches, the sink keeps a [`Watch`]: the
//! number of active signal names that match it. The count is updated when a name becomes
//! active or inactive (raise, retract, expiry), so "is any matching signal active?" is one
//! atomic load, whatever the number of active signals. Coordinators watching the same pattern
//! share one count, so a raise costs one match per distinct pattern, not per coordinator.
//!
//! Beside the count and the lowest level, a watch counts the matching entries at
//! [`Level::STOP`] that nothing may pass (plain signals and open verdicts: "hard") and the
//! matching verdicts (entries with a [`Phase`]), and keeps a probe generation, bumped when a
//! matching verdict goes half-open or gives a probe back. So a held gate answers "am I held
//! only by half-open verdicts?" and "does a verdict hold me?" in O(1), and a slot that saw
//! no probe free notices one freed before it went to sleep.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use backpressure_pattern::Pattern;
use tokio::sync::Notify;

use super::level::Level;
use super::phase::Phase;
use crate::sync::{ActiveCount, AtomicU64, AtomicUsize, Ordering};

/// What a watch counts of one entry: its level and its verdict phase.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Mark {
    pub(crate) level: Level,
    pub(crate) phase: Option<Phase>,
}

impl Mark {
    /// A full stop that nothing passes: a plain signal or an open verdict at
    /// [`Level::STOP`].
    fn is_hard(self) -> bool {
        self.level == Level::STOP && self.phase != Some(Phase::HalfOpen)
    }

    /// A half-open verdict at [`Level::STOP`]: it admits probes.
    fn is_probing(self) -> bool {
        self.level == Level::STOP && self.phase == Some(Phase::HalfOpen)
    }
}

/// The live count of active signal names matching one pattern, and the lowest level among
/// the matching entries.
#[derive(Debug)]
pub(crate) struct Watch {
    pattern: Pattern,
    active: ActiveCount,
    /// The lowest level (per mille) among active matching entries; [`Level::FULL`] when
    /// there are none. Written under the sink's lock, read without it.
    min_level: AtomicUsize,
    /// Matching entries at [`Level::STOP`] that are not half-open verdicts.
    hard: AtomicUsize,
    /// Matching entries that are verdicts (have a phase).
    verdicts: AtomicUsize,
    /// Bumped when a matching verdict goes half-open or stops being half-open, or a probe of
    /// one is given back.
    probe_generation: AtomicU64,
}

impl Watch {
    /// A watch of `pattern` with `active` matching names; its entries' marks are added
    /// (through [`WatchEntry::relevel`]) before it is shared.
    pub(super) fn new(pattern: Pattern, active: usize) -> Self {
        Self {
            pattern,
            active: ActiveCount::new(active),
            min_level: AtomicUsize::new(usize::from(Level::FULL.per_mille())),
            hard: AtomicUsize::new(0),
            verdicts: AtomicUsize::new(0),
            probe_generation: AtomicU64::new(0),
        }
    }

    /// How many matching entries at [`Level::STOP`] nothing passes (plain signals, open
    /// verdicts). O(1).
    pub(crate) fn hard(&self) -> usize {
        self.hard.load(Ordering::SeqCst)
    }

    /// How many matching entries are verdicts, open or half-open. O(1).
    pub(crate) fn verdicts(&self) -> usize {
        self.verdicts.load(Ordering::SeqCst)
    }

    /// The probe generation (see the field). O(1).
    pub(crate) fn probe_generation(&self) -> u64 {
        self.probe_generation.load(Ordering::SeqCst)
    }

    /// A probe of a matching verdict was given back. Called with the sink's lock held,
    /// before the listeners are woken.
    pub(super) fn nudged(&self) {
        self.probe_generation.fetch_add(1, Ordering::SeqCst);
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

    /// Traces that `signal` closed the gate of those watching this pattern: one INFO line
    /// per worker whose `defer_on` it is, one DEBUG line for the others (layers, `resume_on`
    /// and `cancel_on` watches). Called with the sink's lock released.
    pub(super) fn closed_by(&self, signal: &str, sink: &str, watchers: &Watchers) {
        for worker in &watchers.workers {
            tracing::info!(
                sink,
                worker = %worker,
                pattern = %self.pattern,
                signal,
                "backpressure gate closed: `{signal}` holds worker `{worker}`"
            );
        }
        if watchers.others {
            tracing::debug!(
                sink,
                pattern = %self.pattern,
                signal,
                "backpressure gate closed: `{signal}` holds work watching `{}`",
                self.pattern
            );
        }
    }

    /// Traces that `signal`, the last one matching this pattern, went away after `held`, as
    /// [`closed_by`](Self::closed_by) does. Called with the sink's lock released.
    pub(super) fn opened_by(
        &self,
        signal: &str,
        sink: &str,
        held: Option<Duration>,
        watchers: &Watchers,
    ) {
        let held_ms = held.map(|held| held.as_millis() as u64);
        for worker in &watchers.workers {
            tracing::info!(
                sink,
                worker = %worker,
                pattern = %self.pattern,
                signal,
                held_ms,
                "backpressure gate opened: `{signal}` no longer holds worker `{worker}`"
            );
        }
        if watchers.others {
            tracing::debug!(
                sink,
                pattern = %self.pattern,
                signal,
                held_ms,
                "backpressure gate opened: `{signal}` was the last signal matching `{}`",
                self.pattern
            );
        }
    }
}

/// One registration on a watch: whom to wake, and the worker whose `defer_on` it is (for the
/// gate traces), if it is one.
#[derive(Debug)]
pub(super) struct Listener {
    pub(super) notify: Arc<Notify>,
    pub(super) worker: Option<Arc<str>>,
}

/// Who watches a pattern, for the gate traces: the workers deferring on it, and whether
/// anything else does.
#[derive(Debug)]
pub(super) struct Watchers {
    workers: Vec<Arc<str>>,
    others: bool,
}

/// One watch with the notifiers to wake when it flips, and the levels of its matching
/// entries (kept under the sink's lock).
#[derive(Debug)]
pub(super) struct WatchEntry {
    pub(super) watch: Arc<Watch>,
    pub(super) listeners: Vec<Listener>,
    /// How many active matching entries have each level.
    levels: BTreeMap<Level, usize>,
    /// Published in [`Watch::hard`] and [`Watch::verdicts`].
    hard: usize,
    verdicts: usize,
    /// Since when a matching name has been active, for the "gate opened" trace.
    closed_since: Option<tokio::time::Instant>,
}

impl WatchEntry {
    pub(super) fn new(watch: Arc<Watch>, listener: Listener) -> Self {
        Self {
            watch,
            listeners: vec![listener],
            levels: BTreeMap::new(),
            hard: 0,
            verdicts: 0,
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
    fn lowest(levels: &BTreeMap<Level, usize>) -> Level {
        levels.keys().next().copied().unwrap_or(Level::FULL)
    }

    /// A matching entry became active with mark `added`, or left `removed`, or both (a level
    /// or phase change). Publishes the new lowest level and counts; returns whether more work
    /// may start (the lowest level rose, the last full stop went, a verdict went half-open or
    /// stopped being half-open, the last verdict went), so the listeners must be woken.
    pub(super) fn relevel(&mut self, removed: Option<Mark>, added: Option<Mark>) -> bool {
        let before = Self::lowest(&self.levels);
        let (hard_before, verdicts_before) = (self.hard, self.verdicts);
        if let Some(mark) = removed {
            if let Some(count) = self.levels.get_mut(&mark.level) {
                *count -= 1;
                if *count == 0 {
                    self.levels.remove(&mark.level);
                }
            }
            self.hard -= usize::from(mark.is_hard());
            self.verdicts -= usize::from(mark.phase.is_some());
        }
        let mut probing = false;
        if let Some(mark) = added {
            *self.levels.entry(mark.level).or_default() += 1;
            self.hard += usize::from(mark.is_hard());
            self.verdicts += usize::from(mark.phase.is_some());
            probing = mark.is_probing() && !removed.is_some_and(Mark::is_probing);
        }
        // A half-open verdict that goes (closed, reopened) leaves fewer to claim from: a
        // holder refused by it may pass the others now.
        probing |= removed.is_some_and(Mark::is_probing) && !added.is_some_and(Mark::is_probing);
        let after = Self::lowest(&self.levels);
        if after != before {
            self.watch
                .min_level
                .store(usize::from(after.per_mille()), Ordering::SeqCst);
        }
        // The generation before the counts: a gate that reads no hard entry left reads the
        // new generation too.
        if probing {
            self.watch.nudged();
        }
        self.watch.hard.store(self.hard, Ordering::SeqCst);
        self.watch.verdicts.store(self.verdicts, Ordering::SeqCst);
        // The last full stop going lets half-open verdicts' probes through; one of several
        // going changes nothing a held slot can act on. The last verdict going while a plain
        // signal still holds puts the held head back under `max_defer`: its timer is armed.
        after > before
            || (hard_before > 0 && self.hard == 0)
            || (verdicts_before > 0 && self.verdicts == 0)
            || probing
    }

    /// Queues the listeners for a wake-up once the sink's lock is released.
    pub(super) fn wake(&self, wakes: &mut Wakes) {
        for listener in &self.listeners {
            wakes.push(Arc::clone(&listener.notify));
        }
    }

    /// Who watches, for a gate trace (each worker once).
    pub(super) fn watchers(&self) -> Watchers {
        let mut workers: Vec<Arc<str>> = Vec::new();
        let mut others = false;
        for listener in &self.listeners {
            match &listener.worker {
                Some(worker) if !workers.contains(worker) => workers.push(Arc::clone(worker)),
                Some(_) => {}
                None => others = true,
            }
        }
        Watchers { workers, others }
    }
}

/// The listeners a transition queued for a wake-up once the sink's lock is released. The
/// first is kept inline: the usual transition wakes one coordinator, and taking the list out
/// of the lock then costs no allocation (a `Vec` taken leaves none behind, so the next push
/// would allocate again).
#[derive(Debug, Default)]
pub(super) struct Wakes {
    first: Option<Arc<Notify>>,
    more: Vec<Arc<Notify>>,
}

impl Wakes {
    fn push(&mut self, listener: Arc<Notify>) {
        if self.first.is_none() {
            self.first = Some(listener);
        } else {
            self.more.push(listener);
        }
    }

    /// Wakes every queued listener, in the order queued.
    pub(super) fn notify_all(self) {
        for listener in self.first.into_iter().chain(self.more) {
            listener.notify_waiters();
        }
    }
}
