//! What a layer and every service it makes share: the sink's counted watch on one pattern,
//! and the count of calls in flight under the layer's limit.

use std::fmt;
use std::num::NonZeroUsize;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use backpressure_pattern::Pattern;
use tokio::sync::Notify;
use tokio::time::Instant;

use super::in_flight::{Calls, InFlight};
use super::{HoldError, HoldMode};
use crate::sink::{ActiveSignal, Sink, WatchHandle};
use crate::Level;

/// What a layer and all its services share.
pub(super) struct Shared {
    sink: Sink,
    pub(super) pattern: Pattern,
    /// A worker's `resume_on` (see [`HoldLayer::for_worker`](super::HoldLayer::for_worker)):
    /// while a matching signal is raised, nothing is held.
    pub(super) resume: Option<Pattern>,
    pub(super) mode: HoldMode,
    /// The most calls in flight at once, scaled by the level of a levelled signal.
    pub(super) max_in_flight: Option<NonZeroUsize>,
    /// Calls passed on whose response future has not finished or been dropped.
    pub(super) in_flight: Arc<Calls>,
    /// Notified by the sink whenever the watch flips or its level rises.
    pub(super) changed: Arc<Notify>,
    /// Registered on first use, so that it happens inside the runtime that drives the
    /// services: the sink then expires TTL entries on that runtime too.
    watch: OnceLock<WatchHandle>,
    resume_watch: OnceLock<WatchHandle>,
}

/// What the hold says about a request now.
pub(super) enum Admission {
    /// The request may go out; under an in-flight limit, counted by the permit.
    Pass(Option<InFlight>),
    /// A matching signal of level 0 is raised.
    Stopped,
    /// The in-flight limit under this level is reached ([`Level::FULL`]: the layer's own
    /// `max_in_flight`, no signal lowers it).
    Limited(Level),
}

impl Shared {
    /// The state of a new layer; the watch is registered on first use.
    pub(super) fn new(
        sink: &Sink,
        pattern: Pattern,
        mode: HoldMode,
        max_in_flight: Option<NonZeroUsize>,
    ) -> Self {
        Self {
            sink: sink.clone(),
            pattern,
            resume: None,
            mode,
            max_in_flight,
            in_flight: Arc::default(),
            changed: Arc::new(Notify::new()),
            watch: OnceLock::new(),
            resume_watch: OnceLock::new(),
        }
    }

    /// The same layer with another in-flight limit, mode or `resume_on` (and its own count
    /// and watches).
    pub(super) fn with(
        &self,
        max_in_flight: Option<NonZeroUsize>,
        mode: HoldMode,
        resume: Option<Pattern>,
    ) -> Self {
        let mut shared = Self::new(&self.sink, self.pattern.clone(), mode, max_in_flight);
        shared.resume = resume;
        shared
    }

    /// The lowest level among the matching signals, `None` if none is raised or a `resume`
    /// signal is. O(1).
    fn level(&self) -> Option<Level> {
        let watch = self
            .watch
            .get_or_init(|| self.sink.watch(self.pattern.clone(), &self.changed));
        let level = watch.min_level();
        let resumed = self.resume.as_ref().is_some_and(|resume| {
            self.resume_watch
                .get_or_init(|| self.sink.watch(resume.clone(), &self.changed))
                .is_active()
        });
        (watch.is_active() && !resumed).then_some(level)
    }

    /// Whether a request may go out now and, under an in-flight limit, counts it. Without a
    /// limit only a level-0 signal holds; with one, at most `max(1, floor(n × level))` calls
    /// are in flight (`n` without a levelled signal). O(1).
    pub(super) fn admit(&self) -> Admission {
        let level = self.level();
        if level == Some(Level::STOP) {
            return Admission::Stopped;
        }
        let Some(max_in_flight) = self.max_in_flight else {
            return Admission::Pass(None);
        };
        let level = level.unwrap_or(Level::FULL);
        let limit = level.limit(max_in_flight.get());
        match self.in_flight.try_take(limit) {
            Some(permit) => Admission::Pass(Some(permit)),
            None => Admission::Limited(level),
        }
    }

    /// Fail-fast mode: admits a request called now, or the rejection saying why not.
    pub(super) fn admit_or_reject(&self) -> Result<Option<InFlight>, HoldError> {
        loop {
            let rejection = match self.admit() {
                Admission::Pass(permit) => return Ok(permit),
                Admission::Stopped => self.rejection(|level| level == Level::STOP),
                Admission::Limited(Level::FULL) => {
                    return Err(HoldError::Saturated {
                        max_in_flight: self.max_in_flight.map_or(0, NonZeroUsize::get),
                    })
                }
                Admission::Limited(_) => self.rejection(|level| level < Level::FULL),
            };
            // The holding signals went away between the two looks: admit afresh.
            if let Some(rejection) = rejection {
                return Err(rejection);
            }
        }
    }

    /// The rejection naming the matching signals whose level `holds`: the lowest level's
    /// first by name, and when every one of them expires. Scans the sink's snapshot.
    fn rejection(&self, holds: impl Fn(Level) -> bool) -> Option<HoldError> {
        let holding: Vec<ActiveSignal> = self
            .sink
            .snapshot()
            .into_iter()
            .filter(|active| holds(active.level) && self.pattern.matches(&active.name))
            .collect();
        let lowest = holding.iter().map(|active| active.level).min()?;
        let first = holding.iter().find(|active| active.level == lowest)?;
        let now = Instant::now();
        let retry_after = holding
            .iter()
            .map(|active| {
                // A verdict says when it changes next (an open breaker's half-open
                // instant); its TTL is only refreshed while it lasts.
                active
                    .next_transition
                    .or(active.expires_at)
                    .map(|at| at.saturating_duration_since(now))
            })
            .try_fold(Duration::ZERO, |latest, left| Some(latest.max(left?)));
        Some(HoldError::Rejected {
            signal: Arc::clone(&first.name),
            retry_after,
        })
    }
}

impl fmt::Debug for Shared {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HoldLayer")
            .field("pattern", &self.pattern)
            .field("mode", &self.mode)
            .field("max_in_flight", &self.max_in_flight)
            .finish_non_exhaustive()
    }
}
