use backpressure::backpressure_worker;

#[backpressure_worker(sink = "main sink")]
async fn send(item: u32) {
    let _ = item;
}

fn main() {}
