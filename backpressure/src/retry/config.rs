//! [`Retry`]: how often a failed item runs again, and after how long.

use std::time::Duration;

use backpressure_pattern::options::retry::{
    RetrySpec, DEFAULT_ATTEMPTS, DEFAULT_BACKOFF, DEFAULT_JITTER, DEFAULT_MAX_BACKOFF,
    DEFAULT_MULTIPLIER,
};
use serde::Serialize;

use crate::error::RetryError;
use crate::policy::jitter::{self, Jitter};

/// How a worker retries a failed item: `attempts` in all, the first retry after `backoff`,
/// each next one `multiplier` times later, at most `max_backoff`, spread by ± `jitter`.
///
/// The delay before attempt `n + 1` (after `n` failures) is
/// `min(max_backoff, backoff × multiplier^(n-1))`, then multiplied by a factor drawn
/// uniformly from `[1 - jitter, 1 + jitter]`. Defaults: 3 attempts, 1 s, × 2, at most 60 s,
/// jitter 0.1. [`jitter_seed`](Self::jitter_seed) makes the draws repeat from run to run.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use backpressure::retry::Retry;
///
/// let retry = Retry::new(5)
///     .backoff(Duration::from_secs(1))
///     .max_backoff(Duration::from_secs(5))
///     .jitter(0.0);
/// let delays: Vec<_> = (1..5).map(|failures| retry.delay_after(failures)).collect();
/// assert_eq!(delays, [1, 2, 4, 5].map(Duration::from_secs));
/// ```
///
/// Serialises (for a runtime's `WorkerInfo`) with its durations as strings (`"1s"`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Retry {
    pub(crate) attempts: u32,
    #[serde(with = "humantime_serde")]
    pub(crate) backoff: Duration,
    #[serde(with = "humantime_serde")]
    pub(crate) max_backoff: Duration,
    pub(crate) multiplier: f64,
    pub(crate) jitter: f64,
    pub(crate) jitter_seed: Option<u64>,
}

impl Default for Retry {
    /// Three attempts.
    fn default() -> Self {
        Self::new(DEFAULT_ATTEMPTS)
    }
}

impl Retry {
    /// `attempts` in all (the first run included; 1 keeps dead letters without retrying),
    /// with the default backoff.
    pub fn new(attempts: u32) -> Self {
        Self {
            attempts,
            backoff: DEFAULT_BACKOFF,
            max_backoff: DEFAULT_MAX_BACKOFF,
            multiplier: DEFAULT_MULTIPLIER,
            jitter: DEFAULT_JITTER,
            jitter_seed: None,
        }
    }

    /// Runs in all, the first included. Must be at least 1.
    pub fn attempts(mut self, attempts: u32) -> Self {
        self.attempts = attempts;
        self
    }

    /// The delay before the first retry. Must be positive.
    pub fn backoff(mut self, backoff: Duration) -> Self {
        self.backoff = backoff;
        self
    }

    /// The longest delay. At least `backoff`.
    pub fn max_backoff(mut self, max_backoff: Duration) -> Self {
        self.max_backoff = max_backoff;
        self
    }

    /// How much longer each next delay is. At least 1.
    pub fn multiplier(mut self, multiplier: f64) -> Self {
        self.multiplier = multiplier;
        self
    }

    /// The random spread of each delay, a share in `[0, 1]` (0: exact delays).
    pub fn jitter(mut self, jitter: f64) -> Self {
        self.jitter = jitter;
        self
    }

    /// Seeds the jitter, so that the delays repeat from run to run.
    pub fn jitter_seed(mut self, seed: u64) -> Self {
        self.jitter_seed = Some(seed);
        self
    }

    /// Runs in all.
    pub fn max_attempts(&self) -> u32 {
        self.attempts
    }

    /// Checks every value against its rule (the rules of `retry(...)` in the attribute and
    /// a config file).
    pub(crate) fn check(&self) -> Result<(), RetryError> {
        self.spec()
            .check()
            .map_err(|err| RetryError::from_rule(&err))
    }

    /// This retry as the attribute and a config file write it: every field given.
    ///
    /// # Examples
    ///
    /// ```
    /// use backpressure::retry::Retry;
    ///
    /// let retry = Retry::new(5).jitter_seed(7);
    /// assert_eq!(retry.spec().attempts, Some(5));
    /// assert_eq!(Retry::from_spec(&retry.spec()), retry);
    /// ```
    pub fn spec(&self) -> RetrySpec {
        RetrySpec {
            attempts: Some(self.attempts),
            backoff: Some(self.backoff),
            max_backoff: Some(self.max_backoff),
            multiplier: Some(self.multiplier),
            jitter: Some(self.jitter),
            jitter_seed: self.jitter_seed,
        }
    }

    /// The retry a spec describes, its defaults where it gives nothing (not checked: building
    /// the coordinator checks it).
    ///
    /// # Examples
    ///
    /// ```
    /// use backpressure::retry::{Retry, RetrySpec};
    ///
    /// let spec = RetrySpec { attempts: Some(5), ..RetrySpec::new() };
    /// assert_eq!(Retry::from_spec(&spec), Retry::new(5));
    /// ```
    pub fn from_spec(spec: &RetrySpec) -> Self {
        Self {
            attempts: spec.attempts.unwrap_or(DEFAULT_ATTEMPTS),
            backoff: spec.backoff.unwrap_or(DEFAULT_BACKOFF),
            max_backoff: spec.max_backoff.unwrap_or(DEFAULT_MAX_BACKOFF),
            multiplier: spec.multiplier.unwrap_or(DEFAULT_MULTIPLIER),
            jitter: spec.jitter.unwrap_or(DEFAULT_JITTER),
            jitter_seed: spec.jitter_seed,
        }
    }

    /// The delay before the next attempt after `failures` failed ones, without jitter.
    pub fn delay_after(&self, failures: u32) -> Duration {
        let exponent = failures.saturating_sub(1).min(1_000) as i32;
        let factor = self.multiplier.powi(exponent);
        let base = self.backoff.as_secs_f64() * factor;
        if !base.is_finite() || base >= self.max_backoff.as_secs_f64() {
            return self.max_backoff;
        }
        Duration::from_secs_f64(base)
    }

    /// The jittered delay before the next attempt, drawn from `source`.
    pub(crate) fn jittered_delay(&self, failures: u32, source: &mut dyn Jitter) -> Duration {
        source.spread(self.delay_after(failures), self.jitter)
    }

    /// This retry's source of jitter draws.
    pub(crate) fn jitter_source(&self) -> Box<dyn Jitter> {
        jitter::source(self.jitter_seed)
    }
}
