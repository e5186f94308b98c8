use backpressure::backpressure_worker;

#[backpressure_worker(defer_on = ["backpressure.*", "db slow"])]
async fn send(item: u32) {
    let _ = item;
}

fn main() {}
