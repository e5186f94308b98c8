//! Every option rule through all three front-ends: the attribute (this crate's parser), a
//! config file and the runtime's builder. Each invalid value must break the same rule, with
//! the same core message (the words of `backpressure_pattern::options`).
//!
//! Type errors (a string where a number goes) are each front-end's own syntax and are pinned
//! by the trybuild and config-file tests instead.

use std::time::Duration;

use backpressure::{
    policy::{Adaptive, Breaker, Watermark},
    retry::Retry,
    Coordinator, CoordinatorBuilder, MaxDefer, Runtime, Sink,
};
use syn::parse::Parser;

use crate::args::RawArgs;

pub(crate) type Builder = fn(CoordinatorBuilder<u8>) -> CoordinatorBuilder<u8>;

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
        written: &["timeout = \"0s\""],
        builder: Some(|b| b.timeout(Duration::ZERO)),
        core: "must be longer than zero, found `0s`",
    },
    Case {
        written: &["timeout = \"a while\""],
        builder: None,
        core: "invalid duration `a while`: expected number at 0; write a duration such as",
    },
    Case {
        written: &["dead_letters = 0"],
        builder: Some(|b| b.dead_letters(0)),
        core: "must be at least 1, found 0",
    },
    Case {
        written: &["global_concurrency = 0"],
        builder: Some(|b| b.global_concurrency(0)),
        core: "must be at least 1, found 0",
    },
    Case {
        written: &["sink = \"main sink\""],
        builder: None,
        core: "invalid sink name `main sink`: character ' ' at byte 4 is not allowed",
    },
];

/// One invalid policy value: the policy, its `key = value` lines (the attribute's list and
/// the config file's `[workers.w.<policy>]` table), the builder's form, the core message.
struct PolicyCase {
    policy: &'static str,
    written: &'static [&'static str],
    builder: Option<Builder>,
    core: &'static str,
}

const SMTP: &str = "signal = \"backpressure.smtp\"";
const SECONDS: fn(u64) -> Duration = Duration::from_secs;

const POLICY_CASES: &[PolicyCase] = &[
    PolicyCase {
        policy: "error_rate",
        written: &[SMTP, "failure_ratio = 1.5"],
        builder: Some(|b| b.policy(Breaker::error_rate("backpressure.smtp").failure_ratio(1.5))),
        core: "must be a number in (0, 1], found 1.5",
    },
    PolicyCase {
        policy: "error_rate",
        written: &[SMTP, "failure_ratio = 0"],
        builder: Some(|b| b.policy(Breaker::error_rate("backpressure.smtp").failure_ratio(0.0))),
        core: "must be a number in (0, 1], found 0",
    },
    PolicyCase {
        policy: "error_rate",
        written: &[SMTP, "jitter = 1"],
        builder: Some(|b| b.policy(Breaker::error_rate("backpressure.smtp").jitter(1.0))),
        core: "must be a number in [0, 1), found 1",
    },
    PolicyCase {
        policy: "error_rate",
        written: &[SMTP, "window = \"0s\""],
        builder: Some(|b| {
            b.policy(Breaker::error_rate("backpressure.smtp").window(Duration::ZERO))
        }),
        core: "must be longer than zero, found `0s`",
    },
    PolicyCase {
        policy: "error_rate",
        written: &[SMTP, "min_calls = 0"],
        builder: Some(|b| b.policy(Breaker::error_rate("backpressure.smtp").min_calls(0))),
        core: "must be at least 1, found 0",
    },
    PolicyCase {
        policy: "error_rate",
        written: &[SMTP, "probes = 0"],
        builder: Some(|b| b.policy(Breaker::error_rate("backpressure.smtp").probes(0))),
        core: "must be at least 1, found 0",
    },
    PolicyCase {
        policy: "error_rate",
        written: &[SMTP, "open_for = \"1m\"", "max_open_for = \"30s\""],
        builder: Some(|b| {
            let breaker = Breaker::error_rate("backpressure.smtp");
            b.policy(breaker.open_for(SECONDS(60)).max_open_for(SECONDS(30)))
        }),
        core: "must be at least `open_for` (1m), found 30s",
    },
    PolicyCase {
        policy: "error_rate",
        written: &[SMTP, "probe_timeout = \"soon\""],
        builder: None,
        core: "invalid duration `soon`: expected number at 0; write a duration such as",
    },
    PolicyCase {
        policy: "error_rate",
        written: &["signal = \"a b\""],
        builder: Some(|b| b.policy(Breaker::error_rate("a b"))),
        core: "invalid signal name `a b`: character ' ' at byte 1 is not allowed",
    },
    PolicyCase {
        policy: "slow_call",
        written: &[SMTP, "slow_after = \"0s\""],
        builder: Some(|b| b.policy(Breaker::slow_call("backpressure.smtp", Duration::ZERO))),
        core: "must be longer than zero, found `0s`",
    },
    PolicyCase {
        policy: "adaptive",
        written: &[SMTP, "max = 0"],
        builder: Some(|b| b.policy(Adaptive::new("backpressure.smtp", 0))),
        core: "must be at least 1, found 0",
    },
    PolicyCase {
        policy: "watermark",
        written: &[SMTP, "high = 0.6", "low = 0.7"],
        builder: Some(|b| b.policy(Watermark::new("backpressure.smtp").high(0.6).low(0.7))),
        core: "must be below `high` (0.6), found 0.7",
    },
    PolicyCase {
        policy: "watermark",
        written: &[SMTP, "high = 0"],
        builder: Some(|b| b.policy(Watermark::new("backpressure.smtp").high(0.0))),
        core: "must be a number in (0, 1], found 0",
    },
    PolicyCase {
        policy: "watermark",
        written: &[SMTP, "max_age = \"0s\""],
        builder: Some(|b| b.policy(Watermark::new("backpressure.smtp").max_age(Duration::ZERO))),
        core: "must be longer than zero, found `0s`",
    },
];

