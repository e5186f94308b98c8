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
