//! Property tests: config files (TOML) with random fields and values never panic; every
//! invalid one is a clear error naming the field, every valid one is applied.
//!
//! Deterministic: fixed case counts from a fixed seed.

use std::time::Duration;

use backpressure::{
    error::{ConfigError, RegistryError},
    MaxDefer, Runtime,
};
use proptest::prelude::*;
use proptest::test_runner::{Config, RngSeed};

/// Cases of the generated-worker-section property.
const SECTION_CASES: u32 = 512;
/// Cases of the arbitrary-text property.
const TEXT_CASES: u32 = 512;

const WORKER: &str = "proptest_config.job";

#[backpressure::backpressure_worker(name = "proptest_config.job", sink = "proptest.config")]
async fn job(_item: u32) {}

fn config(cases: u32) -> Config {
    Config {
        cases,
        rng_seed: RngSeed::Fixed(0x636f_6e66_6967),
        failure_persistence: None,
        ..Config::default()
    }
}

/// What a generated field value should do.
#[derive(Debug, Clone, PartialEq)]
enum Expect {
    Valid(Effect),
    Invalid,
}

/// The effect of a valid value on the worker's configuration.
#[derive(Debug, Clone, PartialEq)]
enum Effect {
    Concurrency(usize),
    Capacity(usize),
    DeferOn(String),
    ResumeOn(String),
    CancelOn(String),
    CheckInterval(Duration),
    MaxDefer(MaxDefer),
    /// Applied elsewhere (the sink name), or not checked.
    None,
}

fn count(field: &'static str) -> BoxedStrategy<(String, Expect)> {
    let effect = move |n: usize| match field {
        "concurrency" => Effect::Concurrency(n),
        _ => Effect::Capacity(n),
    };
    prop_oneof![
        (1usize..=64).prop_map(move |n| (n.to_string(), Expect::Valid(effect(n)))),
        Just(("0".to_owned(), Expect::Invalid)),
        (-100i64..0).prop_map(|n| (n.to_string(), Expect::Invalid)),
        Just(("\"4\"".to_owned(), Expect::Invalid)),
        Just(("1.5".to_owned(), Expect::Invalid)),
        Just(("true".to_owned(), Expect::Invalid)),
        Just(("[4]".to_owned(), Expect::Invalid)),
    ]
    .boxed()
}

fn patterns(field: &'static str) -> BoxedStrategy<(String, Expect)> {
    let effect = move |p: &str| match field {
        "defer_on" => Effect::DeferOn(p.to_owned()),
        "resume_on" => Effect::ResumeOn(p.to_owned()),
        _ => Effect::CancelOn(p.to_owned()),
    };
    prop_oneof![
        "[a-z]{1,6}\\.(\\*|[a-z?]{1,4})"
            .prop_map(move |p| (format!("{p:?}"), Expect::Valid(effect(&p)))),
        ("[a-z]{1,6}\\.\\*", "[a-z.]{1,6}").prop_map(move |(a, b)| (
            format!("[{a:?}, {b:?}]"),
            Expect::Valid(effect(&format!("{a}, {b}")))
        )),
        Just(("\"\"".to_owned(), Expect::Invalid)),
        Just(("\"a b\"".to_owned(), Expect::Invalid)),
        Just(("\"a.*,,b\"".to_owned(), Expect::Invalid)),
        Just(("[]".to_owned(), Expect::Invalid)),
        Just(("[\"ok.*\", \"é\"]".to_owned(), Expect::Invalid)),
        Just(("5".to_owned(), Expect::Invalid)),
        Just(("[1, 2]".to_owned(), Expect::Invalid)),
    ]
    .boxed()
}

