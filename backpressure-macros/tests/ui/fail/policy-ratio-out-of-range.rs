use backpressure::backpressure_worker;

#[backpressure_worker(error_rate(signal = "backpressure.smtp", failure_ratio = 1.5))]
async fn send(item: u32) {
    let _ = item;
}

fn main() {}
