//! The sink's side of verdicts: raising one with its probe source, finding the sources of
//! the half-open verdicts that hold a pattern, and waking the watchers of a verdict whose
//! probe came back (see [`ProbeSource`]).

use std::sync::Arc;

use backpressure_pattern::Pattern;

use super::entries::Raise;
use super::handle::Sink;
use super::level::RaiseOptions;
use super::phase::Phase;
use super::probe::ProbeSource;
use crate::error::SignalError;
use crate::Level;

impl RaiseOptions {
    /// Raise as a verdict in `phase` (see [`Phase`]). Without it an entry is a plain signal.
    /// Raising an active entry again with another phase emits a
    /// [`LevelChanged`](crate::SignalEventKind::LevelChanged) event carrying the new phase.
    pub fn phase(mut self, phase: Phase) -> Self {
        self.phase = Some(phase);
        self
    }
}

impl Sink {
    /// Raises a policy's verdict: like [`raise_with`](Sink::raise_with), with the source of
    /// its probes while it is half-open.
    pub(crate) fn raise_verdict(
        &self,
        name: &str,
        options: RaiseOptions,
        source: Option<Arc<dyn ProbeSource>>,
    ) -> Result<(), SignalError> {
        let source = source.filter(|_| options.phase == Some(Phase::HalfOpen));
        self.raise_entry(Raise {
            name,
            key: options.key.as_deref(),
            ttl: options.ttl,
            level: options.level,
            phase: options.phase,
            source,
        })
    }

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

    /// A probe of `name`'s verdict was given back: wakes the coordinators watching `name`,
    /// so a held one may claim it (after the sink's lock is released).
    pub(crate) fn nudge(&self, name: &str) {
        self.lock_current().nudge(name);
    }
}
