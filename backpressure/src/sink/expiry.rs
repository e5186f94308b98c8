//! Time-to-live expiry.
//!
//! A sink's TTL entries are expired by reaper tasks: each sleeps until the earliest deadline
//! (tokio time, so paused-time tests work), expires what is due, and sleeps again; a new
//! earlier deadline wakes them all.
//!
//! A reaper runs on a tokio runtime, and a runtime that is not driven (a current-thread
//! runtime nobody calls `block_on` on any more) runs none of its timers. So no single runtime
//! may own a sink's expiry: every thread that raises a TTL or watches the sink from inside a
//! runtime makes sure a reaper of the sink runs on *its* runtime. Expiry therefore happens on
//! time for every user that is itself being driven, whatever happened to the others; reapers
//! on several runtimes expire the same entries idempotently (each entry expires once, under
//! the sink's lock). When no runtime is available at all, entries expire lazily: every sink
//! operation first removes what is due.

use std::cell::RefCell;
use std::sync::{Arc, Weak};

use tokio::sync::Notify;

use super::core::Shared;

/// The reapers' side of a sink: what wakes them when the earliest deadline moves.
#[derive(Debug, Default)]
pub(super) struct Reaper {
    wake: Arc<Notify>,
}

impl Reaper {
    /// Tells every reaper to look at the deadlines again (a new TTL, or the sink is gone).
    pub(super) fn deadlines_changed(&self) {
        self.wake.notify_waiters();
    }
}

/// A reaper task this thread started: the sink it serves and a token that dies with the task.
struct Started {
    sink: Weak<Shared>,
    alive: Weak<()>,
}

thread_local! {
    /// Reapers started from this thread. A thread is in at most one runtime context at a time,
    /// so "a live reaper started from this thread" means one is running on a runtime this
    /// thread uses.
    static STARTED: RefCell<Vec<Started>> = const { RefCell::new(Vec::new()) };
}

/// Wakes the sink's reapers and makes sure one runs on the current tokio runtime, if any.
pub(super) fn ensure_reaper(shared: &Arc<Shared>) {
    shared.reaper.deadlines_changed();
    let Ok(handle) = tokio::runtime::Handle::try_current() else {
        return;
    };
    STARTED.with(|started| {
        let mut started = started.borrow_mut();
        started.retain(|s| s.alive.strong_count() > 0 && s.sink.strong_count() > 0);
        let sink = Arc::downgrade(shared);
        if started.iter().any(|s| Weak::ptr_eq(&s.sink, &sink)) {
            return;
        }
        let alive = Arc::new(());
        started.push(Started {
            sink: sink.clone(),
            alive: Arc::downgrade(&alive),
        });
        // The token moves into the future: if tokio drops the task (its runtime shut down,
        // even before polling it), the token dies and the next caller starts a new reaper.
        handle.spawn(reap(sink, Arc::clone(&shared.reaper.wake), alive));
    });
}

async fn reap(sink: Weak<Shared>, wake: Arc<Notify>, _alive: Arc<()>) {
    loop {
        // Registered before looking at the deadlines, so a new earlier deadline set while
        // expiring is not slept through (`notify_waiters` reaches a `Notified` from creation).
        let notified = wake.notified();
        tokio::pin!(notified);
        // Hold the sink only while expiring, so a dropped standalone sink is freed.
        let next = match sink.upgrade() {
            Some(shared) => shared.expire_due(),
            None => return,
        };
        match next {
            Some(deadline) => {
                tokio::select! {
                    () = tokio::time::sleep_until(deadline) => {}
                    () = &mut notified => {}
                }
            }
            None => notified.await,
        }
    }
}
