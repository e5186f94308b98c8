//! Every key at once, with a list for `defer_on` and `max_defer_attempts`.
use backpressure::backpressure_worker;

#[backpressure_worker(
    sink = "main",
    concurrency = 2,
    defer_on = ["backpressure.*", "db.?-slow"],
    resume_on = "backpressure.resume",
    cancel_on = "backpressure.cancel, shutdown.*",
    capacity = 16,
    defer_check_interval = "20ms",
    max_defer_attempts = 10,
    timeout = "30s",
    dead_letters = 100,
    global_concurrency = 3,
    name = "pass::every_key",
)]
async fn every_key(item: u32) {
    let _ = item;
}

#[backpressure_worker(max_defer = "2s")]
async fn max_defer_duration(item: String) -> Result<(), std::io::Error> {
    let _ = item;
    Ok(())
}

#[backpressure_worker(max_defer = "never")]
pub(crate) async fn max_defer_never(item: Vec<u8>) {
    let _ = item;
}

fn main() {
    assert_eq!(every_key::NAME, "pass::every_key");
    assert!(max_defer_duration::NAME.ends_with("::max_defer_duration"));
    assert!(max_defer_never::NAME.ends_with("::max_defer_never"));
    // The function is kept as written and can still be called directly.
    let _future = every_key(1);
}
