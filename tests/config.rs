//! Config-file overrides, applied to isolated runtimes so the tests stay parallel.

use std::time::Duration;

use backpressure::{
    backpressure_worker,
    error::{ConfigError, RegistryError},
    MaxDefer, Runtime,
};

#[backpressure_worker(
    name = "config::mailer",
    sink = "mail",
    concurrency = 2,
    max_defer_attempts = 5
)]
async fn mailer(item: u32) {
    let _ = item;
}

const OVERRIDES: &str = r#"
[workers."config::mailer"]
concurrency = 8
capacity = 16
defer_on = ["smtp.*", "backpressure.*"]
resume_on = "smtp.priority"
cancel_on = "smtp.down"
defer_check_interval = "10ms"
max_defer = "never"
sink = "relay"
"#;

#[tokio::test]
async fn a_config_overrides_the_attribute_by_worker_name() {
    let runtime = Runtime::builder()
        .only(["config::mailer"])
        .config_toml("overrides.toml", OVERRIDES)
        .start()
        .unwrap();
    let info = runtime.worker("config::mailer").unwrap();
    assert_eq!(info.sink, "relay");
    assert_eq!(info.config.concurrency, 8);
    assert_eq!(info.config.capacity, 16);
    assert_eq!(
        info.config.defer_on.as_deref(),
        Some("smtp.*, backpressure.*")
    );
    assert_eq!(info.config.resume_on.as_deref(), Some("smtp.priority"));
    assert_eq!(info.config.cancel_on.as_deref(), Some("smtp.down"));
    assert_eq!(info.config.defer_check_interval, Duration::from_millis(10));
    assert_eq!(info.config.max_defer, MaxDefer::Never);
    assert!(runtime.sink("relay").is_some());
    assert!(runtime.sink("mail").is_none());
}

#[tokio::test]
async fn fields_that_are_absent_keep_the_attribute_values() {
    let runtime = Runtime::builder()
        .only(["config::mailer"])
        .config_toml(
            "partial.toml",
            "[workers.\"config::mailer\"]\ncapacity = 3\n",
        )
        .start()
        .unwrap();
    let info = runtime.worker("config::mailer").unwrap();
    assert_eq!(info.sink, "mail");
    assert_eq!(info.config.concurrency, 2);
    assert_eq!(info.config.capacity, 3);
    assert_eq!(info.config.max_defer, MaxDefer::Attempts(5));
}

#[tokio::test]
async fn a_config_file_on_disk_is_read() {
    let path =
        std::env::temp_dir().join(format!("backpressure-config-{}.toml", std::process::id()));
    std::fs::write(&path, OVERRIDES).unwrap();
    let result = Runtime::builder()
        .only(["config::mailer"])
        .config_file(&path)
        .start();
    let _ = std::fs::remove_file(&path);
    let runtime = result.unwrap();
    assert_eq!(
        runtime.worker("config::mailer").unwrap().config.concurrency,
        8
    );
}

fn start_with(text: &str) -> RegistryError {
    Runtime::builder()
        .only(["config::mailer"])
        .config_toml("app.toml", text)
        .start()
        .unwrap_err()
}

#[tokio::test]
async fn errors_name_the_file_the_worker_and_the_field() {
    let err = start_with("[workers.\"config::nobody\"]\nconcurrency = 1\n");
    assert!(matches!(
        err,
        RegistryError::Config(ConfigError::UnknownWorker { .. })
    ));
    assert!(err
        .to_string()
        .starts_with("config file `app.toml` configures worker `config::nobody`, which is not registered (registered workers: "));

    let err = start_with("[workers.\"config::mailer\"]\nconcurency = 1\n");
    assert!(err.to_string().starts_with(
        "config file `app.toml`, worker `config::mailer`: unknown field `concurency`"
    ));

    let err = start_with("[workers.\"config::mailer\"]\nresume_on = \"smtp priority\"\n");
    assert!(err.to_string().starts_with(
        "config file `app.toml`, worker `config::mailer`, field `resume_on`: invalid pattern `smtp priority`"
    ));

    let err = start_with("[workers.\"config::mailer\"]\ndefer_check_interval = \"soon\"\n");
    assert!(err.to_string().starts_with(
        "config file `app.toml`, worker `config::mailer`, field `defer_check_interval`: invalid duration `soon`"
    ));

    let err = start_with("[workers.\"config::mailer\"]\nconcurrency = 0\n");
    assert_eq!(
        err.to_string(),
        "config file `app.toml`, worker `config::mailer`, field `concurrency`: must be at least 1, found 0"
    );
}

#[tokio::test]
async fn a_missing_file_is_an_error_naming_it() {
    let err = Runtime::builder()
        .only(["config::mailer"])
        .config_file("/no/such/dir/backpressure.toml")
        .start()
        .unwrap_err();
    assert!(matches!(
        err,
        RegistryError::Config(ConfigError::Read { .. })
    ));
    assert!(err
        .to_string()
        .starts_with("cannot read config file `/no/such/dir/backpressure.toml`: "));
}
