//! The generated `_in` functions' side of [`WorkerCell`]: the worker in a given [`Runtime`].
//!
//! Apart from `cell.rs` so that the cell need not know the runtime (which knows the workers,
//! which know their cell).

use super::runtime::Runtime;
use super::{WorkerCell, WorkerEnqueueError};
use crate::{Coordinator, ItemId, Stats};

/// The generated `_in` functions: the same as those above, in a given runtime.
impl<T> WorkerCell<T> {
    /// See the generated `enqueue_in`.
    pub async fn enqueue_in(
        &self,
        runtime: &Runtime,
        item: T,
    ) -> Result<ItemId, WorkerEnqueueError<T>> {
        match self.in_runtime(runtime.id()) {
            Some(ops) => ops.enqueue(item).await,
            None => Err(self.not_in(item)),
        }
    }

    /// See the generated `try_enqueue_in`.
    pub fn try_enqueue_in(
        &self,
        runtime: &Runtime,
        item: T,
    ) -> Result<ItemId, WorkerEnqueueError<T>> {
        match self.in_runtime(runtime.id()) {
            Some(ops) => ops.try_enqueue(item),
            None => Err(self.not_in(item)),
        }
    }

    /// See the generated `coordinator_in`.
    pub fn coordinator_in(&self, runtime: &Runtime) -> Option<Coordinator<T>> {
        self.in_runtime(runtime.id()).map(|ops| ops.coordinator())
    }

    /// See the generated `stats_in`.
    pub fn stats_in(&self, runtime: &Runtime) -> Option<Stats> {
        self.in_runtime(runtime.id()).map(|ops| ops.stats())
    }

    /// See the generated `shutdown_in`.
    pub async fn shutdown_in(&self, runtime: &Runtime) -> Vec<T> {
        match self.in_runtime(runtime.id()) {
            Some(ops) => ops.shutdown().await,
            None => Vec::new(),
        }
    }
}
