//! Declared workers with `retry(...)`, `timeout` and `dead_letters`: the attribute's values,
//! a config file's over them, and the runtime's dead-letter and shutdown plumbing. Isolated
//! runtimes on paused time, so the tests stay parallel and the backoffs exact.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use backpressure::error::{ConfigError, RegistryError};
use backpressure::retry::Failure;
use backpressure::{backpressure_worker, Runtime, Stats, WorkContext};

/// An email; `Clone`, as a worker with `retry(...)` needs.
#[derive(Debug, Clone, PartialEq)]
struct Mail(String);

/// Whether the relay takes `"fixable"` mail yet.
static FIXED: AtomicBool = AtomicBool::new(false);

#[backpressure_worker(
    name = "retries::send",
    retry(attempts = 3, backoff = "2s", jitter = 0.0),
    dead_letters = 5
)]
async fn send(mail: Mail, ctx: WorkContext) -> Result<(), Failure<String>> {
    match (mail.0.as_str(), ctx.attempt()) {
        ("ok", 1) => Err(Failure::from("relay busy".to_owned())),
        ("ok", _) => Ok(()),
        ("fixable", _) if FIXED.load(Ordering::SeqCst) => Ok(()),
        (to, attempt) => Err(Failure::from(format!("{to}: refused on attempt {attempt}"))),
    }
}

#[backpressure_worker(name = "retries::plain")]
async fn plain(item: u32) {
    std::future::pending::<()>().await;
    let _ = item;
}

fn start(worker: &str, toml: &str) -> Result<Runtime, RegistryError> {
    Runtime::builder()
        .only([worker])
        .config_toml("app.toml", toml)
        .start()
}

/// Advances paused time in 100 ms steps until `done` holds of the worker's stats (at most
/// ten minutes of it).
async fn advance_until(runtime: &Runtime, worker: &str, done: impl Fn(&Stats) -> bool) -> Stats {
    for _ in 0..6_000 {
        let stats = runtime.worker(worker).expect("the worker").stats;
        if done(&stats) {
            return stats;
        }
        tokio::time::advance(Duration::from_millis(100)).await;
    }
    panic!("waited ten minutes (paused) for {worker}'s stats");
}

#[tokio::test(start_paused = true)]
async fn a_declared_retry_retries_dead_letters_and_requeues_through_the_runtime() {
    let runtime = start("retries::send", "").unwrap();
    let coordinator = runtime.coordinator::<Mail>("retries::send").unwrap();
    let info = runtime.worker("retries::send").unwrap();
    let retry = info.retry.expect("declared with retry(...)");
    assert_eq!(retry.max_attempts(), 3);
    assert_eq!(retry.delay_after(2), Duration::from_secs(4));
    assert_eq!(info.config.dead_letters, 5);

    coordinator.enqueue(Mail("ok".into())).await.unwrap();
    let fixable = coordinator.enqueue(Mail("fixable".into())).await.unwrap();
    let stats = advance_until(&runtime, "retries::send", |s| s.dead_lettered == 1).await;
    // "ok" once, "fixable" twice.
    assert_eq!((stats.completed, stats.retried, stats.failed), (1, 3, 1));

    let info = runtime.worker("retries::send").unwrap();
    assert_eq!((info.dead_letter_count, info.dead_letters_evicted), (1, 0));
    assert_eq!(info.dead_letters.len(), 1);
    let record = &info.dead_letters[0];
    assert_eq!((record.id, record.attempts), (fixable, 3));
    assert_eq!(record.error, "fixable: refused on attempt 3");

    FIXED.store(true, Ordering::SeqCst);
    assert_eq!(runtime.requeue_dead_letters("retries::send").unwrap(), 1);
    let stats = advance_until(&runtime, "retries::send", |s| s.completed == 2).await;
    assert_eq!(stats.dead_lettered, 1);
    assert_eq!(
        runtime.worker("retries::send").unwrap().dead_letter_count,
        0
    );
    assert!(matches!(
        runtime.requeue_dead_letters("retries::nobody"),
        Err(RegistryError::UnknownWorker { name }) if name == "retries::nobody"
    ));
    assert!(stats.is_consistent(), "{stats:?}");
}

