//! The public surface, pinned on stable Rust (rustdoc JSON and `cargo public-api` need
//! nightly).
//!
//! Three checks, so that a change to what users can name is a deliberate edit:
//!
//! 1. The `use` lists below name every public item at its one public path and
//!    the `*_are_nameable` tests touch each: a removal or rename fails to compile.
//! 2. `the_exports_are_the_checked_in_list` reads the `pub use` lines and top-level `pub`
//!    items of `src/lib.rs` and of every public module's file, and compares them with
//!    `tests/public_api.txt`: an addition is a failing test and a visible diff of that file.
//! 3. `this_file_names_every_listed_item` holds the `use` lists below to the same file, so a
//!    new item is also named (and so compiled) here.
//!
//! To change the surface on purpose: edit `tests/public_api.txt` (one path a line) and the
//! `use` lists here.

use std::collections::BTreeSet;
use std::path::Path;

use backpressure::connector::{
    PermitCounts, Permits, ProbeSource, ProbeTicket, RateTokenCounts, RateTokens,
};
use backpressure::error::{
    BuildError, ConfigError, EnqueueError, Lagged, LevelError, NameError, NameErrorKind,
    PatternError, PolicyError, RateError, RegistryError, RetryError, SignalError, StreamClosed,
    TryEnqueueError, WorkerEnqueueError,
};
use backpressure::limit::{Rate, RateSpec};
#[cfg(feature = "metrics")]
use backpressure::metrics::{
    describe, DEFER_TIMEOUTS, ITEMS_DEAD_LETTERED, ITEMS_ENQUEUED, ITEMS_FINISHED, ITEMS_RETRIED,
    ITEM_DURATION, ITEM_WAIT, RATE_LIMITED, SIGNAL_TRANSITIONS, WORKER_ACTIVE, WORKER_CONCURRENCY,
    WORKER_DEFERRED, WORKER_GATE_OPEN, WORKER_QUEUED,
};
use backpressure::policy::{
    Adaptive, Breaker, BreakerReason, BreakerState, ChangeReason, Policy, PolicyChange,
    PolicyDetail, PolicyInfo, PolicyState, Watermark, WindowCounts,
};
use backpressure::retry::{DeadLetter, DeadLetterRecord, Failure, Retry, RetrySpec};
#[cfg(feature = "test-util")]
use backpressure::testing::{Recorded, Timeline};
#[cfg(feature = "axum")]
use backpressure::tower::handle_error;
#[cfg(feature = "tower")]
use backpressure::tower::{Hold, HoldError, HoldLayer, HoldMode, ResponseFuture, WorkerHoldError};
use backpressure::{
    backpressure_worker, sink, start, validate_name, ActiveSignal, Coordinator, CoordinatorBuilder,
    CoordinatorConfig, HandlerOutcome, HeldBy, ItemId, Level, MaxDefer, Pattern, Phase,
    RaiseOptions, Runtime, RuntimeBuilder, ShutdownReport, SignalEvent, SignalEventKind, Sink,
    SinkSection, Stats, Subscription, WeakCoordinator, WorkContext, WorkerInfo, CONFIG_ENV_VAR,
    MAX_CONCURRENCY, MAX_NAME_LEN,
};

/// Names a type, so that its import counts as used.
fn named<T: ?Sized>() {}

/// Names a trait, so that its import counts as used.
fn outcome<T: HandlerOutcome>() {}

/// The attribute, applied: a worker that is never started.
#[backpressure_worker]
async fn pinned_worker(_item: u32) {}

#[test]
fn the_root_items_are_nameable() {
    named::<HeldBy>();
    named::<ActiveSignal>();
    named::<Coordinator<u32>>();
    named::<CoordinatorBuilder<u32>>();
    named::<CoordinatorConfig>();
    outcome::<()>();
    named::<ItemId>();
    named::<Level>();
    named::<MaxDefer>();
    named::<Phase>();
    named::<RaiseOptions>();
    named::<Runtime>();
    named::<RuntimeBuilder>();
    named::<ShutdownReport>();
    named::<SignalEvent>();
    named::<SignalEventKind>();
    named::<Sink>();
    named::<SinkSection>();
    named::<Stats>();
    named::<Subscription>();
    named::<WeakCoordinator<u32>>();
    named::<WorkContext>();
    named::<WorkerInfo>();
    named::<Pattern>();
    let _ = (sink, start, validate_name);
    let _: (&str, usize, usize) = (CONFIG_ENV_VAR, MAX_CONCURRENCY, MAX_NAME_LEN);
    assert!(pinned_worker::NAME.ends_with("::pinned_worker"));
}

#[test]
fn the_connector_module_items_are_nameable() {
    named::<ProbeTicket>();
    named::<Permits>();
    named::<PermitCounts>();
    named::<RateTokens>();
    named::<RateTokenCounts>();
    fn source(_: Option<&dyn ProbeSource>) {}
    source(None);
}

