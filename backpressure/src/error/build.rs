//! [`BuildError`]: a coordinator's options outside their allowed range.

use backpressure_pattern::options::{
    Key, OptionError, Problem, CAPACITY, CONCURRENCY, DEAD_LETTERS, DEFER_CHECK_INTERVAL,
    MAX_DEFER, NAME, TIMEOUT,
};
use backpressure_pattern::{NameError, PatternError};

/// The builder's words for a broken option rule: the rule's own message (see
/// `backpressure_pattern::options`), the key, and what is allowed.
fn invalid(key: &'static Key, problem: Problem) -> String {
    let message = OptionError::new(key, problem).message();
    format!(
        "invalid `{}`: {message} (allowed: {})",
        key.name, key.allowed
    )
}

/// The builder's words for a worker name that breaks the naming rules: the rule's own
/// message, which says what is allowed.
fn bad_name(source: &NameError) -> String {
    OptionError::new(&NAME, Problem::Name(source.clone())).message()
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
    /// The worker's [`name`](crate::CoordinatorBuilder::name) is not a valid signal key
    /// (empty, longer than 256 bytes, or a character other than ASCII letters, digits and
    /// `. _ - : /`): its policies raise their signals under it.
    #[error("{}", bad_name(source))]
    Name {
        /// Which naming rule it broke.
        source: NameError,
    },
    /// A health policy has a value outside its allowed range.
    #[error(transparent)]
    Policy(#[from] crate::policy::error::PolicyError),
    /// `timeout` is zero; leave it out for no timeout.
    #[error("{}; leave it out for none", invalid(&TIMEOUT, Problem::ZeroDuration { text: "0s".into() }))]
    ZeroTimeout,
    /// `dead_letters` is zero: a dead letter would be dropped as soon as it is kept.
    #[error("{}; take them with `on_dead_letter` to keep none", invalid(&DEAD_LETTERS, Problem::Zero))]
    ZeroDeadLetters,
    /// The retry options break a rule.
    #[error(transparent)]
    Retry(#[from] super::RetryError),
    /// `on_dead_letter` was given without `retry`: only a worker that retries keeps the copy
    /// of an item that a dead letter hands over.
    #[error("`on_dead_letter` needs `retry(...)`: only a worker that retries keeps a copy of its items (use `retry(Retry::new(1))` for dead letters without retries)")]
    DeadLetterWithoutRetry,
    /// `global_concurrency` is zero.
    #[error("invalid `global_concurrency`: must be at least 1, found 0 (allowed: the most items of this worker running at once across the fleet)")]
    ZeroGlobalConcurrency,
    /// `global_concurrency` was given on a sink that no connector serves: one process cannot
    /// keep a fleet-wide cap.
    #[error("`global_concurrency` needs its sink shared across processes: connect the sink with `backpressure_redis::connect` (or a `[sinks.NAME.redis]` section and `backpressure_redis::start`) before building the worker, or use `concurrency` for a per-process limit")]
    GlobalConcurrencyNeedsBridge,
    /// `rate(..., shared = true)` was given on a sink that no connector serves: one process
    /// cannot keep a fleet-wide rate.
    #[error("a shared `rate` needs its sink shared across processes: connect the sink with `backpressure_redis::connect` (or a `[sinks.NAME.redis]` section and `backpressure_redis::start`) before building the worker, or drop `shared` for a per-process rate")]
    SharedRateNeedsBridge,
    /// The `rate` options break a rule.
    #[error(transparent)]
    Rate(#[from] super::RateError),
    /// `build` was called outside a tokio runtime.
    #[error("a coordinator must be built inside a tokio runtime (call `build` from async code or inside `Runtime::enter`)")]
    NoRuntime,
}
