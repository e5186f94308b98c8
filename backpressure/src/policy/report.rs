//! What policies tell the world: their state, why it changed, and each change.

use std::fmt;
use std::time::Duration;

use super::{BreakerReason, BreakerState, WindowCounts};

/// A policy's state, as shown in events and [`PolicyInfo`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PolicyState {
    /// A breaker's state.
    Breaker(BreakerState),
    /// An adaptive policy's current limit (out of its `max`).
    Limit(u32),
    /// A watermark: whether its signal is raised, and the queue depth.
    Watermark {
        /// Whether the signal is raised.
        raised: bool,
        /// The queue depth as last seen.
        depth: usize,
    },
}

impl fmt::Display for PolicyState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PolicyState::Breaker(BreakerState::Closed) => f.write_str("closed"),
            PolicyState::Breaker(BreakerState::Open) => f.write_str("open"),
            PolicyState::Breaker(BreakerState::HalfOpen) => f.write_str("half-open"),
            PolicyState::Limit(limit) => write!(f, "limit {limit}"),
            PolicyState::Watermark {
                raised: true,
                depth,
            } => write!(f, "raised at depth {depth}"),
            PolicyState::Watermark {
                raised: false,
                depth,
            } => write!(f, "clear at depth {depth}"),
        }
    }
}

/// Why a policy changed state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ChangeReason {
    /// A breaker's reason.
    Breaker(BreakerReason),
    /// An adaptive window ended with failures or slow calls: the limit shrank.
    BadWindow,
    /// An adaptive window ended healthy (no failures or slow calls, busy or idle): the
    /// limit grew by one.
    HealthyWindow,
    /// A watermark's queue stayed backed up for `hold_for`.
    BackedUp,
    /// A watermark's queue drained below `low`.
    Drained,
}

/// One state change of a policy, carried by
/// [`SignalEventKind::PolicyChanged`](crate::SignalEventKind::PolicyChanged) events.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct PolicyChange {
    /// `error_rate`, `slow_call`, `adaptive` or `watermark` (the name it is configured under).
    pub policy: &'static str,
    /// The state before.
    pub from: PolicyState,
    /// The state after.
    pub to: PolicyState,
    /// Why.
    pub reason: ChangeReason,
    /// The window's counts at the change.
    pub counts: WindowCounts,
}

/// What a policy's state is measured against, for a dashboard's badge: a breaker's probes, an
/// adaptive policy's `max`, a watermark's thresholds in items.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
#[non_exhaustive]
pub enum PolicyDetail {
    /// A breaker (`error_rate`, `slow_call`).
    Breaker {
        /// Probes it lets through per half-open period.
        probes: u32,
        /// Probes handed out in the current half-open period (0 unless half-open).
        probes_started: u32,
    },
    /// An adaptive limit.
    Adaptive {
        /// The highest limit (its state's limit is out of this).
        max: u32,
    },
    /// A watermark on the queue.
    Watermark {
        /// The depth at which the queue counts as backed up (`ceil(high × capacity)`).
        raise_at: usize,
        /// The depth at or below which a raised signal is retracted (`floor(low × capacity)`).
        retract_at: usize,
    },
}

/// A policy's current state, for [`Coordinator::policies`](crate::Coordinator::policies).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct PolicyInfo {
    /// `error_rate`, `slow_call`, `adaptive` or `watermark` (the name it is configured under).
    pub policy: &'static str,
    /// The signal it raises.
    pub signal: String,
    /// Its state.
    pub state: PolicyState,
    /// The counts of its current window.
    pub counts: WindowCounts,
    /// How long until its next timed transition (open → half-open, a probe timeout, the end
    /// of an adaptive window), if one is scheduled.
    #[serde(with = "humantime_serde")]
    pub next_transition_in: Option<Duration>,
    /// What its state is measured against (probes, `max`, thresholds).
    pub detail: PolicyDetail,
}
