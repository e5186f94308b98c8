//! What the driver asks of every policy's state machine: one trait, implemented beside each
//! machine (`breaker/machine.rs`, `adaptive.rs`, `watermark.rs`).
//!
//! A machine is pure: every method takes `now` (and a breaker its jitter source, at
//! construction) and returns what changed; it performs no I/O. The driver calls it under the
//! policy's lock and, after releasing the lock, reports the [`Transition`] (tracing, the
//! sink's subscribers) and does its [`Effect`] to the signal.

use std::fmt;
use std::time::Duration;

use tokio::time::Instant;

use super::{PolicyChange, PolicyDetail, PolicyState, WindowCounts};
use crate::{Level, Phase};

/// What to do to the policy's signal once its lock is released.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Effect {
    /// Raise (or refresh) it at this level.
    Raise(Level),
    /// Retract it.
    Retract,
}

/// A state change of a policy: what to report, and what it does to the signal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Transition {
    /// The change, for the `tracing` event and the sink's `PolicyChanged` event.
    pub(crate) change: PolicyChange,
    /// What it does to the signal.
    pub(crate) effect: Effect,
    /// Whether held slots must look at the gate again (a breaker went half-open).
    pub(crate) wake_slots: bool,
}

/// A policy's state machine, as the driver (`driver.rs`) runs it. Only
/// [`timers`](Self::timers) is required of a policy beyond describing itself; the other
/// inputs default to "not interested".
pub(crate) trait PolicyMachine: Send + fmt::Debug {
    /// `error_rate`, `slow_call`, `adaptive` or `watermark`.
    fn kind(&self) -> &'static str;

    /// The signal it raises.
    fn signal(&self) -> &str;

    /// The signal's time-to-live; the driver refreshes a raised signal every `ttl / 3`.
    fn ttl(&self) -> Duration;

    /// Its state, as shown in [`PolicyInfo`](super::PolicyInfo) and events.
    fn state(&self) -> PolicyState;

    /// What its state is measured against, for [`PolicyInfo`](super::PolicyInfo).
    fn detail(&self) -> PolicyDetail;

    /// The counts of its current window.
    fn counts(&self, _now: Instant) -> WindowCounts {
        WindowCounts::default()
    }

    /// The level a refresh raises the signal at, while it is raised.
    fn level(&self) -> Level {
        Level::STOP
    }

    /// Runs its timers at `now`.
    fn timers(&mut self, now: Instant) -> Option<Transition>;

    /// When [`timers`](Self::timers) has something to do next, if anything.
    fn next_timer(&self) -> Option<Instant>;

    /// Item `id` finished after `elapsed`; `failed` for an error or a panic.
    fn finished(
        &mut self,
        _id: u64,
        _failed: bool,
        _elapsed: Duration,
        _now: Instant,
    ) -> Option<Transition> {
        None
    }

    /// Whether it watches the worker's queue.
    fn watches_queue(&self) -> bool {
        false
    }

    /// Whether it needs each item's enqueue time (it watches the oldest's age).
    fn stamps_items(&self) -> bool {
        false
    }

    /// The queue changed; returns whether its timers must run (a threshold was crossed).
    fn queue_changed(&mut self, _depth: usize, _oldest_at: Option<Instant>) -> bool {
        false
    }

    /// The worker has queued work it may not start under the current limit.
    fn saturated(&mut self) {}

    /// Its signal's verdict phase, while raised (a breaker's open or half-open); `None` for a
    /// policy whose signal is not a verdict.
    fn phase(&self) -> Option<Phase> {
        None
    }

    /// Whether [`claim_probe`](Self::claim_probe) would hand out a probe now.
    fn has_probe(&self) -> bool {
        false
    }

    /// Claims one probe (a half-open breaker with probes left): its ticket, in the machine's
    /// own id space (not an item id).
    fn claim_probe(&mut self, _now: Instant) -> Option<u64> {
        None
    }

    /// The probe `ticket` finished after `elapsed`; `failed` for an error or a panic. A
    /// ticket the machine no longer knows (it reopened meanwhile) is ignored.
    fn probe_finished(
        &mut self,
        _ticket: u64,
        _failed: bool,
        _elapsed: Duration,
        _now: Instant,
    ) -> Option<Transition> {
        None
    }

    /// The probe `ticket` ended without an outcome: returns whether it was handed out again.
    fn give_back_probe(&mut self, _ticket: u64) -> bool {
        false
    }
}
