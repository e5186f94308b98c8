//! The worker registry: every `#[backpressure_worker]` registers itself through `inventory`,
//! and [`start`] builds them all.
//!
//! [`start`] (inside a tokio runtime) discovers every registered worker, applies the overrides
//! of an optional config file (see [`RuntimeBuilder::config_file`] and
//! [`CONFIG_ENV_VAR`](crate::CONFIG_ENV_VAR)), builds each worker's
//! [`Coordinator`] on its named sink ([`sink`](crate::sink)) and connects the generated
//! `enqueue` functions to it. The returned [`Runtime`] lists the workers, drains them and shuts
//! them down.
//!
//! # Isolation for tests
//!
//! [`start`] is process-wide: there is one global runtime at a time, and its workers use the
//! process-wide sinks. Tests that run in parallel should instead build an *isolated* runtime
//! with [`RuntimeBuilder::only`] (or [`RuntimeBuilder::isolated`]): it builds its own
//! coordinators on its own fresh sinks ([`Runtime::sink`]), does not touch the global sinks or
//! the generated `enqueue` functions, and ignores `BACKPRESSURE_CONFIG`. Reach its workers
//! through [`Runtime::coordinator`].
//!
//! Iteration order of `inventory` is unspecified; [`Runtime::workers`] sorts by name.

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::PoisonError;

use serde::Serialize;

use crate::__private::{registrations, BuildContext, BuiltWorker, Registration, TypedWorker};
use crate::config_file::{ConfigError, ConfigFile, CONFIG_ENV_VAR};
use crate::{BuildError, Coordinator, CoordinatorConfig, Sink, Stats};

/// The sink a worker uses when its attribute names none.
pub(crate) const DEFAULT_SINK: &str = "default";

/// Whether a global runtime is running.
static GLOBAL_STARTED: AtomicBool = AtomicBool::new(false);

/// Starts every registered worker: the global runtime.
///
/// Equivalent to `Runtime::builder().start()`; reads the config file named by the
/// `BACKPRESSURE_CONFIG` environment variable, if it is set.
///
/// # Errors
///
/// [`RegistryError`] when called outside a tokio runtime, when a global runtime is already
/// running, when two workers share a name, when the config file is unusable, or when a
/// worker's coordinator cannot be built.
///
/// # Examples
///
/// ```no_run
/// use backpressure::backpressure_worker;
///
/// #[backpressure_worker(sink = "main")]
/// async fn send_email(to: String) {
///     println!("sending to {to}");
/// }
///
/// # #[tokio::main] async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let runtime = backpressure::start()?;
/// send_email::enqueue("ada@example.com".to_owned()).await?;
/// runtime.drain_all().await;
/// # Ok(()) }
/// ```
pub fn start() -> Result<Runtime, RegistryError> {
    Runtime::builder().start()
}

/// Why the registry could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RegistryError {
    /// [`start`] was called outside a tokio runtime.
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
    /// [`RuntimeBuilder::only`] named a worker that is not registered.
    #[error("worker `{name}` is not registered: no `#[backpressure_worker]` has that name")]
    UnknownWorker {
        /// The name.
        name: String,
    },
    /// The config file could not be used.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// A worker's coordinator could not be built.
    #[error("cannot build worker `{worker}`: {source}")]
    Build {
        /// The worker.
        worker: String,
        /// Why.
        source: BuildError,
    },
}

/// A generated `enqueue` / `try_enqueue` could not take the item; the item is handed back.
///
/// # Examples
///
/// ```
/// use backpressure::WorkerEnqueueError;
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

/// One running worker, as listed by [`Runtime::workers`]. Serialisable, to dump it.
#[derive(Debug, Clone, Serialize)]
#[non_exhaustive]
pub struct WorkerInfo {
    /// The registered name.
    pub name: String,
    /// The name of the sink it watches.
    pub sink: String,
    /// Where its attribute is written (`file:line`).
    pub location: String,
    /// Its effective configuration (attribute, then config file, over the defaults).
    pub config: CoordinatorConfig,
    /// Its counters now.
    pub stats: Stats,
}

