//! A built worker with its item type erased, and the context its `build` function gets.

use std::any::Any;
use std::future::Future;
use std::sync::{Mutex, PoisonError};

use futures_util::future::BoxFuture;

use super::{RegistryError, WorkerCell};
use crate::policy::{Policy, PolicyInfo};
use crate::{Coordinator, CoordinatorConfig, HandlerOutcome, Sink, Stats, WorkContext};

/// What a registration's `build` function gets: the effective config and the sink.
#[derive(Debug)]
pub struct BuildContext<'a> {
    /// The worker's registered name.
    pub(crate) name: &'a str,
    pub(crate) config: CoordinatorConfig,
    pub(crate) sink: Sink,
    /// The worker's policies: the attribute's with the config file's over them.
    pub(crate) policies: Vec<Policy>,
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
        let builder = Coordinator::builder()
            .sink(self.sink.clone())
            .name(self.name)
            .config(self.config.clone());
        let coordinator = (self.policies.iter().cloned())
            .fold(builder, |builder, policy| builder.policy(policy))
            .build(handler)
            .map_err(|source| RegistryError::Build {
                worker: self.name.to_owned(),
                source,
            })?;
        Ok(BuiltWorker(Box::new(TypedWorker {
            coordinator,
            cell,
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
    fn as_any(&self) -> &dyn Any;
}

pub(super) struct TypedWorker<T: 'static> {
    pub(super) coordinator: Coordinator<T>,
    cell: &'static WorkerCell<T>,
    pub(super) returned: Mutex<Vec<T>>,
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
        Box::pin(async move {
            let items = self.coordinator.shutdown().await;
            let count = items.len();
            self.returned
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .extend(items);
            count
        })
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}
