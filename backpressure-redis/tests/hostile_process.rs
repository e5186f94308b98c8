//! Hostile: bridges in separate OS processes (this test binary re-executed as a child, see
//! `hostile_child`), killed with `SIGKILL` or frozen with `SIGSTOP`/`SIGCONT` (real
//! redis-server; skipped without one). What a user relies on: a dead or frozen owner's
//! signals lapse within one lease everywhere, a retract reaches every connected peer, a
//! frozen process catches up when it thaws.

mod common;
mod hostile_common;

use std::process::Stdio;
use std::time::Duration;

use backpressure::Sink;
use backpressure_redis::{connect, OnDisconnect, Status};
use common::{lets_go, redis, wait_until};
use hostile_common::{bridge, config, synced, WAIT};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::time::Instant;

const LEASE: Duration = Duration::from_millis(1500);
/// Scheduling slack on a loaded 2-core machine, on top of a bound.
const SLACK: Duration = Duration::from_millis(500);

fn policy(name: &str) -> OnDisconnect {
    match name {
        "hold" => OnDisconnect::HoldUntilReconnect,
        "drop" => OnDisconnect::Drop,
        _ => OnDisconnect::KeepUntilLeaseEnds,
    }
}

/// Answers one command of the parent; every answer line starts with `@@`.
async fn answer(sink: &Sink, bridge: &backpressure_redis::Bridge, line: &str) -> Option<String> {
    let (command, name) = line.split_once(' ').unwrap_or((line, ""));
    let started = Instant::now();
    Some(match command {
        "raise" => sink.raise(name).map(|()| "OK".to_owned()).unwrap(),
        "retract" => sink.retract(name).map(|_| "OK".to_owned()).unwrap(),
        "wait" | "gone" => {
            let want = command == "wait";
            let done = wait_until(sink, WAIT, |s| s.is_raised(name) == want).await;
            let ms = started.elapsed().as_millis();
            if done {
                format!("OK {ms}")
            } else {
                "TIMEOUT".to_owned()
            }
        }
        "synced" => format!(
            "OK {:?}",
            bridge.wait_for(WAIT, |s| *s == Status::Synced).await
        ),
        "last" => format!(
            "OK {}",
            last_raised(sink, name, LEASE * 3).await.as_millis()
        ),
        _ => return None,
    })
}

/// Watches `name` for `window`: how long after the call it was last raised (zero if it
/// never was; `window` if it still is).
async fn last_raised(sink: &Sink, name: &str, window: Duration) -> Duration {
    use futures_util::StreamExt;
    let started = Instant::now();
    let mut events = sink.subscribe();
    let mut last = Duration::ZERO;
    while let Ok(Some(Ok(event))) = tokio::time::timeout_at(started + window, events.next()).await {
        let gone = matches!(
            event.kind,
            backpressure::SignalEventKind::Retracted | backpressure::SignalEventKind::Expired
        );
        if &*event.name == name && gone {
            last = started.elapsed();
        }
    }
    if sink.is_raised(name) {
        window
    } else {
        last
    }
}

/// Entry point of the child processes (a no-op in a normal run): a bridge configured by
/// `BP_HOSTILE_*`, driven line by line through stdin.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_child() {
    let Ok(url) = std::env::var("BP_HOSTILE_URL") else {
        return;
    };
    let env = |k: &str| std::env::var(k).unwrap();
    let lease = Duration::from_millis(env("BP_HOSTILE_LEASE_MS").parse().unwrap());
    let config = config(
        &url,
        &env("BP_HOSTILE_INSTANCE"),
        lease,
        policy(&env("BP_HOSTILE_POLICY")),
    );
    let sink = Sink::new();
    let bridge = connect(sink.clone(), config).await.expect("child connect");
    println!("@@READY");
    let mut lines = BufReader::new(tokio::io::stdin()).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        match answer(&sink, &bridge, &line).await {
            Some(reply) => println!("@@{reply}"),
            None => break,
        }
    }
    bridge.shutdown().await;
}

/// A bridged child process.
struct Child {
    child: tokio::process::Child,
    stdin: tokio::process::ChildStdin,
    lines: tokio::io::Lines<BufReader<tokio::process::ChildStdout>>,
}