/// One invalid `retry` value: its `key = value` lines (the attribute's `retry(...)` and the
/// config file's `[workers.w.retry]` table), the builder's form, the core message.
struct RetryCase {
    written: &'static [&'static str],
    builder: Builder,
    core: &'static str,
}

const RETRY_CASES: &[RetryCase] = &[
    RetryCase {
        written: &["attempts = 0"],
        builder: |b| b.retry(Retry::new(0)),
        core: "must be at least 1, found 0",
    },
    RetryCase {
        written: &["backoff = \"0s\""],
        builder: |b| b.retry(Retry::new(3).backoff(Duration::ZERO)),
        core: "must be longer than zero, found `0s`",
    },
    RetryCase {
        written: &["backoff = \"10s\"", "max_backoff = \"5s\""],
        builder: |b| b.retry(Retry::new(3).backoff(SECONDS(10)).max_backoff(SECONDS(5))),
        core: "must be at least `backoff` (10s), found 5s",
    },
    RetryCase {
        written: &["multiplier = 0.5"],
        builder: |b| b.retry(Retry::new(3).multiplier(0.5)),
        core: "must be a finite number of at least 1, found 0.5",
    },
    RetryCase {
        written: &["jitter = 1.5"],
        builder: |b| b.retry(Retry::new(3).jitter(1.5)),
        core: "must be a number in [0, 1], found 1.5",
    },
    RetryCase {
        written: &["jitter = -0.1"],
        builder: |b| b.retry(Retry::new(3).jitter(-0.1)),
        core: "must be a number in [0, 1], found -0.1",
    },
];

pub(crate) fn attribute(written: &[&str]) -> String {
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
    config_text(format!("[workers.w]\n{}\n", written.join("\n")))
}

pub(crate) fn config_text(text: String) -> String {
    match Runtime::builder()
        .only::<_, &str>([])
        .config_toml("t.toml", text)
        .start()
    {
        Ok(_) => String::from("accepted"),
        Err(err) => err.to_string(),
    }
}

pub(crate) fn builder(set: Builder) -> String {
    builder_with(set)
}

