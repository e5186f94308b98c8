//! The active entries of a sink and every transition of them (raise, remove, expiry), under
//! the sink's lock.
//!
//! A transition changes the entries and the watches' counts and levels, and only records what
//! the world must hear of it: the listeners to wake and the events to report
//! ([`Emit`]). The sink's lock guard performs both after release.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use backpressure_pattern::Pattern;
use tokio::sync::Notify;
use tokio::time::Instant;

use super::emit::{Emit, Events};
use super::event::SignalEventKind;
use super::level::Level;
use super::phase::Phase;
use super::probe::ProbeSource;
use super::watch::{Listener, Mark, Wakes, Watch, WatchEntry};
use crate::sync::Outbox;

/// The smallest heap of TTL deadlines worth compacting.
pub(super) const MIN_COMPACTION: usize = 64;

pub(super) type Key = Option<Arc<str>>;

pub(super) struct Entries {
    /// Active names, each with its active keys.
    pub(super) names: HashMap<Arc<str>, HashMap<Key, Entry>>,
    /// One entry per distinct watched pattern.
    pub(super) watches: Vec<WatchEntry>,
    /// TTL deadlines, earliest first; stale ones (refreshed or removed entries) are skipped.
    deadlines: BinaryHeap<Reverse<Deadline>>,
    /// Heap size at which stale deadlines are dropped.
    compact_at: usize,
    next_seq: u64,
    /// Listeners to wake once the lock is released.
    pub(super) wakes: Wakes,
    /// What to report once the lock is released, in transition order.
    pub(super) outbox: Outbox<Emit>,
}

#[derive(Debug, Clone)]
pub(super) struct Entry {
    pub(super) raised_at: Instant,
    pub(super) expires_at: Option<Instant>,
    pub(super) level: Level,
    /// The verdict's phase; `None` for a plain signal.
    pub(super) phase: Option<Phase>,
    /// Who hands out the probes of a half-open verdict.
    pub(super) source: Option<Arc<dyn ProbeSource>>,
    /// When a verdict expects to change next (an open breaker's half-open instant).
    pub(super) next_transition: Option<Instant>,
    /// Identifies the raise that set `expires_at`, to recognise stale deadlines.
    seq: u64,
}

#[derive(Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Deadline {
    at: Instant,
    seq: u64,
    name: Arc<str>,
    key: Key,
}

/// The entries of one name taken out by [`Entries::remove_name`].
pub(super) struct Removed {
    /// The name as it was stored.
    _name: Arc<str>,
    keys: HashMap<Key, Entry>,
}

impl Removed {
    /// How many entries (keys) were removed.
    pub(super) fn len(&self) -> usize {
        self.keys.len()
    }
}

/// What to raise, for [`Entries::raise`].
pub(super) struct Raise<'a> {
    pub(super) name: &'a str,
    pub(super) key: Option<&'a str>,
    pub(super) ttl: Option<Duration>,
    pub(super) level: Level,
    pub(super) phase: Option<Phase>,
    pub(super) source: Option<Arc<dyn ProbeSource>>,
    pub(super) next_transition: Option<Instant>,
}

impl<'a> Raise<'a> {
    /// A raise at [`Level::STOP`], without a phase.
    pub(super) fn plain(name: &'a str, key: Option<&'a str>, ttl: Option<Duration>) -> Self {
        Self {
            name,
            key,
            ttl,
            level: Level::STOP,
            phase: None,
            source: None,
            next_transition: None,
        }
    }
}

impl Entry {
    /// What the watches count of it.
    pub(super) fn mark(&self) -> Mark {
        Mark {
            level: self.level,
            phase: self.phase,
        }
    }
}

impl Entries {
    pub(super) fn new() -> Self {
        Self {
            names: HashMap::new(),
            watches: Vec::new(),
            deadlines: BinaryHeap::new(),
            compact_at: MIN_COMPACTION,
            next_seq: 0,
            wakes: Wakes::default(),
            outbox: Outbox::default(),
        }
    }

