use backpressure::backpressure_worker;

#[backpressure_worker(max_defer_attempts = 100, max_defer = "10s")]
async fn send(item: u32) {
    let _ = item;
}

fn main() {}
