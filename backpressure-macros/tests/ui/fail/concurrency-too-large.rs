use backpressure::backpressure_worker;

#[backpressure_worker(concurrency = 1_000_000)]
async fn send(item: u32) {
    let _ = item;
}

fn main() {}
