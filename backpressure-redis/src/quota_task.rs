//! What the bridge's two quota servers (`global_concurrency` permits and shared rates) share:
//! the handle of their task, and when a server cut off from Redis tries again.

use std::future::Future;
use std::time::Duration;

use tokio::sync::oneshot;
use tokio::time::Instant;

use crate::bridge::FIRST_BACKOFF;

/// A quota server's task: told to stop when the bridge shuts down or is dropped.
#[derive(Debug)]
pub(crate) struct ServerTask {
    stop: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl ServerTask {
    /// Spawns `run`, which ends once the receiver it is given completes.
    pub(crate) fn spawn<F>(run: impl FnOnce(oneshot::Receiver<()>) -> F) -> Self
    where
        F: Future<Output = ()> + Send + 'static,
    {
        let (stop, stopped) = oneshot::channel();
        Self {
            stop: Some(stop),
            task: Some(tokio::spawn(run(stopped))),
        }
    }

    /// Tells the task to stop and waits for it to end.
    pub(crate) async fn shutdown(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for ServerTask {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// Redis cannot be reached: when to try again (the backoff doubles from `FIRST_BACKOFF`).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Down {
    pub(crate) backoff: Duration,
    pub(crate) retry_at: Instant,
}

impl Down {
    /// Just cut off: the first try after `FIRST_BACKOFF`.
    pub(crate) fn first() -> Self {
        Self {
            backoff: FIRST_BACKOFF,
            retry_at: Instant::now() + FIRST_BACKOFF,
        }
    }

    /// A try failed: the next one after twice the last backoff, at most `max`.
    pub(crate) fn failed_again(&mut self, max: Duration) {
        self.backoff = (self.backoff * 2).min(max);
        self.retry_at = Instant::now() + self.backoff;
    }
}
