//! [`Registration`]: one `#[backpressure_worker]`, as submitted to `inventory`.

use backpressure_pattern::options::policies::PolicySpec;
use backpressure_pattern::options::rate::RateSpec;
use backpressure_pattern::options::retry::RetrySpec;
use backpressure_pattern::options::{Values, DEFAULT_SINK};

use super::worker::BuildContext;
use super::{BuiltWorker, RegistryError};
use crate::config_file::Overrides;

/// One `#[backpressure_worker]`, as submitted to `inventory`. Const-constructible; a value
/// not given is the runtime's default. Values were validated at compile time.
#[derive(Debug)]
pub struct Registration {
    /// The worker's name (default: module path + function name).
    pub name: &'static str,
    /// The attribute's option values (`sink`, `concurrency`, ...).
    pub values: Values,
    /// Health policies, `error_rate(...)` and the like.
    pub policies: &'static [PolicySpec],
    /// `retry(...)`, if given (the item type is then `Clone`, and `build` builds through
    /// [`BuildContext::build_retrying`]).
    pub retry: Option<RetrySpec>,
    /// `rate(...)`, if given (a config file's `[workers."name".rate]` may add or tune one).
    pub rate: Option<RateSpec>,
    /// Builds the worker's coordinator.
    pub build: fn(&BuildContext<'_>) -> Result<BuiltWorker, RegistryError>,
    /// Where the attribute was written.
    pub file: &'static str,
    /// Where the attribute was written.
    pub line: u32,
}

inventory::collect!(Registration);

impl Registration {
    /// `file:line`, for error messages.
    pub(crate) fn location(&self) -> String {
        format!("{}:{}", self.file, self.line)
    }

    /// The attribute's values with the config file's over them, and the sink name they
    /// give (default `"default"`).
    pub(crate) fn values(&self, overrides: Option<&Overrides>) -> (Values, String) {
        let mut values = self.values.clone();
        if let Some(overrides) = overrides {
            values.overlay(&overrides.values);
        }
        let sink = values.sink.as_deref().unwrap_or(DEFAULT_SINK).to_owned();
        (values, sink)
    }
}

/// Every registration linked into the binary, in unspecified order.
pub(crate) fn registrations() -> impl Iterator<Item = &'static Registration> {
    inventory::iter::<Registration>.into_iter()
}
