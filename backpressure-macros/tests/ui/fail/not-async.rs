use backpressure::backpressure_worker;

#[backpressure_worker]
fn send(item: u32) {
    let _ = item;
}

fn main() {}
