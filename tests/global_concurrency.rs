//! A declared worker with `global_concurrency`: a config file's key sets it, and a runtime
//! that no connector will connect refuses it, naming the fix (`backpressure-redis`'s
//! `tests/declarative.rs` starts one that a connector serves).

use backpressure::error::RegistryError;
use backpressure::{backpressure_worker, Runtime};

#[backpressure_worker(name = "global::mailer", sink = "mail", global_concurrency = 4)]
async fn mailer(item: u32) {
    let _ = item;
}

#[backpressure_worker(name = "global::plain", sink = "mail")]
async fn plain(item: u32) {
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
async fn without_a_connector_the_runtime_refuses_it_naming_the_fix() {
    let err = start("global::mailer", "").unwrap_err();
    assert!(
        matches!(
            &err,
            RegistryError::GlobalConcurrencyNeedsConnector { worker, sink }
                if worker == "global::mailer" && sink == "mail"
        ),
        "{err:?}"
    );
    let message = err.to_string();
    assert!(message.contains("[sinks.mail.redis]"), "{message}");
    assert!(message.contains("backpressure_redis::start()"), "{message}");
}

#[tokio::test]
async fn a_config_file_gives_a_worker_global_concurrency_and_the_same_refusal() {
    let toml = "[workers.\"global::plain\"]\nglobal_concurrency = 2\n";
    let err = start("global::plain", toml).unwrap_err();
    assert!(
        matches!(err, RegistryError::GlobalConcurrencyNeedsConnector { .. }),
        "{err:?}"
    );
    let runtime = start("global::plain", "").unwrap();
    assert_eq!(
        runtime
            .worker("global::plain")
            .unwrap()
            .config
            .global_concurrency,
        None
    );
}

#[tokio::test]
async fn a_section_nobody_handles_is_still_refused_as_before() {
    // A `[sinks.mail.redis]` section without a connector that handles it is the config
    // file's error (it names the crate), before any worker is built.
    let toml = "[sinks.mail.redis]\nurl = \"redis://127.0.0.1:1\"\n";
    let err = start("global::mailer", toml).unwrap_err();
    assert!(matches!(err, RegistryError::Config(_)), "{err:?}");
}