fn builder_with(set: impl FnOnce(CoordinatorBuilder<u8>) -> CoordinatorBuilder<u8>) -> String {
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
fn every_front_end_breaks_the_same_policy_rule_with_the_same_words() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("a runtime");
    let _entered = runtime.enter();
    for case in POLICY_CASES {
        let policy = case.policy;
        let attribute = attribute(&[&format!("{policy}({})", case.written.join(", "))]);
        assert!(
            attribute.contains(case.core),
            "attribute, {policy}{:?}: {attribute}",
            case.written
        );
        let file = config_text(format!(
            "[workers.w.{policy}]\n{}\n",
            case.written.join("\n")
        ));
        let at = format!("config file `t.toml`, worker `w`, policy `{policy}`, field `");
        assert!(file.starts_with(&at), "{file}");
        assert!(
            file.contains(case.core),
            "config file, {policy}{:?}: {file}",
            case.written
        );
        if let Some(set) = case.builder {
            let built = builder(set);
            let at = format!("invalid `{policy}` policy: ");
            assert!(built.starts_with(&at), "{built}");
            assert!(
                built.contains(case.core),
                "builder, {policy}{:?}: {built}",
                case.written
            );
        }
    }
}

#[test]
fn every_front_end_breaks_the_same_retry_rule_with_the_same_words() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("a runtime");
    let _entered = runtime.enter();
    for case in RETRY_CASES {
        let attribute = attribute(&[&format!("retry({})", case.written.join(", "))]);
        assert!(
            attribute.contains(case.core),
            "attribute, {:?}: {attribute}",
            case.written
        );
        let file = config_text(format!("[workers.w.retry]\n{}\n", case.written.join("\n")));
        let at = "config file `t.toml`, worker `w`, `retry`, field `";
        assert!(file.starts_with(at), "{file}");
        assert!(
            file.contains(case.core),
            "config file, {:?}: {file}",
            case.written
        );
        let built = builder(case.builder);
        assert!(built.starts_with("invalid `retry`: `"), "{built}");
        assert!(
            built.contains(case.core),
            "builder, {:?}: {built}",
            case.written
        );
    }
    assert_eq!(
        attribute(&["retry(jitter = 1.0, jitter_seed = 7)"]),
        "accepted"
    );
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

#[test]
fn an_adaptive_signal_outside_defer_on_breaks_the_same_rule_in_the_attribute_and_the_builder() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("a runtime");
    let _entered = runtime.enter();
    let core = "is not matched by this worker's `defer_on` (`db.*`), so its level would \
                throttle nothing here";
    let attribute = attribute(&[
        "defer_on = \"db.*\"",
        "adaptive(signal = \"backpressure.smtp.level\", max = 16)",
    ]);
    assert!(attribute.contains(core), "{attribute}");
    let built = builder(|b| {
        b.defer_on("db.*")
            .policy(Adaptive::new("backpressure.smtp.level", 16))
    });
    assert!(built.starts_with("invalid `adaptive` policy: "), "{built}");
    assert!(built.contains(core), "{built}");
    // Matched by `defer_on`: accepted.
    let fine = builder(|b| b.policy(Adaptive::new("backpressure.smtp.level", 16)));
    assert_eq!(fine, "accepted");
}

#[test]
fn a_breaker_signal_outside_defer_on_breaks_the_same_rule_in_the_attribute_and_the_builder() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("a runtime");
    let _entered = runtime.enter();
    let core = "is not matched by this worker's `defer_on` (`db.*`), so while the breaker is \
                open this worker would keep sending into the failing downstream";
    for (policy, written, breaker) in [
        (
            "error_rate",
            "error_rate(signal = \"backpressure.smtp\")",
            Breaker::error_rate("backpressure.smtp"),
        ),
        (
            "slow_call",
            "slow_call(signal = \"backpressure.smtp\", slow_after = \"2s\")",
            Breaker::slow_call("backpressure.smtp", Duration::from_secs(2)),
        ),
    ] {
        let attribute = attribute(&["defer_on = \"db.*\"", written]);
        assert!(attribute.contains(core), "{attribute}");
        let refused = breaker.clone();
        let built = builder_with(move |b| b.defer_on("db.*").policy(refused));
        assert!(
            built.starts_with(&format!("invalid `{policy}` policy: ")),
            "{built}"
        );
        assert!(built.contains(core), "{built}");
        // No `defer_on` at all: the same rule.
        let refused = breaker.clone();
        let built = builder_with(move |b| b.no_defer().policy(refused));
        assert!(built.contains("this worker has no `defer_on`"), "{built}");
        // Matched by `defer_on` (the default `backpressure.*`): accepted.
        assert_eq!(builder_with(move |b| b.policy(breaker)), "accepted");
    }
    // A watermark's signal is for peers: not checked.
    let watermark = attribute(&[
        "defer_on = \"db.*\"",
        "watermark(signal = \"backpressure.backlog\")",
    ]);
    assert_eq!(watermark, "accepted");
    let built = builder(|b| b.no_defer().policy(Watermark::new("backpressure.backlog")));
    assert_eq!(built, "accepted");
}

