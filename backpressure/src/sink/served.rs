//! [`Served`]: one kind of fleet-wide quota kept on a sink (the workers' pools of it), and
//! whether a connector serves it.

use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};

use tokio::sync::Notify;

use crate::sync::{lock, Mutex};

/// One kind of quota kept on a sink: the workers' pools, whether a connector serves them, and
/// the wake-up of a connector waiting for a new pool.
pub(crate) struct Served<P> {
    pools: Mutex<Vec<P>>,
    served: AtomicBool,
    added: Notify,
}

impl<P> Default for Served<P> {
    fn default() -> Self {
        Self {
            pools: Mutex::new(Vec::new()),
            served: AtomicBool::new(false),
            added: Notify::new(),
        }
    }
}

impl<P: Clone> Served<P> {
    pub(super) fn pools(&self) -> Vec<P> {
        lock(&self.pools).clone()
    }

    /// Keeps a pool. The connector is woken if it waits, and otherwise finds the wake-up
    /// stored for its next wait (it may be between a look at the pools and its wait).
    pub(super) fn add(&self, pool: P) {
        lock(&self.pools).push(pool);
        self.added.notify_waiters();
        self.added.notify_one();
    }

    /// Completes when a pool is added.
    pub(super) async fn added(&self) {
        self.added.notified().await;
    }

    pub(super) fn serve(&self) {
        self.served.store(true, Ordering::Release);
    }

    pub(super) fn is_served(&self) -> bool {
        self.served.load(Ordering::Acquire)
    }
}

impl<P> fmt::Debug for Served<P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Served")
            .field("pools", &lock(&self.pools).len())
            .field("served", &self.served.load(Ordering::Relaxed))
            .finish()
    }
}
