use backpressure::backpressure_worker;

#[backpressure_worker(error_rate(signal = "backpressure.smtp", window = "0s"))]
async fn send(item: u32) {
    let _ = item;
}

fn main() {}