    /// Inserts or refreshes an entry; returns whether a TTL deadline was scheduled.
    pub(super) fn raise(&mut self, events: &Events, raise: Raise<'_>, now: Instant) -> bool {
        self.next_seq += 1;
        let seq = self.next_seq;
        let mark = Mark {
            level: raise.level,
            phase: raise.phase,
        };
        // A TTL too large to represent is no expiry at all (rather than an overflow panic).
        let expires_at = raise.ttl.and_then(|ttl| now.checked_add(ttl));
        let (name, newly_named): (Arc<str>, bool) = match self.names.get_key_value(raise.name) {
            Some((existing, _)) => (Arc::clone(existing), false),
            None => (raise.name.into(), true),
        };
        let key: Key = raise.key.map(Arc::from);
        let keys = self.names.entry(Arc::clone(&name)).or_default();
        // The entry's previous mark, if it was already active.
        let previous = match keys.get_mut(&key) {
            Some(entry) => {
                let previous = entry.mark();
                entry.expires_at = expires_at;
                entry.seq = seq;
                entry.level = mark.level;
                entry.phase = mark.phase;
                entry.source = raise.source;
                entry.next_transition = raise.next_transition;
                Some(previous)
            }
            None => {
                let entry = Entry {
                    raised_at: now,
                    expires_at,
                    level: mark.level,
                    phase: mark.phase,
                    source: raise.source,
                    next_transition: raise.next_transition,
                    seq,
                };
                keys.insert(key.clone(), entry);
                None
            }
        };
        if previous != Some(mark) {
            self.update_watches(&name, previous, Some(mark), newly_named, false);
            let kind = match previous {
                None => SignalEventKind::Raised,
                Some(_) => SignalEventKind::LevelChanged,
            };
            self.record(events, kind, &name, &key, mark, || now);
        }
        match expires_at {
            Some(at) => {
                self.deadlines
                    .push(Reverse(Deadline { at, seq, name, key }));
                self.compact_deadlines();
                true
            }
            None => false,
        }
    }

    /// Updates every watch matching `name` for an entry that left mark `removed` and/or
    /// entered mark `added`, and for the name itself becoming active (`named`) or inactive
    /// (`unnamed`); queues a wake-up for the listeners of every watch that now lets more work
    /// start.
    fn update_watches(
        &mut self,
        name: &Arc<str>,
        removed: Option<Mark>,
        added: Option<Mark>,
        named: bool,
        unnamed: bool,
    ) {
        let trace = tracing::level_enabled!(tracing::Level::INFO);
        for entry in &mut self.watches {
            if !entry.watch.pattern().matches(name) {
                continue;
            }
            // The level and phase counts first: a slot woken by the count's flip must see them.
            let mut wake = entry.relevel(removed, added);
            if named && entry.watch.increment() {
                wake = true;
                entry.closed();
                if trace {
                    self.outbox.push(Emit::GateClosed {
                        watch: Arc::clone(&entry.watch),
                        signal: Arc::clone(name),
                        watchers: entry.watchers(),
                    });
                }
            }
            if unnamed && entry.watch.decrement() {
                wake = true;
                let held = entry.opened();
                if trace {
                    self.outbox.push(Emit::GateOpened {
                        watch: Arc::clone(&entry.watch),
                        signal: Arc::clone(name),
                        held,
                        watchers: entry.watchers(),
                    });
                }
            }
            if wake {
                entry.wake(&mut self.wakes);
            }
        }
    }

    /// Records an entry's transition for subscribers, traces and metrics, if anyone listens.
    fn record(
        &mut self,
        events: &Events,
        kind: SignalEventKind,
        name: &Arc<str>,
        key: &Key,
        mark: Mark,
        at: impl FnOnce() -> Instant,
    ) {
        if events.listening() {
            self.outbox.push(Emit::Transition {
                kind,
                name: Arc::clone(name),
                key: key.clone(),
                level: mark.level,
                phase: mark.phase,
                at: at(),
            });
        }
    }

    /// Drops stale deadlines (of refreshed or removed entries) once the heap has doubled
    /// since the last compaction, so a signal refreshed often with a long TTL does not grow
    /// it without bound. Amortised O(1) per raise.
    fn compact_deadlines(&mut self) {
        if self.deadlines.len() < self.compact_at {
            return;
        }
        let names = &self.names;
        self.deadlines.retain(|Reverse(d)| {
            names
                .get(&d.name)
                .and_then(|keys| keys.get(&d.key))
                .is_some_and(|entry| entry.seq == d.seq)
        });
        self.compact_at = (2 * self.deadlines.len()).max(MIN_COMPACTION);
    }

    /// Removes one entry; returns whether it existed.
    pub(super) fn remove(
        &mut self,
        events: &Events,
        name: &Arc<str>,
        key: &Key,
        kind: SignalEventKind,
    ) -> bool {
        let Some(keys) = self.names.get_mut(name) else {
            return false;
        };
        let Some(removed) = keys.remove(key) else {
            return false;
        };
        let unnamed = keys.is_empty();
        if unnamed {
            self.names.remove(name);
        }
        self.update_watches(name, Some(removed.mark()), None, false, unnamed);
        self.record(events, kind, name, key, removed.mark(), Instant::now);
        true
    }

