//! Signal names and glob patterns for [`backpressure`](https://docs.rs/backpressure).
//!
//! This crate is the single definition of what a valid signal name and a valid pattern are.
//! The `backpressure` runtime compiles patterns with it, and the `#[backpressure_worker]`
//! attribute uses it to reject bad configuration at compile time, so both always agree.
//! Users normally reach it through the re-exports in `backpressure`.
//!
//! # Examples
//!
//! ```
//! use backpressure_pattern::{validate_name, Pattern};
//!
//! let pattern = Pattern::parse("backpressure.*, db.?-slow")?;
//! assert!(pattern.matches("backpressure.downstream"));
//! assert!(pattern.matches("db.1-slow"));
//! assert!(!pattern.matches("db.12-slow"));
//!
//! assert!(validate_name("backpressure.smtp").is_ok());
//! assert!(validate_name("has space").is_err());
//! # Ok::<(), backpressure_pattern::PatternError>(())
//! ```
#![forbid(unsafe_code)]
#![warn(
    missing_docs,
    missing_debug_implementations,
    unreachable_pub,
    rust_2018_idioms
)]

mod error;
mod name;
mod pattern;

pub use error::{NameError, NameErrorKind, PatternError};
pub use name::{validate_name, MAX_NAME_LEN};
pub use pattern::Pattern;

/// The largest number of concurrent slots a coordinator may have: each slot is a task
/// started up front. Shared here so that the runtime's builder and the attribute macro
/// enforce the same limit.
pub const MAX_CONCURRENCY: usize = 65_536;
