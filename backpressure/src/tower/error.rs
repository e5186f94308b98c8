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
///         Some(held) => (503, held.retry_after_secs()),
///         None => (500, None),
///     }
/// }
///
/// let rejected: tower::BoxError = Box::new(HoldError::Rejected {
///     signal: "backpressure.db".into(),
///     retry_after: None,
/// });
/// assert_eq!(status(&rejected), (503, None));
/// assert_eq!(rejected.to_string(), "rejected: signal `backpressure.db` is raised");
///
/// // 2.01 s left is "Retry-After: 3": a client that waits 2 s would be early.
/// let rejected: tower::BoxError = Box::new(HoldError::Rejected {
///     signal: "backpressure.db".into(),
///     retry_after: Some(std::time::Duration::from_millis(2_010)),
/// });
/// assert_eq!(status(&rejected), (503, Some(3)));
/// ```
///
/// With the `axum` feature, `HoldError` is an `axum::response::IntoResponse` that answers
/// exactly so, with a small JSON body naming the signal.
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
        /// How long until every signal that held the request is expected to let go, as
        /// seen at the rejection: a verdict's next transition (an open breaker's half-open
        /// instant, [`ActiveSignal::next_transition`](crate::ActiveSignal::next_transition)),
        /// else its TTL; `None` if one of them has neither. A hint for a `Retry-After`
        /// header (round it up: [`HoldError::retry_after_secs`]): a signal can be
        /// retracted sooner or raised again.
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
        readable(*waited)
    )]
    TimedOut {
        /// The layer's pattern.
        pattern: Pattern,
        /// How long the service waited before giving up.
        waited: Duration,
    },
}

impl HoldError {
    /// The `Retry-After` of a [`Rejected`](Self::Rejected) request in whole seconds, rounded
    /// up (at least 1); `None` for the other errors, and for a rejection with no hint.
    pub fn retry_after_secs(&self) -> Option<u64> {
        let HoldError::Rejected {
            retry_after: Some(after),
            ..
        } = self
        else {
            return None;
        };
        let secs = after.as_secs() + u64::from(after.subsec_nanos() > 0);
        Some(secs.max(1))
    }
}

/// Why [`HoldLayer::for_worker`](super::HoldLayer::for_worker) or
/// [`for_coordinator`](super::HoldLayer::for_coordinator) made no layer.
///
/// # Examples
///
/// ```
/// use backpressure::tower::WorkerHoldError;
///
/// let error = WorkerHoldError::UnknownWorker { name: "send_mail".into(), known: vec!["send_email".into()] };
/// assert_eq!(error.to_string(), "no worker `send_mail` in this runtime; it has: send_email");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum WorkerHoldError {
    /// The runtime has no worker of that name.
    #[error("no worker `{name}` in this runtime; it has: {}", if known.is_empty() { "none".to_owned() } else { known.join(", ") })]
    UnknownWorker {
        /// The name asked for.
        name: String,
        /// The runtime's workers, sorted.
        known: Vec<String>,
    },
    /// The worker has no `defer_on`: no signal ever holds it, so a layer following it would
    /// hold nothing.
    #[error("worker `{worker}` has no `defer_on`: no signal holds it, so there is nothing for a layer to follow")]
    DefersOnNothing {
        /// The worker's name.
        worker: String,
    },
}

/// A wait as a person reads it: whole milliseconds below a second, else seconds to 0.1 s
/// (`1.5 s`, not `1s 502ms 866us 371ns`).
fn readable(waited: Duration) -> String {
    if waited < Duration::from_secs(1) {
        format!("{} ms", waited.as_millis())
    } else {
        format!("{:.1} s", waited.as_secs_f64())
    }
}
