//! [`Values`]: a worker's coordinator options as given, one field a key, written once.
//!
//! The attribute's registration holds one (a const literal the macro writes field by field,
//! named like the keys), a config file's worker section reads into one, and the runtime lays
//! the second over the first before it builds the coordinator's configuration from the
//! result. Reading them, by each key's [`Kind`](super::Kind), is [`Values::read`].

use std::borrow::Cow;
use std::time::Duration;

use super::{
    Key, MaxDefer, CANCEL_ON, CAPACITY, CONCURRENCY, DEAD_LETTERS, DEFER_CHECK_INTERVAL, DEFER_ON,
    GLOBAL_CONCURRENCY, MAX_DEFER, RESUME_ON, SINK, TIMEOUT,
};

/// One coordinator option's value, of the form its key's kind asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OptionValue {
    /// A [`Kind::Name`](super::Kind::Name), or a [`Kind::Patterns`](super::Kind::Patterns)
    /// joined into one comma-separated pattern.
    Text(Cow<'static, str>),
    /// A [`Kind::Count`](super::Kind::Count).
    Count(usize),
    /// A [`Kind::Duration`](super::Kind::Duration).
    Duration(Duration),
    /// `max_defer` (or `max_defer_attempts`, which is written into the same field).
    MaxDefer(MaxDefer),
}

macro_rules! values {
    ($($field:ident: $ty:ty => $key:ident as $variant:ident,)*) => {
        /// A worker's coordinator options as given: `None` is "not given" (the value below,
        /// in the end the runtime's default). Const-constructible, so the attribute's values
        /// can live in its static registration. Each field is named like its key.
        ///
        /// # Examples
        ///
        /// ```
        /// use backpressure_pattern::options::{Values, MaxDefer};
        ///
        /// let mut values = Values { concurrency: Some(8), ..Values::new() };
        /// values.overlay(&Values { max_defer: Some(MaxDefer::Never), ..Values::new() });
        /// assert_eq!(values.concurrency, Some(8));
        /// assert_eq!(values.max_defer, Some(MaxDefer::Never));
        /// ```
        #[derive(Debug, Clone, Default, PartialEq, Eq)]
        pub struct Values {
            $(
                #[doc = concat!("`", stringify!($field), "`")]
                pub $field: Option<$ty>,
            )*
        }

        impl Values {
            /// Every field's key, in the order of the fields (and of errors).
            pub const FIELDS: &'static [&'static Key] = &[$(&$key),*];

            /// No value given.
            pub const fn new() -> Self {
                Self { $($field: None,)* }
            }

            /// The value given for `key`, if any.
            pub fn get(&self, key: &Key) -> Option<OptionValue> {
                $(
                    if key.name == $key.name {
                        return self.$field.clone().map(OptionValue::$variant);
                    }
                )*
                None
            }

            /// Sets `key`; `false` if it is not a field or the value is not of its form.
            pub fn set(&mut self, key: &Key, value: OptionValue) -> bool {
                match value {
                    $(
                        OptionValue::$variant(value) if key.name == $key.name => {
                            self.$field = Some(value);
                            true
                        }
                    )*
                    _ => false,
                }
            }

            /// Writes every value given in `over` over this one's.
            pub fn overlay(&mut self, over: &Values) {
                $(
                    if let Some(value) = &over.$field {
                        self.$field = Some(value.clone());
                    }
                )*
            }
        }
    };
}

values! {
    sink: Cow<'static, str> => SINK as Text,
    concurrency: usize => CONCURRENCY as Count,
    capacity: usize => CAPACITY as Count,
    defer_on: Cow<'static, str> => DEFER_ON as Text,
    resume_on: Cow<'static, str> => RESUME_ON as Text,
    cancel_on: Cow<'static, str> => CANCEL_ON as Text,
    defer_check_interval: Duration => DEFER_CHECK_INTERVAL as Duration,
    max_defer: MaxDefer => MAX_DEFER as MaxDefer,
    timeout: Duration => TIMEOUT as Duration,
    dead_letters: usize => DEAD_LETTERS as Count,
    global_concurrency: usize => GLOBAL_CONCURRENCY as Count,
}

#[cfg(test)]
mod tests {
    use super::super::{Kind, KEYS, MAX_DEFER_ATTEMPTS};
    use super::*;

    #[test]
    fn every_key_of_a_config_file_is_a_field_and_round_trips() {
        let in_file = KEYS.iter().filter(|key| key.in_file);
        // `max_defer_attempts` is written into the `max_defer` field.
        for key in in_file.filter(|key| key.name != MAX_DEFER_ATTEMPTS.name) {
            assert!(Values::FIELDS.contains(&key), "`{}` is no field", key.name);
        }
        for &key in Values::FIELDS {
            let value = match key.kind {
                Kind::Name | Kind::Patterns => OptionValue::Text("a".into()),
                Kind::Count => OptionValue::Count(3),
                Kind::Duration => OptionValue::Duration(Duration::from_secs(1)),
                _ => OptionValue::MaxDefer(MaxDefer::Never),
            };
            let mut values = Values::new();
            assert!(values.set(key, value.clone()), "{}", key.name);
            assert_eq!(values.get(key), Some(value.clone()));
            let mut under = Values::new();
            under.overlay(&values);
            assert_eq!(under, values);
            under.overlay(&Values::new());
            assert_eq!(under.get(key), Some(value));
        }
    }
}
