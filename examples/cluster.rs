//! Three processes, one signal: backpressure shared through Redis.
//!
//! ```text
//! cargo run --example cluster
//! ```
//!
//! Starts a throwaway `redis-server` (when one is on PATH; or uses `BACKPRESSURE_REDIS_URL`),
//! spawns three worker processes of this same binary, each with a coordinator that defers on
//! `backpressure.*` and a steady stream of work, raises `backpressure.downstream` in one of
//! them and prints a timeline: all three hold, then all three resume when it is retracted,
//! with the measured propagation times. Without Redis it says what to install and exits 1.

use std::process::Stdio;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use backpressure::{Coordinator, SignalEventKind, Sink, WorkContext};
use backpressure_redis::{connect, Config};
use futures_util::StreamExt;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

const SIGNAL: &str = "backpressure.downstream";
const WORKERS: usize = 3;

/// Wall-clock microseconds: the one clock all processes on this machine share.
fn now_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as u64)
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    if let Ok(id) = std::env::var("BP_CLUSTER_WORKER") {
        return worker(id).await;
    }
    let (url, _server) = match redis_url() {
        Some(found) => found,
        None => {
            eprintln!(
                "cluster: needs Redis. Install it (Debian/Ubuntu: `apt-get install redis-server`, \
                 macOS: `brew install redis`) so that `redis-server` is on PATH, or set \
                 BACKPRESSURE_REDIS_URL=redis://host:port"
            );
            std::process::exit(1);
        }
    };
    let namespace = format!("cluster-{}", std::process::id());
    println!(
        "cluster: Redis at {}, namespace {namespace}",
        backpressure_redis::RedisUrl::new(url.as_str())
    );

    let exe = std::env::current_exe()?;
    let mut workers = Vec::new();
    for id in 0..WORKERS {
        let mut child = tokio::process::Command::new(&exe)
            .env("BP_CLUSTER_WORKER", id.to_string())
            .env("BP_CLUSTER_URL", &url)
            .env("BP_CLUSTER_NAMESPACE", &namespace)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()?;
        let stdin = child.stdin.take().ok_or("no stdin")?;
        let lines = BufReader::new(child.stdout.take().ok_or("no stdout")?).lines();
        workers.push((child, stdin, lines));
    }
    // Every worker's output goes to one channel, tagged by worker.
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<(usize, String)>();
    let mut stdins = Vec::new();
    let mut children = Vec::new();
    for (id, (child, stdin, mut lines)) in workers.into_iter().enumerate() {
        let tx = tx.clone();
        tokio::spawn(async move {
            while let Ok(Some(line)) = lines.next_line().await {
                let _ = tx.send((id, line));
            }
        });
        stdins.push(stdin);
        children.push(child);
    }
    drop(tx);
    expect(&mut rx, "ready", WORKERS).await?;
    println!("cluster: {WORKERS} worker processes bridged, each enqueueing an item every 10 ms\n");

    let raiser = 1;
    stdins[raiser].write_all(b"raise\n").await?;
    let raised = expect(&mut rx, "raised", 1).await?[0].1;
    let holds = expect(&mut rx, "hold", WORKERS).await?;
    let ms = |t: u64| (t as f64 - raised as f64) / 1000.0;
    println!("{:>10}  worker-{raiser} raises {SIGNAL}", "t+0.000ms");
    for (id, t, _) in &holds {
        println!(
            "{:>10}  worker-{id} holds new work     (propagation {:>5} µs)",
            format!("t+{:.3}ms", ms(*t)),
            t.saturating_sub(raised)
        );
    }

    tokio::time::sleep(Duration::from_millis(500)).await; // Let held work pile up.
    stdins[raiser].write_all(b"retract\n").await?;
    let retracted = expect(&mut rx, "retracted", 1).await?[0].1;
    println!(
        "{:>10}  worker-{raiser} retracts {SIGNAL}",
        format!("t+{:.3}ms", ms(retracted))
    );
    let starts = expect(&mut rx, "start", WORKERS).await?;
    for (id, t, extra) in &starts {
        println!(
            "{:>10}  worker-{id} resumes: first held item started (propagation {:>5} µs, {} items were held)",
            format!("t+{:.3}ms", ms(*t)),
            t.saturating_sub(retracted),
            extra.first().map_or("?", String::as_str)
        );
    }
    let worst_hold = holds
        .iter()
        .map(|(_, t, _)| t.saturating_sub(raised))
        .max()
        .unwrap_or(0);
    let worst_start = starts
        .iter()
        .map(|(_, t, _)| t.saturating_sub(retracted))
        .max()
        .unwrap_or(0);
    println!("\ncluster: all {WORKERS} held within {worst_hold} µs of the raise and resumed within {worst_start} µs of the retract");

    for stdin in &mut stdins {
        let _ = stdin.write_all(b"quit\n").await;
    }
    for child in &mut children {
        let _ = tokio::time::timeout(Duration::from_secs(5), child.wait()).await;
    }
    Ok(())
}

