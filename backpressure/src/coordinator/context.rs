//! What a handler gets besides its item.

use std::any::Any;
use std::sync::{Arc, OnceLock, Weak};

use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::item_id::ItemId;
use crate::Sink;

/// Passed to every handler call with its item.
///
/// # Examples
///
/// ```
/// use backpressure::{Coordinator, Sink, WorkContext};
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let coordinator = Coordinator::builder()
///     .sink(Sink::new())
///     .build(|_item: u32, ctx: WorkContext| async move {
///         tokio::select! {
///             _ = ctx.cancelled() => println!("item {} cancelled by shutdown", ctx.id()),
///             _ = async { /* real work with the item */ } => {}
///         }
///     })?;
/// coordinator.enqueue(7).await?;
/// coordinator.drain().await;
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct WorkContext {
    shared: Arc<ContextShared>,
    id: u64,
    attempt: u32,
    first_enqueued_at: Option<Instant>,
    /// The item's own token (a worker with a `timeout`), a child of the coordinator's.
    token: Option<CancellationToken>,
}

/// The coordinator a context belongs to, set once its handle exists.
pub(crate) type Owner = Arc<OnceLock<Weak<dyn Any + Send + Sync>>>;

#[derive(Debug)]
pub(crate) struct ContextShared {
    pub(crate) token: CancellationToken,
    pub(crate) sink: Sink,
    pub(crate) owner: Owner,
}

impl ContextShared {
    /// A copy for one slot: the same token and sink, behind an `Arc` of the slot's own, so
    /// that the per-item clone in [`WorkContext::new`] touches a reference count no other
    /// slot's thread writes (one shared count bounced between cores on every item).
    pub(crate) fn for_slot(&self) -> Arc<Self> {
        Arc::new(Self {
            token: self.token.clone(),
            sink: self.sink.clone(),
            owner: Arc::clone(&self.owner),
        })
    }
}

impl WorkContext {
    pub(crate) fn new(shared: Arc<ContextShared>, id: u64) -> Self {
        Self {
            shared,
            id,
            attempt: 1,
            first_enqueued_at: None,
            token: None,
        }
    }

    /// The same context for attempt `attempt` of an item first accepted `first_enqueued_at`.
    pub(super) fn with_attempt(mut self, attempt: u32, first_enqueued_at: Instant) -> Self {
        self.attempt = attempt;
        self.first_enqueued_at = Some(first_enqueued_at);
        self
    }

    /// Gives the item a token of its own (its `timeout` cancels it), a child of the
    /// coordinator's; returns it.
    pub(super) fn own_token(&mut self) -> CancellationToken {
        let token = self.shared.token.child_token();
        self.token = Some(token.clone());
        token
    }

    /// Which attempt this is: 1 for the first run, 2 for the first retry (a worker with
    /// [`retry`](crate::CoordinatorBuilder::retry)); always 1 without one.
    ///
    /// # Examples
    ///
    /// ```
    /// use backpressure::retry::Retry;
    /// use backpressure::{Coordinator, Sink, WorkContext};
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let coordinator = Coordinator::builder()
    ///     .sink(Sink::new())
    ///     .retry(Retry::new(2))
    ///     .build(|_: u8, ctx: WorkContext| async move {
    ///         if ctx.attempt() == 1 { Err("first try fails") } else { Ok(()) }
    ///     })?;
    /// coordinator.enqueue(1).await?;
    /// coordinator.drain().await;
    /// assert_eq!((coordinator.stats().retried, coordinator.stats().completed), (1, 1));
    /// # Ok(()) }
    /// ```
    pub fn attempt(&self) -> u32 {
        self.attempt
    }

    /// When the item was first accepted: known for every item of a worker with `retry`,
    /// a `timeout` or a policy that watches queue age, and for every item while a `tracing`
    /// subscriber listens at DEBUG or the `metrics` feature is on; `None` otherwise (keeping
    /// the time would cost every queued item).
    pub fn first_enqueued_at(&self) -> Option<Instant> {
        self.first_enqueued_at
    }

    /// What the context knows of its coordinator (see `coordinator`, in `handle.rs`).
    pub(super) fn owner(&self) -> &Owner {
        &self.shared.owner
    }

    /// The item's id, as [`enqueue`](crate::Coordinator::enqueue) returned it.
    pub fn id(&self) -> ItemId {
        ItemId(self.id)
    }

    /// The coordinator's sink, to raise or retract signals from inside a handler.
    pub fn sink(&self) -> &Sink {
        &self.shared.sink
    }

    /// The token that [`Coordinator::shutdown`](crate::Coordinator::shutdown) (or, for a
    /// worker with a `timeout`, the item's deadline) cancels, to
    /// hand to code that takes one (a child token, a `select!` arm).
    ///
    /// The type is `tokio_util::sync::CancellationToken` from tokio-util 0.7, a public
    /// dependency: this crate does not re-export it, so name it through your own
    /// `tokio-util = "0.7"` dependency. [`cancelled`](Self::cancelled) and
    /// [`is_cancelled`](Self::is_cancelled) need neither.
    pub fn cancellation_token(&self) -> &CancellationToken {
        self.token.as_ref().unwrap_or(&self.shared.token)
    }

    /// Whether shutdown (or the item's `timeout`) has asked the handler to stop.
    pub fn is_cancelled(&self) -> bool {
        self.cancellation_token().is_cancelled()
    }

    /// Completes when shutdown (or the item's `timeout`) asks the handler to stop.
    pub async fn cancelled(&self) {
        self.cancellation_token().cancelled().await;
    }
}
