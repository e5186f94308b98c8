//! [`WorkerCell`]: the static behind a worker's generated `enqueue`.

use std::sync::{Arc, PoisonError, RwLock};

use futures_util::future::BoxFuture;

use super::WorkerEnqueueError;
use crate::{Coordinator, ItemId, Stats};

/// The per-worker static behind the generated `enqueue` / `try_enqueue`: holds the worker's
/// coordinator while a global runtime (`backpressure::start()`) is running.
///
/// It places no bounds on `T`, so that a worker whose item is not `Send` fails to compile with
/// one error on the item type (from the checks) rather than one per generated function.
pub struct WorkerCell<T> {
    name: &'static str,
    current: RwLock<Option<Arc<dyn CellOps<T>>>>,
}

impl<T> std::fmt::Debug for WorkerCell<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WorkerCell")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

/// A coordinator seen through a bound-free interface.
trait CellOps<T>: Send + Sync {
    fn enqueue(&self, item: T) -> BoxFuture<'static, Result<ItemId, WorkerEnqueueError<T>>>;
    fn try_enqueue(&self, item: T) -> Result<ItemId, WorkerEnqueueError<T>>;
    fn coordinator(&self) -> Coordinator<T>;
    fn stats(&self) -> Stats;
    fn shutdown(&self) -> BoxFuture<'static, Vec<T>>;
}

impl<T: Send + 'static> CellOps<T> for Coordinator<T> {
    fn enqueue(&self, item: T) -> BoxFuture<'static, Result<ItemId, WorkerEnqueueError<T>>> {
        let coordinator = self.clone();
        Box::pin(async move {
            coordinator
                .enqueue(item)
                .await
                .map_err(|err| WorkerEnqueueError::Closed(err.into_inner()))
        })
    }

    fn try_enqueue(&self, item: T) -> Result<ItemId, WorkerEnqueueError<T>> {
        Coordinator::try_enqueue(self, item).map_err(|err| {
            if err.is_full() {
                WorkerEnqueueError::Full(err.into_inner())
            } else {
                WorkerEnqueueError::Closed(err.into_inner())
            }
        })
    }

    fn coordinator(&self) -> Coordinator<T> {
        self.clone()
    }

    fn stats(&self) -> Stats {
        Coordinator::stats(self)
    }

    fn shutdown(&self) -> BoxFuture<'static, Vec<T>> {
        let coordinator = self.clone();
        Box::pin(async move { coordinator.shutdown().await })
    }
}

impl<T> WorkerCell<T> {
    /// An empty cell.
    pub const fn new(name: &'static str) -> Self {
        Self {
            name,
            current: RwLock::new(None),
        }
    }

    fn get(&self) -> Option<Arc<dyn CellOps<T>>> {
        self.current
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    fn set(&self, ops: Option<Arc<dyn CellOps<T>>>) {
        *self.current.write().unwrap_or_else(PoisonError::into_inner) = ops;
    }

    /// Connects the generated API to `coordinator`.
    pub(super) fn install(&self, coordinator: Coordinator<T>)
    where
        T: Send + 'static,
    {
        self.set(Some(Arc::new(coordinator)));
    }

    /// Disconnects the generated API: it reports "not running" again.
    pub(super) fn clear(&self) {
        self.set(None);
    }

    /// See the generated `enqueue`.
    pub async fn enqueue(&self, item: T) -> Result<ItemId, WorkerEnqueueError<T>> {
        // Fast path: most enqueues find room at once. It borrows the coordinator under the
        // read lock instead of cloning the `Arc` (two fewer atomic read-modify-writes per
        // item, which the producer pays while contending with the slots for the state lock),
        // and needs no boxed future. Only a full queue clones it, to wait without the lock.
        let (ops, item) = {
            let current = self.current.read().unwrap_or_else(PoisonError::into_inner);
            match &*current {
                Some(ops) => match ops.try_enqueue(item) {
                    Err(WorkerEnqueueError::Full(item)) => (Arc::clone(ops), item),
                    done => return done,
                },
                None => {
                    return Err(WorkerEnqueueError::NotStarted {
                        worker: self.name,
                        item,
                    })
                }
            }
        };
        ops.enqueue(item).await
    }

    /// See the generated `try_enqueue`.
    pub fn try_enqueue(&self, item: T) -> Result<ItemId, WorkerEnqueueError<T>> {
        match self.get() {
            Some(ops) => ops.try_enqueue(item),
            None => Err(WorkerEnqueueError::NotStarted {
                worker: self.name,
                item,
            }),
        }
    }

    /// See the generated `coordinator`.
    pub fn coordinator(&self) -> Option<Coordinator<T>> {
        self.get().map(|ops| ops.coordinator())
    }

    /// See the generated `stats`.
    pub fn stats(&self) -> Option<Stats> {
        self.get().map(|ops| ops.stats())
    }

    /// See the generated `shutdown`.
    pub async fn shutdown(&self) -> Vec<T> {
        match self.get() {
            Some(ops) => ops.shutdown().await,
            None => Vec::new(),
        }
    }
}
