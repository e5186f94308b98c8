//! What a coordinator tells the outside world about its items: a `tracing` span per item
//! and, with the `metrics` feature, its metrics.
//!
//! Without a `tracing` subscriber at INFO and without the `metrics` feature, nothing here
//! costs more than one relaxed level check per item: no clock reads, no allocation.

use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;
use tracing::Span;

use super::outcome::Outcome;

/// The names a coordinator reports under.
#[derive(Debug, Clone)]
pub(super) struct Labels {
    pub(super) sink: Arc<str>,
    pub(super) worker: Arc<str>,
}

/// What an item carries from its enqueue to its start, when anyone is listening.
#[derive(Debug)]
pub(super) struct Enqueued {
    /// The span current at enqueue, which the item's span follows from: kept only while a
    /// subscriber listens at DEBUG (boxed, so that an item that only needs its times, one
    /// of a retrying worker say, does not carry a span's 40 bytes).
    follows: Option<Box<Span>>,
    /// When it joined the queue this time (its enqueue, or its retry coming due).
    at: Instant,
    /// When it was first accepted, and which attempt this is (1-based): kept for workers with
    /// `retry(...)`, whose every item carries this.
    first_at: Instant,
    attempt: u32,
    /// The item's id (an item without a trace has its id from its place in the queue).
    id: u64,
}

impl Enqueued {
    /// Captured at enqueue: `None` unless a subscriber listens at DEBUG (the item span's
    /// level), metrics are on, or `always` (a policy needs every item's enqueue time).
    pub(super) fn capture(always: bool) -> Option<Box<Self>> {
        let span = tracing::level_enabled!(tracing::Level::DEBUG);
        if !(always || span || cfg!(feature = "metrics")) {
            return None;
        }
        let at = Instant::now();
        Some(Box::new(Self {
            follows: span.then(|| Box::new(Span::current())),
            at,
            first_at: at,
            attempt: 1,
            id: 0,
        }))
    }

    /// The next attempt of the same item, queued again `at`.
    pub(super) fn next_attempt(mut self: Box<Self>) -> Box<Self> {
        self.attempt += 1;
        self
    }

    /// It joins the queue again now (a retry come due).
    pub(super) fn rejoined(&mut self, at: Instant) {
        self.at = at;
    }

    /// The item's id.
    pub(super) fn id(&self) -> u64 {
        self.id
    }

    /// Sets the item's id, once it is known (at its push).
    pub(super) fn set_id(&mut self, id: u64) {
        self.id = id;
    }

    /// Which attempt this is, 1-based.
    pub(super) fn attempt(&self) -> u32 {
        self.attempt
    }

    /// When the item was first accepted.
    pub(super) fn first_at(&self) -> Instant {
        self.first_at
    }

    /// A fresh first attempt of an item first accepted `first_at` (a dead letter requeued).
    pub(super) fn requeued(first_at: Instant) -> Box<Self> {
        let mut fresh = Self::capture(true).expect("captured when asked always");
        fresh.first_at = first_at;
        fresh
    }
}

impl Enqueued {
    /// When the item was enqueued.
    pub(super) fn at(&self) -> Instant {
        self.at
    }
}

/// What delayed an item's start besides the gate: the worker's rate, a wait for a fleet
/// permit of its `global_concurrency`.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct StartDelays {
    pub(super) rate_limited: bool,
    pub(super) permit_waited: bool,
}

/// An item about to start: how long it waited in the queue (`queued_ms`), if the gate held
/// it at the head of the queue for how long (`held_ms`), and whether the worker's rate
/// delayed its start (`rate_limited`) or it waited for a fleet permit (`permit_waited`), each
/// only present when it did.
#[derive(Debug)]
pub(super) struct Started {
    enqueued: Box<Enqueued>,
    queued_for: Duration,
    held_for: Option<Duration>,
    delays: StartDelays,
}

impl Started {
    pub(super) fn new(
        enqueued: Box<Enqueued>,
        held_since: Option<Instant>,
        delays: StartDelays,
    ) -> Self {
        let now = Instant::now();
        Self {
            queued_for: now.saturating_duration_since(enqueued.at),
            held_for: held_since.map(|since| now.saturating_duration_since(since)),
            delays,
            enqueued,
        }
    }

    /// The item's span: `backpressure.item` at DEBUG (one per item: an ordinary INFO
    /// subscriber pays nothing for it, as for tower-http's per-request span), following from
    /// the span current at enqueue. Durations in milliseconds, rounded to 0.1 ms.
    pub(super) fn span(&self, labels: &Labels, id: u64) -> Span {
        let span = tracing::debug_span!(
            "backpressure.item",
            sink = %labels.sink,
            worker = %labels.worker,
            item_id = id,
            attempt = self.enqueued.attempt,
            queued_ms = tenths_of_ms(self.queued_for),
            held_ms = self.held_for.map(tenths_of_ms),
            rate_limited = self.delays.rate_limited.then_some(true),
            permit_waited = self.delays.permit_waited.then_some(true),
            outcome = tracing::field::Empty,
        );
        if let Some(follows) = &self.enqueued.follows {
            span.follows_from(&**follows);
        }
        span
    }

    /// What it carried from its enqueue, for its next attempt.
    pub(super) fn into_enqueued(self) -> Box<Enqueued> {
        self.enqueued
    }

    /// What it carried from its enqueue.
    pub(super) fn enqueued(&self) -> &Enqueued {
        &self.enqueued
    }

