//! Throttling levels: how far a raised signal holds work back.

use std::fmt;

/// How much work a raised signal still lets through, between 0 and 1.
///
/// A plain raise is [`Level::STOP`] (0): a coordinator whose `defer_on` matches starts
/// nothing. A level `l > 0` lets a coordinator of concurrency `n` run up to
/// `max(1, floor(n × l))` items at once; [`Level::FULL`] (1) holds nothing back. Where several
/// matching entries are active, the lowest level wins.
///
/// Stored exactly in thousandths, so levels compare and add up without rounding surprises;
/// [`Level::new`] rounds to the nearest thousandth, except that a positive value never rounds
/// to [`Level::STOP`]: anything above 0 is at least one thousandth, and so lets at least one
/// item run.
///
/// # Examples
///
/// ```
/// use backpressure::{Level, Sink, RaiseOptions};
///
/// let level = Level::new(0.3)?;
/// assert_eq!(level.per_mille(), 300);
/// assert_eq!(level.limit(10), 3);
/// assert_eq!(Level::new(0.05)?.limit(10), 1); // never below one running item
/// assert_eq!(Level::new(0.0004)?.per_mille(), 1); // positive stays positive
/// assert!(Level::new(1.5).is_err());
///
/// let sink = Sink::new();
/// sink.raise_with("backpressure.smtp", RaiseOptions::new().level(level))?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Level(u16);

/// A level outside [0, 1] (or NaN) was given.
#[derive(Debug, Clone, Copy, PartialEq, thiserror::Error)]
#[error("invalid signal level: {0} (allowed: a number from 0 to 1, e.g. 0.25)")]
pub struct LevelError(pub f64);

impl Level {
    /// Full stop: nothing starts while it is active (a plain raise).
    pub const STOP: Level = Level(0);
    /// Nothing is held back.
    pub const FULL: Level = Level(1000);

    /// The level `value`, rounded to the nearest thousandth; a positive `value` below half a
    /// thousandth becomes one thousandth, the smallest level that is not a full stop.
    ///
    /// # Errors
    ///
    /// [`LevelError`] for NaN or a value outside [0, 1].
    pub fn new(value: f64) -> Result<Self, LevelError> {
        if !(0.0..=1.0).contains(&value) {
            return Err(LevelError(value));
        }
        // In range, so the product is in [0, 1000] and the cast cannot truncate.
        let per_mille = (value * 1000.0).round() as u16;
        Ok(Self(if value > 0.0 { per_mille.max(1) } else { 0 }))
    }

    /// The level in thousandths, `n` / 1000, clamped to 1000.
    pub fn from_per_mille(n: u16) -> Self {
        Self(n.min(1000))
    }

    /// The level in thousandths (0 to 1000).
    pub fn per_mille(self) -> u16 {
        self.0
    }

    /// The level as a number from 0 to 1.
    pub fn as_f64(self) -> f64 {
        f64::from(self.0) / 1000.0
    }

    /// How many items a coordinator of `concurrency` slots may run at once under this level:
    /// 0 for [`STOP`](Self::STOP), otherwise `max(1, floor(concurrency × level))`.
    pub fn limit(self, concurrency: usize) -> usize {
        if self.0 == 0 {
            return 0;
        }
        let scaled = concurrency.saturating_mul(usize::from(self.0)) / 1000;
        scaled.max(1)
    }
}

impl fmt::Debug for Level {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Level({})", self.as_f64())
    }
}

impl fmt::Display for Level {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.as_f64())
    }
}

impl serde::Serialize for Level {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_f64(self.as_f64())
    }
}

impl TryFrom<f64> for Level {
    type Error = LevelError;

    fn try_from(value: f64) -> Result<Self, Self::Error> {
        Self::new(value)
    }
}

/// How to raise a signal: key, time-to-live and level, for [`Sink::raise_with`](crate::Sink::raise_with).
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use backpressure::{Level, RaiseOptions, Sink};
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let sink = Sink::new();
/// let options = RaiseOptions::new()
///     .key("replica-1")
///     .ttl(Duration::from_secs(15))
///     .level(Level::new(0.5)?);
/// sink.raise_with("backpressure.db", options)?;
/// assert_eq!(sink.snapshot()[0].level, Level::new(0.5)?);
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RaiseOptions {
    pub(super) key: Option<String>,
    pub(super) ttl: Option<std::time::Duration>,
    pub(super) level: Level,
    pub(super) phase: Option<super::phase::Phase>,
    pub(super) source: Option<super::probe::SharedSource>,
    pub(super) next_transition: Option<tokio::time::Instant>,
}

impl RaiseOptions {
    /// A plain raise: no key, no TTL, [`Level::STOP`], no [`Phase`](crate::Phase).
    pub fn new() -> Self {
        Self::default()
    }

    /// Raise under `key` (see [`Sink::raise_keyed`](crate::Sink::raise_keyed)).
    pub fn key(mut self, key: impl Into<String>) -> Self {
        self.key = Some(key.into());
        self
    }

    /// Expire after `ttl` unless raised again (see [`Sink::raise_for`](crate::Sink::raise_for)).
    pub fn ttl(mut self, ttl: std::time::Duration) -> Self {
        self.ttl = Some(ttl);
        self
    }

    /// Hold work back only partly (see [`Level`]).
    pub fn level(mut self, level: Level) -> Self {
        self.level = level;
        self
    }
}
