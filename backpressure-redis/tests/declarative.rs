//! Declarative use: a config file's `[sinks."name".redis]` section connects the sink at start.

mod common;

use std::time::Duration;

use backpressure::{
    backpressure_worker,
    error::{ConfigError, RegistryError},
    Runtime, Sink,
};
use backpressure_redis::{connect, start_with, Config, StartError};
use common::{redis, wait_until};

/// How long a positive wait may take: generous, for a loaded machine (real time).
const WAIT: Duration = Duration::from_secs(30);

#[backpressure_worker(
    name = "declarative::mailer",
    sink = "mail",
    defer_on = "backpressure.*"
)]
async fn mailer(_item: u32) {}

fn config(url: &str, namespace: &str) -> String {
    format!("[sinks.mail.redis]\nurl = \"{url}\"\nnamespace = \"{namespace}\"\nlease = \"1s\"\n")
}

#[tokio::test]
async fn a_config_section_connects_the_sink_and_a_remote_raise_holds_the_worker() {
    let Some(server) = redis("a_config_section_connects_the_sink") else {
        return;
    };
    let builder = Runtime::builder()
        .isolated()
        .only(["declarative::mailer"])
        .config_toml("app.toml", config(&server.url(), "decl"));
    let started = start_with(builder).await.expect("start");
    assert_eq!(started.bridges.len(), 1);
    assert_eq!(started.bridges[0].0, "mail");
    let local = started.runtime.sink("mail").unwrap();

    // Another process (here: another bridged sink) raises the signal.
    let remote = Sink::new();
    let other = connect(remote.clone(), Config::new(server.url()).namespace("decl"))
        .await
        .unwrap();
    remote.raise("backpressure.smtp").unwrap();
    assert!(wait_until(&local, WAIT, |s| s.is_raised("backpressure.smtp")).await);
    let coordinator = started
        .runtime
        .coordinator::<u32>("declarative::mailer")
        .unwrap();
    coordinator.enqueue(1).await.unwrap();
    tokio::task::yield_now().await;
    assert_eq!(coordinator.stats().deferred, 1);

    remote.retract("backpressure.smtp").unwrap();
    assert!(wait_until(&local, WAIT, |s| !s.is_raised("backpressure.smtp")).await);
    started.runtime.drain_all().await;
    assert_eq!(coordinator.stats().completed, 1);
    other.shutdown().await;
}

#[tokio::test]
async fn an_unreachable_server_is_a_clear_error_naming_the_sink() {
    // A port nobody listens on (bound, then released).
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("redis://user:secret@127.0.0.1:{port}");
    let builder = Runtime::builder()
        .isolated()
        .only(["declarative::mailer"])
        .config_toml(
            "app.toml",
            config(&url, "decl") + "connect_timeout = \"300ms\"\n",
        );
    let err = start_with(builder).await.unwrap_err();
    let message = err.to_string();
    assert!(
        matches!(err, StartError::Connect { ref sink, .. } if sink == "mail"),
        "{message}"
    );
    assert!(!message.contains("secret"), "credentials leaked: {message}");
}

#[tokio::test]
async fn a_bad_field_names_the_file_sink_and_field() {
    let builder = Runtime::builder()
        .isolated()
        .only(["declarative::mailer"])
        .config_toml(
            "app.toml",
            "[sinks.mail.redis]\nurl = \"redis://h\"\nleas = \"1s\"\n",
        );
    let err = start_with(builder).await.unwrap_err();
    assert!(
        matches!(
            err,
            StartError::Config(ConfigError::InvalidSinkSection { .. })
        ),
        "{err:?}"
    );
    let message = err.to_string();
    assert!(
        message.starts_with(
            "config file `app.toml`, sink `mail`, section `redis`: unknown field `leas`"
        ),
        "{message}"
    );
}

#[tokio::test]
async fn without_this_crate_a_redis_section_is_refused_with_the_way_to_start() {
    let err = Runtime::builder()
        .isolated()
        .only(["declarative::mailer"])
        .config_toml("app.toml", config("redis://127.0.0.1:1", "decl"))
        .start()
        .unwrap_err();
    assert!(matches!(
        err,
        RegistryError::Config(ConfigError::NeedsConnector { .. })
    ));
    assert!(
        err.to_string()
            .contains("backpressure_redis::start().await"),
        "{err}"
    );
}

#[backpressure_worker(name = "declarative::limited", sink = "mail", global_concurrency = 2)]
async fn limited(_item: u32) {}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_declared_global_concurrency_builds_on_a_connected_sink_and_runs() {
    let Some(server) = redis("a_declared_global_concurrency_builds") else {
        return;
    };
    let builder = Runtime::builder()
        .isolated()
        .only(["declarative::limited"])
        // A lease of 8 s (a 2 s response timeout): with the 1 s lease of the other tests, a
        // loaded machine answered a call after its 250 ms timeout, so the items ran on the
        // outage's local share and nothing was acquired in Redis (failed 2 of 6 runs of
        // `.ci/load 3`).
        .config_toml(
            "app.toml",
            config(&server.url(), "limited").replace("lease = \"1s\"", "lease = \"8s\""),
        );
    let started = start_with(builder).await.expect("start");
    let coordinator = started
        .runtime
        .coordinator::<u32>("declarative::limited")
        .unwrap();
    coordinator.enqueue_many(0..6).await.unwrap();
    tokio::time::timeout(WAIT, coordinator.drain())
        .await
        .expect("the bridge serves the worker's permits");
    let stats = coordinator.stats();
    assert_eq!(stats.completed, 6);
    assert_eq!(stats.permits.map(|p| p.limit), Some(2));
    assert!(started.bridges[0].1.permit_stats().acquired > 0);
    started.runtime.shutdown().await;
}
