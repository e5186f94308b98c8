//! Health policies through the attribute and a config file: the attribute's policies reach
//! the worker's coordinator, a config section overrides fields of the policy of its kind or
//! adds one, and a broken rule names the file, worker, policy and field.

use backpressure::{
    backpressure_worker,
    error::{ConfigError, RegistryError},
    Runtime,
};

#[backpressure_worker(
    name = "policy_config::mailer",
    sink = "mail",
    defer_on = "backpressure.*",
    error_rate(
        signal = "backpressure.smtp",
        failure_ratio = 0.5,
        min_calls = 20,
        window = "30s"
    ),
    adaptive(signal = "backpressure.smtp.level", max = 16)
)]
async fn mailer(item: u32) {
    let _ = item;
}

fn start(config: &str) -> Result<Runtime, RegistryError> {
    Runtime::builder()
        .isolated()
        .only(["policy_config::mailer"])
        .config_toml("policies.toml", config)
        .start()
}

fn policies(runtime: &Runtime) -> Vec<(&'static str, String)> {
    let info = runtime.worker("policy_config::mailer").unwrap();
    info.policies
        .iter()
        .map(|p| (p.policy, p.signal.clone()))
        .collect()
}

#[tokio::test]
async fn the_attribute_policies_reach_the_coordinator() {
    let runtime = start("").unwrap();
    assert_eq!(
        policies(&runtime),
        [
            ("error_rate", "backpressure.smtp".to_owned()),
            ("adaptive", "backpressure.smtp.level".to_owned()),
        ]
    );
}

#[tokio::test]
async fn a_config_section_overrides_a_policy_or_adds_one() {
    let runtime = start(
        r#"
        [workers."policy_config::mailer".error_rate]
        signal = "backpressure.relay"
        min_calls = 10

        [workers."policy_config::mailer".watermark]
        signal = "backpressure.mail.backlog"
        high = 0.9
        "#,
    )
    .unwrap();
    assert_eq!(
        policies(&runtime),
        [
            ("error_rate", "backpressure.relay".to_owned()),
            ("adaptive", "backpressure.smtp.level".to_owned()),
            ("watermark", "backpressure.mail.backlog".to_owned()),
        ]
    );
}

fn error(config: &str) -> String {
    let err = start(config).unwrap_err();
    assert!(matches!(err, RegistryError::Config(_)), "{err}");
    err.to_string()
}

#[tokio::test]
async fn errors_name_the_file_the_worker_the_policy_and_the_field() {
    let section = "[workers.\"policy_config::mailer\".error_rate]";
    assert_eq!(
        error(&format!("{section}\nfailure_ratio = 1.5\n")),
        "config file `policies.toml`, worker `policy_config::mailer`, policy `error_rate`, \
         field `failure_ratio`: must be a number in (0, 1], found 1.5"
    );
    assert_eq!(
        error(&format!("{section}\nmin_call = 3\n")),
        "config file `policies.toml`, worker `policy_config::mailer`, policy `error_rate`: \
         unknown field `min_call` (valid fields: `signal`, `window`, `min_calls`, \
         `failure_ratio`, `consecutive_failures`, `ttl`, `open_for`, `max_open_for`, \
         `jitter`, `probes`, `probe_timeout`)"
    );
    assert_eq!(
        error(&format!("{section}\nwindow = \"0s\"\n")),
        "config file `policies.toml`, worker `policy_config::mailer`, policy `error_rate`, \
         field `window`: must be longer than zero, found `0s`"
    );
    // Only the merge can tell: the attribute gave `open_for` = default 30 s.
    assert_eq!(
        error(&format!("{section}\nmax_open_for = \"10s\"\n")),
        "config file `policies.toml`, worker `policy_config::mailer`, policy `error_rate`, \
         field `max_open_for`: must be at least `open_for` (30s), found 10s"
    );
    // A new policy must bring what it needs.
    assert_eq!(
        error("[workers.\"policy_config::mailer\".slow_call]\nsignal = \"backpressure.slow\"\n"),
        "config file `policies.toml`, worker `policy_config::mailer`, policy `slow_call`, \
         field `slow_after`: `slow_call` needs `slow_after`, such as `slow_after = \"2s\"`"
    );
    let err = start("[workers.\"policy_config::mailer\"]\nerror_rate = 3\n").unwrap_err();
    assert!(
        matches!(&err, RegistryError::Config(ConfigError::InvalidValue { field, .. }) if field == "error_rate"),
        "{err}"
    );
}

#[backpressure_worker(
    name = "policy_config::relay",
    sink = "relay",
    defer_on = "backpressure.relay",
    max_defer = "never",
    error_rate(
        signal = "backpressure.relay",
        consecutive_failures = 1,
        open_for = "60s"
    )
)]
async fn relay(item: u32) -> Result<(), String> {
    Err(format!("relay refused {item}"))
}

/// `Runtime::shutdown` keeps each coordinator (for `take_returned`), yet the verdicts of its
/// workers end when it returns: a closed owner holds nobody.
#[tokio::test(start_paused = true)]
async fn a_runtime_shutdown_retracts_its_workers_verdicts() {
    let runtime = Runtime::builder()
        .isolated()
        .only(["policy_config::relay"])
        .start()
        .unwrap();
    let sink = runtime.sink("relay").unwrap();
    let relay = runtime.coordinator::<u32>("policy_config::relay").unwrap();
    relay.enqueue(1).await.unwrap();
    relay.enqueue(2).await.unwrap();
    for _ in 0..64 {
        tokio::task::yield_now().await;
    }
    assert!(sink.is_raised("backpressure.relay"));

    let report = runtime.shutdown().await;
    assert_eq!(
        report.total(),
        1,
        "the second call was held, then handed back"
    );
    assert!(
        !sink.is_raised("backpressure.relay"),
        "{:?}",
        sink.snapshot()
    );
    tokio::time::advance(std::time::Duration::from_secs(120)).await;
    for _ in 0..64 {
        tokio::task::yield_now().await;
    }
    assert!(
        !sink.is_raised("backpressure.relay"),
        "{:?}",
        sink.snapshot()
    );
    assert_eq!(runtime.take_returned::<u32>("policy_config::relay"), [2]);
}

#[tokio::test]
async fn a_breaker_or_adaptive_signal_outside_defer_on_is_an_error() {
    let section = "[workers.\"policy_config::mailer\".error_rate]";
    // Narrowing `defer_on` away from the breaker's and the adaptive signal is the same
    // mistake as in the attribute (the first policy is named).
    let err = error("[workers.\"policy_config::mailer\"]\ndefer_on = \"db.*\"\n");
    assert!(
        err.starts_with(
            "config file `policies.toml`, worker `policy_config::mailer`, policy `error_rate`, \
             field `signal`: the `error_rate` signal `backpressure.smtp` is not matched"
        ),
        "{err}"
    );
    // So is moving a breaker's signal outside `defer_on`.
    let err = error(&format!("{section}\nsignal = \"relay.smtp\"\n"));
    assert!(
        err.starts_with(
            "config file `policies.toml`, worker `policy_config::mailer`, policy `error_rate`, \
             field `signal`: the `error_rate` signal `relay.smtp` is not matched by this \
             worker's `defer_on` (`backpressure.*`), so while the breaker is open this worker \
             would keep sending into the failing downstream"
        ),
        "{err}"
    );
    let err = error(
        "[workers.\"policy_config::mailer\".slow_call]\n\
         signal = \"relay.slow\"\nslow_after = \"2s\"\n",
    );
    assert!(
        err.contains("policy `slow_call`, field `signal`: the `slow_call` signal `relay.slow`"),
        "{err}"
    );
}
