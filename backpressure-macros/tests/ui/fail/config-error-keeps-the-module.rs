//! A bad config next to a valid signature still emits the module, with its real types: calls
//! of `send::enqueue` and the rest of its API compile as usual, and a wrong call is reported
//! for what it is (an `&str` where the item is a `u32`), not lost or turned into "could not
//! find `send`".
use backpressure::backpressure_worker;

#[backpressure_worker(capacity = 0)]
async fn send(item: u32) -> Result<(), String> {
    Ok(drop(item))
}

async fn caller() -> Result<backpressure::ItemId, backpressure::error::WorkerEnqueueError<u32>> {
    send::enqueue(1).await?;
    send::try_enqueue(2)?;
    let _: Option<backpressure::Stats> = send::stats();
    let _: Option<backpressure::Coordinator<send::Item>> = send::coordinator();
    let _: Vec<u32> = send::shutdown().await;
    let _: &str = send::NAME;
    send::try_enqueue("three")
}

fn main() {
    let _future = caller();
}
