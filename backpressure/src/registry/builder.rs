//! [`RuntimeBuilder`]: which workers, which config file, which sinks.

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;
use std::sync::atomic::AtomicBool;

use super::registration::{registrations, Registration};
use super::runtime::{Runtime, Worker};
use super::runtime_id::RuntimeId;
use super::worker::BuildContext;
use super::{global, RegistryError};
use super::{policies, rate, retry};
use crate::config_file::{ConfigFile, SinkSection, CONFIG_ENV_VAR};
use crate::{CoordinatorConfig, Sink};

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
    RuntimeBuilder::default().start()
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
    /// Sink sections a connector crate takes care of.
    handled: Vec<&'static str>,
    /// Workers that must be registered (see [`require`](Self::require)).
    required: Vec<String>,
}

impl Default for RuntimeBuilder {
    fn default() -> Self {
        Self {
            config: ConfigSource::Env,
            only: None,
            isolated: false,
            sinks: BTreeMap::new(),
            handled: Vec::new(),
            required: Vec::new(),
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

// Beside what it returns, so that `runtime.rs` need not know the builder.
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
}

impl RuntimeBuilder {
    /// Applies the overrides of this TOML file (see [the format](crate#config-files)). Takes
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

    /// Fails [`start`](Self::start) with [`RegistryError::MissingWorkers`] unless every one
    /// of these workers is registered in this binary. A worker declared in a library is
    /// registered only if the binary links that library (the linker drops a crate nothing
    /// references, and its `#[backpressure_worker]`s with it): requiring them turns a silent
    /// empty start into an error that says so.
    ///
    /// # Examples
    ///
    /// ```
    /// use backpressure::error::RegistryError;
    ///
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// let started = backpressure::Runtime::builder().isolated().require(["mail::send"]).start();
    /// let Err(RegistryError::MissingWorkers { missing, .. }) = started else {
    ///     panic!("no worker `mail::send` is declared in this doctest");
    /// };
    /// assert_eq!(missing, ["mail::send"]);
    /// # }
    /// ```
    pub fn require<I, S>(mut self, names: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.required.extend(names.into_iter().map(Into::into));
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

    /// Declares that the caller connects the config file's `[sinks."name".section]` tables
    /// of this kind (a connector crate such as `backpressure-redis` calls it); without it,
    /// such a section is an error that names the crate to use.
    pub fn handles(mut self, section: &'static str) -> Self {
        self.handled.push(section);
        self
    }

    /// The config file's `[sinks."name".section]` tables of kind `section` (`"redis"`), for a
    /// connector crate to read.
    ///
    /// # Errors
    ///
    /// As [`start`](Self::start) for a config file that cannot be read or is invalid.
    pub fn sink_sections(&self, section: &str) -> Result<Vec<SinkSection>, RegistryError> {
        Ok(self
            .load_config()?
            .sinks
            .into_iter()
            .filter(|s| s.section() == section)
            .collect())
    }

    /// Whether this builder starts an isolated runtime (see [`isolated`](Self::isolated)).
    pub fn is_isolated(&self) -> bool {
        self.isolated
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
        check_required(&self.required, &all)?;
        if all.is_empty() && self.only.is_none() {
            warn_no_workers();
        }
        let selected = self.select(&all)?;
        check_duplicates(&selected)?;
        let config = self.load_config()?;
        config.check_workers(all.iter().map(|r| r.name))?;
        config.check_sinks(&self.handled)?;

        let global = !self.isolated;
        if global && !global::claim() {
            return Err(RegistryError::AlreadyStarted);
        }
        let id = RuntimeId::next();
        let connected = Connected {
            handled: &self.handled,
            sections: &config.sinks,
        };
        let built = build_all(id, &selected, &config, self.sinks, self.isolated, connected);
        let (workers, sinks) = match built {
            Ok(built) => built,
            Err(err) => {
                if global {
                    global::release();
                }
                return Err(err);
            }
        };
        if global {
            for worker in &workers {
                worker.erased.install();
            }
        }
        Ok(Runtime {
            id,
            workers,
            sinks,
            global,
            released: AtomicBool::new(false),
        })
    }

    /// The registrations this runtime builds: all of them, or those named by [`only`](Self::only).
    fn select(
        &self,
        all: &[&'static Registration],
    ) -> Result<Vec<&'static Registration>, RegistryError> {
        let Some(names) = &self.only else {
            return Ok(all.to_vec());
        };
        if let Some(missing) = names.iter().find(|n| !all.iter().any(|r| r.name == **n)) {
            return Err(RegistryError::UnknownWorker {
                name: missing.clone(),
            });
        }
        Ok(all
            .iter()
            .copied()
            .filter(|r| names.iter().any(|n| n == r.name))
            .collect())
    }

    /// The config file: the one given, else `BACKPRESSURE_CONFIG` (global runtimes only).
    fn load_config(&self) -> Result<ConfigFile, RegistryError> {
        Ok(match &self.config {
            ConfigSource::Env if self.isolated => ConfigFile::default(),
            ConfigSource::Env => match std::env::var_os(CONFIG_ENV_VAR) {
                Some(path) if !path.is_empty() => ConfigFile::load(PathBuf::from(path).as_path())?,
                _ => ConfigFile::default(),
            },
            ConfigSource::File(path) => ConfigFile::load(path)?,
            ConfigSource::Text { label, text } => ConfigFile::parse(label, text)?,
        })
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

/// Which sinks a connector will connect once the workers are built: those whose config
/// section is of a kind the caller [handles](RuntimeBuilder::handles).
#[derive(Clone, Copy)]
struct Connected<'a> {
    handled: &'a [&'static str],
    sections: &'a [crate::config_file::SinkSection],
}

impl Connected<'_> {
    /// A worker with `global_concurrency` or a shared `rate` needs its sink served: already
    /// (a connected sink passed in), or by the connector about to connect it (promised here,
    /// so it builds).
    fn check(
        &self,
        worker: &str,
        config: &CoordinatorConfig,
        sink_name: &str,
        sink: &Sink,
    ) -> Result<(), RegistryError> {
        let permits = config.global_concurrency.is_some() && !sink.serves_permits();
        let rate = config.rate.is_some_and(|r| r.shared) && !sink.serves_rates();
        if !permits && !rate {
            return Ok(());
        }
        let handled = self
            .sections
            .iter()
            .any(|s| s.sink() == sink_name && self.handled.contains(&s.section()));
        if !handled {
            let (worker, sink) = (worker.to_owned(), sink_name.to_owned());
            return Err(if permits {
                RegistryError::GlobalConcurrencyNeedsConnector { worker, sink }
            } else {
                RegistryError::SharedRateNeedsConnector { worker, sink }
            });
        }
        sink.promise_quotas();
        Ok(())
    }
}

fn build_all(
    runtime: RuntimeId,
    selected: &[&'static Registration],
    config: &ConfigFile,
    mut sinks: BTreeMap<String, Sink>,
    isolated: bool,
    connected: Connected<'_>,
) -> Result<Built, RegistryError> {
    let mut workers = Vec::with_capacity(selected.len());
    for &registration in selected {
        let overrides = config.workers.get(registration.name);
        let (values, sink_name) = registration.values(overrides);
        let mut effective = CoordinatorConfig::from_values(&values);
        effective.rate = rate::build(registration, overrides, &config.file)?;
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
        connected.check(registration.name, &effective, &sink_name, &sink)?;
        let defer_on = effective.defer_on.as_deref();
        let policies = policies::build(registration, overrides, &config.file, defer_on)?;
        let retry = retry::build(registration, overrides, &config.file)?;
        let context = BuildContext {
            runtime,
            name: registration.name,
            config: effective,
            sink,
            policies,
            retry,
        };
        let erased = (registration.build)(&context)?.into_erased();
        workers.push(Worker {
            registration,
            sink: sink_name,
            erased,
        });
    }
    workers.sort_by(|a, b| a.registration.name.cmp(b.registration.name));
    Ok((workers, sinks))
}

/// Every `required` worker is registered, or the error naming those that are not.
fn check_required(required: &[String], all: &[&'static Registration]) -> Result<(), RegistryError> {
    let missing: Vec<String> = required
        .iter()
        .filter(|name| !all.iter().any(|r| r.name == name.as_str()))
        .cloned()
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    let mut registered: Vec<String> = all.iter().map(|r| r.name.to_owned()).collect();
    registered.sort();
    Err(RegistryError::MissingWorkers {
        missing,
        registered,
    })
}

/// Nothing is registered: most often a binary that does not link the library declaring its
/// workers.
fn warn_no_workers() {
    tracing::warn!(
        "backpressure started with no registered worker: a `#[backpressure_worker]` declared \
         in a library is registered only if this binary links that library (reference it, \
         e.g. `use my_workers as _;`); `RuntimeBuilder::require` makes this an error"
    );
}