/// One line of a worker's output: (worker, wall-clock µs, the other fields).
type Line = (usize, u64, Vec<String>);

/// Waits for `count` lines starting with `what`, sorted by time.
async fn expect(
    rx: &mut tokio::sync::mpsc::UnboundedReceiver<(usize, String)>,
    what: &str,
    count: usize,
) -> Result<Vec<Line>, Box<dyn std::error::Error>> {
    let mut got = Vec::new();
    while got.len() < count {
        let (id, line) = tokio::time::timeout(Duration::from_secs(15), rx.recv())
            .await
            .map_err(|_| format!("timed out waiting for {what}"))?
            .ok_or("a worker exited")?;
        let mut fields = line.split_whitespace();
        if fields.next() == Some(what) {
            let t: u64 = fields.next().and_then(|t| t.parse().ok()).unwrap_or(0);
            got.push((id, t, fields.map(str::to_owned).collect()));
        }
    }
    got.sort_by_key(|(_, t, _)| *t);
    Ok(got)
}

/// A worker process: a bridged sink, a coordinator with steady work, commands on stdin.
async fn worker(id: String) -> Result<(), Box<dyn std::error::Error>> {
    let url = std::env::var("BP_CLUSTER_URL")?;
    let namespace = std::env::var("BP_CLUSTER_NAMESPACE")?;
    let sink = Sink::new();
    let bridge = connect(
        sink.clone(),
        Config::new(url)
            .namespace(namespace)
            .instance(format!("worker-{id}")),
    )
    .await?;

    let resumed_at = Arc::new(AtomicU64::new(u64::MAX));
    let (started_tx, mut started) = tokio::sync::mpsc::unbounded_channel::<u64>();
    let coordinator = Coordinator::builder()
        .sink(sink.clone())
        .concurrency(2)
        .defer_on("backpressure.*")
        .build(move |_: u64, _: WorkContext| {
            let started_tx = started_tx.clone();
            async move {
                let _ = started_tx.send(now_us());
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
        })?;
    let producer = coordinator.clone();
    tokio::spawn(async move {
        for item in 0.. {
            if producer.enqueue(item).await.is_err() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    });
    // The first start after a resume.
    let resumed = Arc::clone(&resumed_at);
    let held_at_resume = Arc::new(AtomicU64::new(0));
    let held = Arc::clone(&held_at_resume);
    tokio::spawn(async move {
        while let Some(t) = started.recv().await {
            if t >= resumed.load(Ordering::SeqCst) {
                resumed.store(u64::MAX, Ordering::SeqCst);
                println!("start {t} {}", held.load(Ordering::SeqCst));
            }
        }
    });
    // Hold and resume as seen by this process's sink (its gate changes at that instant).
    let mut events = sink.subscribe();
    let watcher = coordinator.clone();
    tokio::spawn(async move {
        while let Some(Ok(event)) = events.next().await {
            if &*event.name != SIGNAL {
                continue;
            }
            let t = now_us();
            match event.kind {
                SignalEventKind::Raised => println!("hold {t}"),
                SignalEventKind::Retracted | SignalEventKind::Expired => {
                    held_at_resume.store(watcher.stats().queued as u64, Ordering::SeqCst);
                    resumed_at.store(t, Ordering::SeqCst);
                }
                #[allow(unreachable_patterns)]
                _ => {}
            }
        }
    });

    println!("ready {}", now_us());
    let mut lines = BufReader::new(tokio::io::stdin()).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        match line.trim() {
            "raise" => {
                let t = now_us();
                sink.raise(SIGNAL)?;
                println!("raised {t}");
            }
            "retract" => {
                let t = now_us();
                sink.retract(SIGNAL)?;
                println!("retracted {t}");
            }
            _ => break,
        }
    }
    coordinator.shutdown().await;
    bridge.shutdown().await;
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
