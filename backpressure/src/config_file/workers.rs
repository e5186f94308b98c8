//! A `[workers."name"]` section: each field read as its key's kind and checked by its rule,
//! each policy table (`[workers."name".error_rate]`) read into a `PolicySpec`.

use std::collections::BTreeMap;
use std::time::Duration;

use backpressure_pattern::options::policies::{PolicyKind, PolicySpec, PolicyValue};
use backpressure_pattern::options::{
    self, rules, Key, Kind, OptionError, CANCEL_ON, CAPACITY, CONCURRENCY, DEFER_CHECK_INTERVAL,
    DEFER_ON, MAX_DEFER, MAX_DEFER_ATTEMPTS, RESUME_ON, SINK,
};
use serde::Deserialize;

use super::error::ConfigError;
use super::overrides::Overrides;
use crate::MaxDefer;

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

/// Reads and checks one worker's section.
pub(super) fn overrides(
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
