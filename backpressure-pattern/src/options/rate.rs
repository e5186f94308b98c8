//! The keys of the attribute's `rate(...)` list, defined once: each key's name, kind, default
//! and allowed values, the rule between keys, and (through [`OptionError`]) the words of their
//! errors.
//!
//! A rate is written the same way everywhere: `rate(limit = 100, per = "1s", burst = 10)` in
//! the attribute and a `[workers."name".rate]` table in a config file. Both front-ends read the
//! values into a [`RateSpec`] by each key's [`Kind`] and call [`RateSpec::check`]; the
//! runtime's `Rate` describes itself as a [`RateSpec`] and calls the same check.
//!
//! # Adding a rate key
//!
//! A [`Key`] constant, its place in [`KEYS`], its field in [`RateSpec`] with its arms in
//! `get`, `set` and `overlay`; in the runtime its field in `Rate` with its lines in
//! `Rate::spec` and `Rate::from_spec`; a row in `backpressure-macros/src/tests.rs`.

use std::time::Duration;

use super::policies::PolicyValue;
use super::{rules, Key, Kind, OptionError, Problem};

/// The name of the list: `rate(...)` in the attribute, `[workers."name".rate]` in a file.
pub const RATE: &str = "rate";

/// `limit`: starts allowed per `per`. Required.
pub const LIMIT: Key = Key {
    allowed: "1 or more (a 32-bit count)",
    max: Some((u32::MAX as usize, "a 32-bit count")),
    ..Key::new("limit", Kind::Count, "100")
};
/// `per`: the period `limit` is counted over. Required.
pub const PER: Key = Key::new("per", Kind::Duration, "\"1s\"");
/// `burst`: starts allowed at once after a quiet spell.
pub const BURST: Key = Key {
    allowed: "1 or more (a 32-bit count)",
    max: Some((u32::MAX as usize, "a 32-bit count")),
    ..Key::new("burst", Kind::Count, "10")
};

/// `shared`: the limit is the whole fleet's, kept in Redis (the worker's sink must be bridged
/// through `backpressure-redis`); otherwise each process has its own.
pub const SHARED: Key = Key::new("shared", Kind::Flag, "true");

/// Every key of `rate(...)`, in the order errors and docs list them.
pub const KEYS: &[&Key] = &[&LIMIT, &PER, &BURST, &SHARED];

/// The key of `rate(...)` called `name`, if there is one.
pub fn key(name: &str) -> Option<&'static Key> {
    KEYS.iter().copied().find(|key| key.name == name)
}

/// Default `burst`: starts are evenly spaced, none at once.
pub const DEFAULT_BURST: u32 = 1;

/// `rate(...)` as configured: `None` is "not given" (`limit` and `per` have no default,
/// `burst` defaults to 1, `shared` to `false`). Const-constructible, so the attribute's rate can live in its static
/// registration; a config file's table gives only some. Each field is named like its key.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use backpressure_pattern::options::rate::RateSpec;
///
/// let mut spec = RateSpec { limit: Some(100), per: Some(Duration::from_secs(1)), ..RateSpec::new() };
/// spec.overlay(&RateSpec { burst: Some(10), ..RateSpec::new() });
/// assert_eq!(spec.limit, Some(100));
/// assert_eq!(spec.burst, Some(10));
/// assert!(spec.check().is_ok());
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RateSpec {
    /// `limit`
    pub limit: Option<u32>,
    /// `per`
    pub per: Option<Duration>,
    /// `burst`
    pub burst: Option<u32>,
    /// `shared`
    pub shared: Option<bool>,
}

impl RateSpec {
    /// No value given.
    pub const fn new() -> Self {
        Self {
            limit: None,
            per: None,
            burst: None,
            shared: None,
        }
    }

    /// The value given for `key`, if any.
    pub fn get(&self, key: &Key) -> Option<PolicyValue> {
        match key.name {
            name if name == LIMIT.name => self.limit.map(PolicyValue::Count),
            name if name == PER.name => self.per.map(PolicyValue::Duration),
            name if name == BURST.name => self.burst.map(PolicyValue::Count),
            name if name == SHARED.name => self.shared.map(PolicyValue::Flag),
            _ => None,
        }
    }

    /// Sets `key`; `false` if the value is not of the form the key's kind asks for.
    pub fn set(&mut self, key: &Key, value: PolicyValue) -> bool {
        match value {
            PolicyValue::Count(n) if key.name == LIMIT.name => self.limit = Some(n),
            PolicyValue::Duration(d) if key.name == PER.name => self.per = Some(d),
            PolicyValue::Count(n) if key.name == BURST.name => self.burst = Some(n),
            PolicyValue::Flag(b) if key.name == SHARED.name => self.shared = Some(b),
            _ => return false,
        }
        true
    }

