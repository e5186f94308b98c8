use backpressure::backpressure_worker;

#[backpressure_worker(rate(limt = 100, per = "1s"))]
async fn send(item: u32) {
    let _ = item;
}

fn main() {}
