//! [`RuntimeId`]: which runtime built a worker.

use std::sync::atomic::{AtomicU64, Ordering};

/// Which [`Runtime`](super::Runtime) a worker was built in: the key under which a worker's cell finds its
/// coordinator for the generated `enqueue_in` (unique for the process's life).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct RuntimeId(u64);

impl RuntimeId {
    /// A fresh id.
    pub(super) fn next() -> Self {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        Self(NEXT.fetch_add(1, Ordering::Relaxed))
    }
}
