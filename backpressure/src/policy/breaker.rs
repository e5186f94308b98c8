//! The circuit breaker behind [`ErrorRate`](super::Breaker::error_rate) and
//! [`SlowCall`](super::Breaker::slow_call): its configuration and its state machine.
//!
//! The machine is pure: every method takes `now`, returns what changed, and performs no
//! I/O. The driver (`driver.rs`) raises and retracts the signal and runs the timers.

use std::time::Duration;

use tokio::time::Instant;

use super::window::{Window, WindowCounts};
use backpressure_pattern::options::policies::{self as defaults, PolicyKind, PolicySpec};

use super::PolicyError;

/// A circuit breaker that raises a signal when its worker's calls go bad, so that every
/// worker deferring on that signal backs off together.
///
/// * **Closed**: outcomes are counted in a sliding window. When at least `min_calls` calls
///   ended in the window and the share of failures reaches `failure_ratio` (or, if set,
///   `consecutive_failures` calls in a row failed), it **opens**.
/// * **Open**: the signal is raised on the worker's sink, keyed by the worker's name, with a
///   time-to-live (`ttl`) that the breaker refreshes every `ttl / 3` while it stays raised,
///   so a dead owner never leaves it behind. After `open_for` it goes **half-open**.
/// * **Half-open**: the owning worker alone may start `probes` items despite its own signal
///   (peers keep holding). That many successes in a row retract the signal (**closed**); a
///   failure, or a probe running past `probe_timeout`, reopens it for twice as long (up to
///   `max_open_for`, with ±`jitter`). A closed period of `max_open_for` resets the backoff.
///
/// Errors and panics are failures (for [`slow_call`](Self::slow_call), calls slower than
/// `slow_after`); items skipped by `cancel_on` and handlers cut short by shutdown are not
/// counted.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use backpressure::{Breaker, Coordinator, Sink, WorkContext};
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let breaker = Breaker::error_rate("backpressure.smtp")
///     .min_calls(20)
///     .failure_ratio(0.5)
///     .open_for(Duration::from_secs(30));
/// let mailer = Coordinator::builder()
///     .sink(Sink::new())
///     .name("mailer")
///     .policy(breaker)
///     .build(|_to: String, _: WorkContext| async { Ok::<(), std::io::Error>(()) })?;
/// # drop(mailer);
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct Breaker {
    pub(super) signal: String,
    pub(super) slow_after: Option<Duration>,
    pub(super) window: Duration,
    pub(super) bucket: Duration,
    pub(super) min_calls: u32,
    pub(super) failure_ratio: f64,
    pub(super) consecutive_failures: Option<u32>,
    pub(super) ttl: Duration,
    pub(super) open_for: Duration,
    pub(super) max_open_for: Duration,
    pub(super) jitter: f64,
    pub(super) probes: u32,
    pub(super) probe_timeout: Duration,
}

impl Breaker {
    /// A breaker that counts errors and panics, with the defaults: a 30 s window in 1 s
    /// buckets, `min_calls` 20, `failure_ratio` 0.5, no `consecutive_failures` rule, `ttl`
    /// 15 s, `open_for` 30 s doubling up to 300 s with ±15 % jitter, 3 probes, `probe_timeout`
    /// 30 s.
    pub fn error_rate(signal: impl Into<String>) -> Self {
        Self {
            signal: signal.into(),
            slow_after: None,
            window: defaults::DEFAULT_BREAKER_WINDOW,
            bucket: Duration::from_secs(1),
            min_calls: defaults::DEFAULT_MIN_CALLS,
            failure_ratio: defaults::DEFAULT_FAILURE_RATIO,
            consecutive_failures: None,
            ttl: defaults::DEFAULT_TTL,
            open_for: defaults::DEFAULT_OPEN_FOR,
            max_open_for: defaults::DEFAULT_MAX_OPEN_FOR,
            jitter: defaults::DEFAULT_JITTER,
            probes: defaults::DEFAULT_PROBES,
            probe_timeout: defaults::DEFAULT_PROBE_TIMEOUT,
        }
    }

    /// A breaker that counts calls slower than `slow_after` as failures (errors are not
    /// counted); otherwise as [`error_rate`](Self::error_rate). `failure_ratio` is then the
    /// share of slow calls that opens it (default 0.5).
    pub fn slow_call(signal: impl Into<String>, slow_after: Duration) -> Self {
        Self {
            slow_after: Some(slow_after),
            ..Self::error_rate(signal)
        }
    }

