//! The sink's side of verdicts: raising one with its probe source, finding the sources of
//! the half-open verdicts that hold a pattern, claiming a probe on one for someone else, and
//! waking the watchers of a verdict whose probe came back (see [`ProbeSource`]).

use std::sync::Arc;

use backpressure_pattern::Pattern;

use super::handle::Sink;
use super::level::RaiseOptions;
use super::phase::Phase;
use super::probe::{ProbeSource, ProbeTicket, SharedSource};
use crate::Level;

impl RaiseOptions {
    /// Raise as a verdict in `phase` (see [`Phase`]). Without it an entry is a plain signal.
    /// Raising an active entry again with another phase emits a
    /// [`LevelChanged`](crate::SignalEventKind::LevelChanged) event carrying the new phase.
    pub fn phase(mut self, phase: Phase) -> Self {
        self.phase = Some(phase);
        self
    }

    /// Who hands out the probes of this verdict while it is [`Phase::HalfOpen`] (ignored in
    /// any other phase). A half-open verdict without a source lets nothing pass: nobody could
    /// decide it. Raising the entry again replaces its source. For connectors mirroring a
    /// verdict raised elsewhere; see [`ProbeSource`] for an example.
    pub fn probe_source(mut self, source: Arc<dyn ProbeSource>) -> Self {
        self.source = Some(SharedSource(source));
        self
    }

    /// When this verdict expects to change next (an open breaker's half-open instant),
    /// shown as [`ActiveSignal::next_transition`](crate::ActiveSignal::next_transition):
    /// what a `Retry-After` should say, rather than the TTL its owner keeps refreshing.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use backpressure::{Phase, RaiseOptions, Sink};
    /// use tokio::time::Instant;
    ///
    /// let sink = Sink::new();
    /// let half_open_at = Instant::now() + Duration::from_secs(2);
    /// let options = RaiseOptions::new()
    ///     .key("mailer")
    ///     .ttl(Duration::from_secs(15))
    ///     .phase(Phase::Open)
    ///     .next_transition(half_open_at);
    /// sink.raise_with("backpressure.smtp", options)?;
    /// assert_eq!(sink.snapshot()[0].next_transition, Some(half_open_at));
    /// # Ok::<(), backpressure::error::SignalError>(())
    /// ```
    pub fn next_transition(mut self, at: tokio::time::Instant) -> Self {
        self.next_transition = Some(at);
        self
    }
}

impl Sink {
    /// The probe sources of the half-open verdicts at [`Level::STOP`] matching `pattern`
    /// (those that hold its watchers), or `None` if one of them has no source (nobody can
    /// hand out its probes, so nothing may pass it). Scans the active entries: called only
    /// on the probe path, by a slot held only by half-open verdicts.
    pub(crate) fn probe_sources(&self, pattern: &Pattern) -> Option<Vec<Arc<dyn ProbeSource>>> {
        let state = self.lock_current();
        let mut sources = Vec::new();
        for (_, keys) in state.names.iter().filter(|(name, _)| pattern.matches(name)) {
            for entry in keys.values() {
                if entry.level == Level::STOP && entry.phase == Some(Phase::HalfOpen) {
                    sources.push(Arc::clone(entry.source.as_ref()?));
                }
            }
        }
        Some(sources)
    }

    /// Claims one probe of the half-open verdict `(name, key)` on behalf of a worker this
    /// sink's coordinators do not run (a connector lends it to another process): `None` if
    /// the entry is not a half-open verdict with a source, or it has no probe left.
    ///
    /// # Examples
    ///
    /// See [`ProbeSource`](crate::connector::ProbeSource).
    pub fn claim_probe(&self, name: &str, key: Option<&str>) -> Option<ProbeTicket> {
        let source = {
            let state = self.lock_current();
            let entry = state.names.get(name)?.get(&key.map(Arc::from))?;
            if entry.phase != Some(Phase::HalfOpen) {
                return None;
            }
            Arc::clone(entry.source.as_ref()?)
        };
        // The source's own lock is taken with the sink's released.
        let ticket = source.claim()?;
        Some(ProbeTicket::new(source, ticket))
    }

    /// Tells the coordinators held by half-open verdicts of `name` that a probe may be
    /// claimed now: they look again. For a connector whose [`ProbeSource`] was just granted a
    /// probe by the verdict's owner; anyone else's call only costs a look.
    ///
    /// # Examples
    ///
    /// ```
    /// let sink = backpressure::Sink::new();
    /// sink.probes_available("backpressure.smtp"); // nothing watches it: nothing happens
    /// ```
    pub fn probes_available(&self, name: &str) {
        self.lock_current().nudge(name);
    }

    /// A probe of the verdict `(name, key)` was given back: wakes the coordinators watching
    /// `name`, so a held one may claim it, and emits a
    /// [`ProbeReturned`](crate::SignalEventKind::ProbeReturned) event (after the sink's lock is
    /// released).
    pub(crate) fn probe_returned(&self, name: &str, key: &str) {
        let mut state = self.lock_current();
        state.nudge(name);
        state.probe_returned(&self.shared.events, name, key);
    }
}
