//! Three processes, two fleet-wide limits: a shared `rate` and `global_concurrency`, both
//! through Redis.
//!
//! ```text
//! cargo run --example cluster_limits
//! ```
//!
//! Starts a throwaway `redis-server` (when one is on PATH; or uses `BACKPRESSURE_REDIS_URL`)
//! and three processes of this same binary. Each runs one worker `mailer` with
//! `concurrency(8)`, `rate(50 per second, shared)` (the whole fleet's starts, one GCRA in
//! Redis) and `global_concurrency(4)` (the whole fleet's items in flight), fed faster than it
//! can go;
//! items take 40 ms. Every second it prints each process's starts and the total; at the end,
//! the fleet-wide peak in flight, measured by a counter in Redis that every item increments
//! when it starts and decrements when it ends. Without Redis it prints one line and exits.
//!
//! The first seconds show no start: a new record of permits (a fresh namespace, as here, or
//! a Redis restarted empty) grants nothing for a grace of 3.5 s with the default lease, so
//! that processes still running items after a flush record them again before anyone takes
//! new ones. Then the fleet starts about 50 items a second in all, the shared rate (4 at
//! once for 40 ms would allow 100), split between the processes, and never more than 4 run
//! at once.

use std::process::Stdio;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use backpressure::limit::Rate;
use backpressure::{Coordinator, Sink, WorkContext};
use backpressure_redis::{connect, Config};
use tokio::io::{AsyncBufReadExt, BufReader};

const PROCESSES: usize = 3;
const SECONDS: usize = 8;
const LIMIT: usize = 4;
const ITEM: Duration = Duration::from_millis(40);

/// Counts an item in: the fleet's in-flight count and its peak.
const ENTER: &str = r#"
local n = redis.call('INCR', KEYS[1])
if n > tonumber(redis.call('GET', KEYS[2]) or '0') then redis.call('SET', KEYS[2], n) end
return n
"#;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    if let Ok(id) = std::env::var("BP_LIMITS_PROCESS") {
        return process(id).await;
    }
    let Some((url, _server)) = redis_url() else {
        println!("cluster_limits: skipped: no redis-server on PATH (apt-get install redis-server) and no BACKPRESSURE_REDIS_URL");
        return Ok(());
    };
    let namespace = format!("limits-{}", std::process::id());
    println!("cluster_limits: {PROCESSES} processes, worker `mailer`: concurrency 8, rate 50/s for the fleet, global_concurrency {LIMIT}, items of {ITEM:?}\n");
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<(usize, String)>();
    let mut children = Vec::new();
    for id in 0..PROCESSES {
        let mut child = tokio::process::Command::new(std::env::current_exe()?)
            .env("BP_LIMITS_PROCESS", id.to_string())
            .env("BP_LIMITS_URL", &url)
            .env("BP_LIMITS_NAMESPACE", &namespace)
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()?;
        let mut lines = BufReader::new(child.stdout.take().ok_or("no stdout")?).lines();
        let tx = tx.clone();
        tokio::spawn(async move {
            while let Ok(Some(line)) = lines.next_line().await {
                let _ = tx.send((id, line));
            }
        });
        children.push(child);
    }
    drop(tx);
    // Each process prints `second N starts` once a second, SECONDS times, then `done`.
    let mut table = [[0u64; PROCESSES]; SECONDS];
    let mut done = 0;
    while done < PROCESSES {
        let (id, line) = tokio::time::timeout(Duration::from_secs(30), rx.recv())
            .await
            .map_err(|_| "a process fell silent for 30 s")?
            .ok_or("a process exited early")?;
        let fields: Vec<&str> = line.split_whitespace().collect();
        match fields.as_slice() {
            ["second", n, starts] => table[n.parse::<usize>()?][id] = starts.parse()?,
            ["done"] => done += 1,
            _ => {}
        }
    }
    println!(
        "{:>6}  {:>9} {:>9} {:>9}  {:>6}",
        "second", "process-0", "process-1", "process-2", "total"
    );
    for (second, row) in table.iter().enumerate() {
        let total: u64 = row.iter().sum();
        println!(
            "{:>6}  {:>9} {:>9} {:>9}  {total:>6}",
            second + 1,
            row[0],
            row[1],
            row[2]
        );
    }
    let mut conn = redis::Client::open(url.as_str())?
        .get_multiplexed_async_connection()
        .await?;
    let peak: Option<u64> = redis::cmd("GET")
        .arg(format!("{namespace}:peak"))
        .query_async(&mut conn)
        .await?;
    println!(
        "\nfleet-wide peak in flight: {} (global_concurrency {LIMIT})",
        peak.unwrap_or(0)
    );
    for child in &mut children {
        let _ = tokio::time::timeout(Duration::from_secs(5), child.wait()).await;
    }
    Ok(())
}

/// One process: a bridged sink and the worker, fed faster than its limits let it go.
async fn process(_id: String) -> Result<(), Box<dyn std::error::Error>> {
    let url = std::env::var("BP_LIMITS_URL")?;
    let namespace = std::env::var("BP_LIMITS_NAMESPACE")?;
    let sink = Sink::new();
    let bridge = connect(
        sink.clone(),
        Config::new(url.as_str()).namespace(namespace.as_str()),
    )
    .await?;
    let conn = redis::Client::open(url.as_str())?
        .get_multiplexed_async_connection()
        .await?;
    let keys = Arc::new([format!("{namespace}:running"), format!("{namespace}:peak")]);
    let script = Arc::new(redis::Script::new(ENTER));
    let starts = Arc::new(AtomicU64::new(0));
    let counted = Arc::clone(&starts);
    let coordinator = Coordinator::builder()
        .sink(sink.clone())
        .name("mailer")
        .concurrency(8)
        .capacity(1_000)
        .rate(Rate::new(50, Duration::from_secs(1)).shared())
        .global_concurrency(LIMIT)
        .build(move |_: u64, _: WorkContext| {
            let (mut conn, keys, script) = (conn.clone(), Arc::clone(&keys), Arc::clone(&script));
            counted.fetch_add(1, Ordering::Relaxed);
            async move {
                let _: redis::RedisResult<u64> = script
                    .key(&keys[0])
                    .key(&keys[1])
                    .invoke_async(&mut conn)
                    .await;
                tokio::time::sleep(ITEM).await; // The work.
                let _: redis::RedisResult<i64> = redis::cmd("DECR")
                    .arg(&keys[0])
                    .query_async(&mut conn)
                    .await;
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
    let mut tick = tokio::time::interval_at(
        tokio::time::Instant::now() + Duration::from_secs(1),
        Duration::from_secs(1),
    );
    for second in 0..SECONDS {
        tick.tick().await;
        println!("second {second} {}", starts.swap(0, Ordering::Relaxed));
    }
    coordinator.shutdown().await;
    bridge.shutdown().await;
    println!("done");
    Ok(())
}

/// `BACKPRESSURE_REDIS_URL`, or a throwaway redis-server on a free port.
fn redis_url() -> Option<(String, Option<Server>)> {
    if let Ok(url) = std::env::var("BACKPRESSURE_REDIS_URL") {
        return Some((url, None));
    }
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .ok()?
        .local_addr()
        .ok()?
        .port();
    let child = std::process::Command::new("redis-server")
        .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
        .args(["--save", "", "--appendonly", "no"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .ok()?;
    let server = Server(child);
    for _ in 0..500 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return Some((format!("redis://127.0.0.1:{port}"), Some(server)));
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    None
}

/// The throwaway server, killed on exit.
struct Server(std::process::Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
