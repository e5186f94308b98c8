use backpressure::backpressure_worker;

#[backpressure_worker(error_rate(signal = "backpressure.a"), error_rate(signal = "backpressure.b"))]
async fn send(item: u32) {
    let _ = item;
}

fn main() {}
