//! Every option of a coordinator, defined once: its key, default, allowed values, the rules
//! between keys, and the words of its errors.
//!
//! The three front-ends (the `#[backpressure_worker]` attribute, the TOML config file and the
//! runtime's `CoordinatorBuilder`) read values their own way, then hand them to the rules in
//! [`rules`]. A broken rule is an [`OptionError`]; a front-end only decides where it points
//! (a token's span, a file/worker/field, a `BuildError` variant) and never re-states a rule or
//! its message.
//!
//! # Adding a key
//!
//! 1. Here: a [`Key`] constant (name, [`Kind`], example, allowed values), its place in
//!    [`KEYS`], its default next to the others, and a rule in [`rules`] if no existing one
//!    fits its kind (a new [`Problem`] variant only for a new kind of mistake, and its arm in
//!    `read.rs` only for a new kind).
//! 2. One line in the `values!` list of `values.rs`, which makes it a field of [`Values`]
//!    (named like the key). That is the whole of the plumbing between the front-ends: the
//!    attribute and a config file read it by its kind ([`Values::read`]), the macro writes
//!    the field into the registration by the key's name, and the runtime lays the file's
//!    [`Values`] over the attribute's.
//! 3. In the runtime, the option itself: its field in `CoordinatorConfig` with its line in
//!    `CoordinatorConfig::from_values` (which applies the default), and a
//!    `CoordinatorBuilder` setter.
//! 4. Docs and tests that list every key: the table in `backpressure-macros/src/lib.rs`,
//!    `tests/ui/pass/every-key.rs`, the "valid keys are" lists pinned in `tests/ui/fail/*.stderr`
//!    and `backpressure/src/config_file/tests.rs`, and a row in the table-driven test
//!    `backpressure-macros/src/tests.rs` for each way the value can be wrong.
//!
//! A key that only the attribute takes (`name`, `crate`) sets `in_file: false` and is no
//! field of [`Values`]: the macro reads it itself (`name` goes into the registration beside
//! the values, `crate` only changes the paths `expand.rs` writes); a config file reports it
//! as an unknown field.
//!
//! A key of a health policy (`error_rate(window = "30s")`) is added in [`policies`] instead;
//! its top comment says how. The keys of the `retry(...)` list are in [`retry`], those of
//! `rate(...)` in [`rate`].

mod max_defer;
pub mod policies;
mod policy_kind;
mod problem;
pub mod rate;
mod read;
pub mod retry;
pub mod rules;
mod values;

use std::time::Duration;

pub use max_defer::MaxDefer;
pub use problem::{OptionError, Problem};
pub use read::{Written, WrittenValues};
pub use values::{OptionValue, Values};

/// How a key's value is written, in the attribute and in a config file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Kind {
    /// A name string (sink or worker name): the signal-name rules.
    Name,
    /// A positive integer (`usize`), with an optional upper limit.
    Count,
    /// A positive number of `defer_check_interval` attempts (`u32`).
    Attempts,
    /// A positive duration string such as `"50ms"`.
    Duration,
    /// A positive duration string or `"never"`.
    DurationOrNever,
    /// A pattern string or a list of pattern strings.
    Patterns,
    /// A number in (0, 1], such as a failure ratio.
    Ratio,
    /// A number in [0, 1), such as a jitter share.
    Share,
    /// A Rust path string such as `"my_crate::backpressure"`.
    Path,
    /// A finite number of at least 1, such as a backoff multiplier.
    Factor,
    /// A number in [0, 1], such as a retry's jitter share.
    Fraction,
    /// Any unsigned 64-bit integer, such as a jitter seed.
    Seed,
    /// `true` or `false`, such as a rate's `shared`.
    Flag,
}

/// One option: everything the front-ends need to read it and to explain a mistake.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Key {
    /// The key as written in the attribute and in a config file.
    pub name: &'static str,
    /// How its value is written.
    pub kind: Kind,
    /// A valid value, as written in the attribute and in TOML (the same syntax).
    pub example: &'static str,
    /// The allowed values, in words.
    pub allowed: &'static str,
    /// The largest allowed value of a [`Kind::Count`], and why there is one.
    pub max: Option<(usize, &'static str)>,
    /// Whether a config file's worker section may set it (the worker name may not).
    pub in_file: bool,
}

impl Key {
    pub(crate) const fn new(name: &'static str, kind: Kind, example: &'static str) -> Self {
        let allowed = match kind {
            Kind::Name => "ASCII letters, digits and `. _ - : /`",
            Kind::Count | Kind::Attempts => "1 or more",
            Kind::Duration => "a positive duration such as `\"50ms\"`",
            Kind::DurationOrNever => "a positive number of attempts or duration, or `never`",
            Kind::Patterns => "a pattern or a list of patterns",
            Kind::Ratio => "a number in (0, 1]",
            Kind::Share => "a number in [0, 1)",
            Kind::Path => "a path of identifiers such as `\"::my_crate::backpressure\"`",
            Kind::Factor => "a finite number of at least 1",
            Kind::Fraction => "a number in [0, 1]",
            Kind::Seed => "an integer from 0 to 18446744073709551615",
            Kind::Flag => "`true` or `false`",
        };
        Self {
            name,
            kind,
            example,
            allowed,
            max: None,
            in_file: true,
        }
    }
}

/// The largest number of concurrent slots a coordinator may have: each slot is a task
/// started up front. Shared here so that the runtime's builder and the attribute macro
/// enforce the same limit.
pub const MAX_CONCURRENCY: usize = 65_536;

