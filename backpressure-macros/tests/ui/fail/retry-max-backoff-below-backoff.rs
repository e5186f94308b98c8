use backpressure::backpressure_worker;

#[backpressure_worker(retry(backoff = "10s", max_backoff = "5s"))]
async fn send(item: u32) {
    let _ = item;
}

fn main() {}
