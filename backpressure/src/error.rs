//! The errors of signals and coordinators. The registry's errors ([`RegistryError`],
//! [`WorkerEnqueueError`]) live in `registry/error.rs` and the config file's
//! ([`ConfigError`]) in `config_file/error.rs`, next to what raises them.
//!
//! [`RegistryError`]: crate::RegistryError
//! [`WorkerEnqueueError`]: crate::WorkerEnqueueError
//! [`ConfigError`]: crate::ConfigError

use std::fmt;

use backpressure_pattern::options::{
    Key, OptionError, Problem, CAPACITY, CONCURRENCY, DEFER_CHECK_INTERVAL, MAX_DEFER,
};
pub use backpressure_pattern::{NameError, NameErrorKind, PatternError};

/// The builder's words for a broken option rule: the rule's own message (see
/// `backpressure_pattern::options`), the key, and what is allowed.
fn invalid(key: &'static Key, problem: Problem) -> String {
    let message = OptionError::new(key, problem).message();
    format!(
        "invalid `{}`: {message} (allowed: {})",
        key.name, key.allowed
    )
}

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

/// A [`CoordinatorBuilder`](crate::CoordinatorBuilder) or a run-time reconfiguration was given
/// a value outside its allowed range.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BuildError {
    /// `concurrency` is zero; at least one slot is needed.
    #[error("{}", invalid(&CONCURRENCY, Problem::Zero))]
    ZeroConcurrency,
    /// `concurrency` is above [`MAX_CONCURRENCY`](crate::MAX_CONCURRENCY); every slot is a
    /// task started up front, so a huge value would exhaust memory instead of failing.
    #[error("{}", invalid(&CONCURRENCY, Problem::TooLarge { found: *requested }))]
    ConcurrencyTooLarge {
        /// The value asked for.
        requested: usize,
        /// The largest allowed value.
        max: usize,
    },
    /// `capacity` is zero; the queue must hold at least one item.
    #[error("{}", invalid(&CAPACITY, Problem::Zero))]
    ZeroCapacity,
    /// `defer_check_interval` is zero.
    #[error("{}", invalid(&DEFER_CHECK_INTERVAL, Problem::ZeroDuration { text: "0s".into() }))]
    ZeroCheckInterval,
    /// `max_defer_attempts` or `max_defer` is zero; use `MaxDefer::Never` to wait without limit.
    #[error("{}", invalid(&MAX_DEFER, Problem::ZeroMaxDefer))]
    ZeroMaxDefer,
    /// One of the patterns (`defer_on`, `resume_on`, `cancel_on`) does not compile.
    #[error("invalid `{field}` pattern: {source}")]
    Pattern {
        /// Which option held the pattern.
        field: &'static str,
        /// What was wrong with it.
        source: PatternError,
    },
    /// A health policy has a value outside its allowed range.
    #[error(transparent)]
    Policy(#[from] crate::policy::PolicyError),
    /// `build` was called outside a tokio runtime.
    #[error("a coordinator must be built inside a tokio runtime (call `build` from async code or inside `Runtime::enter`)")]
    NoRuntime,
}

/// [`Coordinator::enqueue`](crate::Coordinator::enqueue) failed because intake is closed; the
/// item is handed back.
#[derive(PartialEq, Eq, Clone, Copy)]
pub struct EnqueueError<T>(pub T);

impl<T> EnqueueError<T> {
    /// Takes back the item that could not be enqueued.
    pub fn into_inner(self) -> T {
        self.0
    }
}

impl<T> fmt::Debug for EnqueueError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("EnqueueError(..)")
    }
}

impl<T> fmt::Display for EnqueueError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(
            "the coordinator no longer accepts items (intake is closed); the item is handed back",
        )
    }
}

impl<T> std::error::Error for EnqueueError<T> {}

/// [`Coordinator::try_enqueue`](crate::Coordinator::try_enqueue) failed; the item is handed back.
#[derive(PartialEq, Eq, Clone, Copy)]
pub enum TryEnqueueError<T> {
    /// The queue is at capacity.
    Full(T),
    /// Intake is closed.
    Closed(T),
}

impl<T> TryEnqueueError<T> {
    /// Takes back the item that could not be enqueued.
    pub fn into_inner(self) -> T {
        match self {
            TryEnqueueError::Full(item) | TryEnqueueError::Closed(item) => item,
        }
    }

    /// Whether the queue was full (as opposed to closed).
    pub fn is_full(&self) -> bool {
        matches!(self, TryEnqueueError::Full(_))
    }
}

impl<T> fmt::Debug for TryEnqueueError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TryEnqueueError::Full(_) => f.write_str("Full(..)"),
            TryEnqueueError::Closed(_) => f.write_str("Closed(..)"),
        }
    }
}

impl<T> fmt::Display for TryEnqueueError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TryEnqueueError::Full(_) => {
                f.write_str("the coordinator's queue is full; the item is handed back")
            }
            TryEnqueueError::Closed(_) => f.write_str(
                "the coordinator no longer accepts items (intake is closed); the item is handed back",
            ),
        }
    }
}

impl<T> std::error::Error for TryEnqueueError<T> {}

impl<T> From<EnqueueError<T>> for TryEnqueueError<T> {
    fn from(err: EnqueueError<T>) -> Self {
        TryEnqueueError::Closed(err.0)
    }
}
