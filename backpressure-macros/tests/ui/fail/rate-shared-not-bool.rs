use backpressure::backpressure_worker;

#[backpressure_worker(rate(limit = 100, per = "1s", shared = "yes"))]
async fn send(item: u32) {
    let _ = item;
}

fn main() {}