    /// The length of the sliding window (default 30 s).
    pub fn window(mut self, window: Duration) -> Self {
        self.window = window;
        self
    }

    /// Calls that must have ended in the window before the ratio counts (default 20).
    pub fn min_calls(mut self, min_calls: u32) -> Self {
        self.min_calls = min_calls;
        self
    }

    /// The share of failures in the window that opens the breaker, in (0, 1] (default 0.5).
    pub fn failure_ratio(mut self, ratio: f64) -> Self {
        self.failure_ratio = ratio;
        self
    }

    /// Also open after this many failures in a row (default: no such rule).
    pub fn consecutive_failures(mut self, failures: u32) -> Self {
        self.consecutive_failures = Some(failures);
        self
    }

    /// The signal's time-to-live, refreshed every `ttl / 3` while raised (default 15 s).
    pub fn ttl(mut self, ttl: Duration) -> Self {
        self.ttl = ttl;
        self
    }

    /// How long it stays open before probing (default 30 s); doubles after each failed
    /// probe round, up to [`max_open_for`](Self::max_open_for).
    pub fn open_for(mut self, open_for: Duration) -> Self {
        self.open_for = open_for;
        self
    }

    /// The longest open period (default 300 s).
    pub fn max_open_for(mut self, max: Duration) -> Self {
        self.max_open_for = max;
        self
    }

    /// Random spread of open periods, a share in [0, 1) (default 0.15: ±15 %), so that
    /// breakers opened together do not probe together. 0 turns it off.
    pub fn jitter(mut self, jitter: f64) -> Self {
        self.jitter = jitter;
        self
    }

    /// Items the owner may start while half-open; that many successes close it (default 3).
    pub fn probes(mut self, probes: u32) -> Self {
        self.probes = probes;
        self
    }

    /// A probe running longer than this reopens the breaker (default 30 s).
    pub fn probe_timeout(mut self, timeout: Duration) -> Self {
        self.probe_timeout = timeout;
        self
    }

    /// The signal it raises.
    pub fn signal(&self) -> &str {
        &self.signal
    }

    /// Checks every value, by the rules of `backpressure_pattern::options::policies`.
    pub(super) fn validate(&self) -> Result<(), PolicyError> {
        PolicyError::check(&self.spec())
    }

    /// `slow_call` when it counts slow calls, else `error_rate`.
    pub(crate) fn kind(&self) -> PolicyKind {
        match self.slow_after {
            Some(_) => PolicyKind::SlowCall,
            None => PolicyKind::ErrorRate,
        }
    }

    /// Its values, as configured in the attribute or a config file.
    pub(crate) fn spec(&self) -> PolicySpec {
        let policy = self.kind();
        PolicySpec {
            signal: Some(self.signal.clone().into()),
            slow_after: self.slow_after,
            window: Some(self.window),
            min_calls: Some(self.min_calls),
            failure_ratio: Some(self.failure_ratio),
            consecutive_failures: self.consecutive_failures,
            ttl: Some(self.ttl),
            open_for: Some(self.open_for),
            max_open_for: Some(self.max_open_for),
            jitter: Some(self.jitter),
            probes: Some(self.probes),
            probe_timeout: Some(self.probe_timeout),
            ..PolicySpec::new(policy)
        }
    }
}

/// A breaker's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum BreakerState {
    /// Calls are counted; the signal is not raised.
    Closed,
    /// The signal is raised; the owner holds like everyone else.
    Open,
    /// The signal is still raised; the owner runs probes.
    HalfOpen,
}

/// Why a breaker changed state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Reason {
    /// The failure ratio over the window reached `failure_ratio`.
    FailureRatio,
    /// `consecutive_failures` calls in a row failed.
    ConsecutiveFailures,
    /// `open_for` ran out.
    OpenForElapsed,
    /// `probes` probes succeeded in a row.
    ProbesSucceeded,
    /// A probe failed.
    ProbeFailed,
    /// A probe ran past `probe_timeout`.
    ProbeTimedOut,
}

/// One state change of a breaker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Change {
    pub(super) from: BreakerState,
    pub(super) to: BreakerState,
    pub(super) reason: Reason,
    pub(super) counts: WindowCounts,
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
        probes: Vec<(u64, Instant)>,
        started: u32,
        succeeded: u32,
    },
}

