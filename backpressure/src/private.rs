//! Support for the code that `#[backpressure_worker]` generates. Not a public API: everything
//! here may change in any release. Reached as `::backpressure::__private` (or
//! `<crate>::__private` with the attribute's `crate = "..."` key).
//!
//! This module is exactly what `backpressure-macros/src/expand.rs` names: generated code
//! reaches the runtime through nothing else (`tests/architecture.rs` checks both ways).

use std::future::Future;

use backpressure_pattern::options::policies::{PolicyKind, POLICIES};

use crate::HandlerOutcome;

pub use crate::registry::{
    BuildContext, BuiltWorker, Registration, RegistryError, WorkerCell, WorkerEnqueueError,
};
pub use crate::{Coordinator, ItemId, MaxDefer, Runtime, Stats, WorkContext};
pub use backpressure_pattern::options::policies::PolicySpec;
pub use backpressure_pattern::options::rate::RateSpec;
pub use backpressure_pattern::options::retry::RetrySpec;
pub use backpressure_pattern::options::Values;
pub use inventory;

/// The policy configured as `name` (`"error_rate"`), for a const `PolicySpec`. A name that is
/// not a policy fails the build (const evaluation panics); the macro only writes known names.
pub const fn policy_kind(name: &str) -> PolicyKind {
    let mut i = 0;
    while i < POLICIES.len() {
        if same(POLICIES[i].name().as_bytes(), name.as_bytes()) {
            return POLICIES[i];
        }
        i += 1;
    }
    panic!("not a policy name")
}

/// `a == b`, in a const fn.
const fn same(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let mut i = 0;
    while i < a.len() {
        if a[i] != b[i] {
            return false;
        }
        i += 1;
    }
    true
}

/// Compile-time check: a worker's item must be `Send + 'static`.
pub fn item_must_be_send_and_static<T: Send + 'static>() {}

/// What a worker with `retry(...)` needs of its item type: `Clone`, said in words on the
/// item type when it is missing.
#[diagnostic::on_unimplemented(
    message = "`retry(...)` needs the worker's item type `{Self}` to be `Clone`",
    label = "not `Clone`: each retry runs a copy of the item, kept until its final outcome",
    note = "derive or implement `Clone` for `{Self}` (or take an `Arc<...>` of it), or remove `retry(...)`"
)]
pub trait RetryableItem: Sized {
    /// The item's `clone`.
    fn clone_fn() -> fn(&Self) -> Self;
}

impl<T: Clone> RetryableItem for T {
    fn clone_fn() -> fn(&Self) -> Self {
        T::clone
    }
}

/// The item's `clone`, for [`BuildContext::build_retrying`]; the generated call is spanned
/// on the item type, so a type that is not `Clone` is refused there.
pub fn clone_to_retry<T: RetryableItem>() -> fn(&T) -> T {
    T::clone_fn()
}

/// Compile-time check: a worker returns `()` or `Result<(), E>` with
/// `E: Display + Send + 'static`.
pub fn output_must_be_unit_or_result<F>(_: &F)
where
    F: Future,
    F::Output: HandlerOutcome,
{
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_policy_is_found_by_its_name() {
        for policy in POLICIES {
            assert_eq!(policy_kind(policy.name()), policy);
        }
        const ADAPTIVE: PolicyKind = policy_kind("adaptive");
        assert_eq!(ADAPTIVE, PolicyKind::Adaptive);
    }
}
