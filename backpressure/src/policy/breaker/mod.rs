//! The circuit breaker behind [`Breaker::error_rate`] and [`Breaker::slow_call`]: its
//! configuration (`config.rs`) and its state machine (`machine.rs`).

mod config;
mod machine;

pub use config::Breaker;
pub(super) use machine::Machine;
pub use machine::{BreakerState, Reason};
