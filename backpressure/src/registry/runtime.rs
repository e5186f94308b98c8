//! [`Runtime`]: the running workers.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::PoisonError;
use std::time::Duration;

use serde::Serialize;

use super::global;
use super::registration::Registration;
use super::runtime_id::RuntimeId;
use super::worker::{ErasedWorker, TypedWorker};
use super::RegistryError;
use crate::policy::PolicyInfo;
use crate::retry::{DeadLetterRecord, Retry};
use crate::{Coordinator, CoordinatorConfig, Sink, Stats};

/// One running worker, as listed by [`Runtime::workers`]. Serialisable, to dump it.
#[derive(Debug, Clone, Serialize)]
#[non_exhaustive]
pub struct WorkerInfo {
    /// The registered name.
    pub name: String,
    /// The name of the sink it watches.
    pub sink: String,
    /// Where its attribute is written (`file:line`).
    pub location: String,
    /// Its effective configuration (attribute, then config file, over the defaults).
    pub config: CoordinatorConfig,
    /// Its counters now.
    pub stats: Stats,
    /// Its health policies' states (see [`crate::policy`]).
    pub policies: Vec<PolicyInfo>,
    /// Its retry (the attribute's `retry(...)` with the config file's over it); `None`: it
    /// does not retry and keeps no dead letters.
    pub retry: Option<Retry>,
    /// The last (at most 20) dead letters it keeps, oldest first, without their items.
    pub dead_letters: Vec<DeadLetterRecord>,
    /// How many dead letters it keeps now (all of them, not only those listed).
    pub dead_letter_count: usize,
    /// How many dead letters its full buffer evicted, oldest first.
    pub dead_letters_evicted: u64,
}

/// What [`Runtime::shutdown`] handed back: the number of unstarted items per worker.
///
/// The items themselves are kept by the runtime; take them with [`Runtime::take_returned`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ShutdownReport {
    /// Worker name → number of items that never started.
    pub returned: BTreeMap<String, usize>,
}

impl ShutdownReport {
    /// Items handed back by all workers together.
    pub fn total(&self) -> usize {
        self.returned.values().sum()
    }
}

pub(super) struct Worker {
    pub(super) registration: &'static Registration,
    pub(super) sink: String,
    pub(super) erased: Box<dyn ErasedWorker>,
}

/// The running workers. Returned by [`start`](crate::start) and [`RuntimeBuilder::start`](crate::RuntimeBuilder::start).
///
/// Dropping the handle does not stop the workers; call [`Runtime::shutdown`] (or
/// [`Runtime::drain_all`]).
pub struct Runtime {
    pub(super) id: RuntimeId,
    pub(super) workers: Vec<Worker>,
    pub(super) sinks: BTreeMap<String, Sink>,
    pub(super) global: bool,
    pub(super) released: AtomicBool,
}

impl fmt::Debug for Runtime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Runtime")
            .field(
                "workers",
                &self
                    .workers
                    .iter()
                    .map(|w| w.registration.name)
                    .collect::<Vec<_>>(),
            )
            .field("global", &self.global)
            .finish_non_exhaustive()
    }
}

impl Runtime {
    /// Every worker with its config and stats, sorted by name.
    pub fn workers(&self) -> Vec<WorkerInfo> {
        let mut infos: Vec<_> = self.workers.iter().map(Self::info).collect();
        infos.sort_by(|a, b| a.name.cmp(&b.name));
        infos
    }

    /// One worker's config and stats.
    pub fn worker(&self, name: &str) -> Option<WorkerInfo> {
        self.find(name).map(Self::info)
    }

    fn info(worker: &Worker) -> WorkerInfo {
        let (dead_letters, dead_letter_count, dead_letters_evicted) = worker.erased.dead_letters();
        WorkerInfo {
            retry: worker.erased.retry(),
            dead_letters,
            dead_letter_count,
            dead_letters_evicted,
            name: worker.registration.name.to_owned(),
            sink: worker.sink.clone(),
            location: worker.registration.location(),
            config: worker.erased.config(),
            stats: worker.erased.stats(),
            policies: worker.erased.policies(),
        }
    }

    /// Pauses the worker called `name` (see [`Coordinator::pause`]); `false` if there is no
    /// such worker.
    pub fn pause(&self, name: &str) -> bool {
        self.find(name).map(|w| w.erased.set_paused(true)).is_some()
    }

