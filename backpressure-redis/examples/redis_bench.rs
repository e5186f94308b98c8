//! Latency of signals shared through Redis, over loopback.
//!
//! ```text
//! cargo run --release -p backpressure-redis --example redis_bench [-- TRIALS]
//! ```
//!
//! Starts its own `redis-server` (or uses `BACKPRESSURE_REDIS_URL`), bridges two sinks A
//! and B to one namespace, and prints `name value` lines:
//!
//! * `redis_raise_to_remote_hold_p50_us` / `_p99_us`: raise in A → the signal is active in
//!   B's sink (B's coordinator gate is closed at that instant: the gate updates under the
//!   sink's lock);
//! * `redis_retract_to_remote_start_p50_us` / `_p99_us`: retract in A → B's held item
//!   starts;
//! * `redis_local_raise_ns` / `local_raise_unbridged_ns`: the median `raise` call on a
//!   bridged sink and on a plain one.
//!
//! Without `redis-server` it prints one skip line and exits 0.

use std::time::Duration;

use backpressure::{Coordinator, SignalEventKind, Sink, WorkContext};
use backpressure_redis::{connect, Config};
use futures_util::StreamExt;
use tokio::sync::mpsc;
use tokio::time::Instant;

const SIGNAL: &str = "backpressure.bench";

#[path = "support/redis_server.rs"]
mod redis_server;
use redis_server::start_server;

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[index].as_secs_f64() * 1e6
}

/// Median time of one `raise` call (then retracted, untimed), in ns.
fn local_raise_ns(sink: &Sink, name: &str, iterations: usize) -> f64 {
    let mut times = Vec::with_capacity(iterations);
    for _ in 0..iterations {
        let start = std::time::Instant::now();
        sink.raise(name).unwrap();
        times.push(start.elapsed());
        sink.retract(name).unwrap();
    }
    times.sort();
    times[times.len() / 2].as_nanos() as f64
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let trials: usize = std::env::args()
        .nth(1)
        .and_then(|t| t.parse().ok())
        .unwrap_or(300);
    let Some((url, _server)) = start_server() else {
        println!("SKIP redis_bench: no redis-server on PATH and no BACKPRESSURE_REDIS_URL (apt-get install redis-server)");
        return Ok(());
    };
    let namespace = format!("bench-{}", std::process::id());
    let config = |instance: &str| {
        Config::new(url.as_str())
            .namespace(namespace.as_str())
            .instance(instance)
    };
    let a = Sink::new();
    let b = Sink::new();
    let _bridge_a = connect(a.clone(), config("a")).await?;
    let _bridge_b = connect(b.clone(), config("b")).await?;

    let (started_tx, mut started) = mpsc::unbounded_channel::<Instant>();
    let coordinator = Coordinator::builder()
        .sink(b.clone())
        .concurrency(1)
        .defer_on("backpressure.*")
        .build(move |_: u32, _: WorkContext| {
            let started_tx = started_tx.clone();
            async move {
                let _ = started_tx.send(Instant::now());
            }
        })?;

    let mut events = b.subscribe();
    let mut hold = Vec::with_capacity(trials);
    let mut start = Vec::with_capacity(trials);
    let timeout = Duration::from_secs(5);
    for trial in 0..trials as u32 {
        let t0 = Instant::now();
        a.raise(SIGNAL)?;
        let raised_at = loop {
            let event = tokio::time::timeout(timeout, events.next())
                .await?
                .ok_or("sink closed")??;
            if &*event.name == SIGNAL && event.kind == SignalEventKind::Raised {
                break event.at;
            }
        };
        hold.push(raised_at - t0);
        coordinator.enqueue(trial).await?;
        tokio::task::yield_now().await;
        let t1 = Instant::now();
        a.retract(SIGNAL)?;
        let started_at = tokio::time::timeout(timeout, started.recv())
            .await?
            .ok_or("coordinator stopped")?;
        start.push(started_at.saturating_duration_since(t1));
        // Let B's retract event pass before the next raise.
        loop {
            let event = tokio::time::timeout(timeout, events.next())
                .await?
                .ok_or("sink closed")??;
            if &*event.name == SIGNAL && event.kind != SignalEventKind::Raised {
                break;
            }
        }
    }
    hold.sort();
    start.sort();

    let unbridged = Sink::new();
    let bridged_ns = local_raise_ns(&a, "backpressure.local", 20_000);
    let unbridged_ns = local_raise_ns(&unbridged, "backpressure.local", 20_000);

    println!("redis bench: {trials} trials over loopback ({url})");
    println!(
        "redis_raise_to_remote_hold_p50_us {:.0}",
        percentile(&hold, 0.5)
    );
    println!(
        "redis_raise_to_remote_hold_p99_us {:.0}",
        percentile(&hold, 0.99)
    );
    println!(
        "redis_retract_to_remote_start_p50_us {:.0}",
        percentile(&start, 0.5)
    );
    println!(
        "redis_retract_to_remote_start_p99_us {:.0}",
        percentile(&start, 0.99)
    );
    println!("redis_local_raise_ns {bridged_ns:.0}");
    println!("local_raise_unbridged_ns {unbridged_ns:.0}");
    Ok(())
}
