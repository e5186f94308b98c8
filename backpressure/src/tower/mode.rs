//! `HoldMode`: what the services of a layer do while a matching signal is raised.

use std::time::Duration;

/// What a [`Hold`](super::Hold) service does while a matching signal is raised.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum HoldMode {
    /// `poll_ready` stays pending until no matching signal is raised, woken by the sink.
    Wait {
        /// After this long the service becomes ready anyway and `call` fails with
        /// [`HoldError::TimedOut`](super::HoldError::TimedOut); `None` waits as long as it takes.
        max_wait: Option<Duration>,
    },
    /// `poll_ready` is the inner service's; `call` fails with [`HoldError::Rejected`](super::HoldError::Rejected) while
    /// a matching signal is raised.
    FailFast,
}
