//! [`Rate`]: at most `limit` starts per `per`, with bursts of up to `burst`.

use std::time::Duration;

use backpressure_pattern::options::rate::{RateSpec, DEFAULT_BURST};
use serde::{Deserialize, Serialize};

use crate::error::RateError;

/// At most `limit` starts per `per`, spaced evenly (one every `per / limit`), with up to
/// `burst` starts at once after a quiet spell: the generic cell rate algorithm (GCRA), as
/// governor implements it.
///
/// With the default `burst` of 1, starts are exactly `per / limit` apart; with `burst = b`,
/// up to `b` start at once and the rest follow at the rate.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use backpressure::limit::Rate;
///
/// let rate = Rate::new(100, Duration::from_secs(1)).burst(10);
/// assert_eq!(rate.interval(), Duration::from_millis(10));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rate {
    /// Starts allowed per `per`; at least 1.
    pub limit: u32,
    /// The period; positive.
    #[serde(with = "humantime_serde")]
    pub per: Duration,
    /// Starts allowed at once after a quiet spell; at least 1. Default 1.
    #[serde(default = "one")]
    pub burst: u32,
    /// The limit is the whole fleet's: every process whose worker of this name shares the
    /// sink through `backpressure-redis` draws its starts from one GCRA kept in Redis (see
    /// [`shared`](Self::shared)). Default `false`: each process has its own.
    #[serde(default)]
    pub shared: bool,
}

fn one() -> u32 {
    DEFAULT_BURST
}

impl Rate {
    /// `limit` starts per `per`, no bursts.
    pub fn new(limit: u32, per: Duration) -> Self {
        Self {
            limit,
            per,
            burst: 1,
            shared: false,
        }
    }

    /// Up to `burst` starts at once after a quiet spell.
    pub fn burst(mut self, burst: u32) -> Self {
        self.burst = burst;
        self
    }

    /// The limit is the whole fleet's rather than this process's: the worker's sink must be
    /// shared across processes by a connector (`backpressure_redis::connect`), which keeps
    /// one GCRA for every process on the Redis clock and hands each process its starts in
    /// small batches; building the worker on a sink no connector serves is
    /// [`BuildError::SharedRateNeedsBridge`](crate::error::BuildError::SharedRateNeedsBridge).
    /// While Redis cannot be reached, the connector's `limits_on_disconnect` decides (by
    /// default each process keeps its share: `limit` over the processes last seen).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use backpressure::limit::Rate;
    ///
    /// let fleet = Rate::new(100, Duration::from_secs(1)).shared();
    /// assert!(fleet.shared);
    /// ```
    pub fn shared(mut self) -> Self {
        self.shared = true;
        self
    }

    /// The time between two starts at the full rate: `per / limit`.
    pub fn interval(&self) -> Duration {
        self.per / self.limit.max(1)
    }

    /// Checks the values against the rules of `rate(...)` in the attribute and a config file.
    pub(crate) fn check(&self) -> Result<(), RateError> {
        self.spec()
            .check()
            .map_err(|err| RateError::from_rule(&err))
    }

    /// This rate as the attribute and a config file write it: every field given.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use backpressure::limit::Rate;
    ///
    /// let rate = Rate::new(100, Duration::from_secs(1)).burst(10);
    /// assert_eq!(rate.spec().limit, Some(100));
    /// assert_eq!(Rate::from_spec(&rate.spec()), rate);
    /// ```
    pub fn spec(&self) -> RateSpec {
        RateSpec {
            limit: Some(self.limit),
            per: Some(self.per),
            burst: Some(self.burst),
            shared: Some(self.shared),
        }
    }

    /// The rate a spec describes, `burst` 1 and not `shared` where it gives none (not checked: building the
    /// coordinator checks it; a `limit` or `per` not given is 0 there, which the check
    /// refuses, so check the spec first to say which is missing).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use backpressure::limit::{Rate, RateSpec};
    ///
    /// let spec = RateSpec { limit: Some(5), per: Some(Duration::from_secs(1)), ..RateSpec::new() };
    /// assert_eq!(Rate::from_spec(&spec), Rate::new(5, Duration::from_secs(1)));
    /// ```
    pub fn from_spec(spec: &RateSpec) -> Self {
        Self {
            limit: spec.limit.unwrap_or(0),
            per: spec.per.unwrap_or(Duration::ZERO),
            burst: spec.burst.unwrap_or(DEFAULT_BURST),
            shared: spec.shared.unwrap_or(false),
        }
    }
}
