//! Worker overrides from a TOML file (the format is in the crate docs, "Config files").
//!
//! Each field is read as its key's kind and checked by the key's rule in
//! `backpressure_pattern::options`; errors name the file, the worker and the field.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use backpressure_pattern::options::policies::{PolicyKind, PolicySpec, PolicyValue, POLICIES};
use backpressure_pattern::options::{
    self, rules, Key, Kind, OptionError, CANCEL_ON, CAPACITY, CONCURRENCY, DEFER_CHECK_INTERVAL,
    DEFER_ON, MAX_DEFER, MAX_DEFER_ATTEMPTS, RESUME_ON, SINK,
};
use serde::Deserialize;

use crate::{CoordinatorConfig, MaxDefer};

/// The environment variable that names a config file for [`start`](crate::start).
pub const CONFIG_ENV_VAR: &str = "BACKPRESSURE_CONFIG";

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
         policies: {})",
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
}

/// One pattern or a list of patterns, as TOML writes them.
#[derive(Deserialize)]
#[serde(
    untagged,
    expecting = "expected a pattern string or a list of pattern strings"
)]
enum PatternList {
    One(String),
    Many(Vec<String>),
}

/// A field's value, read as its key's [`Kind`] says.
enum Value {
    Count(usize),
    Attempts(u32),
    Text(String),
    List(Vec<String>),
}

impl Value {
    fn read(key: &Key, value: toml::Value) -> Result<Self, toml::de::Error> {
        Ok(match key.kind {
            Kind::Count => Value::Count(usize::deserialize(value)?),
            Kind::Attempts => Value::Attempts(u32::deserialize(value)?),
            Kind::Patterns => Value::List(match PatternList::deserialize(value)? {
                PatternList::One(item) => vec![item],
                PatternList::Many(items) => items,
            }),
            _ => Value::Text(String::deserialize(value)?),
        })
    }
}

/// The top level: `[workers."name"]` and `[sinks."name".section]` sections.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    #[serde(default)]
    workers: BTreeMap<String, toml::Table>,
    #[serde(default)]
    sinks: BTreeMap<String, toml::Table>,
}

/// The sections a `[sinks."name"]` table may hold, each read by a connector crate.
pub(crate) const SINK_SECTIONS: &[(&str, &str)] = &[(
    "redis",
    "the `backpressure-redis` crate: start the runtime with `backpressure_redis::start().await`",
)];

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
            let overrides = worker_overrides(file, &worker, table)?;
            workers.insert(worker, overrides);
        }
        Ok(Self {
            file: file.to_owned(),
            workers,
            sinks: sink_sections(file, raw.sinks)?,
        })
    }

    /// Fails on the first sink section that nobody in `handled` connects.
    pub(crate) fn check_sinks(&self, handled: &[&str]) -> Result<(), ConfigError> {
        match self
            .sinks
            .iter()
            .find(|s| !handled.contains(&s.section.as_str()))
        {
            None => Ok(()),
            Some(section) => Err(ConfigError::NeedsConnector {
                file: section.file.clone(),
                sink: section.sink.clone(),
                section: section.section.clone(),
                needs: SINK_SECTIONS
                    .iter()
                    .find(|(name, _)| *name == section.section)
                    .map_or("a connector crate", |(_, needs)| *needs),
            }),
        }
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

/// Where a worker section's errors point: the file and the worker.
struct Section<'a> {
    file: &'a str,
    worker: &'a str,
    values: BTreeMap<&'static str, Value>,
    policies: Vec<PolicySpec>,
}

