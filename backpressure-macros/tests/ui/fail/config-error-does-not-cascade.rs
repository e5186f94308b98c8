//! A bad config yields exactly one error: the function is still emitted, so code that calls it
//! (and everything else in the crate) compiles as usual.
use backpressure::backpressure_worker;

#[backpressure_worker(concurrency = 0)]
async fn send(item: u32) -> Result<(), String> {
    Ok(drop(item))
}

fn main() {
    let _future = send(1);
}
