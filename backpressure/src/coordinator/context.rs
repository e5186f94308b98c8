//! What a handler gets besides its item.

use std::sync::Arc;

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
}

#[derive(Debug)]
pub(crate) struct ContextShared {
    pub(crate) token: CancellationToken,
    pub(crate) sink: Sink,
}

impl ContextShared {
    /// A copy for one slot: the same token and sink, behind an `Arc` of the slot's own, so
    /// that the per-item clone in [`WorkContext::new`] touches a reference count no other
    /// slot's thread writes (one shared count bounced between cores on every item).
    pub(crate) fn for_slot(&self) -> Arc<Self> {
        Arc::new(Self {
            token: self.token.clone(),
            sink: self.sink.clone(),
        })
    }
}

impl WorkContext {
    pub(crate) fn new(shared: Arc<ContextShared>, id: u64) -> Self {
        Self { shared, id }
    }

    /// The item's id, as [`enqueue`](crate::Coordinator::enqueue) returned it.
    pub fn id(&self) -> ItemId {
        ItemId(self.id)
    }

    /// The coordinator's sink, to raise or retract signals from inside a handler.
    pub fn sink(&self) -> &Sink {
        &self.shared.sink
    }

    /// The token that [`Coordinator::shutdown`](crate::Coordinator::shutdown) cancels, to
    /// hand to code that takes one (a child token, a `select!` arm).
    ///
    /// The type is `tokio_util::sync::CancellationToken` from tokio-util 0.7, a public
    /// dependency: this crate does not re-export it, so name it through your own
    /// `tokio-util = "0.7"` dependency. [`cancelled`](Self::cancelled) and
    /// [`is_cancelled`](Self::is_cancelled) need neither.
    pub fn cancellation_token(&self) -> &CancellationToken {
        &self.shared.token
    }

    /// Whether shutdown has asked running handlers to stop.
    pub fn is_cancelled(&self) -> bool {
        self.shared.token.is_cancelled()
    }

    /// Completes when shutdown asks running handlers to stop.
    pub async fn cancelled(&self) {
        self.shared.token.cancelled().await;
    }
}
