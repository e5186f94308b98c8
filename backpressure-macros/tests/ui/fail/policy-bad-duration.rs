use backpressure::backpressure_worker;

#[backpressure_worker(error_rate(signal = "backpressure.smtp", open_for = "thirty seconds"))]
async fn send(item: u32) {
    let _ = item;
}

fn main() {}