/// What [`Runtime::shutdown`] handed back: the number of unstarted items per worker.
///
/// The items themselves are kept by the runtime; take them with [`Runtime::take_returned`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ShutdownReport {
    /// Worker name → number of items that never started.
    pub returned: BTreeMap<String, usize>,
}

impl ShutdownReport {
    /// Items handed back by all workers together.
    pub fn total(&self) -> usize {
        self.returned.values().sum()
    }
}

struct Worker {
    registration: &'static Registration,
    sink: String,
    built: BuiltWorker,
}

/// The running workers. Returned by [`start`] and [`RuntimeBuilder::start`].
///
/// Dropping the handle does not stop the workers; call [`Runtime::shutdown`] (or
/// [`Runtime::drain_all`]).
pub struct Runtime {
    workers: Vec<Worker>,
    sinks: BTreeMap<String, Sink>,
    global: bool,
    released: AtomicBool,
}

impl fmt::Debug for Runtime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Runtime")
            .field(
                "workers",
                &self
                    .workers
                    .iter()
                    .map(|w| w.registration.name)
                    .collect::<Vec<_>>(),
            )
            .field("global", &self.global)
            .finish_non_exhaustive()
    }
}

impl Runtime {
    /// A builder, to choose a config file, restrict or isolate the runtime.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// // No worker is registered in this doctest: an isolated runtime with none of them.
    /// let runtime = backpressure::Runtime::builder().only::<_, &str>([]).start()?;
    /// assert!(runtime.workers().is_empty());
    /// # Ok(()) }
    /// ```
    pub fn builder() -> RuntimeBuilder {
        RuntimeBuilder::default()
    }

    /// Every worker with its config and stats, sorted by name.
    pub fn workers(&self) -> Vec<WorkerInfo> {
        let mut infos: Vec<_> = self.workers.iter().map(Self::info).collect();
        infos.sort_by(|a, b| a.name.cmp(&b.name));
        infos
    }

    /// One worker's config and stats.
    pub fn worker(&self, name: &str) -> Option<WorkerInfo> {
        self.find(name).map(Self::info)
    }

    fn info(worker: &Worker) -> WorkerInfo {
        WorkerInfo {
            name: worker.registration.name.to_owned(),
            sink: worker.sink.clone(),
            location: worker.registration.location(),
            config: worker.built.0.config(),
            stats: worker.built.0.stats(),
        }
    }

    fn find(&self, name: &str) -> Option<&Worker> {
        self.workers.iter().find(|w| w.registration.name == name)
    }

    /// A worker's coordinator, typed by its item. `None` when there is no worker of that name
    /// or its item type is not `T`.
    ///
    /// This is how tests reach the workers of an isolated runtime.
    pub fn coordinator<T: Send + 'static>(&self, name: &str) -> Option<Coordinator<T>> {
        let worker = self.find(name)?;
        worker
            .built
            .0
            .as_any()
            .downcast_ref::<TypedWorker<T>>()
            .map(|typed| typed.coordinator.clone())
    }

    /// The sink that this runtime's workers of sink name `name` watch: the one given to
    /// [`RuntimeBuilder::sink`] for that name if any, else [`backpressure::sink(name)`](crate::sink)
    /// for the global runtime and a fresh sink of its own for an isolated one.
    pub fn sink(&self, name: &str) -> Option<Sink> {
        self.sinks.get(name).cloned()
    }

    /// Whether this is the global runtime of [`start`].
    pub fn is_global(&self) -> bool {
        self.global
    }

    /// Closes every worker's intake and waits until everything queued has run.
    pub async fn drain_all(&self) {
        futures_util::future::join_all(self.workers.iter().map(|w| w.built.0.drain())).await;
    }

    /// Shuts every worker down: running handlers are cancelled through their token, and the
    /// items that never started are kept (see [`Runtime::take_returned`]). Afterwards the
    /// generated `enqueue` functions report "not running", and [`start`] may be called again.
    pub async fn shutdown(&self) -> ShutdownReport {
        let counts =
            futures_util::future::join_all(self.workers.iter().map(|w| w.built.0.shutdown())).await;
        self.release();
        ShutdownReport {
            returned: self
                .workers
                .iter()
                .zip(counts)
                .map(|(w, n)| (w.registration.name.to_owned(), n))
                .collect(),
        }
    }

    /// Takes the items that [`Runtime::shutdown`] handed back for worker `name` (empty when the
    /// worker does not exist, its item type is not `T`, or they were already taken).
    pub fn take_returned<T: Send + 'static>(&self, name: &str) -> Vec<T> {
        self.find(name)
            .and_then(|w| w.built.0.as_any().downcast_ref::<TypedWorker<T>>())
            .map(|typed| {
                std::mem::take(
                    &mut *typed
                        .returned
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner),
                )
            })
            .unwrap_or_default()
    }

    fn release(&self) {
        if self.global && !self.released.swap(true, Ordering::AcqRel) {
            for worker in &self.workers {
                worker.built.0.uninstall();
            }
            GLOBAL_STARTED.store(false, Ordering::Release);
        }
    }
}

