//! The circuit breaker behind [`Breaker::error_rate`] and [`Breaker::slow_call`]: its
//! configuration (`config.rs`), its state machine (`machine.rs`) and the states and reasons
//! it reports (`state.rs`).

mod config;
mod machine;
mod state;

pub use config::Breaker;
pub(super) use machine::Machine;
pub use state::{BreakerReason, BreakerState};
