//! [`ItemId`]: the name of one accepted item.

use std::fmt;

/// The id of an accepted item: its position in the coordinator's intake order, starting at 0.
/// Returned by [`enqueue`](crate::Coordinator::enqueue) and
/// [`try_enqueue`](crate::Coordinator::try_enqueue), so a caller can hand it on (a 202
/// response), and seen again by the handler as [`WorkContext::id`](crate::WorkContext::id)
/// and in the item's span (`item_id`). Unique within one coordinator.
///
/// # Examples
///
/// ```
/// use backpressure::{Coordinator, ItemId, Sink, WorkContext};
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let coordinator = Coordinator::builder()
///     .sink(Sink::new())
///     .build(|_: &str, ctx: WorkContext| async move { println!("sending {}", ctx.id()) })?;
/// let first: ItemId = coordinator.enqueue("ada@example.com").await?;
/// let second = coordinator.try_enqueue("grace@example.com")?;
/// assert_eq!((first.get(), second.get()), (0, 1));
/// assert_eq!(second.to_string(), "#1");
/// # coordinator.drain().await;
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
#[serde(transparent)]
pub struct ItemId(pub(crate) u64);

impl ItemId {
    /// The id as a number.
    pub fn get(self) -> u64 {
        self.0
    }
}

impl fmt::Display for ItemId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "#{}", self.0)
    }
}

impl From<ItemId> for u64 {
    fn from(id: ItemId) -> u64 {
        id.0
    }
}
