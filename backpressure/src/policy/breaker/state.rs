//! A breaker's public vocabulary: its states and the reasons it changes between them (kept
//! apart from the machine so that what policies report need not know the machine).

/// A breaker's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum BreakerState {
    /// Calls are counted; the signal is not raised.
    Closed,
    /// The signal is raised; the owner holds like everyone else.
    Open,
    /// The signal is still raised; the owner runs probes.
    HalfOpen,
}

/// Why a breaker changed state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum BreakerReason {
    /// The failure ratio over the window reached `failure_ratio`.
    FailureRatio,
    /// `consecutive_failures` calls in a row failed.
    ConsecutiveFailures,
    /// `open_for` ran out.
    OpenForElapsed,
    /// `probes` probes succeeded in a row.
    ProbesSucceeded,
    /// A probe failed.
    ProbeFailed,
    /// A probe ran past `probe_timeout`.
    ProbeTimedOut,
}
