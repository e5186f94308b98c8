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

mod builder;
mod cell;
mod error;
mod policies;
mod registration;
mod runtime;
mod worker;

use std::sync::atomic::AtomicBool;

pub use builder::RuntimeBuilder;
pub use cell::WorkerCell;
pub use error::{RegistryError, WorkerEnqueueError};
pub use registration::Registration;
pub use runtime::{Runtime, ShutdownReport, WorkerInfo};
pub use worker::{BuildContext, BuiltWorker};

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
