//! [`PolicyError`]: a policy value that breaks its rule.

use backpressure_pattern::options::policies::{PolicyKind, PolicySpec};
use backpressure_pattern::options::OptionError;

/// A policy value that breaks its rule (the rules and their words are those of
/// `backpressure_pattern::options::policies`, shared with the attribute and config files).
///
/// # Examples
///
/// ```
/// use backpressure::policy::{Breaker, Policy};
///
/// let err = Policy::from(Breaker::error_rate("backpressure.smtp").failure_ratio(1.5))
///     .validate()
///     .unwrap_err();
/// assert_eq!((err.policy, err.field), ("error_rate", "failure_ratio"));
/// assert_eq!(err.message, "must be a number in (0, 1], found 1.5");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid `{policy}` policy: {rule}")]
pub struct PolicyError {
    /// The policy: `error_rate`, `slow_call`, `adaptive` or `watermark`.
    pub policy: &'static str,
    /// The field that is wrong.
    pub field: &'static str,
    /// What is wrong and what is allowed (the rule's core message, without the field).
    pub message: String,
    /// The rule's whole message, naming the field.
    rule: String,
}

impl PolicyError {
    /// Checks `spec` by the shared rules.
    pub(crate) fn check(spec: &PolicySpec) -> Result<(), PolicyError> {
        spec.check()
            .map_err(|err| PolicyError::from_rule(spec.policy, &err))
    }

    /// A broken rule of `policy`.
    pub(crate) fn from_rule(policy: PolicyKind, err: &OptionError) -> Self {
        Self {
            policy: policy.name(),
            field: err.key().name,
            message: err.message(),
            rule: err.to_string(),
        }
    }
}
