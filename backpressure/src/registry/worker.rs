//! A built worker with its item type erased, and the context its `build` function gets.

use std::any::Any;
use std::future::Future;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use futures_util::future::BoxFuture;

use super::runtime_id::RuntimeId;
use super::{RegistryError, WorkerCell};
use crate::policy::{Policy, PolicyInfo};
use crate::retry::{DeadLetterRecord, Retry};
use crate::{Coordinator, CoordinatorConfig, HandlerOutcome, Sink, Stats, WorkContext};

/// What a registration's `build` function gets: the effective config and the sink.
#[derive(Debug)]
pub struct BuildContext<'a> {
    /// The runtime being built.
    pub(crate) runtime: RuntimeId,
    /// The worker's registered name.
    pub(crate) name: &'a str,
    pub(crate) config: CoordinatorConfig,
    pub(crate) sink: Sink,
    /// The worker's policies: the attribute's with the config file's over them.
    pub(crate) policies: Vec<Policy>,
    /// The worker's retry: the attribute's with the config file's over it.
    pub(crate) retry: Option<Retry>,
}

impl BuildContext<'_> {
    /// Builds the worker's coordinator around `handler`.
    pub fn build<T, F, Fut, R>(
        &self,
        cell: &'static WorkerCell<T>,
        handler: F,
    ) -> Result<BuiltWorker, RegistryError>
    where
        T: Send + 'static,
        F: Fn(T, WorkContext) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = R> + Send + 'static,
        R: HandlerOutcome,
    {
        self.build_with(cell, None, handler)
    }

    /// Builds the coordinator of a worker with `retry(...)`: `clone` is the item type's
    /// (see [`clone_to_retry`](crate::__private::clone_to_retry)), which retrying needs.
    pub fn build_retrying<T, F, Fut, R>(
        &self,
        cell: &'static WorkerCell<T>,
        clone: fn(&T) -> T,
        handler: F,
    ) -> Result<BuiltWorker, RegistryError>
    where
        T: Send + 'static,
        F: Fn(T, WorkContext) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = R> + Send + 'static,
        R: HandlerOutcome,
    {
        self.build_with(cell, Some(clone), handler)
    }

    fn build_with<T, F, Fut, R>(
        &self,
        cell: &'static WorkerCell<T>,
        clone: Option<fn(&T) -> T>,
        handler: F,
    ) -> Result<BuiltWorker, RegistryError>
    where
        T: Send + 'static,
        F: Fn(T, WorkContext) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = R> + Send + 'static,
        R: HandlerOutcome,
    {
        let mut builder = Coordinator::builder()
            .sink(self.sink.clone())
            .name(self.name)
            .config(self.config.clone());
        let retry = clone.and(self.retry.clone());
        if let (Some(retry), Some(clone)) = (&retry, clone) {
            builder = builder.retry_with(retry.clone(), clone);
        }
        let coordinator = (self.policies.iter().cloned())
            .fold(builder, |builder, policy| builder.policy(policy))
            .build(handler)
            .map_err(|source| RegistryError::Build {
                worker: self.name.to_owned(),
                source,
            })?;
        let attached = Arc::new(coordinator.clone());
        cell.attach(self.runtime, &attached);
        Ok(BuiltWorker(Box::new(TypedWorker {
            coordinator,
            _attached: attached,
            cell,
            retry,
            returned: Mutex::new(Vec::new()),
        })))
    }
}

/// A built worker with its item type erased.
pub struct BuiltWorker(Box<dyn ErasedWorker>);

impl BuiltWorker {
    pub(super) fn into_erased(self) -> Box<dyn ErasedWorker> {
        self.0
    }
}

impl std::fmt::Debug for BuiltWorker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BuiltWorker").finish_non_exhaustive()
    }
}

/// What the runtime needs from a worker without knowing its item type.
pub(super) trait ErasedWorker: Send + Sync {
    fn config(&self) -> CoordinatorConfig;
    fn stats(&self) -> Stats;
    fn policies(&self) -> Vec<PolicyInfo>;
    fn set_paused(&self, paused: bool);
    fn install(&self);
    fn uninstall(&self);
    fn drain(&self) -> BoxFuture<'_, ()>;
    /// Shuts down and keeps the unstarted items; returns how many there were.
    fn shutdown(&self) -> BoxFuture<'_, usize>;
    /// Drains for at most `grace`, then shuts down as [`shutdown`](Self::shutdown).
    fn shutdown_after(&self, grace: Duration) -> BoxFuture<'_, usize>;
    /// The retry it was built with.
    fn retry(&self) -> Option<Retry>;
    /// The last [`KEPT_RECORDS`] dead letters kept, oldest first; how many are kept; how
    /// many were evicted.
    fn dead_letters(&self) -> (Vec<DeadLetterRecord>, usize, u64);
    /// Runs the kept dead letters again; how many rejoined the queue.
    fn requeue_dead_letters(&self) -> usize;
    fn as_any(&self) -> &dyn Any;
}

/// How many dead letters' records [`WorkerInfo`](super::WorkerInfo) carries, the last ones.
pub(super) const KEPT_RECORDS: usize = 20;

pub(super) struct TypedWorker<T: 'static> {
    pub(super) coordinator: Coordinator<T>,
    /// What the cell's entry for this runtime points to: the entry lives as long as this.
    _attached: Arc<Coordinator<T>>,
    cell: &'static WorkerCell<T>,
    retry: Option<Retry>,
    pub(super) returned: Mutex<Vec<T>>,
}

impl<T> TypedWorker<T> {
    /// Keeps the items a shutdown handed back; returns how many there were.
    fn keep(&self, items: Vec<T>) -> usize {
        let count = items.len();
        self.returned
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .extend(items);
        count
    }
}

impl<T: Send + 'static> ErasedWorker for TypedWorker<T> {
    fn config(&self) -> CoordinatorConfig {
        self.coordinator.config().clone()
    }

    fn stats(&self) -> Stats {
        self.coordinator.stats()
    }

    fn policies(&self) -> Vec<PolicyInfo> {
        self.coordinator.policies()
    }

    fn set_paused(&self, paused: bool) {
        if paused {
            self.coordinator.pause();
        } else {
            self.coordinator.resume();
        }
    }

    fn install(&self) {
        self.cell.install(self.coordinator.clone());
    }

    fn uninstall(&self) {
        self.cell.clear();
    }

    fn drain(&self) -> BoxFuture<'_, ()> {
        Box::pin(self.coordinator.drain())
    }

    fn shutdown(&self) -> BoxFuture<'_, usize> {
        Box::pin(async move { self.keep(self.coordinator.shutdown().await) })
    }

    fn shutdown_after(&self, grace: Duration) -> BoxFuture<'_, usize> {
        Box::pin(async move { self.keep(self.coordinator.shutdown_after(grace).await) })
    }

    fn retry(&self) -> Option<Retry> {
        self.retry.clone()
    }

    fn dead_letters(&self) -> (Vec<DeadLetterRecord>, usize, u64) {
        let mut records = self.coordinator.dead_letter_records();
        records.drain(..records.len().saturating_sub(KEPT_RECORDS));
        let (kept, evicted) = self.coordinator.dead_letter_counts();
        (records, kept, evicted)
    }

    fn requeue_dead_letters(&self) -> usize {
        self.coordinator.requeue_dead_letters()
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}
