//! A declared worker with a shared rate (`rate(..., shared = true)`): the attribute's flag, a
//! config file's `shared` key, and a runtime that no connector will connect refusing it,
//! naming the fix (`backpressure-redis`'s tests start one that a connector serves).

use std::time::Duration;

use backpressure::error::RegistryError;
use backpressure::limit::Rate;
use backpressure::{backpressure_worker, Runtime};

#[backpressure_worker(
    name = "shared_rates::relay",
    sink = "relay",
    rate(limit = 50, per = "1s", shared = true)
)]
async fn relay(item: u32) {
    let _ = item;
}

#[backpressure_worker(
    name = "shared_rates::local",
    sink = "relay",
    rate(limit = 50, per = "1s")
)]
async fn local(item: u32) {
    let _ = item;
}

fn start(worker: &str, toml: &str) -> Result<Runtime, RegistryError> {
    Runtime::builder()
        .only([worker])
        .isolated()
        .config_toml("app.toml", toml)
        .start()
}

#[tokio::test]
async fn without_a_connector_the_runtime_refuses_a_shared_rate_naming_the_fix() {
    let err = start("shared_rates::relay", "").unwrap_err();
    assert!(
        matches!(
            &err,
            RegistryError::SharedRateNeedsConnector { worker, sink }
                if worker == "shared_rates::relay" && sink == "relay"
        ),
        "{err:?}"
    );
    let message = err.to_string();
    assert!(message.contains("[sinks.relay.redis]"), "{message}");
    assert!(message.contains("shared = true"), "{message}");
}

#[tokio::test]
async fn a_config_file_can_share_or_unshare_a_declared_rate() {
    let local = start("shared_rates::local", "").unwrap();
    let declared = local.worker("shared_rates::local").unwrap().config.rate;
    assert_eq!(declared, Some(Rate::new(50, Duration::from_secs(1))));
    drop(local);

    let shared = "[workers.\"shared_rates::local\".rate]\nshared = true\n";
    let err = start("shared_rates::local", shared).unwrap_err();
    assert!(
        matches!(err, RegistryError::SharedRateNeedsConnector { .. }),
        "{err:?}"
    );
    let unshared = "[workers.\"shared_rates::relay\".rate]\nshared = false\n";
    let runtime = start("shared_rates::relay", unshared).unwrap();
    let rate = runtime.worker("shared_rates::relay").unwrap().config.rate;
    assert_eq!(rate, Some(Rate::new(50, Duration::from_secs(1))));
}

#[tokio::test]
async fn a_shared_key_that_is_not_a_flag_is_refused_saying_what_is_allowed() {
    let junk = "[workers.\"shared_rates::local\".rate]\nshared = \"yes\"\n";
    let message = start("shared_rates::local", junk).unwrap_err().to_string();
    assert!(message.contains("shared"), "{message}");
    assert!(message.contains("bool"), "{message}");
}
