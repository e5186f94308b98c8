//! Hostile tests of probes across real OS processes (DESIGN §6 "Probes and other verdicts",
//! §7 leases): the owner `kill -9`ed while a peer's probe runs, a peer `kill -9`ed while it
//! holds a lent probe, the owner stopped (`SIGSTOP`) during half-open and resumed.
//!
//! The other process is this test binary run again (`child_role_entry`, its role in
//! `BP_HP_ROLE`), driven through its stdin; each test also runs in-process sinks with their
//! own bridges on the same real redis-server (skipped without one).

mod common;
mod hostile_probes_kit;

use std::process::Stdio;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

use backpressure::policy::BreakerState;
use backpressure::{Phase, Sink};
use backpressure_redis::connect;
use common::{redis, wait_until};
use hostile_probes_kit::*;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::sync::mpsc;

/// The child's side: `owner` (a breaker owner; `fail` opens its breaker) or `peer` (a held
/// worker whose items print `STARTED` and hang; `enqueue` adds one). Each command is
/// answered `OK`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn child_role_entry() {
    let Ok(role) = std::env::var("BP_HP_ROLE") else {
        return;
    };
    let url = std::env::var("BP_HP_URL").unwrap();
    let namespace = std::env::var("BP_HP_NAMESPACE").unwrap();
    let instance = std::env::var("BP_HP_INSTANCE").unwrap();
    let sink = Sink::new();
    let bridge = connect(sink.clone(), config(&url, &namespace, &instance))
        .await
        .expect("child connect");
    let failing = Arc::new(AtomicBool::new(false));
    let (tx, mut starts) = mpsc::unbounded_channel();
    let worker = match role.as_str() {
        "owner" => owner(&sink, breaker(1, Duration::from_secs(60)), &failing),
        _ => peer(&sink, 0, 1, &tx),
    };
    tokio::spawn(async move {
        while let Some(start) = starts.recv().await {
            println!("STARTED");
            std::mem::forget(start); // hangs until the process dies
        }
    });
    println!("READY {}", bridge.instance());
    let mut lines = BufReader::new(tokio::io::stdin()).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        match line.trim() {
            "fail" => open_the_breaker(&worker, &failing, &[]).await,
            "enqueue" => drop(worker.enqueue(()).await.unwrap()),
            "churn" => churn(&sink),
            _ => break,
        }
        println!("OK");
    }
    bridge.shutdown().await;
}

