use backpressure::backpressure_worker;

#[backpressure_worker]
async fn send(item: &str) {
    let _ = item;
}

fn main() {}
