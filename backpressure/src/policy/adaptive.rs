//! The AIMD limit behind [`Adaptive`]: its configuration and its state machine.

use std::time::Duration;

use tokio::time::Instant;

use backpressure_pattern::options::policies::{PolicyKind, PolicySpec};

use super::machine::{Effect, PolicyMachine, Transition};
use super::{ChangeReason, PolicyChange, PolicyDetail, PolicyState, WindowCounts};
use crate::Level;

/// An adaptive concurrency limit (additive increase, multiplicative decrease) published as
/// a [`Level`], so every worker deferring on its signal runs at the same share of its
/// concurrency.
///
/// The limit starts at `max`. At the end of every `window`: if a call failed (or, with
/// `slow_after`, was slow) the limit is multiplied by 0.9 (at least 1); otherwise the window
/// was healthy and the limit grows by 1 (at most `max`), whether the worker was busy or
/// idle (an idle worker is no evidence of trouble) — so it rises at most one step per window
/// and never flaps. The signal is raised keyed by the worker's name with level
/// `limit / max` (and a TTL refreshed while raised), and retracted when the limit is back
/// at `max`. Each change reports the counts of the window that caused it.
///
/// # Examples
///
/// ```
/// use backpressure::{policy::Adaptive, Coordinator, Sink, WorkContext};
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let coordinator = Coordinator::builder()
///     .sink(Sink::new())
///     .name("api-client")
///     .concurrency(16)
///     .defer_on("backpressure.api.*")
///     .policy(Adaptive::new("backpressure.api.level", 16))
///     .build(|_: u32, _: WorkContext| async {})?;
/// # drop(coordinator);
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct Adaptive {
    pub(super) signal: String,
    pub(super) max: u32,
    pub(super) window: Duration,
    pub(super) slow_after: Option<Duration>,
    pub(super) ttl: Duration,
}

impl Adaptive {
    /// A limit between 1 and `max`, judged every 10 s, published on `signal` with a 15 s TTL.
    pub fn new(signal: impl Into<String>, max: u32) -> Self {
        Self::from_spec(&PolicySpec {
            signal: Some(signal.into().into()),
            max: Some(max),
            ..PolicySpec::new(PolicyKind::Adaptive)
        })
    }

    /// How often the limit is judged (default 10 s).
    pub fn window(mut self, window: Duration) -> Self {
        self.window = window;
        self
    }

    /// Also count calls slower than this as bad (default: only errors and panics).
    pub fn slow_after(mut self, slow_after: Duration) -> Self {
        self.slow_after = Some(slow_after);
        self
    }

    /// The signal's time-to-live, refreshed every `ttl / 3` while raised (default 15 s).
    pub fn ttl(mut self, ttl: Duration) -> Self {
        self.ttl = ttl;
        self
    }

    /// The signal it raises.
    pub fn signal(&self) -> &str {
        &self.signal
    }

    /// Its values, as configured in the attribute or a config file.
    pub(crate) fn spec(&self) -> PolicySpec {
        PolicySpec {
            signal: Some(self.signal.clone().into()),
            max: Some(self.max),
            window: Some(self.window),
            slow_after: self.slow_after,
            ttl: Some(self.ttl),
            ..PolicySpec::new(PolicyKind::Adaptive)
        }
    }

    /// The policy `spec` describes, the inverse of [`spec`](Self::spec): a value `spec` does
    /// not give takes its default (from the shared rules). `spec` is expected to have passed
    /// its check.
    pub(crate) fn from_spec(spec: &PolicySpec) -> Self {
        let spec = spec.resolved();
        Self {
            signal: spec.signal.unwrap_or_default().into_owned(),
            max: spec.max.unwrap_or(1),
            window: spec.window.unwrap_or_default(),
            slow_after: spec.slow_after,
            ttl: spec.ttl.unwrap_or_default(),
        }
    }
}

/// The AIMD state.
#[derive(Debug)]
pub(super) struct Limit {
    config: Adaptive,
    limit: u32,
    window_ends: Instant,
    bad: u32,
    calls: u32,
}

impl Limit {
    pub(super) fn new(config: Adaptive, now: Instant) -> Self {
        Self {
            limit: config.max,
            window_ends: now + config.window,
            bad: 0,
            calls: 0,
            config,
        }
    }

    pub(super) fn limit(&self) -> u32 {
        self.limit
    }

    /// The published level: `limit / max`, rounded down (so it reaches [`Level::FULL`] only
    /// at `max`) but never to [`Level::STOP`] (the limit is at least 1).
    pub(super) fn level(&self) -> Level {
        let per_mille = u64::from(self.limit) * 1000 / u64::from(self.config.max);
        Level::from_per_mille(u16::try_from(per_mille.max(1)).unwrap_or(1000))
    }

