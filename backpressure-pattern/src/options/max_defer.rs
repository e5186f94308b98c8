//! [`MaxDefer`]: how long the head of the queue may be held.

use std::time::Duration;

/// How long an item may be held at the head of the queue by a closed gate before it starts
/// anyway (counted in the coordinator's `defer_timeouts`).
///
/// Serialises (with the `serde` feature) as a number of attempts (`200`), a duration string
/// (`"10s"`) or `"never"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MaxDefer {
    /// `defer_check_interval × n` (the .NET original's `MaxDeferAttempts`). The default is 200.
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
        MaxDefer::Attempts(super::DEFAULT_MAX_DEFER_ATTEMPTS)
    }
}

#[cfg(feature = "serde")]
mod serde_impls {
    use std::fmt;

    use serde::de::{self, Deserializer, Visitor};
    use serde::{Deserialize, Serialize, Serializer};

    use super::MaxDefer;

    impl Serialize for MaxDefer {
        fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
            match self {
                MaxDefer::Attempts(n) => serializer.serialize_u32(*n),
                MaxDefer::After(limit) => {
                    serializer.collect_str(&humantime::format_duration(*limit))
                }
                MaxDefer::Never => serializer.serialize_str("never"),
            }
        }
    }

    impl<'de> Deserialize<'de> for MaxDefer {
        fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
            deserializer.deserialize_any(MaxDeferVisitor)
        }
    }

    struct MaxDeferVisitor;

    impl Visitor<'_> for MaxDeferVisitor {
        type Value = MaxDefer;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a number of attempts, a duration such as \"10s\", or \"never\"")
        }

        fn visit_u64<E: de::Error>(self, n: u64) -> Result<MaxDefer, E> {
            u32::try_from(n)
                .map(MaxDefer::Attempts)
                .map_err(|_| E::custom(format!("{n} attempts is too many (at most {})", u32::MAX)))
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
}
