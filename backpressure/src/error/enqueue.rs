//! [`EnqueueError`], [`TryEnqueueError`] and [`StreamClosed`]: an item refused, and handed
//! back.

use std::fmt;

/// [`Coordinator::enqueue`](crate::Coordinator::enqueue) failed because intake is closed; the
/// item is handed back.
#[derive(PartialEq, Eq, Clone, Copy)]
pub struct EnqueueError<T>(pub T);

impl<T> EnqueueError<T> {
    /// Takes back the item that could not be enqueued.
    pub fn into_inner(self) -> T {
        self.0
    }
}

impl<T> fmt::Debug for EnqueueError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("EnqueueError(..)")
    }
}

impl<T> fmt::Display for EnqueueError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(
            "the coordinator no longer accepts items (intake is closed); the item is handed back",
        )
    }
}

impl<T> std::error::Error for EnqueueError<T> {}

/// [`Coordinator::try_enqueue`](crate::Coordinator::try_enqueue) failed; the item is handed back.
#[derive(PartialEq, Eq, Clone, Copy)]
pub enum TryEnqueueError<T> {
    /// The queue is at capacity.
    Full(T),
    /// Intake is closed.
    Closed(T),
}

impl<T> TryEnqueueError<T> {
    /// Takes back the item that could not be enqueued.
    pub fn into_inner(self) -> T {
        match self {
            TryEnqueueError::Full(item) | TryEnqueueError::Closed(item) => item,
        }
    }

    /// Whether the queue was full (as opposed to closed).
    pub fn is_full(&self) -> bool {
        matches!(self, TryEnqueueError::Full(_))
    }
}

impl<T> fmt::Debug for TryEnqueueError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TryEnqueueError::Full(_) => f.write_str("Full(..)"),
            TryEnqueueError::Closed(_) => f.write_str("Closed(..)"),
        }
    }
}

impl<T> fmt::Display for TryEnqueueError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TryEnqueueError::Full(_) => {
                f.write_str("the coordinator's queue is full; the item is handed back")
            }
            TryEnqueueError::Closed(_) => f.write_str(
                "the coordinator no longer accepts items (intake is closed); the item is handed back",
            ),
        }
    }
}

impl<T> std::error::Error for TryEnqueueError<T> {}

impl<T> From<EnqueueError<T>> for TryEnqueueError<T> {
    fn from(err: EnqueueError<T>) -> Self {
        TryEnqueueError::Closed(err.0)
    }
}

/// [`Coordinator::enqueue_stream`](crate::Coordinator::enqueue_stream) stopped because intake
/// closed: how many items it had enqueued, and the one it pulled from the stream but could
/// not enqueue, handed back (the rest of the stream was not pulled).
#[derive(PartialEq, Eq, Clone, Copy)]
pub struct StreamClosed<T> {
    /// Items of the stream enqueued before intake closed.
    pub accepted: usize,
    /// The item pulled and refused.
    pub item: T,
}

impl<T> fmt::Debug for StreamClosed<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StreamClosed")
            .field("accepted", &self.accepted)
            .finish_non_exhaustive()
    }
}

impl<T> fmt::Display for StreamClosed<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "intake closed after {} items of the stream; the next one is handed back and the \
             rest was not pulled",
            self.accepted
        )
    }
}

impl<T> std::error::Error for StreamClosed<T> {}
