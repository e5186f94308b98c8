//! The bridge: a background task between a local sink and a Redis namespace.
//!
//! * `handle.rs`: [`Bridge`], the handle users hold, and [`connect`], which checks the
//!   settings, opens the connection and starts the task.
//! * `task.rs`: the task's one loop, handing each push, local event and timer to its part.
//! * `link.rs`: the connection's lifecycle as one state (down and retrying, stale, up) and
//!   the [`Status`] it shows.
//! * `inbound.rs`: other processes' entries, mirrored into the local sink (messages in
//!   sequence, snapshots, the disconnect policy).
//! * `outbound.rs`: this process's shared entries, published to Redis and renewed there.
//! * `probes.rs`: probes of half-open verdicts across processes: asking another process's
//!   verdict for one, and lending this process's.
//! * `clock.rs`: noticing that the task stalled (a timer fired, or a message is read, long
//!   after it was due or sent), so that a snapshot replaces what it would read.
//! * `stats.rs`: the counters ([`BridgeStats`]) and the warnings logged once per kind.
//!
//! What is sent to Redis and how it is read back lives in `wire.rs`, the only file that
//! knows Redis keys and script arguments.

mod clock;
mod handle;
mod inbound;
mod link;
mod outbound;
mod probes;
mod stats;
mod task;

pub use handle::{connect, Bridge};
pub(crate) use handle::{open, open_bound};
pub use link::Status;
pub(crate) use link::{Liveness, FIRST_BACKOFF};
pub use stats::BridgeStats;
