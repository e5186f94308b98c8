use backpressure::backpressure_worker;

#[backpressure_worker(error_rate(signal = "backpressure.smtp", open_for = "1m", max_open_for = "30s"))]
async fn send(item: u32) {
    let _ = item;
}

fn main() {}
