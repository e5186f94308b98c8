//! The layer: a sink, a pattern and a mode, shared by every service it wraps.

use std::fmt;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use backpressure_pattern::Pattern;
use tokio::sync::Notify;
use tokio::time::Instant;

use super::{Hold, HoldError};
use crate::error::PatternError;
use crate::sink::{Sink, WatchHandle};

/// What a [`Hold`] service does while a matching signal is raised.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum HoldMode {
    /// `poll_ready` stays pending until no matching signal is raised, woken by the sink.
    Wait {
        /// After this long the service becomes ready anyway and `call` fails with
        /// [`HoldError::TimedOut`]; `None` waits as long as it takes.
        max_wait: Option<Duration>,
    },
    /// `poll_ready` is the inner service's; `call` fails with [`HoldError::Rejected`] while
    /// a matching signal is raised.
    FailFast,
}

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
/// # Ok::<(), backpressure::PatternError>(())
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
    /// fails with [`HoldError::TimedOut`] (without reaching the inner service).
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

    /// A layer whose services fail `call` with [`HoldError::Rejected`] while a signal
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
            shared: Arc::new(Shared {
                sink: sink.clone(),
                pattern,
                mode,
                changed: Arc::new(Notify::new()),
                watch: OnceLock::new(),
            }),
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

/// What a layer and all its services share.
pub(super) struct Shared {
    sink: Sink,
    pub(super) pattern: Pattern,
    pub(super) mode: HoldMode,
    /// Notified by the sink whenever the watch flips (and on other changes that concern it).
    pub(super) changed: Arc<Notify>,
    /// Registered on first use, so that it happens inside the runtime that drives the
    /// services: the sink then expires TTL entries on that runtime too.
    watch: OnceLock<WatchHandle>,
}

impl Shared {
    /// Whether a matching signal is raised. O(1).
    pub(super) fn is_raised(&self) -> bool {
        self.watch
            .get_or_init(|| self.sink.watch(self.pattern.clone(), &self.changed))
            .is_active()
    }

    /// The rejection for a request called now, or `None` if no matching signal is raised.
    /// Scans the sink's snapshot only when the O(1) check says a signal is raised.
    pub(super) fn rejection(&self) -> Option<HoldError> {
        if !self.is_raised() {
            return None;
        }
        let matching: Vec<_> = self
            .sink
            .snapshot()
            .into_iter()
            .filter(|active| self.pattern.matches(&active.name))
            .collect();
        // Retracted between the check and the snapshot: nothing to reject for.
        let signal = Arc::clone(&matching.first()?.name);
        let now = Instant::now();
        let retry_after = matching
            .iter()
            .map(|active| {
                active
                    .expires_at
                    .map(|at| at.saturating_duration_since(now))
            })
            .try_fold(Duration::ZERO, |latest, left| Some(latest.max(left?)));
        Some(HoldError::Rejected {
            signal,
            retry_after,
        })
    }
}

impl fmt::Debug for Shared {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HoldLayer")
            .field("pattern", &self.pattern)
            .field("mode", &self.mode)
            .finish_non_exhaustive()
    }
}
