//! `retry(...)` with every key, `timeout` and `dead_letters`, on a `Clone` item; and the
//! defaults, `retry()`.
use backpressure::backpressure_worker;
use backpressure::retry::Failure;

#[derive(Clone)]
struct Mail {
    to: String,
}

#[backpressure_worker(
    retry(
        attempts = 5,
        backoff = "1s",
        max_backoff = "60s",
        multiplier = 2.0,
        jitter = 0.1,
        jitter_seed = 7,
    ),
    timeout = "30s",
    dead_letters = 100,
)]
async fn send(mail: Mail) -> Result<(), Failure<String>> {
    let _ = mail.to;
    Ok(())
}

#[backpressure_worker(retry())]
async fn defaults(item: u32) {
    let _ = item;
}

fn main() {
    assert!(send::NAME.ends_with("::send"));
    assert!(defaults::NAME.ends_with("::defaults"));
}