    #[cfg(feature = "metrics")]
    pub(super) fn queued_for(&self) -> Duration {
        self.queued_for
    }
}

/// A duration in milliseconds rounded to 0.1 ms, for span fields (`0.2`, not
/// `0.19031199999999998`).
pub(super) fn tenths_of_ms(duration: Duration) -> f64 {
    (duration.as_secs_f64() * 1e4).round() / 10.0
}

/// A coordinator's gauge values at one moment (the `metrics` feature).
#[derive(Debug, Clone, Copy)]
#[cfg_attr(not(feature = "metrics"), allow(dead_code))]
pub(super) struct Gauges {
    pub(super) queued: usize,
    pub(super) active: usize,
    pub(super) concurrency: usize,
    /// Whether the gate lets every slot work.
    pub(super) open: bool,
}

/// A coordinator's metric handles (the `metrics` feature), labelled by sink and worker.
#[cfg(feature = "metrics")]
#[derive(Debug)]
pub(super) struct Meters {
    enqueued: metrics::Counter,
    retried: metrics::Counter,
    dead_lettered: metrics::Counter,
    rate_limited: metrics::Counter,
    defer_timeouts: metrics::Counter,
    queued: metrics::Gauge,
    deferred: metrics::Gauge,
    active: metrics::Gauge,
    concurrency: metrics::Gauge,
    gate_open: metrics::Gauge,
    duration: metrics::Histogram,
    wait: metrics::Histogram,
    labels: Labels,
}

#[cfg(feature = "metrics")]
impl Meters {
    pub(super) fn new(labels: &Labels) -> Self {
        use crate::metrics as m;
        let l = [
            ("sink", labels.sink.to_string()),
            ("worker", labels.worker.to_string()),
        ];
        Self {
            enqueued: metrics::counter!(m::ITEMS_ENQUEUED, &l),
            retried: metrics::counter!(m::ITEMS_RETRIED, &l),
            dead_lettered: metrics::counter!(m::ITEMS_DEAD_LETTERED, &l),
            rate_limited: metrics::counter!(m::RATE_LIMITED, &l),
            defer_timeouts: metrics::counter!(m::DEFER_TIMEOUTS, &l),
            queued: metrics::gauge!(m::WORKER_QUEUED, &l),
            deferred: metrics::gauge!(m::WORKER_DEFERRED, &l),
            active: metrics::gauge!(m::WORKER_ACTIVE, &l),
            concurrency: metrics::gauge!(m::WORKER_CONCURRENCY, &l),
            gate_open: metrics::gauge!(m::WORKER_GATE_OPEN, &l),
            duration: metrics::histogram!(m::ITEM_DURATION, &l),
            wait: metrics::histogram!(m::ITEM_WAIT, &l),
            labels: labels.clone(),
        }
    }

    pub(super) fn enqueued(&self) {
        self.enqueued.increment(1);
    }

    pub(super) fn defer_timeout(&self) {
        self.defer_timeouts.increment(1);
    }

    pub(super) fn retried(&self) {
        self.retried.increment(1);
    }

    pub(super) fn dead_lettered(&self) {
        self.dead_lettered.increment(1);
    }

    pub(super) fn rate_limited(&self) {
        self.rate_limited.increment(1);
    }

    pub(super) fn started(&self, started: Option<&Started>) {
        if let Some(started) = started {
            self.wait.record(started.queued_for().as_secs_f64());
        }
    }

    pub(super) fn finished(&self, outcome: Outcome, ran_for: Option<Duration>) {
        metrics::counter!(
            crate::metrics::ITEMS_FINISHED,
            "sink" => self.labels.sink.to_string(),
            "worker" => self.labels.worker.to_string(),
            "outcome" => outcome.as_str(),
        )
        .increment(1);
        if let Some(ran_for) = ran_for {
            self.duration.record(ran_for.as_secs_f64());
        }
    }

    /// Sets every gauge to its absolute value.
    pub(super) fn gauges(&self, values: Gauges) {
        let Gauges {
            queued,
            active,
            concurrency,
            open,
        } = values;
        self.queued.set(queued as f64);
        self.deferred.set(if open { 0.0 } else { queued as f64 });
        self.active.set(active as f64);
        self.concurrency.set(concurrency as f64);
        self.gate_open.set(if open { 1.0 } else { 0.0 });
    }
}

/// Without the `metrics` feature: nothing.
#[cfg(not(feature = "metrics"))]
#[derive(Debug)]
pub(super) struct Meters;

#[cfg(not(feature = "metrics"))]
impl Meters {
    pub(super) fn new(_: &Labels) -> Self {
        Self
    }
    pub(super) fn enqueued(&self) {}
    pub(super) fn defer_timeout(&self) {}
    pub(super) fn retried(&self) {}
    pub(super) fn dead_lettered(&self) {}
    pub(super) fn rate_limited(&self) {}
    pub(super) fn started(&self, _: Option<&Started>) {}
    pub(super) fn finished(&self, _: Outcome, _: Option<Duration>) {}
    pub(super) fn gauges(&self, _: Gauges) {}
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn span_durations_are_tenths_of_a_millisecond() {
        assert_eq!(tenths_of_ms(Duration::from_nanos(190_312)), 0.2);
        assert_eq!(tenths_of_ms(Duration::from_micros(1_234)), 1.2);
        assert_eq!(tenths_of_ms(Duration::from_secs(4)), 4000.0);
        assert_eq!(tenths_of_ms(Duration::ZERO), 0.0);
    }
}
