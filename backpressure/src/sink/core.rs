//! What every handle of a sink shares: the entries under one lock, the outgoing side and the
//! reapers, and the lock guard that performs a transition's effects after release.

use std::ops::{Deref, DerefMut};
use std::sync::Arc;

use tokio::sync::Notify;
use tokio::time::Instant;

use super::emit::Events;
use super::entries::Entries;
use super::reaper::Reaper;
use super::watch::Watch;
use crate::sync::{drain_outbox, lock, Mutex, MutexGuard};

pub(crate) struct SinkCore {
    state: Mutex<Entries>,
    pub(super) events: Events,
    reaper: Reaper,
    /// Workers' permits of their `global_concurrency`.
    pub(super) permits: super::served::Served<super::permits::Permits>,
    /// Workers' tokens of their shared `rate`.
    pub(super) rates: super::served::Served<super::rate_tokens::RateTokens>,
}

/// The sink's lock. On release it wakes the listeners the transitions queued, then performs
/// their events in order (see [`Outbox`](crate::sync::Outbox)): no `tracing` layer, metrics
/// recorder or waker runs while the lock is held, so any of them may use the sink.
pub(super) struct Locked<'a> {
    core: &'a SinkCore,
    guard: Option<MutexGuard<'a, Entries>>,
}

impl SinkCore {
    pub(super) fn new(events: Events) -> Self {
        Self {
            state: Mutex::new(Entries::new()),
            events,
            reaper: Reaper::default(),
            permits: Default::default(),
            rates: Default::default(),
        }
    }

    pub(super) fn reaper(&self) -> &Reaper {
        &self.reaper
    }

    /// Locks the entries; effects are performed when the guard drops.
    pub(super) fn lock(&self) -> Locked<'_> {
        Locked {
            core: self,
            guard: Some(lock(&self.state)),
        }
    }

    /// Locks the entries after removing those expired by `now`.
    pub(super) fn lock_at(&self, now: Instant) -> Locked<'_> {
        let mut state = self.lock();
        state.expire(&self.events, now);
        state
    }

    /// Expires what is due; returns the next deadline.
    pub(super) fn expire_due(&self) -> Option<Instant> {
        self.lock_at(Instant::now()).next_deadline()
    }

    pub(super) fn detach(&self, watch: &Arc<Watch>, listener: &Arc<Notify>) {
        self.lock().detach(watch, listener);
    }
}

impl Drop for SinkCore {
    fn drop(&mut self) {
        // Lets idle reaper tasks notice that their sink is gone.
        self.reaper.deadlines_changed();
    }
}

impl Deref for Locked<'_> {
    type Target = Entries;

    fn deref(&self) -> &Entries {
        self.guard.as_ref().expect("held until drop")
    }
}

impl DerefMut for Locked<'_> {
    fn deref_mut(&mut self) -> &mut Entries {
        self.guard.as_mut().expect("held until drop")
    }
}

impl Drop for Locked<'_> {
    fn drop(&mut self) {
        let Some(mut state) = self.guard.take() else {
            return;
        };
        let wakes = std::mem::take(&mut state.wakes);
        // While unwinding, performing user code could panic again and abort: leave the
        // events to the next transition.
        let batch = (!std::thread::panicking())
            .then(|| state.outbox.claim())
            .flatten();
        drop(state);
        wakes.notify_all();
        if let Some(batch) = batch {
            let events = &self.core.events;
            drain_outbox(
                &self.core.state,
                |state| &mut state.outbox,
                batch,
                |emit| events.perform(emit),
            );
        }
    }
}
