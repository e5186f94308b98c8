use backpressure::backpressure_worker;

#[backpressure_worker(retry(atempts = 5))]
async fn send(item: u32) {
    let _ = item;
}

fn main() {}
