//! A worker's `rate(...)` on the coordinator's side: the GCRA state (governor's arithmetic,
//! on tokio's clock so paused time applies) and the instant the next start is allowed.

use std::num::NonZeroU32;

use governor::clock::Clock;
use governor::state::{InMemoryState, NotKeyed};
use governor::{Quota, RateLimiter};
use tokio::time::Instant;

use crate::limit::Rate;

/// tokio's clock for governor: paused and advanced time apply to rate limits too.
#[derive(Debug, Clone, Copy, Default)]
struct TokioClock;

impl Clock for TokioClock {
    type Instant = std::time::Instant;

    fn now(&self) -> std::time::Instant {
        Instant::now().into_std()
    }
}

/// The starts a rate lets through.
pub(super) struct RateGate {
    limiter: RateLimiter<NotKeyed, InMemoryState, TokioClock>,
}

impl RateGate {
    /// A gate for a checked `rate`.
    pub(super) fn new(rate: &Rate) -> Self {
        let burst = NonZeroU32::new(rate.burst).unwrap_or(NonZeroU32::MIN);
        let quota = Quota::with_period(rate.interval())
            .expect("a checked rate has a positive interval")
            .allow_burst(burst);
        Self {
            limiter: RateLimiter::direct_with_clock(quota, TokioClock),
        }
    }

    /// Takes a start if the rate allows one now; otherwise the instant it will.
    pub(super) fn try_start(&self) -> Result<(), Instant> {
        self.limiter
            .check()
            .map_err(|not_until| Instant::from_std(not_until.earliest_possible()))
    }
}

impl std::fmt::Debug for RateGate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RateGate").finish_non_exhaustive()
    }
}
