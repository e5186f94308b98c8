//! `rate(..., shared = true)` through Redis, over loopback.
//!
//! ```text
//! cargo run --release -p backpressure-redis --example rate_bench [-- SECONDS]
//! ```
//!
//! Starts its own `redis-server` (or uses `BACKPRESSURE_REDIS_URL`) and prints `name value`
//! lines:
//!
//! * `redis_global_rate_error_pct` (1,000/s) and `redis_global_rate_error_pct_100` (100/s):
//!   three child OS processes (this binary again) share a worker's rate, all starting at
//!   rest together and fed without pause for SECONDS (10); each start is counted in Redis
//!   (`INCR`). The error is `|starts - expected| / expected * 100` with
//!   `expected = limit * seconds + burst_eff` (the GCRA's allowance from rest);
//! * `redis_rate_one_process_items_per_s` / `redis_rate_one_process_ratio`: one process under
//!   a shared rate of 100,000/s with a no-op handler, over SECONDS: the items started per
//!   second and their ratio to the limit (1.0: the limit, not Redis, is the bottleneck);
//! * `redis_rate_calls_per_1000_starts`: rate-script calls per 1,000 starts in that run.
//!
//! Without `redis-server` it prints one skip line and exits 0.

use std::process::Stdio;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use backpressure::limit::Rate;
use backpressure::{Coordinator, Sink, WorkContext};
use backpressure_redis::{connect, Bridge, Config};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::time::Instant;

type Res<T> = Result<T, Box<dyn std::error::Error>>;

#[path = "support/redis_server.rs"]
mod redis_server;
use redis_server::start_server;

fn shared(limit: u32) -> Rate {
    Rate::new(limit, Duration::from_secs(1)).shared()
}

/// The GCRA's burst as the bridge runs it: `max(burst, batch + 1)`, `batch` 5 ms' worth.
fn burst_eff(limit: u32) -> f64 {
    (f64::from(limit) * 0.005).ceil().clamp(1.0, 1_000.0) + 1.0
}

async fn bridged(url: &str, namespace: &str) -> Res<(Sink, Bridge)> {
    let sink = Sink::new();
    let bridge = connect(sink.clone(), Config::new(url).namespace(namespace)).await?;
    Ok((sink, bridge))
}

/// The child: a worker of `shared(limit)` counting each start under `key`; prints `READY`,
/// enqueues its items on the line `GO`, and exits when stdin closes.
async fn child(url: String, namespace: String, limit: u32, key: String) -> Res<()> {
    let (sink, bridge) = bridged(&url, &namespace).await?;
    let conn = redis::Client::open(url.as_str())?
        .get_multiplexed_async_connection()
        .await?;
    let coordinator = Coordinator::builder()
        .sink(sink)
        .name("relay")
        .concurrency(8)
        .capacity(1_000_000)
        .rate(shared(limit))
        .build(move |_: u32, _: WorkContext| {
            let (mut conn, key) = (conn.clone(), key.clone());
            async move {
                let _: redis::RedisResult<u64> =
                    redis::cmd("INCR").arg(&key).query_async(&mut conn).await;
            }
        })?;
    println!("READY");
    let mut lines = BufReader::new(tokio::io::stdin()).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        if line == "GO" {
            coordinator
                .enqueue_many(0..limit.saturating_mul(100))
                .await?;
        }
    }
    coordinator.shutdown().await;
    bridge.shutdown().await;
    Ok(())
}

