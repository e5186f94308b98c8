//! The mistakes an option's value can make, and their words.

use std::fmt;

use super::policy_kind::PolicyKind;
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
    /// A number outside its key's range ([`Kind::Ratio`], [`Kind::Share`]).
    OutOfRange {
        /// The value given.
        found: String,
    },
    /// A value on the wrong side of another key's value (`low` not below `high`).
    Order {
        /// How the value must relate to the other one: `"below"`, `"at least"`.
        relation: &'static str,
        /// The other key.
        other: &'static Key,
        /// The other key's value.
        bound: String,
        /// The value given.
        found: String,
    },
    /// A policy lacks a key it needs (`signal`; `slow_after` for `slow_call`), or `rate` its
    /// `limit` or `per`.
    Missing,
    /// A [`Kind::Path`] is not a path of identifiers.
    BadPath {
        /// The text as written.
        text: String,
    },
    /// An `adaptive`, `error_rate` or `slow_call` policy's signal is not matched by its own
    /// worker's `defer_on`.
    NotDeferred {
        /// The policy.
        policy: PolicyKind,
        /// The signal.
        signal: String,
        /// The worker's `defer_on`.
        defer_on: String,
    },
    /// Two policies of one worker raise the same signal: they would share one entry (one
    /// worker, one key), so one going half-open or closing would end the other's verdict.
    SignalTaken {
        /// The signal.
        signal: String,
        /// The earlier policy that raises it.
        by: PolicyKind,
    },
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
    policy: Option<PolicyKind>,
}

impl OptionError {
    /// A broken rule of `key`.
    pub fn new(key: &'static Key, problem: Problem) -> Self {
        Self {
            key,
            problem,
            policy: None,
        }
    }

    /// The same error, about a key of `policy`.
    pub fn in_policy(mut self, policy: PolicyKind) -> Self {
        self.policy = Some(policy);
        self
    }

    /// The policy whose key is wrong, for a policy key.
    pub fn policy(&self) -> Option<PolicyKind> {
        self.policy
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

fn signal_taken(
    f: &mut fmt::Formatter<'_>,
    signal: &str,
    by: PolicyKind,
    policy: Option<PolicyKind>,
) -> fmt::Result {
    write!(
        f,
        "the signal `{signal}` is already raised by this worker's `{}` policy: one worker's \
         policies raise under one key, so each needs a signal of its own (e.g. `{signal}.{}`)",
        by.name(),
        policy.map_or("other", PolicyKind::name)
    )
}

fn not_deferred(
    f: &mut fmt::Formatter<'_>,
    policy: PolicyKind,
    signal: &str,
    defer_on: &str,
) -> fmt::Result {
    let name = policy.name();
    let consequence = match policy {
        PolicyKind::Adaptive => "its level would throttle nothing here",
        _ => "while the breaker is open this worker would keep sending into the failing downstream",
    };
    if defer_on.is_empty() {
        return write!(
            f,
            "the `{name}` signal `{signal}` is not deferred on: this worker has no \
             `defer_on`, so {consequence}: name the signal under `defer_on`"
        );
    }
    write!(
        f,
        "the `{name}` signal `{signal}` is not matched by this worker's \
         `defer_on` (`{defer_on}`), so {consequence}: \
         name the signal under `defer_on` or widen `defer_on`"
    )
}

/// The core message of an [`OptionError`].
struct Core<'a>(&'a OptionError);

impl Core<'_> {
    fn bad_duration(&self, f: &mut fmt::Formatter<'_>, text: &str, reason: &str) -> fmt::Result {
        let never = if self.0.key.kind == Kind::DurationOrNever {
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

    fn name(&self, f: &mut fmt::Formatter<'_>, error: &NameError) -> fmt::Result {
        let key = self.0.key;
        let what = if key.name == super::NAME.name {
            "worker"
        } else {
            key.name
        };
        error.write_as(f, what)
    }

    fn missing(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let key = self.0.key;
        match self.0.policy {
            Some(policy) => write!(
                f,
                "`{}` needs `{}`, such as `{} = {}`",
                policy.name(),
                key.name,
                key.name,
                key.example
            ),
            None => write!(
                f,
                "`{}` is required, such as `{} = {}`",
                key.name, key.name, key.example
            ),
        }
    }
}

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
            Problem::BadDuration { text, reason } => self.bad_duration(f, text, reason),
            Problem::NoPatterns => write!(
                f,
                "needs at least one pattern, as in `{} = [\"backpressure.*\"]`",
                key.name
            ),
            Problem::Pattern { error, .. } => write!(f, "{error}"),
            Problem::Name(error) => self.name(f, error),
            Problem::BothMaxDefer => f.write_str(
                "`max_defer` and `max_defer_attempts` cannot both be given: \
                 use `max_defer_attempts = N` (times `defer_check_interval`) \
                 or `max_defer = \"10s\"` / `\"never\"`",
            ),
            Problem::OutOfRange { found } => write!(f, "must be {}, found {found}", key.allowed),
            Problem::Order {
                relation,
                other,
                bound,
                found,
            } => write!(
                f,
                "must be {relation} `{}` ({bound}), found {found}",
                other.name
            ),
            Problem::Missing => self.missing(f),
            Problem::BadPath { text } => write!(
                f,
                "must be {}, found `{}`",
                key.allowed,
                text.escape_debug()
            ),
            Problem::NotDeferred {
                policy,
                signal,
                defer_on,
            } => not_deferred(f, *policy, signal, defer_on),
            Problem::SignalTaken { signal, by } => signal_taken(f, signal, *by, self.0.policy),
        }
    }
}

impl fmt::Display for OptionError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let key = self.key.name;
        match &self.problem {
            // These name what they are about.
            Problem::Name(_)
            | Problem::BothMaxDefer
            | Problem::Missing
            | Problem::NotDeferred { .. }
            | Problem::SignalTaken { .. } => write!(f, "{}", Core(self)),
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
