//! One worker's shared rate as this process serves it: the batch it asks for, when the fleet
//! next allows a start, and the local GCRA it falls back on while Redis cannot be reached
//! (pure decisions over the worker's [`RateTokens`]; the task does the I/O).

use std::time::Duration;

use backpressure::connector::RateTokens;
use backpressure::limit::Rate;
use tokio::time::Instant;

use crate::config::LimitsOnDisconnect;
use crate::wire::{RateAnswer, RateAsk, RateKeys};

/// How much of the rate one call may draw at most: 5 ms' worth (the local rate's credit for
/// a late wake, for the same reason: a high rate must not be cut to one batch per round trip).
const BATCH_TIME: Duration = Duration::from_millis(5);
/// The largest batch, whatever the rate.
const MAX_BATCH: u64 = 1_000;
/// The shortest time granted tokens stay usable.
const MIN_LAPSE: Duration = Duration::from_millis(100);

/// A rate's numbers as the bridge uses them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Shape {
    /// `per / limit`.
    pub(super) interval: Duration,
    /// Starts asked per call: `max(1, ceil(limit * 5 ms / per))`, at most 1,000.
    pub(super) batch: u64,
    /// The burst the fleet's GCRA allows: `max(rate.burst, batch + 1)`. The one start beyond
    /// a batch banks an interval for the call's round trip and a timer's late wake: with
    /// `max(rate.burst, batch)` a rate of 200/s of burst 1 lost that time on every start (three
    /// processes ran 146/s).
    pub(super) burst: u64,
    /// How long granted tokens stay usable: `max(100 ms, 2 * batch * interval)`.
    pub(super) lapse: Duration,
}

impl Shape {
    pub(super) fn of(rate: &Rate) -> Self {
        let per = rate.per.as_nanos().max(1);
        let limit = u128::from(rate.limit.max(1));
        let batch = (limit * BATCH_TIME.as_nanos()).div_ceil(per);
        let batch = u64::try_from(batch)
            .unwrap_or(MAX_BATCH)
            .clamp(1, MAX_BATCH);
        let interval = rate.interval().max(Duration::from_micros(1));
        let lapse = interval
            .saturating_mul(u32::try_from(2 * batch).unwrap_or(u32::MAX))
            .max(MIN_LAPSE);
        Self {
            interval,
            batch,
            burst: (batch + 1).max(u64::from(rate.burst)),
            lapse,
        }
    }

    fn interval_us(&self) -> u64 {
        u64::try_from(self.interval.as_micros())
            .unwrap_or(u64::MAX)
            .max(1)
    }
}

/// One worker's shared rate in this process.
pub(super) struct Pool {
    pub(super) tokens: RateTokens,
    pub(super) keys: RateKeys,
    pub(super) shape: Shape,
    /// When the next start may be granted (by the fleet's answer, the local GCRA, or the
    /// retry after an error): the task's one timer for this pool. `None`: now.
    pub(super) allowed_at: Option<Instant>,
    /// Processes last seen drawing from the rate (for `local_share`); `None` until Redis
    /// first answered: a process that never reached Redis has no basis for a share.
    pub(super) live: Option<usize>,
    /// Redis answered an error (a key of the wrong type): nothing is granted until a call
    /// succeeds; retried after `retry`.
    pub(super) broken: bool,
    retry: Duration,
    /// The local GCRA's theoretical arrival time while cut off (`local_share`).
    local_tat: Option<Instant>,
}

impl Pool {
    pub(super) fn new(tokens: RateTokens, namespace: &str) -> Self {
        let keys = RateKeys::new(namespace, tokens.worker());
        let shape = Shape::of(&tokens.rate());
        Self {
            tokens,
            keys,
            shape,
            allowed_at: None,
            live: None,
            broken: false,
            retry: Duration::ZERO,
            local_tat: None,
        }
    }

    /// Whether a start waits for a token and none is held (the worker still takes work).
    pub(super) fn needs(&self) -> bool {
        let counts = self.tokens.counts();
        counts.wanted && counts.available == 0 && !self.tokens.is_closed()
    }

    /// Whether the pool needs a grant now (not before its `allowed_at`).
    pub(super) fn due(&self, now: Instant) -> bool {
        self.needs() && self.allowed_at.is_none_or(|at| at <= now)
    }

    /// What to ask the fleet's GCRA.
    pub(super) fn ask(&self) -> RateAsk {
        RateAsk {
            interval_us: self.shape.interval_us(),
            burst: self.shape.burst,
            n: self.shape.batch,
        }
    }