fn duration(field: &'static str) -> BoxedStrategy<(String, Expect)> {
    let effect = move |d: Duration| match field {
        "defer_check_interval" => Effect::CheckInterval(d),
        _ => Effect::MaxDefer(MaxDefer::After(d)),
    };
    prop_oneof![
        (1u64..5_000).prop_map(move |ms| (
            format!("\"{ms}ms\""),
            Expect::Valid(effect(Duration::from_millis(ms)))
        )),
        (1u64..100).prop_map(move |s| (
            format!("\"{s}s\""),
            Expect::Valid(effect(Duration::from_secs(s)))
        )),
        Just((
            "\"2m 30s\"".to_owned(),
            Expect::Valid(effect(Duration::from_secs(150)))
        )),
        Just(("\"0s\"".to_owned(), Expect::Invalid)),
        Just(("\"0ms\"".to_owned(), Expect::Invalid)),
        Just(("\"fast\"".to_owned(), Expect::Invalid)),
        Just(("\"-5ms\"".to_owned(), Expect::Invalid)),
        Just(("\"\"".to_owned(), Expect::Invalid)),
        Just(("50".to_owned(), Expect::Invalid)),
        Just(("\"10 parsecs\"".to_owned(), Expect::Invalid)),
    ]
    .boxed()
}

fn max_defer() -> BoxedStrategy<(String, Expect)> {
    prop_oneof![
        3 => duration("max_defer"),
        1 => Just((
            "\"never\"".to_owned(),
            Expect::Valid(Effect::MaxDefer(MaxDefer::Never))
        )),
    ]
    .boxed()
}

fn max_defer_attempts() -> BoxedStrategy<(String, Expect)> {
    prop_oneof![
        (1u32..1_000).prop_map(|n| (
            n.to_string(),
            Expect::Valid(Effect::MaxDefer(MaxDefer::Attempts(n)))
        )),
        Just(("0".to_owned(), Expect::Invalid)),
        Just(("-3".to_owned(), Expect::Invalid)),
        Just(("5000000000".to_owned(), Expect::Invalid)),
        Just(("\"200\"".to_owned(), Expect::Invalid)),
    ]
    .boxed()
}

fn sink() -> BoxedStrategy<(String, Expect)> {
    prop_oneof![
        "[a-z]{1,8}(\\.[a-z]{1,8})?".prop_map(|s| (format!("{s:?}"), Expect::Valid(Effect::None))),
        Just(("\"bad sink\"".to_owned(), Expect::Invalid)),
        Just(("\"\"".to_owned(), Expect::Invalid)),
        Just(("3".to_owned(), Expect::Invalid)),
    ]
    .boxed()
}

/// A worker section: each known field present or not, plus maybe a misspelt one.
fn section() -> impl Strategy<Value = Vec<(String, String, Expect)>> {
    let fields: Vec<(&'static str, BoxedStrategy<(String, Expect)>)> = vec![
        ("concurrency", count("concurrency")),
        ("capacity", count("capacity")),
        ("defer_on", patterns("defer_on")),
        ("resume_on", patterns("resume_on")),
        ("cancel_on", patterns("cancel_on")),
        ("defer_check_interval", duration("defer_check_interval")),
        ("max_defer", max_defer()),
        ("max_defer_attempts", max_defer_attempts()),
        ("sink", sink()),
    ];
    let present: Vec<_> = fields
        .into_iter()
        .map(|(name, values)| {
            prop::option::weighted(0.4, values)
                .prop_map(move |v| v.map(|(value, expect)| (name.to_owned(), value, expect)))
        })
        .collect();
    let unknown = prop::option::weighted(
        0.1,
        prop_oneof![
            Just("concurency"),
            Just("max_deffer"),
            Just("defer"),
            Just("Capacity")
        ],
    );
    (present, unknown).prop_map(|(present, unknown)| {
        let mut section: Vec<_> = present.into_iter().flatten().collect();
        if let Some(name) = unknown {
            section.push((name.to_owned(), "4".to_owned(), Expect::Invalid));
        }
        section
    })
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
}

fn start(text: &str) -> Result<Runtime, RegistryError> {
    Runtime::builder()
        .only([WORKER])
        .config_toml("generated.toml", text)
        .start()
}

