use backpressure::backpressure_worker;

#[backpressure_worker]
async fn send(item: u32) -> u32 {
    item
}

fn main() {}
