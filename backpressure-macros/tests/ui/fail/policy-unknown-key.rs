use backpressure::backpressure_worker;

#[backpressure_worker(error_rate(signal = "backpressure.smtp", min_call = 20))]
async fn send(item: u32) {
    let _ = item;
}

fn main() {}
