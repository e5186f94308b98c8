//! Time-to-live expiry.
//!
//! A sink's TTL entries are expired by reaper tasks: each sleeps until the earliest deadline
//! (tokio time, so paused-time tests work), expires what is due, and sleeps again; a new
//! earlier deadline wakes them all.
//!
//! A reaper runs on a tokio runtime, and a runtime that is not driven (a current-thread
//! runtime nobody calls `block_on` on any more) runs none of its timers. So no single runtime
//! may own a sink's expiry: every raise with a TTL, watch or subscription made from inside a
//! runtime makes sure a reaper of the sink runs on *that* runtime. Expiry therefore happens on
//! time for every user that is itself being driven, whatever happened to the others (runtimes
//! are told apart by their `Id`, so one thread moving between runtimes gets one reaper on
//! each); reapers on several runtimes expire the same entries idempotently (each entry expires once, under
//! the sink's lock). When no runtime is available at all, entries expire lazily: every sink
//! operation first removes what is due.

use std::sync::{Arc, Weak};

use tokio::sync::Notify;

use super::core::SinkCore;
use crate::sync::notified_or_deadline;

/// Wakes the sink's reapers and makes sure one runs on the current tokio runtime, if any.
pub(super) fn ensure_reaper(shared: &Arc<SinkCore>) {
    let reaper = shared.reaper();
    reaper.deadlines_changed();
    let Ok(handle) = tokio::runtime::Handle::try_current() else {
        return;
    };
    if let Some(alive) = reaper.start_on(handle.id()) {
        handle.spawn(reap(
            Arc::downgrade(shared),
            Arc::clone(reaper.wake()),
            alive,
        ));
    }
}

async fn reap(sink: Weak<SinkCore>, wake: Arc<Notify>, _alive: Arc<()>) {
    loop {
        // Registered before looking at the deadlines, so a new earlier deadline set while
        // expiring is not slept through (`notify_waiters` reaches a `Notified` from creation).
        let notified = wake.notified();
        // Hold the sink only while expiring, so a dropped standalone sink is freed.
        let next = match sink.upgrade() {
            Some(shared) => shared.expire_due(),
            None => return,
        };
        notified_or_deadline(notified, next).await;
    }
}
