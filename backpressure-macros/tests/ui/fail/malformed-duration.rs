use backpressure::backpressure_worker;

#[backpressure_worker(defer_check_interval = "50 parsecs")]
async fn send(item: u32) {
    let _ = item;
}

fn main() {}
