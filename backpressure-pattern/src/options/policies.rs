//! Every key of a health policy, defined once: the policies' names, each key's name, kind,
//! default and allowed values, the rules between keys, and the words of their errors.
//!
//! A policy is written the same way everywhere: a name (`error_rate`, `slow_call`,
//! `adaptive`, `watermark`) and `key = value` pairs, as `error_rate(signal = "...", ...)`
//! in the attribute and as a `[workers."name".error_rate]` table in a config file. Both
//! front-ends read the values into a [`PolicySpec`] by each key's [`Kind`] and call
//! [`PolicySpec::check`] (or [`check_given`](PolicySpec::check_given) for a partial
//! override); the runtime's `Breaker`, `Adaptive` and `Watermark` describe themselves as a
//! [`PolicySpec`] and call the same check. A broken rule is an [`OptionError`] whose
//! [`policy`](OptionError::policy) names the policy.
//!
//! # Adding a policy key
//!
//! 1. Here: a [`Key`] constant, its place in [`PolicyKind::keys`] of each policy that takes
//!    it (and [`PolicyKind::required`] if it has no default), its default (a `DEFAULT_…`
//!    constant used by [`PolicyKind::defaults`]) and one line in the `fields!` list below,
//!    which makes it a field of [`PolicySpec`] (named like the key). A rule between two keys
//!    goes in `check_order`; a value's rule follows from its [`Kind`].
//! 2. Plumbing, in the runtime policy's own file (under `backpressure/src/policy/`): its field,
//!    setter, and its lines in `spec()` and `from_spec()`. The attribute and the config file
//!    read the value by its kind, and the macro emits the field by the key's name: no new
//!    code there.
//! 3. A row in the table-driven test `backpressure-macros/src/tests.rs`.

use std::borrow::Cow;
use std::time::Duration;

pub use super::policy_kind::{PolicyKind, POLICIES};
use super::{rules, Key, Kind, OptionError, Problem};
use crate::Pattern;

/// The largest value of a policy's count (`min_calls`, `probes`, `max`, ...).
const COUNT_LIMIT: Option<(usize, &str)> = Some((u32::MAX as usize, "a 32-bit count"));

const fn count(name: &'static str, example: &'static str) -> Key {
    Key {
        max: COUNT_LIMIT,
        ..Key::new(name, Kind::Count, example)
    }
}

/// `signal`: the signal a policy raises (the signal-name rules). Every policy needs one.
pub const SIGNAL: Key = Key::new("signal", Kind::Name, "\"backpressure.smtp\"");
/// `window`: a breaker's sliding window, or how often `adaptive` judges its limit.
pub const WINDOW: Key = Key::new("window", Kind::Duration, "\"30s\"");
/// `min_calls`: calls that must have ended in a breaker's window before its ratio counts.
pub const MIN_CALLS: Key = count("min_calls", "20");
/// `failure_ratio`: the share of failed (or slow) calls that opens a breaker.
pub const FAILURE_RATIO: Key = Key::new("failure_ratio", Kind::Ratio, "0.5");
/// `consecutive_failures`: also open a breaker after this many failures in a row.
pub const CONSECUTIVE_FAILURES: Key = count("consecutive_failures", "5");
/// `ttl`: the raised signal's time-to-live, refreshed every `ttl / 3` while raised.
pub const TTL: Key = Key::new("ttl", Kind::Duration, "\"15s\"");
/// `open_for`: how long a breaker stays open before probing (doubling after failed probes).
pub const OPEN_FOR: Key = Key::new("open_for", Kind::Duration, "\"30s\"");
/// `max_open_for`: the longest open period.
pub const MAX_OPEN_FOR: Key = Key::new("max_open_for", Kind::Duration, "\"300s\"");
/// `jitter`: the random spread of open periods.
pub const JITTER: Key = Key::new("jitter", Kind::Share, "0.15");
/// `probes`: items the owner may start while half-open; that many successes close it.
pub const PROBES: Key = count("probes", "3");
/// `probe_timeout`: a probe running longer than this reopens the breaker.
pub const PROBE_TIMEOUT: Key = Key::new("probe_timeout", Kind::Duration, "\"30s\"");
/// `slow_after`: calls slower than this count as bad (required by `slow_call`).
pub const SLOW_AFTER: Key = Key::new("slow_after", Kind::Duration, "\"2s\"");
/// `max`: the largest limit of `adaptive` (required); its level is `limit / max`.
pub const MAX: Key = count("max", "16");
/// `high`: the share of capacity at which a watermark's queue is backed up (rounded up).
pub const HIGH: Key = Key::new("high", Kind::Ratio, "0.8");
/// `low`: the share of capacity at or below which a watermark retracts (rounded down).
pub const LOW: Key = Key::new("low", Kind::Share, "0.5");
/// `max_age`: a watermark's queue is also backed up while its oldest item is older.
pub const MAX_AGE: Key = Key::new("max_age", Kind::Duration, "\"60s\"");
/// `hold_for`: how long a watermark's queue must stay backed up before it raises.
pub const HOLD_FOR: Key = Key::new("hold_for", Kind::Duration, "\"5s\"");

