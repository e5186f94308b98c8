use backpressure::backpressure_worker;

#[backpressure_worker(error_rate(signal = "backpressure.smtp", probes = 0))]
async fn send(item: u32) {
    let _ = item;
}

fn main() {}
