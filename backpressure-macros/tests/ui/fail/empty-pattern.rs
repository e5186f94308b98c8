use backpressure::backpressure_worker;

#[backpressure_worker(defer_on = "")]
async fn send(item: u32) {
    let _ = item;
}

fn main() {}
