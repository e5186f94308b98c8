//! [`SinkSection`]: the `[sinks."name".section]` tables of a config file, kept for the
//! connector crate that reads them.

use std::collections::BTreeMap;

use super::connectors;
use super::error::ConfigError;

/// One `[sinks."name".section]` table of a config file, for the crate that connects sinks
/// (e.g. `[sinks.main.redis]` for `backpressure-redis`); see
/// [`RuntimeBuilder::sink_sections`](crate::RuntimeBuilder::sink_sections).
#[derive(Debug, Clone, PartialEq)]
pub struct SinkSection {
    file: String,
    sink: String,
    section: String,
    table: toml::Table,
}

impl SinkSection {
    /// The sink's name.
    pub fn sink(&self) -> &str {
        &self.sink
    }

    /// The section's name (`redis`).
    pub fn section(&self) -> &str {
        &self.section
    }

    /// The config file it comes from.
    pub fn file(&self) -> &str {
        &self.file
    }

    /// Reads the section into the connector's own settings type.
    ///
    /// # Errors
    ///
    /// [`ConfigError::InvalidSinkSection`] naming the file, sink and section, with the
    /// deserializer's message (which names the field).
    pub fn deserialize<T: serde::de::DeserializeOwned>(&self) -> Result<T, ConfigError> {
        T::deserialize(toml::Value::Table(self.table.clone())).map_err(|err| {
            ConfigError::InvalidSinkSection {
                file: self.file.clone(),
                sink: self.sink.clone(),
                section: self.section.clone(),
                message: err.to_string().trim_end().to_owned(),
            }
        })
    }
}

/// Checks the `[sinks]` tables: each holds only known sections, each a table.
pub(super) fn read(
    file: &str,
    sinks: BTreeMap<String, toml::Table>,
) -> Result<Vec<SinkSection>, ConfigError> {
    let mut sections = Vec::new();
    for (sink, table) in sinks {
        for (section, value) in table {
            if !connectors::is_known(&section) {
                return Err(ConfigError::UnknownSinkSection {
                    file: file.to_owned(),
                    sink,
                    section,
                });
            }
            let toml::Value::Table(table) = value else {
                return Err(ConfigError::InvalidSinkSection {
                    message: format!("expected a table such as `[sinks.{sink}.{section}]`"),
                    file: file.to_owned(),
                    sink,
                    section,
                });
            };
            sections.push(SinkSection {
                file: file.to_owned(),
                sink: sink.clone(),
                section,
                table,
            });
        }
    }
    Ok(sections)
}

/// Fails on the first section that nobody in `handled` connects.
pub(super) fn check_handled(sections: &[SinkSection], handled: &[&str]) -> Result<(), ConfigError> {
    match sections
        .iter()
        .find(|s| !handled.contains(&s.section.as_str()))
    {
        None => Ok(()),
        Some(section) => Err(ConfigError::NeedsConnector {
            file: section.file.clone(),
            sink: section.sink.clone(),
            section: section.section.clone(),
            needs: connectors::needs(&section.section),
        }),
    }
}