/// Default `ttl` of every policy.
pub const DEFAULT_TTL: Duration = Duration::from_secs(15);
/// Default `window` of a breaker.
pub const DEFAULT_BREAKER_WINDOW: Duration = Duration::from_secs(30);
/// Default `min_calls`.
pub const DEFAULT_MIN_CALLS: u32 = 20;
/// Default `failure_ratio`.
pub const DEFAULT_FAILURE_RATIO: f64 = 0.5;
/// Default `open_for`.
pub const DEFAULT_OPEN_FOR: Duration = Duration::from_secs(30);
/// Default `max_open_for`.
pub const DEFAULT_MAX_OPEN_FOR: Duration = Duration::from_secs(300);
/// Default `jitter` (±15 %).
pub const DEFAULT_JITTER: f64 = 0.15;
/// Default `probes`.
pub const DEFAULT_PROBES: u32 = 3;
/// Default `probe_timeout`.
pub const DEFAULT_PROBE_TIMEOUT: Duration = Duration::from_secs(30);
/// Default `window` of `adaptive`.
pub const DEFAULT_ADAPTIVE_WINDOW: Duration = Duration::from_secs(10);
/// Default `high` of a watermark.
pub const DEFAULT_HIGH: f64 = 0.8;
/// Default `low` of a watermark.
pub const DEFAULT_LOW: f64 = 0.5;
/// Default `hold_for` of a watermark.
pub const DEFAULT_HOLD_FOR: Duration = Duration::from_secs(5);

const BREAKER_KEYS: [&Key; 11] = [
    &SIGNAL,
    &WINDOW,
    &MIN_CALLS,
    &FAILURE_RATIO,
    &CONSECUTIVE_FAILURES,
    &TTL,
    &OPEN_FOR,
    &MAX_OPEN_FOR,
    &JITTER,
    &PROBES,
    &PROBE_TIMEOUT,
];

impl PolicyKind {
    /// The keys it takes, in the order errors and docs list them.
    pub fn keys(self) -> &'static [&'static Key] {
        const SLOW_CALL: [&Key; 12] = {
            let mut keys = [&SLOW_AFTER; 12];
            let mut i = 0;
            while i < BREAKER_KEYS.len() {
                keys[i] = BREAKER_KEYS[i];
                i += 1;
            }
            keys
        };
        match self {
            PolicyKind::ErrorRate => &BREAKER_KEYS,
            PolicyKind::SlowCall => &SLOW_CALL,
            PolicyKind::Adaptive => &[&SIGNAL, &MAX, &WINDOW, &SLOW_AFTER, &TTL],
            PolicyKind::Watermark => &[&SIGNAL, &HIGH, &LOW, &MAX_AGE, &HOLD_FOR, &TTL],
        }
    }

    /// Its key called `name`, if it takes one.
    pub fn key(self, name: &str) -> Option<&'static Key> {
        self.keys().iter().copied().find(|key| key.name == name)
    }

    /// The keys without a default, which must be given.
    pub fn required(self) -> &'static [&'static Key] {
        match self {
            PolicyKind::ErrorRate | PolicyKind::Watermark => &[&SIGNAL],
            PolicyKind::SlowCall => &[&SIGNAL, &SLOW_AFTER],
            PolicyKind::Adaptive => &[&SIGNAL, &MAX],
        }
    }

    /// Its defaults: every key that has one, set.
    pub fn defaults(self) -> PolicySpec {
        let base = PolicySpec {
            ttl: Some(DEFAULT_TTL),
            ..PolicySpec::new(self)
        };
        match self {
            PolicyKind::ErrorRate | PolicyKind::SlowCall => PolicySpec {
                window: Some(DEFAULT_BREAKER_WINDOW),
                min_calls: Some(DEFAULT_MIN_CALLS),
                failure_ratio: Some(DEFAULT_FAILURE_RATIO),
                open_for: Some(DEFAULT_OPEN_FOR),
                max_open_for: Some(DEFAULT_MAX_OPEN_FOR),
                jitter: Some(DEFAULT_JITTER),
                probes: Some(DEFAULT_PROBES),
                probe_timeout: Some(DEFAULT_PROBE_TIMEOUT),
                ..base
            },
            PolicyKind::Adaptive => PolicySpec {
                window: Some(DEFAULT_ADAPTIVE_WINDOW),
                ..base
            },
            PolicyKind::Watermark => PolicySpec {
                high: Some(DEFAULT_HIGH),
                low: Some(DEFAULT_LOW),
                hold_for: Some(DEFAULT_HOLD_FOR),
                ..base
            },
        }
    }
}

