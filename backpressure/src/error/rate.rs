//! [`RateError`]: a rate value that breaks its rule.

use backpressure_pattern::options::OptionError;

/// A [`Rate`](crate::limit::Rate) value that breaks its rule (the rules and their words are
/// those of `backpressure_pattern::options::rate`, shared with the attribute's `rate(...)` and
/// a config file's `[workers."name".rate]` table).
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use backpressure::error::BuildError;
/// use backpressure::limit::Rate;
/// use backpressure::Coordinator;
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let built = Coordinator::builder()
///     .rate(Rate::new(0, Duration::from_secs(1)))
///     .build(|_: u8, _ctx| async {});
/// let Err(BuildError::Rate(err)) = built else { panic!("a zero limit") };
/// assert_eq!(err.field, "limit");
/// assert_eq!(err.message, "must be at least 1, found 0");
/// assert_eq!(err.to_string(), "invalid `rate`: `limit` must be at least 1, found 0");
/// # }
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid `rate`: {rule}")]
pub struct RateError {
    /// The field that is wrong (`limit`, `per`, `burst`).
    pub field: &'static str,
    /// What is wrong and what is allowed (the rule's core message, without the field).
    pub message: String,
    /// The rule's whole message, naming the field.
    rule: String,
}

impl RateError {
    /// A broken rule of `rate`.
    pub(crate) fn from_rule(err: &OptionError) -> Self {
        Self {
            field: err.key().name,
            message: err.message(),
            rule: err.to_string(),
        }
    }
}
