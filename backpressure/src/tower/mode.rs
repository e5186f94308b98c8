//! `HoldMode`: what the services of a layer do while a matching signal is raised.

use std::time::Duration;

/// What a [`Hold`](super::Hold) service does while it is held: a matching level-0 signal is
/// raised, or the layer's in-flight limit is reached (see
/// [`HoldLayer::max_in_flight`](super::HoldLayer::max_in_flight)).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum HoldMode {
    /// `poll_ready` stays pending while held, woken by the sink (or a call in flight
    /// finishing).
    Wait {
        /// After this long the service becomes ready anyway and `call` fails with
        /// [`HoldError::TimedOut`](super::HoldError::TimedOut); `None` waits as long as it takes.
        max_wait: Option<Duration>,
    },
    /// `poll_ready` is the inner service's; `call` fails with
    /// [`HoldError::Rejected`](super::HoldError::Rejected) (or
    /// [`HoldError::Saturated`](super::HoldError::Saturated)) while held.
    FailFast,
}
