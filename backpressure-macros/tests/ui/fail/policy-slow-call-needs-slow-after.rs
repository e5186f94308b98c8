use backpressure::backpressure_worker;

#[backpressure_worker(slow_call(signal = "backpressure.smtp"))]
async fn send(item: u32) {
    let _ = item;
}

fn main() {}