#[test]
fn the_error_module_items_are_nameable() {
    named::<BuildError>();
    named::<ConfigError>();
    named::<EnqueueError<u32>>();
    named::<Lagged>();
    named::<LevelError>();
    named::<NameError>();
    named::<NameErrorKind>();
    named::<PatternError>();
    named::<PolicyError>();
    named::<RegistryError>();
    named::<RateError>();
    named::<RetryError>();
    named::<SignalError>();
    named::<StreamClosed<u32>>();
    named::<TryEnqueueError<u32>>();
    named::<WorkerEnqueueError<u32>>();
}

#[test]
fn the_policy_module_items_are_nameable() {
    named::<Adaptive>();
    named::<Breaker>();
    named::<BreakerReason>();
    named::<BreakerState>();
    named::<ChangeReason>();
    named::<Policy>();
    named::<PolicyChange>();
    named::<PolicyDetail>();
    named::<PolicyInfo>();
    named::<PolicyState>();
    named::<Watermark>();
    named::<WindowCounts>();
}

#[test]
fn the_limit_module_items_are_nameable() {
    named::<Rate>();
    named::<RateSpec>();
}

#[test]
fn the_retry_module_items_are_nameable() {
    named::<DeadLetter<u32>>();
    named::<DeadLetterRecord>();
    named::<Retry>();
    named::<RetrySpec>();
    outcome::<Result<(), Failure<String>>>();
}

#[test]
fn the_feature_modules_items_are_nameable() {
    #[cfg(feature = "test-util")]
    {
        named::<Timeline>();
        outcome::<Recorded<()>>();
    }
    #[cfg(feature = "tower")]
    {
        named::<Hold<()>>();
        named::<HoldError>();
        named::<HoldLayer>();
        named::<HoldMode>();
        named::<WorkerHoldError>();
        named::<ResponseFuture<std::future::Ready<Result<(), HoldError>>>>();
    }
    #[cfg(feature = "axum")]
    {
        let _ = handle_error;
    }
    #[cfg(feature = "metrics")]
    {
        let _ = describe;
        let _: [&str; 14] = [
            RATE_LIMITED,
            DEFER_TIMEOUTS,
            ITEMS_DEAD_LETTERED,
            ITEMS_ENQUEUED,
            ITEMS_FINISHED,
            ITEMS_RETRIED,
            ITEM_DURATION,
            ITEM_WAIT,
            SIGNAL_TRANSITIONS,
            WORKER_ACTIVE,
            WORKER_CONCURRENCY,
            WORKER_DEFERRED,
            WORKER_GATE_OPEN,
            WORKER_QUEUED,
        ];
    }
}

// ----------------------------------------------------------------------------- the text check

const LIST: &str = "tests/public_api.txt";

fn manifest_dir() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// The checked-in list: one path a line, `#` starts a comment.
fn checked_in() -> BTreeSet<String> {
    let text = std::fs::read_to_string(manifest_dir().join(LIST)).expect("the checked-in list");
    text.lines()
        .map(|line| line.split('#').next().unwrap_or("").trim())
        .filter(|line| !line.is_empty())
        .map(str::to_owned)
        .collect()
}

