use backpressure::backpressure_worker;

#[backpressure_worker(concurrency = "4")]
async fn send(item: u32) {
    let _ = item;
}

fn main() {}
