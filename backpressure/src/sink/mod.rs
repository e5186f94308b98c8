//! Signal sinks: the shared places where signals are raised and retracted.
//!
//! A [`Sink`] holds the set of active signals, each a (name, key) pair with an optional
//! time-to-live. Coordinators watch a sink through patterns and react the moment the set
//! changes. [`sink`](crate::sink()) returns a named process-wide sink; [`Sink::new`] makes a
//! standalone one.

mod core;
mod emit;
mod entries;
mod event;
mod expiry;
mod global;
mod handle;
mod level;
mod permits;
mod phase;
mod pools;
mod probe;
mod quota_wakes;
mod rate_tokens;
mod reaper;
mod served;
mod verdict;
mod watch;
mod watch_handle;

pub use self::event::{Lagged, SignalEvent, SignalEventKind, Subscription};
pub use self::global::sink;
pub use self::handle::{ActiveSignal, Sink};
pub use self::level::{Level, LevelError, RaiseOptions};
pub use self::permits::{PermitCounts, Permits};
pub use self::phase::Phase;
pub(crate) use self::probe::ProbeClaim;
pub use self::probe::{ProbeSource, ProbeTicket};
pub use self::rate_tokens::{RateTokenCounts, RateTokens};
pub(crate) use self::watch_handle::WatchHandle;