impl Section<'_> {
    fn invalid(&self, field: &str, message: String) -> ConfigError {
        ConfigError::InvalidValue {
            file: self.file.to_owned(),
            worker: self.worker.to_owned(),
            field: field.to_owned(),
            message,
        }
    }

    /// A broken option rule, at the field of its key.
    fn rule(&self, err: OptionError) -> ConfigError {
        self.invalid(err.key().name, err.message())
    }

    /// Reads every field as its key's kind; the first unknown field or wrong type is an error.
    fn read(&mut self, table: toml::Table) -> Result<(), ConfigError> {
        for (field, value) in table {
            if let Some(policy) = PolicyKind::from_name(&field) {
                let spec = self.policy(policy, value)?;
                self.policies.push(spec);
                continue;
            }
            let Some(key) = options::key(&field).filter(|key| key.in_file) else {
                return Err(ConfigError::UnknownField {
                    file: self.file.to_owned(),
                    worker: self.worker.to_owned(),
                    field,
                });
            };
            let value = Value::read(key, value)
                .map_err(|err| self.invalid(&field, err.message().into()))?;
            self.values.insert(key.name, value);
        }
        Ok(())
    }

    /// Reads a `[workers."name".policy]` table by each key's kind, and checks what it gives.
    fn policy(&self, policy: PolicyKind, value: toml::Value) -> Result<PolicySpec, ConfigError> {
        let name = policy.name();
        let toml::Value::Table(table) = value else {
            let message = format!(
                "expected a table such as `[workers.{}.{name}]`",
                self.worker
            );
            return Err(self.invalid(name, message));
        };
        let mut spec = PolicySpec::new(policy);
        for (field, value) in table {
            let Some(key) = policy.key(&field) else {
                return Err(ConfigError::UnknownPolicyField {
                    file: self.file.to_owned(),
                    worker: self.worker.to_owned(),
                    policy: name,
                    field,
                });
            };
            let value = policy_value(key, value)
                .map_err(|message| self.invalid_policy(policy, key.name, message))?;
            spec.set(key, value);
        }
        spec.check_given()
            .map_err(|err| self.invalid_policy(policy, err.key().name, err.message()))?;
        Ok(spec)
    }

    fn invalid_policy(&self, policy: PolicyKind, field: &str, message: String) -> ConfigError {
        ConfigError::InvalidPolicyValue {
            file: self.file.to_owned(),
            worker: self.worker.to_owned(),
            policy: policy.name(),
            field: field.to_owned(),
            message,
        }
    }

    fn count(&self, key: &'static Key) -> Result<Option<usize>, OptionError> {
        match self.values.get(key.name) {
            Some(Value::Count(n)) => rules::count(key, *n).map(Some),
            _ => Ok(None),
        }
    }

    fn text(&self, key: &Key) -> Option<&str> {
        match self.values.get(key.name) {
            Some(Value::Text(text)) => Some(text),
            _ => None,
        }
    }

    fn name(&self, key: &'static Key) -> Result<Option<String>, OptionError> {
        let name = self.text(key);
        name.map(|name| rules::name(key, name)).transpose()?;
        Ok(name.map(str::to_owned))
    }

    fn duration(&self, key: &'static Key) -> Result<Option<Duration>, OptionError> {
        self.text(key)
            .map(|text| rules::parse_duration(key, text))
            .transpose()
    }

    fn patterns(&self, key: &'static Key) -> Result<Option<String>, OptionError> {
        match self.values.get(key.name) {
            Some(Value::List(items)) => rules::patterns(key, items).map(Some),
            _ => Ok(None),
        }
    }

    fn max_defer(&self) -> Result<Option<MaxDefer>, OptionError> {
        let attempts = match self.values.get(MAX_DEFER_ATTEMPTS.name) {
            Some(Value::Attempts(n)) => Some(*n),
            _ => None,
        };
        rules::max_defer_keys(attempts, self.text(&MAX_DEFER))
    }

    /// Applies every key's rule; plumbing only, one line a key.
    fn overrides(&self) -> Result<Overrides, OptionError> {
        Ok(Overrides {
            sink: self.name(&SINK)?,
            concurrency: self.count(&CONCURRENCY)?,
            capacity: self.count(&CAPACITY)?,
            defer_on: self.patterns(&DEFER_ON)?,
            resume_on: self.patterns(&RESUME_ON)?,
            cancel_on: self.patterns(&CANCEL_ON)?,
            defer_check_interval: self.duration(&DEFER_CHECK_INTERVAL)?,
            max_defer: self.max_defer()?,
            policies: self.policies.clone(),
        })
    }
}

/// A policy field's value, read as its key's [`Kind`] says; the message names what is wrong.
fn policy_value(key: &'static Key, value: toml::Value) -> Result<PolicyValue, String> {
    let message = |err: toml::de::Error| err.message().to_owned();
    Ok(match key.kind {
        Kind::Count => PolicyValue::Count(u32::deserialize(value).map_err(message)?),
        Kind::Ratio | Kind::Share => PolicyValue::Number(f64::deserialize(value).map_err(message)?),
        Kind::Duration => {
            let text = String::deserialize(value).map_err(message)?;
            let d = rules::parse_duration(key, &text).map_err(|err| err.message())?;
            PolicyValue::Duration(d)
        }
        _ => PolicyValue::Text(String::deserialize(value).map_err(message)?.into()),
    })
}

