//! What handlers may return.

use std::fmt::Display;

/// The return type of a handler: `()` or `Result<(), E>` where `E: Display`.
///
/// An `Err` is counted in [`Stats::failed`](crate::Stats::failed) and reported through
/// `tracing` at the error level.
pub trait HandlerOutcome: Send + 'static {
    /// The error to report, if the handler failed.
    fn into_error(self) -> Option<Box<dyn Display + Send>>;
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
