//! What a held request fails with.

use std::sync::Arc;
use std::time::Duration;

use backpressure_pattern::Pattern;

/// Why a [`Hold`](super::Hold) service failed a request without passing it on.
///
/// The service's error type is [`tower::BoxError`], as for tower's own middleware; get this
/// type back with `downcast_ref::<HoldError>()`.
///
/// # Examples
///
/// Answering a fail-fast rejection as a server would, with 503 and a `Retry-After` hint:
///
/// ```
/// use backpressure::tower::HoldError;
///
/// fn status(error: &tower::BoxError) -> (u16, Option<u64>) {
///     match error.downcast_ref::<HoldError>() {
///         Some(HoldError::Rejected { retry_after, .. }) => {
///             (503, retry_after.map(|after| after.as_secs().max(1)))
///         }
///         Some(HoldError::TimedOut { .. } | HoldError::Saturated { .. }) => (503, None),
///         _ => (500, None),
///     }
/// }
///
/// let rejected: tower::BoxError = Box::new(HoldError::Rejected {
///     signal: "backpressure.db".into(),
///     retry_after: None,
/// });
/// assert_eq!(status(&rejected), (503, None));
/// assert_eq!(rejected.to_string(), "rejected: signal `backpressure.db` is raised");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum HoldError {
    /// Fail-fast mode: a matching signal held the request when it was called, a level-0
    /// signal, or (under [`max_in_flight`](super::HoldLayer::max_in_flight)) a levelled
    /// signal whose share of the in-flight limit was taken.
    #[error("rejected: signal `{signal}` is raised")]
    Rejected {
        /// A raised signal that held the request: of the lowest level among those that
        /// did, the first by name.
        signal: Arc<str>,
        /// How long until every signal that held the request expires by its TTL, as seen
        /// at the rejection; `None` if one of them was raised without a TTL. A hint for a
        /// `Retry-After` header: a signal can be retracted sooner or raised again.
        retry_after: Option<Duration>,
    },
    /// Fail-fast mode: no signal lowered the limit, but
    /// [`max_in_flight`](super::HoldLayer::max_in_flight) calls were already in flight.
    #[error("rejected: {max_in_flight} calls are already in flight")]
    Saturated {
        /// The layer's in-flight limit.
        max_in_flight: usize,
    },
    /// Wait mode: a matching signal stayed raised for the whole max wait.
    #[error(
        "timed out after {}: a signal matching `{pattern}` is still raised",
        humantime::format_duration(*waited)
    )]
    TimedOut {
        /// The layer's pattern.
        pattern: Pattern,
        /// How long the service waited before giving up.
        waited: Duration,
    },
}
