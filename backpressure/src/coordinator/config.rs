//! The coordinator's configuration values.

use std::fmt;
use std::time::Duration;

use serde::de::{self, Deserializer, Visitor};
use serde::{Deserialize, Serialize, Serializer};

/// Default number of concurrent slots, as in the seed.
pub(crate) const DEFAULT_CONCURRENCY: usize = 4;
pub use backpressure_pattern::MAX_CONCURRENCY;
/// Default queue capacity, as in the seed (`MaxTrackedOperations`).
pub(crate) const DEFAULT_CAPACITY: usize = 200;
/// Default defer pattern, as in the seed.
pub(crate) const DEFAULT_DEFER_ON: &str = "backpressure.*";
/// Default longest gap between gate re-checks, as in the seed.
pub(crate) const DEFAULT_CHECK_INTERVAL: Duration = Duration::from_millis(50);
/// Default number of check intervals an item may be held, as in the seed.
pub(crate) const DEFAULT_MAX_DEFER_ATTEMPTS: u32 = 200;

/// How long an item may be held at the head of the queue by a closed gate before it starts
/// anyway (counted in [`Stats::defer_timeouts`](crate::Stats::defer_timeouts)).
///
/// Serialises as a number of attempts (`200`), a duration string (`"10s"`) or `"never"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MaxDefer {
    /// `defer_check_interval × n` (the .NET original's `MaxDeferAttempts`). The default is
    /// 200.
    Attempts(u32),
    /// A fixed duration.
    After(Duration),
    /// Wait for as long as the signal stays.
    Never,
}

impl MaxDefer {
    /// The limit as a duration, given the check interval; `None` for [`MaxDefer::Never`].
    pub fn resolve(self, check_interval: Duration) -> Option<Duration> {
        match self {
            MaxDefer::Attempts(n) => Some(check_interval.saturating_mul(n)),
            MaxDefer::After(limit) => Some(limit),
            MaxDefer::Never => None,
        }
    }
}

impl Default for MaxDefer {
    fn default() -> Self {
        MaxDefer::Attempts(DEFAULT_MAX_DEFER_ATTEMPTS)
    }
}

impl Serialize for MaxDefer {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            MaxDefer::Attempts(n) => serializer.serialize_u32(*n),
            MaxDefer::After(limit) => serializer.collect_str(&humantime::format_duration(*limit)),
            MaxDefer::Never => serializer.serialize_str("never"),
        }
    }
}

impl<'de> Deserialize<'de> for MaxDefer {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct MaxDeferVisitor;

        impl Visitor<'_> for MaxDeferVisitor {
            type Value = MaxDefer;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a number of attempts, a duration such as \"10s\", or \"never\"")
            }

            fn visit_u64<E: de::Error>(self, n: u64) -> Result<MaxDefer, E> {
                u32::try_from(n).map(MaxDefer::Attempts).map_err(|_| {
                    E::custom(format!("{n} attempts is too many (at most {})", u32::MAX))
                })
            }

            fn visit_i64<E: de::Error>(self, n: i64) -> Result<MaxDefer, E> {
                u64::try_from(n)
                    .map_err(|_| E::custom(format!("{n} attempts is negative")))
                    .and_then(|n| self.visit_u64(n))
            }

            fn visit_str<E: de::Error>(self, s: &str) -> Result<MaxDefer, E> {
                if s == "never" {
                    return Ok(MaxDefer::Never);
                }
                humantime::parse_duration(s)
                    .map(MaxDefer::After)
                    .map_err(|e| E::custom(format!("invalid duration {s:?}: {e}")))
            }
        }

        deserializer.deserialize_any(MaxDeferVisitor)
    }
}

/// Every option of a [`Coordinator`](crate::Coordinator), with the seed's defaults.
///
/// Durations serialise as human-readable strings (`"50ms"`).
///
/// # Examples
///
/// ```
/// use backpressure::{CoordinatorConfig, MaxDefer};
/// use std::time::Duration;
///
/// let config = CoordinatorConfig::default();
/// assert_eq!(config.concurrency, 4);
/// assert_eq!(config.capacity, 200);
/// assert_eq!(config.defer_on.as_deref(), Some("backpressure.*"));
/// assert_eq!(config.defer_check_interval, Duration::from_millis(50));
/// assert_eq!(config.max_defer, MaxDefer::Attempts(200));
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CoordinatorConfig {
    /// Number of items handled at once. Default 4.
    pub concurrency: usize,
    /// Items the queue holds before `enqueue` waits. Default 200.
    pub capacity: usize,
    /// Pattern of signals that hold back new work; `None` never defers.
    /// Default `backpressure.*`.
    pub defer_on: Option<String>,
    /// Pattern of signals that let work start even while a `defer_on` signal is active.
    pub resume_on: Option<String>,
    /// Pattern of signals under which items are skipped (handed to the skip callback)
    /// instead of started.
    pub cancel_on: Option<String>,
    /// The unit of [`MaxDefer::Attempts`]: `max_defer_attempts × defer_check_interval` is how
    /// long a head item may be held. Nothing re-checks on this interval: held slots sleep
    /// until a signal or control change, or the head's deadline. Default 50 ms.
    #[serde(with = "humantime_serde")]
    pub defer_check_interval: Duration,
    /// How long an item may be held before it starts anyway. Default 200 attempts (10 s).
    pub max_defer: MaxDefer,
}

impl Default for CoordinatorConfig {
    fn default() -> Self {
        Self {
            concurrency: DEFAULT_CONCURRENCY,
            capacity: DEFAULT_CAPACITY,
            defer_on: Some(DEFAULT_DEFER_ON.to_owned()),
            resume_on: None,
            cancel_on: None,
            defer_check_interval: DEFAULT_CHECK_INTERVAL,
            max_defer: MaxDefer::default(),
        }
    }
}
