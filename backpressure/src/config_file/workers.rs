//! A `[workers."name"]` section: each field read as its key's kind and checked by its rule,
//! each policy table (`[workers."name".error_rate]`) read into a `PolicySpec`.

use std::collections::BTreeMap;

use backpressure_pattern::options::policies::{PolicyKind, PolicySpec, PolicyValue};
use backpressure_pattern::options::rate::{self, RateSpec, RATE};
use backpressure_pattern::options::retry::{self, RetrySpec, RETRY};
use backpressure_pattern::options::{
    self, rules, Key, Kind, OptionError, Values, Written, WrittenValues,
};
use serde::Deserialize;

use super::error::ConfigError;
use super::overrides::Overrides;

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

/// A field's value, read as its key's [`Kind`] says (its rule comes later, in
/// [`Values::read`]).
fn written(key: &Key, value: toml::Value) -> Result<Written, toml::de::Error> {
    Ok(match key.kind {
        Kind::Count => Written::Count(usize::deserialize(value)?),
        Kind::Attempts => Written::Attempts(u32::deserialize(value)?),
        Kind::Patterns => Written::Patterns(match PatternList::deserialize(value)? {
            PatternList::One(item) => vec![item],
            PatternList::Many(items) => items,
        }),
        _ => Written::Text(String::deserialize(value)?),
    })
}

/// Where a worker section's errors point: the file and the worker.
struct Section<'a> {
    file: &'a str,
    worker: &'a str,
    values: BTreeMap<&'static str, Written>,
    policies: Vec<PolicySpec>,
    retry: Option<RetrySpec>,
    rate: Option<RateSpec>,
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
            if field == RETRY {
                self.retry = Some(self.retry(value)?);
                continue;
            }
            if field == RATE {
                self.rate = Some(self.rate(value)?);
                continue;
            }
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
            let value =
                written(key, value).map_err(|err| self.invalid(&field, err.message().into()))?;
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

    /// Reads the `[workers."name".retry]` table by each key's kind, and checks what it gives.
    fn retry(&self, value: toml::Value) -> Result<RetrySpec, ConfigError> {
        let toml::Value::Table(table) = value else {
            let message = format!("expected a table such as `[workers.{}.retry]`", self.worker);
            return Err(self.invalid(RETRY, message));
        };
        let mut spec = RetrySpec::new();
        for (field, value) in table {
            let Some(key) = retry::key(&field) else {
                return Err(ConfigError::UnknownRetryField {
                    file: self.file.to_owned(),
                    worker: self.worker.to_owned(),
                    field,
                });
            };
            let value = policy_value(key, value)
                .map_err(|message| self.invalid_retry(key.name, message))?;
            spec.set(key, value);
        }
        spec.check_given()
            .map_err(|err| self.invalid_retry(err.key().name, err.message()))?;
        Ok(spec)
    }

    /// Reads the `[workers."name".rate]` table by each key's kind, and checks what it gives.
    fn rate(&self, value: toml::Value) -> Result<RateSpec, ConfigError> {
        let toml::Value::Table(table) = value else {
            let message = format!("expected a table such as `[workers.{}.rate]`", self.worker);
            return Err(self.invalid(RATE, message));
        };
        let mut spec = RateSpec::new();
        for (field, value) in table {
            let Some(key) = rate::key(&field) else {
                return Err(ConfigError::UnknownRateField {
                    file: self.file.to_owned(),
                    worker: self.worker.to_owned(),
                    field,
                });
            };
            let value =
                policy_value(key, value).map_err(|message| self.invalid_rate(key.name, message))?;
            spec.set(key, value);
        }
        spec.check_given()
            .map_err(|err| self.invalid_rate(err.key().name, err.message()))?;
        Ok(spec)
    }

    fn invalid_rate(&self, field: &str, message: String) -> ConfigError {
        ConfigError::InvalidRateValue {
            file: self.file.to_owned(),
            worker: self.worker.to_owned(),
            field: field.to_owned(),
            message,
        }
    }

    fn invalid_retry(&self, field: &str, message: String) -> ConfigError {
        ConfigError::InvalidRetryValue {
            file: self.file.to_owned(),
            worker: self.worker.to_owned(),
            field: field.to_owned(),
            message,
        }
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
}

/// The section's fields, for [`Values::read`]: read already, so only a rule can fail.
impl WrittenValues for Section<'_> {
    type Error = ConfigError;

    fn written(&self, key: &'static Key) -> Result<Option<Written>, ConfigError> {
        Ok(self.values.get(key.name).cloned())
    }

    fn broken(&self, err: OptionError) -> ConfigError {
        self.rule(err)
    }
}

/// A policy's, `retry`'s or `rate`'s field's value, read as its key's [`Kind`] says; the message names
/// what is wrong.
fn policy_value(key: &'static Key, value: toml::Value) -> Result<PolicyValue, String> {
    let message = |err: toml::de::Error| err.message().to_owned();
    Ok(match key.kind {
        Kind::Count => PolicyValue::Count(u32::deserialize(value).map_err(message)?),
        Kind::Ratio | Kind::Share | Kind::Fraction | Kind::Factor => {
            PolicyValue::Number(f64::deserialize(value).map_err(message)?)
        }
        Kind::Seed => PolicyValue::Seed(u64::deserialize(value).map_err(message)?),
        Kind::Flag => PolicyValue::Flag(bool::deserialize(value).map_err(message)?),
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
        retry: None,
        rate: None,
    };
    section.read(table)?;
    Ok(Overrides {
        values: Values::read(&section)?,
        policies: section.policies,
        retry: section.retry,
        rate: section.rate,
    })
}