/// `text` without `//` comments (doc comments included); the files scanned hold no `//`
/// inside a string on an item line.
fn strip_comments(text: &str) -> String {
    text.lines()
        .map(|line| match line.find("//") {
            Some(at) => &line[..at],
            None => line,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// The statements of `text` that start at column 0 (top-level items), each with the
/// attribute lines just above it.
fn top_level_statements(text: &str) -> Vec<(Vec<String>, String)> {
    let mut out = Vec::new();
    let mut attrs = Vec::new();
    let mut lines = text.lines().peekable();
    while let Some(line) = lines.next() {
        if line.starts_with("#!") {
            continue;
        }
        if line.starts_with("#[") {
            attrs.push(line.trim().to_owned());
            continue;
        }
        if line.is_empty() || line.starts_with(char::is_whitespace) || line.starts_with('}') {
            if !line.is_empty() {
                attrs.clear();
            }
            continue;
        }
        let mut statement = line.to_owned();
        // A `use` ends at its `;`; another item at its `;` or the `{` opening its body.
        let is_use = statement.starts_with("use ") || statement.starts_with("pub use ");
        let ends = |s: &str| {
            let s = s.trim_end();
            s.ends_with(';') || (!is_use && s.ends_with('{'))
        };
        while !ends(&statement) {
            let Some(next) = lines.next() else { break };
            statement.push(' ');
            statement.push_str(next.trim());
        }
        out.push((std::mem::take(&mut attrs), statement));
    }
    out
}

/// The names a `use` tree brings in: `a::{b, c::{d as e}}` gives `b` and `e`.
fn use_tree_names(tree: &str) -> Vec<String> {
    let tree = tree.trim();
    if let Some(open) = tree.find('{') {
        let inner = &tree[open + 1..tree.rfind('}').expect("a closing brace")];
        return split_top_level(inner)
            .iter()
            .flat_map(|part| use_tree_names(part))
            .collect();
    }
    let last = tree.rsplit("::").next().unwrap_or(tree);
    let name = last.rsplit(" as ").next().unwrap_or(last).trim();
    assert_ne!(
        name, "*",
        "a glob re-export hides the surface: list the items in `{tree}`"
    );
    vec![name.to_owned()]
}

/// `a, b::{c, d}, e` split on the commas outside braces.
fn split_top_level(list: &str) -> Vec<&str> {
    let (mut parts, mut depth, mut start) = (Vec::new(), 0, 0);
    for (at, ch) in list.char_indices() {
        match ch {
            '{' => depth += 1,
            '}' => depth -= 1,
            ',' if depth == 0 => {
                parts.push(&list[start..at]);
                start = at + 1;
            }
            _ => {}
        }
    }
    parts.push(&list[start..]);
    parts.into_iter().filter(|p| !p.trim().is_empty()).collect()
}

/// The public items of the module in `file` (relative to `src/`), at `path`, with those of
/// its public submodules (a `#[doc(hidden)]` one is not part of the surface).
fn exports(file: &str, path: &str, found: &mut BTreeSet<String>) {
    let text = std::fs::read_to_string(manifest_dir().join("src").join(file))
        .unwrap_or_else(|err| panic!("src/{file}: {err}"));
    let dir = match file.strip_suffix("mod.rs").or(file.strip_suffix("lib.rs")) {
        Some(dir) => dir.to_owned(),
        None => format!("{}/", file.trim_end_matches(".rs")),
    };
    for (attrs, statement) in top_level_statements(&strip_comments(&text)) {
        if attrs
            .iter()
            .any(|a| a == "#[doc(hidden)]" || a == "#[cfg(test)]")
        {
            continue;
        }
        if let Some(tree) = statement.strip_prefix("pub use ") {
            for name in use_tree_names(tree.trim_end_matches(';')) {
                found.insert(format!("{path}::{name}"));
            }
        } else if let Some(module) = statement.strip_prefix("pub mod ") {
            let module = module.trim_end_matches(';').trim();
            let flat = format!("{dir}{module}.rs");
            let child = if manifest_dir().join("src").join(&flat).exists() {
                flat
            } else {
                format!("{dir}{module}/mod.rs")
            };
            exports(&child, &format!("{path}::{module}"), found);
        } else if let Some(rest) = statement.strip_prefix("pub ") {
            found.insert(format!("{path}::{}", defined_name(rest)));
        }
    }
}

/// The name of `fn name(..`, `struct Name<T>`, `const NAME: ..` and the like.
fn defined_name(item: &str) -> String {
    let words: Vec<&str> = item.split_whitespace().collect();
    let kinds = [
        "fn", "struct", "enum", "trait", "type", "const", "static", "union",
    ];
    let at = words
        .iter()
        .position(|w| kinds.contains(w))
        .unwrap_or_else(|| panic!("an unexpected public item: `pub {item}`"));
    let name = words.get(at + 1).expect("a name after the item's kind");
    name.split(|c: char| !(c.is_alphanumeric() || c == '_'))
        .next()
        .unwrap_or(name)
        .to_owned()
}

/// The difference of two lists as a message naming what was added and what was removed.
fn difference(expected: &BTreeSet<String>, actual: &BTreeSet<String>) -> Option<String> {
    let added: Vec<_> = actual
        .difference(expected)
        .map(|p| format!("+ {p}"))
        .collect();
    let removed: Vec<_> = expected
        .difference(actual)
        .map(|p| format!("- {p}"))
        .collect();
    (!added.is_empty() || !removed.is_empty()).then(|| {
        added
            .into_iter()
            .chain(removed)
            .collect::<Vec<_>>()
            .join("\n")
    })
}

#[test]
fn the_exports_are_the_checked_in_list() {
    let mut found = BTreeSet::new();
    exports("lib.rs", "backpressure", &mut found);
    if let Some(diff) = difference(&checked_in(), &found) {
        panic!(
            "the public surface changed (+ exported but not in {LIST}, - listed but no longer \
             exported):\n{diff}\n\nIf the change is deliberate, update backpressure/{LIST} and \
             the `use` lists of backpressure/tests/public_api.rs."
        );
    }
}

#[test]
fn this_file_names_every_listed_item() {
    let source = std::fs::read_to_string(manifest_dir().join("tests/public_api.rs")).unwrap();
    let mut named = BTreeSet::new();
    for (_, statement) in top_level_statements(&strip_comments(&source)) {
        let Some(tree) = statement.strip_prefix("use backpressure::") else {
            continue;
        };
        let tree = tree.trim_end_matches(';');
        // `module::{a, b}`, `module::item` or `item`.
        let (module, rest) = match (tree.find("::{"), tree.rfind("::")) {
            (Some(at), _) => (format!("::{}", &tree[..at]), &tree[at + 2..]),
            (None, Some(at)) => (format!("::{}", &tree[..at]), &tree[at + 2..]),
            (None, None) => (String::new(), tree),
        };
        for name in use_tree_names(rest) {
            named.insert(format!("backpressure{module}::{name}"));
        }
    }
    if let Some(diff) = difference(&checked_in(), &named) {
        panic!(
            "the `use` lists of backpressure/tests/public_api.rs and {LIST} disagree (+ imported \
             but not listed, - listed but not imported):\n{diff}\n\nName every listed item in \
             the `use` lists and in a `*_are_nameable` test."
        );
    }
}
