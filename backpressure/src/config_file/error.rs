//! [`ConfigError`]: why a config file could not be used.

use backpressure_pattern::options;
use backpressure_pattern::options::policies::{PolicyKind, POLICIES};
use backpressure_pattern::options::{rate, retry};

use super::connectors::SINK_SECTIONS;

/// A config file could not be used. Every variant names the file; those about a worker name
/// the worker and the field.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config file `{file}`: {source}")]
    Read {
        /// The file.
        file: String,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not valid TOML, or its top level is not `[workers."name"]` sections.
    #[error("invalid config file `{file}`: {message}")]
    Syntax {
        /// The file.
        file: String,
        /// What the TOML parser said.
        message: String,
    },
    /// A section names a worker that no `#[backpressure_worker]` registered.
    #[error("config file `{file}` configures worker `{worker}`, which is not registered (registered workers: {known})")]
    UnknownWorker {
        /// The file.
        file: String,
        /// The unknown name.
        worker: String,
        /// The registered names, in backticks, comma-separated.
        known: String,
    },
    /// A worker section holds a field that does not exist.
    #[error(
        "config file `{file}`, worker `{worker}`: unknown field `{field}` (valid fields: {}; \
         policies: {}; retries: `retry`; rate limits: `rate`)",
        options::list(options::KEYS.iter().filter(|key| key.in_file).map(|key| key.name)),
        options::list(POLICIES.iter().map(|policy| policy.name()))
    )]
    UnknownField {
        /// The file.
        file: String,
        /// The worker section.
        worker: String,
        /// The unknown field.
        field: String,
    },
    /// A `[sinks."name"]` table holds something other than a known section.
    #[error(
        "config file `{file}`, sink `{sink}`: unknown section `{section}` (known sections: {})",
        options::list(SINK_SECTIONS.iter().map(|(name, _)| *name))
    )]
    UnknownSinkSection {
        /// The file.
        file: String,
        /// The sink.
        sink: String,
        /// The unknown section.
        section: String,
    },
    /// A sink section's settings are wrong (read by the connector crate).
    #[error("config file `{file}`, sink `{sink}`, section `{section}`: {message}")]
    InvalidSinkSection {
        /// The file.
        file: String,
        /// The sink.
        sink: String,
        /// The section.
        section: String,
        /// What is wrong, naming the field.
        message: String,
    },
    /// A sink section needs a connector crate that did not start this runtime.
    #[error("config file `{file}`, sink `{sink}`: the `{section}` section needs {needs}")]
    NeedsConnector {
        /// The file.
        file: String,
        /// The sink.
        sink: String,
        /// The section.
        section: String,
        /// What to use.
        needs: &'static str,
    },
    /// A field's value has the wrong type or is out of range (zero, a bad pattern, a
    /// malformed duration, ...).
    #[error("config file `{file}`, worker `{worker}`, field `{field}`: {message}")]
    InvalidValue {
        /// The file.
        file: String,
        /// The worker section.
        worker: String,
        /// The field.
        field: String,
        /// What is wrong and what is allowed.
        message: String,
    },
    /// A worker's policy section (`[workers."name".error_rate]`) holds a field that the
    /// policy does not take.
    #[error(
        "config file `{file}`, worker `{worker}`, policy `{policy}`: unknown field `{field}` \
         (valid fields: {})",
        options::list(PolicyKind::from_name(policy).map_or(&[][..], |p| p.keys()).iter().map(|key| key.name))
    )]
    UnknownPolicyField {
        /// The file.
        file: String,
        /// The worker section.
        worker: String,
        /// The policy: `error_rate`, `slow_call`, `adaptive` or `watermark`.
        policy: &'static str,
        /// The unknown field.
        field: String,
    },
    /// A worker's policy has a wrong value, or lacks one it needs, once the file's section is
    /// laid over the attribute's policy of that kind.
    #[error(
        "config file `{file}`, worker `{worker}`, policy `{policy}`, field `{field}`: {message}"
    )]
    InvalidPolicyValue {
        /// The file.
        file: String,
        /// The worker section.
        worker: String,
        /// The policy.
        policy: &'static str,
        /// The field.
        field: String,
        /// What is wrong and what is allowed.
        message: String,
    },
    /// A worker's `[workers."name".retry]` table holds a field that `retry` does not take.
    #[error(
        "config file `{file}`, worker `{worker}`, `retry`: unknown field `{field}` (valid fields: {})",
        options::list(retry::KEYS.iter().map(|key| key.name))
    )]
    UnknownRetryField {
        /// The file.
        file: String,
        /// The worker section.
        worker: String,
        /// The unknown field.
        field: String,
    },
    /// A worker's `[workers."name".rate]` table holds a field that `rate` does not take.
    #[error(
        "config file `{file}`, worker `{worker}`, `rate`: unknown field `{field}` (valid fields: {})",
        options::list(rate::KEYS.iter().map(|key| key.name))
    )]
    UnknownRateField {
        /// The file.
        file: String,
        /// The worker section.
        worker: String,
        /// The unknown field.
        field: String,
    },
    /// A worker's rate has a wrong or missing value once the file's `rate` table is laid
    /// over the attribute's `rate(...)` (if any).
    #[error("config file `{file}`, worker `{worker}`, `rate`, field `{field}`: {message}")]
    InvalidRateValue {
        /// The file.
        file: String,
        /// The worker section.
        worker: String,
        /// The field.
        field: String,
        /// What is wrong and what is allowed.
        message: String,
    },
    /// A worker's retry has a wrong value once the file's `retry` table is laid over the
    /// attribute's `retry(...)`.
    #[error("config file `{file}`, worker `{worker}`, `retry`, field `{field}`: {message}")]
    InvalidRetryValue {
        /// The file.
        file: String,
        /// The worker section.
        worker: String,
        /// The field.
        field: String,
        /// What is wrong and what is allowed.
        message: String,
    },
    /// The file gives `retry` for a worker whose attribute has no `retry(...)`: a file may
    /// tune a worker's retry, not add one (retrying needs the item type to be `Clone`, which
    /// only the attribute can check).
    #[error(
        "config file `{file}`, worker `{worker}`: `retry` is set, but the worker does not retry: \
         add `retry(...)` to the `#[backpressure_worker]` attribute: retrying needs the item \
         type to be `Clone` (a config file may tune a worker's retry, not add one)"
    )]
    RetryNotDeclared {
        /// The file.
        file: String,
        /// The worker section.
        worker: String,
    },
}
