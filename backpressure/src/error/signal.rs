//! [`SignalError`]: a sink operation given a bad name, key, pattern or ttl.

use backpressure_pattern::{NameError, PatternError};

/// A sink operation was given a bad signal name, key or pattern.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SignalError {
    /// The signal name breaks the naming rules.
    #[error(transparent)]
    Name(#[from] NameError),
    /// The key breaks the naming rules (keys follow the same rules as names).
    #[error("invalid signal key: {0}")]
    Key(NameError),
    /// The pattern could not be compiled.
    #[error(transparent)]
    Pattern(#[from] PatternError),
    /// A TTL of zero was given; a signal must live for some time.
    #[error("invalid signal ttl: the ttl is zero (use `retract` to remove a signal)")]
    ZeroTtl,
}
