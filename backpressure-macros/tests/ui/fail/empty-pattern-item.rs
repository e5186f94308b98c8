use backpressure::backpressure_worker;

#[backpressure_worker(cancel_on = "shutdown.*,,maintenance")]
async fn send(item: u32) {
    let _ = item;
}

fn main() {}
