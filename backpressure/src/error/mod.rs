//! Every error type of the crate, in one place (like tokio's `mpsc::error`).
//!
//! None of them is re-exported at the crate root: the quick start propagates them with `?`
//! into `Box<dyn std::error::Error>` and never names one. Name them here when you match on
//! them:
//!
//! ```
//! use backpressure::error::TryEnqueueError;
//! use backpressure::{Coordinator, WorkContext};
//!
//! # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let coordinator = Coordinator::builder()
//!     .capacity(1)
//!     .build(|_item: u32, _ctx: WorkContext| async {})?;
//! coordinator.pause();
//! coordinator.try_enqueue(1)?;
//! match coordinator.try_enqueue(2) {
//!     Err(TryEnqueueError::Full(item)) => assert_eq!(item, 2), // handed back
//!     other => panic!("expected a full queue, got {other:?}"),
//! }
//! # Ok(()) }
//! ```
//!
//! * Coordinators: [`BuildError`] (an option out of range, a [`RetryError`] or
//!   [`RateError`]), [`EnqueueError`] and
//!   [`TryEnqueueError`] (an item refused and handed back).
//! * Sinks: [`SignalError`] (a bad name, key, pattern or ttl), with the naming rules'
//!   [`NameError`] / [`NameErrorKind`] and [`PatternError`]; [`LevelError`] (a level out of
//!   range); [`Lagged`] (a subscription fell behind).
//! * Policies: [`PolicyError`] (a policy value out of range).
//! * Declared workers: [`RegistryError`] (starting the runtime), [`WorkerEnqueueError`] (a
//!   generated `enqueue`), [`ConfigError`] (the config file).
//!
//! The `tower` feature's `HoldError` stays in `backpressure::tower`, beside the layer whose
//! services return it.
//!
//! The types are defined next to what raises them; this module only gathers them. The ones
//! defined here are the coordinator's (`build.rs`, `enqueue.rs`, `rate.rs`, `retry.rs`) and the sink's (`signal.rs`).

mod build;
mod enqueue;
mod rate;
mod retry;
mod signal;

pub use self::build::BuildError;
pub use self::enqueue::{EnqueueError, StreamClosed, TryEnqueueError};
pub use self::rate::RateError;
pub use self::retry::RetryError;
pub use self::signal::SignalError;
pub use crate::config_file::ConfigError;
pub use crate::policy::error::PolicyError;
pub use crate::registry::{RegistryError, WorkerEnqueueError};
pub use crate::sink::{Lagged, LevelError};
pub use backpressure_pattern::{NameError, NameErrorKind, PatternError};
