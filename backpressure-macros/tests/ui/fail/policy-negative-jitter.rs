use backpressure::backpressure_worker;

#[backpressure_worker(error_rate(signal = "backpressure.smtp", jitter = -0.1))]
async fn send(item: u32) {
    let _ = item;
}

fn main() {}
