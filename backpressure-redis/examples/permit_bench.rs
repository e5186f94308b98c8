//! `global_concurrency` through Redis, over loopback.
//!
//! ```text
//! cargo run --release -p backpressure-redis --example permit_bench [-- TRIALS SECONDS]
//! ```
//!
//! Starts its own `redis-server` (or uses `BACKPRESSURE_REDIS_URL`) and prints `name value`
//! lines:
//!
//! * `redis_permit_acquire_p50_us` / `_p99_us`: an item enqueued on an idle worker whose
//!   process holds no permit (`permit_batch(1)`: each start acquires one, each end gives it
//!   back) → its handler starts: one acquire script and the grant;
//! * `redis_permit_fleet_peak` / `redis_permit_fleet_limit` / `redis_permit_fleet_items_per_s`:
//!   three bridged sinks (three bridges, each with its own connections: processes in all
//!   but the address space) share a worker of `concurrency(8)`, `global_concurrency(4)`,
//!   items of 1 ms fed without pause for SECONDS (10): the most items in flight at once
//!   across the three (counted exactly, in memory), and the items done per second.
//!
//! Without `redis-server` it prints one skip line and exits 0.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use backpressure::{Coordinator, Sink, WorkContext};
use backpressure_redis::{connect, Bridge, Config};
use tokio::sync::mpsc;
use tokio::time::Instant;

#[path = "support/redis_server.rs"]
mod redis_server;
use redis_server::start_server;

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[index].as_secs_f64() * 1e6
}

/// Enqueue → start on a process holding no permit, `trials` times.
async fn acquire_latencies(
    url: &str,
    namespace: &str,
    trials: usize,
) -> Result<Vec<Duration>, Box<dyn std::error::Error>> {
    let sink = Sink::new();
    let config = Config::new(url).namespace(namespace).permit_batch(1);
    let bridge = connect(sink.clone(), config).await?;
    let (started_tx, mut started) = mpsc::unbounded_channel::<Instant>();
    let coordinator = Coordinator::builder()
        .sink(sink.clone())
        .name("bench")
        .global_concurrency(4)
        .build(move |_: usize, _: WorkContext| {
            let _ = started_tx.send(Instant::now());
            async {}
        })?;
    let timeout = Duration::from_secs(10);
    // The first start waits out a new record's grace: not measured.
    coordinator.enqueue(0).await?;
    tokio::time::timeout(timeout, started.recv()).await?;
    let mut times = Vec::with_capacity(trials);
    for trial in 0..trials {
        released(&bridge, trial as u64 + 1).await?;
        let t0 = Instant::now();
        coordinator.enqueue(trial).await?;
        let at = tokio::time::timeout(timeout, started.recv())
            .await?
            .ok_or("stopped")?;
        times.push(at - t0);
    }
    times.sort();
    bridge.shutdown().await;
    Ok(times)
}

/// Waits until the bridge has released `n` permits (a bench's poll, every 100 µs).
async fn released(bridge: &Bridge, n: u64) -> Result<(), Box<dyn std::error::Error>> {
    let deadline = Instant::now() + Duration::from_secs(10);
    while bridge.permit_stats().released < n {
        if Instant::now() > deadline {
            return Err("a permit was not released within 10 s".into());
        }
        tokio::time::sleep(Duration::from_micros(100)).await;
    }
    Ok(())
}

/// Three bridged sinks share a limit of 4 for `seconds`: (peak in flight, items per second).
async fn fleet(
    url: &str,
    namespace: &str,
    seconds: u64,
) -> Result<(usize, f64), Box<dyn std::error::Error>> {
    let running = Arc::new(AtomicUsize::new(0));
    let peak = Arc::new(AtomicUsize::new(0));
    let done = Arc::new(AtomicUsize::new(0));
    let mut fleet = Vec::new();
    for _ in 0..3 {
        let sink = Sink::new();
        let bridge = connect(sink.clone(), Config::new(url).namespace(namespace)).await?;
        let (running, peak, done) = (running.clone(), peak.clone(), done.clone());
        let coordinator = Coordinator::builder()
            .sink(sink)
            .name("fleet")
            .concurrency(8)
            .global_concurrency(4)
            .build(move |_: u64, _: WorkContext| {
                let (running, peak, done) = (running.clone(), peak.clone(), done.clone());
                async move {
                    let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                    peak.fetch_max(now, Ordering::SeqCst);
                    tokio::time::sleep(Duration::from_millis(1)).await;
                    running.fetch_sub(1, Ordering::SeqCst);
                    done.fetch_add(1, Ordering::Relaxed);
                }
            })?;
        let producer = coordinator.clone();
        tokio::spawn(async move {
            for item in 0.. {
                if producer.enqueue(item).await.is_err() {
                    break;
                }
            }
        });
        fleet.push((coordinator, bridge));
    }
    // Past the new record's grace, then measured.
    while done.load(Ordering::Relaxed) == 0 {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let before = done.load(Ordering::Relaxed);
    tokio::time::sleep(Duration::from_secs(seconds)).await;
    let per_s = (done.load(Ordering::Relaxed) - before) as f64 / seconds as f64;
    for (coordinator, bridge) in fleet {
        coordinator.shutdown().await;
        bridge.shutdown().await;
    }
    Ok((peak.load(Ordering::SeqCst), per_s))
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let trials: usize = args.next().and_then(|t| t.parse().ok()).unwrap_or(300);
    let seconds: u64 = args.next().and_then(|t| t.parse().ok()).unwrap_or(10);
    let Some((url, _server)) = start_server() else {
        println!("SKIP permit_bench: no redis-server on PATH and no BACKPRESSURE_REDIS_URL (apt-get install redis-server)");
        return Ok(());
    };
    let namespace = format!("permit-bench-{}", std::process::id());
    let times = acquire_latencies(&url, &namespace, trials).await?;
    let (peak, per_s) = fleet(&url, &format!("{namespace}-fleet"), seconds).await?;
    println!("permit bench: {trials} acquisitions, a fleet of 3 for {seconds} s, loopback ({url})");
    println!("redis_permit_acquire_p50_us {:.0}", percentile(&times, 0.5));
    println!(
        "redis_permit_acquire_p99_us {:.0}",
        percentile(&times, 0.99)
    );
    println!("redis_permit_fleet_peak {peak}");
    println!("redis_permit_fleet_limit 4");
    println!("redis_permit_fleet_items_per_s {per_s:.0}");
    Ok(())
}
