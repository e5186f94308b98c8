use backpressure::backpressure_worker;

#[backpressure_worker]
struct Send;

fn main() {}
