//! The mistakes an option's value can make, and their words.

use std::fmt;

use super::{Key, Kind};
use crate::{NameError, PatternError};

/// Which rule a value broke. Its words are rendered by [`OptionError`], which knows the key.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Problem {
    /// A count is zero.
    Zero,
    /// A count is above the key's limit.
    TooLarge {
        /// The value given.
        found: usize,
    },
    /// `max_defer_attempts` (or, through the builder, `max_defer`) is zero.
    ZeroMaxDefer,
    /// A duration is zero.
    ZeroDuration {
        /// The duration as written.
        text: String,
    },
    /// A duration string does not parse.
    BadDuration {
        /// The text as written.
        text: String,
        /// What the duration parser said, lowercase.
        reason: String,
    },
    /// A pattern list is empty.
    NoPatterns,
    /// One item of a pattern list does not compile.
    Pattern {
        /// Zero-based position of the item in the list.
        item: usize,
        /// Why.
        error: PatternError,
    },
    /// A sink or worker name breaks the naming rules.
    Name(NameError),
    /// Both `max_defer` and `max_defer_attempts` are given.
    BothMaxDefer,
}

/// A value that breaks its option's rule: the key and the [`Problem`].
///
/// `Display` is the attribute's form, which starts with the key (`` `capacity` must be at
/// least 1, found 0``); [`message`](Self::message) is the core message, for front-ends that
/// name the key themselves (a config file's field, a `BuildError`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OptionError {
    key: &'static Key,
    problem: Problem,
}

impl OptionError {
    /// A broken rule of `key`.
    pub fn new(key: &'static Key, problem: Problem) -> Self {
        Self { key, problem }
    }

    /// The key whose value is wrong.
    pub fn key(&self) -> &'static Key {
        self.key
    }

    /// The rule it broke.
    pub fn problem(&self) -> &Problem {
        &self.problem
    }

    /// The core message, without the key.
    pub fn message(&self) -> String {
        Core(self).to_string()
    }
}

/// The core message of an [`OptionError`].
struct Core<'a>(&'a OptionError);

impl fmt::Display for Core<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let key = self.0.key;
        match &self.0.problem {
            Problem::Zero => f.write_str("must be at least 1, found 0"),
            Problem::TooLarge { found } => {
                let (max, why) = key.max.unwrap_or((usize::MAX, "the limit"));
                write!(f, "must be at most {max} ({why}), found {found}")
            }
            Problem::ZeroMaxDefer => f.write_str(
                "must be positive, found 0; to wait without limit write `max_defer = \"never\"`",
            ),
            Problem::ZeroDuration { text } => {
                write!(
                    f,
                    "must be longer than zero, found `{}`",
                    text.escape_debug()
                )
            }
            Problem::BadDuration { text, reason } => {
                let never = if key.kind == Kind::DurationOrNever {
                    " or `\"never\"`"
                } else {
                    ""
                };
                write!(
                    f,
                    "invalid duration `{}`: {reason}; write a duration such as \
                     `\"50ms\"`, `\"1s\"` or `\"2m 30s\"`{never}",
                    text.escape_debug()
                )
            }
            Problem::NoPatterns => write!(
                f,
                "needs at least one pattern, as in `{} = [\"backpressure.*\"]`",
                key.name
            ),
            Problem::Pattern { error, .. } => write!(f, "{error}"),
            Problem::Name(error) => {
                let what = if key.name == super::NAME.name {
                    "worker"
                } else {
                    key.name
                };
                error.write_as(f, what)
            }
            Problem::BothMaxDefer => f.write_str(
                "`max_defer` and `max_defer_attempts` cannot both be given: \
                 use `max_defer_attempts = N` (times `defer_check_interval`) \
                 or `max_defer = \"10s\"` / `\"never\"`",
            ),
        }
    }
}

impl fmt::Display for OptionError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let key = self.key.name;
        match &self.problem {
            // These name what they are about.
            Problem::Name(_) | Problem::BothMaxDefer => write!(f, "{}", Core(self)),
            // These are a statement about something else.
            Problem::BadDuration { .. } | Problem::Pattern { .. } => {
                write!(f, "`{key}`: {}", Core(self))
            }
            // The rest continue the key: "`capacity` must be ...".
            _ => write!(f, "`{key}` {}", Core(self)),
        }
    }
}

impl std::error::Error for OptionError {}
