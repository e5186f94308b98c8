//! Holding tower services on signals (feature `tower`).
//!
//! The services an application puts behind `backpressure` are often tower services: an HTTP
//! client, a gRPC channel, an axum handler stack. [`HoldLayer`] lets them hold on the same
//! signals as the coordinators: while a signal matching the layer's pattern is raised on its
//! [`Sink`](crate::Sink) (at level 0; for levelled signals see
//! [below](#levels-and-the-in-flight-limit)), the wrapped [`Hold`] service either
//!
//! * **waits** ([`HoldLayer::wait`], [`HoldLayer::wait_at_most`]): `poll_ready` stays
//!   pending and is woken by the sink when the last matching signal is retracted or expires.
//!   Held services cost no CPU: no timer, no polling loop, no self-wake; the only timer is
//!   the optional max wait, after which the service becomes ready and `call` fails with
//!   [`HoldError::TimedOut`] without reaching the inner service. The inner service's
//!   `poll_ready` is not polled while held, so a held request takes none of its capacity;
//! * or **fails fast** ([`HoldLayer::fail_fast`]): `poll_ready` is the inner service's and
//!   `call` fails with [`HoldError::Rejected`], naming a raised signal and a retry hint from
//!   its TTL, which a server can answer with `503 Service Unavailable` and `Retry-After`.
//!
//! In both modes `poll_ready` never fails because of the hold: errors come from `call`.
//!
//! # Levels and the in-flight limit
//!
//! A signal raised with a [`Level`](crate::Level) above 0 throttles rather than stops. Without
//! an in-flight limit such a signal holds nothing: only a level-0 signal (a plain raise, an
//! open breaker's verdict) holds the layer, and [`Level::FULL`](crate::Level::FULL) is the same
//! as no signal. With [`HoldLayer::max_in_flight`]`(n)`, the layer's services together pass on
//! at most `n` calls at a time, and while levelled signals match, at most
//! `max(1, floor(n × level))` for the lowest of their levels, as a coordinator of concurrency
//! `n` would run. A call is in flight from `call` until its response future completes or is
//! dropped. Beyond the limit, wait mode waits in `poll_ready` (holding no place while it
//! waits, woken when a call finishes or the level rises), fail-fast mode rejects in `call`.
//!
//! ```
//! use std::convert::Infallible;
//!
//! use backpressure::tower::{HoldError, HoldLayer};
//! use backpressure::Sink;
//! use tower::{service_fn, Service, ServiceBuilder, ServiceExt};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), tower::BoxError> {
//! let sink = Sink::new();
//! let ship = |order: u32| async move { Ok::<_, Infallible>(format!("shipped {order}")) };
//! let mut client = ServiceBuilder::new()
//!     .layer(HoldLayer::wait(&sink, "backpressure.downstream")?)
//!     .service(service_fn(ship));
//!
//! // Nothing raised: requests go straight through.
//! assert_eq!(client.ready().await?.call(1).await?, "shipped 1");
//!
//! // Raised: the next request waits for readiness...
//! sink.raise("backpressure.downstream")?;
//! let held = tokio::spawn(async move { client.ready().await?.call(2).await });
//! tokio::task::yield_now().await;
//! assert!(!held.is_finished());
//!
//! // ...and goes out the moment the signal is retracted.
//! sink.retract("backpressure.downstream")?;
//! assert_eq!(held.await??, "shipped 2");
//!
//! // Fail fast: a typed error naming the signal, for a 503.
//! let mut api = ServiceBuilder::new()
//!     .layer(HoldLayer::fail_fast(&sink, "backpressure.*")?)
//!     .service(service_fn(ship));
//! sink.raise("backpressure.db")?;
//! let error = api.ready().await?.call(3).await.unwrap_err();
//! assert!(matches!(
//!     error.downcast_ref::<HoldError>(),
//!     Some(HoldError::Rejected { signal, .. }) if &**signal == "backpressure.db"
//! ));
//! # Ok(())
//! # }
//! ```
//!
//! # Readiness
//!
//! In wait mode the hold is checked when readiness is asked for, on every `poll_ready` until
//! one returns `Ready`: if the hold passed but the inner service was pending, and a signal is
//! raised before the inner service becomes ready, the request is held. Once `poll_ready` has
//! returned `Ready`, the service stays ready until `call` (keeping its place under an
//! in-flight limit), even if a matching signal is raised in between (that request goes out;
//! the next `poll_ready` checks again). A clone starts unready and checks for itself. A
//! retract wakes every held service at once: with many held clones, they all become ready
//! together, so set [`HoldLayer::max_in_flight`] (or keep a concurrency limit in the stack)
//! if the downstream needs a gentler restart.
//!
//! In fail-fast mode the check happens in `call`, after the inner service reported ready; a
//! rejected request does not call the inner service, which keeps whatever readiness it had
//! reserved for the next request (as tower's `Filter` does).
//!
//! Checking the hold is a few atomic operations: the sink keeps a count and the lowest level
//! per pattern, registered on a layer's first use and shared by all its services, and the
//! layer one count of calls in flight. Naming the signal of a fail-fast rejection scans the
//! active signals once.

#[cfg(feature = "axum")]
mod axum;
mod error;
mod future;
mod in_flight;
mod layer;
mod mode;
mod service;
mod shared;
mod worker;

#[cfg(feature = "axum")]
pub use self::axum::handle_error;
pub use self::error::{HoldError, WorkerHoldError};
pub use self::future::ResponseFuture;
pub use self::layer::HoldLayer;
pub use self::mode::HoldMode;
pub use self::service::Hold;
