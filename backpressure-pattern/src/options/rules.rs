//! The rules: each checks one value (or one pair of keys) and says what is wrong.
//!
//! Typed rules (`count`, `attempts`, `interval`, `max_defer`) check values a program built;
//! text rules (`parse_*`, `patterns`, `name`) check values as written in the attribute or a
//! config file, and apply the typed rule to what they parsed.

use std::time::Duration;

use super::{
    Key, Kind, MaxDefer, OptionError, Problem, DEFER_CHECK_INTERVAL, MAX_DEFER, MAX_DEFER_ATTEMPTS,
};
use crate::{validate_name, Pattern};

/// A [`Kind::Count`]: at least 1, at most the key's limit.
///
/// # Examples
///
/// ```
/// use backpressure_pattern::options::{rules, CONCURRENCY};
///
/// assert_eq!(rules::count(&CONCURRENCY, 8), Ok(8));
/// let err = rules::count(&CONCURRENCY, 0).unwrap_err();
/// assert_eq!(err.message(), "must be at least 1, found 0");
/// assert_eq!(err.to_string(), "`concurrency` must be at least 1, found 0");
/// ```
pub fn count(key: &'static Key, n: usize) -> Result<usize, OptionError> {
    match key.max {
        _ if n == 0 => Err(OptionError::new(key, Problem::Zero)),
        Some((max, _)) if n > max => Err(OptionError::new(key, Problem::TooLarge { found: n })),
        _ => Ok(n),
    }
}

/// `max_defer_attempts`: at least 1 (`never` is how to wait without limit).
pub fn attempts(n: u32) -> Result<u32, OptionError> {
    match n {
        0 => Err(OptionError::new(&MAX_DEFER_ATTEMPTS, Problem::ZeroMaxDefer)),
        n => Ok(n),
    }
}

/// `defer_check_interval`: longer than zero.
pub fn interval(d: Duration) -> Result<Duration, OptionError> {
    positive(&DEFER_CHECK_INTERVAL, d, || {
        humantime::format_duration(d).to_string()
    })
}

/// `max_defer` as a program builds it: zero attempts and a zero duration are both
/// [`Problem::ZeroMaxDefer`].
pub fn max_defer(value: MaxDefer) -> Result<MaxDefer, OptionError> {
    match value {
        MaxDefer::Attempts(0) | MaxDefer::After(Duration::ZERO) => {
            Err(OptionError::new(&MAX_DEFER, Problem::ZeroMaxDefer))
        }
        other => Ok(other),
    }
}

/// A [`Kind::Duration`] as a program built it: longer than zero.
pub fn duration(key: &'static Key, d: Duration) -> Result<Duration, OptionError> {
    positive(key, d, || humantime::format_duration(d).to_string())
}

/// A [`Kind::Ratio`] in (0, 1], a [`Kind::Share`] in [0, 1), a [`Kind::Fraction`] in
/// [0, 1] or a [`Kind::Factor`] of at least 1 (and finite). NaN is outside all of them.
///
/// # Examples
///
/// ```
/// use backpressure_pattern::options::{policies::FAILURE_RATIO, rules};
///
/// assert_eq!(rules::number(&FAILURE_RATIO, 0.5), Ok(0.5));
/// let err = rules::number(&FAILURE_RATIO, 1.5).unwrap_err();
/// assert_eq!(err.message(), "must be a number in (0, 1], found 1.5");
/// ```
pub fn number(key: &'static Key, x: f64) -> Result<f64, OptionError> {
    let inside = match key.kind {
        Kind::Share => (0.0..1.0).contains(&x),
        Kind::Fraction => (0.0..=1.0).contains(&x),
        Kind::Factor => x >= 1.0 && x.is_finite(),
        _ => x > 0.0 && x <= 1.0,
    };
    if inside {
        return Ok(x);
    }
    let found = x.to_string();
    Err(OptionError::new(key, Problem::OutOfRange { found }))
}

