//! For crates that connect a [`Sink`](crate::Sink) to somewhere else (as
//! `backpressure-redis` connects it to the other processes of a service): what it takes to
//! mirror a verdict raised elsewhere so that the workers it holds here can probe it.
//!
//! A verdict mirrored in [`Phase::HalfOpen`](crate::Phase::HalfOpen) carries a
//! [`ProbeSource`] (given with
//! [`RaiseOptions::probe_source`](crate::RaiseOptions::probe_source)) that asks the
//! verdict's owner for probes; on the owner's side, the connector claims them for the asking
//! process with [`Sink::claim_probe`](crate::Sink::claim_probe), holds the [`ProbeTicket`]
//! while the probe runs there, and reports its outcome with [`ProbeTicket::finish`]. When a
//! probe comes back unused, the owner's sink emits
//! [`ProbeReturned`](crate::SignalEventKind::ProbeReturned), for the connector to pass on.
//!
//! A worker with `global_concurrency` keeps its [`Permits`] on its sink
//! ([`Sink::permit_pools`](crate::Sink::permit_pools)); the connector serving that sink
//! ([`Sink::serve_permits`](crate::Sink::serve_permits)) holds the fleet's permits for this
//! process, grants them to the worker and takes back the unused ones. A worker with a shared
//! `rate` keeps its [`RateTokens`] there too ([`Sink::rate_pools`](crate::Sink::rate_pools),
//! served once the connector calls [`Sink::serve_rates`](crate::Sink::serve_rates)): the
//! connector draws starts from the fleet's rate when one waits and grants them in batches.
//!
//! # Examples
//!
//! ```
//! use std::time::Duration;
//! use backpressure::connector::ProbeTicket;
//! use backpressure::Sink;
//!
//! // Nothing is half-open here: there is no probe to lend.
//! let sink = Sink::new();
//! let ticket: Option<ProbeTicket> = sink.claim_probe("backpressure.smtp", Some("mailer"));
//! assert!(ticket.is_none());
//! # let _ = Duration::ZERO;
//! ```

pub use crate::sink::{
    PermitCounts, Permits, ProbeSource, ProbeTicket, RateTokenCounts, RateTokens,
};
