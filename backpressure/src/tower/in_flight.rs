//! The calls in flight under a layer's limit: one count shared by the layer's services, and
//! [`InFlight`], one counted call, given back on drop.

use std::fmt;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use tokio::sync::futures::OwnedNotified;
use tokio::sync::Notify;

/// How many calls of a layer are in flight, and who to wake when one finishes.
#[derive(Debug, Default)]
pub(super) struct Calls {
    /// Calls passed on whose [`InFlight`] has not been dropped.
    count: AtomicUsize,
    /// Notified (one waiter) whenever a call in flight finishes.
    released: Arc<Notify>,
}

impl Calls {
    /// Counts one more call if fewer than `limit` are in flight. O(1).
    pub(super) fn try_take(self: &Arc<Self>, limit: usize) -> Option<InFlight> {
        self.count
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |now| {
                (now < limit).then_some(now + 1)
            })
            .ok()?;
        Some(InFlight {
            calls: Arc::clone(self),
        })
    }

    /// Completes when a call in flight finishes after this was created (or a wake-up given
    /// before was not taken yet).
    pub(super) fn released(&self) -> Pin<Box<OwnedNotified>> {
        Box::pin(Arc::clone(&self.released).notified_owned())
    }
}

/// One call counted against the layer's `max_in_flight`: taken when the hold admits a
/// request, carried by the service until `call` and then by the response future; dropping it
/// gives the place back and lets one held service look again.
pub(super) struct InFlight {
    calls: Arc<Calls>,
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.calls.count.fetch_sub(1, Ordering::SeqCst);
        self.calls.released.notify_one();
    }
}

impl fmt::Debug for InFlight {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("InFlight")
    }
}
