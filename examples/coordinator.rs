//! The seed's Quick Start with the programmatic API (`Coordinator::builder`): raise
//! `backpressure.downstream`, enqueue a batch, watch nothing start while it is raised, retract
//! it, and watch everything run.
//!
//! ```text
//! cargo run --example coordinator
//! ```

use std::sync::{Arc, Mutex};
use std::time::Duration;

use backpressure::{Coordinator, WorkContext};
use tokio::time::Instant;

/// A unit of work: an order to ship to a downstream service.
#[derive(Debug)]
struct WorkItem {
    order: u32,
}

/// Simulated downstream call: a few milliseconds of I/O.
async fn process(item: WorkItem, ctx: WorkContext) -> Result<(), String> {
    tokio::select! {
        () = tokio::time::sleep(Duration::from_millis(5)) => {}
        () = ctx.cancelled() => return Err(format!("order {} cancelled", item.order)),
    }
    Ok(())
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let started = Instant::now();
    let at = move || format!("{:>8.3} ms", started.elapsed().as_secs_f64() * 1e3);

    let sink = backpressure::sink("main");
    // Records when the first handler starts, to measure how fast work resumes.
    let first_start: Arc<Mutex<Option<Instant>>> = Arc::default();
    let coordinator = Coordinator::builder()
        .sink(sink.clone())
        .concurrency(4)
        .build({
            let first_start = Arc::clone(&first_start);
            move |item: WorkItem, ctx: WorkContext| {
                if let Ok(mut first) = first_start.lock() {
                    first.get_or_insert_with(Instant::now);
                }
                process(item, ctx)
            }
        })?;

    sink.raise("backpressure.downstream")?;
    println!(
        "{}  raised `backpressure.downstream`: new work defers",
        at()
    );

    let batch = (1..=20).map(|order| WorkItem { order });
    coordinator.enqueue_many(batch).await?;
    let stats = coordinator.stats();
    println!(
        "{}  enqueued 20 items: queued {}, deferred {}, active {}",
        at(),
        stats.queued,
        stats.deferred,
        stats.active
    );

    // Give the slots every chance to (wrongly) start something.
    tokio::time::sleep(Duration::from_millis(100)).await;
    let stats = coordinator.stats();
    println!(
        "{}  100 ms later: queued {}, deferred {}, active {}, completed {}  (nothing started)",
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

    coordinator.drain().await;
    let stats = coordinator.stats();
    let first = first_start
        .lock()
        .ok()
        .and_then(|first| *first)
        .ok_or("no handler ever started")?;
    println!(
        "{}  drained: completed {}, failed {}, queued {}",
        at(),
        stats.completed,
        stats.failed,
        stats.queued
    );
    println!(
        "first item started {} µs after the retract (the .NET original polls every 50,000 µs)",
        first.saturating_duration_since(retracted_at).as_micros()
    );
    Ok(())
}