/// Keeps the bridge busy: a shared signal no worker defers on, raised and retracted every
/// few milliseconds, so that a `SIGSTOP` almost surely catches a publish in flight.
fn churn(sink: &Sink) {
    let sink = sink.clone();
    tokio::spawn(async move {
        loop {
            sink.raise("churn.noise").unwrap();
            tokio::time::sleep(Duration::from_millis(2)).await;
            sink.retract("churn.noise").unwrap();
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    });
}

/// A child process in `role`, bridged to `namespace` as `instance`.
struct Child {
    child: tokio::process::Child,
    stdin: tokio::process::ChildStdin,
    lines: tokio::io::Lines<BufReader<tokio::process::ChildStdout>>,
}

impl Child {
    async fn spawn(role: &str, url: &str, namespace: &str, instance: &str) -> Self {
        let mut child = tokio::process::Command::new(std::env::current_exe().unwrap())
            .args([
                "child_role_entry",
                "--exact",
                "--nocapture",
                "--test-threads=1",
            ])
            .env("BP_HP_ROLE", role)
            .env("BP_HP_URL", url)
            .env("BP_HP_NAMESPACE", namespace)
            .env("BP_HP_INSTANCE", instance)
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
        child.line("READY", "the child to start").await;
        child
    }

    /// Waits for a line containing `what` (libtest may print on the same line).
    async fn line(&mut self, what: &str, waited_for: &str) {
        loop {
            let line = tokio::time::timeout(WAIT, self.lines.next_line())
                .await
                .unwrap_or_else(|_| panic!("timed out waiting for {waited_for}"))
                .unwrap()
                .unwrap_or_else(|| panic!("the child exited before {waited_for}"));
            if line.contains(what) {
                return;
            }
        }
    }

    async fn send(&mut self, command: &str) {
        let line = format!("{command}\n");
        self.stdin.write_all(line.as_bytes()).await.unwrap();
        self.line("OK", command).await;
    }

    /// Sends a signal (`-9`, `-STOP`, `-CONT`) to the child.
    fn signal(&self, signal: &str) {
        let pid = self.child.id().expect("the child runs").to_string();
        let status = std::process::Command::new("kill")
            .args([signal, &pid])
            .status()
            .expect("kill");
        assert!(status.success(), "kill {signal} {pid}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_owner_killed_while_a_peers_probe_runs_lets_the_peer_go_within_a_lease() {
    let Some(server) = redis("the_owner_killed_while_a_peers_probe_runs") else {
        return;
    };
    let namespace = "hp-owner-killed";
    let mut owner = Child::spawn("owner", &server.url(), namespace, "owner-process").await;
    let (peer_sink, _p) = process(&server.url(), namespace, "peer-process").await;
    let (tx, mut starts) = mpsc::unbounded_channel();
    let peer = peer(&peer_sink, 0, 2, &tx);
    owner.send("fail").await;
    assert!(
        mirrors(&peer_sink, Phase::HalfOpen).await,
        "the peer mirrors half-open"
    );
    peer.enqueue_many(vec![(); 3]).await.unwrap();
    let probe = next_start(&mut starts, WAIT)
        .await
        .expect("the peer probes");
    owner.signal("-9");
    assert!(
        wait_until(&peer_sink, LEASE * 2, |s| !s.is_raised(SIGNAL)).await,
        "the dead owner's verdict lapsed at the peer within a lease"
    );
    probe.succeed(); // reported to nobody
    assert_eq!(complete_all(&mut starts, &[&peer], 3).await, 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_killed_holding_a_lent_probe_is_settled_by_probe_timeout() {
    let Some(server) = redis("a_peer_killed_holding_a_lent_probe") else {
        return;
    };
    let namespace = "hp-peer-killed";
    let (owner_sink, _o) = process(&server.url(), namespace, "owner-process").await;
    let mut b = Child::spawn("peer", &server.url(), namespace, "peer-b").await;
    let (c_sink, _c) = process(&server.url(), namespace, "peer-c").await;
    let failing = Arc::new(AtomicBool::new(false));
    let owner = owner(
        &owner_sink,
        breaker(1, Duration::from_millis(800)),
        &failing,
    );
    let (tx, mut starts) = mpsc::unbounded_channel();
    let c = peer(&c_sink, 1, 1, &tx);
    open_the_breaker(&owner, &failing, &[&c_sink]).await;
    assert!(mirrors(&c_sink, Phase::HalfOpen).await);
    b.send("enqueue").await;
    b.line("STARTED", "B's probe").await;
    c.enqueue(()).await.unwrap();
    b.signal("-9");
    reaches(&owner, BreakerState::Open, "the dead peer's loan timed out").await;
    let probe = next_start(&mut starts, WAIT)
        .await
        .expect("C probes the next period");
    probe.succeed();
    reaches(&owner, BreakerState::Closed, "C's probe closed it").await;
}

/// The owner stopped (`SIGSTOP`) during half-open with a peer held and asking: the verdict
/// lapses at the peer within a lease, and the peer runs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_owner_stopped_during_half_open_lapses_within_a_lease() {
    let Some(server) = redis("the_owner_stopped_during_half_open_lapses") else {
        return;
    };
    let namespace = "hp-owner-stopped";
    let owner = Child::spawn("owner", &server.url(), namespace, "owner-process").await;
    let (peer_sink, _p) = process(&server.url(), namespace, "peer-process").await;
    stopped_and_lapsed(owner, &peer_sink).await;
}

/// Opens the child owner's breaker, waits for half-open at the peer, stops the owner and
/// has a peer item run once the verdict lapsed; returns the child, its tap and the peer.
async fn stopped_and_lapsed(
    mut owner: Child,
    peer_sink: &Sink,
) -> (
    Child,
    mpsc::UnboundedReceiver<Start>,
    backpressure::Coordinator<()>,
) {
    let (tx, mut starts) = mpsc::unbounded_channel();
    let peer = peer(peer_sink, 0, 1, &tx);
    owner.send("fail").await;
    assert!(
        mirrors(peer_sink, Phase::HalfOpen).await,
        "the peer mirrors half-open"
    );
    owner.signal("-STOP");
    peer.enqueue(()).await.unwrap();
    assert!(
        wait_until(peer_sink, LEASE * 2, |s| !s.is_raised(SIGNAL)).await,
        "a stopped owner's verdict lapses within a lease"
    );
    next_start(&mut starts, WAIT)
        .await
        .expect("the peer runs once the verdict lapsed")
        .succeed();
    (owner, starts, peer)
}

/// The stopped owner is resumed (`SIGCONT`): its half-open verdict must come back and a
/// peer item probe and close it. The owner's bridge is kept busy (a signal raised and
/// retracted every few ms) so the stop catches a call in flight. Intermittent: seen in 3
/// of about 17 runs of an earlier form of this test under load (other suites running
/// alongside), 0 of 11 runs of this form; either the claim the peer sent during the stop is granted on resume while
/// the owner's link is not up, the grant is dropped unsent (`Task::send_probe`) but the
/// loan kept, so the peer's next claim is denied until `probe_timeout` (here a minute;
/// trace: `C 1`, `C 1`, `D 1`, no `G`); or the half-open verdict does not come back to the
/// peer at all within 10 s (cause not found).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "intermittent under load (failed 1 of 3 runs of `.ci/load 3` on 2026-12-04: the verdict did not come back to the peer within 6 s); cause not found, see the doc comment; run with --ignored"]
async fn a_stopped_owner_resumed_is_probed_again_without_a_probe_timeout() {
    let Some(server) = redis("a_stopped_owner_resumed_is_probed_again") else {
        return;
    };
    let namespace = "hp-owner-resumed";
    let mut owner = Child::spawn("owner", &server.url(), namespace, "owner-process").await;
    let (peer_sink, _p) = process(&server.url(), namespace, "peer-process").await;
    let mut tap = Tap::new(&server.url(), namespace);
    owner.send("churn").await;
    let (owner, mut starts, peer) = stopped_and_lapsed(owner, &peer_sink).await;
    owner.signal("-CONT");
    let bound = Duration::from_secs(6);
    let back = wait_until(&peer_sink, bound, |s| {
        s.snapshot()
            .iter()
            .any(|e| &*e.name == SIGNAL && e.phase == Some(Phase::HalfOpen))
    });
    assert!(
        back.await,
        "the resumed owner's half-open verdict is back at the peer"
    );
    peer.enqueue(()).await.unwrap();
    let Some(probe) = next_start(&mut starts, bound).await else {
        panic!(
            "the peer never probed the resumed owner; probe messages: {:?}; peer {:?}",
            tap.drain(),
            peer.stats()
        );
    };
    probe.succeed();
    assert!(
        wait_until(&peer_sink, WAIT, |s| !s.is_raised(SIGNAL)).await,
        "the peer's probe closed the resumed owner's breaker"
    );
}
