//! A sliding window of call outcomes, counted in fixed-width buckets.

use std::time::Duration;

use tokio::time::Instant;

/// Calls and failures over the last `buckets × width`, sliding one bucket at a time.
///
/// Recording and reading cost O(1) amortised: buckets are a ring indexed by the bucket
/// number since `origin`, and a stale bucket is cleared when it is reused.
#[derive(Debug, Clone)]
pub(super) struct Window {
    origin: Instant,
    width: Duration,
    buckets: Vec<Bucket>,
}

#[derive(Debug, Clone, Copy, Default)]
struct Bucket {
    /// The absolute bucket number these counts belong to.
    number: u64,
    calls: u32,
    failures: u32,
}

/// What a window holds right now.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct WindowCounts {
    /// Calls that ended in the window.
    pub calls: u32,
    /// Of those, the ones counted as failures (errors, panics, or slow calls).
    pub failures: u32,
}

impl Window {
    /// A window of `length`, in buckets of `width` (at least one bucket).
    pub(super) fn new(length: Duration, width: Duration, now: Instant) -> Self {
        let width = width.max(Duration::from_millis(1));
        let count = (length.as_nanos() / width.as_nanos()).clamp(1, 3_600) as usize;
        Self {
            origin: now,
            width,
            buckets: vec![Bucket::default(); count],
        }
    }

    fn number(&self, now: Instant) -> u64 {
        let elapsed = now.saturating_duration_since(self.origin).as_nanos();
        u64::try_from(elapsed / self.width.as_nanos()).unwrap_or(u64::MAX)
    }

    /// Records one call.
    pub(super) fn record(&mut self, failed: bool, now: Instant) {
        let number = self.number(now);
        let len = self.buckets.len() as u64;
        let bucket = &mut self.buckets[(number % len) as usize];
        if bucket.number != number {
            *bucket = Bucket {
                number,
                ..Bucket::default()
            };
        }
        bucket.calls = bucket.calls.saturating_add(1);
        bucket.failures = bucket.failures.saturating_add(u32::from(failed));
    }

    /// The counts of the buckets still inside the window at `now`.
    pub(super) fn counts(&self, now: Instant) -> WindowCounts {
        let newest = self.number(now);
        let oldest = newest.saturating_sub(self.buckets.len() as u64 - 1);
        self.buckets
            .iter()
            .filter(|b| (oldest..=newest).contains(&b.number) && b.calls > 0)
            .fold(WindowCounts::default(), |sum, b| WindowCounts {
                calls: sum.calls.saturating_add(b.calls),
                failures: sum.failures.saturating_add(b.failures),
            })
    }

    /// Forgets every call.
    pub(super) fn clear(&mut self) {
        self.buckets.fill(Bucket::default());
        // Bucket number 0 is "now" only right at the origin; make cleared buckets stale.
        for bucket in &mut self.buckets {
            bucket.number = u64::MAX;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn old_calls_slide_out() {
        let start = Instant::now();
        let mut window = Window::new(Duration::from_secs(30), Duration::from_secs(1), start);
        for _ in 0..5 {
            window.record(true, start);
        }
        window.record(false, start + Duration::from_secs(10));
        assert_eq!(
            window.counts(start + Duration::from_secs(29)),
            WindowCounts {
                calls: 6,
                failures: 5
            }
        );
        // The first bucket has left the 30 s window, the second not yet.
        assert_eq!(
            window.counts(start + Duration::from_secs(30)),
            WindowCounts {
                calls: 1,
                failures: 0
            }
        );
        assert_eq!(
            window.counts(start + Duration::from_secs(40)),
            WindowCounts::default()
        );
    }

    #[test]
    fn clear_forgets_everything() {
        let start = Instant::now();
        let mut window = Window::new(Duration::from_secs(3), Duration::from_secs(1), start);
        window.record(true, start);
        window.clear();
        assert_eq!(window.counts(start), WindowCounts::default());
    }
}
