//! The user-facing [`Coordinator`] handle.

use std::any::Any;
use std::fmt;
use std::sync::{Arc, Weak};
use std::time::Duration;

use super::config::{check_concurrency, CoordinatorConfig};
use super::context::WorkContext;
use super::item_id::ItemId;
use super::slot::Spawner;
use super::state::Shared;
use super::stats::Stats;
use crate::error::{BuildError, EnqueueError, TryEnqueueError};
use crate::retry::{DeadLetter, DeadLetterRecord};
use crate::Sink;

/// A signal-driven work coordinator: a bounded queue of `T`, a fixed number of concurrent
/// slots running an async handler, and a gate that holds back new work while a `defer_on`
/// signal is active on its [`Sink`].
///
/// `Coordinator` is a cheap handle: clones share the same queue and slots. When the last
/// handle is dropped, intake closes and the slots finish what is queued; then its
/// [policies](crate::policy) retract their signals (at once if nothing was queued).
///
/// A handler that enqueues follow-up work should hold a [`WeakCoordinator`]
/// ([`downgrade`](Self::downgrade)), not a `Coordinator`: a strong handle captured by the
/// handler keeps the coordinator alive through its own slots (coordinator → handler →
/// coordinator), so intake never closes and queued items are never dropped after every other
/// handle is gone.
///
/// # Examples
///
/// ```
/// use backpressure::{Coordinator, Sink, WorkContext};
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let sink = Sink::new();
/// let coordinator = Coordinator::builder()
///     .sink(sink.clone())
///     .concurrency(2)
///     .build(|_n: u64, _ctx: WorkContext| async move {
///         // call the downstream service with `n`
///         Ok::<(), std::io::Error>(())
///     })?;
///
/// sink.raise("backpressure.downstream")?;  // new work defers
/// coordinator.enqueue(1).await?;           // accepted, held in the queue
/// tokio::task::yield_now().await;
/// assert_eq!(coordinator.stats().deferred, 1);
///
/// sink.retract("backpressure.downstream")?; // work resumes at once
/// coordinator.drain().await;
/// assert_eq!(coordinator.stats().completed, 1);
/// # Ok(()) }
/// ```
pub struct Coordinator<T> {
    inner: Arc<Inner<T>>,
}

struct Inner<T> {
    shared: Arc<Shared<T>>,
    spawner: Spawner<T>,
}

impl<T> Drop for Inner<T> {
    fn drop(&mut self) {
        // The last handle is gone: nobody can enqueue any more, so let the slots finish
        // what is queued and leave. With nothing left to run, the owner's verdicts end now;
        // otherwise they end when its last slot leaves (`Policies`' drop).
        self.shared.close();
        if self.shared.settled_now() {
            self.shared.policies.close();
        }
    }
}

/// A handle that does not keep its [`Coordinator`] alive, made by
/// [`Coordinator::downgrade`]; like tokio's `mpsc::WeakSender`.
///
/// # Examples
///
/// A handler that re-enqueues failed work without creating a reference cycle:
///
/// ```
/// use std::sync::{Arc, OnceLock};
/// use backpressure::{Coordinator, Sink, WeakCoordinator, WorkContext};
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let me: Arc<OnceLock<WeakCoordinator<u32>>> = Arc::default();
/// let handle = Arc::clone(&me);
/// let coordinator = Coordinator::builder()
///     .sink(Sink::new())
///     .build(move |attempt: u32, _ctx: WorkContext| {
///         let me = handle.get().and_then(WeakCoordinator::upgrade);
///         async move {
///             if attempt < 3 {
///                 if let Some(me) = me {
///                     let _ = me.try_enqueue(attempt + 1); // retry later
///                 }
///             }
///         }
///     })?;
/// me.set(coordinator.downgrade()).unwrap();
/// coordinator.enqueue(0).await?;
/// tokio::task::yield_now().await;
/// # Ok(()) }
/// ```
pub struct WeakCoordinator<T> {
    inner: Weak<Inner<T>>,
}