/// Checks the `[sinks]` tables: each holds only known sections, each a table.
fn sink_sections(
    file: &str,
    sinks: BTreeMap<String, toml::Table>,
) -> Result<Vec<SinkSection>, ConfigError> {
    let mut sections = Vec::new();
    for (sink, table) in sinks {
        for (section, value) in table {
            if !SINK_SECTIONS.iter().any(|(name, _)| *name == section) {
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

fn worker_overrides(
    file: &str,
    worker: &str,
    table: toml::Table,
) -> Result<Overrides, ConfigError> {
    let mut section = Section {
        file,
        worker,
        values: BTreeMap::new(),
        policies: Vec::new(),
    };
    section.read(table)?;
    section.overrides().map_err(|err| section.rule(err))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<ConfigFile, ConfigError> {
        ConfigFile::parse("test.toml", text)
    }

    fn message(text: &str) -> String {
        parse(text).unwrap_err().to_string()
    }

    #[test]
    fn every_field_is_read_and_applied() {
        let file = parse(
            r#"
            [workers."app::send"]
            sink = "mail"
            concurrency = 8
            capacity = 500
            defer_on = ["backpressure.*", "smtp.slow"]
            resume_on = "smtp.priority"
            cancel_on = "smtp.down"
            defer_check_interval = "100ms"
            max_defer = "30s"
            "#,
        )
        .unwrap();
        let overrides = &file.workers["app::send"];
        assert_eq!(overrides.sink.as_deref(), Some("mail"));
        let mut config = CoordinatorConfig::default();
        overrides.apply(&mut config);
        assert_eq!(config.concurrency, 8);
        assert_eq!(config.capacity, 500);
        assert_eq!(
            config.defer_on.as_deref(),
            Some("backpressure.*, smtp.slow")
        );
        assert_eq!(config.resume_on.as_deref(), Some("smtp.priority"));
        assert_eq!(config.cancel_on.as_deref(), Some("smtp.down"));
        assert_eq!(config.defer_check_interval, Duration::from_millis(100));
        assert_eq!(config.max_defer, MaxDefer::After(Duration::from_secs(30)));
    }

    #[test]
    fn absent_fields_keep_the_existing_values() {
        let file = parse("[workers.a]\nmax_defer = \"never\"\n").unwrap();
        let mut config = CoordinatorConfig::default();
        file.workers["a"].apply(&mut config);
        assert_eq!(
            config,
            CoordinatorConfig {
                max_defer: MaxDefer::Never,
                ..CoordinatorConfig::default()
            }
        );
        let file = parse("[workers.a]\nmax_defer_attempts = 7\n").unwrap();
        file.workers["a"].apply(&mut config);
        assert_eq!(config.max_defer, MaxDefer::Attempts(7));
        assert!(parse("").unwrap().workers.is_empty());
    }

    #[test]
    fn errors_name_the_file_the_worker_and_the_field() {
        assert_eq!(
            message("[workers.a]\nconcurrenc = 3\n"),
            "config file `test.toml`, worker `a`: unknown field `concurrenc` (valid fields: \
             `sink`, `concurrency`, `capacity`, `defer_on`, `resume_on`, `cancel_on`, \
             `defer_check_interval`, `max_defer_attempts`, `max_defer`; policies: \
             `error_rate`, `slow_call`, `adaptive`, `watermark`)"
        );
        assert_eq!(
            message("[workers.a]\nconcurrency = \"4\"\n"),
            "config file `test.toml`, worker `a`, field `concurrency`: invalid type: string \"4\", expected usize"
        );
        assert_eq!(
            message("[workers.a]\nconcurrency = 1000000\n"),
            "config file `test.toml`, worker `a`, field `concurrency`: must be at most 65536 \
             (each slot is a task started up front), found 1000000"
        );
        assert_eq!(
            message("[workers.a]\ncapacity = 0\n"),
            "config file `test.toml`, worker `a`, field `capacity`: must be at least 1, found 0"
        );
        assert!(message("[workers.a]\ndefer_on = \"a b\"\n").starts_with(
            "config file `test.toml`, worker `a`, field `defer_on`: invalid pattern `a b`"
        ));
        assert!(message("[workers.a]\ndefer_on = \"a.*,,b\"\n")
            .contains("item 1 of the comma-separated list is empty"));
        assert_eq!(
            message("[workers.a]\ndefer_on = 3\n"),
            "config file `test.toml`, worker `a`, field `defer_on`: expected a pattern string or a list of pattern strings"
        );
        assert!(message("[workers.a]\ndefer_check_interval = \"5 parsecs\"\n")
            .starts_with("config file `test.toml`, worker `a`, field `defer_check_interval`: invalid duration `5 parsecs`"));
        assert_eq!(
            message("[workers.a]\nmax_defer = \"0s\"\n"),
            "config file `test.toml`, worker `a`, field `max_defer`: must be longer than zero, found `0s`"
        );
        assert!(
            message("[workers.a]\nmax_defer = \"1s\"\nmax_defer_attempts = 3\n")
                .contains("cannot both be given")
        );
        assert!(message("[workers.a]\nsink = \"has space\"\n")
            .contains("field `sink`: invalid sink name"));
    }

    #[test]
    fn top_level_mistakes_are_syntax_errors() {
        let err = parse("[worker.a]\nconcurrency = 3\n").unwrap_err();
        assert!(matches!(err, ConfigError::Syntax { .. }), "{err}");
        assert!(
            err.to_string()
                .starts_with("invalid config file `test.toml`: "),
            "{err}"
        );
        assert!(err.to_string().contains("unknown field `worker`"), "{err}");
        let err = parse("[workers.a\n").unwrap_err();
        assert!(matches!(err, ConfigError::Syntax { .. }), "{err}");
    }

    #[test]
    fn unknown_workers_are_reported_with_the_known_ones() {
        let file = parse("[workers.nope]\n").unwrap();
        let err = file.check_workers(["b", "a"].into_iter()).unwrap_err();
        assert_eq!(
            err.to_string(),
            "config file `test.toml` configures worker `nope`, which is not registered (registered workers: `a`, `b`)"
        );
        assert!(file.check_workers(["nope"].into_iter()).is_ok());
    }

    #[test]
    fn a_missing_file_is_a_read_error() {
        let err = ConfigFile::load(Path::new("/definitely/not/here.toml")).unwrap_err();
        assert!(matches!(err, ConfigError::Read { .. }));
        assert!(err
            .to_string()
            .starts_with("cannot read config file `/definitely/not/here.toml`: "));
    }

    #[test]
    fn sink_sections_are_kept_for_their_connector_and_refused_without_it() {
        let file =
            parse("[sinks.mail.redis]\nurl = \"redis://127.0.0.1:6379\"\nnamespace = \"shop\"\n")
                .unwrap();
        assert_eq!(file.sinks.len(), 1);
        let section = &file.sinks[0];
        assert_eq!((section.sink(), section.section()), ("mail", "redis"));
        assert_eq!(
            file.check_sinks(&[]).unwrap_err().to_string(),
            "config file `test.toml`, sink `mail`: the `redis` section needs the \
             `backpressure-redis` crate: start the runtime with \
             `backpressure_redis::start().await`"
        );
        assert!(file.check_sinks(&["redis"]).is_ok());

        #[derive(Debug, serde::Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Settings {
            #[allow(dead_code)]
            url: String,
        }
        let err = section.deserialize::<Settings>().unwrap_err().to_string();
        assert!(
            err.starts_with(
                "config file `test.toml`, sink `mail`, section `redis`: unknown field `namespace`"
            ),
            "{err}"
        );
    }

    #[test]
    fn unknown_sink_sections_are_errors() {
        assert_eq!(
            message("[sinks.mail.kafka]\nurl = \"x\"\n"),
            "config file `test.toml`, sink `mail`: unknown section `kafka` (known sections: `redis`)"
        );
        assert_eq!(
            message("[sinks.mail]\nredis = 3\n"),
            "config file `test.toml`, sink `mail`, section `redis`: expected a table such as \
             `[sinks.mail.redis]`"
        );
    }
}
