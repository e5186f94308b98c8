//! The history's clock: runtime instants as wall-clock milliseconds.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::time::Instant;

/// Runtime instants as wall-clock milliseconds, from one anchor: durations between two
/// instants stay exact (on tokio's paused clock too), whatever the system clock does.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Clock {
    instant: Instant,
    wall_ms: u64,
}

impl Clock {
    pub(super) fn now() -> Self {
        let wall = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        Self {
            instant: Instant::now(),
            wall_ms: millis(wall),
        }
    }

    /// `at` in milliseconds since the Unix epoch.
    pub(crate) fn ms(&self, at: Instant) -> u64 {
        if at >= self.instant {
            self.wall_ms
                .saturating_add(millis(at.duration_since(self.instant)))
        } else {
            self.wall_ms
                .saturating_sub(millis(self.instant.duration_since(at)))
        }
    }
}

/// A duration in whole milliseconds (saturating).
pub(super) fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}
