//! Support for the code that `#[backpressure_worker]` generates. Not a public API: everything
//! here may change in any release. Reached as `::backpressure::__private`.

use std::any::Any;
use std::future::Future;
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::Duration;

use futures_util::future::BoxFuture;

use crate::config_file::Overrides;
use crate::registry::{RegistryError, WorkerEnqueueError};
use crate::{Coordinator, CoordinatorConfig, HandlerOutcome, MaxDefer, Sink, Stats, WorkContext};

pub use inventory;

/// One `#[backpressure_worker]`, as submitted to `inventory`. Const-constructible; `None`
/// means "the runtime's default". Values were validated at compile time.
#[derive(Debug)]
pub struct Registration {
    /// The worker's name (default: module path + function name).
    pub name: &'static str,
    /// The sink name; `None` is `"default"`.
    pub sink: Option<&'static str>,
    /// Concurrent slots.
    pub concurrency: Option<usize>,
    /// Queue capacity.
    pub capacity: Option<usize>,
    /// Defer pattern (a comma-separated list).
    pub defer_on: Option<&'static str>,
    /// Resume pattern.
    pub resume_on: Option<&'static str>,
    /// Cancel pattern.
    pub cancel_on: Option<&'static str>,
    /// Longest gap between gate re-checks.
    pub defer_check_interval: Option<Duration>,
    /// How long an item may be held.
    pub max_defer: Option<MaxDefer>,
    /// Builds the worker's coordinator.
    pub build: fn(&BuildContext<'_>) -> Result<BuiltWorker, RegistryError>,
    /// Where the attribute was written.
    pub file: &'static str,
    /// Where the attribute was written.
    pub line: u32,
}

inventory::collect!(Registration);

impl Registration {
    /// The sink name, with the default applied.
    pub(crate) fn sink_name(&self) -> &'static str {
        self.sink.unwrap_or(crate::registry::DEFAULT_SINK)
    }

    /// `file:line`, for error messages.
    pub(crate) fn location(&self) -> String {
        format!("{}:{}", self.file, self.line)
    }

    /// The attribute's values on top of the runtime's defaults.
    pub(crate) fn config(&self) -> CoordinatorConfig {
        let mut config = CoordinatorConfig::default();
        Overrides {
            sink: None,
            concurrency: self.concurrency,
            capacity: self.capacity,
            defer_on: self.defer_on.map(str::to_owned),
            resume_on: self.resume_on.map(str::to_owned),
            cancel_on: self.cancel_on.map(str::to_owned),
            defer_check_interval: self.defer_check_interval,
            max_defer: self.max_defer,
        }
        .apply(&mut config);
        config
    }
}

/// Every registration linked into the binary, in unspecified order.
pub(crate) fn registrations() -> impl Iterator<Item = &'static Registration> {
    inventory::iter::<Registration>.into_iter()
}

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
    fn enqueue(&self, item: T) -> BoxFuture<'static, Result<(), WorkerEnqueueError<T>>>;
    fn try_enqueue(&self, item: T) -> Result<(), WorkerEnqueueError<T>>;
    fn coordinator(&self) -> Coordinator<T>;
    fn stats(&self) -> Stats;
    fn shutdown(&self) -> BoxFuture<'static, Vec<T>>;
}

impl<T: Send + 'static> CellOps<T> for Coordinator<T> {
    fn enqueue(&self, item: T) -> BoxFuture<'static, Result<(), WorkerEnqueueError<T>>> {
        let coordinator = self.clone();
        Box::pin(async move {
            coordinator
                .enqueue(item)
                .await
                .map_err(|err| WorkerEnqueueError::Closed(err.into_inner()))
        })
    }

    fn try_enqueue(&self, item: T) -> Result<(), WorkerEnqueueError<T>> {
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

    /// See the generated `enqueue`.
    pub async fn enqueue(&self, item: T) -> Result<(), WorkerEnqueueError<T>> {
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
    pub fn try_enqueue(&self, item: T) -> Result<(), WorkerEnqueueError<T>> {
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

/// What a registration's `build` function gets: the effective config and the sink.
#[derive(Debug)]
pub struct BuildContext<'a> {
    pub(crate) registration: &'a Registration,
    pub(crate) config: CoordinatorConfig,
    pub(crate) sink: Sink,
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
        let coordinator = Coordinator::builder()
            .sink(self.sink.clone())
            .config(self.config.clone())
            .build(handler)
            .map_err(|source| RegistryError::Build {
                worker: self.registration.name.to_owned(),
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
pub struct BuiltWorker(pub(crate) Box<dyn ErasedWorker>);

impl std::fmt::Debug for BuiltWorker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BuiltWorker").finish_non_exhaustive()
    }
}

/// What the runtime needs from a worker without knowing its item type.
pub(crate) trait ErasedWorker: Send + Sync {
    fn config(&self) -> CoordinatorConfig;
    fn stats(&self) -> Stats;
    fn install(&self);
    fn uninstall(&self);
    fn drain(&self) -> BoxFuture<'_, ()>;
    /// Shuts down and keeps the unstarted items; returns how many there were.
    fn shutdown(&self) -> BoxFuture<'_, usize>;
    fn as_any(&self) -> &dyn Any;
}

pub(crate) struct TypedWorker<T: 'static> {
    pub(crate) coordinator: Coordinator<T>,
    cell: &'static WorkerCell<T>,
    pub(crate) returned: Mutex<Vec<T>>,
}

impl<T: Send + 'static> ErasedWorker for TypedWorker<T> {
    fn config(&self) -> CoordinatorConfig {
        self.coordinator.config().clone()
    }

    fn stats(&self) -> Stats {
        self.coordinator.stats()
    }

    fn install(&self) {
        self.cell.set(Some(Arc::new(self.coordinator.clone())));
    }

    fn uninstall(&self) {
        self.cell.set(None);
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

/// Compile-time check: a worker's item must be `Send + 'static`.
pub fn item_must_be_send_and_static<T: Send + 'static>() {}

/// Compile-time check: a worker returns `()` or `Result<(), E>` with `E: Display`.
pub fn output_must_be_unit_or_result<F>(_: &F)
where
    F: Future,
    F::Output: HandlerOutcome,
{
}
