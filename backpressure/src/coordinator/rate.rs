//! A worker's `rate(...)` on the coordinator's side: the GCRA state (governor's arithmetic,
//! on tokio's clock so paused time applies) and the instant the next start is allowed, or,
//! for a shared rate, the tokens a connector draws from the fleet's GCRA.

use std::num::NonZeroU32;

use governor::clock::Clock;
use governor::state::{InMemoryState, NotKeyed};
use governor::{Quota, RateLimiter};
use tokio::time::Instant;

use crate::connector::RateTokens;
use crate::limit::Rate;

/// The resolution of tokio's timer.
const TIMER_TICK: std::time::Duration = std::time::Duration::from_millis(1);
/// How late a held slot may wake (a tick, and the scheduling of a loaded machine) without
/// the rate losing the time: the smallest burst covers this much.
const WAKE_SLACK: std::time::Duration = std::time::Duration::from_millis(5);

/// tokio's clock for governor: paused and advanced time apply to rate limits too.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct TokioClock;

impl Clock for TokioClock {
    type Instant = std::time::Instant;

    fn now(&self) -> std::time::Instant {
        Instant::now().into_std()
    }
}

/// The starts a rate lets through.
pub(super) enum RateGate {
    /// This process's own rate.
    Local(RateLimiter<NotKeyed, InMemoryState, TokioClock>),
    /// The fleet's rate: starts are the tokens its connector granted.
    Shared(RateTokens),
}

/// Why the rate refuses a start now.
#[derive(Debug, Clone, Copy)]
pub(super) enum Refusal {
    /// This process's rate allows the next start at this instant.
    Until(Instant),
    /// No token of the fleet's rate is held: the connector has been asked, and its grant
    /// wakes the held slots.
    NoToken,
}

impl RateGate {
    /// A gate for a checked local `rate`.
    ///
    /// The burst is at least `WAKE_SLACK`'s worth of starts (5 ms): tokio's timer sleeps in
    /// whole milliseconds and a loaded machine wakes a slot later still, and without that
    /// credit (GCRA banks no time past its burst) a rate above 1,000 starts a second ran at
    /// one start per tick (`rate_local_error_pct` 91.9 % at 10,000/s; 0.42 % with it). Above
    /// 200 starts a second, starts may come in groups of up to 5 ms' worth; the long-run rate
    /// is the one asked for.
    pub(super) fn local(rate: &Rate) -> Self {
        let interval = rate.interval().as_nanos().max(1);
        let per_tick = WAKE_SLACK.max(TIMER_TICK).as_nanos().div_ceil(interval);
        let burst = u32::try_from(per_tick).unwrap_or(u32::MAX).max(rate.burst);
        let burst = NonZeroU32::new(burst).unwrap_or(NonZeroU32::MIN);
        let quota = Quota::with_period(rate.interval())
            .expect("a checked rate has a positive interval")
            .allow_burst(burst);
        Self::Local(RateLimiter::direct_with_clock(quota, TokioClock))
    }

    /// Takes a start if the rate allows one now; otherwise why not.
    pub(super) fn try_start(&self) -> Result<(), Refusal> {
        match self {
            Self::Local(limiter) => limiter.check().map_err(|not_until| {
                Refusal::Until(Instant::from_std(not_until.earliest_possible()))
            }),
            Self::Shared(tokens) => tokens.try_take().map_err(|()| Refusal::NoToken),
        }
    }

    /// The fleet's tokens, for a shared rate.
    pub(super) fn tokens(&self) -> Option<&RateTokens> {
        match self {
            Self::Local(_) => None,
            Self::Shared(tokens) => Some(tokens),
        }
    }
}

impl std::fmt::Debug for RateGate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Local(_) => f.debug_struct("RateGate::Local").finish_non_exhaustive(),
            Self::Shared(tokens) => f.debug_tuple("RateGate::Shared").field(tokens).finish(),
        }
    }
}
