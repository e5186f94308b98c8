//! Every rule of `rate(...)` through all three front-ends: the attribute's `rate(...)`, a
//! config file's `[workers.w.rate]` table and the builder's `Rate`, with the same words.

use std::time::Duration;

use backpressure::limit::Rate;

use crate::tests::{attribute, builder, config_text, Builder};

/// One invalid `rate` value: its `key = value` lines (the attribute's list and the file's
/// table, with `limit` and `per` where the case does not break them), the builder's form,
/// the core message.
struct RateCase {
    written: &'static [&'static str],
    builder: Builder,
    core: &'static str,
}

const SECOND: Duration = Duration::from_secs(1);

const RATE_CASES: &[RateCase] = &[
    RateCase {
        written: &["limit = 0", "per = \"1s\""],
        builder: |b| b.rate(Rate::new(0, SECOND)),
        core: "must be at least 1, found 0",
    },
    RateCase {
        written: &["limit = 10", "per = \"0s\""],
        builder: |b| b.rate(Rate::new(10, Duration::ZERO)),
        core: "must be longer than zero, found `0s`",
    },
    RateCase {
        written: &["limit = 10", "per = \"1s\"", "burst = 0"],
        builder: |b| b.rate(Rate::new(10, SECOND).burst(0)),
        core: "must be at least 1, found 0",
    },
    RateCase {
        written: &["limit = 10", "per = \"5ns\""],
        builder: |b| b.rate(Rate::new(10, Duration::from_nanos(5))),
        core: "must be at least one nanosecond times `limit` (10ns), found 5ns",
    },
];

#[test]
fn every_front_end_breaks_the_same_rate_rule_with_the_same_words() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("a runtime");
    let _entered = runtime.enter();
    for case in RATE_CASES {
        let attribute = attribute(&[&format!("rate({})", case.written.join(", "))]);
        assert!(
            attribute.contains(case.core),
            "attribute, {:?}: {attribute}",
            case.written
        );
        let file = config_text(format!("[workers.w.rate]\n{}\n", case.written.join("\n")));
        let at = "config file `t.toml`, worker `w`, `rate`, field `";
        assert!(file.starts_with(at), "{file}");
        assert!(
            file.contains(case.core),
            "config file, {:?}: {file}",
            case.written
        );
        let built = builder(case.builder);
        assert!(built.starts_with("invalid `rate`: `"), "{built}");
        assert!(
            built.contains(case.core),
            "builder, {:?}: {built}",
            case.written
        );
    }
    assert_eq!(
        attribute(&["rate(limit = 100, per = \"1s\", burst = 10)"]),
        "accepted"
    );
}

#[test]
fn the_attribute_names_what_rate_lacks_or_does_not_take() {
    assert_eq!(
        attribute(&["rate(limit = 100)"]),
        "`per` is required, such as `per = \"1s\"`"
    );
    assert_eq!(
        attribute(&["rate(per = \"1s\")"]),
        "`limit` is required, such as `limit = 100`"
    );
    assert!(attribute(&["rate()"]).starts_with("`limit` is required"));
    let unknown = attribute(&["rate(limt = 1, per = \"1s\")"]);
    assert_eq!(
        unknown,
        "unknown key `limt` in `rate` (did you mean `limit`?); valid keys are `limit`, `per`, `burst`, `shared`"
    );
    assert_eq!(
        attribute(&["rate(limit = 1, per = \"1s\", shared = 1)"]),
        "expected `true` or `false` for `shared`, as in `shared = true`"
    );
    assert_eq!(
        attribute(&["rate(limit = 1, per = \"1s\", shared = false)"]),
        "accepted"
    );
    assert!(attribute(&["rate"]).starts_with("`rate` is a list: write `rate(limit = 100"));
    let twice = attribute(&[
        "rate(limit = 1, per = \"1s\")",
        "rate(limit = 2, per = \"1s\")",
    ]);
    assert_eq!(twice, "`rate` specified more than once");
    let twice = attribute(&["rate(limit = 1, limit = 2, per = \"1s\")"]);
    assert_eq!(twice, "`limit` specified more than once in `rate`");
    let big = attribute(&["rate(limit = 4294967296, per = \"10s\")"]);
    assert!(big.contains("fits in `u32`"), "{big}");
    assert!(attribute(&["rat(limit = 1)"]).contains("did you mean `rate`?"));
}

#[test]
fn a_rate_table_is_checked_as_far_as_it_goes_alone() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("a runtime");
    let _entered = runtime.enter();
    // Past the table's own rules: only the worker's name is left to refuse.
    let burst = config_text("[workers.w.rate]\nburst = 5\n".into());
    assert!(
        burst.ends_with("which is not registered (registered workers: none)"),
        "{burst}"
    );
    let unknown = config_text("[workers.w.rate]\nlimits = 5\n".into());
    assert_eq!(
        unknown,
        "config file `t.toml`, worker `w`, `rate`: unknown field `limits` (valid fields: \
         `limit`, `per`, `burst`, `shared`)"
    );
    let wrong = config_text("[workers.w.rate]\nper = 5\n".into());
    assert!(
        wrong.starts_with("config file `t.toml`, worker `w`, `rate`, field `per`"),
        "{wrong}"
    );
}
