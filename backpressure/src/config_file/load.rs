//! Reading a config file: [`ConfigFile`], checked against the registered workers and the
//! connectors that started the runtime.

use std::collections::BTreeMap;
use std::path::Path;

use backpressure_pattern::options;
use serde::Deserialize;

use super::error::ConfigError;
use super::overrides::Overrides;
use super::sinks::{self, SinkSection};
use super::workers;

/// The environment variable that names a config file for [`start`](crate::start).
pub const CONFIG_ENV_VAR: &str = "BACKPRESSURE_CONFIG";

/// The top level: `[workers."name"]` and `[sinks."name".section]` sections.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    #[serde(default)]
    workers: BTreeMap<String, toml::Table>,
    #[serde(default)]
    sinks: BTreeMap<String, toml::Table>,
}

/// A parsed and validated config file.
#[derive(Debug, Clone, Default)]
pub(crate) struct ConfigFile {
    pub(crate) file: String,
    pub(crate) workers: BTreeMap<String, Overrides>,
    pub(crate) sinks: Vec<SinkSection>,
}

impl ConfigFile {
    /// Reads and validates a file.
    pub(crate) fn load(path: &Path) -> Result<Self, ConfigError> {
        let file = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            file: file.clone(),
            source,
        })?;
        Self::parse(&file, &text)
    }

    /// Validates TOML text; `file` names it in errors.
    pub(crate) fn parse(file: &str, text: &str) -> Result<Self, ConfigError> {
        let raw: RawFile = toml::from_str(text).map_err(|err| ConfigError::Syntax {
            file: file.to_owned(),
            message: err.to_string().trim_end().to_owned(),
        })?;
        let mut workers = BTreeMap::new();
        for (worker, table) in raw.workers {
            let overrides = workers::overrides(file, &worker, table)?;
            workers.insert(worker, overrides);
        }
        Ok(Self {
            file: file.to_owned(),
            workers,
            sinks: sinks::read(file, raw.sinks)?,
        })
    }

    /// Fails on the first sink section that nobody in `handled` connects.
    pub(crate) fn check_sinks(&self, handled: &[&str]) -> Result<(), ConfigError> {
        sinks::check_handled(&self.sinks, handled)
    }

    /// Fails on the first section whose worker is not in `known`.
    pub(crate) fn check_workers<'a>(
        &self,
        known: impl Iterator<Item = &'a str> + Clone,
    ) -> Result<(), ConfigError> {
        for worker in self.workers.keys() {
            if !known.clone().any(|k| k == worker) {
                let mut names: Vec<&str> = known.clone().collect();
                names.sort_unstable();
                names.dedup();
                return Err(ConfigError::UnknownWorker {
                    file: self.file.clone(),
                    worker: worker.clone(),
                    known: if names.is_empty() {
                        "none".to_owned()
                    } else {
                        options::list(names)
                    },
                });
            }
        }
        Ok(())
    }
}
