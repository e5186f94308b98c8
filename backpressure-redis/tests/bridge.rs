//! Bridges against a real redis-server (started per test; skipped without one).

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use backpressure::{Coordinator, Level, RaiseOptions, SignalEventKind, Sink, WorkContext};
use backpressure_redis::{connect, Bridge, Config, Error, Status};
use common::{keys_of, redis, wait_until, ChildProcess, RedisServer};
use futures_util::StreamExt;
use tokio::time::Instant;

const LEASE: Duration = Duration::from_secs(1);
/// How long a positive wait may take: generous, for a loaded machine (real time).
const WAIT: Duration = Duration::from_secs(30);

fn config(server: &RedisServer, namespace: &str, instance: &str) -> Config {
    Config::new(server.url())
        .namespace(namespace)
        .instance(instance)
        .lease(LEASE)
        .reconnect_max_delay(Duration::from_millis(200))
}

async fn bridge(server: &RedisServer, namespace: &str, instance: &str) -> (Sink, Bridge) {
    bridge_with(config(server, namespace, instance)).await
}

async fn bridge_with(config: Config) -> (Sink, Bridge) {
    let sink = Sink::new();
    let bridge = connect(sink.clone(), config).await.expect("connect");
    assert_eq!(bridge.status(), Status::Synced);
    (sink, bridge)
}

fn counting_coordinator(sink: &Sink) -> (Coordinator<u32>, Arc<AtomicUsize>) {
    let done = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&done);
    let coordinator = Coordinator::builder()
        .sink(sink.clone())
        .concurrency(2)
        .defer_on("backpressure.*")
        .build(move |_: u32, _: WorkContext| {
            let counter = Arc::clone(&counter);
            async move {
                counter.fetch_add(1, Ordering::SeqCst);
            }
        })
        .unwrap();
    (coordinator, done)
}

