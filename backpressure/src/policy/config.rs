//! [`Policy`]: one of the health policies a worker is configured with, and the places a
//! policy kind is named (its spec both ways, and the machine it starts).

use backpressure_pattern::options::policies::{PolicyKind, PolicySpec};
use tokio::time::Instant;

use super::adaptive::Limit;
use super::breaker::Machine;
use super::machine::PolicyMachine;
use super::watermark::Mark;
use super::{Adaptive, Breaker, PolicyError, Watermark};

/// A health policy of a worker; see the [module docs](super).
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Policy {
    /// A circuit breaker ([`Breaker::error_rate`] or [`Breaker::slow_call`]).
    Breaker(Breaker),
    /// An adaptive limit.
    Adaptive(Adaptive),
    /// A queue watermark.
    Watermark(Watermark),
}

impl Policy {
    /// The signal the policy raises.
    pub fn signal(&self) -> &str {
        match self {
            Policy::Breaker(b) => b.signal(),
            Policy::Adaptive(a) => a.signal(),
            Policy::Watermark(w) => w.signal(),
        }
    }

    /// The policy's name as written in configuration: `error_rate`, `slow_call`,
    /// `adaptive` or `watermark`.
    pub fn kind(&self) -> &'static str {
        let kind = match self {
            Policy::Breaker(b) => b.kind(),
            Policy::Adaptive(_) => PolicyKind::Adaptive,
            Policy::Watermark(_) => PolicyKind::Watermark,
        };
        kind.name()
    }

    /// Checks every value and the signal name, by the rules of
    /// `backpressure_pattern::options::policies` (the attribute and config files use the
    /// same rules).
    ///
    /// # Errors
    ///
    /// A [`PolicyError`] naming the policy and the field, in the rule's words.
    pub fn validate(&self) -> Result<(), PolicyError> {
        PolicyError::check(&self.spec())
    }

    /// Its values, as configured in the attribute or a config file.
    pub(crate) fn spec(&self) -> PolicySpec {
        match self {
            Policy::Breaker(b) => b.spec(),
            Policy::Adaptive(a) => a.spec(),
            Policy::Watermark(w) => w.spec(),
        }
    }

    /// The policy `spec` describes, every value it does not give at its default. `spec` is
    /// expected to have passed its check.
    pub(crate) fn from_spec(spec: &PolicySpec) -> Self {
        match spec.policy {
            PolicyKind::ErrorRate | PolicyKind::SlowCall => Breaker::from_spec(spec).into(),
            PolicyKind::Adaptive => Adaptive::from_spec(spec).into(),
            PolicyKind::Watermark => Watermark::from_spec(spec).into(),
        }
    }

    /// Its state machine, started at `now` for a worker whose queue holds `capacity` items.
    pub(super) fn start(self, now: Instant, capacity: usize) -> Box<dyn PolicyMachine> {
        match self {
            Policy::Breaker(b) => Box::new(Machine::new(b, now)),
            Policy::Adaptive(a) => Box::new(Limit::new(a, now)),
            Policy::Watermark(w) => Box::new(Mark::new(w, capacity)),
        }
    }
}

impl From<Breaker> for Policy {
    fn from(breaker: Breaker) -> Self {
        Policy::Breaker(breaker)
    }
}

impl From<Watermark> for Policy {
    fn from(watermark: Watermark) -> Self {
        Policy::Watermark(watermark)
    }
}

impl From<Adaptive> for Policy {
    fn from(adaptive: Adaptive) -> Self {
        Policy::Adaptive(adaptive)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn a_policy_comes_back_from_its_spec() {
        let policies: [Policy; 4] = [
            Breaker::error_rate("s")
                .window(Duration::from_secs(7))
                .min_calls(3)
                .failure_ratio(0.25)
                .consecutive_failures(4)
                .ttl(Duration::from_secs(9))
                .open_for(Duration::from_secs(2))
                .max_open_for(Duration::from_secs(8))
                .jitter(0.5)
                .probes(6)
                .probe_timeout(Duration::from_secs(5))
                .into(),
            Breaker::slow_call("s", Duration::from_millis(300)).into(),
            Adaptive::new("s", 12)
                .window(Duration::from_secs(3))
                .slow_after(Duration::from_secs(1))
                .ttl(Duration::from_secs(6))
                .into(),
            Watermark::new("s")
                .high(0.9)
                .low(0.1)
                .max_age(Duration::from_secs(60))
                .hold_for(Duration::from_secs(2))
                .ttl(Duration::from_secs(4))
                .into(),
        ];
        for policy in policies {
            assert_eq!(Policy::from_spec(&policy.spec()), policy);
        }
    }

    #[test]
    fn a_spec_without_values_is_the_constructors_defaults() {
        let spec = |policy| PolicySpec {
            signal: Some("s".into()),
            max: Some(5),
            slow_after: Some(Duration::from_secs(1)),
            ..PolicySpec::new(policy)
        };
        assert_eq!(
            Policy::from_spec(&spec(PolicyKind::ErrorRate)),
            Breaker::error_rate("s").into()
        );
        assert_eq!(
            Policy::from_spec(&spec(PolicyKind::SlowCall)),
            Breaker::slow_call("s", Duration::from_secs(1)).into()
        );
        assert_eq!(
            Policy::from_spec(&spec(PolicyKind::Adaptive)),
            Adaptive::new("s", 5)
                .slow_after(Duration::from_secs(1))
                .into()
        );
        assert_eq!(
            Policy::from_spec(&spec(PolicyKind::Watermark)),
            Watermark::new("s").into()
        );
    }
}