/// Three children share `shared(limit)` for `seconds`: the fleet's error in percent.
async fn fleet_error(url: &str, namespace: &str, limit: u32, seconds: u64) -> Res<f64> {
    let key = format!("bench:{namespace}:started");
    let exe = std::env::current_exe()?;
    let mut children = Vec::new();
    for _ in 0..3 {
        let mut child = tokio::process::Command::new(&exe)
            .args(["--child", url, namespace, &limit.to_string(), &key])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()?;
        let mut lines = BufReader::new(child.stdout.take().ok_or("no stdout")?).lines();
        while lines.next_line().await?.ok_or("child exited")? != "READY" {}
        children.push(child);
    }
    let started = Instant::now();
    for child in &mut children {
        child
            .stdin
            .as_mut()
            .ok_or("no stdin")?
            .write_all(b"GO\n")
            .await?;
    }
    tokio::time::sleep(Duration::from_secs(seconds)).await;
    let mut conn = redis::Client::open(url)?
        .get_multiplexed_async_connection()
        .await?;
    let starts: Option<u64> = redis::cmd("GET").arg(&key).query_async(&mut conn).await?;
    let elapsed = started.elapsed().as_secs_f64();
    let expected = f64::from(limit) * elapsed + burst_eff(limit);
    let starts = starts.unwrap_or(0) as f64;
    drop(children);
    Ok((starts - expected).abs() / expected * 100.0)
}

/// One process under `shared(limit)` with a no-op handler for `seconds`: items started per
/// second, and rate calls per 1,000 starts.
async fn one_process(url: &str, namespace: &str, limit: u32, seconds: u64) -> Res<(f64, f64)> {
    let (sink, bridge) = bridged(url, namespace).await?;
    let count = Arc::new(AtomicU64::new(0));
    let counted = Arc::clone(&count);
    let items = u32::try_from(u64::from(limit) * (seconds + 2)).unwrap_or(u32::MAX);
    let coordinator = Coordinator::builder()
        .sink(sink)
        .name("fast")
        .concurrency(8)
        .capacity(items as usize)
        .rate(shared(limit))
        .build(move |_: u32, _: WorkContext| {
            counted.fetch_add(1, Ordering::Relaxed);
            std::future::ready(())
        })?;
    coordinator.enqueue_many(0..items).await?;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (before, calls_before, start) = (
        count.load(Ordering::Relaxed),
        bridge.rate_stats().calls,
        Instant::now(),
    );
    tokio::time::sleep(Duration::from_secs(seconds)).await;
    let starts = count.load(Ordering::Relaxed) - before;
    let calls = bridge.rate_stats().calls - calls_before;
    let per_s = starts as f64 / start.elapsed().as_secs_f64();
    coordinator.shutdown().await;
    bridge.shutdown().await;
    Ok((per_s, calls as f64 * 1_000.0 / starts.max(1) as f64))
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Res<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if let [flag, url, namespace, limit, key] = args.as_slice() {
        if flag == "--child" {
            let (url, namespace, key) = (url.clone(), namespace.clone(), key.clone());
            return child(url, namespace, limit.parse()?, key).await;
        }
    }
    let seconds: u64 = args.first().and_then(|s| s.parse().ok()).unwrap_or(10);
    let Some((url, _server)) = start_server() else {
        println!("SKIP rate_bench: no redis-server on PATH and no BACKPRESSURE_REDIS_URL (apt-get install redis-server)");
        return Ok(());
    };
    let ns = format!("rate-bench-{}", std::process::id());
    let error_1000 = fleet_error(&url, &format!("{ns}-1000"), 1_000, seconds).await?;
    let error_100 = fleet_error(&url, &format!("{ns}-100"), 100, seconds).await?;
    let (per_s, calls) = one_process(&url, &format!("{ns}-one"), 100_000, seconds).await?;
    println!("rate bench: 3 processes for {seconds} s at 1,000/s and 100/s, one at 100,000/s, loopback ({url})");
    println!("redis_global_rate_error_pct {error_1000:.2}");
    println!("redis_global_rate_error_pct_100 {error_100:.2}");
    println!("redis_rate_one_process_items_per_s {per_s:.0}");
    println!("redis_rate_one_process_ratio {:.3}", per_s / 100_000.0);
    println!("redis_rate_calls_per_1000_starts {calls:.2}");
    Ok(())
}
