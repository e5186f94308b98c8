//! The seed's Quick Start, declaratively: a worker declared with `#[backpressure_worker]`,
//! discovered by `backpressure::start()`, held back while `backpressure.downstream` is raised
//! and resumed the instant it is retracted.
//!
//! ```text
//! cargo run --example quickstart_attribute
//! ```

use std::time::{Duration, Instant};

use backpressure::backpressure_worker;

#[derive(Debug)]
struct Request {
    id: u32,
}

/// Calls the downstream service. Defers while any `backpressure.*` signal is raised on the
/// `main` sink (the seed's defaults: concurrency 4, capacity 200, 50 ms / 200 attempts).
#[backpressure_worker(sink = "main", concurrency = 4, defer_on = "backpressure.*")]
async fn call_downstream(request: Request) -> Result<(), String> {
    tokio::time::sleep(Duration::from_millis(5)).await; // the "downstream call"
    println!("  handled request {}", request.id);
    Ok(())
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let runtime = backpressure::start()?; // discovers every worker via inventory
    let sink = backpressure::sink("main");

    println!("raise backpressure.downstream");
    sink.raise("backpressure.downstream")?;
    for id in 1..=8 {
        call_downstream::enqueue(Request { id }).await?;
    }
    tokio::task::yield_now().await;
    let stats = call_downstream::stats().ok_or("not started")?;
    println!(
        "while raised: {} queued, deferred = {}, {} completed",
        stats.queued, !stats.gate_open, stats.completed
    );

    let retracted = Instant::now();
    println!("retract backpressure.downstream");
    sink.retract("backpressure.downstream")?;
    runtime.drain_all().await;
    let stats = call_downstream::stats().ok_or("not started")?;
    println!(
        "drained: {} completed in {:?} after the retract",
        stats.completed,
        retracted.elapsed()
    );
    runtime.shutdown().await;
    Ok(())
}