/// A breaker's state machine.
#[derive(Debug)]
pub(super) struct Machine {
    config: Breaker,
    window: Window,
    consecutive: u32,
    /// The current open period, before jitter.
    backoff: Duration,
    phase: Phase,
}

impl Machine {
    pub(super) fn new(config: Breaker, now: Instant) -> Self {
        Self {
            window: Window::new(config.window, config.bucket, now),
            backoff: config.open_for,
            consecutive: 0,
            phase: Phase::Closed { since: now },
            config,
        }
    }

    pub(super) fn config(&self) -> &Breaker {
        &self.config
    }

    pub(super) fn state(&self) -> BreakerState {
        match self.phase {
            Phase::Closed { .. } => BreakerState::Closed,
            Phase::Open { .. } => BreakerState::Open,
            Phase::HalfOpen { .. } => BreakerState::HalfOpen,
        }
    }

    pub(super) fn counts(&self, now: Instant) -> WindowCounts {
        self.window.counts(now)
    }

    /// Whether a call of `elapsed` that ended with `failed` counts as a failure.
    pub(super) fn is_failure(&self, failed: bool, elapsed: Duration) -> bool {
        match self.config.slow_after {
            Some(slow_after) => elapsed > slow_after,
            None => failed,
        }
    }

    /// An item `id` finished; `failure` as classified by [`is_failure`](Self::is_failure).
    pub(super) fn observe(&mut self, id: u64, failure: bool, now: Instant) -> Option<Change> {
        match &mut self.phase {
            Phase::Closed { .. } => {
                self.window.record(failure, now);
                self.consecutive = if failure { self.consecutive + 1 } else { 0 };
                let reason = self.should_open(now)?;
                Some(self.open(BreakerState::Closed, reason, now))
            }
            Phase::Open { .. } => None,
            Phase::HalfOpen {
                probes, succeeded, ..
            } => {
                let at = probes.iter().position(|(probe, _)| *probe == id)?;
                probes.swap_remove(at);
                if failure {
                    return Some(self.reopen(Reason::ProbeFailed, now));
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
                    reason: Reason::ProbesSucceeded,
                    counts,
                })
            }
        }
    }

    fn should_open(&self, now: Instant) -> Option<Reason> {
        if self
            .config
            .consecutive_failures
            .is_some_and(|n| self.consecutive >= n)
        {
            return Some(Reason::ConsecutiveFailures);
        }
        let counts = self.window.counts(now);
        let ratio_reached = counts.calls >= self.config.min_calls
            && f64::from(counts.failures) >= self.config.failure_ratio * f64::from(counts.calls);
        ratio_reached.then_some(Reason::FailureRatio)
    }

    fn open(&mut self, from: BreakerState, reason: Reason, now: Instant) -> Change {
        if let Phase::Closed { since } = self.phase {
            // A healthy period as long as the longest open one resets the backoff.
            if now.saturating_duration_since(since) >= self.config.max_open_for {
                self.backoff = self.config.open_for;
            }
        }
        let counts = self.window.counts(now);
        let until = now + jittered(self.backoff, self.config.jitter);
        self.phase = Phase::Open { until };
        Change {
            from,
            to: BreakerState::Open,
            reason,
            counts,
        }
    }

    fn reopen(&mut self, reason: Reason, now: Instant) -> Change {
        self.backoff = self.backoff.saturating_mul(2).min(self.config.max_open_for);
        self.open(BreakerState::HalfOpen, reason, now)
    }

    /// Timers: `open_for` ran out, or a probe ran past `probe_timeout`.
    pub(super) fn tick(&mut self, now: Instant) -> Option<Change> {
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
                    reason: Reason::OpenForElapsed,
                    counts: self.window.counts(now),
                })
            }
            Phase::HalfOpen { probes, .. }
                if probes
                    .iter()
                    .any(|(_, started)| *started + self.config.probe_timeout <= now) =>
            {
                Some(self.reopen(Reason::ProbeTimedOut, now))
            }
            _ => None,
        }
    }

    /// When [`tick`](Self::tick) has something to do next.
    pub(super) fn next_deadline(&self) -> Option<Instant> {
        match &self.phase {
            Phase::Closed { .. } => None,
            Phase::Open { until } => Some(*until),
            Phase::HalfOpen { probes, .. } => probes
                .iter()
                .map(|(_, started)| *started + self.config.probe_timeout)
                .min(),
        }
    }

    /// Whether the owner may start item `id` as a probe; counts it if so.
    pub(super) fn try_probe(&mut self, id: u64, now: Instant) -> bool {
        let Phase::HalfOpen {
            probes, started, ..
        } = &mut self.phase
        else {
            return false;
        };
        if *started >= self.config.probes {
            return false;
        }
        *started += 1;
        probes.push((id, now));
        true
    }
}

