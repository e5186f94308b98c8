//! A breaker's configuration: the builder users write, and its [`PolicySpec`] both ways.

use std::time::Duration;

use backpressure_pattern::options::policies::{PolicyKind, PolicySpec};

/// A circuit breaker that raises a signal when its worker's calls go bad, so that every
/// worker deferring on that signal backs off together.
///
/// * **Closed**: outcomes are counted in a sliding window. When at least `min_calls` calls
///   ended in the window and the share of failures reaches `failure_ratio` (or, if set,
///   `consecutive_failures` calls in a row failed), it **opens**.
/// * **Open**: the signal is raised on the worker's sink as a verdict
///   ([`Phase::Open`](crate::Phase)), keyed by the worker's name, with a
///   time-to-live (`ttl`) that the breaker refreshes every `ttl / 3` while it stays raised,
///   so a dead owner never leaves it behind. After `open_for` it goes **half-open**.
/// * **Half-open**: the signal is raised with [`Phase::HalfOpen`](crate::Phase) and `probes`
///   items start despite it, from whichever worker it holds (its owner, or a peer when the
///   owner has nothing to send); a worker held only by half-open verdicts claims a probe of
///   each, so several breakers on one downstream recover together. That many successes in
///   a row retract the signal (**closed**); a failure, or a probe running past
///   `probe_timeout`, reopens it for twice as long (up to `max_open_for`, with ±`jitter`). A
///   probe skipped by `cancel_on` or cut short by shutdown gives its probe back. A closed
///   period of `max_open_for` resets the backoff.
///
/// Errors and panics are failures (for [`slow_call`](Self::slow_call), calls slower than
/// `slow_after`); items skipped by `cancel_on` and handlers cut short by shutdown are not
/// counted.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use backpressure::{policy::Breaker, Coordinator, Sink, WorkContext};
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
    pub(super) jitter_seed: Option<u64>,
}

impl Breaker {
    /// A breaker that counts errors and panics, with the defaults: a 30 s window in 1 s
    /// buckets, `min_calls` 20, `failure_ratio` 0.5, no `consecutive_failures` rule, `ttl`
    /// 15 s, `open_for` 30 s doubling up to 300 s with ±15 % jitter, 3 probes, `probe_timeout`
    /// 30 s.
    pub fn error_rate(signal: impl Into<String>) -> Self {
        Self::from_spec(&PolicySpec {
            signal: Some(signal.into().into()),
            ..PolicySpec::new(PolicyKind::ErrorRate)
        })
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

    /// Seeds the jitter of this breaker's open periods, so that they repeat from run to run
    /// (tests, simulations). Without a seed (the default) each period draws from fastrand's
    /// thread-local generator. Breakers that share a seed and open together also probe
    /// together: give each its own. The seed is not a configuration key.
    ///
    /// # Examples
    ///
    /// ```
    /// use backpressure::policy::Breaker;
    ///
    /// let breaker = Breaker::error_rate("backpressure.smtp").jitter_seed(7);
    /// # drop(breaker);
    /// ```
    pub fn jitter_seed(mut self, seed: u64) -> Self {
        self.jitter_seed = Some(seed);
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
    #[cfg(test)]
    fn validate(&self) -> Result<(), crate::policy::PolicyError> {
        crate::policy::PolicyError::check(&self.spec())
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

    /// The breaker `spec` describes, the inverse of [`spec`](Self::spec): a value `spec`
    /// does not give takes its default (from the shared rules), and `slow_after` counts only
    /// for `slow_call`. `spec` is expected to have passed its check.
    pub(crate) fn from_spec(spec: &PolicySpec) -> Self {
        let spec = spec.resolved();
        Self {
            signal: spec.signal.unwrap_or_default().into_owned(),
            slow_after: spec
                .slow_after
                .filter(|_| spec.policy == PolicyKind::SlowCall),
            window: spec.window.unwrap_or_default(),
            bucket: Duration::from_secs(1),
            min_calls: spec.min_calls.unwrap_or_default(),
            failure_ratio: spec.failure_ratio.unwrap_or_default(),
            consecutive_failures: spec.consecutive_failures,
            ttl: spec.ttl.unwrap_or_default(),
            open_for: spec.open_for.unwrap_or_default(),
            max_open_for: spec.max_open_for.unwrap_or_default(),
            jitter: spec.jitter.unwrap_or_default(),
            probes: spec.probes.unwrap_or_default(),
            probe_timeout: spec.probe_timeout.unwrap_or_default(),
            jitter_seed: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
