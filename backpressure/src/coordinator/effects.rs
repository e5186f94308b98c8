//! What a look at the coordinator's state leaves to do once its lock is released: wake
//! producers and `drain` callers (their wakers are user code), count metrics and write traces
//! (a recorder or a `tracing` layer may read [`Stats`](crate::Stats) or enqueue).
//!
//! Transitions record these under the lock; the lock guard ([`Locked`](super::state::Locked))
//! performs them after release. Counters and traces commute, so each thread performs its own;
//! gauge values, where the latest wins, go through an ordered
//! [`Outbox`](crate::sync::Outbox) instead (see `State::gauges`), so an older value never
//! overwrites a newer one.

use std::time::Duration;

use tokio::sync::Notify;

use super::outcome::Outcome;
use super::telemetry::{Labels, Meters};

/// Effects recorded under the coordinator's lock.
#[derive(Debug, Default)]
pub(super) struct Effects {
    /// Wake one producer waiting for queue space.
    space: bool,
    /// Wake `drain` / `shutdown`: nothing is left for them to wait for.
    settled: bool,
    /// The head was held for this `max_defer` and starts anyway.
    defer_timeout: Option<Duration>,
    /// A slot task ended while its item was running; counted so.
    abandoned: Option<Outcome>,
    /// A retry due earlier than every other waiting one: the retry timer must re-arm.
    retry_timer: bool,
    /// Closed and nothing left: slots that waited for retries to come due may leave.
    release_slots: bool,
    /// A permit was put back or is wanted: the connector serving them must look.
    permit_server: bool,
    /// A start waits for a token of the worker's shared rate: the connector must draw some.
    rate_server: bool,
    /// The head's start was delayed by the rate (counted once per item).
    rate_limited: bool,
    /// A quota's start cleared `wanted` while slots are held: one must look again.
    held_slot: bool,
}

impl Effects {
    pub(super) fn wake_producer(&mut self) {
        self.space = true;
    }

    pub(super) fn settled(&mut self) {
        self.settled = true;
    }

    pub(super) fn defer_timeout(&mut self, held: Duration) {
        self.defer_timeout = Some(held);
    }

    pub(super) fn rate_limited(&mut self) {
        self.rate_limited = true;
    }

    pub(super) fn wake_permit_server(&mut self) {
        self.permit_server = true;
    }

    pub(super) fn wake_held_slot(&mut self) {
        self.held_slot = true;
    }

    pub(super) fn wake_rate_server(&mut self) {
        self.rate_server = true;
    }

    pub(super) fn release_slots(&mut self) {
        self.release_slots = true;
    }

    pub(super) fn wake_retry_timer(&mut self) {
        self.retry_timer = true;
    }

    pub(super) fn abandoned(&mut self, outcome: Outcome) {
        self.abandoned = Some(outcome);
    }

    /// Performs them, with the coordinator's lock released.
    pub(super) fn perform(self, to: Audience<'_>) {
        if self.space {
            to.space.notify_one();
        }
        if self.settled {
            to.settled.notify_waiters();
        }
        if self.rate_limited {
            to.meters.rate_limited();
        }
        if let (true, Some(permits)) = (self.permit_server, to.permits) {
            permits.notify_server();
        }
        if let (true, Some(tokens)) = (self.rate_server, to.rate_tokens) {
            tokens.notify_server();
        }
        if self.release_slots {
            to.slots.notify_waiters();
        } else if self.held_slot {
            to.slots.notify_one();
        }
        if let (true, Some(timer)) = (self.retry_timer, to.retry_timer) {
            timer.notify_one();
        }
        if let Some(held) = self.defer_timeout {
            to.meters.defer_timeout();
            tracing::warn!(
                sink = %to.labels.sink,
                worker = %to.labels.worker,
                held_ms = held.as_millis() as u64,
                "backpressure: an item held for `max_defer` starts anyway"
            );
        }
        if let Some(outcome) = self.abandoned {
            tracing::error!(
                ?outcome,
                "a backpressure slot ended while its item was running (its runtime shut down \
                 or a panic escaped); the item is counted as not completed"
            );
        }
    }
}

/// Who hears of the effects.
pub(super) struct Audience<'a> {
    pub(super) space: &'a Notify,
    pub(super) settled: &'a Notify,
    pub(super) retry_timer: Option<&'a Notify>,
    pub(super) permits: Option<&'a crate::connector::Permits>,
    pub(super) rate_tokens: Option<&'a crate::connector::RateTokens>,
    /// Wakes the slots (waiting for items or on the gate).
    pub(super) slots: &'a Notify,
    pub(super) meters: &'a Meters,
    pub(super) labels: &'a Labels,
}
