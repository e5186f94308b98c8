use backpressure::backpressure_worker;

#[backpressure_worker(timeout = "0s")]
async fn send(item: u32) {
    let _ = item;
}

fn main() {}
