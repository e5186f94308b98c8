use backpressure::backpressure_worker;

#[backpressure_worker]
async fn send() {}

fn main() {}
