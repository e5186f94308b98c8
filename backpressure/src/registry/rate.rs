//! A registered worker's rate: the attribute's `rate(...)`, with its config-file table over
//! it (or alone: a file may add a rate to any worker).

use super::registration::Registration;
use super::RegistryError;
use crate::config_file::{ConfigError, Overrides};
use crate::error::{BuildError, RateError};
use crate::limit::Rate;

/// The worker's rate: the attribute's, each value the file's `[workers."name".rate]` table
/// gives laid over it, checked by the shared rules. A worker without `rate(...)` gets the
/// file's table alone, which must then give `limit` and `per`.
///
/// # Errors
///
/// A broken or missing rule, naming the file and worker when the file has a `rate` table,
/// otherwise (the attribute alone, checked at compile time) a build error.
pub(super) fn build(
    registration: &Registration,
    overrides: Option<&Overrides>,
    file: &str,
) -> Result<Option<Rate>, RegistryError> {
    let over = overrides.and_then(|o| o.rate.as_ref());
    let mut spec = match (&registration.rate, over) {
        (None, None) => return Ok(None),
        (Some(declared), _) => declared.clone(),
        (None, Some(_)) => Default::default(),
    };
    if let Some(over) = over {
        spec.overlay(over);
    }
    spec.check().map_err(|err| match over {
        Some(_) => RegistryError::Config(ConfigError::InvalidRateValue {
            file: file.to_owned(),
            worker: registration.name.to_owned(),
            field: err.key().name.to_owned(),
            message: err.message(),
        }),
        None => RegistryError::Build {
            worker: registration.name.to_owned(),
            source: BuildError::Rate(RateError::from_rule(&err)),
        },
    })?;
    Ok(Some(Rate::from_spec(&spec)))
}
