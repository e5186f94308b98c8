//! [`Overrides`]: a worker's validated values, laid over its registration's.

use backpressure_pattern::options::policies::PolicySpec;
use backpressure_pattern::options::rate::RateSpec;
use backpressure_pattern::options::retry::RetrySpec;
use backpressure_pattern::options::Values;

/// A worker's validated overrides from a config file's `[workers."name"]` section.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Overrides {
    /// The option values the section gives, laid over the attribute's.
    pub(crate) values: Values,
    /// Policy sections, each checked as far as it goes alone; laid over the attribute's
    /// policies when the worker is built.
    pub(crate) policies: Vec<PolicySpec>,
    /// The `retry` table, checked as far as it goes alone; laid over the attribute's
    /// `retry(...)` when the worker is built.
    pub(crate) retry: Option<RetrySpec>,
    /// The `rate` table, checked as far as it goes alone; laid over the attribute's
    /// `rate(...)` (or alone, for a worker without one) when the worker is built.
    pub(crate) rate: Option<RateSpec>,
}