fn positive(
    key: &'static Key,
    d: Duration,
    text: impl FnOnce() -> String,
) -> Result<Duration, OptionError> {
    if d.is_zero() {
        return Err(OptionError::new(
            key,
            Problem::ZeroDuration { text: text() },
        ));
    }
    Ok(d)
}

/// A positive duration as written, such as `"50ms"`, `"1s"` or `"2m 30s"`.
pub fn parse_duration(key: &'static Key, text: &str) -> Result<Duration, OptionError> {
    let d = humantime::parse_duration(text.trim()).map_err(|err| {
        let reason = err.to_string();
        let mut chars = reason.chars();
        let reason = match chars.next() {
            Some(first) => first.to_lowercase().chain(chars).collect(),
            None => String::new(),
        };
        let text = text.to_owned();
        OptionError::new(key, Problem::BadDuration { text, reason })
    })?;
    positive(key, d, || text.to_owned())
}

/// `max_defer` as written: `"never"` or a positive duration.
pub fn parse_max_defer(text: &str) -> Result<MaxDefer, OptionError> {
    if text.trim() == "never" {
        return Ok(MaxDefer::Never);
    }
    parse_duration(&MAX_DEFER, text).map(MaxDefer::After)
}

/// The rule between `max_defer_attempts` and `max_defer`: at most one of them.
pub fn max_defer_keys(
    attempts_given: Option<u32>,
    max_defer_given: Option<&str>,
) -> Result<Option<MaxDefer>, OptionError> {
    match (attempts_given, max_defer_given) {
        (Some(_), Some(_)) => Err(OptionError::new(&MAX_DEFER, Problem::BothMaxDefer)),
        (Some(n), None) => attempts(n).map(|n| Some(MaxDefer::Attempts(n))),
        (None, Some(text)) => parse_max_defer(text).map(Some),
        (None, None) => Ok(None),
    }
}

/// A [`Kind::Patterns`]: at least one item, each a valid pattern.
/// Returns the items joined into one comma-separated pattern.
pub fn patterns<S: AsRef<str>>(key: &'static Key, items: &[S]) -> Result<String, OptionError> {
    if items.is_empty() {
        return Err(OptionError::new(key, Problem::NoPatterns));
    }
    for (item, text) in items.iter().enumerate() {
        Pattern::parse(text.as_ref())
            .map_err(|error| OptionError::new(key, Problem::Pattern { item, error }))?;
    }
    Ok(items
        .iter()
        .map(AsRef::as_ref)
        .collect::<Vec<_>>()
        .join(", "))
}

/// A [`Kind::Name`]: the signal-name rules.
pub fn name(key: &'static Key, text: &str) -> Result<(), OptionError> {
    validate_name(text).map_err(|error| OptionError::new(key, Problem::Name(error)))
}

/// A [`Kind::Path`]: an optional leading `::`, then identifiers (ASCII letters, digits and
/// `_`, not starting with a digit) separated by `::`. Whether the path names a real crate is
/// for the compiler to say.
///
/// # Examples
///
/// ```
/// use backpressure_pattern::options::{rules, CRATE};
///
/// assert_eq!(rules::path(&CRATE, "::my_crate::backpressure"), Ok(()));
/// assert_eq!(rules::path(&CRATE, "crate::reexport"), Ok(()));
/// let err = rules::path(&CRATE, "my crate").unwrap_err();
/// assert!(err.to_string().starts_with("`crate` must be a path to `backpressure`"));
/// ```
pub fn path(key: &'static Key, text: &str) -> Result<(), OptionError> {
    let segments = text.strip_prefix("::").unwrap_or(text);
    if segments.split("::").all(is_identifier) {
        Ok(())
    } else {
        let text = text.to_owned();
        Err(OptionError::new(key, Problem::BadPath { text }))
    }
}

fn is_identifier(segment: &str) -> bool {
    let mut chars = segment.chars();
    let first_ok = chars
        .next()
        .is_some_and(|c| c == '_' || c.is_ascii_alphabetic());
    first_ok && segment != "_" && chars.all(|c| c == '_' || c.is_ascii_alphanumeric())
}
