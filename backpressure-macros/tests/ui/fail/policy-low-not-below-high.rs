use backpressure::backpressure_worker;

#[backpressure_worker(watermark(signal = "backpressure.backlog", high = 0.6, low = 0.7))]
async fn send(item: u32) {
    let _ = item;
}

fn main() {}
