use backpressure::backpressure_worker;

#[backpressure_worker(eror_rate(signal = "backpressure.smtp"))]
async fn send(item: u32) {
    let _ = item;
}

fn main() {}
