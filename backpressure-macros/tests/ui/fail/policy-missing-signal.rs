use backpressure::backpressure_worker;

#[backpressure_worker(error_rate(failure_ratio = 0.5, min_calls = 20))]
async fn send(item: u32) {
    let _ = item;
}

fn main() {}
