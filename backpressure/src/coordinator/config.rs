//! The coordinator's configuration values, and the checks `build` and `set_concurrency` run.

use std::time::Duration;

use backpressure_pattern::options::{
    rules, Problem, Values, CAPACITY, CONCURRENCY, DEAD_LETTERS, DEFAULT_CAPACITY,
    DEFAULT_CHECK_INTERVAL, DEFAULT_CONCURRENCY, DEFAULT_DEAD_LETTERS, DEFAULT_DEFER_ON, TIMEOUT,
};
use serde::{Deserialize, Serialize};

use crate::error::BuildError;

pub use backpressure_pattern::options::MaxDefer;
pub use backpressure_pattern::MAX_CONCURRENCY;

/// Every option of a [`Coordinator`](crate::Coordinator), with the defaults of the .NET original.
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
    /// How long one attempt of an item may run: at the deadline its
    /// [cancellation token](crate::WorkContext::cancellation_token) fires, and a handler
    /// that has not returned after a grace (a tenth of the timeout, at most 1 s) is dropped.
    /// The attempt is `timed_out`, a failure for policies and retries. Default: none.
    #[serde(with = "humantime_serde")]
    pub timeout: Option<Duration>,
    /// How many dead letters a worker with `retry` keeps (when no `on_dead_letter` callback
    /// takes them); beyond it the oldest is dropped, counted and logged. Default 1,000.
    pub dead_letters: usize,
    /// At most this many starts per period (see [`Rate`](crate::limit::Rate)). Default: none.
    pub rate: Option<crate::limit::Rate>,
    /// At most this many items of this worker run at once across every process sharing its
    /// sink through a connector (`backpressure-redis`). Default: none.
    pub global_concurrency: Option<usize>,
}

impl Default for CoordinatorConfig {
    fn default() -> Self {
        Self::from_values(&Values::new())
    }
}

impl CoordinatorConfig {
    /// The values given, the defaults of the .NET original for the rest: the one place where
    /// an option's value becomes its field (the attribute's and the config file's values
    /// arrive here, laid over each other; `sink` is the runtime's, not the coordinator's).
    pub(crate) fn from_values(values: &Values) -> Self {
        let text =
            |given: &Option<std::borrow::Cow<'static, str>>| given.as_deref().map(str::to_owned);
        Self {
            concurrency: values.concurrency.unwrap_or(DEFAULT_CONCURRENCY),
            capacity: values.capacity.unwrap_or(DEFAULT_CAPACITY),
            defer_on: text(&values.defer_on).or_else(|| Some(DEFAULT_DEFER_ON.to_owned())),
            resume_on: text(&values.resume_on),
            cancel_on: text(&values.cancel_on),
            defer_check_interval: values
                .defer_check_interval
                .unwrap_or(DEFAULT_CHECK_INTERVAL),
            max_defer: values.max_defer.unwrap_or_default(),
            timeout: values.timeout,
            dead_letters: values.dead_letters.unwrap_or(DEFAULT_DEAD_LETTERS),
            rate: None,
            global_concurrency: values.global_concurrency,
        }
    }
}

/// Checks a number of slots (the rule is [`rules::count`] of `concurrency`).
pub(super) fn check_concurrency(concurrency: usize) -> Result<(), BuildError> {
    match rules::count(&CONCURRENCY, concurrency) {
        Ok(_) => Ok(()),
        Err(err) => match err.problem() {
            Problem::TooLarge { found } => Err(BuildError::ConcurrencyTooLarge {
                requested: *found,
                max: MAX_CONCURRENCY,
            }),
            _ => Err(BuildError::ZeroConcurrency),
        },
    }
}

/// Checks the numeric options of `config` against their rules; each option has one
/// [`BuildError`] variant, whose words are the rule's.
pub(super) fn validate(config: &CoordinatorConfig) -> Result<(), BuildError> {
    check_concurrency(config.concurrency)?;
    rules::count(&CAPACITY, config.capacity).map_err(|_| BuildError::ZeroCapacity)?;
    rules::interval(config.defer_check_interval).map_err(|_| BuildError::ZeroCheckInterval)?;
    rules::max_defer(config.max_defer).map_err(|_| BuildError::ZeroMaxDefer)?;
    if let Some(timeout) = config.timeout {
        rules::duration(&TIMEOUT, timeout).map_err(|_| BuildError::ZeroTimeout)?;
    }
    rules::count(&DEAD_LETTERS, config.dead_letters).map_err(|_| BuildError::ZeroDeadLetters)?;
    if config.global_concurrency == Some(0) {
        return Err(BuildError::ZeroGlobalConcurrency);
    }
    if let Some(rate) = &config.rate {
        rate.check().map_err(BuildError::Rate)?;
    }
    Ok(())
}
