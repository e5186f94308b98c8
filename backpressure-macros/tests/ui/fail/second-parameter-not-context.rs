use backpressure::backpressure_worker;

#[backpressure_worker]
async fn send(item: u32, retries: u8) {
    let _ = (item, retries);
}

fn main() {}
