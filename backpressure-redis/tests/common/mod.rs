//! Test helpers: a throwaway redis-server per test, event-driven waits, a child process.
#![allow(dead_code, unreachable_pub)]

pub mod proxy;

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use backpressure::Sink;
use futures_util::StreamExt;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::time::Instant;

/// A redis-server on 127.0.0.1 with no persistence, killed on drop.
pub struct RedisServer {
    child: Option<Child>,
    pub port: u16,
}

/// Starts a server, or returns `None` after printing one skip line when `redis-server` is
/// not installed (a failure instead when `REQUIRE_REDIS=1`).
pub fn redis(test: &str) -> Option<RedisServer> {
    let found = Command::new("redis-server")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok();
    if !found {
        if std::env::var("REQUIRE_REDIS").as_deref() == Ok("1") {
            panic!(
                "{test}: redis-server is not on PATH and REQUIRE_REDIS=1 (run .ci/install-redis)"
            );
        }
        // Written to the real stdout, past libtest's capture, so the skip is visible.
        use std::io::Write;
        let _ = writeln!(
            std::io::stdout(),
            "SKIP {test}: redis-server is not on PATH (apt-get install redis-server)"
        );
        return None;
    }
    Some(RedisServer::start_on(free_port()))
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

impl RedisServer {
    pub fn start_on(port: u16) -> Self {
        let child = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no", "--daemonize", "no"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn redis-server");
        let server = Self {
            child: Some(child),
            port,
        };
        server.wait_ready();
        server
    }

    fn wait_ready(&self) {
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        loop {
            let pong = redis::Client::open(self.url())
                .and_then(|c| c.get_connection_with_timeout(Duration::from_millis(200)))
                .and_then(|mut c| redis::cmd("PING").query::<String>(&mut c));
            if pong.is_ok() {
                return;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "redis-server did not answer PING"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// A plain connection for poking at the server from a test.
    pub fn raw(&self) -> redis::Connection {
        redis::Client::open(self.url())
            .unwrap()
            .get_connection()
            .unwrap()
    }

    /// `kill -9`, then waits for the process to be gone.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts a new, empty server on the same port.
    pub fn restart(&mut self) {
        self.kill();
        *self = Self::start_on(self.port);
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Waits (on the sink's events, no polling) until `cond` holds, at most `timeout` of real
/// time (these tests run on unpaused runtimes). Whether it held: `false` fails a positive
/// wait (`assert!(wait_until(..))`) and passes a negative one (`!wait_until(..)`, "not
/// within the window"); either way the sink's entries at the timeout are printed, which the
/// test harness shows only if the test fails.
pub async fn wait_until(sink: &Sink, timeout: Duration, cond: impl Fn(&Sink) -> bool) -> bool {
    let mut events = sink.subscribe();
    let deadline = Instant::now() + timeout;
    loop {
        if cond(sink) {
            return true;
        }
        match tokio::time::timeout_at(deadline, events.next()).await {
            Ok(Some(_)) => {}
            _ => {
                let held = cond(sink);
                if !held {
                    eprintln!(
                        "wait_until: not reached within {timeout:?}; the sink holds {:?}",
                        sink.snapshot()
                    );
                }
                return held;
            }
        }
    }
}

/// The keys under which `name` is active.
pub fn keys_of(sink: &Sink, name: &str) -> Vec<String> {
    sink.snapshot()
        .into_iter()
        .filter(|s| &*s.name == name)
        .map(|s| s.key.as_deref().unwrap_or("").to_owned())
        .collect()
}

/// A bridged process started from this test binary (see `child_process_entry`), driven
/// through its stdin: `raise NAME`, `retract NAME`; each answered `OK`.
pub struct ChildProcess {
    child: tokio::process::Child,
    stdin: tokio::process::ChildStdin,
    lines: tokio::io::Lines<BufReader<tokio::process::ChildStdout>>,
    pub instance: String,
}

impl ChildProcess {
    pub async fn spawn(url: &str, namespace: &str, lease: Duration) -> Self {
        let exe = std::env::current_exe().unwrap();
        let mut child = tokio::process::Command::new(exe)
            .args([
                "child_process_entry",
                "--exact",
                "--nocapture",
                "--test-threads=1",
            ])
            .env("BP_CHILD_URL", url)
            .env("BP_CHILD_NAMESPACE", namespace)
            .env("BP_CHILD_LEASE_MS", lease.as_millis().to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("spawn child");
        let stdin = child.stdin.take().unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let instance = loop {
            let line = tokio::time::timeout(Duration::from_secs(20), lines.next_line())
                .await
                .expect("child did not start in time")
                .unwrap()
                .expect("child exited before READY");
            // libtest may print "test child_process_entry ... " on the same line.
            if let Some((_, instance)) = line.split_once("READY ") {
                break instance.trim().to_owned();
            }
        };
        Self {
            child,
            stdin,
            lines,
            instance,
        }
    }

    pub async fn send(&mut self, command: &str) {
        self.stdin
            .write_all(format!("{command}\n").as_bytes())
            .await
            .unwrap();
        loop {
            let line = tokio::time::timeout(Duration::from_secs(10), self.lines.next_line())
                .await
                .expect("child did not answer")
                .unwrap()
                .expect("child exited");
            if line.trim_end().ends_with("OK") {
                return;
            }
        }
    }

    /// `kill -9`.
    pub async fn kill(&mut self) {
        self.child.kill().await.unwrap();
    }
}

/// Publishes `template` on the channel of `namespace` as the next message of its sequence,
/// in one script (so no bridge's message comes between the number and the message):
/// `{epoch}`, `{seq}`, `{now}` and `{expiry}` (now + `ttl`) are filled in from the
/// namespace's counter and the Redis clock. Returns the sequence number used.
pub fn publish_raw(server: &RedisServer, namespace: &str, template: &str, ttl: Duration) -> u64 {
    let script = redis::Script::new(
        r#"
        local t = redis.call('TIME')
        local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
        local epoch = redis.call('GET', KEYS[2]) or ''
        local seq = redis.call('INCR', KEYS[1])
        local p = ARGV[2]
        p = string.gsub(p, '{epoch}', epoch)
        p = string.gsub(p, '{seq}', tostring(seq))
        p = string.gsub(p, '{now}', string.format('%.0f', now))
        p = string.gsub(p, '{expiry}', string.format('%.0f', now + tonumber(ARGV[3])))
        redis.call('PUBLISH', ARGV[1], p)
        return seq
        "#,
    );
    script
        .key(format!("bp:{{{namespace}}}:seq"))
        .key(format!("bp:{{{namespace}}}:epoch"))
        .arg(backpressure_redis::__private::channel(namespace))
        .arg(template)
        .arg(ttl.as_millis() as u64)
        .invoke(&mut server.raw())
        .expect("publish_raw")
}

/// Whether `sink` lets go of `name` (a retract or an expiry) within `window` from now. It
/// watches from the call on, before the returned future is first polled.
pub fn lets_go(
    sink: &Sink,
    name: &str,
    window: Duration,
) -> impl std::future::Future<Output = bool> {
    let mut events = sink.subscribe();
    let deadline = Instant::now() + window;
    let (sink, name) = (sink.clone(), name.to_owned());
    async move {
        let gone = async {
            while let Some(Ok(event)) = events.next().await {
                let kind = event.kind;
                if *event.name == *name
                    && matches!(
                        kind,
                        backpressure::SignalEventKind::Retracted
                            | backpressure::SignalEventKind::Expired
                    )
                {
                    return;
                }
            }
        };
        tokio::time::timeout_at(deadline, gone).await.is_ok() || !sink.is_raised(&name)
    }
}

/// Polls `state` (every 10 ms: a poll interval, not a synchronisation) until `done` holds,
/// at most `timeout` of real time; returns the last state seen, which the caller asserts on.
pub async fn until<S>(timeout: Duration, state: impl Fn() -> S, done: impl Fn(&S) -> bool) -> S {
    let deadline = Instant::now() + timeout;
    loop {
        let seen = state();
        if done(&seen) || Instant::now() >= deadline {
            return seen;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}