/// One value of a policy key, of the form its [`Kind`] asks for.
#[derive(Debug, Clone, PartialEq)]
pub enum PolicyValue {
    /// A [`Kind::Name`] (the signal).
    Text(Cow<'static, str>),
    /// A [`Kind::Count`].
    Count(u32),
    /// A [`Kind::Ratio`] or [`Kind::Share`].
    Number(f64),
    /// A [`Kind::Duration`].
    Duration(Duration),
    /// A [`Kind::Seed`] (`retry`'s `jitter_seed`; no policy key has this kind).
    Seed(u64),
    /// A [`Kind::Flag`] (`rate`'s `shared`; no policy key has this kind).
    Flag(bool),
}

macro_rules! fields {
    ($($field:ident: $ty:ty => $key:ident as $variant:ident,)*) => {
        /// A policy's values as configured: `None` is "the policy's default" (or, for a
        /// required key, missing). Const-constructible, so the attribute's policies can live
        /// in its static registration. Each field is named like its key.
        #[derive(Debug, Clone, PartialEq)]
        pub struct PolicySpec {
            /// Which policy.
            pub policy: PolicyKind,
            $(
                #[doc = concat!("`", stringify!($field), "`")]
                pub $field: Option<$ty>,
            )*
        }

        impl PolicySpec {
            /// Every field's key, in the order of the fields.
            pub const FIELDS: &'static [&'static Key] = &[$(&$key),*];

            /// A policy with no value given.
            pub const fn new(policy: PolicyKind) -> Self {
                Self { policy, $($field: None,)* }
            }

            /// The value given for `key`, if any.
            pub fn get(&self, key: &Key) -> Option<PolicyValue> {
                $(
                    if key.name == $key.name {
                        return self.$field.clone().map(PolicyValue::$variant);
                    }
                )*
                None
            }

            /// Sets `key`; `false` if the value is not of the form the key's kind asks for.
            pub fn set(&mut self, key: &Key, value: PolicyValue) -> bool {
                match value {
                    $(
                        PolicyValue::$variant(value) if key.name == $key.name => {
                            self.$field = Some(value);
                            true
                        }
                    )*
                    _ => false,
                }
            }

            /// Writes every value given in `over` over this one's.
            pub fn overlay(&mut self, over: &PolicySpec) {
                $(
                    if let Some(value) = &over.$field {
                        self.$field = Some(value.clone());
                    }
                )*
            }
        }
    };
}

fields! {
    signal: Cow<'static, str> => SIGNAL as Text,
    window: Duration => WINDOW as Duration,
    min_calls: u32 => MIN_CALLS as Count,
    failure_ratio: f64 => FAILURE_RATIO as Number,
    consecutive_failures: u32 => CONSECUTIVE_FAILURES as Count,
    ttl: Duration => TTL as Duration,
    open_for: Duration => OPEN_FOR as Duration,
    max_open_for: Duration => MAX_OPEN_FOR as Duration,
    jitter: f64 => JITTER as Number,
    probes: u32 => PROBES as Count,
    probe_timeout: Duration => PROBE_TIMEOUT as Duration,
    slow_after: Duration => SLOW_AFTER as Duration,
    max: u32 => MAX as Count,
    high: f64 => HIGH as Number,
    low: f64 => LOW as Number,
    max_age: Duration => MAX_AGE as Duration,
    hold_for: Duration => HOLD_FOR as Duration,
}