impl Child {
    async fn spawn(url: &str, instance: &str, policy: &str) -> Self {
        let mut child = tokio::process::Command::new(std::env::current_exe().unwrap())
            .args([
                "hostile_child",
                "--exact",
                "--nocapture",
                "--test-threads=1",
            ])
            .env("BP_HOSTILE_URL", url)
            .env("BP_HOSTILE_INSTANCE", instance)
            .env("BP_HOSTILE_LEASE_MS", LEASE.as_millis().to_string())
            .env("BP_HOSTILE_POLICY", policy)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("spawn child");
        let stdin = child.stdin.take().unwrap();
        let lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let mut child = Self {
            child,
            stdin,
            lines,
        };
        assert_eq!(child.reply().await, "READY");
        child
    }

    async fn reply(&mut self) -> String {
        loop {
            let line = tokio::time::timeout(WAIT * 2, self.lines.next_line())
                .await
                .expect("child did not answer")
                .unwrap()
                .expect("child exited");
            if let Some((_, reply)) = line.split_once("@@") {
                return reply.trim().to_owned();
            }
        }
    }

    /// Sends a command; returns its answer.
    async fn send(&mut self, command: &str) -> String {
        self.stdin
            .write_all(format!("{command}\n").as_bytes())
            .await
            .unwrap();
        self.reply().await
    }

    /// The milliseconds a `wait`/`gone` took; panics on a timeout.
    async fn took(&mut self, command: &str) -> Duration {
        let reply = self.send(command).await;
        let ms = reply.strip_prefix("OK ").and_then(|ms| ms.parse().ok());
        Duration::from_millis(ms.unwrap_or_else(|| panic!("{command}: {reply}")))
    }

    /// Sends `signal` (`STOP`, `CONT`, `KILL`) to this child, by its pid.
    fn signal(&self, signal: &str) {
        let pid = self.child.id().expect("child still running").to_string();
        let status = std::process::Command::new("kill")
            .args([&format!("-{signal}"), &pid])
            .status()
            .expect("kill");
        assert!(status.success(), "kill -{signal} {pid}");
    }
}

/// `kill -9` of the raising process: its plain and keyed entries lapse within one lease in
/// every peer, whatever its policy (under `hold_until_reconnect` too: the link is alive).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_owner_lapses_within_one_lease_under_every_policy() {
    let Some(server) = redis("a_killed_owner_lapses_within_one_lease") else {
        return;
    };
    let url = server.url();
    let mut owner = Child::spawn(&url, "owner", "keep").await;
    let (keep, _k) = bridge(&url, "keep", LEASE, OnDisconnect::KeepUntilLeaseEnds).await;
    let (hold, _h) = bridge(&url, "hold", LEASE, OnDisconnect::HoldUntilReconnect).await;
    owner.send("raise backpressure.smtp").await;
    owner.send("raise backpressure.db").await;
    owner.send("retract backpressure.db").await;
    for sink in [&keep, &hold] {
        assert!(wait_until(sink, WAIT, |s| s.is_raised("backpressure.smtp")).await);
        assert!(wait_until(sink, WAIT, |s| !s.is_raised("backpressure.db")).await);
    }
    owner.signal("KILL");
    let killed = Instant::now();
    for sink in [&keep, &hold] {
        let gone = wait_until(sink, LEASE * 3, |s| !s.is_raised("backpressure.smtp")).await;
        assert!(gone, "the dead owner's signal stays");
    }
    let took = killed.elapsed();
    assert!(took <= LEASE + SLACK, "lapsed {took:?} after the kill");
}

