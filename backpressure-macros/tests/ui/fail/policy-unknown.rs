use backpressure::backpressure_worker;

#[backpressure_worker(circuit_breaker(signal = "backpressure.smtp"))]
async fn send(item: u32) {
    let _ = item;
}

fn main() {}
