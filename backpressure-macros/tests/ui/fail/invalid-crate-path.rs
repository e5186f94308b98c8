//! `crate` takes a path of identifiers; the error underlines the literal.
use backpressure::backpressure_worker;

#[backpressure_worker(crate = "my crate::backpressure")]
async fn send(item: u32) {
    let _ = item;
}

fn main() {}
