//! The keys of the attribute's `retry(...)` list, defined once: each key's name, kind,
//! default and allowed values, the rule between keys, and (through [`OptionError`]) the words
//! of their errors.
//!
//! Retry is written the same way everywhere: `retry(attempts = 5, backoff = "1s")` in the
//! attribute and a `[workers."name".retry]` table in a config file. Both front-ends read the
//! values into a [`RetrySpec`] by each key's [`Kind`] (as a policy's, into a [`PolicyValue`])
//! and call [`RetrySpec::check`] (or [`check_given`](RetrySpec::check_given) for a partial
//! override); the runtime's `Retry` describes itself as a [`RetrySpec`] and calls the same
//! check.
//!
//! # Adding a retry key
//!
//! A [`Key`] constant, its place in [`KEYS`], its default in [`RetrySpec::defaults`], one
//! line in the `fields!` list below; in the runtime its field in `Retry` with its lines in
//! `Retry::spec` and `Retry::from_spec`; a row in `backpressure-macros/src/tests.rs`.

use std::time::Duration;

use super::policies::PolicyValue;
use super::{rules, Key, Kind, OptionError, Problem};

/// The name of the list: `retry(...)` in the attribute, `[workers."name".retry]` in a file.
pub const RETRY: &str = "retry";

/// `attempts`: runs in all, the first included (1 keeps dead letters without retrying).
pub const ATTEMPTS: Key = Key {
    allowed: "1 or more (the first run counts)",
    max: Some((u32::MAX as usize, "a 32-bit count")),
    ..Key::new("attempts", Kind::Count, "5")
};
/// `backoff`: the delay before the first retry.
pub const BACKOFF: Key = Key::new("backoff", Kind::Duration, "\"1s\"");
/// `max_backoff`: the longest delay.
pub const MAX_BACKOFF: Key = Key::new("max_backoff", Kind::Duration, "\"60s\"");
/// `multiplier`: how much longer each next delay is.
pub const MULTIPLIER: Key = Key::new("multiplier", Kind::Factor, "2.0");
/// `jitter`: the random spread of each delay, a share.
pub const JITTER: Key = Key::new("jitter", Kind::Fraction, "0.1");
/// `jitter_seed`: seeds the jitter, so that the delays repeat from run to run.
pub const JITTER_SEED: Key = Key::new("jitter_seed", Kind::Seed, "7");

/// Every key of `retry(...)`, in the order errors and docs list them.
pub const KEYS: &[&Key] = &[
    &ATTEMPTS,
    &BACKOFF,
    &MAX_BACKOFF,
    &MULTIPLIER,
    &JITTER,
    &JITTER_SEED,
];

/// The key of `retry(...)` called `name`, if there is one.
pub fn key(name: &str) -> Option<&'static Key> {
    KEYS.iter().copied().find(|key| key.name == name)
}

/// Default `attempts`.
pub const DEFAULT_ATTEMPTS: u32 = 3;
/// Default `backoff`.
pub const DEFAULT_BACKOFF: Duration = Duration::from_secs(1);
/// Default `max_backoff`.
pub const DEFAULT_MAX_BACKOFF: Duration = Duration::from_secs(60);
/// Default `multiplier`.
pub const DEFAULT_MULTIPLIER: f64 = 2.0;
/// Default `jitter` (± 10 %).
pub const DEFAULT_JITTER: f64 = 0.1;

