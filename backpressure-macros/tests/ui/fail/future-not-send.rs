use std::rc::Rc;

use backpressure::backpressure_worker;

#[backpressure_worker]
async fn send(item: u32) {
    let local = Rc::new(item);
    tokio::task::yield_now().await;
    let _ = local;
}

fn main() {}
