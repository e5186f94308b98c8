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
mod cell_in;
mod error;
mod global;
mod policies;
mod rate;
mod registration;
mod retry;
mod runtime;
mod runtime_id;
mod worker;

pub use builder::{start, RuntimeBuilder};
pub use cell::WorkerCell;
pub use error::{RegistryError, WorkerEnqueueError};
pub use registration::Registration;
pub use runtime::{Runtime, ShutdownReport, WorkerInfo};
pub use worker::{BuildContext, BuiltWorker};
