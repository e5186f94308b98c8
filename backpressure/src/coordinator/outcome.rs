//! How an item ends: what handlers may return, and how the coordinator counts it.

use std::fmt::Display;

/// The return type of a handler: `()` or `Result<(), E>` where `E: Display`.
///
/// An `Err` is counted in [`Stats::failed`](crate::Stats::failed) and reported through
/// `tracing` at the error level.
pub trait HandlerOutcome: Send + 'static {
    /// The error to report, if the handler failed.
    fn into_error(self) -> Option<Box<dyn Display + Send>>;

    /// Whether the failure must not be retried (see [`Failure`](crate::retry::Failure)):
    /// asked before [`into_error`](Self::into_error). Default: no failure is permanent.
    fn is_permanent(&self) -> bool {
        false
    }
}

impl HandlerOutcome for () {
    fn into_error(self) -> Option<Box<dyn Display + Send>> {
        None
    }
}

impl<E: Display + Send + 'static> HandlerOutcome for Result<(), E> {
    fn into_error(self) -> Option<Box<dyn Display + Send>> {
        self.err().map(|e| Box::new(e) as Box<dyn Display + Send>)
    }
}

/// How a started item ended, as counted in [`Stats`](crate::Stats).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Outcome {
    Completed,
    Failed,
    Panicked,
    Skipped,
    /// Ran past the worker's `timeout` (a failure for policies and retries).
    TimedOut,
}

impl Outcome {
    /// As in traces and the `outcome` metric label.
    pub(super) fn as_str(self) -> &'static str {
        match self {
            Outcome::Completed => "completed",
            Outcome::Failed => "failed",
            Outcome::Panicked => "panicked",
            Outcome::Skipped => "skipped",
            Outcome::TimedOut => "timed_out",
        }
    }

    /// Whether it is a failure (for policies and retries).
    pub(super) fn is_failure(self) -> bool {
        matches!(
            self,
            Outcome::Failed | Outcome::Panicked | Outcome::TimedOut
        )
    }
}
