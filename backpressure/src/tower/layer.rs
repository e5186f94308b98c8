//! The layer: a sink, a pattern and a mode, shared by every service it wraps.

use std::fmt;
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
/// checking the hold is one atomic load and a retract wakes the held services directly. See
/// the [module docs](super) for the two modes.
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
            shared: Arc::new(Shared::new(sink, pattern, mode)),
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
