//! The signal-driven [`Coordinator`]: a bounded queue, a fixed number of concurrent slots and
//! a defer gate on a [`Sink`](crate::Sink).
//!
//! A slot starts the next item only while the gate is open: no active signal matches
//! `defer_on` (or one matches `resume_on`) and the coordinator is not paused. The gate is
//! event-driven: a retract, a TTL expiry, a resume signal or [`Coordinator::resume`] wakes the
//! held slots at once. Checking it reads two counters; it never scans the sink.

mod builder;
mod config;
mod context;
mod effects;
mod gate;
mod handle;
mod held;
mod intake;
mod item_id;
mod outcome;
mod push;
mod rate;
mod retry_book;
mod retrying;
mod slot;
mod state;
mod stats;
mod step;
mod stream;
mod telemetry;
mod timeout;

pub use builder::CoordinatorBuilder;
pub use config::{CoordinatorConfig, MaxDefer, MAX_CONCURRENCY};
pub use context::WorkContext;
pub use handle::{Coordinator, WeakCoordinator};
pub use held::HeldBy;
pub use item_id::ItemId;
pub use outcome::HandlerOutcome;
pub use stats::Stats;
