//! A breaker's state machine: closed, open, half-open, and what drives it between them.
//!
//! The machine is pure: every method takes `now`, returns what changed, and performs no I/O;
//! the randomness of its open periods comes from an injected [`Jitter`] source. The driver
//! (`driver.rs`) raises and retracts the signal and runs the timers.

use std::time::Duration;

use tokio::time::Instant;

use super::super::jitter::{self, Jitter};
use super::super::machine::{Effect, PolicyMachine, Transition};
use super::super::window::{Window, WindowCounts};
use super::super::{ChangeReason, PolicyChange, PolicyDetail, PolicyState};
use super::{Breaker, BreakerReason, BreakerState};
use crate::{Level, Phase as Verdict};

/// One state change of a breaker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Change {
    from: BreakerState,
    to: BreakerState,
    reason: BreakerReason,
    counts: WindowCounts,
}

#[derive(Debug)]
enum Phase {
    Closed {
        since: Instant,
    },
    Open {
        until: Instant,
    },
    HalfOpen {
        /// The probes running: their tickets and since when.
        probes: Vec<(u64, Instant)>,
        /// Probes handed out and not given back.
        started: u32,
        succeeded: u32,
    },
}

/// A breaker's state machine.
#[derive(Debug)]
pub(in crate::policy) struct Machine {
    config: Breaker,
    window: Window,
    consecutive: u32,
    /// The current open period, before jitter.
    backoff: Duration,
    phase: Phase,
    /// Spreads each open period.
    jitter: Box<dyn Jitter>,
    /// The next probe ticket: probes have their own ids, whoever's item runs them.
    next_ticket: u64,
}

impl Machine {
    /// A closed breaker whose jitter comes from its `jitter_seed`, or fastrand's
    /// thread-local generator.
    pub(in crate::policy) fn new(config: Breaker, now: Instant) -> Self {
        let jitter = jitter::source(config.jitter_seed);
        Self::with_jitter(config, now, jitter)
    }

    /// A closed breaker drawing its jitter from `jitter`.
    pub(in crate::policy) fn with_jitter(
        config: Breaker,
        now: Instant,
        jitter: Box<dyn Jitter>,
    ) -> Self {
        Self {
            window: Window::new(config.window, config.bucket, now),
            backoff: config.open_for,
            consecutive: 0,
            phase: Phase::Closed { since: now },
            jitter,
            config,
            next_ticket: 0,
        }
    }

    fn state(&self) -> BreakerState {
        match self.phase {
            Phase::Closed { .. } => BreakerState::Closed,
            Phase::Open { .. } => BreakerState::Open,
            Phase::HalfOpen { .. } => BreakerState::HalfOpen,
        }
    }

    /// Whether a call of `elapsed` that ended with `failed` counts as a failure.
    fn is_failure(&self, failed: bool, elapsed: Duration) -> bool {
        match self.config.slow_after {
            Some(slow_after) => elapsed > slow_after,
            None => failed,
        }
    }

    /// An item finished; `failure` as classified by [`is_failure`](Self::is_failure). Only a
    /// closed breaker counts it: probes report through [`probe_done`](Self::probe_done).
    fn observe(&mut self, failure: bool, now: Instant) -> Option<Change> {
        let Phase::Closed { .. } = self.phase else {
            return None;
        };
        self.window.record(failure, now);
        self.consecutive = if failure { self.consecutive + 1 } else { 0 };
        let reason = self.should_open(now)?;
        Some(self.open(BreakerState::Closed, reason, now))
    }

    /// The probe `ticket` finished; `failure` as classified by
    /// [`is_failure`](Self::is_failure). A ticket of an earlier half-open period is ignored.
    fn probe_done(&mut self, ticket: u64, failure: bool, now: Instant) -> Option<Change> {
        let Phase::HalfOpen {
            probes, succeeded, ..
        } = &mut self.phase
        else {
            return None;
        };
        let at = probes.iter().position(|(probe, _)| *probe == ticket)?;
        probes.swap_remove(at);
        if failure {
            return Some(self.reopen(BreakerReason::ProbeFailed, now));
        }
        *succeeded += 1;
        if *succeeded < self.config.probes {
            return None;
        }
        let counts = self.window.counts(now);
        self.window.clear();
        self.consecutive = 0;
        self.phase = Phase::Closed { since: now };
        Some(Change {
            from: BreakerState::HalfOpen,
            to: BreakerState::Closed,
            reason: BreakerReason::ProbesSucceeded,
            counts,
        })
    }

