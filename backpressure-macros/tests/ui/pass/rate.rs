//! `rate(...)` with every key, and with `burst` left at its default, beside `retry(...)`.
use backpressure::backpressure_worker;

#[backpressure_worker(rate(limit = 100, per = "1s", burst = 10))]
async fn send(item: u32) {
    let _ = item;
}

#[backpressure_worker(concurrency = 8, rate(limit = 5, per = "1m"), retry(attempts = 2))]
async fn evenly(item: u32) {
    let _ = item;
}

fn main() {
    assert!(send::NAME.ends_with("::send"));
    assert!(evenly::NAME.ends_with("::evenly"));
}
