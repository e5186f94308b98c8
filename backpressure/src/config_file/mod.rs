//! Worker overrides from a TOML file (the format is in the crate docs, "Config files").
//!
//! Each field is read as its key's kind and checked by the key's rule in
//! `backpressure_pattern::options`; errors name the file, the worker and the field.
//!
//! * `load.rs`: reading a file ([`CONFIG_ENV_VAR`], `ConfigFile`) and checking it against the
//!   registered workers and the connectors that started the runtime;
//! * `workers.rs`: a `[workers."name"]` section, read into `Overrides` (`overrides.rs`);
//! * `sinks.rs`: the `[sinks."name".section]` tables kept for a connector crate
//!   ([`SinkSection`]), and `connectors.rs`, which sections exist and who reads them;
//! * `error.rs`: [`ConfigError`].

mod connectors;
mod error;
mod load;
mod overrides;
mod sinks;
#[cfg(test)]
mod tests;
mod workers;

pub use error::ConfigError;
pub(crate) use load::ConfigFile;
pub use load::CONFIG_ENV_VAR;
pub(crate) use overrides::Overrides;
pub use sinks::SinkSection;