impl<T> WeakCoordinator<T> {
    /// The coordinator, if a [`Coordinator`] handle to it still exists.
    pub fn upgrade(&self) -> Option<Coordinator<T>> {
        self.inner.upgrade().map(|inner| Coordinator { inner })
    }
}

impl<T> Clone for WeakCoordinator<T> {
    fn clone(&self) -> Self {
        Self {
            inner: Weak::clone(&self.inner),
        }
    }
}

impl<T> fmt::Debug for WeakCoordinator<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WeakCoordinator")
            .field("alive", &(self.inner.strong_count() > 0))
            .finish()
    }
}

impl<T> Clone for Coordinator<T> {
    fn clone(&self) -> Self {
        Self {
            inner: Arc::clone(&self.inner),
        }
    }
}

impl<T: Send + 'static> Coordinator<T> {
    pub(super) fn from_parts(shared: Arc<Shared<T>>, spawner: Spawner<T>) -> Self {
        for _ in 0..shared.config.concurrency {
            spawner(Arc::clone(&shared));
        }
        let inner = Arc::new(Inner { shared, spawner });
        let owner: Arc<dyn Any + Send + Sync> = inner.clone();
        let _ = inner.shared.context.owner.set(Arc::downgrade(&owner));
        Self { inner }
    }

    /// The coordinator behind a context's owner, if its item type is `T`.
    pub(super) fn from_owner(owner: Arc<dyn Any + Send + Sync>) -> Option<Self> {
        owner
            .downcast::<Inner<T>>()
            .ok()
            .map(|inner| Self { inner })
    }

    /// Adds an item, waiting for queue space if the queue is full. This wait is how the
    /// backpressure reaches producers.
    ///
    /// Cancel-safe: if the future is dropped while waiting, the item is dropped with it and
    /// was never enqueued.
    ///
    /// # Errors
    ///
    /// [`EnqueueError`] with the item if intake is closed (by [`complete`](Self::complete),
    /// [`drain`](Self::drain) or [`shutdown`](Self::shutdown)), including while waiting.
    ///
    /// Returns the item's [`ItemId`], which its handler sees as
    /// [`WorkContext::id`](crate::WorkContext::id).
    pub async fn enqueue(&self, item: T) -> Result<ItemId, EnqueueError<T>> {
        let shared = &self.inner.shared;
        let mut guard = WaitingProducer {
            shared,
            waiting: false,
        };
        // `Ok` is a final answer; `Err` hands back an item that found the queue full.
        let mut push = |item| match shared.try_push(item, Some(&mut guard.waiting)) {
            Ok(id) => Ok(Ok(id)),
            Err(TryEnqueueError::Closed(item)) => Ok(Err(EnqueueError(item))),
            Err(TryEnqueueError::Full(item)) => Err(item),
        };
        let mut item = item;
        loop {
            item = match push(item) {
                Ok(done) => return done,
                Err(full) => full,
            };
            let notified = shared.space().notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            // Registered: try once more so that a pop or close in between is not missed.
            item = match push(item) {
                Ok(done) => return done,
                Err(full) => full,
            };
            notified.await;
        }
    }

    /// Adds an item if there is room right now.
    ///
    /// # Errors
    ///
    /// [`TryEnqueueError::Full`] or [`TryEnqueueError::Closed`], each handing the item back.
    ///
    /// Returns the item's [`ItemId`], as [`enqueue`](Self::enqueue) does.
    pub fn try_enqueue(&self, item: T) -> Result<ItemId, TryEnqueueError<T>> {
        self.inner.shared.try_push(item, None)
    }

    /// Enqueues every item in order, waiting for space as needed; returns how many were
    /// enqueued.
    ///
    /// # Errors
    ///
    /// If intake closes part-way, [`EnqueueError`] hands back the item that was refused and
    /// every item after it, in order.
    pub async fn enqueue_many<I>(&self, items: I) -> Result<usize, EnqueueError<Vec<T>>>
    where
        I: IntoIterator<Item = T>,
    {
        let mut items = items.into_iter();
        let mut count = 0;
        while let Some(item) = items.next() {
            if let Err(EnqueueError(refused)) = self.enqueue(item).await {
                let mut back = vec![refused];
                back.extend(items);
                return Err(EnqueueError(back));
            }
            count += 1;
        }
        Ok(count)
    }

    /// A handle that does not keep the coordinator alive: intake still closes when the last
    /// [`Coordinator`] is dropped. Use it wherever the coordinator's own handler (or anything
    /// it owns) needs to reach the coordinator.
    pub fn downgrade(&self) -> WeakCoordinator<T> {
        WeakCoordinator {
            inner: Arc::downgrade(&self.inner),
        }
    }

    /// The state of each of the coordinator's health [policies](crate::policy), in the order
    /// they were added.
    pub fn policies(&self) -> Vec<crate::policy::PolicyInfo> {
        self.inner.shared.policies.infos()
    }

    /// What holds the next start ([`HeldBy`](crate::HeldBy)): the signal that sets the
    /// current limit (among the active signals matching `defer_on`, the one with the lowest
    /// level, a full stop before any level; [`Stats::limit`] says how many items it lets
    /// run), else a pause, else a wait for a `global_concurrency` permit, else the worker's
    /// rate. `None` while nothing holds.
    ///
    /// This scans the sink's active signals (it is for operators and dashboards); the gate
    /// itself never does.
    ///
    /// # Examples
    ///
    /// ```
    /// use backpressure::{Coordinator, Level, RaiseOptions, Sink};
    ///
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let sink = Sink::new();
    /// let coordinator = Coordinator::builder()
    ///     .sink(sink.clone())
    ///     .concurrency(10)
    ///     .build(|_: u32, _| async {})?;
    /// sink.raise_with("backpressure.db", RaiseOptions::new().level(Level::new(0.5)?))?;
    /// sink.raise_with("backpressure.smtp", RaiseOptions::new().level(Level::new(0.2)?))?;
    /// let held = coordinator.held_by().unwrap();
    /// assert_eq!(held.signal().unwrap().name.as_ref(), "backpressure.smtp");
    /// assert_eq!(coordinator.stats().limit, 2);
    /// # Ok(()) }
    /// ```
    pub fn held_by(&self) -> Option<crate::HeldBy> {
        use crate::HeldBy;
        let shared = &self.inner.shared;
        let signal = shared.gate.defer_pattern().and_then(|pattern| {
            (self.sink().snapshot().into_iter())
                .filter(|entry| pattern.matches(&entry.name))
                .min_by_key(|entry| entry.level)
        });
        if let Some(signal) = signal {
            return Some(HeldBy::Signal(signal));
        }
        if shared.gate.is_paused() {
            return Some(HeldBy::Paused);
        }
        let permits = shared.permits.as_ref().map(|p| p.counts());
        if let Some(counts) = permits.filter(|c| c.wanted) {
            return Some(HeldBy::Permits(counts));
        }
        shared.rate_holds().then_some(HeldBy::Rate)
    }

    /// A consistent snapshot of the counters.
    pub fn stats(&self) -> Stats {
        self.inner.shared.stats()
    }

    /// Stops starting new items until [`resume`](Self::resume); running items go on, and
    /// `max_defer` does not apply while paused.
    pub fn pause(&self) {
        self.inner.shared.gate.set_paused(true);
        self.inner.shared.gate_changed();
    }

    /// Lets held slots start items again, at once.
    pub fn resume(&self) {
        self.inner.shared.gate.set_paused(false);
        self.inner.shared.gate_changed();
    }

    /// Whether the coordinator is paused.
    pub fn is_paused(&self) -> bool {
        self.inner.shared.gate.is_paused()
    }

    /// Changes the number of concurrent slots. Growing starts new slots at once; shrinking
    /// lets running items finish, and no new item starts until fewer than `concurrency` run.
    ///
    /// # Errors
    ///
    /// [`BuildError::ZeroConcurrency`] for zero, [`BuildError::ConcurrencyTooLarge`] above
    /// [`MAX_CONCURRENCY`](crate::MAX_CONCURRENCY).
    pub fn set_concurrency(&self, concurrency: usize) -> Result<(), BuildError> {
        check_concurrency(concurrency)?;
        let missing = self.inner.shared.set_target(concurrency);
        for _ in 0..missing {
            (self.inner.spawner)(Arc::clone(&self.inner.shared));
        }
        Ok(())
    }

    /// Closes intake: further enqueues fail with the item handed back, queued items still
    /// run. Returns whether intake was open.
    pub fn complete(&self) -> bool {
        self.inner.shared.close()
    }

    /// Closes intake and waits until every queued item has finished (run, failed,
    /// panicked or skipped).
    ///
    /// When it returns, the coordinator's [policies](crate::policy) have retracted their
    /// signals and stopped (a verdict ends with its owner): peers that deferred on them are
    /// released, and nothing this coordinator does later raises them again. Not before: while
    /// it drains, its verdicts still hold peers off a downstream that may still be failing.
    ///
    /// Deferral still applies: while a `defer_on` signal stays raised, draining waits for its
    /// retraction or for `max_defer`, and a paused coordinator drains after `resume`.
    ///
    /// Do not await `drain` (or [`shutdown`](Self::shutdown)) from inside this coordinator's
    /// own handler: it waits for every running handler, itself included, and never returns.
    /// Spawn it instead (`tokio::spawn(async move { coordinator.drain().await })`), or signal
    /// another task. If the runtime that runs the slots shuts down, `drain` returns once
    /// nothing can run any more; what is still queued can be taken back with `shutdown`.
    pub async fn drain(&self) {
        self.complete();
        self.settled().await;
        self.inner.shared.policies.close();
    }

    /// Closes intake, cancels running handlers through their
    /// [`WorkContext::cancellation_token`](crate::WorkContext::cancellation_token), waits for
    /// them to return, and hands back every item that never started, in queue order.
    ///
    /// For a worker with [`retry`](crate::CoordinatorBuilder::retry), it then hands back
    /// the items waiting for a retry (earliest due first, counted as `returned`), the items
    /// whose handler failed after shutdown cancelled it (counted as `returned`), and the
    /// kept dead letters (already counted as `dead_lettered`).
    ///
    /// Nothing is dropped: each item enqueued has either finished (counted), been skipped
    /// (counted, given to the skip callback) or is in the returned vector (counted as
    /// `returned`).
    ///
    /// As with `drain`, by the time it returns the coordinator's policies have retracted
    /// their signals and stopped, even though the handle (and the returned items) live on.
    ///
    /// As with [`drain`](Self::drain), do not await this from inside the coordinator's own
    /// handler; spawn it.
    pub async fn shutdown(&self) -> Vec<T> {
        let shared = &self.inner.shared;
        shared.begin_shutdown();
        shared.context.token.cancel();
        self.settled().await;
        shared.policies.close();
        shared.take_unstarted()
    }

    /// Drains for at most `grace`, then shuts down: what finished in time is done, the rest
    /// is handed back as by [`shutdown`](Self::shutdown).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use backpressure::{Coordinator, Sink, WorkContext};
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let coordinator = Coordinator::builder()
    ///     .sink(Sink::new())
    ///     .concurrency(1)
    ///     .build(|secs: u64, ctx: WorkContext| async move {
    ///         tokio::select! {
    ///             _ = tokio::time::sleep(Duration::from_secs(secs)) => {}
    ///             _ = ctx.cancelled() => {}
    ///         }
    ///     })?;
    /// coordinator.enqueue_many([1, 1, 60, 1]).await?;
    /// let back = coordinator.shutdown_after(Duration::from_secs(5)).await;
    /// assert_eq!(back, [1]); // the 60 s item was cut short; the last never started
    /// assert_eq!(coordinator.stats().completed, 3);
    /// # Ok(()) }
    /// ```
    pub async fn shutdown_after(&self, grace: Duration) -> Vec<T> {
        self.complete();
        let _ = tokio::time::timeout(grace, self.settled()).await;
        self.shutdown().await
    }

    /// Copies of the worker's kept dead letters, oldest first (empty for a worker without
    /// [`retry`](crate::CoordinatorBuilder::retry), or with an
    /// [`on_dead_letter`](crate::CoordinatorBuilder::on_dead_letter) callback).
    pub fn dead_letters(&self) -> Vec<DeadLetter<T>> {
        (self.inner.shared.retrying.as_ref()).map_or_else(Vec::new, |r| r.dead_letters())
    }

    /// What is known about the kept dead letters, without the items: their ids, last
    /// errors, attempts and times, oldest first.
    pub fn dead_letter_records(&self) -> Vec<DeadLetterRecord> {
        (self.inner.shared.retrying.as_ref()).map_or_else(Vec::new, |r| r.dead_records())
    }

    /// Dead letters kept now, and how many were evicted from the full buffer (see
    /// [`dead_letters`](crate::CoordinatorBuilder::dead_letters)).
    pub fn dead_letter_counts(&self) -> (usize, u64) {
        (self.inner.shared.retrying.as_ref()).map_or((0, 0), |r| r.dead_counts())
    }

    /// Takes the kept dead letters out of the buffer, oldest first.
    pub fn take_dead_letters(&self) -> Vec<DeadLetter<T>> {
        (self.inner.shared.retrying.as_ref()).map_or_else(Vec::new, |r| r.take_dead_letters())
    }

    /// Runs the kept dead letters again, oldest first: each rejoins the queue under its id
    /// with a fresh set of attempts (counted as enqueued again). Only as many as the queue
    /// has room for are requeued (it does not wait); the rest stay kept. Returns how many
    /// were requeued.
    pub fn requeue_dead_letters(&self) -> usize {
        let Some(retrying) = &self.inner.shared.retrying else {
            return 0;
        };
        let mut letters = retrying.take_dead_letters().into_iter();
        let mut requeued = 0;
        while let Some(letter) = letters.next() {
            if let Err(letter) = self.inner.shared.requeue(letter) {
                let mut back = vec![letter];
                back.extend(letters);
                retrying.restore_dead_letters(back);
                break;
            }
            requeued += 1;
        }
        requeued
    }

    async fn settled(&self) {
        let shared = &self.inner.shared;
        loop {
            let notified = shared.settled().notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if shared.settled_now() {
                return;
            }
            notified.await;
        }
    }

    /// The configuration this coordinator was built with.
    pub fn config(&self) -> &CoordinatorConfig {
        &self.inner.shared.config
    }

    /// The sink whose signals drive this coordinator.
    pub fn sink(&self) -> &Sink {
        &self.inner.shared.context.sink
    }
}

