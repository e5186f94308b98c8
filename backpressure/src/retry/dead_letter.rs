//! [`DeadLetter`]: an item whose last attempt failed, with what is known about its failures.

use std::fmt;

use serde::Serialize;
use tokio::time::Instant;

use crate::ItemId;

/// An item whose last attempt failed (or whose failure was permanent), kept so that nothing
/// is lost: handed to [`on_dead_letter`](crate::CoordinatorBuilder::on_dead_letter), or kept
/// in the worker's bounded buffer ([`Coordinator::dead_letters`](crate::Coordinator::dead_letters)).
pub struct DeadLetter<T> {
    /// The item, as it was enqueued.
    pub item: T,
    /// What is known about its failures.
    pub record: DeadLetterRecord,
}

impl<T> DeadLetter<T> {
    /// The item's id, as `enqueue` returned it.
    pub fn id(&self) -> ItemId {
        self.record.id
    }
}

impl<T> std::ops::Deref for DeadLetter<T> {
    type Target = DeadLetterRecord;

    fn deref(&self) -> &DeadLetterRecord {
        &self.record
    }
}

impl<T: Clone> Clone for DeadLetter<T> {
    fn clone(&self) -> Self {
        Self {
            item: self.item.clone(),
            record: self.record.clone(),
        }
    }
}

impl<T> fmt::Debug for DeadLetter<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DeadLetter")
            .field("record", &self.record)
            .finish_non_exhaustive()
    }
}

/// A dead letter without its item: what the admin shows and a log line says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct DeadLetterRecord {
    /// The item's id.
    pub id: ItemId,
    /// The last attempt's error, as text (`Display`), or the panic's message, or
    /// `"timed out after …"`.
    pub error: String,
    /// Attempts run, the last included.
    pub attempts: u32,
    /// Whether the handler marked the failure permanent.
    pub permanent: bool,
    /// When the item was first accepted.
    #[serde(skip)]
    pub first_enqueued_at: Instant,
    /// When its last attempt ended.
    #[serde(skip)]
    pub failed_at: Instant,
}