impl PolicySpec {
    /// Every rule of a complete policy: its required keys are given, and every value and
    /// every rule between keys holds once the defaults are filled in.
    ///
    /// # Examples
    ///
    /// ```
    /// use backpressure_pattern::options::policies::{PolicyKind, PolicySpec};
    ///
    /// let spec = PolicySpec {
    ///     signal: Some("backpressure.queue".into()),
    ///     low: Some(0.9),
    ///     ..PolicySpec::new(PolicyKind::Watermark)
    /// };
    /// let err = spec.check().unwrap_err();
    /// assert_eq!(err.to_string(), "`low` must be below `high` (0.8), found 0.9");
    ///
    /// let err = PolicySpec::new(PolicyKind::SlowCall).check().unwrap_err();
    /// assert_eq!(err.message(), "`slow_call` needs `signal`, such as `signal = \"backpressure.smtp\"`");
    /// ```
    ///
    /// # Errors
    ///
    /// The first broken rule, about a key of this policy.
    pub fn check(&self) -> Result<(), OptionError> {
        for &key in self.policy.required() {
            if self.get(key).is_none() {
                return Err(OptionError::new(key, Problem::Missing).in_policy(self.policy));
            }
        }
        self.resolved().check_given()
    }

    /// The rules of the values given, and the rules between two given keys: what a partial
    /// override (a config file's section) can be held to before it meets the policy it
    /// overrides.
    ///
    /// # Errors
    ///
    /// The first broken rule, about a key of this policy.
    pub fn check_given(&self) -> Result<(), OptionError> {
        self.check_values()
            .and_then(|()| self.check_order())
            .map_err(|err| err.in_policy(self.policy))
    }

    /// A policy whose verdict concerns its own worker must be deferred on by that worker:
    /// an `adaptive` level throttles only workers whose `defer_on` matches it, and a breaker
    /// (`error_rate`, `slow_call`) whose owner does not defer on its signal keeps sending
    /// into the downstream it found failing. A `watermark` signal is exempt: it tells *other*
    /// workers that this one's queue is backing up, and its owner deferring on it would only
    /// stop the draining that ends it.
    ///
    /// `defer_on` is the worker's pattern (`None`: it defers on nothing). A pattern that does
    /// not compile is reported elsewhere and passes here.
    ///
    /// # Examples
    ///
    /// ```
    /// use backpressure_pattern::options::policies::{PolicyKind, PolicySpec};
    ///
    /// let breaker = PolicySpec {
    ///     signal: Some("backpressure.smtp".into()),
    ///     ..PolicySpec::new(PolicyKind::ErrorRate)
    /// };
    /// assert!(breaker.check_deferred(Some("backpressure.*")).is_ok());
    /// let err = breaker.check_deferred(Some("db.*")).unwrap_err();
    /// assert!(err.message().contains("keep sending into the failing downstream"));
    /// assert!(breaker.check_deferred(None).is_err());
    ///
    /// let watermark = PolicySpec {
    ///     signal: Some("backpressure.queue".into()),
    ///     ..PolicySpec::new(PolicyKind::Watermark)
    /// };
    /// assert!(watermark.check_deferred(None).is_ok());
    /// ```
    ///
    /// # Errors
    ///
    /// [`Problem::NotDeferred`] on `signal`.
    pub fn check_deferred(&self, defer_on: Option<&str>) -> Result<(), OptionError> {
        let Some(signal) = &self.signal else {
            return Ok(());
        };
        if self.policy == PolicyKind::Watermark {
            return Ok(());
        }
        let matched = match defer_on {
            Some(text) => Pattern::parse(text).map_or(true, |p| p.matches(signal)),
            None => false,
        };
        if matched {
            return Ok(());
        }
        let problem = Problem::NotDeferred {
            policy: self.policy,
            signal: signal.to_string(),
            defer_on: defer_on.unwrap_or("").to_owned(),
        };
        Err(OptionError::new(&SIGNAL, problem).in_policy(self.policy))
    }

