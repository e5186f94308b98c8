use backpressure::backpressure_worker;

#[backpressure_worker(adaptive(signal = "backpressure.smtp.level"))]
async fn send(item: u32) {
    let _ = item;
}

fn main() {}