proptest! {
    #![proptest_config(config(SECTION_CASES))]

    #[test]
    fn generated_sections_are_applied_or_rejected_naming_the_field(section in section()) {
        let mut text = format!("[workers.{WORKER:?}]\n");
        for (field, value, _) in &section {
            text.push_str(&format!("{field} = {value}\n"));
        }
        let invalid: Vec<&str> = section
            .iter()
            .filter(|(_, _, e)| *e == Expect::Invalid)
            .map(|(f, _, _)| f.as_str())
            .collect();
        let both_limits = section.iter().any(|(f, _, _)| f == "max_defer")
            && section.iter().any(|(f, _, _)| f == "max_defer_attempts");
        runtime().block_on(async {
            match start(&text) {
                Ok(runtime) => {
                    prop_assert!(invalid.is_empty() && !both_limits, "accepted:\n{}", text);
                    let info = runtime.worker(WORKER).expect("the worker runs");
                    for (_, _, expect) in &section {
                        let Expect::Valid(effect) = expect else { unreachable!() };
                        let c = &info.config;
                        match effect {
                            Effect::Concurrency(n) => prop_assert_eq!(c.concurrency, *n),
                            Effect::Capacity(n) => prop_assert_eq!(c.capacity, *n),
                            Effect::DeferOn(p) => prop_assert_eq!(c.defer_on.as_deref(), Some(p.as_str())),
                            Effect::ResumeOn(p) => prop_assert_eq!(c.resume_on.as_deref(), Some(p.as_str())),
                            Effect::CancelOn(p) => prop_assert_eq!(c.cancel_on.as_deref(), Some(p.as_str())),
                            Effect::CheckInterval(d) => prop_assert_eq!(c.defer_check_interval, *d),
                            Effect::MaxDefer(m) => prop_assert_eq!(c.max_defer, *m),
                            Effect::None => {}
                        }
                    }
                    runtime.shutdown().await;
                }
                Err(RegistryError::Config(err)) => {
                    let message = err.to_string();
                    prop_assert!(message.contains("generated.toml"), "{}", message);
                    prop_assert!(message.contains(WORKER), "{}", message);
                    let field = match &err {
                        ConfigError::InvalidValue { field, .. } => field.clone(),
                        ConfigError::UnknownField { field, .. } => field.clone(),
                        other => return Err(TestCaseError::fail(format!("{other:?} for\n{text}"))),
                    };
                    prop_assert!(message.contains(&format!("`{field}`")), "{}", message);
                    let explained = invalid.contains(&field.as_str())
                        || (both_limits && field == "max_defer");
                    prop_assert!(explained, "error names `{}`, invalid fields {:?}:\n{}\n{}", field, invalid, text, message);
                }
                Err(other) => prop_assert!(false, "unexpected error {:?} for\n{}", other, text),
            }
            Ok(())
        })?;
    }
}

proptest! {
    #![proptest_config(config(TEXT_CASES))]

    /// Arbitrary text and mangled valid files never panic: each is accepted or is an error.
    #[test]
    fn arbitrary_config_text_never_panics(
        text in prop_oneof![
            any::<String>(),
            "[\\[\\]\"=a-z_. \n0-9,{}#]{0,80}",
            (0usize..120, any::<char>()).prop_map(|(at, c)| {
                let mut valid = format!(
                    "[workers.{WORKER:?}]\nconcurrency = 8\ndefer_on = [\"a.*\", \"b\"]\nmax_defer = \"10s\"\n"
                );
                let at = (0..=at.min(valid.len())).rev().find(|&i| valid.is_char_boundary(i)).unwrap_or(0);
                valid.insert(at, c);
                valid
            }),
            Just("[workers]\n\"proptest_config.job\" = 5".to_owned()),
            Just("[workers.\"not.registered\"]\nconcurrency = 1".to_owned()),
            Just("workers = 3".to_owned()),
            Just("[other]\nx = 1".to_owned()),
        ]
    ) {
        runtime().block_on(async {
            match start(&text) {
                Ok(runtime) => {
                    runtime.shutdown().await;
                }
                Err(err) => prop_assert!(!err.to_string().is_empty()),
            }
            Ok(())
        })?;
    }
}

