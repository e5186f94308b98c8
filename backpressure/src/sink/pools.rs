//! The sink's side of `global_concurrency`: the workers' [`Permits`] kept on it, and whether
//! a connector serves them (see [`permits`](super::permits)).

use super::permits::Permits;
use crate::sync::lock;
use crate::Sink;

impl Sink {
    /// Every worker's [`Permits`] kept on this sink (workers with `global_concurrency`).
    pub fn permit_pools(&self) -> Vec<Permits> {
        lock(&self.shared.permits.pools).clone()
    }

    /// Completes when a worker adds its permits to this sink (for a connector serving them).
    pub async fn permit_pools_changed(&self) {
        self.shared.permits.added.notified().await;
    }

    /// A connector says it serves this sink's permits: workers with `global_concurrency`
    /// may be built on it.
    pub fn serve_permits(&self) {
        let served = &self.shared.permits.served;
        served.store(true, std::sync::atomic::Ordering::Release);
    }

    /// The registry: a connector that declared it handles this sink's section
    /// (`RuntimeBuilder::handles`) connects it right after the workers are built, so
    /// workers with `global_concurrency` may be built on it first.
    pub(crate) fn promise_permits(&self) {
        self.serve_permits();
    }

    /// Whether a connector serves this sink's permits.
    pub fn serves_permits(&self) -> bool {
        let served = &self.shared.permits.served;
        served.load(std::sync::atomic::Ordering::Acquire)
    }

    /// The coordinator keeps its permits here. The connector is woken if it waits, and
    /// otherwise finds the wake-up stored for its next wait (it may be between a look at
    /// the pools and its wait).
    pub(crate) fn add_permits(&self, permits: Permits) {
        lock(&self.shared.permits.pools).push(permits);
        self.shared.permits.added.notify_waiters();
        self.shared.permits.added.notify_one();
    }
}