    /// The probe `ticket` ended without an outcome: hands it out again. Returns whether it
    /// was running.
    fn give_back(&mut self, ticket: u64) -> bool {
        let Phase::HalfOpen {
            probes, started, ..
        } = &mut self.phase
        else {
            return false;
        };
        let Some(at) = probes.iter().position(|(probe, _)| *probe == ticket) else {
            return false;
        };
        probes.swap_remove(at);
        *started -= 1;
        true
    }

    fn should_open(&self, now: Instant) -> Option<BreakerReason> {
        if self
            .config
            .consecutive_failures
            .is_some_and(|n| self.consecutive >= n)
        {
            return Some(BreakerReason::ConsecutiveFailures);
        }
        let counts = self.window.counts(now);
        let ratio_reached = counts.calls >= self.config.min_calls
            && f64::from(counts.failures) >= self.config.failure_ratio * f64::from(counts.calls);
        ratio_reached.then_some(BreakerReason::FailureRatio)
    }

    fn open(&mut self, from: BreakerState, reason: BreakerReason, now: Instant) -> Change {
        if let Phase::Closed { since } = self.phase {
            // A healthy period as long as the longest open one resets the backoff.
            if now.saturating_duration_since(since) >= self.config.max_open_for {
                self.backoff = self.config.open_for;
            }
        }
        let counts = self.window.counts(now);
        let until = now + self.jitter.spread(self.backoff, self.config.jitter);
        self.phase = Phase::Open { until };
        Change {
            from,
            to: BreakerState::Open,
            reason,
            counts,
        }
    }

    fn reopen(&mut self, reason: BreakerReason, now: Instant) -> Change {
        self.backoff = self.backoff.saturating_mul(2).min(self.config.max_open_for);
        self.open(BreakerState::HalfOpen, reason, now)
    }

    /// Timers: `open_for` ran out, or a probe ran past `probe_timeout`.
    fn tick(&mut self, now: Instant) -> Option<Change> {
        match &self.phase {
            Phase::Open { until } if *until <= now => {
                self.phase = Phase::HalfOpen {
                    probes: Vec::new(),
                    started: 0,
                    succeeded: 0,
                };
                Some(Change {
                    from: BreakerState::Open,
                    to: BreakerState::HalfOpen,
                    reason: BreakerReason::OpenForElapsed,
                    counts: self.window.counts(now),
                })
            }
            Phase::HalfOpen { probes, .. }
                if probes
                    .iter()
                    .any(|(_, started)| *started + self.config.probe_timeout <= now) =>
            {
                Some(self.reopen(BreakerReason::ProbeTimedOut, now))
            }
            _ => None,
        }
    }

    /// When [`tick`](Self::tick) has something to do next.
    fn next_deadline(&self) -> Option<Instant> {
        match &self.phase {
            Phase::Closed { .. } => None,
            Phase::Open { until } => Some(*until),
            Phase::HalfOpen { probes, .. } => probes
                .iter()
                .map(|(_, started)| *started + self.config.probe_timeout)
                .min(),
        }
    }

    /// Claims a probe, if one is left: its ticket.
    fn try_probe(&mut self, now: Instant) -> Option<u64> {
        let Phase::HalfOpen {
            probes, started, ..
        } = &mut self.phase
        else {
            return None;
        };
        if *started >= self.config.probes {
            return None;
        }
        *started += 1;
        let ticket = self.next_ticket;
        self.next_ticket += 1;
        probes.push((ticket, now));
        Some(ticket)
    }
}

impl Change {
    /// The change as the driver reports and performs it.
    fn transition(self, policy: &'static str) -> Transition {
        Transition {
            change: PolicyChange {
                policy,
                from: PolicyState::Breaker(self.from),
                to: PolicyState::Breaker(self.to),
                reason: ChangeReason::Breaker(self.reason),
                counts: self.counts,
            },
            effect: match self.to {
                BreakerState::Closed => Effect::Retract,
                BreakerState::Open | BreakerState::HalfOpen => Effect::Raise(Level::STOP),
            },
            wake_slots: self.to == BreakerState::HalfOpen,
        }
    }
}

