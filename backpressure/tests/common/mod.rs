//! Helpers shared by the coordinator test files.
#![allow(dead_code)]

use std::sync::{Arc, Mutex};

use backpressure::Stats;

pub(crate) mod verdicts;

/// Lets every other task run for a while. Never moves a paused clock. For paused
/// current-thread runtimes only, where a fixed number of yields is deterministic; on a
/// multi-thread runtime wait for the condition with [`until`] instead.
pub(crate) async fn settle() {
    for _ in 0..64 {
        tokio::task::yield_now().await;
    }
}

/// How long [`until`] waits, in real time: generous, because a loaded machine can keep a
/// multi-thread runtime's workers off the CPU for a while.
pub(crate) const UNTIL_LIMIT: std::time::Duration = std::time::Duration::from_secs(30);

/// Yields until `done` holds for what `state` returns (a stats snapshot, a log, a count) and
/// returns that state; panics naming `what` and the last state seen if it does not within
/// [`UNTIL_LIMIT`] of real time. Never moves a paused clock: on a paused current-thread
/// runtime the yields let every other task run, and the timers under test stay put.
pub(crate) async fn until<S: std::fmt::Debug>(
    what: &str,
    mut state: impl FnMut() -> S,
    mut done: impl FnMut(&S) -> bool,
) -> S {
    // Real time (`std`): tokio's `Instant` stands still under a paused clock.
    let start = std::time::Instant::now();
    loop {
        let seen = state();
        if done(&seen) {
            return seen;
        }
        assert!(
            start.elapsed() < UNTIL_LIMIT,
            "timed out after {UNTIL_LIMIT:?} waiting until {what}; last seen: {seen:?}"
        );
        tokio::task::yield_now().await;
    }
}

/// Asserts the accounting invariant and returns the snapshot.
#[track_caller]
pub(crate) fn consistent(stats: Stats) -> Stats {
    assert!(stats.is_consistent(), "inconsistent stats: {stats:?}");
    stats
}

/// A shared, ordered record of what handlers saw.
#[derive(Debug, Clone)]
pub(crate) struct Log<T>(Arc<Mutex<Vec<T>>>);

impl<T> Default for Log<T> {
    fn default() -> Self {
        Self(Arc::new(Mutex::new(Vec::new())))
    }
}

impl<T: Clone> Log<T> {
    pub(crate) fn push(&self, value: T) {
        self.0.lock().unwrap().push(value);
    }

    pub(crate) fn get(&self) -> Vec<T> {
        self.0.lock().unwrap().clone()
    }

    pub(crate) fn len(&self) -> usize {
        self.0.lock().unwrap().len()
    }
}

/// Awaits `fut`, failing the test instead of hanging if it does not finish within `limit`
/// (virtual time under a paused clock).
pub(crate) async fn within<F: std::future::Future>(
    limit: std::time::Duration,
    what: &'static str,
    fut: F,
) -> F::Output {
    match tokio::time::timeout(limit, fut).await {
        Ok(output) => output,
        Err(_) => panic!("{what} did not finish within {limit:?}"),
    }
}

/// The next message of `rx`; fails instead of hanging if none arrives within an hour of
/// (usually virtual) time. `None` means the channel closed.
pub(crate) async fn recv<T>(rx: &mut tokio::sync::mpsc::UnboundedReceiver<T>) -> Option<T> {
    within(
        std::time::Duration::from_secs(3_600),
        "receiving the next message",
        rx.recv(),
    )
    .await
}

/// Whether a task spawned on `runtime` runs (and yields a few times) within `limit` of real
/// time: the check a liveness watchdog makes before it blames the code under test for a stall
/// that may only be a starved machine. Call it from a thread outside the runtime.
pub(crate) fn responsive(runtime: &tokio::runtime::Handle, limit: std::time::Duration) -> bool {
    use std::sync::atomic::{AtomicBool, Ordering};
    let done = Arc::new(AtomicBool::new(false));
    let flag = Arc::clone(&done);
    runtime.spawn(async move {
        for _ in 0..8 {
            tokio::task::yield_now().await;
        }
        flag.store(true, Ordering::SeqCst);
    });
    let start = std::time::Instant::now();
    while !done.load(Ordering::SeqCst) {
        if start.elapsed() > limit {
            return false;
        }
        // A polling period, not synchronisation.
        std::thread::sleep(std::time::Duration::from_micros(500));
    }
    true
}