macro_rules! fields {
    ($($field:ident: $ty:ty => $key:ident as $variant:ident,)*) => {
        /// `retry(...)` as configured: `None` is "the default" (unseeded, for `jitter_seed`).
        /// Const-constructible, so the attribute's retry can live in its static registration;
        /// a config file's table gives only some. Each field is named like its key.
        ///
        /// # Examples
        ///
        /// ```
        /// use std::time::Duration;
        /// use backpressure_pattern::options::retry::RetrySpec;
        ///
        /// let mut spec = RetrySpec { attempts: Some(5), ..RetrySpec::new() };
        /// spec.overlay(&RetrySpec { backoff: Some(Duration::from_secs(2)), ..RetrySpec::new() });
        /// assert_eq!(spec.resolved().attempts, Some(5));
        /// assert_eq!(spec.resolved().max_backoff, Some(Duration::from_secs(60)));
        /// assert!(spec.check().is_ok());
        /// ```
        #[derive(Debug, Clone, Default, PartialEq)]
        pub struct RetrySpec {
            $(
                #[doc = concat!("`", stringify!($field), "`")]
                pub $field: Option<$ty>,
            )*
        }

        impl RetrySpec {
            /// Every field's key, in the order of the fields.
            pub const FIELDS: &'static [&'static Key] = &[$(&$key),*];

            /// No value given.
            pub const fn new() -> Self {
                Self { $($field: None,)* }
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
            pub fn overlay(&mut self, over: &RetrySpec) {
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
    attempts: u32 => ATTEMPTS as Count,
    backoff: Duration => BACKOFF as Duration,
    max_backoff: Duration => MAX_BACKOFF as Duration,
    multiplier: f64 => MULTIPLIER as Number,
    jitter: f64 => JITTER as Number,
    jitter_seed: u64 => JITTER_SEED as Seed,
}

impl RetrySpec {
    /// The defaults: every key that has one, set (`jitter_seed` has none).
    pub const fn defaults() -> Self {
        Self {
            attempts: Some(DEFAULT_ATTEMPTS),
            backoff: Some(DEFAULT_BACKOFF),
            max_backoff: Some(DEFAULT_MAX_BACKOFF),
            multiplier: Some(DEFAULT_MULTIPLIER),
            jitter: Some(DEFAULT_JITTER),
            jitter_seed: None,
        }
    }

    /// The values given, over the defaults.
    pub fn resolved(&self) -> RetrySpec {
        let mut spec = Self::defaults();
        spec.overlay(self);
        spec
    }

    /// Every rule, once the defaults are filled in: each value's, and `max_backoff` at least
    /// `backoff`.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use backpressure_pattern::options::retry::RetrySpec;
    ///
    /// let spec = RetrySpec { max_backoff: Some(Duration::from_millis(500)), ..RetrySpec::new() };
    /// let err = spec.check().unwrap_err();
    /// assert_eq!(err.to_string(), "`max_backoff` must be at least `backoff` (1s), found 500ms");
    ///
    /// let err = RetrySpec { attempts: Some(0), ..RetrySpec::new() }.check().unwrap_err();
    /// assert_eq!(err.message(), "must be at least 1, found 0");
    /// ```
    ///
    /// # Errors
    ///
    /// The first broken rule, about a key of `retry`.
    pub fn check(&self) -> Result<(), OptionError> {
        self.resolved().check_given()
    }

    /// The rules of the values given, and the rule between two given keys: what a partial
    /// override (a config file's table) can be held to before it meets the attribute's retry.
    ///
    /// # Errors
    ///
    /// The first broken rule, about a key of `retry`.
    pub fn check_given(&self) -> Result<(), OptionError> {
        for &key in KEYS {
            match self.get(key) {
                Some(PolicyValue::Count(n)) => drop(rules::count(key, n as usize)?),
                Some(PolicyValue::Number(x)) => drop(rules::number(key, x)?),
                Some(PolicyValue::Duration(d)) => drop(rules::duration(key, d)?),
                Some(PolicyValue::Text(_) | PolicyValue::Seed(_) | PolicyValue::Flag(_)) | None => {
                }
            }
        }
        if let (Some(backoff), Some(max)) = (self.backoff, self.max_backoff) {
            if max < backoff {
                let text = |d| humantime::format_duration(d).to_string();
                let problem = Problem::Order {
                    relation: "at least",
                    other: &BACKOFF,
                    bound: text(backoff),
                    found: text(max),
                };
                return Err(OptionError::new(&MAX_BACKOFF, problem));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_key_is_a_field_and_the_defaults_hold() {
        assert_eq!(RetrySpec::FIELDS, KEYS);
        assert_eq!(RetrySpec::defaults().check(), Ok(()));
        for &each in KEYS {
            let value = match each.kind {
                Kind::Count => PolicyValue::Count(2),
                Kind::Duration => PolicyValue::Duration(Duration::from_secs(1)),
                Kind::Seed => PolicyValue::Seed(9),
                _ => PolicyValue::Number(1.0),
            };
            let mut spec = RetrySpec::new();
            assert!(spec.set(each, value.clone()), "{}", each.name);
            assert_eq!(spec.get(each), Some(value));
            assert_eq!(key(each.name), Some(each));
        }
    }

    #[test]
    fn each_value_breaks_its_own_rule() {
        let broken = |spec: RetrySpec| spec.check().unwrap_err().to_string();
        let zero = RetrySpec {
            attempts: Some(0),
            ..RetrySpec::new()
        };
        assert_eq!(broken(zero), "`attempts` must be at least 1, found 0");
        let slow = RetrySpec {
            multiplier: Some(0.5),
            ..RetrySpec::new()
        };
        assert_eq!(
            broken(slow),
            "`multiplier` must be a finite number of at least 1, found 0.5"
        );
        let infinite = RetrySpec {
            multiplier: Some(f64::INFINITY),
            ..RetrySpec::new()
        };
        assert!(infinite.check().is_err());
        let wide = RetrySpec {
            jitter: Some(1.5),
            ..RetrySpec::new()
        };
        assert_eq!(
            broken(wide),
            "`jitter` must be a number in [0, 1], found 1.5"
        );
        let full = RetrySpec {
            jitter: Some(1.0),
            ..RetrySpec::new()
        };
        assert_eq!(full.check(), Ok(()));
        let none = RetrySpec {
            backoff: Some(Duration::ZERO),
            ..RetrySpec::new()
        };
        assert_eq!(
            broken(none),
            "`backoff` must be longer than zero, found `0s`"
        );
    }
}
