use backpressure::backpressure_worker;

#[backpressure_worker(rate(limit = 0, per = "1s"))]
async fn send(item: u32) {
    let _ = item;
}

fn main() {}