    /// Writes every value given in `over` over this one's.
    pub fn overlay(&mut self, over: &RateSpec) {
        self.limit = over.limit.or(self.limit);
        self.per = over.per.or(self.per);
        self.burst = over.burst.or(self.burst);
        self.shared = over.shared.or(self.shared);
    }

    /// Every rule: `limit` and `per` given, each value's own rule, and `per` long enough
    /// that `limit` starts are at least a nanosecond apart.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use backpressure_pattern::options::rate::RateSpec;
    ///
    /// let err = RateSpec { limit: Some(10), ..RateSpec::new() }.check().unwrap_err();
    /// assert_eq!(err.to_string(), "`per` is required, such as `per = \"1s\"`");
    ///
    /// let tight = RateSpec { limit: Some(10), per: Some(Duration::from_nanos(5)), ..RateSpec::new() };
    /// assert_eq!(
    ///     tight.check().unwrap_err().message(),
    ///     "must be at least one nanosecond times `limit` (10ns), found 5ns"
    /// );
    /// ```
    ///
    /// # Errors
    ///
    /// The first broken rule, about a key of `rate`.
    pub fn check(&self) -> Result<(), OptionError> {
        for key in [&LIMIT, &PER] {
            if self.get(key).is_none() {
                return Err(OptionError::new(key, Problem::Missing));
            }
        }
        self.check_given()
    }

    /// The rules of the values given, and the rule between two given keys: what a partial
    /// table (a config file's, tuning the attribute's rate) can be held to alone.
    ///
    /// # Errors
    ///
    /// The first broken rule, about a key of `rate`.
    pub fn check_given(&self) -> Result<(), OptionError> {
        for &key in KEYS {
            match self.get(key) {
                Some(PolicyValue::Count(n)) => drop(rules::count(key, n as usize)?),
                Some(PolicyValue::Duration(d)) => drop(rules::duration(key, d)?),
                _ => {}
            }
        }
        if let (Some(limit), Some(per)) = (self.limit, self.per) {
            if (per / limit.max(1)).is_zero() {
                let text = |d| humantime::format_duration(d).to_string();
                let problem = Problem::Order {
                    relation: "at least one nanosecond times",
                    other: &LIMIT,
                    bound: text(Duration::from_nanos(limit.into())),
                    found: text(per),
                };
                return Err(OptionError::new(&PER, problem));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rate(limit: u32, per: Duration) -> RateSpec {
        RateSpec {
            limit: Some(limit),
            per: Some(per),
            ..RateSpec::new()
        }
    }

    #[test]
    fn every_key_sets_and_gets() {
        for &each in KEYS {
            let value = match each.kind {
                Kind::Duration => PolicyValue::Duration(Duration::from_secs(1)),
                Kind::Flag => PolicyValue::Flag(true),
                _ => PolicyValue::Count(2),
            };
            let mut spec = RateSpec::new();
            assert!(spec.set(each, value.clone()), "{}", each.name);
            assert_eq!(spec.get(each), Some(value));
            assert_eq!(key(each.name), Some(each));
            assert!(!spec.set(each, PolicyValue::Number(1.0)));
        }
    }

    #[test]
    fn each_value_breaks_its_own_rule() {
        let broken = |spec: RateSpec| spec.check().unwrap_err().to_string();
        let second = Duration::from_secs(1);
        assert_eq!(rate(100, second).check(), Ok(()));
        assert_eq!(
            broken(rate(0, second)),
            "`limit` must be at least 1, found 0"
        );
        let none = rate(1, Duration::ZERO);
        assert_eq!(broken(none), "`per` must be longer than zero, found `0s`");
        let zero_burst = RateSpec {
            burst: Some(0),
            ..rate(1, second)
        };
        assert_eq!(broken(zero_burst), "`burst` must be at least 1, found 0");
        let missing = RateSpec {
            per: Some(second),
            ..RateSpec::new()
        };
        assert_eq!(
            broken(missing),
            "`limit` is required, such as `limit = 100`"
        );
        // The tightest allowed: one start a nanosecond.
        assert_eq!(
            rate(u32::MAX, Duration::from_nanos(u32::MAX.into())).check(),
            Ok(())
        );
        assert_eq!(
            broken(rate(u32::MAX, second)),
            "`per` must be at least one nanosecond times `limit` (4s 294ms 967us 295ns), found 1s"
        );
    }

    #[test]
    fn a_partial_table_is_checked_as_far_as_it_goes() {
        let burst = RateSpec {
            burst: Some(5),
            ..RateSpec::new()
        };
        assert_eq!(burst.check_given(), Ok(()));
        assert!(burst.check().is_err());
    }
}
