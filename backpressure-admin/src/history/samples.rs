//! One worker's per-second samples: what each holds, the rates worked out from the
//! counters at the sample before, and the deque capped at the window.

use std::collections::VecDeque;

use backpressure::Stats;
use tokio::time::Instant;

/// One worker at one second.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Sample {
    pub(crate) rev: u64,
    pub(crate) at_ms: u64,
    pub(crate) queued: u32,
    pub(crate) deferred: u32,
    pub(crate) active: u32,
    pub(crate) limit: u32,
    pub(crate) completed_per_s: f32,
    pub(crate) failed_per_s: f32,
    /// Failed attempts retried per second.
    pub(crate) retried_per_s: f32,
    /// Items dead-lettered per second.
    pub(crate) dead_lettered_per_s: f32,
}

impl Sample {
    /// Whether `other` says the same (its time aside).
    fn same_values(&self, other: &Sample) -> bool {
        Sample {
            rev: 0,
            at_ms: 0,
            ..*self
        } == Sample {
            rev: 0,
            at_ms: 0,
            ..*other
        }
    }
}

/// The counters the rates come from, at one sample.
#[derive(Debug, Clone, Copy)]
struct Counts {
    at: Instant,
    completed: u64,
    failed: u64,
    retried: u64,
    dead_lettered: u64,
}

/// A worker's samples, and its counters at the last one (for the rates).
#[derive(Debug, Default)]
pub(crate) struct Samples {
    pub(crate) samples: VecDeque<Sample>,
    last: Option<Counts>,
}

impl Samples {
    /// Adds the sample of `stats` taken `now` (revision `rev`, `at_ms`), keeping at most
    /// `cap`; returns whether it says something the one before did not.
    pub(crate) fn push(
        &mut self,
        (rev, at_ms): (u64, u64),
        stats: &Stats,
        now: Instant,
        cap: usize,
    ) -> bool {
        let counts = Counts {
            at: now,
            completed: stats.completed,
            failed: stats.failed,
            retried: stats.retried,
            dead_lettered: stats.dead_lettered,
        };
        let last = self.last.replace(counts).unwrap_or(counts);
        let secs = now.saturating_duration_since(last.at).as_secs_f64();
        let rate = |n: u64, m: u64| {
            if secs > 0.0 {
                (n.saturating_sub(m) as f64 / secs) as f32
            } else {
                0.0
            }
        };
        let clamp = |n: usize| u32::try_from(n).unwrap_or(u32::MAX);
        let sample = Sample {
            rev,
            at_ms,
            queued: clamp(stats.queued),
            deferred: clamp(stats.deferred),
            active: clamp(stats.active),
            limit: clamp(stats.limit),
            completed_per_s: rate(counts.completed, last.completed),
            failed_per_s: rate(counts.failed, last.failed),
            retried_per_s: rate(counts.retried, last.retried),
            dead_lettered_per_s: rate(counts.dead_lettered, last.dead_lettered),
        };
        let news = self
            .samples
            .back()
            .is_none_or(|last| !last.same_values(&sample));
        while self.samples.len() >= cap.max(1) {
            self.samples.pop_front();
        }
        self.samples.push_back(sample);
        news
    }
}