enum ConfigSource {
    /// `BACKPRESSURE_CONFIG`, if set (global runtimes only).
    Env,
    File(PathBuf),
    Text {
        label: String,
        text: String,
    },
}

/// Builds a [`Runtime`]: the config file, which workers, which sinks.
///
/// # Examples
///
/// ```no_run
/// # #[tokio::main] async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let runtime = backpressure::Runtime::builder()
///     .config_file("backpressure.toml")
///     .start()?;
/// for worker in runtime.workers() {
///     println!("{} on sink {}: concurrency {}", worker.name, worker.sink, worker.config.concurrency);
/// }
/// # Ok(()) }
/// ```
#[must_use]
pub struct RuntimeBuilder {
    config: ConfigSource,
    only: Option<Vec<String>>,
    isolated: bool,
    sinks: BTreeMap<String, Sink>,
}

impl Default for RuntimeBuilder {
    fn default() -> Self {
        Self {
            config: ConfigSource::Env,
            only: None,
            isolated: false,
            sinks: BTreeMap::new(),
        }
    }
}

impl fmt::Debug for RuntimeBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RuntimeBuilder")
            .field("only", &self.only)
            .field("isolated", &self.isolated)
            .finish_non_exhaustive()
    }
}

impl RuntimeBuilder {
    /// Applies the overrides of this TOML file (see [the format](crate::config_file)). Takes
    /// precedence over `BACKPRESSURE_CONFIG`.
    pub fn config_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.config = ConfigSource::File(path.into());
        self
    }

    /// Applies the overrides of this TOML text; `label` names it in errors. Handy in tests and
    /// for configs embedded with `include_str!`.
    pub fn config_toml(mut self, label: impl Into<String>, text: impl Into<String>) -> Self {
        self.config = ConfigSource::Text {
            label: label.into(),
            text: text.into(),
        };
        self
    }

    /// Builds only the workers with these names, as an [isolated](Self::isolated) runtime.
    /// Naming a worker that is not registered is an error at [`start`](Self::start).
    pub fn only<I, S>(mut self, names: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.only = Some(names.into_iter().map(Into::into).collect());
        self.isolated = true;
        self
    }

    /// Makes the runtime independent of the process: its workers get fresh sinks (unless set
    /// with [`sink`](Self::sink)), the generated `enqueue` functions are not connected to it,
    /// `BACKPRESSURE_CONFIG` is ignored, and any number of isolated runtimes may run at once.
    pub fn isolated(mut self) -> Self {
        self.isolated = true;
        self
    }

    /// Uses `sink` for the workers whose sink name is `name`, instead of
    /// [`backpressure::sink(name)`](crate::sink) (or a fresh sink, when isolated).
    pub fn sink(mut self, name: impl Into<String>, sink: Sink) -> Self {
        self.sinks.insert(name.into(), sink);
        self
    }

    /// Builds and starts the workers. Must be called inside a tokio runtime.
    ///
    /// # Errors
    ///
    /// See [`start`](crate::start).
    pub fn start(self) -> Result<Runtime, RegistryError> {
        if tokio::runtime::Handle::try_current().is_err() {
            return Err(RegistryError::NoTokioRuntime);
        }
        let all: Vec<&'static Registration> = registrations().collect();
        let selected: Vec<&'static Registration> = match &self.only {
            None => all.clone(),
            Some(names) => {
                if let Some(missing) = names.iter().find(|n| !all.iter().any(|r| r.name == **n)) {
                    return Err(RegistryError::UnknownWorker {
                        name: missing.clone(),
                    });
                }
                all.iter()
                    .copied()
                    .filter(|r| names.iter().any(|n| n == r.name))
                    .collect()
            }
        };
        check_duplicates(&selected)?;

        let config = match self.config {
            ConfigSource::Env if self.isolated => ConfigFile::default(),
            ConfigSource::Env => match std::env::var_os(CONFIG_ENV_VAR) {
                Some(path) if !path.is_empty() => ConfigFile::load(PathBuf::from(path).as_path())?,
                _ => ConfigFile::default(),
            },
            ConfigSource::File(path) => ConfigFile::load(&path)?,
            ConfigSource::Text { label, text } => ConfigFile::parse(&label, &text)?,
        };
        config.check_workers(all.iter().map(|r| r.name))?;

        let global = !self.isolated;
        if global
            && GLOBAL_STARTED
                .compare_exchange(false, true, Ordering::AcqRel, Ordering::Acquire)
                .is_err()
        {
            return Err(RegistryError::AlreadyStarted);
        }
        match build_all(&selected, &config, self.sinks, self.isolated) {
            Ok((workers, sinks)) => {
                if global {
                    for worker in &workers {
                        worker.built.0.install();
                    }
                }
                Ok(Runtime {
                    workers,
                    sinks,
                    global,
                    released: AtomicBool::new(false),
                })
            }
            Err(err) => {
                if global {
                    GLOBAL_STARTED.store(false, Ordering::Release);
                }
                Err(err)
            }
        }
    }
}

