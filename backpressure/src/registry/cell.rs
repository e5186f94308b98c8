//! [`WorkerCell`]: the static behind a worker's generated `enqueue` and `enqueue_in`.

use std::sync::{Arc, PoisonError, RwLock, Weak};

use futures_util::future::BoxFuture;

use super::runtime_id::RuntimeId;
use super::WorkerEnqueueError;
use crate::{Coordinator, ItemId, Stats};

/// The per-worker static behind the generated functions: holds the worker's coordinator while
/// a global runtime (`backpressure::start()`) is running (`enqueue`, `try_enqueue`, ...), and
/// a weak link to its coordinator in every runtime that built it (`enqueue_in`, ...).
///
/// It places no bounds on `T`, so that a worker whose item is not `Send` fails to compile with
/// one error on the item type (from the checks) rather than one per generated function: the
/// `_in` functions find their coordinator here by the runtime's id, not by a typed look-up in
/// the runtime (which would need `T: Send + 'static`).
pub struct WorkerCell<T> {
    name: &'static str,
    current: RwLock<Option<Arc<dyn CellOps<T>>>>,
    /// One entry per runtime that built this worker, alive while that runtime's worker is
    /// (it holds the strong side); dead entries are pruned when a runtime attaches.
    runtimes: RwLock<Vec<RuntimeLink<T>>>,
}

/// A runtime's weak link to this worker's coordinator in it.
type RuntimeLink<T> = (RuntimeId, Weak<dyn CellOps<T>>);

impl<T> std::fmt::Debug for WorkerCell<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WorkerCell")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

/// A coordinator seen through a bound-free interface.
pub(super) trait CellOps<T>: Send + Sync {
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
            runtimes: RwLock::new(Vec::new()),
        }
    }

    /// Links `runtime` to `coordinator`, for as long as the caller keeps it.
    pub(super) fn attach(&self, runtime: RuntimeId, coordinator: &Arc<Coordinator<T>>)
    where
        T: Send + 'static,
    {
        let weak: Weak<Coordinator<T>> = Arc::downgrade(coordinator);
        let weak: Weak<dyn CellOps<T>> = weak;
        let mut runtimes = self
            .runtimes
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        runtimes.retain(|(_, link)| link.strong_count() > 0);
        runtimes.push((runtime, weak));
    }

    /// This worker's coordinator in runtime `id`, if that runtime built it.
    pub(super) fn in_runtime(&self, id: RuntimeId) -> Option<Arc<dyn CellOps<T>>> {
        let runtimes = self.runtimes.read().unwrap_or_else(PoisonError::into_inner);
        runtimes
            .iter()
            .find(|(of, _)| *of == id)
            .and_then(|(_, link)| link.upgrade())
    }

    pub(super) fn not_in(&self, item: T) -> WorkerEnqueueError<T> {
        WorkerEnqueueError::NotInRuntime {
            worker: self.name,
            item,
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
