//! The [`Sink`] handle: every operation on a sink's signals.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use backpressure_pattern::{validate_name, Pattern};
use tokio::sync::{broadcast, Notify};
use tokio::time::Instant;

use super::core::{Locked, SinkCore};
use super::emit::Events;
use super::entries::{Key, Raise};
use super::event::{SignalEvent, SignalEventKind, Subscription};
use super::expiry::ensure_reaper;
use super::level::{Level, RaiseOptions};
use super::phase::Phase;
use super::watch_handle::WatchHandle;
use crate::error::SignalError;

/// How many events a subscription buffers before it reports [`Lagged`](crate::error::Lagged).
const EVENT_BUFFER: usize = 1024;

/// A shared set of active signals.
///
/// A signal is a name such as `backpressure.downstream`, optionally with a **key** that tells
/// raisers apart and a **TTL** after which it expires by itself. The sink holds the active
/// (name, key) entries; raising an active entry again is idempotent and refreshes its TTL.
/// Coordinators watch a sink and hold back work while a matching signal is active.
///
/// `Sink` is a cheap handle: clones share the same set. [`sink`](crate::sink()) returns named
/// process-wide sinks; [`Sink::new`] makes a standalone one (for tests and libraries).
///
/// # Examples
///
/// ```
/// use backpressure::Sink;
///
/// let sink = Sink::new();
/// sink.raise_keyed("backpressure.downstream", "replica-1")?;
/// sink.raise_keyed("backpressure.downstream", "replica-2")?;
///
/// // One raiser recovering does not clear the other's signal.
/// sink.retract_keyed("backpressure.downstream", "replica-1")?;
/// assert!(sink.is_raised("backpressure.downstream"));
///
/// assert_eq!(sink.retract("backpressure.downstream")?, 1);
/// assert!(!sink.any_matching("backpressure.*")?);
/// # Ok::<(), backpressure::error::SignalError>(())
/// ```
#[derive(Clone)]
pub struct Sink {
    pub(super) shared: Arc<SinkCore>,
}

/// One active (name, key) entry, as seen by [`Sink::snapshot`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActiveSignal {
    /// The signal name.
    pub name: Arc<str>,
    /// The key it was raised with, if any.
    pub key: Option<Arc<str>>,
    /// When the entry became active (re-raising does not change it).
    pub raised_at: Instant,
    /// When the entry expires by itself, if it was raised with a TTL.
    pub expires_at: Option<Instant>,
    /// How far it holds work back ([`Level::STOP`] for a plain raise).
    pub level: Level,
    /// The verdict's phase, for an entry raised as a verdict (a breaker's); `None` for a
    /// plain signal.
    pub phase: Option<Phase>,
    /// When a verdict expects to change next (an open breaker's half-open instant), if its
    /// raiser said (see [`RaiseOptions::next_transition`]): a truer `Retry-After` than the
    /// TTL, which its owner refreshes.
    pub next_transition: Option<Instant>,
}

impl Sink {
    /// Creates a standalone sink, not reachable through [`sink`](crate::sink()).
    pub fn new() -> Self {
        Self::with_name(None)
    }

    /// A sink that reports itself as `name` in traces and metrics (global sinks).
    pub(crate) fn named(name: &str) -> Self {
        Self::with_name(Some(name))
    }

    fn with_name(name: Option<&str>) -> Self {
        let (sender, _) = broadcast::channel(EVENT_BUFFER);
        let events = Events::new(sender, name);
        Self {
            shared: Arc::new(SinkCore::new(events)),
        }
    }

    /// Raises `name` (without a key). Idempotent: raising an active signal again only makes
    /// it permanent again if it had a TTL.
    ///
    /// # Errors
    ///
    /// [`SignalError::Name`] if `name` breaks the naming rules.
    pub fn raise(&self, name: &str) -> Result<(), SignalError> {
        self.raise_entry(Raise::plain(name, None, None))
    }

    /// Raises `name` under `key`. Entries with different keys are independent: each must be
    /// retracted (or expire) before the signal is gone.
    ///
    /// # Errors
    ///
    /// [`SignalError::Name`] / [`SignalError::Key`] if the name or key breaks the naming rules.
    pub fn raise_keyed(&self, name: &str, key: &str) -> Result<(), SignalError> {
        self.raise_entry(Raise::plain(name, Some(key), None))
    }

