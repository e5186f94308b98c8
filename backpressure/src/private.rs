//! Support for the code that `#[backpressure_worker]` generates. Not a public API: everything
//! here may change in any release. Reached as `::backpressure::__private`.

use std::future::Future;

use crate::HandlerOutcome;

pub use crate::registry::{BuildContext, BuiltWorker, Registration, WorkerCell};
pub use backpressure_pattern::options::policies::{PolicyKind, PolicySpec};
pub use inventory;

/// Compile-time check: a worker's item must be `Send + 'static`.
pub fn item_must_be_send_and_static<T: Send + 'static>() {}

/// Compile-time check: a worker returns `()` or `Result<(), E>` with `E: Display`.
pub fn output_must_be_unit_or_result<F>(_: &F)
where
    F: Future,
    F::Output: HandlerOutcome,
{
}
