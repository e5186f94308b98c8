//! A registered worker's policies: the attribute's, with its config-file sections over them.

use backpressure_pattern::options::policies::{PolicyKind, PolicySpec};
use backpressure_pattern::options::OptionError;

use super::registration::Registration;
use super::RegistryError;
use crate::config_file::{ConfigError, Overrides};
use crate::policy::PolicyError;
use crate::{Adaptive, Breaker, BuildError, Policy, Watermark};

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
        .map(|spec| {
            spec.check()
                .and_then(|()| spec.check_deferred(defer_on))
                .map_err(|err| fail(spec, err))?;
            Ok(policy(&spec.resolved()))
        })
        .collect()
}

/// A checked policy, with every default filled in, as the runtime's type.
fn policy(spec: &PolicySpec) -> Policy {
    let signal = spec.signal.clone().unwrap_or_default().into_owned();
    match spec.policy {
        PolicyKind::ErrorRate | PolicyKind::SlowCall => breaker(spec, signal).into(),
        PolicyKind::Adaptive => {
            let mut adaptive = Adaptive::new(signal, spec.max.unwrap_or(1));
            set(&mut adaptive, spec.window, Adaptive::window);
            set(&mut adaptive, spec.slow_after, Adaptive::slow_after);
            set(&mut adaptive, spec.ttl, Adaptive::ttl);
            adaptive.into()
        }
        PolicyKind::Watermark => {
            let mut mark = Watermark::new(signal);
            set(&mut mark, spec.high, Watermark::high);
            set(&mut mark, spec.low, Watermark::low);
            set(&mut mark, spec.max_age, Watermark::max_age);
            set(&mut mark, spec.hold_for, Watermark::hold_for);
            set(&mut mark, spec.ttl, Watermark::ttl);
            mark.into()
        }
    }
}

fn breaker(spec: &PolicySpec, signal: String) -> Breaker {
    let mut breaker = match (spec.policy, spec.slow_after) {
        (PolicyKind::SlowCall, Some(slow_after)) => Breaker::slow_call(signal, slow_after),
        _ => Breaker::error_rate(signal),
    };
    set(&mut breaker, spec.window, Breaker::window);
    set(&mut breaker, spec.min_calls, Breaker::min_calls);
    set(&mut breaker, spec.failure_ratio, Breaker::failure_ratio);
    set(
        &mut breaker,
        spec.consecutive_failures,
        Breaker::consecutive_failures,
    );
    set(&mut breaker, spec.ttl, Breaker::ttl);
    set(&mut breaker, spec.open_for, Breaker::open_for);
    set(&mut breaker, spec.max_open_for, Breaker::max_open_for);
    set(&mut breaker, spec.jitter, Breaker::jitter);
    set(&mut breaker, spec.probes, Breaker::probes);
    set(&mut breaker, spec.probe_timeout, Breaker::probe_timeout);
    breaker
}

/// Applies a by-value setter when the value is given.
fn set<P: Clone, V>(policy: &mut P, value: Option<V>, setter: fn(P, V) -> P) {
    if let Some(value) = value {
        *policy = setter(policy.clone(), value);
    }
}
