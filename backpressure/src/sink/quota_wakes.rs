//! [`QuotaWakes`]: what a worker's fleet-wide quota ([`Permits`](super::permits::Permits),
//! [`RateTokens`](super::rate_tokens::RateTokens)) shares with the connector serving it and
//! with its coordinator: whether the worker still takes work, the connector's wake-up, and
//! how the coordinator's held slots are woken by a grant.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::OnceLock;

use tokio::sync::Notify;

#[derive(Default)]
pub(super) struct QuotaWakes {
    /// The coordinator takes no new work (drained, shut down, or gone).
    closed: AtomicBool,
    /// Wakes the connector serving the quota.
    server: Notify,
    /// Wakes the coordinator's held slots (set by the coordinator).
    slots: OnceLock<Box<dyn Fn() + Send + Sync>>,
}

impl QuotaWakes {
    pub(super) fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }

    /// The worker takes no new work; wakes the connector.
    pub(super) fn close(&self) {
        self.closed.store(true, Ordering::Release);
        self.notify_server();
    }

    pub(super) async fn changed(&self) {
        self.server.notified().await;
    }

    pub(super) fn notify_server(&self) {
        self.server.notify_one();
    }

    pub(super) fn on_grant(&self, wake: Box<dyn Fn() + Send + Sync>) {
        let _ = self.slots.set(wake);
    }

    /// A grant: the coordinator's held slots look again (call with no lock held).
    pub(super) fn wake_slots(&self) {
        if let Some(wake) = self.slots.get() {
            wake();
        }
    }
}
