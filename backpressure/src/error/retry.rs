//! [`RetryError`]: a retry value that breaks its rule.

use backpressure_pattern::options::OptionError;

/// A [`Retry`](crate::retry::Retry) value that breaks its rule (the rules and their words are
/// those of `backpressure_pattern::options::retry`, shared with the attribute's `retry(...)`
/// and a config file's `[workers."name".retry]` table).
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use backpressure::error::BuildError;
/// use backpressure::retry::Retry;
/// use backpressure::Coordinator;
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let built = Coordinator::builder()
///     .retry(Retry::new(3).backoff(Duration::from_secs(5)).max_backoff(Duration::from_secs(1)))
///     .build(|_: u8, _ctx| async {});
/// let Err(BuildError::Retry(err)) = built else { panic!("max_backoff below backoff") };
/// assert_eq!(err.field, "max_backoff");
/// assert_eq!(err.message, "must be at least `backoff` (5s), found 1s");
/// assert_eq!(
///     err.to_string(),
///     "invalid `retry`: `max_backoff` must be at least `backoff` (5s), found 1s"
/// );
/// # }
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid `retry`: {rule}")]
pub struct RetryError {
    /// The field that is wrong (`attempts`, `backoff`, ...).
    pub field: &'static str,
    /// What is wrong and what is allowed (the rule's core message, without the field).
    pub message: String,
    /// The rule's whole message, naming the field.
    rule: String,
}

impl RetryError {
    /// A broken rule of `retry`.
    pub(crate) fn from_rule(err: &OptionError) -> Self {
        Self {
            field: err.key().name,
            message: err.message(),
            rule: err.to_string(),
        }
    }
}
