//! Serving `global_concurrency`: a bridge holds the fleet's permits of its sink's workers in
//! Redis and grants them to the workers of this process.
//!
//! * `pool.rs`: one worker's permits: the slots held in Redis and what to ask for next.
//! * `task.rs`: the one task per bridge that serves every pool: its own connection (the
//!   permit channel's pushes arrive on it), the calls, the faults.
//!
//! The keys, scripts and messages are in `wire/permits.rs`.

mod pool;
mod task;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use backpressure::Sink;
use tokio::sync::watch;

use crate::bridge::Status;
use crate::config::Config;
use crate::quota_task::ServerTask;

/// Counters of a bridge's permits (`global_concurrency`), for monitoring.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct PermitStats {
    /// Permits recorded in Redis for this process: by an acquisition, or by a renewal that
    /// records slots again (items that ran on an outage's local grants, slots a flush lost).
    pub acquired: u64,
    /// Permits released in Redis.
    pub released: u64,
    /// Permits found gone at a renewal (a flush, an eviction, a lease that lapsed during an
    /// outage) with no room to take them again.
    pub lost: u64,
    /// Permit-channel messages that were not of this build's format (ignored).
    pub ignored_messages: u64,
    /// Failed permit calls (each unanswered one makes the permits follow
    /// [`limits_on_disconnect`](crate::Config::limits_on_disconnect)).
    pub redis_errors: u64,
    /// Times the permits' connection was lost.
    pub disconnects: u64,
}

#[derive(Debug, Default)]
pub(crate) struct Counters {
    acquired: AtomicU64,
    released: AtomicU64,
    lost: AtomicU64,
    ignored: AtomicU64,
    errors: AtomicU64,
    disconnects: AtomicU64,
}

impl Counters {
    fn add(counter: &AtomicU64, n: usize) {
        counter.fetch_add(n as u64, Ordering::Relaxed);
    }

    fn snapshot(&self) -> PermitStats {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        PermitStats {
            acquired: get(&self.acquired),
            released: get(&self.released),
            lost: get(&self.lost),
            ignored_messages: get(&self.ignored),
            redis_errors: get(&self.errors),
            disconnects: get(&self.disconnects),
        }
    }
}

/// The permit side of a bridge: its task, status and counters.
#[derive(Debug)]
pub(crate) struct PermitServer {
    status: watch::Receiver<Status>,
    counters: Arc<Counters>,
    task: ServerTask,
}

impl PermitServer {
    /// Serves the permits of `sink` (now and added later) as `instance`.
    pub(crate) fn start(sink: Sink, config: &Config, instance: &str) -> Self {
        sink.serve_permits();
        let (status_tx, status) = watch::channel(Status::Synced);
        let counters = Arc::new(Counters::default());
        let server = task::Server::new(sink, config, instance, status_tx, Arc::clone(&counters));
        Self {
            status,
            counters,
            task: ServerTask::spawn(|stopped| server.run(stopped)),
        }
    }

    pub(crate) fn status(&self) -> watch::Receiver<Status> {
        self.status.clone()
    }

    pub(crate) fn stats(&self) -> PermitStats {
        self.counters.snapshot()
    }

    /// Releases every permit held and ends the task.
    pub(crate) async fn shutdown(self) {
        self.task.shutdown().await;
    }
}
