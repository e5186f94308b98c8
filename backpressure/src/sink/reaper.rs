//! The reapers' side of a sink: what wakes them when the earliest deadline moves, and which
//! runtimes run one (see [`expiry`](super::expiry) for the tasks themselves).

use std::sync::{Arc, Weak};

use tokio::runtime;
use tokio::sync::Notify;

use crate::sync::{lock, Mutex};

/// Kept by the sink; the reaper tasks hold its `wake`.
#[derive(Debug, Default)]
pub(super) struct Reaper {
    wake: Arc<Notify>,
    /// One entry per runtime running a reaper of this sink: the runtime and a token that dies
    /// with the task (when it ends or its runtime drops it, even before polling it).
    running: Mutex<Vec<(runtime::Id, Weak<()>)>>,
}

impl Reaper {
    /// Tells every reaper to look at the deadlines again (a new TTL, or the sink is gone).
    pub(super) fn deadlines_changed(&self) {
        self.wake.notify_waiters();
    }

    /// What a reaper task sleeps on.
    pub(super) fn wake(&self) -> &Arc<Notify> {
        &self.wake
    }

    /// Records that a reaper is about to start on runtime `id`, unless a live one runs there
    /// already; returns the token the new task must hold for as long as it lives.
    pub(super) fn start_on(&self, id: runtime::Id) -> Option<Arc<()>> {
        let mut running = lock(&self.running);
        running.retain(|(_, alive)| alive.strong_count() > 0);
        if running.iter().any(|(runtime, _)| *runtime == id) {
            return None;
        }
        let alive = Arc::new(());
        running.push((id, Arc::downgrade(&alive)));
        Some(alive)
    }
}
