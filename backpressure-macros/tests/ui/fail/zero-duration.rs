use backpressure::backpressure_worker;

#[backpressure_worker(max_defer = "0s")]
async fn send(item: u32) {
    let _ = item;
}

fn main() {}