#[test]
fn crate_is_an_attribute_key_only() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("a runtime");
    let _entered = runtime.enter();
    assert_eq!(
        attribute(&["crate = \"my_crate::backpressure\""]),
        "accepted"
    );
    let file = config_file(&["crate = \"my_crate::backpressure\""]);
    assert!(
        file.starts_with("config file `t.toml`, worker `w`: unknown field `crate`"),
        "{file}"
    );
    assert!(!file.contains("`crate`,"), "not listed as valid: {file}");
}

#[test]
fn a_crate_path_is_checked_by_the_shared_rule_and_by_syn() {
    let core = "must be a path to `backpressure` or to a re-export of it";
    for written in ["crate = \"a b\"", "crate = \"a::\"", "crate = \"fn::b\""] {
        let error = attribute(&[written]);
        assert!(error.starts_with("`crate` "), "{written}: {error}");
        assert!(error.contains(core), "{written}: {error}");
    }
    assert_eq!(attribute(&["crate = \"::a::_b1\""]), "accepted");
    assert_eq!(attribute(&["crate = \"crate::reexport\""]), "accepted");
}

/// The expansion of `#[backpressure_worker(<args>)] async fn send(item: u32)`, as text.
fn expansion(args: &str) -> String {
    let function: syn::ItemFn = syn::parse_quote!(
        async fn send(item: u32) {
            let _ = item;
        }
    );
    let handler = crate::validate::check_fn(&function).expect("a valid signature");
    let mut raw = RawArgs::default();
    let tokens: proc_macro2::TokenStream = args.parse().expect("valid tokens");
    syn::meta::parser(|meta| raw.parse(meta))
        .parse2(tokens)
        .expect("valid arguments");
    let config = raw.build().expect("a valid config");
    crate::expand::expand(&function, &handler, &config).to_string()
}

#[test]
fn generated_code_reaches_the_runtime_through_the_crate_path_only() {
    let every = "max_defer = \"1s\", error_rate(signal = \"backpressure.x\"), \
                 adaptive(signal = \"backpressure.y\", max = 4)";
    let through = expansion(&format!("crate = \"my_crate::bp\", {every}"));
    assert!(!through.contains(":: backpressure"), "{through}");
    assert!(through.contains("my_crate :: bp :: __private :: Registration"));
    let default = expansion(every);
    let mut named = default.split(":: backpressure ::").skip(1).peekable();
    assert!(named.peek().is_some(), "{default}");
    for rest in named {
        assert!(rest.trim_start().starts_with("__private"), "{rest}");
    }
}

#[test]
fn only_a_worker_with_retry_asks_for_clone() {
    let plain = expansion("timeout = \"30s\", dead_letters = 10");
    assert!(!plain.contains("build_retrying"), "{plain}");
    assert!(!plain.contains("clone_to_retry"), "{plain}");
    assert!(
        plain.contains("retry : :: core :: option :: Option :: None"),
        "{plain}"
    );
    let retrying = expansion("retry(attempts = 5, jitter_seed = 7)");
    assert!(retrying.contains("ctx . build_retrying"), "{retrying}");
    assert!(
        retrying.contains("clone_to_retry :: < Item > ()"),
        "{retrying}"
    );
    assert!(
        retrying.contains("attempts : :: core :: option :: Option :: Some (5u32)"),
        "{retrying}"
    );
}