    /// The rule that each policy of a worker raises a signal of its own: `earlier` are the
    /// worker's policies before this one. Two on one signal would share one entry (a
    /// worker's policies raise under its one key), so one going half-open or closing would
    /// end the other's open verdict.
    ///
    /// # Examples
    ///
    /// ```
    /// use backpressure_pattern::options::policies::{PolicyKind, PolicySpec};
    ///
    /// let spec = |policy, signal: &str| PolicySpec {
    ///     signal: Some(signal.to_owned().into()),
    ///     ..PolicySpec::new(policy)
    /// };
    /// let errors = spec(PolicyKind::ErrorRate, "backpressure.smtp");
    /// let slow = spec(PolicyKind::SlowCall, "backpressure.smtp");
    /// let err = slow.check_own_signal([&errors]).unwrap_err();
    /// assert!(err.message().contains("already raised by this worker's `error_rate` policy"));
    /// let slow = spec(PolicyKind::SlowCall, "backpressure.smtp.slow");
    /// assert!(slow.check_own_signal([&errors]).is_ok());
    /// ```
    ///
    /// # Errors
    ///
    /// [`Problem::SignalTaken`] on `signal`.
    pub fn check_own_signal<'a>(
        &self,
        earlier: impl IntoIterator<Item = &'a PolicySpec>,
    ) -> Result<(), OptionError> {
        let Some(signal) = self.resolved().signal else {
            return Ok(());
        };
        let taken = earlier
            .into_iter()
            .find(|other| other.resolved().signal.as_deref() == Some(&*signal));
        match taken {
            None => Ok(()),
            Some(other) => {
                let problem = Problem::SignalTaken {
                    signal: signal.to_string(),
                    by: other.policy,
                };
                Err(OptionError::new(&SIGNAL, problem).in_policy(self.policy))
            }
        }
    }

    /// The values given, over the policy's defaults.
    pub fn resolved(&self) -> PolicySpec {
        let mut spec = self.policy.defaults();
        spec.overlay(self);
        spec
    }

    fn check_values(&self) -> Result<(), OptionError> {
        for &key in self.policy.keys() {
            match self.get(key) {
                None => {}
                Some(PolicyValue::Text(text)) => rules::name(key, &text)?,
                Some(PolicyValue::Count(n)) => drop(rules::count(key, n as usize)?),
                Some(PolicyValue::Number(x)) => drop(rules::number(key, x)?),
                Some(PolicyValue::Duration(d)) => drop(rules::duration(key, d)?),
                Some(PolicyValue::Seed(_) | PolicyValue::Flag(_)) => {}
            }
        }
        Ok(())
    }

    fn check_order(&self) -> Result<(), OptionError> {
        if let (Some(low), Some(high)) = (self.low, self.high) {
            if low >= high {
                let (bound, found) = (high.to_string(), low.to_string());
                return Err(order(&LOW, "below", &HIGH, bound, found));
            }
        }
        if let (Some(open_for), Some(max)) = (self.open_for, self.max_open_for) {
            if max < open_for {
                let text = |d| humantime::format_duration(d).to_string();
                let (bound, found) = (text(open_for), text(max));
                return Err(order(&MAX_OPEN_FOR, "at least", &OPEN_FOR, bound, found));
            }
        }
        Ok(())
    }
}

fn order(
    key: &'static Key,
    relation: &'static str,
    other: &'static Key,
    bound: String,
    found: String,
) -> OptionError {
    let problem = Problem::Order {
        relation,
        other,
        bound,
        found,
    };
    OptionError::new(key, problem)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_key_is_a_field_and_every_policy_checks_its_defaults() {
        for policy in POLICIES {
            let defaults = policy.defaults();
            for &key in policy.keys() {
                let mut spec = PolicySpec::new(policy);
                let value = match key.kind {
                    Kind::Name => PolicyValue::Text("a".into()),
                    Kind::Count => PolicyValue::Count(1),
                    Kind::Ratio | Kind::Share => PolicyValue::Number(0.5),
                    _ => PolicyValue::Duration(Duration::from_secs(1)),
                };
                assert!(spec.set(key, value.clone()), "{}", key.name);
                assert_eq!(spec.get(key), Some(value));
            }
            let mut complete = PolicySpec {
                signal: Some("backpressure.x".into()),
                slow_after: Some(Duration::from_secs(1)),
                max: Some(4),
                ..defaults
            };
            assert_eq!(complete.check(), Ok(()), "{policy:?}");
            complete.signal = None;
            assert!(complete.check().is_err());
        }
    }

    #[test]
    fn order_rules_hold_between_given_keys() {
        let spec = PolicySpec {
            open_for: Some(Duration::from_secs(60)),
            max_open_for: Some(Duration::from_secs(30)),
            ..PolicySpec::new(PolicyKind::ErrorRate)
        };
        let err = spec.check_given().unwrap_err();
        assert_eq!(
            err.to_string(),
            "`max_open_for` must be at least `open_for` (1m), found 30s"
        );
        assert_eq!(err.policy(), Some(PolicyKind::ErrorRate));
    }
}