impl PolicyMachine for Machine {
    fn kind(&self) -> &'static str {
        self.config.kind().name()
    }

    fn detail(&self) -> PolicyDetail {
        let probes_started = match &self.phase {
            Phase::HalfOpen { started, .. } => *started,
            _ => 0,
        };
        PolicyDetail::Breaker {
            probes: self.config.probes,
            probes_started,
        }
    }

    fn signal(&self) -> &str {
        &self.config.signal
    }

    fn ttl(&self) -> Duration {
        self.config.ttl
    }

    fn state(&self) -> PolicyState {
        PolicyState::Breaker(Machine::state(self))
    }

    fn counts(&self, now: Instant) -> WindowCounts {
        self.window.counts(now)
    }

    fn timers(&mut self, now: Instant) -> Option<Transition> {
        let kind = PolicyMachine::kind(self);
        self.tick(now).map(|change| change.transition(kind))
    }

    fn next_timer(&self) -> Option<Instant> {
        self.next_deadline()
    }

    fn finished(
        &mut self,
        _id: u64,
        failed: bool,
        elapsed: Duration,
        now: Instant,
    ) -> Option<Transition> {
        let kind = PolicyMachine::kind(self);
        let failure = self.is_failure(failed, elapsed);
        self.observe(failure, now)
            .map(|change| change.transition(kind))
    }

    fn phase(&self) -> Option<Verdict> {
        match self.phase {
            Phase::Closed { .. } => None,
            Phase::Open { .. } => Some(Verdict::Open),
            Phase::HalfOpen { .. } => Some(Verdict::HalfOpen),
        }
    }

    fn has_probe(&self) -> bool {
        matches!(self.phase, Phase::HalfOpen { started, .. } if started < self.config.probes)
    }

    fn claim_probe(&mut self, now: Instant) -> Option<u64> {
        self.try_probe(now)
    }

    fn probe_finished(
        &mut self,
        ticket: u64,
        failed: bool,
        elapsed: Duration,
        now: Instant,
    ) -> Option<Transition> {
        let kind = PolicyMachine::kind(self);
        let failure = self.is_failure(failed, elapsed);
        self.probe_done(ticket, failure, now)
            .map(|change| change.transition(kind))
    }

    fn give_back_probe(&mut self, ticket: u64) -> bool {
        self.give_back(ticket)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn machine(config: Breaker) -> (Machine, Instant) {
        let now = Instant::now();
        (Machine::new(config.jitter(0.0), now), now)
    }

    #[test]
    fn twenty_failures_open_it_nineteen_do_not() {
        let (mut m, now) = machine(Breaker::error_rate("s"));
        for _ in 0..19 {
            assert_eq!(m.observe(true, now), None);
        }
        let change = m.observe(true, now).unwrap();
        assert_eq!(
            (change.to, change.reason),
            (BreakerState::Open, BreakerReason::FailureRatio)
        );
        assert_eq!(
            change.counts,
            WindowCounts {
                calls: 20,
                failures: 20
            }
        );
    }

    #[test]
    fn the_ratio_opens_at_ten_of_twenty() {
        let (mut m, now) = machine(Breaker::error_rate("s"));
        for _ in 0..11 {
            assert_eq!(m.observe(false, now), None);
        }
        for _ in 11..20 {
            assert_eq!(m.observe(true, now), None, "9 of 20 failing stays closed");
        }
        let (mut m2, now2) = machine(Breaker::error_rate("s"));
        for _ in 0..10 {
            m2.observe(false, now2);
        }
        for _ in 10..19 {
            assert_eq!(m2.observe(true, now2), None);
        }
        assert!(m2.observe(true, now2).is_some(), "10 of 20 opens");
        assert_eq!(m.state(), BreakerState::Closed);
    }

    #[test]
    fn failing_probes_double_the_open_period_up_to_the_cap() {
        let (mut m, mut now) = machine(Breaker::error_rate("s").consecutive_failures(1));
        m.observe(true, now).unwrap();
        let mut periods = Vec::new();
        for _ in 1..=6 {
            let deadline = m.next_deadline().unwrap();
            periods.push((deadline - now).as_secs());
            now = deadline;
            assert_eq!(m.tick(now).unwrap().to, BreakerState::HalfOpen);
            let ticket = m.try_probe(now).unwrap();
            assert_eq!(
                m.probe_done(ticket, true, now).unwrap().reason,
                BreakerReason::ProbeFailed
            );
        }
        assert_eq!(periods, [30, 60, 120, 240, 300, 300]);
    }

    #[test]
    fn a_probe_that_never_returns_reopens_at_probe_timeout() {
        let config = Breaker::error_rate("s")
            .consecutive_failures(1)
            .probe_timeout(Duration::from_secs(5));
        let (mut m, now) = machine(config);
        m.observe(true, now);
        let half_open_at = m.next_deadline().unwrap();
        m.tick(half_open_at).unwrap();
        assert!(m.try_probe(half_open_at).is_some());
        assert_eq!(
            m.next_deadline(),
            Some(half_open_at + Duration::from_secs(5))
        );
        assert_eq!(m.tick(half_open_at + Duration::from_secs(4)), None);
        let change = m.tick(half_open_at + Duration::from_secs(5)).unwrap();
        assert_eq!(
            (change.to, change.reason),
            (BreakerState::Open, BreakerReason::ProbeTimedOut)
        );
    }

    #[test]
    fn probes_are_limited_and_their_successes_close_it() {
        let (mut m, now) = machine(Breaker::error_rate("s").consecutive_failures(1));
        m.observe(true, now);
        let at = m.next_deadline().unwrap();
        m.tick(at);
        let tickets: Vec<u64> = (0..3).map(|_| m.try_probe(at).unwrap()).collect();
        assert_eq!(m.try_probe(at), None, "only `probes` items start");
        // An item that is not a probe (started before it opened) does not count.
        assert_eq!(m.observe(false, at), None);
        assert_eq!(m.probe_done(tickets[0], false, at), None);
        assert_eq!(m.probe_done(tickets[1], false, at), None);
        let change = m.probe_done(tickets[2], false, at).unwrap();
        assert_eq!(
            (change.to, change.reason),
            (BreakerState::Closed, BreakerReason::ProbesSucceeded)
        );
    }

    /// The open periods of a breaker that fails every probe, drawing jitter from `jitter`.
    fn open_periods(mut m: Machine, mut now: Instant) -> Vec<Duration> {
        m.observe(true, now).unwrap();
        let mut periods = Vec::new();
        for _ in 1..=4 {
            let deadline = m.next_deadline().unwrap();
            periods.push(deadline - now);
            now = deadline;
            m.tick(now).unwrap();
            let ticket = m.try_probe(now).unwrap();
            m.probe_done(ticket, true, now).unwrap();
        }
        periods
    }

    #[test]
    fn the_jitter_source_is_injected() {
        let config = Breaker::error_rate("s").consecutive_failures(1).jitter(0.1);
        let now = Instant::now();
        let low = Machine::with_jitter(config.clone(), now, Box::new(jitter::Fixed(0.0)));
        let high = Machine::with_jitter(config, now, Box::new(jitter::Fixed(0.75)));
        let secs = |periods: Vec<Duration>| {
            periods
                .iter()
                .map(Duration::as_secs_f64)
                .collect::<Vec<_>>()
        };
        assert_eq!(secs(open_periods(low, now)), [27.0, 54.0, 108.0, 216.0]);
        assert_eq!(secs(open_periods(high, now)), [31.5, 63.0, 126.0, 252.0]);
    }

    #[test]
    fn a_seeded_breaker_repeats_its_open_periods() {
        let config = |seed| {
            Breaker::error_rate("s")
                .consecutive_failures(1)
                .jitter_seed(seed)
        };
        let now = Instant::now();
        let periods = |seed| open_periods(Machine::new(config(seed), now), now);
        assert_eq!(periods(1), periods(1));
        assert_ne!(periods(1), periods(2));
    }

    #[test]
    fn a_probe_given_back_is_handed_out_again_and_a_stale_ticket_is_ignored() {
        let (mut m, now) = machine(Breaker::error_rate("s").consecutive_failures(1).probes(1));
        m.observe(true, now);
        let at = m.next_deadline().unwrap();
        m.tick(at);
        let first = m.try_probe(at).unwrap();
        assert_eq!(m.try_probe(at), None);
        assert!(m.give_back(first));
        assert!(!m.give_back(first), "given back once");
        assert_eq!(m.probe_done(first, true, at), None, "a stale ticket");
        let second = m.try_probe(at).unwrap();
        assert_ne!(first, second, "tickets are never reused");
        let change = m.probe_done(second, false, at).unwrap();
        assert_eq!(change.to, BreakerState::Closed);
    }
}
