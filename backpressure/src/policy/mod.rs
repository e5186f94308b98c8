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
//! A worker must defer on its own breaker and adaptive signals: building a coordinator whose
//! `defer_on` does not match one is a [`BuildError::Policy`](crate::error::BuildError::Policy)
//! (an open breaker whose owner keeps sending protects nothing; a level its worker ignores
//! throttles nothing there). A watermark's signal is for the producers and is not checked.
//!
//! Attach them with [`CoordinatorBuilder::policy`](crate::CoordinatorBuilder::policy); see
//! their current state with [`Coordinator::policies`](crate::Coordinator::policies); every
//! state change is a [`SignalEventKind::PolicyChanged`](crate::SignalEventKind::PolicyChanged)
//! event on the sink's subscription and an INFO `tracing` event.

mod adaptive;
mod breaker;
mod config;
mod driver;
pub(crate) mod error;
pub(crate) mod jitter;
mod machine;
mod report;
mod watermark;
mod window;

pub use adaptive::Adaptive;
pub use breaker::{Breaker, BreakerReason, BreakerState};
pub use config::Policy;
pub(crate) use driver::{Host, Policies};
pub(crate) use error::PolicyError;
pub use report::{ChangeReason, PolicyChange, PolicyDetail, PolicyInfo, PolicyState};
pub use watermark::Watermark;
pub use window::WindowCounts;