    pub(super) fn observe(&mut self, failed: bool, elapsed: Duration) {
        let slow = self.config.slow_after.is_some_and(|s| elapsed > s);
        self.calls = self.calls.saturating_add(1);
        self.bad = self.bad.saturating_add(u32::from(failed || slow));
    }

    /// The current window's counts.
    pub(super) fn counts(&self) -> WindowCounts {
        WindowCounts {
            calls: self.calls,
            failures: self.bad,
        }
    }

    pub(super) fn next_deadline(&self) -> Instant {
        self.window_ends
    }

    /// Judges the window that ended by `now`, if one did (the next one, if several did, is
    /// judged by the next call: one step per window); returns the limit before it and the
    /// window's counts.
    pub(super) fn tick(&mut self, now: Instant) -> Option<(u32, WindowCounts)> {
        if self.window_ends > now {
            return None;
        }
        let (before, counts) = (self.limit, self.counts());
        self.limit = if self.bad > 0 {
            ((f64::from(self.limit) * 0.9) as u32).max(1)
        } else {
            (self.limit + 1).min(self.config.max)
        };
        self.bad = 0;
        self.calls = 0;
        self.window_ends += self.config.window;
        Some((before, counts))
    }
}

impl PolicyMachine for Limit {
    fn kind(&self) -> &'static str {
        PolicyKind::Adaptive.name()
    }

    fn detail(&self) -> PolicyDetail {
        PolicyDetail::Adaptive {
            max: self.config.max,
        }
    }

    fn signal(&self) -> &str {
        &self.config.signal
    }

    fn ttl(&self) -> Duration {
        self.config.ttl
    }

    fn state(&self) -> PolicyState {
        PolicyState::Limit(self.limit())
    }

    fn level(&self) -> Level {
        Limit::level(self)
    }

    fn counts(&self, _now: Instant) -> WindowCounts {
        Limit::counts(self)
    }

    fn timers(&mut self, now: Instant) -> Option<Transition> {
        // A window that leaves the limit where it was (healthy at `max`, bad at 1) changes
        // nothing; the driver runs the timers again at once if another window is due.
        let (before, counts) = self.tick(now)?;
        let reason = match self.limit.cmp(&before) {
            std::cmp::Ordering::Less => ChangeReason::BadWindow,
            std::cmp::Ordering::Greater => ChangeReason::HealthyWindow,
            std::cmp::Ordering::Equal => return None,
        };
        let effect = match Limit::level(self) {
            Level::FULL => Effect::Retract,
            level => Effect::Raise(level),
        };
        Some(Transition {
            change: PolicyChange {
                policy: PolicyMachine::kind(self),
                from: PolicyState::Limit(before),
                to: PolicyState::Limit(self.limit),
                reason,
                counts,
            },
            effect,
            wake_slots: false,
        })
    }

    fn next_timer(&self) -> Option<Instant> {
        Some(self.next_deadline())
    }

    fn finished(
        &mut self,
        _id: u64,
        failed: bool,
        elapsed: Duration,
        _now: Instant,
    ) -> Option<Transition> {
        self.observe(failed, elapsed);
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failing_windows_shrink_by_a_tenth_and_a_healthy_one_adds_one() {
        let start = Instant::now();
        let mut limit = Limit::new(Adaptive::new("s", 10), start);
        let mut seen = vec![limit.limit()];
        for _ in 0..3 {
            limit.observe(true, Duration::ZERO);
            let end = limit.next_deadline();
            limit.tick(end);
            seen.push(limit.limit());
        }
        assert_eq!(seen, [10, 9, 8, 7]);
        assert_eq!(limit.level().per_mille(), 700);

        // A healthy window adds one, busy or idle, and reports its counts.
        limit.observe(false, Duration::ZERO);
        let counts = WindowCounts {
            calls: 1,
            failures: 0,
        };
        assert_eq!(limit.tick(limit.next_deadline()), Some((7, counts)));
        assert_eq!(limit.limit(), 8);
        assert_eq!(limit.tick(limit.next_deadline()).map(|t| t.0), Some(8));
        assert_eq!(limit.limit(), 9);
    }

    #[test]
    fn a_limit_of_one_in_thousands_is_not_a_full_stop() {
        let start = Instant::now();
        let mut limit = Limit::new(Adaptive::new("s", 5_000), start);
        while limit.limit() > 1 {
            limit.observe(true, Duration::ZERO);
            limit.tick(limit.next_deadline());
        }
        assert_eq!(limit.level().per_mille(), 1);
    }

    #[test]
    fn the_limit_stays_between_one_and_max() {
        let start = Instant::now();
        let mut limit = Limit::new(Adaptive::new("s", 2), start);
        for _ in 0..5 {
            limit.observe(true, Duration::ZERO);
            limit.tick(limit.next_deadline());
        }
        assert_eq!(limit.limit(), 1);
        for _ in 0..5 {
            limit.tick(limit.next_deadline());
        }
        assert_eq!(limit.limit(), 2);
    }
}
