//! Helpers shared by the coordinator test files.
#![allow(dead_code)]

use std::sync::{Arc, Mutex};

use backpressure::Stats;

/// Lets every other task run for a while. Never moves a paused clock.
pub async fn settle() {
    for _ in 0..64 {
        tokio::task::yield_now().await;
    }
}

/// Yields until `cond` holds; panics if it does not within a generous number of rounds.
/// Never moves a paused clock.
pub async fn until(what: &str, mut cond: impl FnMut() -> bool) {
    for _ in 0..100_000 {
        if cond() {
            return;
        }
        tokio::task::yield_now().await;
    }
    panic!("timed out waiting until {what}");
}

/// Asserts the accounting invariant and returns the snapshot.
#[track_caller]
pub fn consistent(stats: Stats) -> Stats {
    assert!(stats.is_consistent(), "inconsistent stats: {stats:?}");
    stats
}

/// A shared, ordered record of what handlers saw.
#[derive(Debug, Clone)]
pub struct Log<T>(Arc<Mutex<Vec<T>>>);

impl<T> Default for Log<T> {
    fn default() -> Self {
        Self(Arc::new(Mutex::new(Vec::new())))
    }
}

impl<T: Clone> Log<T> {
    pub fn push(&self, value: T) {
        self.0.lock().unwrap().push(value);
    }

    pub fn get(&self) -> Vec<T> {
        self.0.lock().unwrap().clone()
    }

    pub fn len(&self) -> usize {
        self.0.lock().unwrap().len()
    }
}

/// Awaits `fut`, failing the test instead of hanging if it does not finish within `limit`
/// (virtual time under a paused clock).
pub async fn within<F: std::future::Future>(
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
pub async fn recv<T>(rx: &mut tokio::sync::mpsc::UnboundedReceiver<T>) -> Option<T> {
    within(
        std::time::Duration::from_secs(3_600),
        "receiving the next message",
        rx.recv(),
    )
    .await
}
