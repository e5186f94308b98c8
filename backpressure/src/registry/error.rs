//! Why the registry could not start, and why a generated `enqueue` could not take an item.

use std::fmt;

use crate::config_file::ConfigError;
use crate::error::BuildError;

/// Why the registry could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RegistryError {
    /// [`start`](crate::start) was called outside a tokio runtime.
    #[error("`backpressure::start()` must be called inside a tokio runtime")]
    NoTokioRuntime,
    /// A global runtime is already running.
    #[error(
        "`backpressure::start()` was already called and its runtime is still running \
         (shut it down first, or use `Runtime::builder().isolated()`)"
    )]
    AlreadyStarted,
    /// Two registered workers have the same name.
    #[error(
        "two workers are named `{name}` (at {first} and {second}): \
         give one of them another `name = \"...\"`"
    )]
    DuplicateWorker {
        /// The shared name.
        name: String,
        /// Where the first one is declared.
        first: String,
        /// Where the second one is declared.
        second: String,
    },
    /// [`RuntimeBuilder::only`](crate::RuntimeBuilder::only) named a worker that is not registered.
    #[error("worker `{name}` is not registered: no `#[backpressure_worker]` has that name")]
    UnknownWorker {
        /// The name.
        name: String,
    },
    /// Workers given to [`RuntimeBuilder::require`](crate::RuntimeBuilder::require) are not
    /// registered in this binary.
    #[error(
        "required workers are not registered: {}; registered: {}. A `#[backpressure_worker]` \
         declared in a library is registered only if the binary links that library: reference \
         it (e.g. `use my_workers as _;`)",
        list(missing),
        if registered.is_empty() { "none".to_owned() } else { list(registered) }
    )]
    MissingWorkers {
        /// The required names that no worker has.
        missing: Vec<String>,
        /// The registered workers' names, sorted.
        registered: Vec<String>,
    },
    /// The config file could not be used.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// A worker with `global_concurrency` is on a sink that nothing shares across
    /// processes: one process cannot keep a fleet-wide limit.
    #[error("worker `{worker}` has `global_concurrency`, but its sink `{sink}` is not shared across processes: give the config file a `[sinks.{sink}.redis]` section and start with `backpressure_redis::start()` (or connect the sink with `backpressure_redis::connect` and pass it with `RuntimeBuilder::sink`), or use `concurrency` for a per-process limit")]
    GlobalConcurrencyNeedsConnector {
        /// The worker.
        worker: String,
        /// Its sink.
        sink: String,
    },
    /// A worker with `rate(..., shared = true)` is on a sink that nothing shares across
    /// processes: one process cannot keep a fleet-wide rate.
    #[error("worker `{worker}` has a shared `rate`, but its sink `{sink}` is not shared across processes: give the config file a `[sinks.{sink}.redis]` section and start with `backpressure_redis::start()` (or connect the sink with `backpressure_redis::connect` and pass it with `RuntimeBuilder::sink`), or drop `shared = true` for a per-process rate")]
    SharedRateNeedsConnector {
        /// The worker.
        worker: String,
        /// Its sink.
        sink: String,
    },
    /// A worker's coordinator could not be built.
    #[error("cannot build worker `{worker}`: {source}")]
    Build {
        /// The worker.
        worker: String,
        /// Why.
        source: BuildError,
    },
}

/// A generated `enqueue` / `try_enqueue` (or `enqueue_in` / `try_enqueue_in`) could not take
/// the item; the item is handed back.
///
/// # Examples
///
/// ```
/// use backpressure::error::WorkerEnqueueError;
///
/// let err = WorkerEnqueueError::NotStarted { worker: "app::send", item: 7 };
/// assert_eq!(
///     err.to_string(),
///     "worker `app::send` is not running: call `backpressure::start()` first (the item is handed back)"
/// );
/// assert_eq!(err.into_inner(), 7);
/// ```
#[non_exhaustive]
pub enum WorkerEnqueueError<T> {
    /// No global runtime is running (not started yet, or shut down).
    NotStarted {
        /// The worker's name.
        worker: &'static str,
        /// The item.
        item: T,
    },
    /// The runtime given to `enqueue_in` / `try_enqueue_in` has no such worker (it was not
    /// selected by [`RuntimeBuilder::only`](crate::RuntimeBuilder::only)).
    NotInRuntime {
        /// The worker's name.
        worker: &'static str,
        /// The item.
        item: T,
    },
    /// The queue is full (`try_enqueue` only).
    Full(T),
    /// The worker's intake is closed (it was drained or shut down).
    Closed(T),
}

impl<T> WorkerEnqueueError<T> {
    /// Takes back the item.
    pub fn into_inner(self) -> T {
        match self {
            WorkerEnqueueError::NotStarted { item, .. }
            | WorkerEnqueueError::NotInRuntime { item, .. }
            | WorkerEnqueueError::Full(item)
            | WorkerEnqueueError::Closed(item) => item,
        }
    }
}

impl<T> fmt::Debug for WorkerEnqueueError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WorkerEnqueueError::NotStarted { worker, .. } => f
                .debug_struct("NotStarted")
                .field("worker", worker)
                .finish_non_exhaustive(),
            WorkerEnqueueError::NotInRuntime { worker, .. } => f
                .debug_struct("NotInRuntime")
                .field("worker", worker)
                .finish_non_exhaustive(),
            WorkerEnqueueError::Full(_) => f.write_str("Full(..)"),
            WorkerEnqueueError::Closed(_) => f.write_str("Closed(..)"),
        }
    }
}

impl<T> fmt::Display for WorkerEnqueueError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WorkerEnqueueError::NotStarted { worker, .. } => write!(
                f,
                "worker `{worker}` is not running: call `backpressure::start()` first \
                 (the item is handed back)"
            ),
            WorkerEnqueueError::NotInRuntime { worker, .. } => write!(
                f,
                "worker `{worker}` is not in this runtime: it was not selected when the runtime \
                 was built (`Runtime::builder().only([...])`) (the item is handed back)"
            ),
            WorkerEnqueueError::Full(_) => {
                f.write_str("the worker's queue is full (the item is handed back)")
            }
            WorkerEnqueueError::Closed(_) => f.write_str(
                "the worker no longer accepts items, its intake is closed (the item is handed back)",
            ),
        }
    }
}

impl<T> std::error::Error for WorkerEnqueueError<T> {}

/// `a`, `b` as "`a`, `b`".
fn list(names: &[String]) -> String {
    let quoted: Vec<String> = names.iter().map(|n| format!("`{n}`")).collect();
    quoted.join(", ")
}
