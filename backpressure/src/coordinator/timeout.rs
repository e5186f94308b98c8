//! A worker's per-item `timeout`: at the deadline the item's own cancellation token fires;
//! a handler that has not returned after a short grace is dropped.

use std::future::Future;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::context::WorkContext;

/// The longest grace after the deadline: a tenth of the timeout, at most this.
const MAX_GRACE: Duration = Duration::from_secs(1);

/// One running item's deadline and its token.
pub(super) struct Limit {
    timeout: Duration,
    token: CancellationToken,
}

impl Limit {
    /// A deadline `timeout` from now for the item whose context this is: its token becomes
    /// a child of the coordinator's (shutdown still cancels it).
    pub(super) fn new(timeout: Duration, context: &mut WorkContext) -> Self {
        let token = context.own_token();
        Self { timeout, token }
    }

    /// Runs `future` to its end, or until the deadline plus the grace: `None` if it ran past
    /// the deadline (cancelled at it, and dropped after the grace if still running).
    pub(super) async fn run<F: Future>(&self, future: F) -> Option<F::Output> {
        tokio::pin!(future);
        tokio::select! {
            biased;
            output = &mut future => Some(output),
            () = tokio::time::sleep(self.timeout) => {
                self.token.cancel();
                // What it returns once told to stop is not its outcome: it timed out.
                let _ = tokio::time::timeout(grace(self.timeout), &mut future).await;
                None
            }
        }
    }

    /// The failure's words.
    pub(super) fn describe(&self) -> String {
        format!("timed out after {:?}", self.timeout)
    }
}

/// How long a handler told to stop at its deadline may take to return.
pub(super) fn grace(timeout: Duration) -> Duration {
    (timeout / 10).min(MAX_GRACE)
}