fn check_duplicates(selected: &[&'static Registration]) -> Result<(), RegistryError> {
    let mut seen: BTreeMap<&str, &Registration> = BTreeMap::new();
    for registration in selected {
        if let Some(first) = seen.insert(registration.name, registration) {
            let (mut first, mut second) = (first.location(), registration.location());
            // inventory's order is unspecified: report the two places in a stable order.
            if second < first {
                std::mem::swap(&mut first, &mut second);
            }
            return Err(RegistryError::DuplicateWorker {
                name: registration.name.to_owned(),
                first,
                second,
            });
        }
    }
    Ok(())
}

type Built = (Vec<Worker>, BTreeMap<String, Sink>);

fn build_all(
    selected: &[&'static Registration],
    config: &ConfigFile,
    mut sinks: BTreeMap<String, Sink>,
    isolated: bool,
) -> Result<Built, RegistryError> {
    let mut workers = Vec::with_capacity(selected.len());
    for &registration in selected {
        let overrides = config.workers.get(registration.name);
        let mut effective = registration.config();
        let mut sink_name = registration.sink_name().to_owned();
        if let Some(overrides) = overrides {
            overrides.apply(&mut effective);
            if let Some(name) = &overrides.sink {
                sink_name.clone_from(name);
            }
        }
        let sink = sinks
            .entry(sink_name.clone())
            .or_insert_with(|| {
                if isolated {
                    Sink::new()
                } else {
                    crate::sink(&sink_name)
                }
            })
            .clone();
        let context = BuildContext {
            registration,
            config: effective,
            sink,
        };
        let built = (registration.build)(&context)?;
        workers.push(Worker {
            registration,
            sink: sink_name,
            built,
        });
    }
    workers.sort_by(|a, b| a.registration.name.cmp(b.registration.name));
    Ok((workers, sinks))
}