/// Cases of the builder-values property.
const BUILDER_CASES: u32 = 512;

fn pattern_value() -> impl Strategy<Value = Option<String>> {
    prop::option::of(prop_oneof![
        "[a-z]{1,6}\\.\\*",
        Just(String::new()),
        Just("a b".to_owned()),
        Just("a,,b".to_owned()),
        "\\PC{0,12}",
    ])
}

proptest! {
    #![proptest_config(config(BUILDER_CASES))]

    /// Builder values: `build` accepts the configuration or reports the first bad value as
    /// its own `BuildError` variant whose message names the field; never a panic.
    #[test]
    fn builder_values_are_accepted_or_rejected_naming_the_field(
        concurrency in prop_oneof![Just(0usize), 1usize..16],
        capacity in prop_oneof![Just(0usize), 1usize..1_000],
        interval_ms in prop_oneof![Just(0u64), 1u64..1_000],
        max_defer in prop_oneof![
            Just(MaxDefer::Attempts(0)),
            Just(MaxDefer::After(Duration::ZERO)),
            Just(MaxDefer::Never),
            (1u32..500).prop_map(MaxDefer::Attempts),
            (1u64..10_000).prop_map(|ms| MaxDefer::After(Duration::from_millis(ms))),
        ],
        defer_on in pattern_value(),
        resume_on in pattern_value(),
        cancel_on in pattern_value(),
    ) {
        use backpressure::{error::BuildError, Coordinator, Pattern, Sink, WorkContext};
        runtime().block_on(async {
            let mut builder = Coordinator::<u8>::builder()
                .sink(Sink::new())
                .concurrency(concurrency)
                .capacity(capacity)
                .defer_check_interval(Duration::from_millis(interval_ms))
                .max_defer(max_defer);
            builder = match &defer_on {
                Some(p) => builder.defer_on(p.clone()),
                None => builder.no_defer(),
            };
            if let Some(p) = &resume_on {
                builder = builder.resume_on(p.clone());
            }
            if let Some(p) = &cancel_on {
                builder = builder.cancel_on(p.clone());
            }
            let bad_pattern = |p: &Option<String>| p.as_deref().is_some_and(|p| Pattern::parse(p).is_err());
            // The documented order: numbers first, then the patterns.
            let expected = if concurrency == 0 {
                Some("concurrency")
            } else if capacity == 0 {
                Some("capacity")
            } else if interval_ms == 0 {
                Some("defer_check_interval")
            } else if matches!(max_defer, MaxDefer::Attempts(0)) || max_defer == MaxDefer::After(Duration::ZERO) {
                Some("max_defer")
            } else if bad_pattern(&defer_on) {
                Some("defer_on")
            } else if bad_pattern(&resume_on) {
                Some("resume_on")
            } else if bad_pattern(&cancel_on) {
                Some("cancel_on")
            } else {
                None
            };
            match (builder.build(|_: u8, _ctx: WorkContext| async {}), expected) {
                (Ok(coordinator), None) => {
                    prop_assert_eq!(coordinator.config().concurrency, concurrency);
                    coordinator.shutdown().await;
                }
                (Err(err), Some(field)) => {
                    let message = err.to_string();
                    prop_assert!(message.contains(&format!("`{field}`")), "{}", message);
                    let variant_ok = match (&err, field) {
                        (BuildError::ZeroConcurrency, "concurrency")
                        | (BuildError::ZeroCapacity, "capacity")
                        | (BuildError::ZeroCheckInterval, "defer_check_interval")
                        | (BuildError::ZeroMaxDefer, "max_defer") => true,
                        (BuildError::Pattern { field: f, .. }, _) => *f == field,
                        _ => false,
                    };
                    prop_assert!(variant_ok, "{:?} for `{}`", err, field);
                }
                (result, expected) => {
                    prop_assert!(false, "{:?}, expected an error for {:?}", result.map(drop), expected);
                }
            }
            Ok(())
        })?;
    }
}
