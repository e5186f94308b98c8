//! Signal-driven backpressure for tokio.
//!
//! When a downstream service is overloaded, the right move is to stop *starting* new work
//! until it recovers, without losing the work. `backpressure` lets any part of a program say
//! so by raising a named signal, such as `backpressure.downstream`, on a shared [`Sink`]. Every
//! [`Coordinator`] whose `defer_on` pattern matches holds back new items while the signal is
//! active, keeps them queued (a full queue makes producers wait), and resumes the instant the
//! signal is retracted or expires: no polling, microseconds instead of a 50 ms sleep loop.
//!
//! ```
//! use backpressure::{Coordinator, WorkContext};
//!
//! # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let sink = backpressure::sink("main");
//! let coordinator = Coordinator::builder()
//!     .sink(sink.clone())
//!     .concurrency(4)
//!     .build(|order: u32, _ctx: WorkContext| async move {
//!         println!("shipping order {order}");
//!     })?;
//!
//! sink.raise("backpressure.downstream")?;     // new work defers
//! coordinator.enqueue_many(1..=3).await?;      // accepted and held
//! tokio::task::yield_now().await;
//! assert_eq!(coordinator.stats().completed, 0);
//!
//! sink.retract("backpressure.downstream")?;   // work resumes at once
//! coordinator.drain().await;
//! assert_eq!(coordinator.stats().completed, 3);
//! # Ok(()) }
//! ```
//!
//! # Declaring workers
//!
//! The [`backpressure_worker`] attribute turns an `async fn` into a registered worker with a
//! typed, generated `enqueue`; [`start`] discovers every worker in the binary and builds its
//! coordinator. Bad configuration is a compile error pointing at the offending token.
//!
//! ```
//! use backpressure::backpressure_worker;
//!
//! #[derive(Debug)]
//! struct Email { to: String }
//!
//! #[backpressure_worker(sink = "mail", concurrency = 2, defer_on = "backpressure.smtp")]
//! async fn send_email(email: Email) -> Result<(), std::io::Error> {
//!     println!("sending to {}", email.to);
//!     Ok(())
//! }
//!
//! #[tokio::main(flavor = "current_thread")]
//! async fn main() -> Result<(), Box<dyn std::error::Error>> {
//!     let runtime = backpressure::start()?;
//!     backpressure::sink("mail").raise("backpressure.smtp")?; // the relay is slow: hold
//!     send_email::enqueue(Email { to: "ops@example.com".into() }).await?;
//!     assert_eq!(send_email::stats().map(|s| s.deferred), Some(1));
//!
//!     backpressure::sink("mail").retract("backpressure.smtp")?; // sending resumes at once
//!     runtime.drain_all().await;
//!     assert_eq!(send_email::stats().map(|s| s.completed), Some(1));
//!     Ok(())
//! }
//! ```
//!
//! Health [policies](policy) go in the same attribute, as nested lists: the worker watches
//! its own outcomes and raises (or levels) the signal by itself, so every worker deferring on
//! it backs off together. Their values are checked at compile time like every other key.
//!
//! ```
//! use backpressure::backpressure_worker;
//!
//! #[backpressure_worker(
//!     sink = "mail",
//!     defer_on = "backpressure.*",
//!     error_rate(signal = "backpressure.smtp", failure_ratio = 0.5, min_calls = 20,
//!                window = "30s", open_for = "30s"),
//!     adaptive(signal = "backpressure.smtp.level", max = 16),
//! )]
//! async fn send_mail(to: String) -> Result<(), std::io::Error> {
//!     println!("sending to {to}");
//!     Ok(())
//! }
//! # fn main() { assert!(send_mail::NAME.ends_with("::send_mail")); }
//! ```
//!
//! # Config files
//!
//! A TOML file overrides workers' options by worker name, without recompiling. It is read by
//! [`RuntimeBuilder::config_file`] or from the path in [`CONFIG_ENV_VAR`]
//! (`BACKPRESSURE_CONFIG`):
//!
//! ```toml
//! # backpressure.toml
//! [workers."my_app::send_email"]
//! concurrency = 8
//! capacity = 500
//! defer_on = ["backpressure.*", "smtp.slow"]   # a string or a list of strings
//! resume_on = "smtp.priority"
//! cancel_on = "smtp.down"
//! defer_check_interval = "100ms"
//! max_defer = "30s"                            # or "never", or max_defer_attempts = 300
//! sink = "mail"
//! ```
//!
//! Every field is optional; a field that is absent keeps the attribute's value (or the
//! runtime's default). The values follow the same rules, with the same words, as the
//! attribute's; a mistake is a [`ConfigError`](error::ConfigError) naming the file, the worker and the field.
//!
//! A worker's policy is a table under its section, named like the policy (`error_rate`,
//! `slow_call`, `adaptive`, `watermark`) with the attribute's keys. It overrides the fields
//! it gives of the attribute's policy of that kind, or adds the policy if the attribute has
//! none (then it needs `signal`, and `slow_after` / `max` where the policy does):
//!
//! ```toml
//! [workers."my_app::send_email".error_rate]
//! signal = "backpressure.smtp"
//! min_calls = 10                               # the attribute's other fields stay
//!
//! [workers."my_app::send_email".watermark]      # a policy the attribute does not have
//! signal = "backpressure.mail.backlog"
//! high = 0.9
//! ```
//!
//! A mistake names the file, the worker, the policy and the field
//! ([`ConfigError::InvalidPolicyValue`](error::ConfigError::InvalidPolicyValue)); rules between keys (`low` below `high`,
//! `max_open_for` at least `open_for`), and the rule that the worker's `defer_on` matches its
//! own breaker and adaptive signals, are held to the attribute's values merged with the
//! file's when the runtime starts.
//!
//! A `[sinks."name"]` table connects a sink to the outside world through a connector crate.
//! Today there is one, `backpressure-redis`, which shares the sink across processes:
//!
//! ```toml
//! [sinks.mail.redis]
//! url = "redis://redis.internal:6379"
//! namespace = "shop"
//! lease = "15s"
//! ```
//!
//! Such a section is read by the connector (`backpressure_redis::start().await` instead of
//! [`start`]); [`start`] alone refuses it with a
//! [`ConfigError::NeedsConnector`](error::ConfigError::NeedsConnector) that names the
//! crate, so a shared sink never silently stays local.
//!
//! # What is guaranteed
//!
//! * Every enqueued item ends in exactly one counted outcome: completed, failed, panicked,
//!   skipped (handed to the `cancel_on` callback) or returned by
//!   [`Coordinator::shutdown`]. [`Stats`] snapshots always satisfy
//!   `enqueued = completed + failed + panicked + skipped + returned + queued + active`.
//! * Deciding whether a slot may start is O(1) in the number of active signals.
//! * A retract, expiry, resume signal or [`Coordinator::resume`] wakes held slots at once,
//!   and nothing else does: held work costs no CPU. The one timer is the head item's
//!   `max_defer` deadline, one per coordinator; `defer_check_interval` is only the unit of
//!   `max_defer_attempts` (the .NET original's `MaxDeferAttempts × DeferCheckInterval`).
//!
//! Not guaranteed: the order in which concurrent slots *finish*, and which of several
//! waiting producers gets the next free queue place.
//!
//! # Where things are
//!
//! The root holds what a program names constantly: [`Coordinator`] and its builder, [`Sink`]
//! and [`sink`], [`WorkContext`], the attribute and the [`Runtime`] it [`start`]s. Every error
//! type is in [`error`] (none at the root: `?` into `Box<dyn Error>` needs no name), every
//! health policy type in [`policy`], and the optional integrations in `tower` and `metrics`
//! (and, for tests, `testing`: feature `test-util`).
//! Each item has exactly one public path; `tests/public_api.rs` lists them all, so a change
//! to the surface is a deliberate edit of that list.
//!
//! # Beyond this crate
//!
//! Levels and [health policies](policy) are part of this crate; the `tower` and `metrics`
//! features add a [`tower`](https://docs.rs/tower) layer and metrics. Sinks shared across
//! processes through Redis live in the `backpressure-redis` crate, the admin dashboard in
//! `backpressure-admin`.
//!
//! Maintainers: `ARCHITECTURE.md` at the root of the source repository maps where each part
//! lives and the invariants it keeps; `CONTRIBUTING.md` beside it says how to run each kind of
//! test.
#![doc(test(attr(deny(warnings))))]

#[doc(hidden)]
#[path = "private.rs"]
pub mod __private;
mod config_file;
pub mod connector;
mod coordinator;
pub mod error;
pub mod limit;
#[cfg(feature = "metrics")]
pub mod metrics;
pub mod policy;
mod registry;
pub mod retry;
mod sink;
mod sync;
#[cfg(feature = "test-util")]
pub mod testing;
#[cfg(feature = "tower")]
pub mod tower;

pub use backpressure_pattern::{validate_name, Pattern, MAX_NAME_LEN};
pub use coordinator::{
    Coordinator, CoordinatorBuilder, CoordinatorConfig, HandlerOutcome, HeldBy, ItemId, MaxDefer,
    Stats, WeakCoordinator, WorkContext, MAX_CONCURRENCY,
};
pub use sink::{
    sink, ActiveSignal, Level, Phase, RaiseOptions, SignalEvent, SignalEventKind, Sink,
    Subscription,
};

pub use backpressure_macros::backpressure_worker;
pub use config_file::{SinkSection, CONFIG_ENV_VAR};
pub use registry::{start, Runtime, RuntimeBuilder, ShutdownReport, WorkerInfo};