/// Keeps the count of producers waiting for space right when an `enqueue` future is dropped mid-wait.
impl WorkContext {
    /// The coordinator running this item, for follow-up work; `None` once it is gone, or
    /// if `T` is not its item type. The context holds it weakly: a handler keeps it alive
    /// only while it holds what this returns.
    ///
    /// # Examples
    ///
    /// ```
    /// use backpressure::{Coordinator, Sink, WorkContext};
    ///
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let coordinator = Coordinator::builder()
    ///     .sink(Sink::new())
    ///     .build(|n: u32, ctx: WorkContext| async move {
    ///         if n > 0 {
    ///             let me = ctx.coordinator::<u32>().expect("running");
    ///             let _ = me.try_enqueue(n - 1); // a follow-up item
    ///         }
    ///     })?;
    /// coordinator.enqueue(3).await?;
    /// # tokio::task::yield_now().await;
    /// # Ok(()) }
    /// ```
    pub fn coordinator<T: Send + 'static>(&self) -> Option<Coordinator<T>> {
        let owner = self.owner().get()?.upgrade()?;
        Coordinator::from_owner(owner)
    }
}

struct WaitingProducer<'a, T> {
    shared: &'a Shared<T>,
    waiting: bool,
}

impl<T> Drop for WaitingProducer<'_, T> {
    fn drop(&mut self) {
        if self.waiting {
            self.shared.abandon_wait();
        }
    }
}

impl<T> fmt::Debug for Coordinator<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Coordinator")
            .field("config", &self.inner.shared.config)
            .field("stats", &self.inner.shared.stats())
            .finish()
    }
}
