//! What the shared-rate tests share: a worker of `rate(limit, 1 s, shared)` whose starts
//! count themselves (in this process, or in Redis so that a fleet of OS processes is
//! counted in one place), the GCRA's bound over a window, and a child process running such
//! a worker.
#![allow(dead_code, unreachable_pub)]

use std::process::Stdio;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use backpressure::limit::Rate;
use backpressure::{Coordinator, Sink, WorkContext};
use backpressure_redis::{connect, Bridge, Config, LimitsOnDisconnect};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::time::Instant;

/// The lease of every test bridge (its calls time out after a quarter of it: 200 ms).
pub const LEASE: Duration = Duration::from_millis(800);

/// The worker's fleet-wide rate: `limit` starts a second, burst 1.
pub fn fleet_rate(limit: u32) -> Rate {
    Rate::new(limit, Duration::from_secs(1)).shared()
}

/// A rate's batch as the bridge computes it: `max(1, ceil(limit * 5 ms / per))`, at most
/// 1,000 (the README's formula).
pub fn batch(rate: &Rate) -> f64 {
    let per = rate.per.as_secs_f64();
    (f64::from(rate.limit) * 0.005 / per)
        .ceil()
        .clamp(1.0, 1_000.0)
}

/// The most starts `procs` processes may make over `elapsed` under `rate`: the GCRA's
/// `limit * elapsed + burst_eff` (`burst_eff = max(burst, batch + 1)`), plus each process's
/// last batch.
pub fn bound(rate: &Rate, elapsed: Duration, procs: usize) -> f64 {
    let per = rate.per.as_secs_f64();
    let batch = batch(rate);
    let burst = (batch + 1.0).max(f64::from(rate.burst));
    f64::from(rate.limit) * elapsed.as_secs_f64() / per + burst + procs as f64 * batch
}

/// Where a worker's starts are counted.
#[derive(Clone)]
pub enum Counter {
    /// In this process.
    Local(Arc<AtomicU64>),
    /// `INCR` of this key in Redis.
    Redis(redis::aio::MultiplexedConnection, String),
}

impl Counter {
    pub fn local() -> (Self, Arc<AtomicU64>) {
        let n = Arc::new(AtomicU64::new(0));
        (Self::Local(Arc::clone(&n)), n)
    }

    async fn count(&self) {
        match self {
            Self::Local(n) => {
                n.fetch_add(1, Ordering::SeqCst);
            }
            Self::Redis(conn, key) => {
                let mut conn = conn.clone();
                let _: u64 = redis::cmd("INCR")
                    .arg(key)
                    .query_async(&mut conn)
                    .await
                    .unwrap();
            }
        }
    }
}

/// A worker `relay` of concurrency 8 and `rate` on `sink`, whose starts are counted.
pub fn worker(sink: &Sink, rate: Rate, counter: Counter) -> Coordinator<u32> {
    Coordinator::builder()
        .sink(sink.clone())
        .name("relay")
        .concurrency(8)
        .capacity(1_000_000)
        .rate(rate)
        .build(move |_: u32, _: WorkContext| {
            let counter = counter.clone();
            async move { counter.count().await }
        })
        .unwrap()
}

/// A bridged sink in namespace `ns` with the test lease, under `policy`.
pub async fn bridged(url: &str, policy: LimitsOnDisconnect) -> (Sink, Bridge) {
    let sink = Sink::new();
    let config = Config::new(url)
        .namespace("ns")
        .lease(LEASE)
        .limits_on_disconnect(policy)
        .reconnect_max_delay(Duration::from_millis(100));
    let bridge = connect(sink.clone(), config).await.expect("connect");
    (sink, bridge)
}

/// Starts counted over `window` (real time: the measurement itself): the count and the
/// exact time it took.
pub async fn over(window: Duration, count: impl Fn() -> u64) -> (u64, Duration) {
    let (before, start) = (count(), Instant::now());
    tokio::time::sleep(window).await;
    let (after, elapsed) = (count(), start.elapsed());
    (after - before, elapsed)
}

/// Reads a counter key (0 if unset).
pub fn read(url: &str, key: &str) -> u64 {
    let mut conn = redis::Client::open(url).unwrap().get_connection().unwrap();
    let value: Option<u64> = redis::cmd("GET").arg(key).query(&mut conn).unwrap();
    value.unwrap_or(0)
}

/// The body of a child process (the test `rate_child_entry` of the binary that spawns it):
/// a bridged worker of `fleet_rate(BP_RATE_LIMIT)` counting its starts under `BP_RATE_KEY`,
/// with `BP_RATE_ITEMS` items; prints `READY`, and exits when its stdin closes.
pub async fn child_main() {
    let Ok(url) = std::env::var("BP_RATE_URL") else {
        return;
    };
    let env = |k: &str| std::env::var(k).unwrap();
    let (sink, bridge) = bridged(&url, LimitsOnDisconnect::LocalShare).await;
    let client = redis::Client::open(url.as_str()).unwrap();
    let conn = client.get_multiplexed_async_connection().await.unwrap();
    let counter = Counter::Redis(conn, env("BP_RATE_KEY"));
    let coordinator = worker(
        &sink,
        fleet_rate(env("BP_RATE_LIMIT").parse().unwrap()),
        counter,
    );
    let items: u32 = env("BP_RATE_ITEMS").parse().unwrap();
    coordinator.enqueue_many(0..items).await.unwrap();
    println!("READY {}", bridge.instance());
    let mut lines = BufReader::new(tokio::io::stdin()).lines();
    while let Ok(Some(_)) = lines.next_line().await {}
    coordinator.shutdown().await;
    bridge.shutdown().await;
}

/// A child process running [`child_main`] (killed on drop).
pub struct Child {
    _child: tokio::process::Child,
}

impl Child {
    /// Spawns a child of `limit` counting under `key`, and waits (30 s at most) until it runs.
    pub async fn spawn(url: &str, key: &str, limit: u32, items: u32) -> Self {
        let exe = std::env::current_exe().unwrap();
        let mut child = tokio::process::Command::new(exe)
            .args([
                "rate_child_entry",
                "--exact",
                "--nocapture",
                "--test-threads=1",
            ])
            .env("BP_RATE_URL", url)
            .env("BP_RATE_KEY", key)
            .env("BP_RATE_LIMIT", limit.to_string())
            .env("BP_RATE_ITEMS", items.to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("spawn child");
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        loop {
            let line = tokio::time::timeout(Duration::from_secs(30), lines.next_line())
                .await
                .expect("child: no READY within 30 s")
                .unwrap()
                .expect("child exited before READY");
            if line.contains("READY ") {
                break;
            }
        }
        Self { _child: child }
    }
}
