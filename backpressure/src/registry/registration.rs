//! [`Registration`]: one `#[backpressure_worker]`, as submitted to `inventory`.

use std::time::Duration;

use backpressure_pattern::options::policies::PolicySpec;
use backpressure_pattern::options::DEFAULT_SINK;

use super::worker::BuildContext;
use super::{BuiltWorker, RegistryError};
use crate::config_file::Overrides;
use crate::{CoordinatorConfig, MaxDefer};

/// One `#[backpressure_worker]`, as submitted to `inventory`. Const-constructible; `None`
/// means "the runtime's default". Values were validated at compile time.
#[derive(Debug)]
pub struct Registration {
    /// The worker's name (default: module path + function name).
    pub name: &'static str,
    /// The sink name; `None` is `"default"`.
    pub sink: Option<&'static str>,
    /// Concurrent slots.
    pub concurrency: Option<usize>,
    /// Queue capacity.
    pub capacity: Option<usize>,
    /// Defer pattern (a comma-separated list).
    pub defer_on: Option<&'static str>,
    /// Resume pattern.
    pub resume_on: Option<&'static str>,
    /// Cancel pattern.
    pub cancel_on: Option<&'static str>,
    /// Longest gap between gate re-checks.
    pub defer_check_interval: Option<Duration>,
    /// How long an item may be held.
    pub max_defer: Option<MaxDefer>,
    /// Health policies, `error_rate(...)` and the like.
    pub policies: &'static [PolicySpec],
    /// Builds the worker's coordinator.
    pub build: fn(&BuildContext<'_>) -> Result<BuiltWorker, RegistryError>,
    /// Where the attribute was written.
    pub file: &'static str,
    /// Where the attribute was written.
    pub line: u32,
}

inventory::collect!(Registration);

impl Registration {
    /// The sink name, with the default applied.
    pub(crate) fn sink_name(&self) -> &'static str {
        self.sink.unwrap_or(DEFAULT_SINK)
    }

    /// `file:line`, for error messages.
    pub(crate) fn location(&self) -> String {
        format!("{}:{}", self.file, self.line)
    }

    /// The attribute's values on top of the runtime's defaults.
    pub(crate) fn config(&self) -> CoordinatorConfig {
        let mut config = CoordinatorConfig::default();
        Overrides {
            sink: None,
            concurrency: self.concurrency,
            capacity: self.capacity,
            defer_on: self.defer_on.map(str::to_owned),
            resume_on: self.resume_on.map(str::to_owned),
            cancel_on: self.cancel_on.map(str::to_owned),
            defer_check_interval: self.defer_check_interval,
            max_defer: self.max_defer,
            policies: Vec::new(),
        }
        .apply(&mut config);
        config
    }
}

/// Every registration linked into the binary, in unspecified order.
pub(crate) fn registrations() -> impl Iterator<Item = &'static Registration> {
    inventory::iter::<Registration>.into_iter()
}
