//! Signal names and glob patterns for [`backpressure`](https://docs.rs/backpressure).
//!
//! This crate is the single definition of what a valid signal name and a valid pattern are,
//! and of every coordinator option ([`options`]: its key, default, allowed values and error
//! words). The `backpressure` runtime compiles patterns and checks options with it, and the
//! `#[backpressure_worker]` attribute uses it to reject bad configuration at compile time, so
//! both always agree.
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
#![doc(test(attr(deny(warnings))))]

mod error;
mod limit;
mod name;
pub mod options;
mod pattern;

pub use error::{NameError, NameErrorKind, PatternError};
pub use name::{validate_name, MAX_NAME_LEN};
pub use options::MAX_CONCURRENCY;
pub use pattern::Pattern;