    /// Redis answered: grants what it granted, notes when to ask next. Returns the grant.
    pub(super) fn answered(&mut self, answer: &RateAnswer) -> usize {
        self.broken = false;
        self.retry = Duration::ZERO;
        self.live = Some(answer.live.max(1));
        let now = Instant::now();
        let granted = usize::try_from(answer.granted).unwrap_or(usize::MAX);
        self.tokens.grant(granted, now + self.shape.lapse);
        let wait = Duration::from_micros(answer.wait_us);
        self.allowed_at = match (granted, wait) {
            (0, wait) => Some(now + wait.max(Duration::from_millis(1))),
            (_, Duration::ZERO) => None,
            (_, wait) => Some(now + wait),
        };
        granted
    }

    /// Redis answered the call with an error: the worker holds (its unused tokens go) and
    /// asks again after a backoff (doubling from `first` up to `max`). Returns whether the
    /// pool was fine until now (to warn once).
    pub(super) fn failed(&mut self, first: Duration, max: Duration) -> bool {
        let was_fine = !self.broken;
        self.broken = true;
        self.tokens.revoke_all();
        self.retry = (self.retry * 2).clamp(first, max.max(first));
        self.allowed_at = Some(Instant::now() + self.retry);
        was_fine
    }

    /// The link is lost (or back): the pool forgets the fleet's timing; under `hold` the
    /// unused tokens go.
    pub(super) fn cut_off(&mut self, policy: LimitsOnDisconnect) {
        self.allowed_at = None;
        self.local_tat = None;
        if policy == LimitsOnDisconnect::Hold {
            self.tokens.revoke_all();
        }
    }

    /// Cut off from Redis, a start waits: grants what `policy` allows now. Returns the grant.
    pub(super) fn grant_local(&mut self, policy: LimitsOnDisconnect) -> usize {
        let now = Instant::now();
        let granted = match policy {
            LimitsOnDisconnect::Hold => 0,
            LimitsOnDisconnect::Ignore => self.shape.batch,
            LimitsOnDisconnect::LocalShare => match self.live {
                Some(live) => self.local_share(now, live),
                None => 0,
            },
        };
        let granted = usize::try_from(granted).unwrap_or(usize::MAX);
        self.tokens.grant(granted, now + self.shape.lapse);
        granted
    }

    /// A local GCRA at `limit / live` (burst likewise divided, at least 1): what it allows
    /// now, at most a batch; notes when it allows the next one.
    fn local_share(&mut self, now: Instant, live: usize) -> u64 {
        let live32 = u32::try_from(live.max(1)).unwrap_or(u32::MAX);
        let interval = self.shape.interval.saturating_mul(live32);
        let burst = (self.shape.burst / u64::from(live32)).max(1);
        let span = interval.saturating_mul(u32::try_from(burst).unwrap_or(u32::MAX));
        let tat = self.local_tat.map_or(now, |t| t.max(now));
        let room = (now + span).saturating_duration_since(tat);
        let allowed = room.as_nanos() / interval.as_nanos().max(1);
        let k = u64::try_from(allowed)
            .unwrap_or(u64::MAX)
            .min(self.shape.batch);
        let tat = tat + interval.saturating_mul(u32::try_from(k).unwrap_or(u32::MAX));
        self.local_tat = Some(tat);
        let next = (tat + interval).checked_sub(span).filter(|at| *at > now);
        self.allowed_at = next;
        k
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batches_are_five_ms_of_the_rate_and_bursts_cover_them() {
        let per_s =
            |limit, burst| Shape::of(&Rate::new(limit, Duration::from_secs(1)).burst(burst));
        let slow = per_s(200, 1);
        assert_eq!((slow.batch, slow.burst), (1, 2));
        assert_eq!(slow.lapse, MIN_LAPSE);
        let fast = per_s(100_000, 10);
        assert_eq!((fast.batch, fast.burst), (500, 501));
        assert_eq!(fast.interval, Duration::from_micros(10));
        assert_eq!(fast.lapse, MIN_LAPSE, "2 * 500 * 10 µs = 10 ms");
        let huge = per_s(10_000_000, 1);
        assert_eq!(huge.batch, MAX_BATCH);
        let bursty = per_s(1_000, 50);
        assert_eq!((bursty.batch, bursty.burst), (5, 50));
    }
}
