use backpressure::backpressure_worker;

#[backpressure_worker(error_rate(signal = "backpressure.smtp", window = "30s", window = "10s"))]
async fn send(item: u32) {
    let _ = item;
}

fn main() {}
