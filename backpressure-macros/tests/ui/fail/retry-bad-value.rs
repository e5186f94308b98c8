use backpressure::backpressure_worker;

#[backpressure_worker(retry(attempts = 0))]
async fn send(item: u32) {
    let _ = item;
}

fn main() {}
