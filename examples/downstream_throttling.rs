//! The seed's "Downstream Throttling" example with a simulated downstream service that raises
//! `backpressure.downstream` itself when its in-flight load passes a threshold and retracts it
//! when the load falls back.
//!
//! ```text
//! cargo run --example downstream_throttling
//! ```

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use backpressure::{Coordinator, Sink, WorkContext};

const SIGNAL: &str = "backpressure.downstream";

/// A message to deliver.
#[derive(Debug)]
struct Message {
    id: usize,
}

/// A downstream service that can handle `high_water` requests at once before it degrades.
/// It reports overload on the sink, keyed by its own name so other raisers are unaffected.
#[derive(Debug)]
struct Downstream {
    sink: Sink,
    in_flight: AtomicUsize,
    high_water: usize,
    low_water: usize,
    overloads: AtomicUsize,
    max_in_flight: AtomicUsize,
}

impl Downstream {
    async fn send(&self, message: Message) -> Result<(), backpressure::error::SignalError> {
        let load = self.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        self.max_in_flight.fetch_max(load, Ordering::SeqCst);
        if load >= self.high_water && !self.sink.is_raised(SIGNAL) {
            self.overloads.fetch_add(1, Ordering::SeqCst);
            self.sink.raise_keyed(SIGNAL, "downstream-1")?;
        }
        // Slower under load, like a real service.
        let millis = 2 + (load as u64) * 2 + (message.id as u64 % 3);
        tokio::time::sleep(Duration::from_millis(millis)).await;
        let load = self.in_flight.fetch_sub(1, Ordering::SeqCst) - 1;
        if load <= self.low_water {
            self.sink.retract_keyed(SIGNAL, "downstream-1")?;
        }
        Ok(())
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let sink = Sink::new();
    let downstream = Arc::new(Downstream {
        sink: sink.clone(),
        in_flight: AtomicUsize::new(0),
        high_water: 6,
        low_water: 2,
        overloads: AtomicUsize::new(0),
        max_in_flight: AtomicUsize::new(0),
    });

    let coordinator = Coordinator::builder()
        .sink(sink.clone())
        .concurrency(8)
        .build({
            let downstream = Arc::clone(&downstream);
            move |message: Message, _ctx: WorkContext| {
                let downstream = Arc::clone(&downstream);
                async move { downstream.send(message).await }
            }
        })?;

    for id in 0..500 {
        coordinator.enqueue(Message { id }).await?;
    }
    coordinator.drain().await;

    let stats = coordinator.stats();
    println!(
        "downstream reported overload {} times; new work deferred each time until it recovered",
        downstream.overloads.load(Ordering::SeqCst)
    );
    println!(
        "peak in-flight at the downstream: {} (8 slots; it asks for relief at {})",
        downstream.max_in_flight.load(Ordering::SeqCst),
        downstream.high_water
    );
    println!(
        "final stats: enqueued {}, completed {}, failed {}, panicked {}, queued {}, defer timeouts {}, gate re-checks {}",
        stats.enqueued,
        stats.completed,
        stats.failed,
        stats.panicked,
        stats.queued,
        stats.defer_timeouts,
        stats.gate_rechecks
    );
    assert!(stats.is_consistent());
    Ok(())
}
