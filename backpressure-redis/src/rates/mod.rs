//! Serving shared rates (`rate(..., shared = true)`): a bridge draws the starts of its
//! sink's workers from the fleet's GCRA in Redis, in small batches, and grants them to the
//! workers of this process.
//!
//! * `pool.rs`: one worker's rate: its batch, when the fleet next allows a start, and the
//!   local GCRA used while Redis cannot be reached.
//! * `task.rs`: the one task per bridge that serves every pool: its own connection, the
//!   calls (one at a time, each bounded by the response timeout), the faults.
//!
//! The keys and the script are in `wire/rates.rs`.

mod pool;
mod task;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use backpressure::Sink;
use tokio::sync::watch;

use crate::bridge::Status;
use crate::config::Config;
use crate::quota_task::ServerTask;

/// Counters of a bridge's shared rates (`rate(..., shared = true)`), for monitoring.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct RateStats {
    /// Starts granted to this process's workers (by the fleet's GCRA, or by
    /// [`limits_on_disconnect`](crate::Config::limits_on_disconnect) while cut off).
    pub granted: u64,
    /// Granted starts that lapsed unused (the fleet counted them: its rate was under-used by
    /// that much).
    pub lapsed: u64,
    /// Failed rate calls (an unanswered one makes the rates follow
    /// [`limits_on_disconnect`](crate::Config::limits_on_disconnect); one answered with an
    /// error holds that worker).
    pub redis_errors: u64,
    /// Times the rates' connection was lost.
    pub disconnects: u64,
    /// Calls of the rate script (one per batch asked for, only while a start waits).
    pub calls: u64,
}

#[derive(Debug, Default)]
pub(crate) struct Counters {
    granted: AtomicU64,
    errors: AtomicU64,
    disconnects: AtomicU64,
    calls: AtomicU64,
}

impl Counters {
    fn add(counter: &AtomicU64, n: usize) {
        counter.fetch_add(n as u64, Ordering::Relaxed);
    }
}

/// The shared-rate side of a bridge: its task, status and counters.
#[derive(Debug)]
pub(crate) struct RateServer {
    sink: Sink,
    status: watch::Receiver<Status>,
    counters: Arc<Counters>,
    task: ServerTask,
}

impl RateServer {
    /// Serves the shared rates of `sink` (now and added later) as `instance`.
    pub(crate) fn start(sink: Sink, config: &Config, instance: &str) -> Self {
        sink.serve_rates();
        let (status_tx, status) = watch::channel(Status::Synced);
        let counters = Arc::new(Counters::default());
        let server = task::Server::new(
            sink.clone(),
            config,
            instance,
            status_tx,
            Arc::clone(&counters),
        );
        Self {
            sink,
            status,
            counters,
            task: ServerTask::spawn(|stopped| server.run(stopped)),
        }
    }

    pub(crate) fn status(&self) -> watch::Receiver<Status> {
        self.status.clone()
    }

    pub(crate) fn stats(&self) -> RateStats {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        let lapsed = self
            .sink
            .rate_pools()
            .iter()
            .map(|t| t.counts().lapsed)
            .sum();
        RateStats {
            granted: get(&self.counters.granted),
            lapsed,
            redis_errors: get(&self.counters.errors),
            disconnects: get(&self.counters.disconnects),
            calls: get(&self.counters.calls),
        }
    }

    /// Ends the task (the fleet's GCRA keeps no per-process state to give back).
    pub(crate) async fn shutdown(self) {
        self.task.shutdown().await;
    }
}
