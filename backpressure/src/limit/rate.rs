//! [`Rate`]: at most `limit` starts per `per`, with bursts of up to `burst`.

use std::time::Duration;

use serde::{Deserialize, Serialize};

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
}

fn one() -> u32 {
    1
}

impl Rate {
    /// `limit` starts per `per`, no bursts.
    pub fn new(limit: u32, per: Duration) -> Self {
        Self {
            limit,
            per,
            burst: 1,
        }
    }

    /// Up to `burst` starts at once after a quiet spell.
    pub fn burst(mut self, burst: u32) -> Self {
        self.burst = burst;
        self
    }

    /// The time between two starts at the full rate: `per / limit`.
    pub fn interval(&self) -> Duration {
        self.per / self.limit.max(1)
    }

    /// Checks the values: what is wrong and what is allowed.
    pub(crate) fn check(&self) -> Result<(), String> {
        if self.limit == 0 {
            return Err("`limit` must be at least 1, found 0".into());
        }
        if self.burst == 0 {
            return Err("`burst` must be at least 1, found 0".into());
        }
        if self.interval().is_zero() {
            return Err(format!(
                "`per` must be long enough for `limit` starts ({} per {:?} leaves no time between two)",
                self.limit, self.per
            ));
        }
        Ok(())
    }
}
