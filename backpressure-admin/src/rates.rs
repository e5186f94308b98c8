//! Per-second rates of each worker's counters, sampled when the dashboard asks.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use backpressure::Stats;
use serde::Serialize;
use tokio::time::Instant;

/// Per-second rates over the last sampling window (at least a second long).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub(crate) struct Rates {
    pub(crate) enqueued_per_s: f64,
    pub(crate) completed_per_s: f64,
    pub(crate) failed_per_s: f64,
}

/// The last counter sample of each worker, to compute rates.
#[derive(Debug, Default)]
pub(crate) struct RateBook {
    samples: Mutex<HashMap<String, Sample>>,
}

#[derive(Debug, Clone, Copy)]
struct Sample {
    at: Instant,
    enqueued: u64,
    completed: u64,
    failed: u64,
    rates: Rates,
}

const RATE_WINDOW: Duration = Duration::from_secs(1);

impl RateBook {
    /// The rates of `worker`, refreshed when the last sample is at least a second old.
    pub(crate) fn rates(&self, worker: &str, stats: &Stats, now: Instant) -> Rates {
        let mut samples = self.samples.lock().unwrap_or_else(PoisonError::into_inner);
        let fresh = Sample {
            at: now,
            enqueued: stats.enqueued,
            completed: stats.completed,
            failed: stats.failed,
            rates: Rates::default(),
        };
        let Some(last) = samples.get_mut(worker) else {
            samples.insert(worker.to_owned(), fresh);
            return Rates::default();
        };
        let elapsed = now.saturating_duration_since(last.at);
        if elapsed >= RATE_WINDOW {
            let secs = elapsed.as_secs_f64();
            let per_s = |now: u64, then: u64| round2(now.saturating_sub(then) as f64 / secs);
            let rates = Rates {
                enqueued_per_s: per_s(stats.enqueued, last.enqueued),
                completed_per_s: per_s(stats.completed, last.completed),
                failed_per_s: per_s(stats.failed, last.failed),
            };
            *last = Sample { rates, ..fresh };
        }
        last.rates
    }
}

/// `x` rounded to two decimals.
pub(crate) fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}
