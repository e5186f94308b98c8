//! Probes through half-open verdicts: who hands them out, and the claim a probe item carries.
//!
//! A half-open verdict entry carries its [`ProbeSource`] (a breaker's, from the policy
//! driver). A coordinator held only by half-open verdicts collects the sources of those that
//! hold it (`Sink::probe_sources` in `verdict.rs`, cloned under the sink's lock), then, with the sink's
//! lock released, claims one probe from every one of them ([`ProbeClaim::claim_all`], all or
//! nothing). The claim travels with the item: its outcome is reported to every source
//! ([`ProbeClaim::report`]); a claim dropped without a report (the item was skipped, cut
//! short by shutdown, or its task dropped) gives its probes back, and each source then nudges
//! the watchers of its signal (`Sink::probe_returned`) so another held item may probe.
//!
//! The public side, for connectors: [`ProbeSource`] for a verdict mirrored from elsewhere,
//! and [`ProbeTicket`], a probe a connector claims on a local verdict for someone else
//! (`Sink::claim_probe`).

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

/// Hands out the probes of one half-open verdict.
///
/// A breaker's verdict carries its own; a connector that mirrors a verdict raised elsewhere
/// (another process's, through Redis) attaches one with
/// [`RaiseOptions::probe_source`](crate::RaiseOptions::probe_source) that asks the verdict's
/// owner. A coordinator held only by half-open verdicts claims one probe from each of them
/// and starts its next item as their probe; the item's outcome is reported to each with
/// [`finished`](Self::finished), or, if it ends without one, its probe is handed back with
/// [`give_back`](Self::give_back). A source whose owner is gone answers every claim with
/// `None` and ignores reports.
///
/// Called from the coordinators' tasks with none of this crate's locks held; an
/// implementation must not block (a remote source asks asynchronously and, once granted a
/// probe, calls [`Sink::probes_available`](crate::Sink::probes_available) so that held
/// workers look again).
///
/// # Examples
///
/// A source that hands out one probe and records the outcome:
///
/// ```
/// use std::sync::{Arc, Mutex};
/// use std::time::Duration;
/// use backpressure::connector::ProbeSource;
/// use backpressure::{Phase, RaiseOptions, Sink};
///
/// #[derive(Debug, Default)]
/// struct OneProbe { taken: Mutex<bool>, outcome: Mutex<Option<bool>> }
///
/// impl ProbeSource for OneProbe {
///     fn available(&self) -> bool { !*self.taken.lock().unwrap() }
///     fn claim(&self) -> Option<u64> {
///         let mut taken = self.taken.lock().unwrap();
///         (!*taken).then(|| { *taken = true; 1 })
///     }
///     fn finished(&self, _ticket: u64, failed: bool, _elapsed: Duration) {
///         *self.outcome.lock().unwrap() = Some(failed);
///     }
///     fn give_back(&self, _ticket: u64) { *self.taken.lock().unwrap() = false; }
/// }
///
/// let sink = Sink::new();
/// let source = Arc::new(OneProbe::default());
/// let options = RaiseOptions::new()
///     .key("other-process/mailer")
///     .phase(Phase::HalfOpen)
///     .probe_source(source.clone());
/// sink.raise_with("backpressure.smtp", options)?;
///
/// let probe = sink.claim_probe("backpressure.smtp", Some("other-process/mailer")).unwrap();
/// probe.finish(false, Duration::from_millis(20));
/// assert_eq!(*source.outcome.lock().unwrap(), Some(false));
/// # Ok::<(), backpressure::error::SignalError>(())
/// ```
pub trait ProbeSource: Send + Sync + fmt::Debug {
    /// Whether a probe is left to claim (a hint: another claimer may take it first).
    fn available(&self) -> bool;

    /// Claims one probe: its ticket, or `None` if none is left.
    fn claim(&self) -> Option<u64>;

    /// The probe `ticket` finished after `elapsed`; `failed` for an error or a panic.
    fn finished(&self, ticket: u64, failed: bool, elapsed: Duration);

    /// The probe `ticket` ended without an outcome: it is handed out again, and the
    /// coordinators watching the verdict's signal are woken to take it.
    fn give_back(&self, ticket: u64);

    /// Whether the verdict is another process's (mirrored by a connector). A worker held
    /// only by half-open verdicts claims a probe from each of this process's own; it passes
    /// the other processes' half-open verdicts without claiming from them (their owners
    /// probe them too, as DESIGN's "probes and other verdicts" rule has it), so that
    /// processes whose breakers hold each other never wait for each other's probes. Only a
    /// worker held by other processes' verdicts alone claims from them. `false` by default.
    fn is_remote(&self) -> bool {
        false
    }
}

/// One probe claimed from a verdict's [`ProbeSource`] with
/// [`Sink::claim_probe`](crate::Sink::claim_probe): report its outcome with
/// [`finish`](Self::finish); dropping it unreported hands the probe back (see
/// [`ProbeSource`] for an example).
#[derive(Debug)]
pub struct ProbeTicket {
    source: Arc<dyn ProbeSource>,
    ticket: Option<u64>,
}

impl ProbeTicket {
    pub(crate) fn new(source: Arc<dyn ProbeSource>, ticket: u64) -> Self {
        Self {
            source,
            ticket: Some(ticket),
        }
    }

    /// The probe ran for `elapsed` and `failed` (an error or a panic) or not: its outcome
    /// decides the verdict as its owner's own probe would.
    pub fn finish(mut self, failed: bool, elapsed: Duration) {
        if let Some(ticket) = self.ticket.take() {
            self.source.finished(ticket, failed, elapsed);
        }
    }
}

impl Drop for ProbeTicket {
    fn drop(&mut self) {
        if let Some(ticket) = self.ticket.take() {
            self.source.give_back(ticket);
        }
    }
}

/// A probe source attached to [`RaiseOptions`](crate::RaiseOptions), compared by identity.
#[derive(Debug, Clone)]
pub(crate) struct SharedSource(pub(crate) Arc<dyn ProbeSource>);

impl PartialEq for SharedSource {
    fn eq(&self, other: &Self) -> bool {
        Arc::as_ptr(&self.0).cast::<()>() == Arc::as_ptr(&other.0).cast::<()>()
    }
}

impl Eq for SharedSource {}

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
    ///
    /// If any source is this process's own, only those are claimed: the other processes'
    /// half-open verdicts are passed (see [`ProbeSource::is_remote`]).
    pub(crate) fn claim_all(mut sources: Vec<Arc<dyn ProbeSource>>) -> Option<Self> {
        if sources.iter().any(|source| !source.is_remote()) {
            sources.retain(|source| !source.is_remote());
        }
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
