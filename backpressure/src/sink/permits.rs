//! [`Permits`]: a worker's share of a fleet-wide `global_concurrency`, kept by its
//! coordinator and served by a connector (`backpressure-redis`).
//!
//! The coordinator takes a permit for every start and puts it back when the attempt ends;
//! it never does I/O for it. A connector attached to the coordinator's sink **serves** the
//! permits: it holds some of the fleet's permits for this process (leased where every process
//! sees them), [`grant`](Permits::grant)s them here, and takes unused ones back
//! ([`revoke`](Permits::revoke)); it waits for what it must react to (a permit put back, a
//! start held for want of one) with [`changed`](Permits::changed). Granting wakes the
//! coordinator's held slots; nothing polls.

use std::fmt;
use std::sync::Arc;

use super::quota_wakes::QuotaWakes;
use crate::sync::{lock, Mutex};
use serde::Serialize;

/// A worker's permits of its `global_concurrency`, as its process sees them.
#[derive(Clone)]
pub struct Permits {
    inner: Arc<Inner>,
}

struct Inner {
    worker: String,
    limit: usize,
    counts: Mutex<PermitCounts>,
    wakes: QuotaWakes,
}

/// A snapshot of a worker's permits in this process.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct PermitCounts {
    /// The fleet-wide limit (`global_concurrency`).
    pub limit: usize,
    /// Permits this process holds now (granted by the connector).
    pub granted: usize,
    /// Of those, the ones running an item.
    pub in_use: usize,
    /// Whether a start waits for a permit.
    pub wanted: bool,
}

impl Permits {
    /// The permits of `worker`, whose fleet-wide limit is `limit`; none granted yet.
    pub(crate) fn new(worker: &str, limit: usize) -> Self {
        Self {
            inner: Arc::new(Inner {
                worker: worker.to_owned(),
                limit,
                counts: Mutex::new(PermitCounts {
                    limit,
                    ..PermitCounts::default()
                }),
                wakes: QuotaWakes::default(),
            }),
        }
    }

    /// The worker's name (its key in the fleet).
    pub fn worker(&self) -> &str {
        &self.inner.worker
    }

    /// The fleet-wide limit.
    pub fn limit(&self) -> usize {
        self.inner.limit
    }

    /// The counts now.
    pub fn counts(&self) -> PermitCounts {
        *lock(&self.inner.counts)
    }

    /// The connector: `n` more of the fleet's permits are held by this process now. Wakes
    /// the coordinator's slots held for want of one.
    pub fn grant(&self, n: usize) {
        if n == 0 {
            return;
        }
        lock(&self.inner.counts).granted += n;
        self.inner.wakes.wake_slots();
    }

    /// The connector: gives up to `n` permits that no item uses (a lease lost, a surplus to
    /// hand back to the fleet); returns how many it gave up.
    pub fn revoke(&self, n: usize) -> usize {
        let mut counts = lock(&self.inner.counts);
        let unused = counts.granted - counts.in_use;
        let given = n.min(unused);
        counts.granted -= given;
        given
    }

    /// The connector: all permits are lost (the fleet's record of them is gone): running
    /// items keep theirs until they end, no new start gets one until granted again. Returns
    /// how many were unused.
    pub fn revoke_all(&self) -> usize {
        self.revoke(usize::MAX)
    }

    /// Whether the worker takes no new work any more (drained, shut down, or gone): the
    /// connector keeps none of its permits unused, and once none is in use it may forget it.
    pub fn is_closed(&self) -> bool {
        self.inner.wakes.is_closed()
    }

    /// The coordinator: it takes no new work; wakes the connector.
    pub(crate) fn close(&self) {
        self.inner.wakes.close();
    }

    /// The connector waits here for a change it must react to: a permit put back, a start
    /// held for want of one, or the worker closed.
    pub async fn changed(&self) {
        self.inner.wakes.changed().await;
    }

    /// The coordinator: how its held slots are woken when permits are granted.
    pub(crate) fn on_grant(&self, wake: Box<dyn Fn() + Send + Sync>) {
        self.inner.wakes.on_grant(wake);
    }

    /// The coordinator: takes a permit for a start, or marks one wanted (the caller wakes
    /// the connector after its own lock is released: [`notify_server`](Self::notify_server)).
    pub(crate) fn try_take(&self) -> Result<(), ()> {
        let mut counts = lock(&self.inner.counts);
        if counts.in_use < counts.granted {
            counts.in_use += 1;
            counts.wanted = false;
            Ok(())
        } else {
            counts.wanted = true;
            Err(())
        }
    }

    /// The coordinator: an attempt that held a permit ended.
    pub(crate) fn put_back(&self) {
        let mut counts = lock(&self.inner.counts);
        counts.in_use = counts.in_use.saturating_sub(1);
    }

    /// Tells the connector that something changed (after the caller's locks are released).
    pub(crate) fn notify_server(&self) {
        self.inner.wakes.notify_server();
    }
}

impl fmt::Debug for Permits {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Permits")
            .field("worker", &self.inner.worker)
            .field("counts", &self.counts())
            .finish()
    }
}
