//! [`Values::read`]: every field of [`Values`] read from a front-end by its key's [`Kind`]
//! and checked by its rule, so that a front-end only says what was written where.

use super::values::{OptionValue, Values};
use super::{rules, Key, Kind, OptionError, MAX_DEFER, MAX_DEFER_ATTEMPTS};

/// A value as a front-end found it written, before any rule: the form its key's [`Kind`]
/// asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Written {
    /// A string ([`Kind::Name`], [`Kind::Duration`], [`Kind::DurationOrNever`]).
    Text(String),
    /// A [`Kind::Count`].
    Count(usize),
    /// A [`Kind::Attempts`].
    Attempts(u32),
    /// A [`Kind::Patterns`]: one pattern or a list, as items.
    Patterns(Vec<String>),
}

/// A front-end's option values as written: an attribute's arguments, a config file's section.
pub trait WrittenValues {
    /// Where this front-end points a mistake.
    type Error;

    /// The value written for `key`, if any; reading it may fail in the front-end's own syntax
    /// (an integer literal too large for its type).
    ///
    /// # Errors
    ///
    /// The front-end's own error about the value as written.
    fn written(&self, key: &'static Key) -> Result<Option<Written>, Self::Error>;

    /// A broken rule, pointed where this front-end points it (a token, a file's field).
    fn broken(&self, err: OptionError) -> Self::Error;
}

impl Values {
    /// Reads every field from `source`, in the order of [`Values::FIELDS`], each checked by
    /// its rule (`max_defer` together with `max_defer_attempts`).
    ///
    /// # Errors
    ///
    /// The first value that cannot be read or breaks its rule.
    pub fn read<S: WrittenValues>(source: &S) -> Result<Values, S::Error> {
        let mut values = Values::new();
        for &key in Values::FIELDS {
            if let Some(value) = read_one(source, key)? {
                values.set(key, value);
            }
        }
        Ok(values)
    }
}

fn read_one<S: WrittenValues>(
    source: &S,
    key: &'static Key,
) -> Result<Option<OptionValue>, S::Error> {
    if key.name == MAX_DEFER.name {
        return read_max_defer(source);
    }
    let Some(written) = source.written(key)? else {
        return Ok(None);
    };
    let value = match (key.kind, written) {
        (Kind::Name, Written::Text(text)) => {
            rules::name(key, &text).map(|()| OptionValue::Text(text.into()))
        }
        (Kind::Count, Written::Count(n)) => rules::count(key, n).map(OptionValue::Count),
        (Kind::Patterns, Written::Patterns(items)) => {
            rules::patterns(key, &items).map(|joined| OptionValue::Text(joined.into()))
        }
        (Kind::Duration, Written::Text(text)) => {
            rules::parse_duration(key, &text).map(OptionValue::Duration)
        }
        // A value of another form was refused when it was read.
        _ => return Ok(None),
    };
    value.map(Some).map_err(|err| source.broken(err))
}

/// `max_defer_attempts` and `max_defer`: at most one of them, into the one field.
fn read_max_defer<S: WrittenValues>(source: &S) -> Result<Option<OptionValue>, S::Error> {
    let attempts = match source.written(&MAX_DEFER_ATTEMPTS)? {
        Some(Written::Attempts(n)) => Some(n),
        _ => None,
    };
    let text = match source.written(&MAX_DEFER)? {
        Some(Written::Text(text)) => Some(text),
        _ => None,
    };
    rules::max_defer_keys(attempts, text.as_deref())
        .map(|value| value.map(OptionValue::MaxDefer))
        .map_err(|err| source.broken(err))
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::time::Duration;

    use super::super::{MaxDefer, CAPACITY, DEFER_ON, SINK};
    use super::*;

    /// Values as written, and broken rules as their messages.
    struct Map(BTreeMap<&'static str, Written>);

    impl WrittenValues for Map {
        type Error = String;

        fn written(&self, key: &'static Key) -> Result<Option<Written>, String> {
            Ok(self.0.get(key.name).cloned())
        }

        fn broken(&self, err: OptionError) -> String {
            err.to_string()
        }
    }

    fn read(pairs: &[(&'static Key, Written)]) -> Result<Values, String> {
        Values::read(&Map(pairs
            .iter()
            .map(|(k, v)| (k.name, v.clone()))
            .collect()))
    }

    #[test]
    fn each_field_is_read_by_its_kind_and_checked_by_its_rule() {
        let items = vec!["a.*".to_owned(), "b".to_owned()];
        let values = read(&[
            (&SINK, Written::Text("mail".into())),
            (&DEFER_ON, Written::Patterns(items)),
            (&MAX_DEFER_ATTEMPTS, Written::Attempts(7)),
        ])
        .unwrap();
        assert_eq!(values.sink.as_deref(), Some("mail"));
        assert_eq!(values.defer_on.as_deref(), Some("a.*, b"));
        assert_eq!(values.max_defer, Some(MaxDefer::Attempts(7)));
        assert_eq!(values.capacity, None);
        let values = read(&[(&MAX_DEFER, Written::Text("2s".into()))]).unwrap();
        assert_eq!(
            values.max_defer,
            Some(MaxDefer::After(Duration::from_secs(2)))
        );

        let zero = read(&[(&CAPACITY, Written::Count(0))]).unwrap_err();
        assert_eq!(zero, "`capacity` must be at least 1, found 0");
        let both = read(&[
            (&MAX_DEFER, Written::Text("never".into())),
            (&MAX_DEFER_ATTEMPTS, Written::Attempts(3)),
        ])
        .unwrap_err();
        assert!(both.contains("cannot both be given"), "{both}");
    }
}
