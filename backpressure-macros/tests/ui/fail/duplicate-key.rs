use backpressure::backpressure_worker;

#[backpressure_worker(sink = "main", concurrency = 2, sink = "other")]
async fn send(item: u32) {
    let _ = item;
}

fn main() {}
