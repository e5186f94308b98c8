//! Health policies: signals that raise themselves.
//!
//! A policy watches its worker's own outcomes and turns its verdict into a signal on the
//! worker's sink, keyed by the worker's name and raised with a time-to-live it keeps
//! refreshing. Every coordinator that defers on that signal backs off together — in this
//! process, and in every process sharing the sink. Per-client breakers (resilience4j, Polly,
//! failsafe, Envoy's adaptive concurrency) each protect one client; here the verdict is
//! published.
//!
//! * [`Breaker::error_rate`] and [`Breaker::slow_call`]: a circuit breaker over a sliding
//!   window, with half-open probes reserved to the owning worker.
//! * [`Adaptive`]: an AIMD concurrency limit published as a [`Level`](crate::Level).
//! * [`Watermark`]: the worker's own queue backing up (depth or age).
//!
//! Attach them with [`CoordinatorBuilder::policy`](crate::CoordinatorBuilder::policy); see
//! their current state with [`Coordinator::policies`](crate::Coordinator::policies); every
//! state change is a [`SignalEventKind::PolicyChanged`](crate::SignalEventKind::PolicyChanged)
//! event on the sink's subscription and an INFO `tracing` event.

mod adaptive;
mod breaker;
mod driver;
mod watermark;
mod window;

use std::fmt;
use std::time::Duration;

use backpressure_pattern::options::policies::{PolicyKind, PolicySpec};
use backpressure_pattern::options::OptionError;

pub use adaptive::Adaptive;
pub use breaker::{Breaker, BreakerState, Reason};
pub(crate) use driver::{held_only_by, Host, Policies};
pub use watermark::Watermark;
pub use window::WindowCounts;

/// A health policy of a worker; see the [module docs](self).
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Policy {
    /// A circuit breaker ([`Breaker::error_rate`] or [`Breaker::slow_call`]).
    Breaker(Breaker),
    /// An adaptive limit.
    Adaptive(Adaptive),
    /// A queue watermark.
    Watermark(Watermark),
}

impl Policy {
    /// The signal the policy raises.
    pub fn signal(&self) -> &str {
        match self {
            Policy::Breaker(b) => b.signal(),
            Policy::Adaptive(a) => a.signal(),
            Policy::Watermark(w) => w.signal(),
        }
    }

    /// The policy's name as written in configuration: `error_rate`, `slow_call`,
    /// `adaptive` or `watermark`.
    pub fn kind(&self) -> &'static str {
        let kind = match self {
            Policy::Breaker(b) => b.kind(),
            Policy::Adaptive(_) => PolicyKind::Adaptive,
            Policy::Watermark(_) => PolicyKind::Watermark,
        };
        kind.name()
    }

    /// Checks every value and the signal name, by the rules of
    /// `backpressure_pattern::options::policies` (the attribute and config files use the
    /// same rules).
    ///
    /// # Errors
    ///
    /// A [`PolicyError`] naming the policy and the field, in the rule's words.
    pub fn validate(&self) -> Result<(), PolicyError> {
        match self {
            Policy::Breaker(b) => b.validate(),
            Policy::Adaptive(a) => a.validate(),
            Policy::Watermark(w) => w.validate(),
        }
    }
}

impl From<Breaker> for Policy {
    fn from(breaker: Breaker) -> Self {
        Policy::Breaker(breaker)
    }
}

impl From<Watermark> for Policy {
    fn from(watermark: Watermark) -> Self {
        Policy::Watermark(watermark)
    }
}

impl From<Adaptive> for Policy {
    fn from(adaptive: Adaptive) -> Self {
        Policy::Adaptive(adaptive)
    }
}

/// A policy value that breaks its rule (the rules and their words are those of
/// `backpressure_pattern::options::policies`, shared with the attribute and config files).
///
/// # Examples
///
/// ```
/// use backpressure::{Breaker, Policy};
///
/// let err = Policy::from(Breaker::error_rate("backpressure.smtp").failure_ratio(1.5))
///     .validate()
///     .unwrap_err();
/// assert_eq!((err.policy, err.field), ("error_rate", "failure_ratio"));
/// assert_eq!(err.message, "must be a number in (0, 1], found 1.5");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid `{policy}` policy: {rule}")]
pub struct PolicyError {
    /// The policy: `error_rate`, `slow_call`, `adaptive` or `watermark`.
    pub policy: &'static str,
    /// The field that is wrong.
    pub field: &'static str,
    /// What is wrong and what is allowed (the rule's core message, without the field).
    pub message: String,
    /// The rule's whole message, naming the field.
    rule: String,
}

impl PolicyError {
    /// Checks `spec` by the shared rules.
    pub(crate) fn check(spec: &PolicySpec) -> Result<(), PolicyError> {
        spec.check()
            .map_err(|err| PolicyError::from_rule(spec.policy, &err))
    }

    /// A broken rule of `policy`.
    pub(crate) fn from_rule(policy: PolicyKind, err: &OptionError) -> Self {
        Self {
            policy: policy.name(),
            field: err.key().name,
            message: err.message(),
            rule: err.to_string(),
        }
    }
}

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
    Breaker(Reason),
    /// An adaptive window ended with failures or slow calls.
    BadWindow,
    /// An adaptive window ended saturated and healthy.
    SaturatedWindow,
    /// A watermark's queue stayed backed up for `hold_for`.
    BackedUp,
    /// A watermark's queue drained below `low`.
    Drained,
}

/// One state change of a policy, carried by
/// [`SignalEventKind::PolicyChanged`](crate::SignalEventKind::PolicyChanged) events.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct PolicyChange {
    /// `error_rate`, `slow_call` or `adaptive`.
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

/// A policy's current state, for [`Coordinator::policies`](crate::Coordinator::policies).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct PolicyInfo {
    /// `error_rate`, `slow_call` or `adaptive`.
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
}
