//! Every option rule through all three front-ends: the attribute (this crate's parser), a
//! config file and the runtime's builder. Each invalid value must break the same rule, with
//! the same core message (the words of `backpressure_pattern::options`).
//!
//! Type errors (a string where a number goes) are each front-end's own syntax and are pinned
//! by the trybuild and config-file tests instead.

use std::time::Duration;

use backpressure::{Coordinator, CoordinatorBuilder, MaxDefer, Runtime, Sink};
use syn::parse::Parser;

use crate::args::RawArgs;

type Builder = fn(CoordinatorBuilder<u8>) -> CoordinatorBuilder<u8>;

/// One invalid value, as `key = value` lines of the attribute and of TOML (the same syntax), how the
/// builder expresses it (when it can), and the core message of the rule it breaks.
struct Case {
    written: &'static [&'static str],
    builder: Option<Builder>,
    core: &'static str,
}

const CASES: &[Case] = &[
    Case {
        written: &["concurrency = 0"],
        builder: Some(|b| b.concurrency(0)),
        core: "must be at least 1, found 0",
    },
    Case {
        written: &["concurrency = 1000000"],
        builder: Some(|b| b.concurrency(1_000_000)),
        core: "must be at most 65536 (each slot is a task started up front), found 1000000",
    },
    Case {
        written: &["capacity = 0"],
        builder: Some(|b| b.capacity(0)),
        core: "must be at least 1, found 0",
    },
    Case {
        written: &["defer_on = \"a b\""],
        builder: Some(|b| b.defer_on("a b")),
        core: "invalid pattern `a b`: character ' ' at byte 1 is not allowed",
    },
    Case {
        written: &["resume_on = [\"a.*\", \"\"]"],
        builder: None,
        core: "invalid pattern: the pattern is empty",
    },
    Case {
        written: &["cancel_on = []"],
        builder: None,
        core: "needs at least one pattern, as in `cancel_on = [\"backpressure.*\"]`",
    },
    Case {
        written: &["defer_check_interval = \"0s\""],
        builder: Some(|b| b.defer_check_interval(Duration::ZERO)),
        core: "must be longer than zero, found `0s`",
    },
    Case {
        written: &["defer_check_interval = \"soon\""],
        builder: None,
        core: "invalid duration `soon`: expected number at 0; write a duration such as",
    },
    Case {
        written: &["max_defer_attempts = 0"],
        builder: Some(|b| b.max_defer_attempts(0)),
        core: "must be positive, found 0; to wait without limit write `max_defer = \"never\"`",
    },
    Case {
        // The builder folds a zero duration into the attempts rule above: `ZeroMaxDefer`.
        written: &["max_defer = \"0s\""],
        builder: None,
        core: "must be longer than zero, found `0s`",
    },
    Case {
        written: &["max_defer = \"later\""],
        builder: None,
        core: "write a duration such as `\"50ms\"`, `\"1s\"` or `\"2m 30s\"` or `\"never\"`",
    },
    Case {
        written: &["max_defer = \"1s\"", "max_defer_attempts = 3"],
        builder: None,
        core: "`max_defer` and `max_defer_attempts` cannot both be given",
    },
    Case {
        written: &["sink = \"main sink\""],
        builder: None,
        core: "invalid sink name `main sink`: character ' ' at byte 4 is not allowed",
    },
];

fn attribute(written: &[&str]) -> String {
    let mut raw = RawArgs::default();
    let tokens: proc_macro2::TokenStream = written.join(", ").parse().expect("valid tokens");
    match syn::meta::parser(|meta| raw.parse(meta)).parse2(tokens) {
        Err(err) => err.to_string(),
        Ok(()) => match raw.build() {
            Ok(_) => String::from("accepted"),
            Err(err) => err.to_string(),
        },
    }
}

fn config_file(written: &[&str]) -> String {
    let text = format!("[workers.w]\n{}\n", written.join("\n"));
    match Runtime::builder()
        .only::<_, &str>([])
        .config_toml("t.toml", text)
        .start()
    {
        Ok(_) => String::from("accepted"),
        Err(err) => err.to_string(),
    }
}

fn builder(set: Builder) -> String {
    match set(Coordinator::builder().sink(Sink::new())).build(|_: u8, _| async {}) {
        Ok(_) => String::from("accepted"),
        Err(err) => err.to_string(),
    }
}

#[test]
fn every_front_end_breaks_the_same_rule_with_the_same_words() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("a runtime");
    let _entered = runtime.enter();
    for case in CASES {
        let attribute = attribute(case.written);
        assert!(
            attribute.contains(case.core),
            "attribute, {:?}: {attribute}",
            case.written
        );
        let file = config_file(case.written);
        assert!(
            file.starts_with("config file `t.toml`, worker `w`, field `"),
            "{file}"
        );
        assert!(
            file.contains(case.core),
            "config file, {:?}: {file}",
            case.written
        );
        if let Some(set) = case.builder {
            let built = builder(set);
            assert!(
                built.contains(case.core),
                "builder, {:?}: {built}",
                case.written
            );
        }
    }
}

#[test]
fn the_builder_folds_both_zero_limits_into_one_rule() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("a runtime");
    let _entered = runtime.enter();
    let zero = builder(|b| b.max_defer(MaxDefer::After(Duration::ZERO)));
    assert_eq!(zero, builder(|b| b.max_defer_attempts(0)));
}
