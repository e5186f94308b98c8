//! Time-to-live expiry.
//!
//! Each sink with TTL entries has at most one reaper task, spawned on the tokio runtime of the
//! first TTL raise. It sleeps until the earliest deadline (tokio time, so paused-time tests
//! work), expires what is due, and sleeps again; a new earlier deadline wakes it. When no
//! runtime is available, entries expire lazily: every sink operation first removes what is
//! due, and coordinators re-check at their `defer_check_interval`.

use std::sync::{Arc, Weak};

use tokio::sync::Notify;

use super::core::Shared;
use crate::sync::Ordering;

/// Makes sure a reaper task runs for `shared` if a tokio runtime is available.
pub(super) fn ensure_reaper(shared: &Arc<Shared>) {
    shared.expiry_wake.notify_one();
    if shared.reaper_running.swap(true, Ordering::SeqCst) {
        return;
    }
    match tokio::runtime::Handle::try_current() {
        Ok(handle) => {
            let wake = Arc::clone(&shared.expiry_wake);
            let guard = ReaperGuard(Arc::downgrade(shared));
            handle.spawn(reap(guard, wake));
        }
        Err(_) => shared.reaper_running.store(false, Ordering::SeqCst),
    }
}

/// Clears the "reaper running" flag when the task ends, including when its runtime shuts
/// down, so that the next TTL raise starts a new one.
struct ReaperGuard(Weak<Shared>);

impl Drop for ReaperGuard {
    fn drop(&mut self) {
        if let Some(shared) = self.0.upgrade() {
            shared.reaper_running.store(false, Ordering::SeqCst);
        }
    }
}

async fn reap(guard: ReaperGuard, wake: Arc<Notify>) {
    loop {
        // Hold the sink only while expiring, so a dropped standalone sink is freed.
        let next = match guard.0.upgrade() {
            Some(shared) => shared.expire_due(),
            None => return,
        };
        match next {
            Some(deadline) => {
                tokio::select! {
                    () = tokio::time::sleep_until(deadline) => {}
                    () = wake.notified() => {}
                }
            }
            None => wake.notified().await,
        }
    }
}
