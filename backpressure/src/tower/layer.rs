//! The layer: a sink, a pattern and a mode, shared by every service it wraps.

use std::fmt;
use std::num::NonZeroUsize;
use std::sync::Arc;
use std::time::Duration;

use backpressure_pattern::Pattern;

use super::shared::Shared;
use super::{Hold, HoldMode};
use crate::error::PatternError;
use crate::sink::Sink;

/// A tower [`Layer`](tower::Layer) that holds requests while a signal matching its pattern is
/// raised on a [`Sink`].
///
/// Every service the layer makes (and their clones) shares one counted watch on the sink, so
/// checking the hold is a few atomic operations and a retract wakes the held services
/// directly. See the [module docs](super) for the two modes.
///
/// "Raised" means at level 0 (a plain raise, a breaker's verdict): a signal raised with a
/// level above 0 holds nothing unless the layer has an in-flight limit
/// ([`max_in_flight`](Self::max_in_flight)), which the level then scales.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
///
/// use backpressure::tower::{HoldLayer, HoldMode};
/// use backpressure::{Pattern, Sink};
///
/// let sink = Sink::new();
/// let wait = HoldLayer::wait(&sink, "backpressure.downstream")?;
/// let bounded = HoldLayer::wait_at_most(&sink, "backpressure.*", Duration::from_secs(5))?;
/// let fail_fast = HoldLayer::fail_fast(&sink, "backpressure.db,backpressure.cache")?;
/// assert_eq!(fail_fast.mode(), HoldMode::FailFast);
///
/// // A bad pattern is an error at construction, not at the first request.
/// assert!(HoldLayer::wait(&sink, "backpressure.$").is_err());
///
/// // With a pattern compiled elsewhere:
/// let pattern = Pattern::parse("backpressure.*")?;
/// let layer = HoldLayer::new(&sink, pattern, HoldMode::Wait { max_wait: None });
/// # let _ = (wait, bounded, layer);
/// # Ok::<(), backpressure::error::PatternError>(())
/// ```
#[derive(Clone)]
pub struct HoldLayer {
    shared: Arc<Shared>,
}

impl HoldLayer {
    /// A layer whose services wait in `poll_ready` while a signal matching `pattern` is
    /// raised on `sink`, for as long as it takes.
    ///
    /// # Errors
    ///
    /// [`PatternError`] if `pattern` does not compile.
    pub fn wait(sink: &Sink, pattern: &str) -> Result<Self, PatternError> {
        let mode = HoldMode::Wait { max_wait: None };
        Ok(Self::new(sink, Pattern::parse(pattern)?, mode))
    }

    /// A layer whose services wait in `poll_ready` while a signal matching `pattern` is
    /// raised on `sink`, at most `max_wait`; after that the service becomes ready and `call`
    /// fails with [`HoldError::TimedOut`](super::HoldError::TimedOut) (without reaching the inner service).
    ///
    /// # Errors
    ///
    /// [`PatternError`] if `pattern` does not compile.
    pub fn wait_at_most(
        sink: &Sink,
        pattern: &str,
        max_wait: Duration,
    ) -> Result<Self, PatternError> {
        let mode = HoldMode::Wait {
            max_wait: Some(max_wait),
        };
        Ok(Self::new(sink, Pattern::parse(pattern)?, mode))
    }

    /// A layer whose services fail `call` with [`HoldError::Rejected`](super::HoldError::Rejected) while a signal
    /// matching `pattern` is raised on `sink`.
    ///
    /// # Errors
    ///
    /// [`PatternError`] if `pattern` does not compile.
    pub fn fail_fast(sink: &Sink, pattern: &str) -> Result<Self, PatternError> {
        Ok(Self::new(
            sink,
            Pattern::parse(pattern)?,
            HoldMode::FailFast,
        ))
    }

    /// A layer on a compiled pattern, in the given mode.
    pub fn new(sink: &Sink, pattern: Pattern, mode: HoldMode) -> Self {
        Self {
            shared: Arc::new(Shared::new(sink, pattern, mode, None)),
        }
    }

