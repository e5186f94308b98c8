//! The global runtime of [`start`](crate::start): at most one runs at a time.

use std::sync::atomic::{AtomicBool, Ordering};

/// Whether a global runtime is running.
static GLOBAL_STARTED: AtomicBool = AtomicBool::new(false);

/// Marks the global runtime as started; `false` when one already is.
pub(super) fn claim() -> bool {
    GLOBAL_STARTED
        .compare_exchange(false, true, Ordering::AcqRel, Ordering::Acquire)
        .is_ok()
}

/// Marks the global runtime as stopped (shut down, or failed to build), so that
/// [`start`](crate::start) may run again.
pub(super) fn release() {
    GLOBAL_STARTED.store(false, Ordering::Release);
}