    /// Resumes the worker called `name` (see [`Coordinator::resume`]); `false` if there is
    /// no such worker.
    pub fn resume(&self, name: &str) -> bool {
        self.find(name)
            .map(|w| w.erased.set_paused(false))
            .is_some()
    }

    /// Runs the dead letters that the worker called `worker` keeps again (see
    /// [`Coordinator::requeue_dead_letters`]): each rejoins its queue as far as there is
    /// room, with a fresh set of attempts. Returns how many were requeued (0 for a worker
    /// without `retry(...)`).
    ///
    /// # Errors
    ///
    /// [`RegistryError::UnknownWorker`] when no worker has that name.
    pub fn requeue_dead_letters(&self, worker: &str) -> Result<usize, RegistryError> {
        let found = self
            .find(worker)
            .ok_or_else(|| RegistryError::UnknownWorker {
                name: worker.to_owned(),
            })?;
        Ok(found.erased.requeue_dead_letters())
    }

    fn find(&self, name: &str) -> Option<&Worker> {
        self.workers.iter().find(|w| w.registration.name == name)
    }

    /// A worker's coordinator, typed by its item. `None` when there is no worker of that name
    /// or its item type is not `T`.
    ///
    /// This is how tests reach the workers of an isolated runtime.
    pub fn coordinator<T: Send + 'static>(&self, name: &str) -> Option<Coordinator<T>> {
        let worker = self.find(name)?;
        worker
            .erased
            .as_any()
            .downcast_ref::<TypedWorker<T>>()
            .map(|typed| typed.coordinator.clone())
    }

    /// The sink that this runtime's workers of sink name `name` watch: the one given to
    /// [`RuntimeBuilder::sink`](crate::RuntimeBuilder::sink) for that name if any, else
    /// [`backpressure::sink(name)`](crate::sink) for the global runtime and a fresh sink of
    /// its own for an isolated one.
    pub fn sink(&self, name: &str) -> Option<Sink> {
        self.sinks.get(name).cloned()
    }

    /// The key its workers' cells know it by.
    pub(crate) fn id(&self) -> RuntimeId {
        self.id
    }

    /// Whether this is the global runtime of [`start`](crate::start).
    pub fn is_global(&self) -> bool {
        self.global
    }

    /// Closes every worker's intake and waits until everything queued has run.
    pub async fn drain_all(&self) {
        futures_util::future::join_all(self.workers.iter().map(|w| w.erased.drain())).await;
    }

    /// Shuts every worker down: running handlers are cancelled through their token, and the
    /// items that never started are kept (see [`Runtime::take_returned`]). Afterwards the
    /// generated `enqueue` functions report "not running", and [`start`](crate::start) may be called again.
    pub async fn shutdown(&self) -> ShutdownReport {
        let counts =
            futures_util::future::join_all(self.workers.iter().map(|w| w.erased.shutdown())).await;
        self.report(counts)
    }

    /// Releases the global runtime and reports what each worker handed back.
    fn report(&self, counts: Vec<usize>) -> ShutdownReport {
        self.release();
        ShutdownReport {
            returned: self
                .workers
                .iter()
                .zip(counts)
                .map(|(w, n)| (w.registration.name.to_owned(), n))
                .collect(),
        }
    }

    /// Drains every worker for at most `grace` (see [`Coordinator::shutdown_after`]), then
    /// shuts them all down as [`Runtime::shutdown`] does: what had not finished by then is
    /// handed back (see [`Runtime::take_returned`]).
    pub async fn shutdown_after(&self, grace: Duration) -> ShutdownReport {
        let counts = futures_util::future::join_all(
            self.workers.iter().map(|w| w.erased.shutdown_after(grace)),
        )
        .await;
        self.report(counts)
    }

    /// Takes the items that [`Runtime::shutdown`] handed back for worker `name` (empty when the
    /// worker does not exist, its item type is not `T`, or they were already taken).
    pub fn take_returned<T: Send + 'static>(&self, name: &str) -> Vec<T> {
        self.find(name)
            .and_then(|w| w.erased.as_any().downcast_ref::<TypedWorker<T>>())
            .map(|typed| {
                std::mem::take(
                    &mut *typed
                        .returned
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner),
                )
            })
            .unwrap_or_default()
    }

    fn release(&self) {
        if self.global && !self.released.swap(true, Ordering::AcqRel) {
            for worker in &self.workers {
                worker.erased.uninstall();
            }
            global::release();
        }
    }
}
