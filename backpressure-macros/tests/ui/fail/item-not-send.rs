use std::rc::Rc;

use backpressure::backpressure_worker;

#[backpressure_worker]
async fn send(item: Rc<u32>) {
    let _ = item;
}

fn main() {}
