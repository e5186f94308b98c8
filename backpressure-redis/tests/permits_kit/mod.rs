//! What the permit tests share: a worker with `global_concurrency` whose items count
//! themselves in Redis (so the fleet-wide peak is measured across processes), and a child
//! process running such a worker.
#![allow(dead_code, unreachable_pub)]

use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use backpressure::{Coordinator, Sink, WorkContext};
use backpressure_redis::{connect, Bridge, Config};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::sync::Semaphore;

/// `running` counts the items of the whole fleet that run now, `peak` the highest count.
const ENTER: &str = r#"
local n = redis.call('INCR', KEYS[1])
if n > tonumber(redis.call('GET', KEYS[2]) or '0') then redis.call('SET', KEYS[2], n) end
redis.call('INCR', KEYS[3])
return n
"#;

/// The counter keys of a test (outside every namespace's keys).
pub fn counter_keys(test: &str) -> [String; 3] {
    [
        format!("test:{test}:running"),
        format!("test:{test}:peak"),
        format!("test:{test}:started"),
    ]
}

/// Reads a counter (0 if unset).
pub fn read(url: &str, key: &str) -> u64 {
    let mut conn = redis::Client::open(url).unwrap().get_connection().unwrap();
    let value: Option<u64> = redis::cmd("GET").arg(key).query(&mut conn).unwrap();
    value.unwrap_or(0)
}

/// How long each item holds its permit.
#[derive(Clone)]
pub enum Hold {
    /// This long (real time: it is the work).
    For(Duration),
    /// Until the semaphore gives it a permit.
    Until(Arc<Semaphore>),
}

/// A worker `mailer` of concurrency 8 and `global_concurrency` `limit` on `sink`, whose items
/// count themselves under `test`'s counter keys.
pub async fn worker(
    sink: &Sink,
    url: &str,
    test: &str,
    limit: usize,
    hold: Hold,
) -> Coordinator<u32> {
    let client = redis::Client::open(url).unwrap();
    let conn = client.get_multiplexed_async_connection().await.unwrap();
    let keys = Arc::new(counter_keys(test));
    let script = Arc::new(redis::Script::new(ENTER));
    Coordinator::builder()
        .sink(sink.clone())
        .name("mailer")
        .concurrency(8)
        .capacity(10_000)
        .global_concurrency(limit)
        .build(move |_: u32, _: WorkContext| {
            let (mut conn, keys, script, hold) = (
                conn.clone(),
                Arc::clone(&keys),
                Arc::clone(&script),
                hold.clone(),
            );
            async move {
                let _: u64 = script
                    .key(&keys[0])
                    .key(&keys[1])
                    .key(&keys[2])
                    .invoke_async(&mut conn)
                    .await
                    .unwrap();
                match hold {
                    Hold::For(d) => tokio::time::sleep(d).await,
                    Hold::Until(s) => s.acquire().await.unwrap().forget(),
                }
                let _: i64 = redis::cmd("DECR")
                    .arg(&keys[0])
                    .query_async(&mut conn)
                    .await
                    .unwrap();
            }
        })
        .unwrap()
}

/// A bridged sink in `namespace` with a short lease.
pub async fn bridged(url: &str, namespace: &str, lease: Duration) -> (Sink, Bridge) {
    let sink = Sink::new();
    let config = Config::new(url)
        .namespace(namespace)
        .lease(lease)
        .reconnect_max_delay(Duration::from_millis(100));
    let bridge = connect(sink.clone(), config).await.expect("connect");
    (sink, bridge)
}

/// The body of a child process (the test `permit_child_entry` of the binary that spawns
/// it): a bridged worker that runs `BP_PERMIT_ITEMS` items, each holding its permit for
/// `BP_PERMIT_HOLD_MS` (0: forever), prints `READY <instance>`, then `DONE` when they are
/// all done, and exits when its stdin closes.
pub async fn child_main() {
    let Ok(url) = std::env::var("BP_PERMIT_URL") else {
        return;
    };
    let env = |k: &str| std::env::var(k).unwrap();
    let lease = Duration::from_millis(env("BP_PERMIT_LEASE_MS").parse().unwrap());
    let (sink, bridge) = bridged(&url, &env("BP_PERMIT_NAMESPACE"), lease).await;
    let hold = match env("BP_PERMIT_HOLD_MS").parse().unwrap() {
        0 => Hold::Until(Arc::new(Semaphore::new(0))),
        ms => Hold::For(Duration::from_millis(ms)),
    };
    let items: u32 = env("BP_PERMIT_ITEMS").parse().unwrap();
    let limit: usize = env("BP_PERMIT_LIMIT").parse().unwrap();
    let coordinator = worker(&sink, &url, &env("BP_PERMIT_TEST"), limit, hold).await;
    println!("READY {}", bridge.instance());
    coordinator.enqueue_many(0..items).await.unwrap();
    let drained = coordinator.clone();
    tokio::spawn(async move {
        drained.drain().await;
        println!("DONE");
    });
    let mut lines = BufReader::new(tokio::io::stdin()).lines();
    while let Ok(Some(_)) = lines.next_line().await {}
    bridge.shutdown().await;
}

/// A child process running [`child_main`].
pub struct Child {
    child: tokio::process::Child,
    lines: tokio::io::Lines<BufReader<tokio::process::ChildStdout>>,
    pub instance: String,
}

/// What a child is asked to do.
pub struct ChildSpec<'a> {
    pub url: &'a str,
    pub namespace: &'a str,
    pub test: &'a str,
    pub lease: Duration,
    pub items: u32,
    pub limit: usize,
    /// 0: each item holds its permit forever.
    pub hold_ms: u64,
}

impl Child {
    pub async fn spawn(spec: &ChildSpec<'_>) -> Self {
        let exe = std::env::current_exe().unwrap();
        let mut child = tokio::process::Command::new(exe)
            .args([
                "permit_child_entry",
                "--exact",
                "--nocapture",
                "--test-threads=1",
            ])
            .env("BP_PERMIT_URL", spec.url)
            .env("BP_PERMIT_NAMESPACE", spec.namespace)
            .env("BP_PERMIT_TEST", spec.test)
            .env("BP_PERMIT_LEASE_MS", spec.lease.as_millis().to_string())
            .env("BP_PERMIT_ITEMS", spec.items.to_string())
            .env("BP_PERMIT_LIMIT", spec.limit.to_string())
            .env("BP_PERMIT_HOLD_MS", spec.hold_ms.to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("spawn child");
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let instance = loop {
            let line = Self::next(&mut lines, "READY").await;
            if let Some((_, instance)) = line.split_once("READY ") {
                break instance.trim().to_owned();
            }
        };
        Self {
            child,
            lines,
            instance,
        }
    }

    async fn next(
        lines: &mut tokio::io::Lines<BufReader<tokio::process::ChildStdout>>,
        what: &str,
    ) -> String {
        tokio::time::timeout(Duration::from_secs(30), lines.next_line())
            .await
            .unwrap_or_else(|_| panic!("child: no {what} within 30 s"))
            .unwrap()
            .unwrap_or_else(|| panic!("child exited before {what}"))
    }

    /// Waits (at most 30 s) for the child's items to be done.
    pub async fn done(&mut self) {
        while !Self::next(&mut self.lines, "DONE").await.contains("DONE") {}
    }

    /// `kill -9`.
    pub async fn kill(&mut self) {
        self.child.kill().await.unwrap();
    }
}
