use backpressure::backpressure_worker;

// The owner would keep sending into the downstream its breaker found failing.
#[backpressure_worker(defer_on = "db.*", error_rate(signal = "backpressure.smtp"))]
async fn send(item: u32) {
    let _ = item;
}

#[backpressure_worker(
    defer_on = "backpressure.smtp",
    slow_call(signal = "backpressure.smtp.slow", slow_after = "2s")
)]
async fn send_slowly(item: u32) {
    let _ = item;
}

fn main() {}
