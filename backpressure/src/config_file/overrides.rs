//! [`Overrides`]: a worker's validated values, laid over its configuration.

use std::time::Duration;

use backpressure_pattern::options::policies::PolicySpec;

use crate::{CoordinatorConfig, MaxDefer};

/// A worker's validated overrides (from a config file, or the attribute's own values).
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Overrides {
    pub(crate) sink: Option<String>,
    pub(crate) concurrency: Option<usize>,
    pub(crate) capacity: Option<usize>,
    pub(crate) defer_on: Option<String>,
    pub(crate) resume_on: Option<String>,
    pub(crate) cancel_on: Option<String>,
    pub(crate) defer_check_interval: Option<Duration>,
    pub(crate) max_defer: Option<MaxDefer>,
    /// Policy sections, each checked as far as it goes alone; laid over the attribute's
    /// policies when the worker is built.
    pub(crate) policies: Vec<PolicySpec>,
}

impl Overrides {
    /// Writes the overridden values into `config`.
    pub(crate) fn apply(&self, config: &mut CoordinatorConfig) {
        if let Some(n) = self.concurrency {
            config.concurrency = n;
        }
        if let Some(n) = self.capacity {
            config.capacity = n;
        }
        if let Some(p) = &self.defer_on {
            config.defer_on = Some(p.clone());
        }
        if let Some(p) = &self.resume_on {
            config.resume_on = Some(p.clone());
        }
        if let Some(p) = &self.cancel_on {
            config.cancel_on = Some(p.clone());
        }
        if let Some(d) = self.defer_check_interval {
            config.defer_check_interval = d;
        }
        if let Some(m) = self.max_defer {
            config.max_defer = m;
        }
    }
}
