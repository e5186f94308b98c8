//! Probes through half-open verdicts: who hands them out, and the claim a probe item carries.
//!
//! A half-open verdict entry carries its [`ProbeSource`] (a breaker's, from the policy
//! driver). A coordinator held only by half-open verdicts collects the sources of those that
//! hold it (`Sink::probe_sources` in `verdict.rs`, cloned under the sink's lock), then, with the sink's
//! lock released, claims one probe from every one of them ([`ProbeClaim::claim_all`], all or
//! nothing). The claim travels with the item: its outcome is reported to every source
//! ([`ProbeClaim::report`]); a claim dropped without a report (the item was skipped, cut
//! short by shutdown, or its task dropped) gives its probes back, and each source then nudges
//! the watchers of its signal (`Sink::nudge`) so another held item may probe.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

/// Hands out the probes of one half-open verdict. Implemented by the policy driver for a
/// breaker; a bridge mirroring another process's verdict could implement it by claiming on
/// the shared entry. A source whose owner is gone answers every claim with `None` and ignores
/// reports.
///
/// Called with no lock of the sink held; an implementation must not call back into a
/// coordinator's state.
pub(crate) trait ProbeSource: Send + Sync + fmt::Debug {
    /// Whether a probe is left to claim (a hint: another claimer may take it first).
    fn available(&self) -> bool;

    /// Claims one probe: its ticket, or `None` if none is left.
    fn claim(&self) -> Option<u64>;

    /// The probe `ticket` finished after `elapsed`; `failed` for an error or a panic.
    fn finished(&self, ticket: u64, failed: bool, elapsed: Duration);

    /// The probe `ticket` ended without an outcome: it is handed out again, and the
    /// coordinators watching the verdict's signal are woken to take it.
    fn give_back(&self, ticket: u64);
}

/// The probes one item holds: one ticket from each half-open verdict it passes. Dropping it
/// without [`report`](Self::report) gives every probe back.
#[derive(Debug, Default)]
pub(crate) struct ProbeClaim {
    tickets: Vec<(Arc<dyn ProbeSource>, u64)>,
}

impl ProbeClaim {
    /// Claims one probe from every source, or none at all: what was claimed before a source
    /// said no is given back. `None` also for no sources (there is nothing to probe).
    ///
    /// Nothing is claimed unless every source has a probe left, so a holder that cannot
    /// pass one verdict does not keep taking and giving back (and waking everyone for) the
    /// others' probes; only a claimer that lost a race gives back, and wakes the watchers.
    pub(crate) fn claim_all(sources: Vec<Arc<dyn ProbeSource>>) -> Option<Self> {
        if sources.is_empty() || !sources.iter().all(|source| source.available()) {
            return None;
        }
        let mut claim = Self::default();
        for source in sources {
            claim.try_add(source)?;
        }
        Some(claim)
    }

    /// Claims one probe from `source` unless this claim already holds one of it; returns
    /// `None` if the source has none left.
    pub(crate) fn try_add(&mut self, source: Arc<dyn ProbeSource>) -> Option<()> {
        if self.holds(&source) {
            return Some(());
        }
        let ticket = source.claim()?;
        self.tickets.push((source, ticket));
        Some(())
    }

    /// Whether it holds a probe of `source`.
    pub(crate) fn holds(&self, source: &Arc<dyn ProbeSource>) -> bool {
        let wanted = Arc::as_ptr(source).cast::<()>();
        self.tickets
            .iter()
            .any(|(held, _)| Arc::as_ptr(held).cast::<()>() == wanted)
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.tickets.is_empty()
    }

    /// The item finished: its outcome counts for every verdict it passed.
    pub(crate) fn report(mut self, failed: bool, elapsed: Duration) {
        for (source, ticket) in std::mem::take(&mut self.tickets) {
            source.finished(ticket, failed, elapsed);
        }
    }
}

impl Drop for ProbeClaim {
    fn drop(&mut self) {
        for (source, ticket) in std::mem::take(&mut self.tickets) {
            source.give_back(ticket);
        }
    }
}