#[tokio::test(start_paused = true)]
async fn a_config_file_tunes_the_declared_retry_key_by_key() {
    let toml = "[workers.\"retries::send\".retry]\nattempts = 5\nmax_backoff = \"10s\"\n";
    let runtime = start("retries::send", toml).unwrap();
    let spec = runtime
        .worker("retries::send")
        .unwrap()
        .retry
        .unwrap()
        .spec();
    assert_eq!(spec.attempts, Some(5)); // the file's
    assert_eq!(spec.max_backoff, Some(Duration::from_secs(10))); // the file's
    assert_eq!(spec.backoff, Some(Duration::from_secs(2))); // the attribute's
    assert_eq!(spec.jitter, Some(0.0)); // the attribute's
    assert_eq!(spec.multiplier, Some(2.0)); // the default

    // Laid over the attribute's, the file's value breaks the rule between two keys.
    let toml = "[workers.\"retries::send\".retry]\nmax_backoff = \"1s\"\n";
    let err = start("retries::send", toml).unwrap_err();
    assert!(matches!(
        &err,
        RegistryError::Config(ConfigError::InvalidRetryValue { field, .. }) if field == "max_backoff"
    ));
    assert_eq!(
        err.to_string(),
        "config file `app.toml`, worker `retries::send`, `retry`, field `max_backoff`: \
         must be at least `backoff` (2s), found 1s"
    );
}

#[tokio::test]
async fn a_config_file_cannot_add_retry_to_a_worker_declared_without_it() {
    let err = start(
        "retries::plain",
        "[workers.\"retries::plain\".retry]\nattempts = 2\n",
    )
    .unwrap_err();
    assert!(matches!(
        &err,
        RegistryError::Config(ConfigError::RetryNotDeclared { worker, .. }) if worker == "retries::plain"
    ));
    let message = err.to_string();
    assert!(message.starts_with("config file `app.toml`, worker `retries::plain`: "));
    assert!(
        message.contains(
            "add `retry(...)` to the `#[backpressure_worker]` attribute: retrying needs the \
             item type to be `Clone`"
        ),
        "{message}"
    );
}

#[tokio::test(start_paused = true)]
async fn a_config_file_sets_timeout_and_dead_letters_for_any_worker() {
    let toml = "[workers.\"retries::plain\"]\ntimeout = \"1s\"\ndead_letters = 7\n";
    let runtime = start("retries::plain", toml).unwrap();
    let info = runtime.worker("retries::plain").unwrap();
    assert_eq!(info.config.timeout, Some(Duration::from_secs(1)));
    assert_eq!(info.config.dead_letters, 7);
    assert!(info.retry.is_none());

    // The handler never returns: the file's timeout ends it.
    let coordinator = runtime.coordinator::<u32>("retries::plain").unwrap();
    coordinator.enqueue(1).await.unwrap();
    let stats = advance_until(&runtime, "retries::plain", |s| s.timed_out == 1).await;
    assert_eq!((stats.failed, stats.active), (1, 0));
}

#[tokio::test(start_paused = true)]
async fn shutdown_after_hands_back_what_is_still_waiting_for_a_retry() {
    let runtime = start("retries::send", "").unwrap();
    let coordinator = runtime.coordinator::<Mail>("retries::send").unwrap();
    coordinator.enqueue(Mail("never".into())).await.unwrap();
    advance_until(&runtime, "retries::send", |s| s.retry_waiting == 1).await;

    // The retry is due in 2 s; the grace ends first.
    let report = runtime.shutdown_after(Duration::from_millis(500)).await;
    assert_eq!(report.returned["retries::send"], 1);
    assert_eq!(
        runtime.take_returned::<Mail>("retries::send"),
        [Mail("never".into())]
    );
}