/// `sink`: the name of the sink to watch.
pub const SINK: Key = Key::new("sink", Kind::Name, "\"main\"");
/// `concurrency`: the number of items handled at once.
pub const CONCURRENCY: Key = Key {
    allowed: "1 to 65536",
    max: Some((MAX_CONCURRENCY, "each slot is a task started up front")),
    ..Key::new("concurrency", Kind::Count, "4")
};
/// `capacity`: the items the queue holds before `enqueue` waits.
pub const CAPACITY: Key = Key::new("capacity", Kind::Count, "200");
/// `defer_on`: signals that hold back new work.
pub const DEFER_ON: Key = Key::new("defer_on", Kind::Patterns, "\"backpressure.*\"");
/// `resume_on`: signals that let work start even while a `defer_on` signal is active.
pub const RESUME_ON: Key = Key::new("resume_on", Kind::Patterns, "\"backpressure.resume\"");
/// `cancel_on`: signals under which items are skipped instead of started.
pub const CANCEL_ON: Key = Key::new("cancel_on", Kind::Patterns, "\"backpressure.cancel\"");
/// `defer_check_interval`: the unit of `max_defer_attempts` (attempts × interval is how long a
/// head item may be held); nothing re-checks on it, held slots sleep until woken.
pub const DEFER_CHECK_INTERVAL: Key = Key::new("defer_check_interval", Kind::Duration, "\"50ms\"");
/// `max_defer_attempts`: how many check intervals an item may be held (or `max_defer`).
pub const MAX_DEFER_ATTEMPTS: Key = Key::new("max_defer_attempts", Kind::Attempts, "200");
/// `max_defer`: how long an item may be held, or `"never"` (or `max_defer_attempts`).
pub const MAX_DEFER: Key = Key::new("max_defer", Kind::DurationOrNever, "\"10s\"");
/// `timeout`: how long one attempt of an item may run before its token fires.
pub const TIMEOUT: Key = Key::new("timeout", Kind::Duration, "\"30s\"");
/// `dead_letters`: how many dead letters a worker with `retry(...)` keeps.
pub const DEAD_LETTERS: Key = Key::new("dead_letters", Kind::Count, "1000");
/// `global_concurrency`: the most items of this worker running at once across every process
/// sharing its sink through a connector (`backpressure-redis`).
pub const GLOBAL_CONCURRENCY: Key = Key::new("global_concurrency", Kind::Count, "20");
/// `name`: the worker's registered name (attribute only: a config file is keyed by it).
pub const NAME: Key = Key {
    in_file: false,
    ..Key::new("name", Kind::Name, "\"my_app::worker\"")
};

/// `crate`: the path through which the attribute's generated code reaches the runtime, for a
/// crate that re-exports `backpressure` (as `#[tokio::main(crate = "...")]` does for tokio).
///
/// Attribute only: it says where the generated code finds the runtime, not how the worker
/// behaves, so neither a config file nor the runtime's builder takes it (`in_file` is false,
/// and it has no field in [`Values`] or `CoordinatorConfig`).
pub const CRATE: Key = Key {
    allowed: "a path to `backpressure` or to a re-export of it, such as \
              `\"::my_crate::backpressure\"`",
    in_file: false,
    ..Key::new("crate", Kind::Path, "\"my_crate::backpressure\"")
};

/// Every key, in the order errors and docs list them.
pub const KEYS: &[Key] = &[
    SINK,
    CONCURRENCY,
    CAPACITY,
    DEFER_ON,
    RESUME_ON,
    CANCEL_ON,
    DEFER_CHECK_INTERVAL,
    MAX_DEFER_ATTEMPTS,
    MAX_DEFER,
    TIMEOUT,
    DEAD_LETTERS,
    GLOBAL_CONCURRENCY,
    NAME,
    CRATE,
];

/// The key named `name`, if there is one.
pub fn key(name: &str) -> Option<&'static Key> {
    KEYS.iter().find(|key| key.name == name)
}

/// Default `sink`.
pub const DEFAULT_SINK: &str = "default";
/// Default `concurrency`, as in the .NET original.
pub const DEFAULT_CONCURRENCY: usize = 4;
/// Default `capacity`, as in the .NET original (`MaxTrackedOperations`).
pub const DEFAULT_CAPACITY: usize = 200;
/// Default `defer_on`, as in the .NET original.
pub const DEFAULT_DEFER_ON: &str = "backpressure.*";
/// Default `defer_check_interval`, as in the .NET original.
pub const DEFAULT_CHECK_INTERVAL: Duration = Duration::from_millis(50);
/// Default `max_defer_attempts`, as in the .NET original (10 s with the default interval).
pub const DEFAULT_MAX_DEFER_ATTEMPTS: u32 = 200;
/// Default `dead_letters`: kept per worker before the oldest is evicted.
pub const DEFAULT_DEAD_LETTERS: usize = 1_000;
/// Default `crate`: the runtime under its own name.
pub const DEFAULT_CRATE: &str = "::backpressure";

/// Names in backticks, comma-separated, for "valid keys are ..." messages.
///
/// # Examples
///
/// ```
/// use backpressure_pattern::options::{list, KEYS};
///
/// let in_file = list(KEYS.iter().filter(|key| key.in_file).map(|key| key.name));
/// assert!(in_file.starts_with("`sink`, `concurrency`, `capacity`"));
/// ```
pub fn list<'a>(names: impl IntoIterator<Item = &'a str>) -> String {
    names
        .into_iter()
        .map(|name| format!("`{name}`"))
        .collect::<Vec<_>>()
        .join(", ")
}
