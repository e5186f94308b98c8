//! Quotas on starts: [`Rate`], a GCRA limit on how many items start per period.
//!
//! A rate limit is one more input of the gate, beside signals, levels, pause and breakers:
//! an item starts only when every input lets it. While the next start is not yet allowed,
//! the coordinator sleeps on **one** timer for the earliest allowed instant (no per-slot
//! timers, no polling), and [`Stats::rate_limited`](crate::Stats::rate_limited) counts the
//! starts it delayed. Due retries obey it like any item.
//!
//! # Examples
//!
//! ```
//! use std::time::Duration;
//! use backpressure::limit::Rate;
//! use backpressure::{Coordinator, Sink, WorkContext};
//! use tokio::time::Instant;
//!
//! # #[tokio::main(flavor = "current_thread", start_paused = true)]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! // 10 starts a second, evenly spaced: one every 100 ms.
//! let coordinator = Coordinator::builder()
//!     .sink(Sink::new())
//!     .rate(Rate::new(10, Duration::from_secs(1)))
//!     .build(|_: u32, _: WorkContext| async {})?;
//! let start = Instant::now();
//! coordinator.enqueue_many(0..5).await?;
//! coordinator.drain().await;
//! assert_eq!(start.elapsed(), Duration::from_millis(400));
//! assert_eq!(coordinator.stats().rate_limited, 4);
//! # Ok(()) }
//! ```

mod rate;

pub use backpressure_pattern::options::rate::RateSpec;
pub use rate::Rate;