/// `SIGSTOP` of the raising process for two leases: to its peers it is dead (its entry
/// lapses within a lease); after `SIGCONT` it renews, and its signal is back everywhere.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frozen_owner_lapses_and_comes_back_when_it_thaws() {
    let Some(server) = redis("a_frozen_owner_lapses_and_comes_back_when_it_thaws") else {
        return;
    };
    let url = server.url();
    let mut owner = Child::spawn(&url, "owner", "keep").await;
    let (hold, _h) = bridge(&url, "hold", LEASE, OnDisconnect::HoldUntilReconnect).await;
    owner.send("raise backpressure.smtp").await;
    assert!(wait_until(&hold, WAIT, |s| s.is_raised("backpressure.smtp")).await);
    owner.signal("STOP");
    let stopped = Instant::now();
    let gone = wait_until(&hold, LEASE * 3, |s| !s.is_raised("backpressure.smtp")).await;
    assert!(
        gone && stopped.elapsed() <= LEASE + SLACK,
        "{:?}",
        stopped.elapsed()
    );
    owner.signal("CONT");
    let thawed = Instant::now();
    assert!(wait_until(&hold, WAIT, |s| s.is_raised("backpressure.smtp")).await);
    assert!(
        thawed.elapsed() < LEASE,
        "back {:?} after SIGCONT",
        thawed.elapsed()
    );
    assert_eq!(owner.send("synced").await, "OK Synced");
}

/// `SIGSTOP` of a peer holding a mirror under `hold_until_reconnect`: while it is frozen
/// the owner retracts and raises; after `SIGCONT` the peer sees both (a retract reaches
/// every connected peer, however late), and is `Synced`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frozen_peer_sees_every_change_when_it_thaws() {
    let Some(server) = redis("a_frozen_peer_sees_every_change_when_it_thaws") else {
        return;
    };
    let url = server.url();
    let (owner, _o) = bridge(&url, "owner", LEASE, OnDisconnect::KeepUntilLeaseEnds).await;
    let mut peer = Child::spawn(&url, "peer", "hold").await;
    owner.raise("backpressure.smtp").unwrap();
    peer.took("wait backpressure.smtp").await;
    peer.signal("STOP");
    owner.retract("backpressure.smtp").unwrap();
    owner.raise("backpressure.new").unwrap();
    // Frozen across two of the owner's renewals of `new`.
    let renewed = lets_go(&owner, "backpressure.new", LEASE);
    assert!(!renewed.await);
    peer.signal("CONT");
    assert!(peer.took("gone backpressure.smtp").await < LEASE);
    assert!(peer.took("wait backpressure.new").await < LEASE);
    assert_eq!(peer.send("synced").await, "OK Synced");
}

/// A peer frozen while the owner dies reads, when it thaws, the owner's last renewals from
/// its socket's backlog; each would grant a full lease *from the moment it is read*. The
/// peer must notice it stalled and take a snapshot instead. (The bug it caught: the dead
/// owner's signal outlived it by about the freeze plus a lease: `expiry - now` of a message
/// became a local TTL however late the message was read.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thawed_peer_lets_a_dead_owner_go_at_once() {
    let Some(server) = redis("a_thawed_peer_lets_a_dead_owner_go_at_once") else {
        return;
    };
    let url = server.url();
    let mut owner = Child::spawn(&url, "owner", "keep").await;
    let mut peer = Child::spawn(&url, "peer", "keep").await;
    let (fence, fence_bridge) =
        bridge(&url, "fence", LEASE, OnDisconnect::KeepUntilLeaseEnds).await;
    owner.send("raise backpressure.smtp").await;
    peer.took("wait backpressure.smtp").await;
    assert!(wait_until(&fence, WAIT, |s| s.is_raised("backpressure.smtp")).await);
    peer.signal("STOP");
    // The owner renews while the peer is frozen (a renewal every lease / 3), then dies.
    let renewed = lets_go(&fence, "backpressure.smtp", LEASE * 2 / 3);
    assert!(!renewed.await);
    owner.signal("KILL");
    let killed = Instant::now();
    assert!(wait_until(&fence, LEASE * 3, |s| !s.is_raised("backpressure.smtp")).await);
    // Thaw well after the owner's lease has ended (the freeze's length, not a wait for
    // anything).
    let thaw_at = killed + LEASE * 2;
    tokio::time::sleep_until(thaw_at).await;
    peer.signal("CONT");
    // Its local TTL ran out during the freeze: what counts is whether the backlog raises it
    // again once read.
    let last = peer.took("last backpressure.smtp").await;
    assert!(
        last < SLACK,
        "the dead owner's signal stayed {last:?} after the thaw"
    );
    synced(&fence_bridge).await;
}
