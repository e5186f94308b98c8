//! Declared workers with `rate(...)`: the attribute's rate, a config file's table over it (or
//! alone, for a worker without one), and the starts it lets through. Isolated runtimes on
//! paused time, so the start instants are exact.

use std::sync::Mutex;
use std::time::Duration;

use backpressure::error::{ConfigError, RegistryError};
use backpressure::limit::Rate;
use backpressure::{backpressure_worker, Runtime};
use tokio::time::Instant;

/// When each item of `rates::send` started.
static STARTS: Mutex<Vec<Instant>> = Mutex::new(Vec::new());

#[backpressure_worker(
    name = "rates::send",
    concurrency = 8,
    rate(limit = 10, per = "1s", burst = 2)
)]
async fn send(item: u32) {
    STARTS.lock().unwrap().push(Instant::now());
    let _ = item;
}

#[backpressure_worker(name = "rates::plain")]
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

fn rate(runtime: &Runtime, worker: &str) -> Option<Rate> {
    runtime.worker(worker).expect("the worker").config.rate
}

#[tokio::test(start_paused = true)]
async fn a_declared_rate_spaces_the_workers_starts() {
    let runtime = start("rates::send", "").unwrap();
    let declared = Rate::new(10, Duration::from_secs(1)).burst(2);
    assert_eq!(rate(&runtime, "rates::send"), Some(declared));
    let coordinator = runtime.coordinator::<u32>("rates::send").unwrap();
    let begin = Instant::now();
    coordinator.enqueue_many(0..5).await.unwrap();
    coordinator.drain().await;
    let starts: Vec<_> = STARTS
        .lock()
        .unwrap()
        .iter()
        .map(|at| *at - begin)
        .collect();
    let ms: Vec<_> = starts.iter().map(Duration::as_millis).collect();
    // Two at once (the burst), then one every 100 ms.
    assert_eq!(ms, [0, 0, 100, 200, 300]);
    assert_eq!(coordinator.stats().rate_limited, 3);
}

#[tokio::test(start_paused = true)]
async fn a_config_file_tunes_the_declared_rate_key_by_key() {
    let toml = "[workers.\"rates::send\".rate]\nlimit = 50\n";
    let runtime = start("rates::send", toml).unwrap();
    // The file's limit, the attribute's per and burst.
    let tuned = Rate::new(50, Duration::from_secs(1)).burst(2);
    assert_eq!(rate(&runtime, "rates::send"), Some(tuned));
}

#[tokio::test(start_paused = true)]
async fn a_config_file_may_add_a_rate_to_any_worker_if_it_gives_limit_and_per() {
    assert_eq!(
        rate(&start("rates::plain", "").unwrap(), "rates::plain"),
        None
    );
    let toml = "[workers.\"rates::plain\".rate]\nlimit = 5\nper = \"1m\"\n";
    let runtime = start("rates::plain", toml).unwrap();
    let added = Rate::new(5, Duration::from_secs(60));
    assert_eq!(rate(&runtime, "rates::plain"), Some(added));

    let toml = "[workers.\"rates::plain\".rate]\nlimit = 5\n";
    let Err(RegistryError::Config(err)) = start("rates::plain", toml) else {
        panic!("a rate without `per`");
    };
    assert!(matches!(&err, ConfigError::InvalidRateValue { field, .. } if field == "per"));
    assert_eq!(
        err.to_string(),
        "config file `app.toml`, worker `rates::plain`, `rate`, field `per`: \
         `per` is required, such as `per = \"1s\"`"
    );
    let toml = "[workers.\"rates::send\".rate]\nper = \"1ns\"\n";
    let Err(RegistryError::Config(err)) = start("rates::send", toml) else {
        panic!("10 starts in a nanosecond");
    };
    assert_eq!(
        err.to_string(),
        "config file `app.toml`, worker `rates::send`, `rate`, field `per`: must be at least \
         one nanosecond times `limit` (10ns), found 1ns"
    );
}
