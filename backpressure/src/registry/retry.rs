//! A registered worker's retry: the attribute's `retry(...)`, with its config-file table
//! over it.

use super::registration::Registration;
use super::RegistryError;
use crate::config_file::{ConfigError, Overrides};
use crate::error::{BuildError, RetryError};
use crate::retry::Retry;

/// The worker's retry: the attribute's, each value the file's `[workers."name".retry]` table
/// gives laid over it, checked by the shared rules.
///
/// # Errors
///
/// A `retry` table for a worker whose attribute has no `retry(...)` (retrying needs the item
/// type to be `Clone`, which only the attribute checks); a broken rule, naming the file and
/// worker when the file has a `retry` table, otherwise (the attribute alone, checked at
/// compile time) a build error.
pub(super) fn build(
    registration: &Registration,
    overrides: Option<&Overrides>,
    file: &str,
) -> Result<Option<Retry>, RegistryError> {
    let over = overrides.and_then(|o| o.retry.as_ref());
    let Some(declared) = &registration.retry else {
        return match over {
            None => Ok(None),
            Some(_) => Err(RegistryError::Config(ConfigError::RetryNotDeclared {
                file: file.to_owned(),
                worker: registration.name.to_owned(),
            })),
        };
    };
    let mut spec = declared.clone();
    if let Some(over) = over {
        spec.overlay(over);
    }
    spec.check().map_err(|err| match over {
        Some(_) => RegistryError::Config(ConfigError::InvalidRetryValue {
            file: file.to_owned(),
            worker: registration.name.to_owned(),
            field: err.key().name.to_owned(),
            message: err.message(),
        }),
        None => RegistryError::Build {
            worker: registration.name.to_owned(),
            source: BuildError::Retry(RetryError::from_rule(&err)),
        },
    })?;
    Ok(Some(Retry::from_spec(&spec)))
}