    /// The same layer with an in-flight limit: its services (all of them together) pass on
    /// at most `max` calls at a time, and while levelled signals match, at most
    /// `max(1, floor(max × level))` for the lowest of their levels
    /// ([`Level::limit`](crate::Level::limit)); a level-0 signal still holds every request.
    /// A call is in flight from `call` until its response future completes or is dropped
    /// (in wait mode, from the `poll_ready` that returned `Ready`).
    ///
    /// Beyond the limit, wait mode waits in `poll_ready` (woken when a call finishes or the
    /// level rises); fail-fast mode fails `call` with
    /// [`HoldError::Rejected`](super::HoldError::Rejected) naming the levelled signal, or
    /// [`HoldError::Saturated`](super::HoldError::Saturated) when no signal lowered the limit.
    ///
    /// Without an in-flight limit, a levelled signal (level above 0) holds nothing: only a
    /// level-0 signal, such as a plain raise or an open breaker's verdict, holds.
    ///
    /// The returned layer has its own count: services made by `self` before are not counted.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::future::pending;
    /// use std::num::NonZeroUsize;
    ///
    /// use backpressure::tower::{HoldError, HoldLayer};
    /// use backpressure::{Level, RaiseOptions, Sink};
    /// use tower::{service_fn, Service, ServiceBuilder, ServiceExt};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), tower::BoxError> {
    /// let sink = Sink::new();
    /// let max = NonZeroUsize::new(10).expect("not zero");
    /// let slow = |_: u32| pending::<Result<(), tower::BoxError>>();
    /// let mut api = ServiceBuilder::new()
    ///     .layer(HoldLayer::fail_fast(&sink, "backpressure.*")?.max_in_flight(max))
    ///     .service(service_fn(slow));
    ///
    /// // An adaptive limit at 30 %: 3 of the 10 calls may be in flight.
    /// let level = Level::new(0.3)?;
    /// sink.raise_with("backpressure.smtp", RaiseOptions::new().level(level))?;
    /// let mut in_flight = Vec::new();
    /// for request in 0..3 {
    ///     in_flight.push(api.ready().await?.call(request));
    /// }
    /// let error = api.ready().await?.call(3).await.unwrap_err();
    /// assert!(matches!(
    ///     error.downcast_ref::<HoldError>(),
    ///     Some(HoldError::Rejected { signal, .. }) if &**signal == "backpressure.smtp"
    /// ));
    ///
    /// // Dropping a response future ends its call: one more may go out.
    /// in_flight.pop();
    /// in_flight.push(api.ready().await?.call(4));
    /// # Ok(())
    /// # }
    /// ```
    pub fn max_in_flight(self, max: NonZeroUsize) -> Self {
        let shared = &self.shared;
        Self {
            shared: Arc::new(shared.with(Some(max), shared.mode, shared.resume.clone())),
        }
    }

    /// The same layer in another mode (with its own in-flight count).
    pub fn with_mode(self, mode: HoldMode) -> Self {
        let shared = &self.shared;
        Self {
            shared: Arc::new(shared.with(shared.max_in_flight, mode, shared.resume.clone())),
        }
    }

    /// The same layer, holding nothing while a signal matching `resume` is raised (a
    /// worker's `resume_on`).
    pub(super) fn resume_on(self, resume: Option<Pattern>) -> Self {
        let shared = &self.shared;
        Self {
            shared: Arc::new(shared.with(shared.max_in_flight, shared.mode, resume)),
        }
    }

    /// The pattern that holds requests.
    pub fn pattern(&self) -> &Pattern {
        &self.shared.pattern
    }

    /// What the services do while a matching signal is raised.
    pub fn mode(&self) -> HoldMode {
        self.shared.mode
    }

    /// The in-flight limit set by [`max_in_flight`](Self::max_in_flight), if any.
    pub fn in_flight_limit(&self) -> Option<NonZeroUsize> {
        self.shared.max_in_flight
    }
}

impl<S> tower::Layer<S> for HoldLayer {
    type Service = Hold<S>;

    fn layer(&self, inner: S) -> Hold<S> {
        Hold::new(inner, Arc::clone(&self.shared))
    }
}

impl fmt::Debug for HoldLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.shared.fmt(f)
    }
}
