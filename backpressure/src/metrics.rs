//! Metrics through the [`metrics`](https://docs.rs/metrics) facade (the `metrics` feature).
//!
//! Every coordinator reports under the labels `sink` and `worker`; signal transitions under
//! `sink`, `signal` and `transition`. Keys are never labels (they are unbounded). Gauges are
//! set to absolute values whenever the coordinator's state changes. Install any recorder
//! (a Prometheus exporter, say) and call [`describe`] once to register units and help texts.
//!
//! | name | type | labels |
//! |---|---|---|
//! | `backpressure_items_enqueued_total` | counter | sink, worker |
//! | `backpressure_items_finished_total` | counter | sink, worker, outcome |
//! | `backpressure_items_retried_total` | counter | sink, worker |
//! | `backpressure_items_dead_lettered_total` | counter | sink, worker |
//! | `backpressure_defer_timeouts_total` | counter | sink, worker |
//! | `backpressure_rate_limited_total` | counter | sink, worker |
//! | `backpressure_signal_transitions_total` | counter | sink, signal, transition |
//! | `backpressure_worker_queued` | gauge | sink, worker |
//! | `backpressure_worker_deferred` | gauge | sink, worker |
//! | `backpressure_worker_active` | gauge | sink, worker |
//! | `backpressure_worker_concurrency` | gauge | sink, worker |
//! | `backpressure_worker_gate_open` | gauge (0 or 1) | sink, worker |
//! | `backpressure_item_duration_seconds` | histogram | sink, worker |
//! | `backpressure_item_wait_seconds` | histogram | sink, worker |
//!
//! `outcome` is `completed`, `failed`, `panicked`, `skipped` or `timed_out`, counted per
//! attempt (a retried attempt's failure too; `backpressure_items_retried_total` says how many
//! were retried); `transition` is `raised`,
//! `retracted`, `expired`, `level_changed` or `policy_changed`.

/// Items accepted.
pub const ITEMS_ENQUEUED: &str = "backpressure_items_enqueued_total";
/// Items finished, by outcome.
pub const ITEMS_FINISHED: &str = "backpressure_items_finished_total";
/// Failed attempts that are retried (workers with `retry(...)`).
pub const ITEMS_RETRIED: &str = "backpressure_items_retried_total";
/// Items whose last attempt failed, handed to the dead letters.
pub const ITEMS_DEAD_LETTERED: &str = "backpressure_items_dead_lettered_total";
/// Starts delayed by the worker's `rate(...)` (each item once).
pub const RATE_LIMITED: &str = "backpressure_rate_limited_total";
/// Items started anyway after `max_defer`.
pub const DEFER_TIMEOUTS: &str = "backpressure_defer_timeouts_total";
/// Signal raises, retracts, expiries, level and policy changes.
pub const SIGNAL_TRANSITIONS: &str = "backpressure_signal_transitions_total";
/// Items in the queue.
pub const WORKER_QUEUED: &str = "backpressure_worker_queued";
/// Queued items held back by the gate.
pub const WORKER_DEFERRED: &str = "backpressure_worker_deferred";
/// Items running.
pub const WORKER_ACTIVE: &str = "backpressure_worker_active";
/// Configured slots.
pub const WORKER_CONCURRENCY: &str = "backpressure_worker_concurrency";
/// 1 while the gate is fully open, else 0.
pub const WORKER_GATE_OPEN: &str = "backpressure_worker_gate_open";
/// How long handlers ran.
pub const ITEM_DURATION: &str = "backpressure_item_duration_seconds";
/// How long items waited between enqueue and start.
pub const ITEM_WAIT: &str = "backpressure_item_wait_seconds";

/// Registers the unit and help text of every metric with the installed recorder.
///
/// # Examples
///
/// ```
/// // After installing a recorder (e.g. a Prometheus exporter):
/// backpressure::metrics::describe();
/// ```
pub fn describe() {
    use metrics::{describe_counter, describe_gauge, describe_histogram, Unit};
    describe_counter!(
        ITEMS_ENQUEUED,
        Unit::Count,
        "Items accepted by a worker's queue"
    );
    describe_counter!(ITEMS_FINISHED, Unit::Count, "Attempts finished, by outcome");
    describe_counter!(
        ITEMS_RETRIED,
        Unit::Count,
        "Failed attempts that are retried"
    );
    describe_counter!(
        ITEMS_DEAD_LETTERED,
        Unit::Count,
        "Items whose last attempt failed (dead letters)"
    );
    describe_counter!(
        RATE_LIMITED,
        Unit::Count,
        "Starts delayed by the worker's rate"
    );
    describe_counter!(
        DEFER_TIMEOUTS,
        Unit::Count,
        "Held items started anyway after max_defer"
    );
    describe_counter!(
        SIGNAL_TRANSITIONS,
        Unit::Count,
        "Signal raises, retracts and expiries"
    );
    describe_gauge!(
        WORKER_QUEUED,
        Unit::Count,
        "Items waiting in a worker's queue"
    );
    describe_gauge!(
        WORKER_DEFERRED,
        Unit::Count,
        "Queued items held back by the gate"
    );
    describe_gauge!(WORKER_ACTIVE, Unit::Count, "Items running");
    describe_gauge!(
        WORKER_CONCURRENCY,
        Unit::Count,
        "Configured concurrent slots"
    );
    describe_gauge!(
        WORKER_GATE_OPEN,
        "1 while the worker's gate is fully open, else 0"
    );
    describe_histogram!(ITEM_DURATION, Unit::Seconds, "How long handlers ran");
    describe_histogram!(ITEM_WAIT, Unit::Seconds, "Time from enqueue to start");
}
