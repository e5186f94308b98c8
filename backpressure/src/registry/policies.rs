//! A registered worker's policies: the attribute's, with its config-file sections over them.

use backpressure_pattern::options::policies::PolicySpec;
use backpressure_pattern::options::OptionError;

use super::registration::Registration;
use super::RegistryError;
use crate::config_file::{ConfigError, Overrides};
use crate::error::BuildError;
use crate::policy::Policy;
use crate::policy::PolicyError;

/// The worker's policies: each config-file section overrides the fields of the attribute's
/// policy of its kind, or adds one. The result is checked by the shared rules, including
/// the `defer_on` rule against the effective `defer_on`.
///
/// # Errors
///
/// A broken rule names the file, worker, policy and field when the worker has a config
/// section; otherwise (the attribute alone, checked at compile time) it is a build error.
pub(super) fn build(
    registration: &Registration,
    overrides: Option<&Overrides>,
    file: &str,
    defer_on: Option<&str>,
) -> Result<Vec<Policy>, RegistryError> {
    let mut specs: Vec<PolicySpec> = registration.policies.to_vec();
    for over in overrides.map_or(&[][..], |o| &o.policies) {
        match specs.iter_mut().find(|spec| spec.policy == over.policy) {
            Some(spec) => spec.overlay(over),
            None => specs.push(over.clone()),
        }
    }
    let fail = |spec: &PolicySpec, err: OptionError| match overrides {
        Some(_) => RegistryError::Config(ConfigError::InvalidPolicyValue {
            file: file.to_owned(),
            worker: registration.name.to_owned(),
            policy: spec.policy.name(),
            field: err.key().name.to_owned(),
            message: err.message(),
        }),
        None => RegistryError::Build {
            worker: registration.name.to_owned(),
            source: BuildError::Policy(PolicyError::from_rule(spec.policy, &err)),
        },
    };
    specs
        .iter()
        .enumerate()
        .map(|(at, spec)| {
            spec.check()
                .and_then(|()| spec.check_deferred(defer_on))
                .and_then(|()| spec.check_own_signal(&specs[..at]))
                .map_err(|err| fail(spec, err))?;
            Ok(Policy::from_spec(spec))
        })
        .collect()
}