/// `base` spread uniformly by ±`jitter`.
fn jittered(base: Duration, jitter: f64) -> Duration {
    if jitter <= 0.0 {
        return base;
    }
    let factor = 1.0 + jitter * (2.0 * fastrand::f64() - 1.0);
    base.mul_f64(factor)
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
        for id in 0..19 {
            assert_eq!(m.observe(id, true, now), None);
        }
        let change = m.observe(19, true, now).unwrap();
        assert_eq!(
            (change.to, change.reason),
            (BreakerState::Open, Reason::FailureRatio)
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
        for id in 0..11 {
            assert_eq!(m.observe(id, false, now), None);
        }
        for id in 11..20 {
            assert_eq!(
                m.observe(id, true, now),
                None,
                "9 of 20 failing stays closed"
            );
        }
        let (mut m2, now2) = machine(Breaker::error_rate("s"));
        for id in 0..10 {
            m2.observe(id, false, now2);
        }
        for id in 10..19 {
            assert_eq!(m2.observe(id, true, now2), None);
        }
        assert!(m2.observe(19, true, now2).is_some(), "10 of 20 opens");
        assert_eq!(m.state(), BreakerState::Closed);
    }

    #[test]
    fn failing_probes_double_the_open_period_up_to_the_cap() {
        let (mut m, mut now) = machine(Breaker::error_rate("s").consecutive_failures(1));
        m.observe(0, true, now).unwrap();
        let mut periods = Vec::new();
        for id in 1..=6 {
            let deadline = m.next_deadline().unwrap();
            periods.push((deadline - now).as_secs());
            now = deadline;
            assert_eq!(m.tick(now).unwrap().to, BreakerState::HalfOpen);
            assert!(m.try_probe(id, now));
            assert_eq!(
                m.observe(id, true, now).unwrap().reason,
                Reason::ProbeFailed
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
        m.observe(0, true, now);
        let half_open_at = m.next_deadline().unwrap();
        m.tick(half_open_at).unwrap();
        assert!(m.try_probe(1, half_open_at));
        assert_eq!(
            m.next_deadline(),
            Some(half_open_at + Duration::from_secs(5))
        );
        assert_eq!(m.tick(half_open_at + Duration::from_secs(4)), None);
        let change = m.tick(half_open_at + Duration::from_secs(5)).unwrap();
        assert_eq!(
            (change.to, change.reason),
            (BreakerState::Open, Reason::ProbeTimedOut)
        );
    }

    #[test]
    fn probes_are_limited_and_their_successes_close_it() {
        let (mut m, now) = machine(Breaker::error_rate("s").consecutive_failures(1));
        m.observe(0, true, now);
        let at = m.next_deadline().unwrap();
        m.tick(at);
        assert!(m.try_probe(1, at) && m.try_probe(2, at) && m.try_probe(3, at));
        assert!(!m.try_probe(4, at), "only `probes` items start");
        // An item that is not a probe (started before it opened) does not count.
        assert_eq!(m.observe(99, false, at), None);
        assert_eq!(m.observe(1, false, at), None);
        assert_eq!(m.observe(2, false, at), None);
        let change = m.observe(3, false, at).unwrap();
        assert_eq!(
            (change.to, change.reason),
            (BreakerState::Closed, Reason::ProbesSucceeded)
        );
    }

    #[test]
    fn bad_values_name_the_policy_and_field() {
        let err = Breaker::error_rate("s")
            .failure_ratio(0.0)
            .validate()
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "invalid `error_rate` policy: `failure_ratio` must be a number in (0, 1], found 0"
        );
        let err = Breaker::slow_call("s", Duration::ZERO)
            .validate()
            .unwrap_err();
        assert!(
            err.to_string()
                .contains("`slow_after` must be longer than zero, found `0s`"),
            "{err}"
        );
        assert!(Breaker::error_rate("s").validate().is_ok());
    }
}
