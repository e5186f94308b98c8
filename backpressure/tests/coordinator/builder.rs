//! Builder checks: defaults, zero values, bad patterns, no runtime.

use super::*;

#[tokio::test]
async fn builder_defaults_follow_the_seed() {
    let coordinator = Coordinator::<u32>::builder()
        .sink(Sink::new())
        .build(|_, _| async {})
        .unwrap();
    assert_eq!(coordinator.config(), &CoordinatorConfig::default());
    let config = coordinator.config();
    assert_eq!(config.concurrency, 4);
    assert_eq!(config.capacity, 200);
    assert_eq!(config.defer_on.as_deref(), Some("backpressure.*"));
    assert_eq!(config.defer_check_interval, Duration::from_millis(50));
    assert_eq!(
        config.max_defer.resolve(config.defer_check_interval),
        Some(Duration::from_secs(10))
    );
    let stats = consistent(coordinator.stats());
    assert_eq!(stats.concurrency, 4);
    assert!(stats.gate_open && !stats.paused && !stats.closed);
    assert_eq!(stats.enqueued, 0);

    // Without an explicit sink, the coordinator watches the global sink "default".
    let on_default = Coordinator::<u32>::builder()
        .build(|_, _| async {})
        .unwrap();
    assert!(on_default.sink().same_sink(&backpressure::sink("default")));
}

#[tokio::test]
async fn builder_rejects_zero_values_naming_the_option() {
    fn err(builder: backpressure::CoordinatorBuilder<u8>) -> BuildError {
        builder
            .sink(Sink::new())
            .build(|_, _| async {})
            .unwrap_err()
    }
    let cases = [
        (
            err(Coordinator::builder().concurrency(0)),
            BuildError::ZeroConcurrency,
            "`concurrency`",
        ),
        (
            err(Coordinator::builder().capacity(0)),
            BuildError::ZeroCapacity,
            "`capacity`",
        ),
        (
            err(Coordinator::builder().defer_check_interval(Duration::ZERO)),
            BuildError::ZeroCheckInterval,
            "`defer_check_interval`",
        ),
        (
            err(Coordinator::builder().max_defer_attempts(0)),
            BuildError::ZeroMaxDefer,
            "`max_defer`",
        ),
        (
            err(Coordinator::builder().max_defer(MaxDefer::After(Duration::ZERO))),
            BuildError::ZeroMaxDefer,
            "`max_defer`",
        ),
    ];
    for (got, expected, field) in cases {
        assert_eq!(got, expected);
        let message = got.to_string();
        assert!(
            message.contains(field) && message.contains('0'),
            "{message}"
        );
    }
    // The same checks apply to a whole config.
    let config = CoordinatorConfig {
        capacity: 0,
        ..CoordinatorConfig::default()
    };
    assert_eq!(
        err(Coordinator::builder().config(config)),
        BuildError::ZeroCapacity
    );
}

#[tokio::test]
async fn builder_names_the_option_holding_a_bad_pattern() {
    let build = |builder: backpressure::CoordinatorBuilder<u8>| {
        builder
            .sink(Sink::new())
            .build(|_, _| async {})
            .unwrap_err()
    };
    let cases = [
        (
            build(Coordinator::builder().defer_on("backpressure.*,,db.*")),
            "defer_on",
            PatternError::EmptyItem { index: 1 },
        ),
        (
            build(Coordinator::builder().resume_on("")),
            "resume_on",
            PatternError::Empty,
        ),
        (
            build(Coordinator::builder().cancel_on("shut down")),
            "cancel_on",
            PatternError::BadChar {
                item: "shut down".into(),
                ch: ' ',
                at: 4,
            },
        ),
    ];
    for (got, field, source) in cases {
        let message = got.to_string();
        assert!(
            message.contains(&format!("`{field}`")) && message.contains(&source.to_string()),
            "{message}"
        );
        assert_eq!(got, BuildError::Pattern { field, source });
    }
}

#[test]
fn building_outside_a_runtime_is_an_error() {
    let err = Coordinator::<u8>::builder()
        .sink(Sink::new())
        .build(|_, _| async {})
        .unwrap_err();
    assert_eq!(err, BuildError::NoRuntime);
    assert!(err.to_string().contains("tokio runtime"));
}