    /// Raises `name` for `ttl`: it expires by itself unless raised again (which refreshes
    /// the TTL) or retracted first. Expiry wakes waiting coordinators at once when the sink
    /// is used inside a tokio runtime.
    ///
    /// # Errors
    ///
    /// [`SignalError::Name`] for a bad name, [`SignalError::ZeroTtl`] for a zero TTL.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use backpressure::Sink;
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)] async fn main() -> Result<(), backpressure::error::SignalError> {
    /// let sink = Sink::new();
    /// sink.raise_for("backpressure.downstream", Duration::from_secs(5))?;
    /// assert!(sink.is_raised("backpressure.downstream"));
    /// tokio::time::sleep(Duration::from_secs(6)).await;
    /// assert!(!sink.is_raised("backpressure.downstream"));
    /// # Ok(()) }
    /// ```
    pub fn raise_for(&self, name: &str, ttl: Duration) -> Result<(), SignalError> {
        self.raise_entry(Raise::plain(name, None, Some(ttl)))
    }

    /// Raises `name` under `key` for `ttl`; see [`raise_keyed`](Self::raise_keyed) and
    /// [`raise_for`](Self::raise_for).
    ///
    /// # Errors
    ///
    /// As [`raise_keyed`](Self::raise_keyed), plus [`SignalError::ZeroTtl`].
    pub fn raise_keyed_for(&self, name: &str, key: &str, ttl: Duration) -> Result<(), SignalError> {
        self.raise_entry(Raise::plain(name, Some(key), Some(ttl)))
    }

    /// Raises `name` with any combination of key, TTL and [`Level`]. Raising an active entry
    /// again refreshes its TTL and sets its level: a higher level wakes held work at once, a
    /// lower one never cancels running work.
    ///
    /// # Errors
    ///
    /// As [`raise_keyed_for`](Self::raise_keyed_for).
    ///
    /// # Examples
    ///
    /// ```
    /// use backpressure::{Level, RaiseOptions, Sink};
    ///
    /// let sink = Sink::new();
    /// // The database replica is struggling: let a third of the usual work through.
    /// sink.raise_with("backpressure.db", RaiseOptions::new().level(Level::new(0.33)?))?;
    /// // Recovered a little: raising the same entry again updates its level.
    /// sink.raise_with("backpressure.db", RaiseOptions::new().level(Level::new(0.66)?))?;
    /// assert_eq!(sink.snapshot()[0].level.per_mille(), 660);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn raise_with(&self, name: &str, options: RaiseOptions) -> Result<(), SignalError> {
        self.raise_entry(Raise {
            name,
            key: options.key.as_deref(),
            ttl: options.ttl,
            level: options.level,
            phase: options.phase,
            source: options
                .source
                .map(|source| source.0)
                .filter(|_| options.phase == Some(Phase::HalfOpen)),
            next_transition: options.next_transition,
        })
    }

    /// Validates and performs one raise.
    pub(super) fn raise_entry(&self, raise: Raise<'_>) -> Result<(), SignalError> {
        validate_name(raise.name)?;
        if let Some(key) = raise.key {
            validate_name(key).map_err(SignalError::Key)?;
        }
        if raise.ttl == Some(Duration::ZERO) {
            return Err(SignalError::ZeroTtl);
        }
        let now = Instant::now();
        let has_deadline = {
            let mut state = self.shared.lock_at(now);
            state.raise(&self.shared.events, raise, now)
        };
        if has_deadline {
            ensure_reaper(&self.shared);
        }
        Ok(())
    }

    /// Retracts every entry of `name`, whatever its key; returns how many were active.
    ///
    /// # Errors
    ///
    /// [`SignalError::Name`] if `name` breaks the naming rules.
    pub fn retract(&self, name: &str) -> Result<usize, SignalError> {
        let mut state = self.lock_current();
        // One look-up of the name takes all its keys; a name that is found was valid when it
        // was raised, so only a name that is not found is checked.
        let Some(removed) = state.remove_name(&self.shared.events, name) else {
            drop(state);
            validate_name(name)?;
            return Ok(0);
        };
        // The lock's release wakes the watchers first; the entries are freed after that.
        drop(state);
        Ok(removed.len())
    }

    /// Retracts the entry of `name` raised under `key`; returns whether it was active.
    /// Entries of `name` with other keys (or none) stay.
    ///
    /// # Errors
    ///
    /// [`SignalError::Name`] / [`SignalError::Key`] for a bad name or key.
    pub fn retract_keyed(&self, name: &str, key: &str) -> Result<bool, SignalError> {
        validate_name(name)?;
        validate_name(key).map_err(SignalError::Key)?;
        let mut state = self.lock_current();
        let (name, key): (Arc<str>, Key) = (name.into(), Some(key.into()));
        Ok(state.remove(&self.shared.events, &name, &key, SignalEventKind::Retracted))
    }

    /// Retracts every entry whose name matches `pattern`; returns how many were removed.
    ///
    /// # Errors
    ///
    /// [`SignalError::Pattern`] if the pattern does not compile.
    pub fn retract_matching(&self, pattern: &str) -> Result<usize, SignalError> {
        let pattern = Pattern::parse(pattern)?;
        Ok(self.retract_where(|name| pattern.matches(name)))
    }

    /// Retracts every active entry; returns how many there were.
    pub fn clear(&self) -> usize {
        self.retract_where(|_| true)
    }

    /// Retracts every entry whose name satisfies `doomed`; returns how many were removed.
    fn retract_where(&self, doomed: impl Fn(&str) -> bool) -> usize {
        let mut state = self.lock_current();
        let entries: Vec<(Arc<str>, Key)> = state
            .names
            .iter()
            .filter(|(name, _)| doomed(name))
            .flat_map(|(name, keys)| keys.keys().map(|key| (Arc::clone(name), key.clone())))
            .collect();
        for (name, key) in &entries {
            state.remove(&self.shared.events, name, key, SignalEventKind::Retracted);
        }
        entries.len()
    }

    /// Whether `name` is active under any key. A name that breaks the naming rules cannot
    /// be raised, so it is never active.
    pub fn is_raised(&self, name: &str) -> bool {
        self.lock_current().names.contains_key(name)
    }

    /// Whether any active signal matches `pattern`.
    ///
    /// This scans the active signals; coordinators do not use it (their gate keeps counts).
    ///
    /// # Errors
    ///
    /// [`SignalError::Pattern`] if the pattern does not compile.
    pub fn any_matching(&self, pattern: &str) -> Result<bool, SignalError> {
        let pattern = Pattern::parse(pattern)?;
        Ok(self
            .lock_current()
            .names
            .keys()
            .any(|name| pattern.matches(name)))
    }

    /// The active entries, sorted by name then key.
    pub fn snapshot(&self) -> Vec<ActiveSignal> {
        let state = self.lock_current();
        let mut active: Vec<ActiveSignal> = state
            .names
            .iter()
            .flat_map(|(name, keys)| {
                keys.iter().map(|(key, entry)| ActiveSignal {
                    name: Arc::clone(name),
                    key: key.clone(),
                    raised_at: entry.raised_at,
                    expires_at: entry.expires_at,
                    level: entry.level,
                    phase: entry.phase,
                    next_transition: entry.next_transition,
                })
            })
            .collect();
        active.sort_by(|a, b| (&a.name, &a.key).cmp(&(&b.name, &b.key)));
        active
    }

    /// Subscribes to raise / retract / expire events from now on.
    ///
    /// Subscribing from inside a tokio runtime makes sure TTL entries expire on time (and
    /// their [`Expired`](SignalEventKind::Expired) events arrive) while that runtime runs.
    pub fn subscribe(&self) -> Subscription {
        ensure_reaper(&self.shared);
        Subscription::new(self.shared.events.subscribe())
    }

    /// Registers `listener` to be woken whenever the number of active names matching
    /// `pattern` goes from zero to non-zero or back. Watches of equal patterns are shared.
    pub(crate) fn watch(&self, pattern: Pattern, listener: &Arc<Notify>) -> WatchHandle {
        self.watch_for(pattern, listener, None)
    }

    /// Like [`watch`](Self::watch), for `worker`'s `defer_on`: the gate traces name it.
    pub(crate) fn watch_for(
        &self,
        pattern: Pattern,
        listener: &Arc<Notify>,
        worker: Option<Arc<str>>,
    ) -> WatchHandle {
        let mut state = self.lock_current();
        let watch = state.watch(pattern, listener, worker);
        drop(state);
        // The watcher's runtime gets a reaper of its own, so TTL entries expire on time for
        // it even if the runtime that raised them is no longer driven.
        ensure_reaper(&self.shared);
        WatchHandle::new(watch, Arc::clone(listener), Arc::downgrade(&self.shared))
    }

    /// Locks the state after removing expired entries.
    pub(super) fn lock_current(&self) -> Locked<'_> {
        self.shared.lock_at(Instant::now())
    }

    /// Tells subscribers that a health policy changed state.
    pub(crate) fn emit_policy(
        &self,
        signal: &str,
        owner: &str,
        change: crate::policy::PolicyChange,
    ) {
        // Sent at once, not through the sink's lock: the caller holds its policy's lock.
        self.shared.events.send(|| SignalEvent {
            kind: SignalEventKind::PolicyChanged,
            name: signal.into(),
            key: Some(owner.into()),
            level: Level::STOP,
            phase: None,
            policy: Some(change),
            at: Instant::now(),
        });
    }

    /// The name of a global sink ([`sink`](crate::sink())); `None` for a standalone one.
    pub fn name(&self) -> Option<&str> {
        self.shared.events.sink_name()
    }

    /// Whether both handles refer to the same sink.
    pub fn same_sink(&self, other: &Sink) -> bool {
        Arc::ptr_eq(&self.shared, &other.shared)
    }
}

impl Default for Sink {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for Sink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = self.shared.lock();
        f.debug_struct("Sink")
            .field("active_names", &state.names.len())
            .field("watches", &state.watches.len())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sink::entries::MIN_COMPACTION;

    #[tokio::test(start_paused = true)]
    async fn refreshing_a_ttl_keeps_the_deadline_heap_bounded() {
        let sink = Sink::new();
        for _ in 0..10_000 {
            sink.raise_for("backpressure.busy", Duration::from_secs(3600))
                .unwrap();
        }
        let heap = sink.shared.lock().deadlines_kept();
        assert!(
            heap <= 2 * MIN_COMPACTION,
            "{heap} deadlines kept for one entry"
        );

        // The live deadline survived compaction: the signal still expires, on time.
        tokio::time::advance(Duration::from_secs(3599)).await;
        assert!(sink.is_raised("backpressure.busy"));
        tokio::time::advance(Duration::from_secs(2)).await;
        assert!(!sink.is_raised("backpressure.busy"));
    }
}
