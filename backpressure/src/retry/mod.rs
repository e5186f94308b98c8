//! Retries, permanent failures and dead letters: failures that are not losses.
//!
//! A worker given a [`Retry`] runs a failed item again (an `Err`, a panic or a timeout;
//! never a `cancel_on` skip or a handler cut short by shutdown) after a backoff. While it
//! waits, the item sits in one timer structure per coordinator (no task or timer of its own);
//! when it is due it goes back to the head of the queue and **obeys the gate like any item**:
//! a due retry of a worker held by an open breaker waits for the verdict, so retries never
//! hammer a failing downstream, and they all go out the moment it recovers. An accepted item
//! keeps its place in `capacity` until its final outcome, so a retry never needs room it does
//! not have.
//!
//! After the last attempt (or a [`Failure::Permanent`]), the item becomes a [`DeadLetter`]:
//! handed to [`on_dead_letter`](crate::CoordinatorBuilder::on_dead_letter) if given,
//! otherwise kept in a bounded per-worker buffer that
//! [`Coordinator::dead_letters`](crate::Coordinator::dead_letters) reads,
//! [`take_dead_letters`](crate::Coordinator::take_dead_letters) empties and
//! [`requeue_dead_letters`](crate::Coordinator::requeue_dead_letters) runs again.
//!
//! # Examples
//!
//! ```
//! use std::time::Duration;
//! use backpressure::retry::{Failure, Retry};
//! use backpressure::{Coordinator, Sink, WorkContext};
//!
//! # #[tokio::main(flavor = "current_thread", start_paused = true)]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let coordinator = Coordinator::builder()
//!     .sink(Sink::new())
//!     .retry(Retry::new(3).backoff(Duration::from_secs(1)).jitter(0.0))
//!     .build(|to: String, ctx: WorkContext| async move {
//!         match (to.as_str(), ctx.attempt()) {
//!             ("nobody@invalid", _) => Err(Failure::permanent("no such domain")),
//!             (_, 1) => Err(Failure::from("relay busy")), // retried after 1 s
//!             _ => Ok(()),
//!         }
//!     })?;
//! coordinator.enqueue("ada@example.com".to_owned()).await?;
//! coordinator.enqueue("nobody@invalid".to_owned()).await?;
//! coordinator.drain().await;
//!
//! let stats = coordinator.stats();
//! assert_eq!((stats.completed, stats.retried, stats.dead_lettered), (1, 1, 1));
//! let dead = coordinator.take_dead_letters();
//! assert_eq!(dead[0].item, "nobody@invalid");
//! assert_eq!(dead[0].error, "no such domain");
//! # Ok(()) }
//! ```

mod config;
mod dead_letter;
mod failure;

pub use backpressure_pattern::options::retry::RetrySpec;
pub use config::Retry;
pub use dead_letter::{DeadLetter, DeadLetterRecord};
pub use failure::Failure;