    /// Removes every entry of `name`, whatever its key, with one look-up of the name; returns
    /// them (with the stored name) so the caller can drop them after releasing the lock.
    /// Watches and records see one removal per key, the last one unnaming the name, as if
    /// each had been [`remove`](Self::remove)d.
    pub(super) fn remove_name(&mut self, events: &Events, name: &str) -> Option<Removed> {
        let (name, keys) = self.names.remove_entry(name)?;
        let last = keys.len().saturating_sub(1);
        for (i, (key, entry)) in keys.iter().enumerate() {
            self.update_watches(&name, Some(entry.mark()), None, false, i == last);
            self.record(
                events,
                SignalEventKind::Retracted,
                &name,
                key,
                entry.mark(),
                Instant::now,
            );
        }
        Some(Removed { _name: name, keys })
    }

    /// Removes every entry whose TTL ran out by `now`.
    pub(super) fn expire(&mut self, events: &Events, now: Instant) {
        while let Some(Reverse(next)) = self.deadlines.peek() {
            if next.at > now {
                break;
            }
            let Some(Reverse(due)) = self.deadlines.pop() else {
                break;
            };
            let current = self
                .names
                .get(&due.name)
                .and_then(|keys| keys.get(&due.key))
                .is_some_and(|entry| entry.seq == due.seq);
            if current {
                self.remove(events, &due.name, &due.key, SignalEventKind::Expired);
            }
        }
    }

    /// The earliest TTL deadline, if any (possibly of an entry refreshed since).
    pub(super) fn next_deadline(&self) -> Option<Instant> {
        self.deadlines.peek().map(|Reverse(d)| d.at)
    }

    /// How many TTL deadlines are kept (for tests).
    #[cfg(test)]
    pub(super) fn deadlines_kept(&self) -> usize {
        self.deadlines.len()
    }

    /// Registers `listener` (of `worker`'s `defer_on`, if it is one) on the watch of
    /// `pattern`, creating the watch (counted from the active names) if nobody watches that
    /// pattern yet.
    pub(super) fn watch(
        &mut self,
        pattern: Pattern,
        listener: &Arc<Notify>,
        worker: Option<Arc<str>>,
    ) -> Arc<Watch> {
        let listener = Listener {
            notify: Arc::clone(listener),
            worker,
        };
        if let Some(entry) = self
            .watches
            .iter_mut()
            .find(|entry| entry.watch.pattern() == &pattern)
        {
            entry.listeners.push(listener);
            return Arc::clone(&entry.watch);
        }
        let mut active = 0;
        let mut marks = Vec::new();
        for (_, keys) in self.names.iter().filter(|(n, _)| pattern.matches(n)) {
            active += 1;
            marks.extend(keys.values().map(Entry::mark));
        }
        let watch = Arc::new(Watch::new(pattern, active));
        let mut entry = WatchEntry::new(Arc::clone(&watch), listener);
        for mark in marks {
            entry.relevel(None, Some(mark));
        }
        self.watches.push(entry);
        watch
    }

    /// Wakes the listeners of every watch matching `name` (once the lock is released) after
    /// bumping its probe generation: a probe of a half-open verdict of `name` is free again.
    pub(super) fn nudge(&mut self, name: &str) {
        for entry in &mut self.watches {
            if entry.watch.pattern().matches(name) {
                entry.watch.nudged();
                entry.wake(&mut self.wakes);
            }
        }
    }

    /// Records a [`ProbeReturned`](SignalEventKind::ProbeReturned) event for the verdict
    /// `(name, key)` if it is active.
    pub(super) fn probe_returned(&mut self, events: &Events, name: &str, key: &str) {
        let Some((name, keys)) = self.names.get_key_value(name) else {
            return;
        };
        let key: Key = Some(Arc::from(key));
        let Some(mark) = keys.get(&key).map(Entry::mark) else {
            return;
        };
        let name = Arc::clone(name);
        self.record(
            events,
            SignalEventKind::ProbeReturned,
            &name,
            &key,
            mark,
            Instant::now,
        );
    }

    /// Unregisters `listener` from `watch`; the watch goes when its last listener does.
    pub(super) fn detach(&mut self, watch: &Arc<Watch>, listener: &Arc<Notify>) {
        let Some(index) = self
            .watches
            .iter()
            .position(|entry| Arc::ptr_eq(&entry.watch, watch))
        else {
            return;
        };
        let entry = &mut self.watches[index];
        if let Some(at) = entry
            .listeners
            .iter()
            .position(|l| Arc::ptr_eq(&l.notify, listener))
        {
            entry.listeners.swap_remove(at);
        }
        if entry.listeners.is_empty() {
            self.watches.swap_remove(index);
        }
    }
}
