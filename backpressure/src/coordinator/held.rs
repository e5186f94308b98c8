//! [`HeldBy`]: what holds a coordinator's next start, as [`held_by`](crate::Coordinator::held_by)
//! names it.

use crate::connector::PermitCounts;
use crate::ActiveSignal;

/// What holds a coordinator's next start (for operators and dashboards).
///
/// In order of precedence: a signal matching `defer_on` (the one with the lowest level: it
/// sets [`Stats::limit`](crate::Stats::limit)), a pause, the fleet's permits of a
/// `global_concurrency` (none granted to this process is free), the worker's
/// [`rate`](crate::limit::Rate).
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum HeldBy {
    /// A `defer_on` signal: its entry.
    Signal(ActiveSignal),
    /// [`pause`](crate::Coordinator::pause).
    Paused,
    /// A start waits for a permit of the worker's `global_concurrency`.
    Permits(PermitCounts),
    /// The worker's rate: the head's start is due at a later instant.
    Rate,
}

impl HeldBy {
    /// The signal, if a signal holds.
    pub fn signal(&self) -> Option<&ActiveSignal> {
        match self {
            Self::Signal(signal) => Some(signal),
            _ => None,
        }
    }

    /// A short word for it: the signal's name, `paused`, `permits` or `rate`.
    pub fn describe(&self) -> String {
        match self {
            Self::Signal(signal) => signal.name.to_string(),
            Self::Paused => "paused".into(),
            Self::Permits(_) => "permits".into(),
            Self::Rate => "rate".into(),
        }
    }
}