/// Entry point of the child processes spawned by `ChildProcess` (a no-op in a normal run).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn child_process_entry() {
    use tokio::io::AsyncBufReadExt;
    let Ok(url) = std::env::var("BP_CHILD_URL") else {
        return;
    };
    let namespace = std::env::var("BP_CHILD_NAMESPACE").unwrap();
    let lease: u64 = std::env::var("BP_CHILD_LEASE_MS").unwrap().parse().unwrap();
    let sink = Sink::new();
    let bridge = connect(
        sink.clone(),
        Config::new(url)
            .namespace(namespace)
            .lease(Duration::from_millis(lease)),
    )
    .await
    .expect("child connect");
    println!("READY {}", bridge.instance());
    let mut lines = tokio::io::BufReader::new(tokio::io::stdin()).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        match line.split_once(' ') {
            Some(("raise", name)) => sink.raise(name).unwrap(),
            Some(("retract", name)) => {
                sink.retract(name).unwrap();
            }
            _ => break,
        }
        println!("OK");
    }
    bridge.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn raise_in_another_process_defers_a_coordinator_and_retract_resumes_it() {
    let Some(server) = redis("raise_in_another_process_defers_a_coordinator") else {
        return;
    };
    let mut child = ChildProcess::spawn(&server.url(), "ns", LEASE).await;
    let (sink, _bridge) = bridge(&server, "ns", "b").await;
    let (coordinator, done) = counting_coordinator(&sink);

    child.send("raise backpressure.smtp").await;
    assert!(wait_until(&sink, WAIT, |s| s.is_raised("backpressure.smtp")).await);
    assert_eq!(
        keys_of(&sink, "backpressure.smtp"),
        vec![child.instance.clone()]
    );
    coordinator.enqueue_many(0..3).await.unwrap();
    tokio::task::yield_now().await;
    assert_eq!(
        done.load(Ordering::SeqCst),
        0,
        "work ran while the remote signal was raised"
    );
    assert_eq!(coordinator.stats().deferred, 3);

    child.send("retract backpressure.smtp").await;
    assert!(wait_until(&sink, WAIT, |s| !s.is_raised("backpressure.smtp")).await);
    tokio::time::timeout(WAIT, coordinator.drain())
        .await
        .unwrap();
    assert_eq!(done.load(Ordering::SeqCst), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_sinks_share_keyed_signals_without_echo() {
    let Some(server) = redis("two_sinks_share_keyed_signals_without_echo") else {
        return;
    };
    let (a, bridge_a) = bridge(&server, "ns", "a").await;
    let (b, bridge_b) = bridge(&server, "ns", "b").await;

    a.raise_keyed("backpressure.db", "w1").unwrap();
    a.raise("backpressure.cpu").unwrap();
    assert!(wait_until(&b, WAIT, |s| s.snapshot().len() == 2).await);
    assert_eq!(keys_of(&b, "backpressure.db"), vec!["a/w1"]);
    assert_eq!(keys_of(&b, "backpressure.cpu"), vec!["a"]);
    // Every mirrored entry carries the remaining lease as TTL.
    assert!(b.snapshot().iter().all(|s| s.expires_at.is_some()));

    // B raises the same name: both ends see both entries, and nothing is echoed back.
    b.raise("backpressure.db").unwrap();
    assert!(wait_until(&a, WAIT, |s| keys_of(s, "backpressure.db").len() == 2).await);
    assert_eq!(keys_of(&a, "backpressure.db"), vec!["b", "w1"]);
    let mut entries: Vec<String> = redis::cmd("ZRANGE")
        .arg(backpressure_redis::__private::entries_key("ns"))
        .arg(0)
        .arg(-1)
        .query(&mut server.raw())
        .unwrap();
    entries.sort(); // The set is ordered by expiry.
    assert_eq!(
        entries,
        vec![
            "a|backpressure.cpu|",
            "a|backpressure.db|w1",
            "b|backpressure.db|"
        ]
    );

    // One raiser retracting leaves the other's entry.
    a.retract_keyed("backpressure.db", "w1").unwrap();
    assert!(wait_until(&b, WAIT, |s| keys_of(s, "backpressure.db") == vec![""]).await);
    // A clean shutdown retracts a process's entries everywhere at once.
    bridge_a.shutdown().await;
    assert!(wait_until(&b, WAIT, |s| !s.is_raised("backpressure.cpu")).await);
    assert_eq!(bridge_b.stats().malformed_messages, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_process_signal_vanishes_within_one_lease() {
    let Some(server) = redis("a_killed_process_signal_vanishes_within_one_lease") else {
        return;
    };
    let mut child = ChildProcess::spawn(&server.url(), "ns", LEASE).await;
    let (sink, _bridge) = bridge(&server, "ns", "b").await;
    let (coordinator, done) = counting_coordinator(&sink);
    child.send("raise backpressure.smtp").await;
    assert!(wait_until(&sink, WAIT, |s| s.is_raised("backpressure.smtp")).await);
    coordinator.enqueue(1).await.unwrap();

    child.kill().await;
    let killed = Instant::now();
    assert!(wait_until(&sink, LEASE * 2, |s| !s.is_raised("backpressure.smtp")).await);
    let gone = killed.elapsed();
    // Within one lease of the kill (the last renewal was at most then), plus scheduling
    // slack for a loaded CI machine.
    assert!(
        gone <= LEASE + Duration::from_millis(400),
        "vanished after {gone:?}"
    );
    tokio::time::timeout(WAIT, coordinator.drain())
        .await
        .unwrap();
    assert_eq!(done.load(Ordering::SeqCst), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_restarted_empty_gets_the_raised_signals_back() {
    let Some(mut server) = redis("redis_restarted_empty_gets_the_raised_signals_back") else {
        return;
    };
    let (a, bridge_a) = bridge(&server, "ns", "a").await;
    let (b, bridge_b) = bridge(&server, "ns", "b").await;
    a.raise("backpressure.smtp").unwrap();
    assert!(wait_until(&b, WAIT, |s| s.is_raised("backpressure.smtp")).await);

    server.restart();
    for bridge in [&bridge_a, &bridge_b] {
        let status = bridge.wait_for(WAIT, |s| *s == Status::Synced).await;
        assert_eq!(status, Status::Synced);
    }
    // Both resynced: A re-published into the empty server, B mirrors it with a fresh lease.
    assert!(wait_until(&b, WAIT, |s| s.is_raised("backpressure.smtp")).await);
    let live: u64 = redis::cmd("ZCARD")
        .arg(backpressure_redis::__private::entries_key("ns"))
        .query(&mut server.raw())
        .unwrap();
    assert_eq!(live, 1);
    // ...and it outlives the lease it had before the restart (it is being renewed).
    let mut expired = b.subscribe();
    assert!(
        tokio::time::timeout(LEASE * 2, expired.next())
            .await
            .is_err(),
        "the re-published signal expired"
    );
    assert!(b.is_raised("backpressure.smtp"));
    assert!(bridge_a.stats().resyncs >= 2 && bridge_b.stats().resyncs >= 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pubsub_kill_resyncs_with_no_lost_or_phantom_entry() {
    let Some(server) = redis("pubsub_kill_resyncs_with_no_lost_or_phantom_entry") else {
        return;
    };
    let (a, bridge_a) = bridge(&server, "ns", "a").await;
    let (b, bridge_b) = bridge(&server, "ns", "b").await;
    a.raise("backpressure.old").unwrap();
    assert!(wait_until(&b, WAIT, |s| s.is_raised("backpressure.old")).await);
    let resyncs = bridge_b.stats().resyncs;

    let _: u64 = redis::cmd("CLIENT")
        .arg("KILL")
        .arg("TYPE")
        .arg("pubsub")
        .query(&mut server.raw())
        .unwrap();
    // Changes while the subscriptions are down or coming back.
    a.retract("backpressure.old").unwrap();
    a.raise("backpressure.new").unwrap();

    for bridge in [&bridge_a, &bridge_b] {
        let status = bridge.wait_for(WAIT, |s| *s == Status::Synced).await;
        assert_eq!(status, Status::Synced);
    }
    assert!(wait_until(&b, WAIT, |s| s.is_raised("backpressure.new")).await);
    assert!(wait_until(&b, WAIT, |s| !s.is_raised("backpressure.old")).await);
    assert!(bridge_b.stats().resyncs > resyncs);
    let names: Vec<String> = b.snapshot().iter().map(|s| s.name.to_string()).collect();
    assert_eq!(names, vec!["backpressure.new"]);
    assert_eq!(keys_of(&a, "backpressure.new"), vec![""], "no echo in A");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn namespaces_are_isolated() {
    let Some(server) = redis("namespaces_are_isolated") else {
        return;
    };
    let (a, _ba) = bridge(&server, "one", "a").await;
    let (b, _bb) = bridge(&server, "one", "b").await;
    let (c, _bc) = bridge(&server, "two", "c").await;
    a.raise("backpressure.x").unwrap();
    c.raise("backpressure.y").unwrap();
    assert!(wait_until(&b, WAIT, |s| s.is_raised("backpressure.x")).await);
    // c's raise was published before a's was seen by b: had it leaked, it would be there.
    a.raise("backpressure.z").unwrap();
    assert!(
        !wait_until(&c, Duration::from_millis(300), |s| s
            .is_raised("backpressure.x"))
        .await
    );
    assert!(wait_until(&b, WAIT, |s| s.is_raised("backpressure.z")).await);
    assert!(!b.is_raised("backpressure.y"));
    assert!(!a.is_raised("backpressure.y"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ttl_raise_expires_everywhere_at_the_same_moment() {
    let Some(server) = redis("a_ttl_raise_expires_everywhere_at_the_same_moment") else {
        return;
    };
    let (a, _ba) = bridge(&server, "ns", "a").await;
    let (b, _bb) = bridge(&server, "ns", "b").await;
    let (c, _bc) = bridge(&server, "ns", "c").await;
    let ttl = Duration::from_millis(700);
    a.raise_for("backpressure.burst", ttl).unwrap();
    for sink in [&b, &c] {
        assert!(wait_until(sink, WAIT, |s| s.is_raised("backpressure.burst")).await);
    }
    let expiry = |sink: Sink| async move {
        let mut events = sink.subscribe();
        loop {
            let event = events.next().await.unwrap().unwrap();
            if &*event.name == "backpressure.burst" && event.kind != SignalEventKind::Raised {
                return (event.kind, event.at);
            }
        }
    };
    let (ea, eb, ec) = tokio::time::timeout(WAIT, async {
        tokio::join!(expiry(a.clone()), expiry(b.clone()), expiry(c.clone()))
    })
    .await
    .unwrap();
    assert_eq!(ea.0, SignalEventKind::Expired);
    for other in [eb, ec] {
        let skew = if other.1 > ea.1 {
            other.1 - ea.1
        } else {
            ea.1 - other.1
        };
        assert!(skew < Duration::from_millis(50), "expired {skew:?} apart");
    }
}

/// The level (per-mille) of the entry of `name` under `key`, if active.
fn level_of(sink: &Sink, name: &str, key: &str) -> Option<u16> {
    sink.snapshot()
        .into_iter()
        .find(|s| &*s.name == name && s.key.as_deref().unwrap_or("") == key)
        .map(|s| s.level.per_mille())
}

/// The level of `member` (`instance|name|key`) as stored in Redis.
fn stored_level(server: &RedisServer, member: &str) -> String {
    redis::cmd("HGET")
        .arg("bp:{ns}:levels")
        .arg(member)
        .query(&mut server.raw())
        .unwrap()
}

/// Levels travel: a levelled raise is published and mirrored with its level, re-raising it
/// with another level updates every mirror, and a peer's levelled entry keeps its level.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn levels_travel_on_the_wire() {
    let Some(server) = redis("levels_travel_on_the_wire") else {
        return;
    };
    let (a, _ba) = bridge(&server, "ns", "a").await;
    let (b, bridge_b) = bridge(&server, "ns", "b").await;

    // A plain raise is a full stop (level 0) everywhere.
    a.raise("backpressure.full").unwrap();
    assert!(
        wait_until(&b, WAIT, |s| level_of(s, "backpressure.full", "a")
            == Some(0))
        .await
    );
    assert_eq!(stored_level(&server, "a|backpressure.full|"), "0");

    // A level-500 entry raised in A appears in B with level 500...
    let half = RaiseOptions::new().level(Level::new(0.5).unwrap());
    a.raise_with("backpressure.half", half).unwrap();
    assert!(
        wait_until(&b, WAIT, |s| level_of(s, "backpressure.half", "a")
            == Some(500))
        .await,
        "{:?}",
        b.snapshot()
    );
    assert_eq!(stored_level(&server, "a|backpressure.half|"), "500");

    // ...and changing it to 800 in A shows 800 in B, on the same entry.
    let mut events = b.subscribe();
    let higher = RaiseOptions::new().level(Level::from_per_mille(800));
    a.raise_with("backpressure.half", higher).unwrap();
    assert!(
        wait_until(&b, WAIT, |s| level_of(s, "backpressure.half", "a")
            == Some(800))
        .await,
        "{:?}",
        b.snapshot()
    );
    assert_eq!(stored_level(&server, "a|backpressure.half|"), "800");
    assert_eq!(keys_of(&b, "backpressure.half"), vec!["a"]);
    let change = tokio::time::timeout(WAIT, async {
        loop {
            let event = events.next().await.unwrap().unwrap();
            if &*event.name == "backpressure.half" {
                return event;
            }
        }
    })
    .await
    .unwrap();
    assert_eq!(change.kind, SignalEventKind::LevelChanged);
    assert_eq!(change.level.per_mille(), 800);

    // A keyed entry with a TTL keeps its level too.
    let keyed = RaiseOptions::new()
        .key("w1")
        .ttl(Duration::from_secs(30))
        .level(Level::new(0.25).unwrap());
    a.raise_with("backpressure.db", keyed).unwrap();
    assert!(
        wait_until(&b, WAIT, |s| level_of(s, "backpressure.db", "a/w1")
            == Some(250))
        .await
    );

    // A levelled entry published by another process is mirrored with its level.
    let mut raw = server.raw();
    let seq: u64 = redis::cmd("INCR")
        .arg(backpressure_redis::__private::seq_key("ns"))
        .query(&mut raw)
        .unwrap();
    let epoch: u64 = redis::cmd("GET")
        .arg(backpressure_redis::__private::epoch_key("ns"))
        .query(&mut raw)
        .unwrap();
    // The Redis clock: a message read long after its `now` is stale (the bridge resyncs).
    let (secs, micros): (u64, u64) = redis::cmd("TIME").query(&mut raw).unwrap();
    let now = secs * 1000 + micros / 1000;
    let message = backpressure_redis::__private::encode_message(
        epoch,
        seq,
        true,
        now,
        now + 1000,
        600,
        "peer",
        "backpressure.peer",
        None,
    );
    let _: i64 = redis::cmd("PUBLISH")
        .arg(backpressure_redis::__private::channel("ns"))
        .arg(message)
        .query(&mut raw)
        .unwrap();
    assert!(
        wait_until(&b, WAIT, |s| level_of(s, "backpressure.peer", "peer")
            == Some(600))
        .await
    );
    assert_eq!(bridge_b.stats().invalid_entries, 0);
}

/// A 0.3 level raised in A holds a coordinator of concurrency 10 in B to 3 running items.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_remote_level_limits_a_coordinator_to_its_share() {
    let Some(server) = redis("a_remote_level_limits_a_coordinator_to_its_share") else {
        return;
    };
    let (a, _ba) = bridge(&server, "ns", "a").await;
    let (b, _bb) = bridge(&server, "ns", "b").await;

    let running = Arc::new(AtomicUsize::new(0));
    let peak = Arc::new(AtomicUsize::new(0));
    let (started_tx, mut started) = tokio::sync::mpsc::unbounded_channel::<u32>();
    let (release, released) = tokio::sync::watch::channel(false);
    let coordinator = {
        let (running, peak) = (Arc::clone(&running), Arc::clone(&peak));
        Coordinator::builder()
            .sink(b.clone())
            .concurrency(10)
            .defer_on("backpressure.*")
            .build(move |item: u32, _: WorkContext| {
                let (running, peak) = (Arc::clone(&running), Arc::clone(&peak));
                let started = started_tx.clone();
                let mut released = released.clone();
                async move {
                    let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                    peak.fetch_max(now, Ordering::SeqCst);
                    let _ = started.send(item);
                    let _ = released.wait_for(|r| *r).await;
                    running.fetch_sub(1, Ordering::SeqCst);
                }
            })
            .unwrap()
    };
    assert_eq!(coordinator.stats().limit, 10);

    let level = Level::new(0.3).unwrap();
    a.raise_with("backpressure.db", RaiseOptions::new().level(level))
        .unwrap();
    assert!(
        wait_until(&b, WAIT, |s| level_of(s, "backpressure.db", "a")
            == Some(300))
        .await
    );
    let stats = coordinator.stats();
    assert_eq!((stats.concurrency, stats.limit), (10, 3), "{stats:?}");
    assert!(!stats.gate_open);

    coordinator.enqueue_many(0..10).await.unwrap();
    for _ in 0..3 {
        tokio::time::timeout(WAIT, started.recv())
            .await
            .expect("an item started")
            .unwrap();
    }
    // Three are running and held; the gate lets no fourth start.
    let stats = coordinator.stats();
    assert_eq!((stats.active, stats.queued), (3, 7), "{stats:?}");
    assert_eq!(running.load(Ordering::SeqCst), 3);
    assert!(started.try_recv().is_err(), "a fourth item started");

    // Released, the rest runs through the same three slots.
    release.send(true).unwrap();
    tokio::time::timeout(WAIT, coordinator.drain())
        .await
        .unwrap();
    let stats = coordinator.stats();
    assert_eq!(stats.completed, 10, "{stats:?}");
    assert_eq!(peak.load(Ordering::SeqCst), 3, "at most 3 items at once");

    // Retracted in A, B's coordinator gets its full concurrency back.
    a.retract("backpressure.db").unwrap();
    assert!(wait_until(&b, WAIT, |s| !s.is_raised("backpressure.db")).await);
    assert_eq!(coordinator.stats().limit, 10);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_shared_names_cross() {
    let Some(server) = redis("only_shared_names_cross") else {
        return;
    };
    let (a, _ba) = bridge_with(config(&server, "ns", "a").share("backpressure.shared.*")).await;
    let (b, _bb) = bridge(&server, "ns", "b").await;
    a.raise("backpressure.private").unwrap();
    a.raise("backpressure.shared.db").unwrap();
    assert!(wait_until(&b, WAIT, |s| s.is_raised("backpressure.shared.db")).await);
    assert!(!b.is_raised("backpressure.private"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreachable_server_at_start_is_a_clear_error_without_credentials() {
    // Nothing listens on this port (bound, then released).
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let config = Config::new(format!("redis://admin:s3cr3t-pw@127.0.0.1:{port}/0"))
        .connect_timeout(Duration::from_millis(500));
    assert!(!format!("{config:?}").contains("s3cr3t"));
    let error = connect(Sink::new(), config).await.unwrap_err();
    assert!(matches!(error, Error::Connect { .. }), "{error:?}");
    let text = format!("{error} {error:?}");
    assert!(
        text.contains("cannot reach Redis at redis://***@127.0.0.1"),
        "{text}"
    );
    assert!(!text.contains("s3cr3t"), "{text}");

    let error = connect(Sink::new(), Config::new("mysql://user:pw-secret@x"))
        .await
        .unwrap_err();
    assert!(matches!(error, Error::InvalidUrl { .. }), "{error:?}");
    assert!(!format!("{error} {error:?}").contains("pw-secret"));
    let error = connect(Sink::new(), Config::new("redis://x").namespace("bad ns"))
        .await
        .unwrap_err();
    assert!(matches!(error, Error::Namespace { .. }), "{error:?}");
    let error = connect(Sink::new(), Config::new("redis://x").instance("a/b"))
        .await
        .unwrap_err();
    assert!(matches!(error, Error::Instance(_)), "{error:?}");
}
