//! The seed's Quick Start, declaratively: a worker declared with `#[backpressure_worker]`,
//! discovered by `backpressure::start()`, held back while `backpressure.downstream` is raised
//! and resumed the instant it is retracted. Prints a timeline and how long after the retract
//! the first item started.
//!
//! ```text
//! cargo run --example quickstart
//! ```

use std::sync::OnceLock;
use std::time::Duration;

use backpressure::{backpressure_worker, WorkContext};
use tokio::time::Instant;

/// A unit of work: an order to send to a downstream service.
#[derive(Debug)]
struct WorkItem {
    order: u32,
}

/// When the first handler started, to measure how fast work resumes after the retract.
static FIRST_START: OnceLock<Instant> = OnceLock::new();

/// Sends one order downstream. Defers while any `backpressure.*` signal is raised on the
/// `main` sink; the other settings are the seed's defaults (capacity 200, re-check 50 ms,
/// start anyway after 200 re-checks).
#[backpressure_worker(sink = "main", concurrency = 4, defer_on = "backpressure.*")]
async fn process(item: WorkItem, ctx: WorkContext) -> Result<(), String> {
    FIRST_START.get_or_init(Instant::now);
    tokio::select! {
        // The "downstream call".
        () = tokio::time::sleep(Duration::from_millis(5)) => Ok(()),
        () = ctx.cancelled() => Err(format!("order {} cancelled by shutdown", item.order)),
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let t0 = Instant::now();
    let at = move || format!("{:>8.3} ms", t0.elapsed().as_secs_f64() * 1e3);

    let runtime = backpressure::start()?; // discovers every worker via inventory
    let sink = backpressure::sink("main");

    sink.raise("backpressure.downstream")?;
    println!(
        "{}  raised `backpressure.downstream`: new work defers",
        at()
    );

    for order in 1..=20 {
        process::enqueue(WorkItem { order }).await?;
    }
    let stats = process::stats().ok_or("worker not started")?;
    println!(
        "{}  enqueued 20 items: queued {}, deferred {}, active {}",
        at(),
        stats.queued,
        stats.deferred,
        stats.active
    );

    // Give the slots every chance to (wrongly) start something.
    tokio::time::sleep(Duration::from_millis(100)).await;
    let stats = process::stats().ok_or("worker not started")?;
    println!(
        "{}  100 ms later: queued {}, deferred {}, active {}, completed {} (nothing started)",
        at(),
        stats.queued,
        stats.deferred,
        stats.active,
        stats.completed
    );

    let retracted_at = Instant::now();
    sink.retract("backpressure.downstream")?;
    println!(
        "{}  retracted `backpressure.downstream`: work resumes",
        at()
    );

    runtime.drain_all().await;
    let stats = process::stats().ok_or("worker not started")?;
    println!(
        "{}  drained: completed {}, failed {}, queued {}",
        at(),
        stats.completed,
        stats.failed,
        stats.queued
    );
    let first = FIRST_START.get().ok_or("no handler ever started")?;
    println!(
        "first item started {} µs after the retract (the .NET original polls every 50,000 µs)",
        first.saturating_duration_since(retracted_at).as_micros()
    );
    runtime.shutdown().await;
    Ok(())
}
